"""The enumerating ELBOs warn, as Pyro's do, when nothing is marked for enumeration (unless
``strict_enumeration_warning=False``), and run on as ``Trace_ELBO`` would."""

import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine.infer import Trace_ELBO, TraceEnum_ELBO, TraceTMC_ELBO, config_enumerate


def _model():
    rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))
    with pyro.plate("counts", 3):
        pyro.sample("count", dist.Poisson(rate), obs=torch.tensor([1.0, 4.0, 2.0]))


def _guide():
    shape = pyro.param("shape", torch.tensor(3.0), constraint=dist.constraints.positive)
    pyro.sample("rate", dist.Gamma(shape, 1.5))


@pytest.fixture(autouse=True)
def _clean_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@pytest.mark.parametrize("Elbo", [TraceEnum_ELBO, TraceTMC_ELBO])
def test_nothing_enumerated_warns_and_gives_trace_elbo(Elbo):
    with pytest.warns(UserWarning, match=f"{Elbo.__name__} found no sample sites configured"):
        pyro.set_rng_seed(3)
        loss = Elbo().loss(_model, _guide)
    pyro.set_rng_seed(3)
    # The same draw of the guide scored the same way: nothing is summed out.
    assert loss == pytest.approx(Trace_ELBO().loss(_model, _guide), rel=1e-6)


@pytest.mark.parametrize("Elbo", [TraceEnum_ELBO, TraceTMC_ELBO])
def test_no_warning_when_strict_is_off_or_a_site_is_enumerated(Elbo):
    @config_enumerate
    def mixture():
        z = pyro.sample("z", dist.Bernoulli(0.3))
        pyro.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.0))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Elbo(strict_enumeration_warning=False).loss(_model, _guide)
        Elbo().loss(mixture, lambda: None)
