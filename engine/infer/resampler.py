"""``Resampler``: draw once from a diffuse guide (and an expensive simulator), then get draws of
any nearby model by importance resampling that pool, without running the simulator again.

This is the cache behind interactive prior tuning (Pyro's prior predictive tutorial): move a
slider on a hyperparameter of the prior, and the trajectories shown are the pool's draws picked in
proportion to ``p_model(z) / p_guide(z)``. A model may also observe data: its likelihood then
enters the weights, and the draws are those of the posterior. The pool is drawn vectorised, under
a plate of ``num_guide_samples`` particles left of the model's own plates.

>>> import torch, engine as pyro, engine.distributions as dist
>>> def guide():
...     pyro.sample("z", dist.Normal(0.0, 5.0))
>>> def model():
...     pyro.sample("z", dist.Normal(3.0, 1.0))
>>> resampler = Resampler(guide, num_guide_samples=20000)
>>> samples = resampler.sample(model, num_samples=1000)
>>> samples["z"].shape, round(samples["z"].mean().item())
(torch.Size([1000]), 3)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.argument_checks import as_count
from engine.distributions.util import scale_and_mask
from engine.distributions.validation import trusted_run
from engine.errors import (
    DistributionArgumentError,
    ModelGuideMismatchError,
    PlateError,
    SupportError,
)
from engine.infer.util import max_plate_nesting_of, sum_except_plate, vectorize
from engine.poutine.handlers import block, condition, replay, trace
from engine.poutine.trace_struct import Trace
from engine.runtime import Message, is_subsample_site

# Not Pyro's "particles": a plate of the user's own may be called that.
_PARTICLES = "_resampler_particles"


class Resampler:
    """A pool of ``num_guide_samples`` draws of ``guide`` (extended by ``simulator``), resampled
    to match the model given to :meth:`sample`.

    ``guide`` takes no arguments and should be diffuse: it must cover wherever the later models
    put their mass, or the draws repeat a few pool members. ``simulator`` (optional) is a larger
    model holding the guide's sites and more (a simulation downstream of them); it is replayed on
    the guide's draws once, here, and its extra sites are carried along. Both must be
    vectorisable: they run under a plate of ``num_guide_samples`` particles at dim
    ``-1 - max_plate_nesting``. ``max_plate_nesting`` is the deepest plate nesting of the guide,
    the simulator and the models to come; when left out it is read off one run of the simulator
    (or the guide), so pass it when a model nests plates deeper than they do.

    >>> import engine as pyro, engine.distributions as dist
    >>> def guide():
    ...     pyro.sample("rate", dist.LogNormal(0.0, 2.0))
    >>> def simulator():
    ...     rate = pyro.sample("rate", dist.LogNormal(0.0, 2.0))
    ...     with pyro.plate("days", 7):
    ...         pyro.sample("count", dist.Poisson(rate))
    >>> resampler = Resampler(guide, simulator, num_guide_samples=500)
    >>> samples = resampler.sample(guide, num_samples=10)
    >>> samples["rate"].shape, samples["count"].shape
    (torch.Size([10, 1]), torch.Size([10, 7]))
    """

    def __init__(
        self,
        guide: Callable,
        simulator: Callable | None = None,
        *,
        num_guide_samples: int,
        max_plate_nesting: int | None = None,
    ):
        num_guide_samples = as_count(
            num_guide_samples,
            "Resampler: num_guide_samples",
            minimum=1,
            fix="It is the size of the pool, far larger than the num_samples asked of sample(), "
            "e.g. Resampler(guide, num_guide_samples=10000).",
        )
        if max_plate_nesting is None:
            max_plate_nesting = _guess_max_plate_nesting(guide if simulator is None else simulator)
        else:
            max_plate_nesting = as_count(
                max_plate_nesting,
                "Resampler: max_plate_nesting",
                minimum=0,
                fix="It is the number of nested vectorised plates, e.g. 1 for one plate.",
            )
        self.num_guide_samples = num_guide_samples
        self.max_plate_nesting = max_plate_nesting
        # One row of Gumbel noise per requested draw, kept between calls (see _draw_indices).
        self._gumbels: torch.Tensor | None = None
        with torch.no_grad(), block():
            guide_trace = self._particle_trace(guide, guide, "guide")
            self._guide_log_prob = self._log_prob_per_particle(guide_trace, guide, "guide")
            pool = guide_trace
            if simulator is not None:
                replayed = replay(simulator, trace=guide_trace)
                pool = self._particle_trace(replayed, simulator, "simulator")
        self._samples = {
            name: site["value"]
            for name, site in pool.nodes.items()
            if site["type"] == "sample" and not is_subsample_site(site)
        }
        if simulator is None:
            self._check_layout(pool, guide, "guide")
        else:
            self._check_layout(pool, simulator, "simulator")

    @torch.no_grad()
    def sample(
        self, model: Callable, num_samples: int, stable: bool = True
    ) -> dict[str, torch.Tensor]:
        """``num_samples`` draws whose distribution is (approximately) that of ``model``, picked
        from the pool with probability proportional to ``p_model / p_guide``: a dict of every pool
        site's values, the draw index leftmost. The guide and the simulator are not run again.

        ``model`` takes no arguments and samples the guide's latent sites (it may observe data,
        and then the draws follow its posterior). ``stable=True`` (the default, for pictures)
        draws with noise fixed at the first call: the same model gives the same draws, and a
        slightly changed model mostly the same ones, so a plot moves smoothly with a slider.
        ``stable=False`` draws afresh each call, for Monte Carlo averages over several calls.

        >>> import engine as pyro, engine.distributions as dist
        >>> def guide():
        ...     pyro.sample("z", dist.Normal(0.0, 3.0))
        >>> resampler = Resampler(guide, num_guide_samples=100)
        >>> first = resampler.sample(guide, 5)["z"]
        >>> bool((resampler.sample(guide, 5)["z"] == first).all())
        True
        """
        num_samples = as_count(
            num_samples,
            "Resampler.sample: num_samples",
            minimum=1,
            fix="It is the number of draws to return, e.g. resampler.sample(model, 20).",
        )
        # Value checks off: a pool draw outside the model's support is no error, only a draw
        # of weight 0 (see _log_density); invalid parameters show up as NaN, refused below.
        with block(), trusted_run():
            conditioned = condition(model, data=self._samples)
            model_trace = self._particle_trace(conditioned, model, "model")
        unknown = [
            name
            for name, site in model_trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"] and not is_subsample_site(site)
        ]
        if unknown:
            raise ModelGuideMismatchError(
                f"Resampler.sample: the model samples {unknown}, which the guide and the "
                f"simulator never drew (the pool holds {sorted(self._samples)}). Resampling can "
                "only reweight draws it has: give the model the pool's site names, or draw "
                "these sites in the guide."
            )
        logits = self._log_prob_per_particle(model_trace, model, "model") - self._guide_log_prob
        if not bool(torch.isfinite(logits).any()):
            raise SupportError(
                f"Resampler.sample: none of the {self.num_guide_samples} pool draws lies "
                "inside the model's support, so there is nothing to resample. Make the guide "
                "more diffuse, so that it covers where the model puts its mass."
            )
        index = self._draw_indices(logits, num_samples, stable)
        return {name: value[index] for name, value in self._samples.items()}

    def _draw_indices(self, logits: torch.Tensor, num_samples: int, stable: bool) -> torch.Tensor:
        if not stable:
            return torch.multinomial(torch.softmax(logits, 0), num_samples, replacement=True)
        # Gumbel-max: argmax(logits + g) with g standard Gumbel is a draw from softmax(logits).
        # Keeping g fixed makes the draw a piecewise-constant function of the model: the same
        # model gives the same draws, a small change of it changes few. Rows are only ever
        # appended, so asking for more draws keeps the first ones.
        # The noise costs num_samples x num_guide_samples numbers, made in place.
        have = 0 if self._gumbels is None else len(self._gumbels)
        if have < num_samples:
            tiny = torch.finfo(logits.dtype).tiny
            more = logits.new_empty(num_samples - have, len(logits)).uniform_()
            more.clamp_(min=tiny).log_().neg_().clamp_(min=tiny).log_().neg_()
            self._gumbels = more if self._gumbels is None else torch.cat([self._gumbels, more])
        gumbels = self._gumbels[:num_samples].to(device=logits.device, dtype=logits.dtype)
        return (gumbels + logits).argmax(-1)

    def _particle_trace(self, fn: Callable, source: Callable, role: str) -> Trace:
        """Run ``fn`` (``source``, perhaps conditioned or replayed) under the particle plate."""
        particles = vectorize(fn, self.num_guide_samples, self.max_plate_nesting, _PARTICLES)
        try:
            return trace(particles).get_trace()
        except Exception as error:
            self._raise_if_too_deep(source, role, error)
            raise

    def _check_layout(self, pool: Trace, source: Callable, role: str) -> None:
        """Every pool value must hold one draw per particle in its leftmost dim, where
        :meth:`sample` indexes it."""
        for name, site in pool.nodes.items():
            if site["type"] != "sample" or is_subsample_site(site):
                continue
            shape = torch.as_tensor(site["value"]).shape
            if len(shape) <= self.max_plate_nesting or shape[0] != self.num_guide_samples:
                self._raise_if_too_deep(source, role, None)
                error = self._layout_error(name, role, "value", shape)
                if site["infer"].get("_deterministic", False):
                    error.message += (
                        " A deterministic site's value is not broadcast by plates: compute it "
                        "from the sampled sites, or expand it to one entry per draw."
                    )
                raise error

    def _layout_error(self, name: str, role: str, what: str, shape: torch.Size) -> PlateError:
        return PlateError(
            f"Resampler: site '{name}' of the {role} has a {what} of shape {tuple(shape)}, "
            f"which does not hold one entry per pool draw ({self.num_guide_samples}) at dim "
            f"{-1 - self.max_plate_nesting}. The {role} must be vectorisable: let plates "
            "broadcast its sites, with no batch dims left of its plates."
        )

    def _log_prob_per_particle(self, tr: Trace, source: Callable, role: str) -> torch.Tensor:
        """The log density of each particle of ``tr`` (a particle trace of ``source``): every
        sample site's log-prob summed over all dims but the particle dim."""
        total = torch.zeros(self.num_guide_samples)
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or is_subsample_site(site):
                continue
            log_prob = scale_and_mask(_log_density(site), site["scale"], site["mask"])
            per_particle = sum_except_plate(torch.as_tensor(log_prob), site, _PARTICLES)
            if per_particle.shape != total.shape:
                self._raise_if_too_deep(source, role, None)
                raise self._layout_error(name, role, "log-prob", torch.as_tensor(log_prob).shape)
            nan = per_particle.isnan()
            if bool(nan.any()):
                raise DistributionArgumentError(
                    f"Resampler: site '{name}' of the {role} has a NaN log density at "
                    f"{int(nan.sum())} of {self.num_guide_samples} pool draws that lie inside "
                    "its support: its distribution's parameters are invalid there (a scale of "
                    "0 or below, a probability outside [0, 1], ...). Check the parameters "
                    f"given to '{name}'."
                )
            total = total.to(per_particle) + per_particle
        return total

    def _raise_if_too_deep(self, fn: Callable, role: str, cause: Exception | None) -> None:
        """When ``fn`` nests plates deeper than ``max_plate_nesting``, the particle dim collides
        with one of them: say so, and how to fix it, instead of the shape error that follows."""
        try:
            deepest = _guess_max_plate_nesting(fn)
        except Exception:  # it fails on its own too: the original error says why
            return
        if deepest > self.max_plate_nesting:
            raise PlateError(
                f"Resampler: the {role} nests {deepest} plate(s), deeper than "
                f"max_plate_nesting={self.max_plate_nesting}, so its plates collide with the "
                f"pool's particle dim {-1 - self.max_plate_nesting}. Fix: "
                f"Resampler(..., max_plate_nesting={deepest})."
            ) from cause


def _log_density(site: Message) -> torch.Tensor:
    """A site's unscaled log density, ``-inf`` (not an error) where its value lies outside the
    support: a diffuse guide's draw outside a model's support simply has weight 0."""
    fn, value = site["fn"], site["value"]
    log_prob = torch.as_tensor(fn.log_prob(value, *site["args"], **site["kwargs"]))
    try:
        inside = fn.support.check(value)
    except NotImplementedError:  # a distribution that does not say: trust its log_prob
        return log_prob
    return torch.where(inside, log_prob, torch.tensor(-torch.inf, dtype=log_prob.dtype))


def _guess_max_plate_nesting(fn: Callable) -> int:
    """The deepest vectorised plate nesting of one run of ``fn``, which is not recorded by the
    handlers around it."""
    with torch.no_grad(), block():
        return max_plate_nesting_of(trace(fn).get_trace())
