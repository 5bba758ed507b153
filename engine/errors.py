"""The engine's exceptions, and the small helpers that word them.

Every error a user can cause names the site, the plates and the shapes involved and says how to fix
it. They subclass the builtin exception a Pyro user would catch (``ValueError`` mostly), so existing
``except ValueError`` code keeps working. When one is raised while a ``trace`` is recording, the
trace attaches the shape table of the sites seen so far (see :meth:`PPLError.attach_site_table`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from engine.runtime import ARBITRARY_SIZE
from engine.source_lines import describe_location


class PPLError(Exception):
    """Base of the engine's own errors: a message plus, optionally, where it was raised (the
    site, the model or the guide, the user's line) and the sites recorded so far.

    The trace a model runs in fills in the where (see :mod:`engine.poutine.error_context`);
    everything is rendered only when the message is read.

    >>> str(PPLError("bad"))
    'bad'
    >>> error = PPLError("bad")
    >>> error.role = "guide"
    >>> error.locate("model.py", 3)
    >>> print(error)
    bad
    Raised in the guide, at line 3 of model.py.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self._render_site_table: Callable[[], str] | None = None
        self._table_heading = "Sites recorded before the error:"
        # Filled in on the way out of the run that raised it, when the message lacks them.
        self.site: str | None = None  # the site whose distribution was being built
        self.plates: list = []  # plate frames around the raising call, innermost first
        self.role: str | None = None  # "model" or "guide"
        self.location: tuple[str, int] | None = None  # the user's (filename, line)

    def attach_site_table(self, render: Callable[[], str], heading: str | None = None) -> None:
        """Attach the shape table of the sites seen before the error (the innermost trace wins).

        The table is rendered only when the message is read, so errors that are caught and
        handled cost nothing extra.
        """
        if self._render_site_table is None:
            self._render_site_table = render
            if heading is not None:
                self._table_heading = heading

    def locate(self, filename: str, lineno: int) -> None:
        """Record the user's line the error was raised at (the innermost one wins)."""
        if self.location is None:
            self.location = (filename, lineno)

    @property
    def site_table(self) -> str | None:
        return None if self._render_site_table is None else self._render_site_table()

    def where(self) -> str:
        """``Raised in the model, at line 3 of model.py.``, or '' when nothing is known."""
        parts = []
        if self.role:
            parts.append(f"in the {self.role}")
        if self.location is not None:
            parts.append(f"at {describe_location(*self.location)}")
        return f"Raised {', '.join(parts)}." if parts else ""

    def __str__(self) -> str:
        text = self.message
        if self.site is not None:
            plates = describe_plates(list(reversed(self.plates)))
            text = f"Site '{self.site}' ({plates}): {text}"
        where = self.where()
        if where:
            text = f"{text}\n{where}"
        table = self.site_table
        if not table:
            return text
        return f"{text}\n\n{self._table_heading}\n{table}"


@contextmanager
def raised_in(role: str) -> Iterator[None]:
    """Mark the engine errors raised in this block as coming from ``role`` ("model", "guide"),
    unless an inner block already said.

    >>> try:
    ...     with raised_in("guide"):
    ...         raise PPLError("bad")
    ... except PPLError as error:
    ...     error.role
    'guide'
    """
    try:
        yield
    except PPLError as error:
        blame(error, role)
        raise


def blame(error: PPLError, role: str) -> None:
    """Say that ``error`` came from ``role`` ("model", "guide"), unless it already says."""
    if error.role is None:
        error.role = role


class ShapeError(PPLError, ValueError):
    """A site's shapes do not fit its plates or its observed value."""


class SiteNameError(PPLError, ValueError, RuntimeError):
    """Two sites in one run share a name (a ``RuntimeError`` too, as Pyro raises), or a name
    given to inference (a key of ``posterior_samples``) is a near miss of a site's name."""


class ObservationNameError(SiteNameError, KeyError):
    """Code looked up an observed value by a name the model does not observe (CSIS hands its
    guide the observed values by site name). A ``KeyError`` too, as a plain dict raises.

    >>> str(ObservationNameError("no 'y'"))
    "no 'y'"
    """


class PlateError(PPLError, ValueError):
    """Plates that collide: the same dim, or the same name with different sizes."""


class EnumerationError(PPLError, ValueError):
    """Enumerated sites are used in a way exact marginalisation cannot follow."""


class EnumerationNotSupportedError(EnumerationError, NotImplementedError):
    """An enumeration feature the engine does not offer for this setting (as Pyro, it raises a
    ``NotImplementedError``), with what to use instead."""


def markov_window_error(site: dict, holder: str, dim: int) -> EnumerationError:
    """The error for a site that depends on an enumerated site outside its markov window.

    >>> site = {"name": "x_2", "cond_indep_stack": (), "infer": {}}
    >>> str(markov_window_error(site, "x_0", -1))[:37]
    "Site 'x_2' (no plate) depends on enum"
    """
    window = sorted(site["infer"].get("_markov_scope", ()))
    return EnumerationError(
        f"Site {describe_site(site)} depends on enumerated site '{holder}' (dim {dim}), which is "
        f"outside its markov window {window}, so that dim may already hold another site's "
        f"values: Enumeration dim conflict at dim {dim}. Raise `history` in markov(...) so "
        "the window reaches back that far, or stop the dependence."
    )


class DistributionArgumentError(PPLError, ValueError):
    """A distribution was given parameters outside their constraints.

    ``distribution`` is the (half-built) distribution that refused them, when known: a trace
    shows it as the row of the site it was built for.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.distribution: object = None


class SupportError(PPLError, ValueError):
    """An observed or initial value lies outside the support it must live in."""


class ParamError(PPLError, ValueError):
    """A ``param`` declared inconsistently (another constraint, an infeasible initial value)."""


class ArgumentError(PPLError, ValueError, TypeError):
    """An argument the engine cannot use as given: a site name that is not a string, a tensor
    where a distribution belongs, a count that is not a whole number, a value whose dtype the
    distribution cannot score.

    Python raises ``TypeError`` for some of these and ``ValueError`` for others, so this is both:
    an existing ``except`` clause of either kind still catches it.
    """


class ReparamError(PPLError, ValueError, NotImplementedError):
    """A reparameterizer was given a site it cannot rewrite: a distribution of another family, an
    observed site where only latent ones can be reparameterized, a config of the wrong type.

    Pyro raises ``NotImplementedError`` for the unsupported cases and ``ValueError`` for bad
    arguments, so this is both.
    """


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A sentence suggesting the candidates closest to a mistyped ``name``, or ''.

    >>> did_you_mean("muu", ["mu", "sigma"])
    " Did you mean 'mu'?"
    >>> did_you_mean("Mu", ["mu", "sigma"])
    " Did you mean 'mu'?"
    >>> did_you_mean("zzz", ["mu"])
    ''
    """
    # Compared without case, so that a capital is as close as any other one-letter slip.
    by_folded = {str(c).casefold(): str(c) for c in candidates}
    close = difflib.get_close_matches(str(name).casefold(), list(by_folded), n=3)
    return f" Did you mean {' or '.join(repr(by_folded[c]) for c in close)}?" if close else ""


class StateFileError(PPLError):
    """A saved-state file (param store, SVI state, optimizer state) that could not be written or
    read. ``path`` is the file the user named, never the temporary file a save writes first.

    Two kinds are raised, each also the builtin a user would catch:
    :class:`StateFileAccessError` (an ``OSError``) when the file system refuses (no such file, a
    folder, no permission, disk full) and :class:`StateFileContentError` (a ``ValueError``) when
    the file is there but what it holds cannot be used (empty, cut short, damaged, another kind of
    file, another version). Neither leaves anything changed: not the file, not the state in memory.

    >>> issubclass(StateFileAccessError, OSError), issubclass(StateFileContentError, ValueError)
    (True, True)
    """

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class StateFileAccessError(StateFileError, OSError):
    """The file system refused to read or write a state file; ``errno`` says why.

    >>> import errno
    >>> err = StateFileAccessError("cannot save ...", "p.pt", errno.ENOSPC)
    >>> err.errno == errno.ENOSPC, err.filename
    (True, 'p.pt')
    """

    def __init__(self, message: str, path: str, errno: int | None = None):
        super().__init__(message, path)
        # Set by hand: OSError's own constructor would word str() itself ("[Errno 28] ...").
        self.errno = errno
        self.strerror = None if errno is None else os.strerror(errno)
        self.filename = path


class StateFileNotFoundError(StateFileAccessError, FileNotFoundError):
    """A state file, or the folder it should be saved in, does not exist (a
    ``FileNotFoundError`` too, as ``torch.load`` raises)."""


class StateFileContentError(StateFileError, ValueError):
    """A state file that exists but cannot be used: empty, cut short, damaged, a file of another
    kind, or one written by another version."""


class RenderError(PPLError, RuntimeError, ValueError):
    """A model picture could not be written to a file: Graphviz (the ``graphviz`` package or
    its ``dot`` program) is missing, or the file name names no format Graphviz writes. A
    ``RuntimeError`` as Graphviz's own ``ExecutableNotFound`` is, and a ``ValueError`` as its
    unknown-format error is."""


class ModuleError(PPLError, TypeError, ValueError):
    """A ``PyroModule`` attribute declared with something it cannot use (a prior that is neither
    a distribution nor a function of the module), or a module tree it cannot name. A
    ``TypeError`` too, as Pyro raises for such a prior."""


def fmt_shape(shape: Iterable[int]) -> str:
    """Write a shape the way users type it.

    >>> fmt_shape((3, 1)), fmt_shape(()), fmt_shape([5])
    ('(3, 1)', '()', '(5,)')
    """
    dims = tuple(int(d) for d in shape)
    return str(dims)


def describe_plates(frames: Sequence) -> str:
    """Describe a site's plates, outermost first, for an error message.

    >>> from engine.runtime import CondIndepStackFrame
    >>> describe_plates([CondIndepStackFrame("data", -1, 5, 0, 10)])
    "plate 'data' (size 5 of 10, dim -1)"
    >>> describe_plates([])
    'no plate'
    """
    if not frames:
        return "no plate"
    parts = []
    for frame in frames:
        size = "no size" if frame.size == ARBITRARY_SIZE else f"size {frame.size}"
        if frame.full_size is not None and frame.full_size != frame.size:
            size += f" of {frame.full_size}"
        where = f"dim {frame.dim}" if frame.vectorized else "sequential"
        parts.append(f"plate '{frame.name}' ({size}, {where})")
    return ", ".join(parts)


def index_with_plate_hint(frame) -> str:
    """The fix for data that still has every row inside a subsampled plate.

    >>> from engine.runtime import CondIndepStackFrame
    >>> index_with_plate_hint(CondIndepStackFrame("data", -1, 10, 0, 100))[:28]
    "Plate 'data' is subsampled t"
    """
    return (
        f"Plate '{frame.name}' is subsampled to {frame.size} of {frame.full_size}: index the "
        f"data with the plate's indices (`with plate('{frame.name}', ...) as idx: ... "
        "data[idx]`)."
    )


def describe_site(site: dict) -> str:
    """Name a site and its plates for an error message.

    >>> describe_site({"name": "x", "cond_indep_stack": ()})
    "'x' (no plate)"
    """
    return f"'{site['name']}' ({describe_plates(site['cond_indep_stack'])})"


class DistributedError(PPLError, RuntimeError):
    """A distributed run cannot go on: this process has not joined a process group, or another
    process of the group failed (the message names its rank and its error) or is gone. A
    ``RuntimeError`` as torch's own collective failures are."""


class MissingParamError(ParamError, KeyError):
    """A param was read before anything created it; a ``KeyError`` too, as in Pyro.
    ``param_name`` is the name that was asked for."""

    def __init__(self, message: str, param_name: str | None = None):
        super().__init__(message)
        self.param_name = param_name


class ReplayError(PPLError, RuntimeError):
    """A replayed trace holds a site that cannot stand in for the model's site."""


class MCMCError(PPLError, ValueError):
    """A model MCMC cannot sample, or a starting point it cannot start from."""


class SMCFailed(PPLError, ValueError):
    """``SMCFilter`` found no particle with a nonzero weight: every hypothesis it holds is
    impossible given the data (Pyro's ``pyro.infer.smcfilter.SMCFailed``, a ``ValueError``).

    >>> isinstance(SMCFailed("no particle left"), ValueError)
    True
    """


class SMCStateError(PPLError, RuntimeError):
    """A guide of ``SMCFilter`` wrote to the filter's state: guides only read it, the model
    writes it (Pyro raises a ``RuntimeError`` there too)."""


class ModelGuideMismatchError(PPLError, ValueError):
    """The guide does not provide exactly the model's latent sites, with their shapes."""


class NonFiniteError(PPLError, ValueError):
    """An SVI step met a NaN or an infinity; no parameter was changed.

    Built from a :class:`~engine.infer.nonfinite.NonFiniteReport`, it also shows the sites up to
    the culprit.
    """

    def __init__(self, message: str):
        super().__init__(message)
        table = getattr(message, "table", None)
        if table:
            self.attach_site_table(lambda: table, heading=message.table_heading)


class AutoGuideError(PPLError, ValueError, RuntimeError):
    """An autoguide cannot cover this model (no latent site, a discrete site, no bijection...).

    Both a ``ValueError`` (Pyro's type for a site it cannot guide) and a ``RuntimeError``
    (Pyro's for a model with nothing to guide), so either ``except`` catches it.

    >>> isinstance(AutoGuideError("no latent site"), ValueError | RuntimeError)
    True
    """


class OptimError(PPLError, ValueError):
    """Optimizer arguments, a saved optimizer state or an optimizer file that cannot be used.

    A ``ValueError`` too, like the other engine errors.

    >>> isinstance(OptimError("bad lr"), ValueError)
    True
    """
