"""``ReweightedWakeSleep``: reweighted wake-sleep (Bornschein and Bengio, 2015; Le et al., 2019).

Wake-sleep trains the model and the guide with two different objectives, so a step gives two
losses. From ``K = num_particles`` guide draws ``z_k ~ q(z | x)``, held fixed (no gradient flows
through a draw, so any guide works: discrete, non-reparameterised, with stochastic control
flow), and their log weights ``l_k = log p(x, z_k) - log q(z_k | x)``:

* **wake-theta**, the model's loss, is the negative importance-weighted bound
  ``-log(1/K sum_k exp(l_k))``, whose gradient in the model's parameters is the self-normalised
  estimate of ``-grad log p(x)``; the guide's densities in it are constants.
* **wake-phi** is ``-sum_k w_k log q(z_k | x)`` with the normalised weights ``w_k`` held
  constant: its gradient moves the guide toward the posterior, as ``KL(p(z | x) || q)``'s does.
* **sleep-phi** is ``-1/S sum_s log q(z_s | x_s)`` over ``S = num_sleep_particles`` joint draws
  ``(z_s, x_s)`` of the model (observations included): the guide learns to invert the model on
  data the model makes up. The guide receives those data as ``guide(*args,
  observations={site name: value}, **kwargs)``, so a guide trained with sleep must take an
  ``observations`` keyword (give it a default, ``observations=None``, and pass the real data
  the same way when it is the wake phase's turn: ``svi.step(observations=...)``).

The guide's loss is ``insomnia * wake_phi + (1 - insomnia) * sleep_phi``. ``SVI`` steps with
both: ``svi.step()`` returns the pair ``(wake_theta_loss, phi_loss)`` as floats, and the
gradient is that of their sum (each touches only its own side's parameters). With
``model_has_params=False`` and ``insomnia=0`` the wake phase is not run at all and the model's
loss is reported as 0. A subsampled plate (a mini-batch) is refused: the weights of a
mini-batch are not those of the data set.

>>> import torch, engine as pyro, engine.distributions as dist
>>> pyro.clear_param_store()
>>> def model():
...     z = pyro.sample("z", dist.Normal(0.0, 1.0))
...     pyro.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(1.0))
>>> def guide():
...     pyro.sample("z", dist.Normal(pyro.param("loc", torch.tensor(0.0)), 1.0))
>>> theta_loss, phi_loss = ReweightedWakeSleep(num_particles=4).loss(model, guide)
>>> isinstance(theta_loss, float), isinstance(phi_loss, float)
(True, True)
>>> pyro.clear_param_store()
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.argument_checks import as_count
from engine.errors import ArgumentError
from engine.infer.elbo import ELBO, PARTICLE_PLATE
from engine.infer.joint_draws import guide_trace_on, require_observations_keyword, sample_from_joint
from engine.infer.renyi_elbo import particle_log_densities
from engine.infer.util import max_plate_nesting_of, vectorize
from engine.poutine.trace_struct import Trace
from engine.rng import preserved_rng_state
from engine.runtime import Message, Messenger

_NAME = "ReweightedWakeSleep"


class _HeldDraws(Messenger):
    """Detach every latent draw before anyone records or uses it.

    Wake-sleep's gradients are score-like: a draw is a fixed point at which densities are
    differentiated, never a path for gradients. Put outside the ``trace`` of the run, this
    handler post-processes first, so both the trace and the code downstream of the site (later
    sites' distributions, the model replayed on the guide) see the detached value.
    """

    def _postprocess_sample(self, msg: Message) -> None:
        value = msg["value"]
        if not msg["is_observed"] and isinstance(value, torch.Tensor):
            msg["value"] = value.detach()


def _refuse_mini_batches(model_trace: Trace) -> None:
    """Refuse a subsampled plate: the weights of a mini-batch are not those of the data set.

    >>> import engine, engine.distributions as dist
    >>> def model():
    ...     with engine.plate("data", 100, subsample_size=10):
    ...         engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(10))
    >>> try:
    ...     _refuse_mini_batches(engine.poutine.trace(model).get_trace())
    ... except ArgumentError as error:
    ...     print(str(error)[:70])
    ReweightedWakeSleep: plate 'data' at site 'x' draws a mini-batch of 10
    """
    for name, site in model_trace.sample_sites():
        for frame in site["cond_indep_stack"]:
            if frame.full_size is not None and frame.full_size != frame.size:
                raise ArgumentError(
                    f"{_NAME}: plate '{frame.name}' at site '{name}' draws a mini-batch of "
                    f"{frame.size} of its {frame.full_size} elements, and the importance weights "
                    "of a mini-batch are not those of the whole data set: the wake losses would "
                    "be biased. Fix: give the plate all the data (no subsample_size), or train "
                    "with Trace_ELBO, which supports mini-batches."
                )


class ReweightedWakeSleep(ELBO):
    """Reweighted wake-sleep; see the module docstring for the objectives.

    ``num_particles`` (``K >= 2``: self-normalised weights need two draws) guide draws per step
    form the wake losses; ``num_sleep_particles`` model draws (default ``num_particles``) the
    sleep loss; ``insomnia`` in [0, 1] mixes them (1: wake only, 0: sleep only);
    ``model_has_params=False`` says that the model has nothing to learn, so that a sleep-only
    step need not run the wake phase at all. Particles are drawn in one vectorised run unless
    ``vectorize_particles=False`` (``max_plate_nesting`` read off the model when not given).

    >>> try:
    ...     ReweightedWakeSleep(insomnia=1.5)
    ... except ArgumentError as error:
    ...     print(str(error)[:58])
    ReweightedWakeSleep(insomnia=1.5): insomnia weighs the wak
    """

    def __init__(
        self,
        num_particles: int = 2,
        insomnia: float = 1.0,
        model_has_params: bool = True,
        num_sleep_particles: int | None = None,
        vectorize_particles: bool = True,
        max_plate_nesting: int | float = math.inf,
        strict_enumeration_warning: bool = True,
    ):
        num_particles = as_count(
            num_particles,
            "ReweightedWakeSleep: num_particles",
            minimum=2,
            fix="The wake losses weigh each draw against the others, so give it two or more.",
        )
        if num_sleep_particles is not None:
            num_sleep_particles = as_count(
                num_sleep_particles,
                "ReweightedWakeSleep: num_sleep_particles",
                minimum=1,
                fix="Leave it out to use num_particles.",
            )
        valid_insomnia = isinstance(insomnia, int | float) and not isinstance(insomnia, bool)
        if not (valid_insomnia and 0.0 <= insomnia <= 1.0):
            raise ArgumentError(
                f"ReweightedWakeSleep(insomnia={insomnia!r}): insomnia weighs the wake-phi loss "
                "against the sleep-phi loss, so it must lie in [0, 1] (1: wake only, 0: sleep "
                "only)."
            )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
        )
        self.insomnia = float(insomnia)
        self.model_has_params = bool(model_has_params)
        self.num_sleep_particles = (
            num_particles if num_sleep_particles is None else num_sleep_particles
        )

    # -- the three losses --------------------------------------------------------------------

    def _wake(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The wake-theta and wake-phi losses of ``num_particles`` guide draws."""
        log_ps, log_qs = [], []
        with _HeldDraws():
            for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
                _refuse_mini_batches(model_trace)
                log_p, log_q, _ = particle_log_densities(model_trace, guide_trace)
                log_ps.append(log_p)
                log_qs.append(log_q)
        log_p, log_q = torch.cat(log_ps), torch.cat(log_qs)
        log_w = log_p - log_q.detach()
        wake_theta = -(log_w.logsumexp(0) - math.log(log_w.numel()))
        weights = torch.softmax(log_w.detach(), 0)
        wake_phi = -(weights * log_q).sum()
        return wake_theta, wake_phi

    def _sleep(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> torch.Tensor:
        """The sleep-phi loss: ``-log q(z | x)`` averaged over ``num_sleep_particles`` joint
        draws of the model (one vectorised run, or one run each)."""
        require_observations_keyword(
            guide, _NAME, alternative="Or train the guide by the wake phase alone: insomnia=1.0."
        )
        num = self.num_sleep_particles
        runs = num
        if self.vectorize_particles and num > 1:
            if self.max_plate_nesting == math.inf:
                with preserved_rng_state():  # a look at the plates costs the run no draws
                    joint = sample_from_joint(model, args, kwargs)
                    guide_trace = guide_trace_on(guide, joint, args, kwargs, _NAME)
                    self.max_plate_nesting = max_plate_nesting_of(joint, guide_trace)
            nesting = int(self.max_plate_nesting)
            model = vectorize(model, num, nesting, PARTICLE_PLATE)
            guide = vectorize(guide, num, nesting, PARTICLE_PLATE)
            runs = 1
        total = torch.zeros(())
        for _ in range(runs):
            joint = sample_from_joint(model, args, kwargs)
            total = total + guide_trace_on(guide, joint, args, kwargs, _NAME).log_prob_sum()
        return -total / num

    def _losses(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        wake_theta = torch.zeros(())
        phi = torch.zeros(())
        if self.model_has_params or self.insomnia > 0:
            wake_theta, wake_phi = self._wake(model, guide, args, kwargs)
            if self.insomnia > 0:
                phi = self.insomnia * wake_phi
        if self.insomnia < 1:
            phi = phi + (1.0 - self.insomnia) * self._sleep(model, guide, args, kwargs)
        return wake_theta, phi

    # -- the entry points --------------------------------------------------------------------

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(wake_theta_loss, phi_loss)`` as tensors: ``(theta + phi).backward()`` gives both
        sides' gradients."""
        return self._losses(model, guide, args, kwargs)

    def loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> tuple[float, float]:
        """``(wake_theta_loss, phi_loss)`` as numbers (no gradients)."""
        with torch.no_grad():
            wake_theta, phi = self._losses(model, guide, args, kwargs)
        return wake_theta.item(), phi.item()

    def loss_and_grads(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> tuple[float, float]:
        """``(wake_theta_loss, phi_loss)``, with the gradients of both accumulated into the
        parameters' ``.grad``."""
        wake_theta, phi = self._losses(model, guide, args, kwargs)
        total = wake_theta + phi
        if total.requires_grad:
            total.backward(retain_graph=self.retain_graph)
        return wake_theta.item(), phi.item()
