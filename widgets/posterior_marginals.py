"""Each latent site's marginal under a guide, with its prior behind it, as curves on one grid.

:class:`MarginalSampler` draws ``num_samples`` values of every latent site from the guide and
``num_prior_samples`` from the prior (the model run on its own, its observed sites staying
observed: they do not move the prior of a latent, which is drawn before them), and gives one
:class:`Marginal` per site, or per element of a small vector site (the first ``max_elements``,
named ``theta[2]`` or ``L[0,1]``). The SVI monitor's posterior panel, ``run.plot_posterior()``
and :func:`widgets.plot_posterior` all use it.

Decisions, and why:

- **No guide family is assumed.** The guide is only run, under :class:`~engine.infer.Predictive`
  (vectorised in one run; one run per draw when the guide does not vectorise), and its values at
  the model's latent site names are read. So hand-written guides and every autoguide (whose
  internal sites, ``_AutoDiagonalNormal_latent`` and the like, are skipped) work alike. A latent
  site the guide does not draw (an enumerated discrete site, say) gets the prior only, and a note.
- **Continuous sites** get a Gaussian kernel density estimate
  (:func:`engine.infer.kde.gaussian_kde`) with Silverman's bandwidth (:func:`bandwidth`),
  reflected at the bounds of the site's support (a positive or unit-interval site keeps its mass
  inside). A guide whose draws are all equal (``AutoDelta``) has no density: it is a point mass,
  drawn as a vertical line at ``point``.
- **The grid** covers the guide's draws (padded by three bandwidths) and the prior's central 98 %,
  but no further than ``ZOOM`` of the guide's standard deviations from the guide's mean: a wide
  prior must not squeeze a narrow posterior into a few grid cells (with 80 points, the spacing
  is about 2 * ZOOM / 79 = 0.2 of the guide's sd). It is clipped to the support.
- **Discrete sites** get bar probabilities at each value drawn (or, past ``MAX_BARS`` values,
  over the prior's central 98 % and the guide's draws, in bins of whole numbers of equal width),
  from the draws' frequencies.
- **Same random numbers each time**: the draws use a fixed ``seed`` inside
  :func:`~engine.rng.preserved_rng_state`, so consecutive curves of a run differ only by what the
  guide learned, and drawing them never moves the run's own random stream.
- **Cheap**: the prior's draws are made once and kept (the model and its arguments do not change),
  so there can be many of them (``num_prior_samples``, 4000: a kernel density estimate's noise
  falls as one over the square root of the draws times the bandwidth, and 300 draws of a
  Beta(2, 2) wobble by a tenth of its height); each refresh runs the guide once, vectorised, and
  a few small matrix products. The prior's
  draws come from one run of the model under a plate of ``num_prior_samples``; a model whose
  likelihood cannot take that batch (``x @ w`` with a batched ``w``) still gives them, as long
  as it fails after its last latent site: the latents drawn before the failure are prior draws
  (each is drawn given the ones before it). Only a model that fails earlier is run once per draw.

>>> import torch, engine, engine.distributions as dist
>>> def model():
...     engine.sample("mu", dist.Normal(0.0, 1.0))
>>> def guide():
...     engine.sample("mu", dist.Normal(2.0, 0.5))
>>> (mu,) = MarginalSampler(model, guide).marginals().marginals
>>> mu.name, mu.kind, len(mu.x)
('mu', 'continuous', 80)
>>> abs(mu.x[max(range(80), key=mu.guide.__getitem__)] - 2.0) < 0.3  # the guide peaks near 2
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.distributions import constraints
from engine.errors import PPLError
from engine.infer import Predictive
from engine.infer.kde import gaussian_kde, silverman_bandwidth
from engine.infer.util import max_plate_nesting_of, vectorize
from engine.params import ParamStoreDict, param_store_scope
from engine.poutine.handlers import block, trace
from engine.rng import preserved_rng_state, set_rng_seed
from engine.runtime import is_subsample_site

NUM_SAMPLES = 1000
PRIOR_SAMPLES = 4000
SERIAL_SAMPLES = 300  # at most, from a model or guide that runs once per draw
GRID_POINTS = 80
MAX_ELEMENTS = 4  # per vector site: its first elements, in flat (row-major) order
MAX_PANELS = 12  # in all: the rest are listed in ``not_shown``
MAX_BARS = 40
ZOOM = 8.0  # guide standard deviations each side of its mean
PRIOR_QUANTILES = (0.01, 0.99)
_PLATE_NAME = "_posterior_view_draws"


class PosteriorViewError(PPLError, ValueError):
    """A posterior view that cannot be drawn (no latent site, a guide that fails), with why."""


def bandwidth(draws: torch.Tensor) -> float:
    """Silverman's bandwidth of 1-D ``draws`` (:func:`engine.infer.kde.silverman_bandwidth`),
    or 0.0 when they are all equal: a point mass, drawn as a line rather than a curve.

    >>> bandwidth(torch.ones(10)), bandwidth(torch.tensor([0.0, 1.0, 2.0, 3.0])) > 0
    (0.0, True)
    """
    draws = draws.detach().reshape(-1)
    if draws.numel() < 2 or not bool((draws != draws[0]).any()):
        return 0.0
    return float(silverman_bandwidth(draws.double()))


@dataclass
class Marginal:
    """One latent site (or one element of it) as curves on a shared grid.

    ``kind`` is ``"continuous"`` (``guide``/``prior`` are densities at the points ``x``) or
    ``"discrete"`` (probabilities of the bars starting at ``x``, each ``width`` wide: 1 for one
    value per bar). ``guide`` is None when the guide does not draw this site (``note`` says
    so) or is a point mass (then ``point`` is where).
    """

    name: str
    site: str
    kind: str
    x: list[float]
    prior: list[float]
    guide: list[float] | None = None
    point: float | None = None
    width: float = 1.0
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe, with 4 significant digits (what a chart can show)."""
        return {
            "name": self.name,
            "site": self.site,
            "kind": self.kind,
            "x": _rounded(self.x),
            "prior": _rounded(self.prior),
            "guide": None if self.guide is None else _rounded(self.guide),
            "point": None if self.point is None else _round(self.point),
            "width": self.width,
            "note": self.note,
        }


@dataclass
class Marginals:
    """The marginals drawn, and the sites or elements left out by the caps (as readable
    phrases, e.g. ``"theta: 6 more elements"``)."""

    marginals: list[Marginal]
    not_shown: list[str] = field(default_factory=list)


class MarginalSampler:
    """Draws the guide's and the prior's marginals of ``model``'s latent sites.

    ``args``/``kwargs`` are the model's (and guide's) arguments; ``param_store`` is the store the
    guide's params live in (an SVI run's own; None: the one in use). ``num_samples`` draws come
    from the guide at each call; ``num_prior_samples`` from the prior, on the first call, and
    are kept. Draws come from one vectorised run; a guide (or model) that cannot be vectorised
    is run once per draw instead, at most ``SERIAL_SAMPLES`` times, and remembered as such in
    ``parallel``.
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
        *,
        num_samples: int = NUM_SAMPLES,
        num_prior_samples: int = PRIOR_SAMPLES,
        grid_points: int = GRID_POINTS,
        seed: int = 0,
        param_store: ParamStoreDict | None = None,
    ):
        if min(num_samples, num_prior_samples, grid_points) < 2:
            raise PosteriorViewError(
                "a posterior view needs num_samples, num_prior_samples and grid_points >= 2, "
                f"got num_samples={num_samples}, num_prior_samples={num_prior_samples}, "
                f"grid_points={grid_points}"
            )
        self.model, self.guide = model, guide
        self.args, self.kwargs = tuple(args), dict(kwargs or {})
        self.num_samples, self.num_prior_samples = num_samples, num_prior_samples
        self.grid_points, self.seed = grid_points, seed
        self.param_store = param_store
        self.parallel = {"model": True, "guide": True}
        self._latents: dict[str, dict[str, Any]] | None = None
        self._nesting = 0
        self._prior: dict[str, torch.Tensor] | None = None

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """The draws' setting: the run's params, a fixed seed, the caller's RNG untouched."""
        store = (
            param_store_scope(self.param_store)
            if self.param_store is not None
            else contextlib.nullcontext()
        )
        with store, preserved_rng_state(), torch.no_grad():
            set_rng_seed(self.seed)
            yield

    def latent_sites(self) -> dict[str, dict[str, Any]]:
        """``{name: {"shape", "discrete", "lower", "upper"}}`` of the model's latent sample
        sites (not observed, not deterministic, not a factor), from one run of the model; empty
        when it has none (then the draws and :meth:`marginals` raise PosteriorViewError)."""
        if self._latents is None:
            with self._quietly(), block():
                model_trace = trace(self.model).get_trace(*self.args, **self.kwargs)
            self._nesting = max_plate_nesting_of(model_trace)
            self._latents = {
                name: _site_facts(site)
                for name, site in model_trace.nodes.items()
                if site["type"] == "sample"
                and not site["is_observed"]
                and not is_subsample_site(site)
                and not site["infer"].get("_deterministic")
            }
        return self._latents

    def _check_latents(self) -> dict[str, dict[str, Any]]:
        latents = self.latent_sites()
        if not latents:
            raise PosteriorViewError(
                f"model '{_name_of(self.model)}' has no latent sample site (every site is "
                "observed), so there is no posterior to show. Fix: give it a latent site "
                "(pyro.sample without obs=)."
            )
        return latents

    def prior_draws(self) -> dict[str, torch.Tensor]:
        """``num_prior_samples`` prior draws of each latent site, flat:
        ``(num_prior_samples, numel)``; at most ``SERIAL_SAMPLES`` when the model cannot be run
        batched before its last latent site, and so runs once per draw."""
        if self._prior is None:
            latents, count = self._check_latents(), self.num_prior_samples
            with self._quietly():
                draws = self._latents_of_one_batched_run(latents)
                if draws is None:
                    draws = self._draw(self.model, list(latents), "model", count)
            self._prior = {name: _flat(draws[name]) for name in latents}
        return self._prior

    def _latents_of_one_batched_run(
        self, latents: dict[str, dict[str, Any]]
    ) -> dict[str, torch.Tensor] | None:
        """The latent sites' values from one run of the model under a plate of
        ``num_prior_samples`` (left of its own plates), kept even when a later line of the model
        fails on the batch (see the module docstring); None if some latent is missing or
        misshapen."""
        count = self.num_prior_samples
        batched = trace(vectorize(self.model, count, self._nesting, _PLATE_NAME))
        with contextlib.suppress(Exception), block():
            batched.get_trace(*self.args, **self.kwargs)
        nodes, draws = batched.trace.nodes, {}
        for name, facts in latents.items():
            value = torch.as_tensor(nodes[name]["value"]) if name in nodes else None
            numel = math.prod(facts["shape"])
            if value is None or value.dim() == 0 or value.shape[0] != count:
                return None
            if value.numel() != count * numel:
                return None
            draws[name] = value
        return draws

    def guide_draws(self) -> dict[str, torch.Tensor]:
        """``num_samples`` draws from the guide of each latent site it draws, flat."""
        latents = self._check_latents()
        with self._quietly():
            draws = self._draw(self.guide, None, "guide", self.num_samples)
        return {name: _flat(draws[name]) for name in latents if name in draws}

    def _draw(
        self, fn: Callable, sites: list[str] | None, role: str, count: int
    ) -> dict[str, torch.Tensor]:
        if self.parallel[role]:
            try:
                return self._predictive(fn, sites, count, parallel=True)
            except Exception:  # one that does not vectorise: one run per draw instead
                self.parallel[role] = False
        try:
            # One run per draw costs a model run each (an HMM's 4000 took a minute): fewer.
            return self._predictive(fn, sites, min(count, SERIAL_SAMPLES), parallel=False)
        except PPLError:
            raise
        except Exception as error:
            raise PosteriorViewError(
                f"the {role} '{_name_of(fn)}' failed while drawing {count} samples "
                f"for the posterior view: {type(error).__name__}: {error}"
            ) from error

    def _predictive(
        self, fn: Callable, sites: list[str] | None, count: int, parallel: bool
    ) -> dict[str, torch.Tensor]:
        # return_sites=None: every site the guide draws (its own internal ones too, skipped
        # later); for the model, the latent sites only.
        predictive = Predictive(fn, num_samples=count, return_sites=sites, parallel=parallel)
        return predictive(*self.args, **self.kwargs)

    def marginals(
        self, max_elements: int = MAX_ELEMENTS, max_panels: int = MAX_PANELS
    ) -> Marginals:
        """The :class:`Marginal` of each latent site (element), in the model's order, capped
        at ``max_elements`` per site and ``max_panels`` in all."""
        latents, prior, guide = self._check_latents(), self.prior_draws(), self.guide_draws()
        shown: list[Marginal] = []
        not_shown: list[str] = []
        for site, facts in latents.items():
            numel = prior[site].shape[1]
            room = max(0, min(numel, max_elements, max_panels - len(shown)))
            if room < numel:
                more = numel - room
                not_shown.append(
                    f"{site}: {more} more element{'s' if more > 1 else ''}" if room else site
                )
            own = guide.get(site)
            note = None
            if own is None:
                note = "prior only: the guide does not draw it"
            elif own.shape[1] != numel:
                note = f"prior only: the guide draws {own.shape[1]} values, the model {numel}"
                own = None
            for j in range(room):
                name = _element_name(site, facts["shape"], j, numel)
                g = None if own is None else own[:, j]
                shown.append(_marginal(name, site, facts, prior[site][:, j], g, note, self))
        return Marginals(shown, not_shown)


def _marginal(
    name: str,
    site: str,
    facts: dict[str, Any],
    prior: torch.Tensor,
    guide: torch.Tensor | None,
    note: str | None,
    sampler: MarginalSampler,
) -> Marginal:
    if facts["discrete"]:
        return _bars(name, site, prior, guide, note)
    return _densities(name, site, facts, prior, guide, note, sampler.grid_points)


def _densities(
    name: str,
    site: str,
    facts: dict[str, Any],
    prior: torch.Tensor,
    guide: torch.Tensor | None,
    note: str | None,
    grid_points: int,
) -> Marginal:
    lower, upper = facts["lower"], facts["upper"]
    prior, guide = prior.double(), None if guide is None else guide.double()
    h_prior = bandwidth(prior)
    q_low, q_high = torch.quantile(
        prior, torch.tensor(PRIOR_QUANTILES, dtype=prior.dtype, device=prior.device)
    ).tolist()
    low, high = q_low - 3 * h_prior, q_high + 3 * h_prior
    h_guide, point = 0.0, None
    if guide is not None:
        h_guide = bandwidth(guide)
        g_low, g_high = float(guide.min()), float(guide.max())
        if h_guide > 0:
            g_low, g_high = g_low - 3 * h_guide, g_high + 3 * h_guide
            # At most ZOOM sd around the guide's mean: the posterior keeps its detail.
            centre, reach = float(guide.mean()), ZOOM * float(guide.std())
            low = max(min(low, g_low), min(g_low, centre - reach))
            high = min(max(high, g_high), max(g_high, centre + reach))
        else:
            point = g_low
            low, high = min(low, point), max(high, point)
    if lower is not None:
        low = max(low, lower)
    if upper is not None:
        high = min(high, upper)
    if not high > low:  # all draws on one value, or a support bound cut everything off
        pad = abs(low) / 10 or 1.0
        low, high = low - pad, high + pad
    grid = torch.linspace(low, high, grid_points, dtype=torch.float64, device=prior.device)
    prior_density = (
        gaussian_kde(prior, grid, h_prior, lower, upper)
        if h_prior > 0
        else torch.zeros_like(grid)  # a constant "prior": nothing to draw behind
    )
    guide_density = None
    if guide is not None and h_guide > 0:
        guide_density = gaussian_kde(guide, grid, h_guide, lower, upper).tolist()
    return Marginal(
        name,
        site,
        "continuous",
        grid.tolist(),
        prior_density.tolist(),
        guide_density,
        point=point,
        note=note,
    )


def _bars(
    name: str, site: str, prior: torch.Tensor, guide: torch.Tensor | None, note: str | None
) -> Marginal:
    prior = prior.double()
    drawn = prior if guide is None else torch.cat([prior, guide.double()])
    low, high = math.floor(drawn.min()), math.ceil(drawn.max())
    if high - low + 1 > MAX_BARS:  # a long tail of the prior: its central 98 % only
        q_low, q_high = torch.quantile(
            prior, torch.tensor(PRIOR_QUANTILES, dtype=prior.dtype, device=prior.device)
        ).tolist()
        low, high = math.floor(q_low), math.ceil(q_high)
        if guide is not None:
            low, high = min(low, math.floor(guide.min())), max(high, math.ceil(guide.max()))
    width = max(1, math.ceil((high - low + 1) / MAX_BARS))
    starts = torch.arange(low, high + 1, width, dtype=torch.float64, device=prior.device)

    def probabilities(draws: torch.Tensor) -> list[float]:
        index = torch.div(draws.double() - low, width, rounding_mode="floor").long()
        inside = (index >= 0) & (index < len(starts))
        counts = torch.bincount(index[inside], minlength=len(starts))
        return (counts.double() / draws.numel()).tolist()

    return Marginal(
        name,
        site,
        "discrete",
        starts.tolist(),
        probabilities(prior),
        None if guide is None else probabilities(guide),
        width=float(width),
        note=note,
    )


def _site_facts(site: dict[str, Any]) -> dict[str, Any]:
    support = getattr(site["fn"], "support", None)
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    lower = getattr(support, "lower_bound", None)
    upper = getattr(support, "upper_bound", None)
    if support is constraints.simplex:
        lower, upper = 0.0, 1.0
    return {
        "shape": tuple(torch.as_tensor(site["value"]).shape),
        "discrete": bool(getattr(support, "is_discrete", False)),
        "lower": None if lower is None else float(lower),
        "upper": None if upper is None else float(upper),
    }


def _flat(value: torch.Tensor) -> torch.Tensor:
    """Draws ``(num_draws, *site shape)`` as ``(num_draws, numel)``."""
    value = torch.as_tensor(value).detach()
    return value.reshape(value.shape[0], -1)


def _element_name(site: str, shape: tuple[int, ...], j: int, numel: int) -> str:
    """``site`` for a scalar, ``site[j]`` for a vector, ``site[i,k]`` for a matrix element."""
    if numel == 1:
        return site
    index = []
    for size in reversed(shape):
        index.append(j % size)
        j //= size
    return f"{site}[{','.join(str(i) for i in reversed(index))}]"


def _name_of(fn: Callable) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _rounded(values: list[float]) -> list[float]:
    return [_round(v) for v in values]
