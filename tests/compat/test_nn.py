"""``engine.nn`` as Pyro's modules tutorial uses it: PyroModule, PyroParam, PyroSample, the
``PyroModule[...]`` mixins, ``to_pyro_module_``, naming, the param store and state dicts.

Every test is written with the imports a Pyro user has (``import engine as pyro``,
``from engine.nn import PyroModule, PyroParam, PyroSample``).
"""

import io
import threading

import pytest
import torch
from torch import nn
from torch.distributions import constraints

import engine as pyro
import engine.distributions as dist
import engine.poutine as poutine
from engine.errors import ModuleError, ParamError, SupportError
from engine.infer import SVI, Trace_ELBO
from engine.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoNormal
from engine.nn import PyroModule, PyroModuleList, PyroParam, PyroSample, pyro_method
from engine.nn.module import clear, to_pyro_module_
from engine.optim import Adam
from engine.params import ParamStoreDict, param_store_scope


class Linear(nn.Module):
    """The modules tutorial's third-party module (not a PyroModule)."""

    def __init__(self, in_size, out_size):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_size, out_size))
        self.bias = nn.Parameter(torch.randn(out_size))

    def forward(self, input_):
        return self.bias + input_ @ self.weight


def site_types(fn, *args):
    trace = poutine.trace(fn).get_trace(*args)
    return {n: s["type"] for n, s in trace.nodes.items() if s["type"] in ("param", "sample")}


# -- module paths and the PyroModule[...] mixins --------------------------------------------------


def test_pyro_module_paths():
    import engine.nn.module

    assert pyro.nn.PyroModule is PyroModule is engine.nn.module.PyroModule
    assert engine.nn.module.PyroSample is PyroSample
    assert engine.nn.module.PyroParam is PyroParam
    assert engine.nn.module.to_pyro_module_ is to_pyro_module_


def test_mixin_classes_are_cached_and_follow_the_torch_hierarchy():
    assert PyroModule[nn.Linear] is PyroModule[nn.Linear]
    assert issubclass(PyroModule[nn.Linear], nn.Linear)
    assert issubclass(PyroModule[nn.Linear], PyroModule)
    assert PyroModule[nn.Linear].__name__ == "PyroLinear"
    assert PyroModule[nn.Module] is PyroModule
    assert PyroModule[PyroModule[nn.Linear]] is PyroModule[nn.Linear]
    assert issubclass(PyroModule[nn.GRU], PyroModule[nn.RNNBase])
    assert PyroModule[nn.ModuleList] is PyroModuleList


def test_three_ways_to_make_a_pyro_module():
    example_input = torch.randn(100, 5)

    class PyroLinear(Linear, PyroModule):
        pass

    made = [PyroLinear(5, 2), PyroModule[Linear](5, 2), Linear(5, 2)]
    to_pyro_module_(made[2])
    for linear in made:
        assert isinstance(linear, Linear) and isinstance(linear, PyroModule)
        assert linear(example_input).shape == (100, 2)
    assert type(made[2]) is PyroModule[Linear]


def test_a_converted_module_is_traced_and_its_params_go_to_the_store():
    linear = Linear(5, 2)
    with poutine.trace() as tr:
        linear(torch.randn(3, 5))
    assert list(tr.trace.nodes) == [] and len(pyro.get_param_store()) == 0
    to_pyro_module_(linear)
    with poutine.trace() as tr:
        linear(torch.randn(3, 5))
    assert {n: s["type"] for n, s in tr.trace.nodes.items()} == {"bias": "param", "weight": "param"}
    store = pyro.get_param_store()
    assert list(store.keys()) == ["bias", "weight"]
    # The store holds the module's own tensors, not copies.
    assert store["weight"] is linear.weight and store["bias"] is linear.bias


# -- PyroParam ------------------------------------------------------------------------------------


def test_pyro_param_constraints_and_event_dim():
    class Mixture(PyroModule):
        def __init__(self):
            super().__init__()
            self.weights = PyroParam(torch.tensor([0.2, 0.3, 0.5]), constraints.simplex)
            self.scales = PyroParam(torch.ones(10, 2), constraints.positive, event_dim=1)

        def forward(self):
            with pyro.plate("data", 10, subsample_size=4):
                return self.weights, self.scales

    model = Mixture()
    assert sorted(n for n, _ in model.named_parameters()) == [
        "scales_unconstrained",
        "weights_unconstrained",
    ]
    assert torch.allclose(model.weights, torch.tensor([0.2, 0.3, 0.5]))
    _weights, scales = model()
    # event_dim=1: a subsampled plate takes 4 of the 10 rows and leaves each row whole.
    assert scales.shape == (4, 2)
    store = pyro.get_param_store()
    assert store.get_event_dim("scales") == 1 and store.get_event_dim("weights") is None
    assert store["weights"].unconstrained() is model.weights_unconstrained
    # Training moves the unconstrained tensors; the constrained values stay on their supports.
    with torch.no_grad():
        model.weights_unconstrained.add_(torch.tensor([3.0, -2.0, 0.5]))
        model.scales_unconstrained.sub_(10.0)
    assert torch.allclose(model.weights.sum(), torch.tensor(1.0))
    assert bool((model.weights > 0).all()) and bool((model.scales > 0).all())
    assert torch.equal(store["weights"], model.weights)


def test_pyro_param_lazy_init_and_decorator_forms():
    class Model(PyroModule):
        def __init__(self, size):
            super().__init__()
            self.size = size
            self.lazy = PyroParam(lambda: torch.full((size,), 2.0))

        @PyroParam
        def x(self):
            return torch.zeros(self.size)

        @PyroParam(constraint=constraints.positive, event_dim=1)
        def z(self):
            return torch.ones(self.size)

        @PyroSample
        def s(self):
            return dist.Normal(0.0, 1.0)

        @PyroSample
        def t(self):
            return dist.Normal(self.s, self.z).to_event(1)

        @PyroSample
        def u(self):
            return self.t**2

        def forward(self):
            return self.x + self.lazy + self.u

    trace = poutine.trace(Model(3)).get_trace()
    sites = {n: s for n, s in trace.nodes.items() if s["type"] in ("param", "sample")}
    assert {n: s["type"] for n, s in sites.items()} == {
        "x": "param",
        "lazy": "param",
        "s": "sample",
        "z": "param",
        "t": "sample",
        "u": "sample",
    }
    assert sites["u"]["infer"].get("_deterministic")  # a prior returning a tensor
    assert torch.equal(sites["u"]["value"], sites["t"]["value"] ** 2)
    assert torch.equal(sites["lazy"]["value"], torch.full((3,), 2.0))
    assert pyro.get_param_store().get_event_dim("z") == 1


# -- PyroSample -----------------------------------------------------------------------------------


def test_pyro_sample_is_drawn_once_per_outermost_call():
    class Child(PyroModule):
        def __init__(self):
            super().__init__()
            self.z = PyroSample(dist.Normal(0.0, 1.0))

        def forward(self):
            return self.z

    class Parent(PyroModule):
        def __init__(self):
            super().__init__()
            self.child = Child()
            self.w = PyroSample(dist.Normal(0.0, 1.0).expand([2]).to_event(1))

        def forward(self):
            # The child's call is nested in this one: it reuses this call's draws.
            return self.w, self.w, self.child(), self.child.z

    model = Parent()
    trace = poutine.trace(model).get_trace()
    w1, w2, z1, z2 = trace.nodes["_RETURN"]["value"]
    assert w1 is w2 and z1 is z2
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample"] == ["w", "child.z"]
    assert torch.equal(trace.nodes["child.z"]["value"], z1)
    # The next call draws afresh.
    w3, _, z3, _ = model()
    assert not torch.equal(w3, w1) and not torch.equal(z3, z1)
    # Outside any call a read draws from the prior, every time, with no site.
    with poutine.trace() as tr:
        first, second = model.w, model.w
    assert not torch.equal(first, second) and len(tr.trace.nodes) == 0


def test_pyro_method_caches_like_forward():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.z = PyroSample(dist.Normal(0.0, 1.0))

        @pyro_method
        def twice(self):
            return self.z, self.z

    first, second = Model().twice()
    assert first is second


def test_hierarchical_priors_depend_on_the_draws_of_their_call():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.dof = PyroSample(dist.Gamma(3.0, 1.0))
            self.loc = PyroSample(dist.Normal(0.0, 1.0))
            self.scale = PyroSample(lambda self: dist.InverseGamma(self.dof, 1.0))
            self.x = PyroSample(lambda self: dist.Normal(self.loc, self.scale))

        def forward(self):
            return self.x

    trace = poutine.trace(Model()).get_trace()
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample"] == [
        "loc",
        "dof",
        "scale",
        "x",
    ]
    x_site = trace.nodes["x"]
    assert torch.equal(x_site["fn"].loc, trace.nodes["loc"]["value"])
    assert torch.equal(x_site["fn"].scale, trace.nodes["scale"]["value"])
    assert torch.equal(trace.nodes["scale"]["fn"].concentration, trace.nodes["dof"]["value"])


def test_where_a_pyro_sample_is_first_read_decides_its_plates():
    class NormalModel(PyroModule):
        def __init__(self):
            super().__init__()
            self.loc = PyroSample(dist.Normal(0.0, 1.0))

    class GlobalModel(NormalModel):
        def forward(self, data):
            loc = self.loc
            with pyro.plate("data", len(data)):
                pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)
            return loc

    class LocalModel(NormalModel):
        def forward(self, data):
            with pyro.plate("data", len(data)):
                loc = self.loc
                pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)
            return loc

    data = torch.randn(10)
    assert GlobalModel()(data).shape == ()
    assert LocalModel()(data).shape == (10,)


def test_draws_are_cached_per_thread():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.z = PyroSample(dist.Normal(0.0, 1.0).expand([1000]).to_event(1))

        def forward(self, inner=False):
            mine = self.z
            if inner:
                return mine
            # Another thread calls the same module while this call is under way: it must make
            # its own draw, not read this call's cache.
            other = []
            thread = threading.Thread(target=lambda: other.append(self(inner=True)))
            thread.start()
            thread.join()
            return mine, other[0]

    mine, other = Model()()
    assert not torch.equal(mine, other)


# -- naming ---------------------------------------------------------------------------------------


def test_nested_modules_are_named_by_attribute_path():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.x = nn.Parameter(torch.tensor(0.0))
            self.y = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
            self.m = nn.Module()
            self.m.u = nn.Parameter(torch.tensor(2.0))
            self.p = PyroModule()
            self.p.v = nn.Parameter(torch.tensor(3.0))
            self.p.w = PyroParam(torch.tensor(4.0), constraint=constraints.positive)
            self.p.q = PyroModule()
            self.p.q.s = PyroSample(dist.Normal(0.0, 1.0))

        def forward(self):
            return self.x, self.y, self.m, self.p.v, self.p.w, self.p.q.s

    model = Model()
    assert {n for n, _ in model.named_parameters()} == {
        "x",
        "y_unconstrained",
        "m.u",
        "p.v",
        "p.w_unconstrained",
    }
    expected = {"x", "y", "m$$$u", "p.v", "p.w"}
    with poutine.trace(param_only=True) as capture:
        model()
    assert {n for n, s in capture.trace.nodes.items() if s["type"] == "param"} == expected
    assert set(pyro.get_param_store().keys()) == expected
    assert site_types(model)["p.q.s"] == "sample"
    assert {n for n, _ in model.named_pyro_params()} == {"x", "y", "m.u", "p.v", "p.w"}


def test_a_named_root_prefixes_every_name():
    root = PyroModule("net")
    root.layer = PyroModule[nn.Linear](2, 1)
    root.layer.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 2]).to_event(2))
    assert site_types(pyro_method(lambda self: self.layer(torch.ones(2))), root) == {
        "net.layer.weight": "sample",
        "net.layer.bias": "param",
    }


def test_sequential_of_pyro_modules():
    model = PyroModule[nn.Sequential](
        PyroModule[nn.Linear](4, 3),
        PyroModule[nn.Sigmoid](),
        PyroModule[nn.Linear](3, 2),
    )
    assert isinstance(model, nn.Sequential) and isinstance(model, PyroModule)
    assert type(model).__name__ == "PyroSequential"
    assert [m._pyro_name for m in model] == ["0", "1", "2"]
    model[0].weight = PyroSample(dist.Normal(0.0, 1.0).expand([3, 4]).to_event(2))
    assert site_types(model, torch.randn(5, 4)) == {
        "0.weight": "sample",
        "0.bias": "param",
        "2.weight": "param",
        "2.bias": "param",
    }
    guide = AutoDiagonalNormal(model)
    assert guide(torch.randn(5, 4))["0.weight"].shape == (3, 4)


def test_to_pyro_module_converts_a_tree_and_makes_it_bayesian():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1))
    output = model(torch.ones(2, 3))
    to_pyro_module_(model)
    assert isinstance(model, PyroModule[nn.Sequential])
    assert isinstance(model[0], PyroModule[nn.Linear])
    assert torch.equal(model(torch.ones(2, 3)), output)  # same parameters, same function
    for m in model.modules():
        for name, value in list(m.named_parameters(recurse=False)):
            prior = dist.Normal(0.0, 1.0).expand(value.shape).to_event(value.dim())
            setattr(m, name, PyroSample(prior=prior))
    assert list(model.parameters()) == []
    x, y = torch.randn(10, 3), torch.randn(10, 1)

    def regression(x, y):
        mean = model(x)  # outside the plate, so that the weights are drawn once, not per row
        with pyro.plate("data", 10):
            pyro.sample("obs", dist.Normal(mean, 1.0).to_event(1), obs=y)

    guide = AutoNormal(regression)
    svi = SVI(regression, guide, Adam({"lr": 0.01}), Trace_ELBO())
    assert torch.isfinite(torch.tensor(svi.step(x, y)))
    assert "AutoNormal.locs.2.weight" in pyro.get_param_store()


def test_a_gru_with_sampled_weights_draws_new_weights_each_call():
    gru = nn.GRU(2, 3)
    inputs = torch.randn(5, 4, 2)
    to_pyro_module_(gru)
    for name, value in list(gru.named_parameters(recurse=False)):
        prior = dist.Normal(0.0, 1.0).expand(value.shape).to_event(value.dim())
        setattr(gru, name, PyroSample(prior=prior))
    first, _ = gru(inputs)
    second, _ = gru(inputs)
    assert first.shape == (5, 4, 3) and not torch.allclose(first, second)
    assert "weight_ih_l0" in site_types(gru, inputs)


# -- the param store, state_dict and pickling -----------------------------------------------------


class Scaled(PyroModule):
    def __init__(self):
        super().__init__()
        self.linear = PyroModule[nn.Linear](2, 1)
        self.scale = PyroParam(torch.tensor(1.0), constraints.positive)

    def forward(self, x, y=None):
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mean, self.scale), obs=y)
        return mean


def fit_mle(model, x, y, steps=200):
    """Maximum likelihood with SVI and an empty guide: every param of the model trains."""
    svi = SVI(model, lambda x, y: None, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(steps):
        svi.step(x, y)


def regression_data():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50, 2, generator=generator)
    return x, x @ torch.tensor([2.0, -1.0]) + 0.5 + 0.3 * torch.randn(50, generator=generator)


def test_svi_trains_the_module_through_the_param_store():
    x, y = regression_data()
    model = Scaled()
    fit_mle(model, x, y, steps=400)
    store = pyro.get_param_store()
    assert sorted(store.keys()) == ["linear.bias", "linear.weight", "scale"]
    assert store["linear.weight"] is model.linear.weight
    # Least squares would give about (2, -1), 0.5 and a residual scale near 0.3.
    assert torch.allclose(model.linear.weight, torch.tensor([[2.0, -1.0]]), atol=0.15)
    assert abs(model.scale.item() - 0.3) < 0.1


def test_a_torch_optimizer_over_module_parameters_trains_the_store_too():
    """The Bayesian regression tutorial's first part: PyroModule[nn.Linear] trained by torch."""
    x, y = regression_data()
    linear = PyroModule[nn.Linear](2, 1)
    optim = torch.optim.Adam(linear.parameters(), lr=0.05)
    for _ in range(300):
        loss = ((linear(x).squeeze(-1) - y) ** 2).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert torch.allclose(linear.weight, torch.tensor([[2.0, -1.0]]), atol=0.15)
    assert torch.equal(pyro.param("weight"), linear.weight)


def test_state_dict_round_trip():
    x, y = regression_data()
    model = Scaled()
    fit_mle(model, x, y)
    state = model.state_dict()
    assert sorted(state) == ["linear.bias", "linear.weight", "scale_unconstrained"]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    # A fresh build of the model while the store still holds the old one's params: the loaded
    # values are what the user asked for, so they win at the next call.
    with torch.no_grad():
        pyro.param("scale").unconstrained().fill_(5.0)
    fresh = Scaled()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.allclose(fresh(x), model(x))
    assert torch.equal(pyro.param("scale"), fresh.scale)
    assert torch.allclose(fresh.scale, model.scale)
    assert pyro.get_param_store()["linear.weight"] is fresh.linear.weight


def test_param_store_save_and_load_give_a_new_module_the_saved_values(tmp_path):
    x, y = regression_data()
    model = Scaled()
    fit_mle(model, x, y)
    path = tmp_path / "params.pt"
    pyro.get_param_store().save(path)
    pyro.clear_param_store()
    pyro.get_param_store().load(path)
    fresh = Scaled()
    fresh(x)  # the store wins: a new module takes the loaded values
    assert torch.allclose(fresh.scale, model.scale)
    assert torch.allclose(fresh.linear.weight, model.linear.weight)
    assert {n for n, _ in fresh.named_parameters()} == {n for n, _ in model.named_parameters()}


def test_torch_save_of_a_whole_module():
    model = PyroModule[nn.Linear](2, 3)
    model.bias = PyroParam(torch.ones(3), constraints.positive)
    model(torch.ones(2))  # the params are in the store now
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    pyro.clear_param_store()
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is PyroModule[nn.Linear]
    assert torch.equal(loaded.weight, model.weight) and torch.allclose(loaded.bias, model.bias)
    assert torch.allclose(loaded(torch.ones(2)), model(torch.ones(2)))


def test_the_active_param_store_is_used_and_two_stores_never_share_a_tensor():
    x, y = regression_data()
    model = Scaled()
    first, second = ParamStoreDict(), ParamStoreDict()
    with param_store_scope(first):
        fit_mle(model, x, y, steps=50)
    assert len(pyro.get_param_store()) == 0 and "scale" in first
    trained = first["scale"].item()
    with param_store_scope(second):
        model(x)
    assert second["scale"].unconstrained() is not first["scale"].unconstrained()
    with param_store_scope(second):
        fit_mle(model, x, y, steps=50)
    assert first["scale"].item() == trained  # training in the second store left the first alone
    with param_store_scope(first):
        model(x)
    assert model.scale.item() == trained  # back in the first store, the module reads its values


def test_a_plain_parameter_goes_to_the_store_and_a_frozen_one_stays_out():
    model = PyroModule()
    model.loc = nn.Parameter(torch.zeros(2))
    model.frozen = nn.Parameter(torch.ones(2), requires_grad=False)

    @pyro_method
    def read(self):
        return self.loc + self.frozen

    read(model)
    assert list(pyro.get_param_store().keys()) == ["loc"]
    assert pyro.get_param_store()["loc"] is model.loc


def test_autoguide_over_a_module_with_params_and_samples():
    """PyroSample weights get a guide; a PyroParam of the model is learnt alongside (MLE)."""
    x, y = regression_data()
    model = Scaled()
    model.linear.weight = PyroSample(dist.Normal(0.0, 10.0).expand([1, 2]).to_event(2))
    guide = AutoDelta(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(400):
        svi.step(x, y)
    assert sorted(pyro.get_param_store().keys()) == [
        "AutoDelta.linear.weight",
        "linear.bias",
        "scale",
    ]
    assert torch.allclose(
        pyro.param("AutoDelta.linear.weight"), torch.tensor([[2.0, -1.0]]), atol=0.15
    )
    assert sorted(guide.state_dict()) == ["linear.weight_unconstrained"]


# -- deleting and overwriting ---------------------------------------------------------------------


def test_deleting_and_overwriting_attributes():
    model = Scaled()
    model.extra = PyroModule[nn.Linear](2, 2)
    model.extra2 = PyroModule[nn.Linear](2, 2)

    @pyro_method
    def touch(self):
        return self.scale, self.linear.weight, self.extra.weight, self.extra2.weight

    touch(model)
    store = pyro.get_param_store()
    assert {"scale", "extra.weight", "extra2.weight"} <= set(store.keys())
    # del removes the attribute and its param, and a submodule's params (not its siblings').
    del model.scale
    del model.extra
    assert "scale" not in store and not hasattr(model, "scale")
    assert "extra.weight" not in store and "extra2.weight" in store
    # A deleted PyroParam can be declared afresh.
    model.scale = PyroParam(torch.tensor(0.1), constraints.positive)
    assert abs(model.scale.item() - 0.1) < 1e-6
    # Assigning a tensor to a PyroParam sets its value in place: the store sees it.
    touch_scale = pyro_method(lambda self: self.scale)
    touch_scale(model)
    model.scale = torch.tensor(0.7)
    assert abs(store["scale"].item() - 0.7) < 1e-6
    with pytest.raises(SupportError, match=r"param 'scale'"):
        model.scale = torch.tensor(-0.7)
    assert abs(store["scale"].item() - 0.7) < 1e-6
    # A PyroSample replaces a parameter, and a PyroParam replaces a PyroSample.
    model.linear.bias = PyroSample(dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    assert "bias" not in dict(model.linear.named_parameters()) and "linear.bias" not in store
    model.linear.bias = PyroParam(torch.zeros(1))
    assert "bias_unconstrained" in dict(model.linear.named_parameters())
    assert site_types(model, torch.ones(3, 2))["linear.bias"] == "param"
    del model.linear.bias
    assert not hasattr(model.linear, "bias")
    # A plain value replaces a PyroSample.
    model.noise = PyroSample(dist.Normal(0.0, 1.0))
    model.noise = 3.0
    assert model.noise == 3.0 and "noise" not in model._pyro_samples


def test_clear_removes_module_and_store_params():
    model = Scaled()
    model(torch.ones(3, 2))
    clear(model)
    assert list(model.parameters()) == [] and len(pyro.get_param_store()) == 0


# -- errors ---------------------------------------------------------------------------------------


def test_pyro_sample_of_something_that_is_not_a_prior():
    with pytest.raises(ModuleError, match=r"PyroSample needs a prior.*got Tensor") as info:
        PyroSample(torch.tensor(1.0))
    assert isinstance(info.value, TypeError)
    with pytest.raises(ModuleError, match=r"exactly one, the module"):
        PyroSample(lambda: dist.Normal(0.0, 1.0))

    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.inner = PyroModule()
            self.inner.z = PyroSample(lambda self: "a string")

        def forward(self):
            return self.inner.z

    with pytest.raises(ModuleError, match=r"PyroSample 'inner.z'.*returned str"):
        Model()()


def test_pyro_param_errors_name_the_param():
    model = PyroModule()
    model.layer = PyroModule()
    with pytest.raises(SupportError, match=r"param 'layer.rate'.*positive"):
        model.layer.rate = PyroParam(torch.tensor([-1.0, 2.0]), constraints.positive)
    assert "rate" not in model.layer._pyro_params  # nothing half-declared is left behind
    with pytest.raises(ModuleError, match=r"PyroParam 'layer.rate' has no initial value"):
        model.layer.rate = PyroParam()
    with pytest.raises(ParamError, match=r"constraint must be a torch.distributions constraint"):
        model.layer.rate = PyroParam(torch.ones(1), constraint="positive")


def test_store_entries_that_do_not_fit_the_module_are_refused():
    pyro.param("linear.weight", torch.zeros(3, 3))
    with pytest.raises(ParamError, match=r"'linear.weight'.*holds shape \(3, 3\).*\(1, 2\)"):
        Scaled()(torch.ones(4, 2))
    pyro.clear_param_store()
    pyro.param("scale", torch.tensor(1.0))  # real, where the module declares positive
    with pytest.raises(
        ParamError, match=r"'scale' already exists with constraint constraints.real"
    ):
        Scaled()(torch.ones(4, 2))


def test_a_tree_whose_submodules_already_ran_cannot_be_renamed():
    inner = PyroModule()
    inner.layer = PyroModule[nn.Linear](2, 1)
    inner.layer(torch.ones(2))  # its params are now in the store as 'layer.weight', ...
    outer = PyroModule()
    with pytest.raises(ModuleError, match=r"'inner.layer' \(PyroLinear\) was already called"):
        outer.inner = inner
    assert inner.layer._pyro_name == "layer"  # left as it was
    # A module that ran on its own but has no PyroModule submodules may still join (as in Pyro).
    lone = PyroModule[nn.Linear](2, 1)
    lone(torch.ones(2))
    outer.lone = lone
    assert site_types(pyro_method(lambda self: self.lone(torch.ones(2))), outer) == {
        "lone.weight": "param",
        "lone.bias": "param",
    }


def test_mixin_and_conversion_errors():
    with pytest.raises(ModuleError, match=r"PyroModule\[...\] takes a torch.nn.Module subclass"):
        PyroModule[nn.Linear(2, 3)]
    with pytest.raises(ModuleError, match=r"to_pyro_module_ takes an nn.Module"):
        to_pyro_module_(torch.zeros(2))
