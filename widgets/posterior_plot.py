"""The static posterior figure: one small matplotlib axes per latent site (or element), the
guide's density as a line over the prior's, shaded; bars for a discrete site; a vertical line for
a guide that is a point mass (``AutoDelta``). ``run.plot_posterior()`` and
:func:`plot_posterior` draw it; it shows as a PNG in a notebook.

The figure is a :class:`matplotlib.figure.Figure` made without pyplot, so it is shown once (as the
cell's value: it has ``_repr_png_``), never a second time by an inline backend, and drawing it
leaves pyplot's current figure alone. matplotlib is imported only when a figure is drawn.

>>> import engine, engine.distributions as dist
>>> def model():
...     engine.sample("mu", dist.Normal(0.0, 3.0))
...     engine.sample("k", dist.Poisson(2.0))
>>> def guide():
...     engine.sample("mu", dist.Normal(1.0, 0.5))
...     engine.sample("k", dist.Poisson(4.0))
>>> figure = plot_posterior(model, guide, num_samples=200)
>>> [ax.get_title() for ax in figure.axes], figure._repr_png_()[:4]
(['mu', 'k'], b'\\x89PNG')
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from typing import Any

from engine.params import ParamStoreDict
from widgets.posterior_marginals import Marginals, MarginalSampler, PosteriorViewError
from widgets.posterior_panel import GUIDE_COLOUR, PRIOR_FILL

COLUMNS = 4
# A figure is drawn once, so it affords more draws (smoother curves) than the live panel.
FIGURE_SAMPLES = 1000


def plot_posterior(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_samples: int = FIGURE_SAMPLES,
    seed: int = 0,
    param_store: ParamStoreDict | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """A figure of each latent site's marginal under ``guide`` with the prior behind it.

    ``args``/``kwargs`` go to the model and the guide; ``param_store`` is the store the guide's
    params are in (an SVI run's own; None: the one in use). ``num_samples`` draws are taken from
    each, with ``seed`` (the caller's random stream is left where it was). Returns a
    :class:`matplotlib.figure.Figure`.
    """
    sampler = MarginalSampler(
        model, guide, args, kwargs, num_samples=num_samples, seed=seed, param_store=param_store
    )
    return posterior_figure(sampler.marginals(), title)


def posterior_figure(marginals: Marginals, title: str | None = None) -> Any:
    """Draw :class:`~widgets.posterior_marginals.Marginals` as a figure, one axes per panel."""
    panels = marginals.marginals
    if not panels:
        raise PosteriorViewError("there is no latent site to plot")
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = _figure_class()(
        figsize=(max(3.0 * columns, 5.0), 2.3 * rows + 0.6), layout="constrained"
    )
    for i, panel in enumerate(panels):
        ax = figure.add_subplot(rows, columns, i + 1)
        if panel.kind == "discrete":  # a bar spans [start - 1/2, start + width - 1/2]
            w = panel.width
            edges = [x - 0.5 for x in panel.x]
            ax.bar(edges, panel.prior, width=w, align="edge", color=PRIOR_FILL, label="prior")
            if panel.guide is not None:
                inner = [edge + w / 4 for edge in edges]
                ax.bar(inner, panel.guide, w / 2, align="edge", color=GUIDE_COLOUR, label="guide")
        else:
            ax.fill_between(panel.x, panel.prior, color=PRIOR_FILL, label="prior")
            if panel.guide is not None:
                ax.plot(panel.x, panel.guide, color=GUIDE_COLOUR, label="guide")
        if panel.point is not None:
            ax.axvline(panel.point, color=GUIDE_COLOUR, label="guide (point)")
        ax.set_title(panel.name)
        ax.set_yticks([])
        ax.set_ylim(bottom=0)
        if panel.note:
            ax.set_xlabel(panel.note, fontsize=7, wrap=True)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    heading = title or "posterior (guide) and prior"
    if marginals.not_shown:
        heading += f" · not shown: {'; '.join(marginals.not_shown)}"
    figure.suptitle(heading, fontsize=9, wrap=True)
    return figure


@functools.cache
def _figure_class() -> type:
    from matplotlib.figure import Figure

    class PosteriorFigure(Figure):
        """A matplotlib Figure that a notebook shows as a PNG, with or without pyplot."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=90)
            return buffer.getvalue()

    return PosteriorFigure
