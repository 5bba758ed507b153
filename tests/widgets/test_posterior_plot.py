"""The static posterior figure: one axes per site (element), bars for a discrete site, a line
for a point mass, shown as a PNG; and the refusals, by name."""

import pytest
import torch

import engine
import engine.distributions as dist
from engine.params import ParamStoreDict
from widgets import plot_posterior
from widgets.posterior_marginals import PosteriorViewError


def model():
    engine.sample("mu", dist.Normal(0.0, 3.0))
    engine.sample("theta", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    engine.sample("k", dist.Poisson(2.0))


def guide():
    loc = engine.param("loc", torch.tensor(1.0))
    engine.sample("mu", dist.Normal(loc, 0.5))
    engine.sample("theta", dist.Delta(torch.tensor([0.5, -0.5])).to_event(1))
    engine.sample("k", dist.Poisson(4.0))


def test_one_axes_per_site_element_titled_by_name():
    figure = plot_posterior(model, guide, num_samples=300, title="<my run>")
    assert [ax.get_title() for ax in figure.axes] == ["mu", "theta[0]", "theta[1]", "k"]
    assert figure._suptitle.get_text() == "<my run>"  # plain text: matplotlib escapes nothing
    mu, theta_0, _, k = figure.axes
    assert len(mu.lines) == 1 and len(mu.collections) == 1  # the guide's line, the prior's fill
    assert [line.get_xdata()[0] for line in theta_0.lines] == [0.5]  # the point mass
    assert len(k.patches) > 0 and len(k.lines) == 0  # bars, prior and guide, for the counts
    assert figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_params_come_from_the_store_given():
    store = ParamStoreDict()
    store["loc"] = torch.tensor(7.0)
    figure = plot_posterior(model, guide, num_samples=300, param_store=store)
    line = figure.axes[0].lines[0]
    peak = line.get_xdata()[line.get_ydata().argmax()]
    assert peak == pytest.approx(7.0, abs=0.3)  # Normal(7, 0.5): 300 draws, grid ~0.1 apart
    assert "loc" not in engine.get_param_store()


def test_a_model_without_latent_sites_is_refused():
    def observed_only():
        engine.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))

    with pytest.raises(PosteriorViewError, match="no latent sample site"):
        plot_posterior(observed_only, lambda: None)
