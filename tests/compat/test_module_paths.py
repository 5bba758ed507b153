"""The module paths Pyro users import from (``pyro.util``, ``pyro.poutine.util``, the
``pyro.poutine.<name>_messenger`` modules, ``pyro.infer.mcmc.api``/``.util``,
``pyro.distributions.util``, ``pyro.distributions.testing.fakes``, ``pyro.optim.multi``): every
import line of Pyro's tutorials and examples works after ``import engine as pyro``, and each name
does what Pyro documents, used the way those tutorials use it."""

import functools
import importlib
import math
import queue
import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
import engine.poutine as poutine
from engine.distributions import constraints

# --- every path imports, every name is there ------------------------------------------------------

PATHS = {
    "util": [
        "set_rng_seed",
        "get_rng_state",
        "set_rng_state",
        "ignore_jit_warnings",
        "jit_iter",
        "optional",
        "warn_if_nan",
        "warn_if_inf",
        "torch_isnan",
        "torch_isinf",
        "ExperimentalWarning",
        "ignore_experimental_warning",
        "timed",
        "torch_float",
    ],
    "poutine.util": [
        "prune_subsample_sites",
        "site_is_subsample",
        "site_is_factor",
        "enum_extend",
        "mc_extend",
        "discrete_escape",
        "all_escape",
    ],
    "poutine.messenger": ["Messenger"],
    "poutine.runtime": ["effectful", "apply_stack", "NonlocalExit", "am_i_wrapped"],
    "poutine.trace_messenger": ["TraceMessenger", "TraceHandler"],
    "poutine.replay_messenger": ["ReplayMessenger"],
    "poutine.block_messenger": ["BlockMessenger"],
    "poutine.condition_messenger": ["ConditionMessenger"],
    "poutine.do_messenger": ["DoMessenger"],
    "poutine.scale_messenger": ["ScaleMessenger"],
    "poutine.mask_messenger": ["MaskMessenger"],
    "poutine.seed_messenger": ["SeedMessenger"],
    "poutine.substitute_messenger": ["SubstituteMessenger"],
    "poutine.uncondition_messenger": ["UnconditionMessenger"],
    "poutine.lift_messenger": ["LiftMessenger"],
    "poutine.enum_messenger": ["EnumMessenger"],
    "poutine.markov_messenger": ["MarkovMessenger"],
    "poutine.plate_messenger": ["PlateMessenger", "block_plate"],
    "poutine.indep_messenger": ["CondIndepStackFrame"],
    "poutine.subsample_messenger": ["SubsampleMessenger"],
    "poutine.equalize_messenger": ["EqualizeMessenger"],
    "poutine.broadcast_messenger": ["BroadcastMessenger"],
    "poutine.escape_messenger": ["EscapeMessenger"],
    "poutine.infer_config_messenger": ["InferConfigMessenger"],
    "infer.mcmc.api": ["MCMC"],
    "infer.mcmc.util": [
        "initialize_model",
        "summary",
        "print_summary",
        "diagnostics",
        "select_samples",
        "predictive",
    ],
    "distributions.util": [
        "broadcast_shape",
        "logsumexp",
        "sum_rightmost",
        "sum_leftmost",
        "scale_and_mask",
        "is_identically_zero",
        "is_identically_one",
        "copy_docs_from",
        "scalar_like",
        "eye_like",
    ],
    "distributions.testing.fakes": [
        "NonreparameterizedBeta",
        "NonreparameterizedGamma",
        "NonreparameterizedDirichlet",
        "NonreparameterizedNormal",
    ],
    "optim.multi": [
        "MultiOptimizer",
        "PyroMultiOptimizer",
        "TorchMultiOptimizer",
        "MixedMultiOptimizer",
        "Newton",
    ],
    "ops.newton": ["newton_step"],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_path_imports_and_is_an_attribute_as_in_pyro(path):
    module = importlib.import_module(f"engine.{path}")
    missing = [name for name in PATHS[path] if not hasattr(module, name)]
    assert not missing, f"engine.{path} lacks {missing}"
    # ``pyro.util.set_rng_seed(0)``-style attribute access works without an import of the path.
    assert functools.reduce(getattr, path.split("."), pyro) is module


@pytest.mark.parametrize(
    ("path", "pyro_name", "handler"),
    [
        ("trace_messenger", "TraceMessenger", "trace"),
        ("replay_messenger", "ReplayMessenger", "replay"),
        ("block_messenger", "BlockMessenger", "block"),
        ("condition_messenger", "ConditionMessenger", "condition"),
        ("do_messenger", "DoMessenger", "do"),
        ("scale_messenger", "ScaleMessenger", "scale"),
        ("mask_messenger", "MaskMessenger", "mask"),
        ("seed_messenger", "SeedMessenger", "seed"),
        ("substitute_messenger", "SubstituteMessenger", "substitute"),
        ("uncondition_messenger", "UnconditionMessenger", "uncondition"),
        ("escape_messenger", "EscapeMessenger", "escape"),
        ("infer_config_messenger", "InferConfigMessenger", "infer_config"),
        ("broadcast_messenger", "BroadcastMessenger", "broadcast"),
    ],
)
def test_each_messenger_module_holds_the_class_its_handler_uses(path, pyro_name, handler):
    cls = getattr(importlib.import_module(f"engine.poutine.{path}"), pyro_name)
    kwargs = {
        "trace": {},
        "replay": {"trace": poutine.Trace()},
        "block": {},
        "condition": {"data": {}},
        "do": {"data": {}},
        "scale": {"scale": 2.0},
        "mask": {"mask": True},
        "seed": {"rng_seed": 0},
        "substitute": {"data": {}},
        "uncondition": {},
        "escape": {"escape_fn": lambda msg: False},
        "infer_config": {"config_fn": lambda msg: {}},
        "broadcast": {},
    }[handler]
    assert type(getattr(poutine, handler)(**kwargs)) is cls


# --- pyro.util ----------------------------------------------------------------------------------


def test_set_rng_seed_makes_draws_repeat():
    pyro.util.set_rng_seed(101)
    first = pyro.sample("x", dist.Normal(torch.zeros(3), 1.0))
    pyro.util.set_rng_seed(101)
    assert torch.equal(pyro.sample("x", dist.Normal(torch.zeros(3), 1.0)), first)


def test_warn_if_nan_points_at_the_callers_line_and_checks_gradients():
    from engine.util import warn_if_nan

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = warn_if_nan(x * 2, "doubled")
        assert [str(w.message) for w in caught] == []  # finite: no warning yet
        (y * torch.tensor([float("nan"), 1.0])).sum().backward()
    assert [str(w.message) for w in caught] == ["Encountered NaN: backward doubled"]
    assert caught[0].filename == __file__

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_nan(float("nan")) != warn_if_nan(float("nan"))  # returned unchanged
    assert [str(w.message) for w in caught] == ["Encountered NaN."] * 2


def test_warn_if_inf_respects_the_allowed_sign():
    from engine.util import warn_if_inf

    value = torch.tensor([math.inf, -math.inf])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_inf(value, "x", allow_posinf=True) is value
        warn_if_inf(value, "y", allow_neginf=True)
        warn_if_inf(torch.zeros(2), "z")
    assert [str(w.message) for w in caught] == ["Encountered -inf: x", "Encountered +inf: y"]


def _branchy(x):
    return x * 2 if x.sum() > 0 else x  # Python control flow on a tensor: a tracer warning


def _tracer_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.trace(fn, torch.ones(2))
    return [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]


def test_ignore_jit_warnings_silences_tracer_warnings_only_while_tracing():
    from engine.util import ignore_jit_warnings

    def quiet(x):
        with ignore_jit_warnings():
            return _branchy(x)

    def filtered(x):
        with ignore_jit_warnings(["Converting a tensor to a Python boolean"]):
            return _branchy(x)

    def other_filter(x):
        with ignore_jit_warnings([("Iterating over", torch.jit.TracerWarning)]):
            return _branchy(x)

    assert _tracer_warnings(_branchy)  # the warning exists
    assert not _tracer_warnings(quiet) and not _tracer_warnings(filtered)
    assert _tracer_warnings(other_filter)  # a filter for another message leaves it
    with warnings.catch_warnings(record=True) as caught:  # not tracing: nothing is filtered
        warnings.simplefilter("always")
        with ignore_jit_warnings():
            warnings.warn("plain", torch.jit.TracerWarning, stacklevel=1)
    assert len(caught) == 1


def test_optional_enters_the_context_only_when_asked():
    from engine.util import optional

    def model(batched):
        with optional(pyro.plate("data", 3), batched):
            return pyro.sample("x", dist.Normal(0.0, 1.0))

    assert model(True).shape == (3,) and model(False).shape == ()


def test_ignore_experimental_warning_and_small_helpers():
    from engine.util import (
        ExperimentalWarning,
        ignore_experimental_warning,
        jit_iter,
        timed,
        torch_float,
        torch_isinf,
        torch_isnan,
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ignore_experimental_warning():
            warnings.warn("new", ExperimentalWarning, stacklevel=1)
        warnings.warn("new", ExperimentalWarning, stacklevel=1)
    assert len(caught) == 1
    assert [t.tolist() for t in jit_iter(torch.tensor([[1, 2], [3, 4]]))] == [[1, 2], [3, 4]]
    with timed() as t:
        sum(range(1000))
    assert t.end >= t.start and t.elapsed == t.end - t.start
    assert torch_float(3) == 3.0 and torch_float(torch.tensor(3)).dtype == torch.float32
    assert torch_isnan(math.nan) and not torch_isnan(1.0) and torch_isinf(math.inf)
    assert bool(torch_isinf(torch.tensor([1.0, -math.inf])))


# --- pyro.poutine.util, poutine.queue, NonlocalExit ---------------------------------------------


def test_prune_subsample_sites_as_the_bayesian_regression_tutorial_uses_it():
    from engine.poutine.util import prune_subsample_sites, site_is_factor, site_is_subsample

    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        pyro.factor("prior_boost", torch.tensor(-0.5))
        with pyro.plate("data", len(x), subsample_size=4) as idx:
            pyro.sample("obs", dist.Normal(w * x[idx], 1.0), obs=torch.zeros(4))

    model_trace = poutine.trace(model).get_trace(torch.arange(10.0))
    pruned = prune_subsample_sites(model_trace)
    assert "data" in model_trace.nodes and "data" not in pruned.nodes  # a copy: trace untouched
    assert pruned.stochastic_nodes == ["w"]
    assert site_is_subsample(model_trace.nodes["data"])
    assert not site_is_subsample(model_trace.nodes["w"])
    assert site_is_factor(model_trace.nodes["prior_boost"])
    assert not site_is_factor(model_trace.nodes["obs"])


def rsa_style_model():
    a = pyro.sample("a", dist.Bernoulli(0.3))
    b = pyro.sample("b", dist.Categorical(torch.tensor([0.2, 0.5, 0.3])))
    pyro.sample("obs", dist.Normal(a + b, 1.0), obs=torch.tensor(2.0))
    return a + b


def test_sequential_enumeration_as_the_rsa_tutorials_search_does():
    # search_inference.py of Pyro's RSA tutorials, written here the same way.
    from engine.distributions.util import logsumexp
    from engine.infer.abstract_infer import TracePosterior

    class Search(TracePosterior):
        def __init__(self, model, max_tries=int(1e6), **kwargs):
            self.model = model
            self.max_tries = max_tries
            super().__init__(**kwargs)

        def _traces(self, *args, **kwargs):
            q = queue.Queue()
            q.put(poutine.Trace())
            p = poutine.trace(poutine.queue(self.model, queue=q, max_tries=self.max_tries))
            while not q.empty():
                tr = p.get_trace(*args, **kwargs)
                yield tr, tr.log_prob_sum()

    posterior = Search(rsa_style_model).run()
    assert len(posterior.exec_traces) == 6  # every (a, b) once
    log_weights = torch.stack(posterior.log_weights)
    probs = (log_weights - logsumexp(log_weights, dim=-1)).exp()
    found = {
        (int(tr.nodes["a"]["value"]), int(tr.nodes["b"]["value"])): float(p)
        for tr, p in zip(posterior.exec_traces, probs, strict=True)
    }
    # The exact posterior, by hand: p(a) p(b) N(2 | a + b, 1), normalised.
    joint = {
        (a, b): [0.7, 0.3][a] * [0.2, 0.5, 0.3][b] * math.exp(-0.5 * (2 - a - b) ** 2)
        for a in (0, 1)
        for b in (0, 1, 2)
    }
    total = sum(joint.values())
    for key, value in joint.items():
        assert found[key] == pytest.approx(value / total, rel=1e-5)


def test_best_first_search_with_escape_replay_and_enum_extend():
    # The pqueue of search_inference.py: escape at a new site, extend, retry.
    from engine.poutine.runtime import NonlocalExit

    def pqueue(fn, queue):
        def sample_escape(tr, site):
            return site["name"] not in tr and site["type"] == "sample" and not site["is_observed"]

        def _fn(*args, **kwargs):
            for _ in range(100):
                *_, next_trace = queue.get()
                try:
                    ftr = poutine.trace(
                        poutine.escape(
                            poutine.replay(fn, next_trace),
                            functools.partial(sample_escape, next_trace),
                        )
                    )
                    return ftr(*args, **kwargs)
                except NonlocalExit as site_container:
                    site_container.reset_stack()
                    for tr in poutine.util.enum_extend(ftr.trace.copy(), site_container.site):
                        queue.put((-tr.log_prob_sum().item(), id(tr), tr))
            raise AssertionError("no complete run")

        return _fn

    q = queue.PriorityQueue()
    q.put((0.0, 0, poutine.Trace()))
    q_fn = pqueue(rsa_style_model, q)
    runs = [poutine.trace(q_fn).get_trace() for _ in range(6)]
    pairs = {(int(tr.nodes["a"]["value"]), int(tr.nodes["b"]["value"])) for tr in runs}
    assert len(pairs) == 6
    # The outer trace forgot the aborted runs' sites (reset_stack): one node per site.
    assert all(list(tr.nodes) == ["_INPUT", "a", "b", "obs", "_RETURN"] for tr in runs)


def test_queue_needs_a_nonempty_queue_and_stops_after_max_tries():
    q = queue.Queue()
    with pytest.raises(ValueError, match="queue of partial traces is empty"):
        poutine.queue(rsa_style_model, queue=q)()
    q.put(poutine.Trace())
    with pytest.raises(ValueError, match=r"max_tries \(1\) exceeded"):
        poutine.queue(rsa_style_model, queue=q, max_tries=1)()


def test_mc_extend_and_the_escape_predicates():
    from engine.poutine.util import all_escape, discrete_escape, mc_extend
    from engine.runtime import new_message

    msg = new_message("sample", "x", dist.Normal(10.0, 1e-3))
    extended = mc_extend(poutine.Trace(), msg, num_samples=4)
    assert [round(float(tr.nodes["x"]["value"])) for tr in extended] == [10] * 4
    assert discrete_escape(poutine.Trace(), new_message("sample", "z", dist.Bernoulli(0.5)))
    observed = new_message("sample", "z", dist.Bernoulli(0.5), is_observed=True)
    assert not discrete_escape(poutine.Trace(), observed) and not all_escape(
        poutine.Trace(), observed
    )
    assert not all_escape(extended[0], msg)  # already in the trace


# --- the messengers, as the effect-handlers tutorial uses them ----------------------------------


def scale(guess):
    weight = pyro.sample("weight", dist.Normal(guess, 1.0))
    return pyro.sample("measurement", dist.Normal(weight, 0.75))


def exact_log_joint():
    return (
        dist.Normal(8.5, 1.0).log_prob(torch.tensor(8.23))
        + dist.Normal(8.23, 0.75).log_prob(torch.tensor(9.5))
    ).item()


def test_the_effect_handler_tutorials_log_joint_with_trace_and_condition_messengers():
    from engine.poutine.condition_messenger import ConditionMessenger
    from engine.poutine.trace_messenger import TraceMessenger

    def make_log_joint_2(model):
        def _log_joint(cond_data, *args, **kwargs):
            with TraceMessenger() as tracer, ConditionMessenger(data=cond_data):
                model(*args, **kwargs)
            logp = 0.0
            for name, node in tracer.trace.nodes.items():
                if node["type"] == "sample":
                    if node["is_observed"]:
                        assert torch.equal(torch.as_tensor(node["value"]), cond_data[name])
                    logp = logp + node["fn"].log_prob(node["value"]).sum()
            return logp

        return _log_joint

    data = {"measurement": torch.tensor(9.5), "weight": torch.tensor(8.23)}
    assert make_log_joint_2(scale)(data, 8.5).item() == pytest.approx(exact_log_joint())


def test_a_messenger_subclassed_from_poutine_messenger():
    class LogJointMessenger2(poutine.messenger.Messenger):
        def __init__(self, cond_data):
            self.data = cond_data

        def __enter__(self):
            self.logp = torch.tensor(0.0)
            return super().__enter__()

        def _pyro_sample(self, msg):
            if msg["name"] in self.data:
                msg["value"] = self.data[msg["name"]]
                msg["done"] = True

        def _pyro_post_sample(self, msg):
            assert msg["done"]
            self.logp = self.logp + (msg["scale"] * msg["fn"].log_prob(msg["value"])).sum()

    data = {"measurement": torch.tensor(9.5), "weight": torch.tensor(8.23)}
    with LogJointMessenger2(cond_data=data) as m:
        scale(8.5)
    assert m.logp.item() == pytest.approx(exact_log_joint())


# --- pyro.distributions.util ----------------------------------------------------------------------


def test_broadcast_shape_as_the_tensor_shapes_tutorial_uses_it():
    from engine.distributions.util import broadcast_shape

    x, y = torch.zeros(3, 1), torch.zeros(4)
    assert broadcast_shape(x.shape, y.shape) == (3, 4) == (x + y).shape
    assert broadcast_shape((5, 1, 2), (3, 1), ()) == (5, 3, 2)
    with pytest.raises(ValueError, match=r"\(3,\), \(4,\)"):
        broadcast_shape((3,), (4,))
    assert broadcast_shape((2,), (3, 2), strict=True) == (3, 2)
    with pytest.raises(ValueError, match="strictly"):
        broadcast_shape((1,), (3,), strict=True)


def test_sums_over_leftmost_and_rightmost_dims():
    from engine.distributions.util import sum_leftmost, sum_rightmost

    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(sum_rightmost(x, 1), x.sum(-1))
    assert torch.equal(sum_rightmost(x, -1), x.sum((-1, -2)))  # keep the leftmost dim
    assert torch.equal(sum_leftmost(x, 2), x.sum((0, 1)))
    assert torch.equal(sum_leftmost(x, -2), x.sum(0))  # keep the two rightmost dims
    assert sum_leftmost(x, math.inf) == sum_rightmost(x, math.inf) == x.sum()
    assert sum_rightmost(x, 0) is x and sum_leftmost(2.5, 3) == 2.5


def test_logsumexp_scale_and_mask_and_the_small_constructors():
    from engine.distributions.util import eye_like, logsumexp, scalar_like, scale_and_mask

    values = torch.tensor([[1.0, 2.0, 3.0], [-math.inf, -math.inf, -math.inf]])
    expected = [math.log(math.exp(1) + math.exp(2) + math.exp(3)), -math.inf]
    assert logsumexp(values).tolist() == pytest.approx(expected)
    assert logsumexp(values, dim=0, keepdim=True).shape == (1, 3)
    masked = scale_and_mask(torch.tensor([1.0, -math.inf]), 2.0, torch.tensor([True, False]))
    assert masked.tolist() == [2.0, 0.0]
    like = torch.zeros(2, dtype=torch.float64)
    assert scalar_like(like, 3).dtype == torch.float64 and scalar_like(like, 3).shape == ()
    assert torch.equal(eye_like(like, 2), torch.eye(2, dtype=torch.float64))


def test_copy_docs_from_fills_missing_docstrings_only():
    from engine.distributions.util import copy_docs_from

    class Source:
        def log_prob(self, value):
            """Log density of value."""

        @property
        def mean(self):
            """The mean."""

        def entropy(self):
            """Entropy."""

    @copy_docs_from(Source)
    class Pointer(Source):
        def log_prob(self, value):
            return value

        @property
        def mean(self):
            return 0.0

        def entropy(self):
            """My own."""

    @copy_docs_from(Source, full_text=True)
    class Full(Source):
        def log_prob(self, value):
            return value

    assert Pointer.log_prob.__doc__ == f"See :meth:`{__name__}.{Source.__qualname__}.log_prob`"
    assert Pointer.mean.__doc__.startswith("See :meth:") and Pointer().mean == 0.0
    assert Pointer.entropy.__doc__ == "My own."
    assert Full.log_prob.__doc__ == "Log density of value."


# --- pyro.distributions.testing.fakes -------------------------------------------------------------


def test_nonreparameterized_fakes_draw_without_gradients():
    from engine.distributions.testing.fakes import (
        NonreparameterizedBeta,
        NonreparameterizedDirichlet,
        NonreparameterizedGamma,
        NonreparameterizedNormal,
    )

    a = torch.tensor(2.0, requires_grad=True)
    fakes = [
        NonreparameterizedBeta(a, a),
        NonreparameterizedGamma(a, a),
        NonreparameterizedDirichlet(torch.stack([a, a])),
        NonreparameterizedNormal(a, a),
    ]
    for fake in fakes:
        assert not fake.has_rsample and not fake.expand((3,)).has_rsample
        draw = pyro.sample("x", fake)
        assert not draw.requires_grad
        assert fake.log_prob(draw).requires_grad  # the density still depends on a
    assert dist.Beta(a, a).has_rsample and pyro.sample("y", dist.Beta(a, a)).requires_grad


@pytest.mark.slow
def test_svi_part_iii_score_function_gradient_is_unbiased():
    # z ~ N(0, 1), x ~ N(z, 1) with x = 2; guide z ~ NonreparameterizedNormal(m, 1). The ELBO's
    # gradient in m is x - 2m exactly; TraceGraph_ELBO, unable to reparameterise, must estimate
    # it by the score function. Each of R independent estimates averages N particles; the
    # mean of the R estimates lies within 4 standard errors (their spread / sqrt(R)) of the
    # exact value unless the estimator is biased (a 4-sigma miss has probability < 1e-4).
    from engine.distributions.testing.fakes import NonreparameterizedNormal
    from engine.infer import TraceGraph_ELBO

    x, m = torch.tensor(2.0), 0.5

    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide():
        loc = pyro.param("m", torch.tensor(m))
        pyro.sample("z", NonreparameterizedNormal(loc, 1.0))

    elbo = TraceGraph_ELBO(num_particles=2000, vectorize_particles=True)
    estimates = []
    for _ in range(20):
        pyro.clear_param_store()
        loss = elbo.differentiable_loss(model, guide)
        (grad,) = torch.autograd.grad(loss, [pyro.param("m").unconstrained()])
        estimates.append(-grad.item())  # the loss is -ELBO
    estimates = torch.tensor(estimates)
    error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - (x.item() - 2 * m)) < 4 * error.item()
    assert error.item() > 0  # really estimated: the draws carried no gradient


# --- pyro.optim.multi ---------------------------------------------------------------------------


def test_mixed_multi_optimizer_as_the_custom_objectives_tutorial_uses_it():
    from engine.infer import Trace_ELBO
    from engine.optim.multi import MixedMultiOptimizer

    def model():
        a = pyro.param("a", torch.tensor(0.3))
        b = pyro.param("b", torch.tensor(0.7), constraint=constraints.positive)
        pyro.sample("x", dist.Normal(a, b), obs=torch.tensor(1.0))

    def guide():
        pass

    elbo = Trace_ELBO()
    adam = pyro.optim.Adam({"lr": 0.1})
    sgd = pyro.optim.SGD({"lr": 0.01})
    optim = MixedMultiOptimizer([(["a"], adam), (["b"], sgd)])
    with poutine.trace(param_only=True) as param_capture:
        loss = elbo.differentiable_loss(model, guide)
    params = {
        name: site["value"].unconstrained() for name, site in param_capture.trace.nodes.items()
    }
    grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
    grads = dict(zip(params, grads, strict=True))
    before = {name: value.detach().clone() for name, value in params.items()}
    optim.step(loss, params)
    # Adam's first step moves by lr against the gradient's sign; SGD by lr times the gradient.
    a_step = -0.1 * torch.sign(grads["a"])
    assert torch.allclose(params["a"].detach(), before["a"] + a_step)
    assert torch.allclose(params["b"].detach(), before["b"] - 0.01 * grads["b"])
    with pytest.raises(ValueError, match="'a' is given to two optimizers"):
        MixedMultiOptimizer([(["a"], adam), (["a", "b"], sgd)])


def test_torch_multi_optimizer_and_a_subclass_with_its_own_step():
    from engine.optim.multi import MultiOptimizer, TorchMultiOptimizer

    x = pyro.param("x", torch.tensor([3.0, -1.0])).unconstrained()
    TorchMultiOptimizer(torch.optim.SGD, {"lr": 0.25}).step((x**2).sum(), {"x": x})
    assert x.tolist() == [1.5, -0.5]  # x - 0.25 * 2x

    class HalfWay(MultiOptimizer):  # like Pyro's GP Bayes-opt example: only get_step defined
        def get_step(self, loss, params):
            return {name: value / 2 for name, value in params.items()}

    HalfWay().step(x.sum(), {"x": x})
    assert x.tolist() == [0.75, -0.25] and x.is_leaf


def test_newton_reaches_a_quadratics_minimum_and_keeps_to_its_trust_radius():
    from engine.optim.multi import Newton

    # Two independent 2-d quadratics (a batch of 2): one Newton step is exact.
    targets = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    x = torch.zeros(2, 2, requires_grad=True)
    loss = ((x - targets) ** 2).sum() + (x[:, 0] * x[:, 1]).sum()
    updated = Newton().get_step(loss, {"x": x})["x"]
    (grad,) = torch.autograd.grad(
        ((updated - targets) ** 2).sum() + (updated[:, 0] * updated[:, 1]).sum(), [updated]
    )
    assert torch.allclose(grad, torch.zeros(2, 2), atol=1e-5)
    assert updated.requires_grad  # get_step is differentiable

    y = torch.tensor([[0.0]], requires_grad=True)
    Newton({"y": 0.1}).step(((y - 10.0) ** 2).sum(), {"y": y})
    assert y.item() == pytest.approx(0.1, abs=1e-6)  # the step is cut to the radius


# --- pyro.infer.mcmc.api / util -----------------------------------------------------------------


def test_mcmc_api_is_the_engines_mcmc():
    from engine.infer import MCMC
    from engine.infer.mcmc.api import MCMC as ApiMCMC

    assert ApiMCMC is MCMC


def _brute_force_hpdi(values, prob):
    ordered = sorted(values)
    span = int(prob * len(ordered))
    widths = [(ordered[i + span] - ordered[i], i) for i in range(len(ordered) - span)]
    start = min(widths)[1]
    return ordered[start], ordered[start + span]


def test_summary_as_the_predictive_deterministic_tutorial_prints_it():
    from engine.infer.mcmc.diagnostics import effective_sample_size
    from engine.infer.mcmc.util import diagnostics, summary

    generator = torch.Generator().manual_seed(7)
    draws = torch.randn(3, 200, 2, generator=generator).exp()  # skewed: hpdi != quantiles
    stats = summary({"theta": draws}, prob=0.8)["theta"]
    assert list(stats) == ["mean", "std", "median", "10.0%", "90.0%", "n_eff", "r_hat"]
    pooled = draws.reshape(-1, 2)
    assert torch.allclose(stats["mean"], pooled.mean(0))
    assert torch.allclose(stats["std"], pooled.std(0))
    for i in range(2):
        low, high = _brute_force_hpdi(pooled[:, i].tolist(), 0.8)
        assert (stats["10.0%"][i].item(), stats["90.0%"][i].item()) == (low, high)
    assert torch.equal(stats["n_eff"], effective_sample_size(draws))
    # The split Gelman-Rubin statistic by hand: six half-chains of 100 draws.
    halves = torch.cat([draws[:, :100], draws[:, 100:]]).double()
    n = 100
    within = halves.var(1).mean(0)
    between = n * halves.mean(1).var(0)
    expected_rhat = (((n - 1) / n * within + between / n) / within).sqrt()
    assert torch.allclose(stats["r_hat"], expected_rhat)
    assert set(diagnostics({"theta": draws})["theta"]) == {"n_eff", "r_hat"}

    flat = summary({"theta": draws[0]}, group_by_chain=False)["theta"]
    assert torch.allclose(flat["mean"], draws[0].mean(0))


def test_print_summary_prints_one_row_per_element(capsys):
    from engine.infer.mcmc.util import print_summary

    print_summary({"w": torch.zeros(2, 10, 2) + torch.arange(2.0)})
    lines = [line.split() for line in capsys.readouterr().out.strip().splitlines()]
    assert lines[0] == ["mean", "std", "median", "5.0%", "95.0%", "n_eff", "r_hat"]
    assert [row[:2] for row in lines[1:]] == [["w[0]", "0.00"], ["w[1]", "1.00"]]


def test_select_samples_and_the_deprecated_predictive():
    from engine.infer.mcmc.util import predictive, select_samples

    draws = {"mu": torch.arange(8.0).reshape(2, 4)}
    assert select_samples(draws)["mu"].tolist() == list(range(8))
    kept = select_samples(draws, num_samples=5, group_by_chain=True)["mu"]
    assert kept.shape == (2, 5) and bool((kept[1] - kept[0] == 4).all())

    def model():
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        return pyro.sample("y", dist.Normal(mu, 1e-4))

    with pytest.warns(FutureWarning, match="Predictive"):
        out = predictive(model, {"mu": torch.tensor([3.0, -3.0])}, return_sites=["y"])
    assert [round(v) for v in out["y"].tolist()] == [3, -3]


def hierarchical(data):
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(mu, sigma), obs=data)


def test_initialize_model_gives_the_potential_energy_in_unconstrained_space():
    from engine.infer.mcmc.util import initialize_model

    data = torch.tensor([0.3, -1.2, 2.0])
    params, potential_fn, transforms, prototype = initialize_model(hierarchical, model_args=(data,))
    assert sorted(params) == ["mu", "sigma"] and prototype.nodes["obs"]["is_observed"]
    u, mu = torch.tensor(0.4), torch.tensor(0.7)
    sigma = u.exp()  # sigma lives on (0, inf): unconstrained by its log
    expected = -(
        dist.HalfNormal(2.0).log_prob(sigma)
        + dist.Normal(0.0, 1.0).log_prob(mu)
        + dist.Normal(mu, sigma).log_prob(data).sum()
        + u  # log |d sigma / d u|
    )
    energy = potential_fn({"sigma": u, "mu": mu})
    assert energy.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(transforms["sigma"](sigma), u)
    assert torch.allclose(
        prototype.nodes["sigma"]["value"], transforms["sigma"].inv(params["sigma"])
    )

    several, *_ = initialize_model(hierarchical, (data,), num_chains=3)
    assert several["mu"].shape == (3,)
    given, *_ = initialize_model(hierarchical, (data,), initial_params={"mu": mu, "sigma": u})
    assert given["mu"] == mu and given["sigma"] == u
    with pytest.raises(ValueError, match="transforms"):
        initialize_model(hierarchical, (data,), transforms={"sigma": transforms["sigma"]})


@pytest.mark.slow
def test_nuts_on_initialize_models_potential_matches_the_exact_posterior():
    # mu ~ N(0, 1), x_i ~ N(mu, 1) for 4 points: the posterior is N(sum(x) / 5, 1 / 5). The
    # posterior mean of 2 chains x 400 draws lies within 4 MCSE of the exact one (MCSE = exact
    # sd / sqrt(n_eff), with n_eff reported by summary).
    from engine.infer import MCMC, NUTS
    from engine.infer.mcmc.util import initialize_model, summary

    data = torch.tensor([0.5, 1.5, 1.0, 2.0])

    def model(data):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("d", len(data)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=data)

    init, potential_fn, *_ = initialize_model(model, (data,), num_chains=2)
    mcmc = MCMC(
        NUTS(potential_fn=potential_fn),
        num_samples=400,
        warmup_steps=200,
        num_chains=2,
        initial_params=init,
    )
    mcmc.run()
    stats = summary(mcmc.get_samples(group_by_chain=True))["mu"]
    mcse = math.sqrt(1 / 5) / math.sqrt(stats["n_eff"].item())
    assert abs(stats["mean"].item() - 1.0) < 4 * mcse


def test_util_check_model_guide_match_names_the_mismatched_site():
    from engine.errors import ModelGuideMismatchError
    from engine.util import check_model_guide_match

    def model():
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("w", dist.Normal(0.0, 1.0))

    def guide():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    guide_trace = pyro.poutine.trace(guide).get_trace()
    model_trace = pyro.poutine.trace(pyro.poutine.replay(model, trace=guide_trace)).get_trace()
    check_model_guide_match(model_trace, model_trace, max_plate_nesting=1)  # a match is quiet
    with pytest.raises(ModelGuideMismatchError, match="site 'w'"):
        check_model_guide_match(model_trace, guide_trace)
