"""``CSIS``: compiled sequential importance sampling (inference compilation).

Importance sampling is only as good as its proposal. CSIS learns one: a guide, usually a neural
network that reads the observed values, is trained on data sets drawn from the model itself
(latents and observations together) to put its mass where the posterior of those latents is. The
loss is the average of ``-log q(z | x)`` over joint draws ``(z, x) ~ p``, which is, up to a
constant, the KL divergence from the posterior to the guide averaged over the data the model
could produce; it covers the posterior's mass rather than hugging a mode, as a proposal should.
Once trained ("compiled"), the guide proposes for any observed data: ``run`` is
:class:`~engine.infer.importance.Importance` with it.

The guide receives the observed values by site name, as the keyword argument
``observations={site name: value}``; the model takes the same keyword so that ``run`` can condition
it on real data.

>>> import torch, engine as pyro, engine.distributions as dist
>>> from engine.optim import Adam
>>> def model(observations={"x": 0.0}):
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     pyro.sample("x", dist.Normal(z, 1.0), obs=observations["x"])
>>> def guide(observations={"x": 0.0}):
...     slope = pyro.param("slope", torch.tensor(0.0))
...     pyro.sample("z", dist.Normal(slope * observations["x"], 0.75))
>>> pyro.set_rng_seed(0)
>>> csis = CSIS(model, guide, Adam({"lr": 0.02}), num_inference_samples=100, training_batch_size=20)
>>> for _ in range(60):
...     _ = csis.step()
>>> abs(pyro.param("slope").item() - 0.5) < 0.1  # the posterior mean is x / 2
True
>>> posterior = csis.run(observations={"x": torch.tensor(1.0)})
>>> len(posterior.exec_traces)
100
>>> pyro.clear_param_store()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engine.argument_checks import as_count
from engine.errors import ArgumentError
from engine.infer.importance import Importance
from engine.infer.joint_draws import (
    guide_trace_on,
    require_observations_keyword,
    sample_from_joint,
)
from engine.infer.svi import SVI
from engine.poutine.trace_struct import Trace


class CSIS(Importance):
    """Train ``guide`` as an importance-sampling proposal for ``model`` on the model's own draws,
    then sample the posterior of given observations with it.

    ``model`` and ``guide`` take the same arguments, and the guide a keyword ``observations``: a
    dict of the observed sites' values by name. ``optim`` is an :mod:`engine.optim` wrapper
    (``Adam({"lr": 1e-3})``). Each :meth:`step` draws ``training_batch_size`` fresh data sets
    from the model (its observed sites are sampled too), runs the guide on each with those
    observations, and takes one optimizer step on the mean of ``-log q(latents)``. Only the
    guide's params are trained (the model's draws carry no gradient). A step with a non-finite
    loss or gradient is refused with a :class:`~engine.infer.nonfinite.NonFiniteError`, and
    leaves the params as they were.

    :meth:`validation_loss` tracks the same loss on one fixed batch of ``validation_batch_size``
    draws. :meth:`run` (``Importance.run``) draws ``num_inference_samples`` weighted traces with
    the guide as proposal: pass the real data as ``observations={...}``.

    >>> import engine as pyro, engine.distributions as dist
    >>> from engine.optim import Adam
    >>> def model(observations={"x": 0.0}):
    ...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
    ...     pyro.sample("x", dist.Normal(z, 1.0), obs=observations["x"])
    >>> def guide(observations=None):
    ...     pyro.sample("z", dist.Normal(observations["x"] / 2, 0.75))
    >>> csis = CSIS(model, guide, Adam({"lr": 0.01}), validation_batch_size=5)
    >>> csis.step() > 0  # the guide has no params to train, but the loss is estimated
    True
    >>> csis.validation_loss() > 0
    True
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim: Callable,
        num_inference_samples: int = 10,
        training_batch_size: int = 10,
        validation_batch_size: int = 20,
    ):
        counts = {
            "num_inference_samples": num_inference_samples,
            "training_batch_size": training_batch_size,
            "validation_batch_size": validation_batch_size,
        }
        for what, count in counts.items():
            counts[what] = as_count(
                count,
                f"CSIS: {what}",
                minimum=1,
                fix="It is a number of draws, e.g. CSIS(model, guide, optim, "
                "num_inference_samples=50, training_batch_size=10, validation_batch_size=20).",
            )
        if not callable(guide):
            raise ArgumentError(
                f"CSIS: the guide must be a function or a torch.nn.Module, got "
                f"{type(guide).__name__}."
            )
        require_observations_keyword(guide, "CSIS")
        super().__init__(model, guide, num_samples=counts["num_inference_samples"])
        self.optim = optim
        self.training_batch_size = counts["training_batch_size"]
        self.validation_batch_size = counts["validation_batch_size"]
        self.validation_batch: list[Trace] | None = None
        self._trainer = _CompilationSteps(model, guide, optim, loss=self._training_loss)

    def step(self, *args: Any, **kwargs: Any) -> float:
        """Train the guide for one optimizer step on a fresh batch of model draws; returns the
        loss, the batch mean of ``-log q(latents | observations)``. ``args`` and ``kwargs`` go to
        the model and the guide (the guide gets ``observations`` on top)."""
        return self._trainer.step(*args, **kwargs)

    def loss_and_grads(
        self, grads: bool, batch: list[Trace] | None, *args: Any, **kwargs: Any
    ) -> float:
        """The loss on ``batch`` (joint traces of the model; a fresh batch of
        ``training_batch_size`` when None), as a float; with ``grads`` its gradient is added to
        the ``.grad`` of the guide's params (no optimizer step is taken)."""
        if batch is None:
            batch = _joint_batch(self.model, self.training_batch_size, args, kwargs)
        with torch.set_grad_enabled(grads):
            loss = self._batch_loss(self.guide, batch, args, kwargs)
            if grads and loss.requires_grad:
                loss.backward()
        return loss.item()

    def set_validation_batch(self, *args: Any, **kwargs: Any) -> None:
        """Draw ``validation_batch_size`` joint traces of the model (``args``, ``kwargs`` go to
        it) and keep them as ``validation_batch``, the fixed data of :meth:`validation_loss`."""
        self.validation_batch = _joint_batch(self.model, self.validation_batch_size, args, kwargs)

    def validation_loss(self, *args: Any, **kwargs: Any) -> float:
        """The loss on the validation batch (drawn now, with these arguments, if none was set):
        less noisy than the training losses, since the data stay the same from call to call."""
        if self.validation_batch is None:
            self.set_validation_batch(*args, **kwargs)
        return self.loss_and_grads(False, self.validation_batch, *args, **kwargs)

    # -- the loss --------------------------------------------------------------------------

    def _training_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        # SVI's custom-loss signature: the steps of SVI (rollback, finite checks, optimizer)
        # serve CSIS unchanged.
        batch = _joint_batch(model, self.training_batch_size, args, kwargs)
        return self._batch_loss(guide, batch, args, kwargs)

    @staticmethod
    def _batch_loss(
        guide: Callable, batch: list[Trace], args: tuple, kwargs: dict[str, Any]
    ) -> torch.Tensor:
        total = sum(
            -guide_trace_on(guide, joint, args, kwargs, "CSIS").log_prob_sum() for joint in batch
        )
        return torch.as_tensor(total) / len(batch)


class _CompilationSteps(SVI):
    """SVI's step machinery with CSIS's loss; a failed step speaks of CSIS, and is searched
    for its first non-finite value in a joint draw and the guide run on it."""

    _step_label = "CSIS step"
    _skip_hint = ""

    def _diagnostic_traces(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[Trace, Trace]:
        joint = sample_from_joint(model, args, kwargs)
        return guide_trace_on(guide, joint, args, kwargs, "CSIS"), joint


def _joint_batch(model: Callable, size: int, args: tuple, kwargs: dict[str, Any]) -> list[Trace]:
    return [sample_from_joint(model, args, kwargs) for _ in range(size)]
