"""``markov``: declare that each step depends only on the ``history`` steps before it.

Every entry of the handler opens a step. Entered again after the previous step closed (a loop:
``for t in markov(range(T))``, or a decorated transition function called in a loop), the new step
follows the previous one. Entered again while a step is still open (a recursive function
decorated with ``@markov``), the new step is a child of the open one: its predecessors are its
ancestors, and siblings are independent unless ``keep=True``, in which case a sibling follows
the sibling before it.

Each sample site inside is stamped with ``infer["_markov_scope"]``: the names of the sites in the
current step and in its ``history`` predecessors, the only sites it may depend on; and with
``infer["_markov_reachable"]``: the names any site still to come may depend on (under recursion,
an ancestor's later children see it again). Enumeration recycles the tensor dim of a site no
longer reachable, so a chain of T discrete states costs O(T), not O(K^T).

>>> import engine, engine.distributions as dist
>>> from engine import poutine
>>> def chain():
...     x = 0.0
...     for t in engine.markov(range(3)):
...         x = engine.sample(f"x_{t}", dist.Normal(x, 1.0))
>>> sorted(poutine.trace(chain).get_trace().nodes["x_2"]["infer"]["_markov_scope"])
['x_1', 'x_2']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.runtime import Message, Messenger, is_subsample_site


@dataclass
class _Step:
    predecessors: tuple[_Step, ...]
    names: list[str] = field(default_factory=list)
    # The chain a next sibling continues (set when a child of this step closes).
    children_chain: tuple[_Step, ...] | None = None


class MarkovMessenger(Messenger):
    """One Markov step per entry; see the module docstring.

    >>> import engine, engine.distributions as dist
    >>> def chain():
    ...     x = 0.0
    ...     for t in engine.markov(range(4), history=2):  # one MarkovMessenger step per t
    ...         x = engine.sample(f"x_{t}", dist.Normal(x, 1.0))
    >>> scope = engine.poutine.trace(chain).get_trace().nodes["x_3"]["infer"]["_markov_scope"]
    >>> sorted(scope)  # with history 2, x_3 may depend on x_1 and x_2, not on x_0
    ['x_1', 'x_2', 'x_3']
    """

    def __init__(self, history: int = 1, keep: bool = False, dim=None, name=None):
        if history < 0:
            raise ValueError(f"markov history must be >= 0, got {history}")
        if dim is not None or name is not None:
            raise NotImplementedError(
                "markov(dim=..., name=...) belongs to Pyro's funsor backend; the engine's "
                "enumeration allocates dims itself: leave them out."
            )
        self.history = history
        self.keep = keep
        self._root = _Step(predecessors=())
        self._open: list[_Step] = []

    def _window(self, chain: tuple[_Step, ...]) -> tuple[_Step, ...]:
        return chain[max(len(chain) - self.history, 0) :] if self.history else ()

    def __enter__(self) -> MarkovMessenger:
        parent = self._open[-1] if self._open else self._root
        if parent is self._root or self.keep:
            # A step that follows its previous sibling: a loop, or kept branches.
            sibling_chain = parent.children_chain
            if sibling_chain is None:
                sibling_chain = () if parent is self._root else (*parent.predecessors, parent)
            chain = sibling_chain
        else:
            chain = (*parent.predecessors, parent)
        self._open.append(_Step(predecessors=self._window(chain)))
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        step = self._open.pop()
        parent = self._open[-1] if self._open else self._root
        parent.children_chain = self._window((*step.predecessors, step))
        super().__exit__(exc_type, exc_value, traceback)

    def _process_sample(self, msg: Message) -> None:
        if is_subsample_site(msg):
            return
        step = self._open[-1]
        visible = {name for earlier in step.predecessors for name in earlier.names}
        visible.update(step.names)
        visible.add(msg["name"])
        inherited = msg["infer"].get("_markov_scope", frozenset())
        reachable = msg["infer"].get("_markov_reachable", frozenset())
        msg["infer"] = {
            **msg["infer"],
            "_markov_scope": frozenset(visible) | inherited,
            "_markov_reachable": self._reachable() | visible | reachable,
        }

    def _reachable(self) -> frozenset[str]:
        """Names a site still to come may see: those of the open steps (a recursion's ancestors),
        of their windows, and of the chains their next children continue."""
        steps: list[_Step] = []
        for open_step in (self._root, *self._open):
            steps.extend(open_step.predecessors)
            steps.extend(open_step.children_chain or ())
            steps.append(open_step)
        return frozenset(name for step in steps for name in step.names)

    def _postprocess_sample(self, msg: Message) -> None:
        if not is_subsample_site(msg):
            self._open[-1].names.append(msg["name"])
