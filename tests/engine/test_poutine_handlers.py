"""Every handler of engine.poutine, used as a wrapper and as a context manager."""

import warnings

import pytest
import torch

import engine as pyro
import engine.distributions as dist
from engine import poutine
from engine.errors import PlateError


def two_sites(obs=None):
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(a, 1.0), obs=obs)
    return a, b


def test_trace_records_input_sites_and_return():
    tr = poutine.trace(two_sites).get_trace(torch.tensor(0.5))
    assert list(tr.nodes) == ["_INPUT", "a", "b", "_RETURN"]
    assert tr.nodes["_INPUT"]["args"] == (torch.tensor(0.5),)
    assert tr.nodes["_RETURN"]["value"][1] == 0.5
    assert tr.nodes["b"]["is_observed"] and not tr.nodes["a"]["is_observed"]


def test_trace_as_context_manager_and_param_only():
    pyro.param("w", torch.ones(2))
    with poutine.trace() as tracer:
        pyro.param("w")
        two_sites()
    assert list(tracer.trace.nodes) == ["w", "a", "b"]
    with poutine.trace(param_only=True) as tracer:
        pyro.param("w")
        two_sites()
    assert list(tracer.trace.nodes) == ["w"]


def test_replay_reuses_latent_values_and_keeps_observations():
    guide_trace = poutine.trace(two_sites).get_trace()
    replayed = poutine.trace(poutine.replay(two_sites, trace=guide_trace)).get_trace(
        torch.tensor(3.0)
    )
    assert replayed.nodes["a"]["value"] is guide_trace.nodes["a"]["value"]
    assert replayed.nodes["b"]["value"] == 3.0


def test_replay_refuses_an_observed_site_for_a_latent_one():
    observed = poutine.trace(two_sites).get_trace(torch.tensor(1.0))

    def latent_b():
        pyro.sample("b", dist.Normal(0.0, 1.0))

    with pytest.raises(poutine.ReplayError, match="'b'"):
        poutine.replay(latent_b, trace=observed)()


def test_replay_params():
    def model():
        return pyro.param("w", torch.zeros(()))

    replayed = poutine.replay(model, params={"w": {"value": torch.tensor(7.0)}})()
    assert replayed == 7.0
    assert poutine.replay(model, params={"w": torch.tensor(8.0)})() == 8.0


def test_condition_observes_and_density_counts():
    conditioned = poutine.condition(two_sites, data={"a": torch.tensor(1.0)})
    tr = poutine.trace(conditioned).get_trace()
    assert tr.nodes["a"]["is_observed"] and tr.nodes["a"]["value"] == 1.0
    assert tr.observation_nodes == ["a"]
    conditioned_by_trace = poutine.condition(two_sites, data=tr)
    tr2 = poutine.trace(conditioned_by_trace).get_trace()
    assert tr2.observation_nodes == ["a", "b"]


def test_do_inside_a_subsampled_plate_scales_once_and_takes_batched_values():
    def model():
        with pyro.plate("data", 10, subsample_size=2):
            a = pyro.sample("a", dist.Normal(0.0, 1.0))
            return pyro.sample("b", dist.Normal(a, 1.0))

    intervened = poutine.do(model, data={"a": torch.tensor([50.0, 60.0])})
    tr = poutine.trace(intervened).get_trace()
    assert tr.nodes["a"]["scale"] == 5.0
    assert tr.nodes["a"]["value"].shape == (2,)
    b = tr.nodes["b"]["value"]
    assert torch.all((b - torch.tensor([50.0, 60.0])).abs() < 6)


def test_do_feeds_the_value_downstream_without_evidence():
    intervened = poutine.do(two_sites, data={"a": torch.tensor(100.0)})
    tr = poutine.trace(intervened).get_trace()
    a, b = tr.nodes["_RETURN"]["value"]
    assert a == 100.0
    assert abs(b.item() - 100.0) < 6  # b ~ Normal(100, 1)
    assert "a__CF" not in tr.nodes
    # the natural draw of a is what the trace holds, with its own density
    assert tr.nodes["a"]["value"] != 100.0
    assert not tr.nodes["a"]["is_observed"]


def test_substitute_sample_and_param_sites():
    def model():
        w = pyro.param("w", torch.zeros(()))
        z = pyro.sample("z", dist.Normal(w, 1.0))
        return w, z

    tr = poutine.trace(
        poutine.substitute(model, data={"w": torch.tensor(2.0), "z": torch.tensor(3.0)})
    ).get_trace()
    assert tr.nodes["w"]["value"] == 2.0
    assert tr.nodes["z"]["value"] == 3.0 and not tr.nodes["z"]["is_observed"]
    assert "w" not in pyro.get_param_store()
    by_fn = poutine.substitute(model, substitute_fn=lambda site: torch.tensor(9.0))
    assert by_fn() == (9.0, 9.0)


def test_uncondition_samples_observed_sites():
    tr = poutine.trace(poutine.uncondition(two_sites)).get_trace(torch.tensor(100.0))
    assert not tr.nodes["b"]["is_observed"]
    assert tr.nodes["b"]["infer"]["was_observed"]
    assert tr.nodes["b"]["infer"]["obs"] == 100.0
    assert tr.nodes["b"]["value"] != 100.0


def test_block_hide_expose_and_types():
    def model():
        pyro.param("w", torch.zeros(()))
        two_sites()

    def names(**kwargs):
        return list(poutine.trace(poutine.block(model, **kwargs)).get_trace().nodes)

    assert names() == ["_INPUT", "_RETURN"]
    assert names(hide=["a"]) == ["_INPUT", "w", "b", "_RETURN"]
    assert names(expose=["a"]) == ["_INPUT", "a", "_RETURN"]
    assert names(hide_types=["param"]) == ["_INPUT", "a", "b", "_RETURN"]
    assert names(expose_types=["param"]) == ["_INPUT", "w", "_RETURN"]
    assert names(hide_fn=lambda msg: msg["name"] == "b") == ["_INPUT", "w", "a", "_RETURN"]
    assert names(expose_fn=lambda msg: msg["name"] == "b") == ["_INPUT", "b", "_RETURN"]
    assert names(hide_all=False) == ["_INPUT", "w", "a", "b", "_RETURN"]
    assert names(expose_all=True) == ["_INPUT", "w", "a", "b", "_RETURN"]


def test_block_observe_pseudo_type_and_mixed_lists():
    def model():
        pyro.param("w", torch.zeros(()))
        two_sites(torch.tensor(1.0))

    def names(**kwargs):
        return list(poutine.trace(poutine.block(model, **kwargs)).get_trace().nodes)

    # observed sample sites are the pseudo-type "observe", not "sample"
    assert names(hide_types=["observe"]) == ["_INPUT", "w", "a", "_RETURN"]
    assert names(expose_types=["sample"]) == ["_INPUT", "a", "_RETURN"]
    # a name in hide wins over its type in expose_types
    assert names(hide=["a"], expose_types=["sample", "param"]) == ["_INPUT", "w", "_RETURN"]


def test_escape_only_considers_sample_sites():
    def model():
        pyro.param("w", torch.zeros(()))
        with pyro.plate("data", 100, subsample_size=3):
            pyro.sample("w_sample", dist.Normal(0.0, 1.0))

    seen = []

    def escape_fn(msg):
        seen.append(msg["name"])
        return msg["name"].startswith("w")

    with pytest.raises(poutine.NonlocalExit) as info:
        poutine.escape(model, escape_fn=escape_fn)()
    assert info.value.site["name"] == "w_sample"
    assert seen == ["w_sample"]


def test_escape_leaves_at_the_chosen_site():
    escaped = poutine.escape(two_sites, escape_fn=lambda msg: msg["name"] == "b")
    with poutine.trace() as tracer, pytest.raises(poutine.NonlocalExit) as info:
        escaped()
    assert info.value.site["name"] == "b"
    assert list(tracer.trace.nodes) == ["a"]


def test_seed_fixes_draws_and_restores_the_generators():
    first = poutine.seed(two_sites, rng_seed=1)()
    second = poutine.seed(two_sites, rng_seed=1)()
    assert first == second
    with poutine.seed(rng_seed=5):
        inside = torch.rand(())
    with poutine.seed(rng_seed=5):
        assert torch.rand(()) == inside


def test_seed_restores_the_outer_random_stream():
    pyro.set_rng_seed(0)
    expected = torch.rand(3)
    pyro.set_rng_seed(0)
    with poutine.seed(rng_seed=123):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)


def test_scale_and_mask_weight_log_densities():
    def model_2d():
        with pyro.plate("p", 2):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(2))

    base = poutine.trace(model_2d).get_trace().log_prob_sum()
    scaled = poutine.trace(poutine.scale(model_2d, scale=3.0)).get_trace().log_prob_sum()
    assert torch.allclose(scaled, 3 * base)
    masked = poutine.mask(model_2d, mask=torch.tensor([True, False]))
    assert torch.allclose(poutine.trace(masked).get_trace().log_prob_sum(), base / 2)
    assert poutine.trace(poutine.mask(model_2d, mask=False)).get_trace().log_prob_sum() == 0
    with pytest.raises(ValueError, match="positive"):
        poutine.scale(scale=-1.0)
    with pytest.raises(ValueError, match="1 entries <= 0"):
        poutine.scale(scale=torch.tensor([1.0, 0.0]))
    tensor_scaled = poutine.scale(model_2d, scale=torch.tensor([1.0, 3.0]))
    lp = dist.Normal(0.0, 1.0).log_prob(torch.zeros(()))
    assert torch.allclose(poutine.trace(tensor_scaled).get_trace().log_prob_sum(), 4 * lp)
    with pytest.raises(TypeError, match="bool"):
        poutine.mask(mask=torch.ones(2))


def test_nested_masks_combine():
    def model():
        with pyro.plate("p", 3):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))

    with poutine.mask(mask=torch.tensor([True, True, False])):
        inner = poutine.mask(model, mask=torch.tensor([False, True, True]))
        tr = poutine.trace(inner).get_trace()
    lp = tr.nodes["x"]["fn"].log_prob(torch.zeros(3))
    assert torch.allclose(tr.log_prob_sum(), lp[1])


def test_lift_turns_params_into_samples():
    def model():
        return pyro.param("w", torch.tensor(0.0)), pyro.param("v", torch.tensor(0.0))

    lifted = poutine.lift(model, prior={"w": dist.Normal(10.0, 1e-3)})
    tr = poutine.trace(lifted).get_trace()
    assert tr.nodes["w"]["type"] == "sample" and abs(tr.nodes["w"]["value"].item() - 10) < 0.1
    assert tr.nodes["v"]["type"] == "param"
    assert "w" not in pyro.get_param_store()


def test_lift_draws_a_param_read_twice_only_once():
    def model():
        return pyro.param("w", torch.tensor(0.0)), pyro.param("w")

    lifted = poutine.lift(model, prior=dist.Normal(0.0, 1.0))
    first, second = lifted()
    assert first == second
    tr = poutine.trace(lifted).get_trace()
    assert tr.stochastic_nodes == ["w"]
    assert tr.nodes["_RETURN"]["value"][0] is tr.nodes["_RETURN"]["value"][1]


def test_lift_matches_module_parameters_by_short_name():
    net = torch.nn.Linear(2, 1)

    def model():
        pyro.module("net", net)
        return pyro.param("net$$$weight"), pyro.param("net$$$bias")

    lifted = poutine.lift(model, prior={"weight": dist.Normal(0.0, 1.0).expand([1, 2])})
    tr = poutine.trace(lifted).get_trace()
    assert tr.nodes["net$$$weight"]["type"] == "sample"
    assert tr.nodes["net$$$bias"]["type"] == "param"


def test_lift_with_stochastic_function_priors():
    def model():
        return pyro.param("w", torch.zeros(2)), pyro.param("v", torch.ones(3))

    def shifted(init, *args, **kwargs):  # called as the param was: its initial value first
        return init + 5.0

    in_dict = poutine.trace(poutine.lift(model, prior={"w": shifted})).get_trace()
    assert in_dict.nodes["w"]["type"] == "sample" and in_dict.nodes["w"]["fn"] is shifted
    assert in_dict.nodes["w"]["value"].tolist() == [5.0, 5.0]
    assert in_dict.nodes["v"]["type"] == "param"
    # One function for every param: it stands in for the sites, which outer handlers do not see.
    whole = poutine.trace(poutine.lift(model, prior=shifted))
    w, v = whole()
    assert w.tolist() == [5.0, 5.0] and v.tolist() == [6.0, 6.0, 6.0]
    assert "w" not in whole.trace.nodes and "v" not in whole.trace.nodes


def test_lift_warns_of_prior_keys_that_match_no_param():
    def model():
        return pyro.param("w", torch.zeros(1))

    with pyro.validation_enabled(), pytest.warns(UserWarning, match=r"names \['wieght'\]"):
        poutine.lift(model, prior={"wieght": dist.Normal(0.0, 1.0)})()
    with pyro.validation_enabled(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        poutine.lift(model, prior={"wieght": dist.Normal(0.0, 1.0)})()


def test_random_module_draws_a_network_per_call():
    net = torch.nn.Linear(3, 1)
    with pytest.warns(FutureWarning, match="PyroModule"):
        prior = {"weight": dist.Normal(0.0, 1.0).expand([1, 3])}
        draw = pyro.random_module("net", net, prior=prior)
    tr = poutine.trace(draw).get_trace()
    sampled = tr.nodes["_RETURN"]["value"]
    assert tr.nodes["net$$$weight"]["type"] == "sample"
    assert tr.nodes["net$$$bias"]["type"] == "param"
    assert sampled is not net and sampled.weight is tr.nodes["net$$$weight"]["value"]
    x = torch.ones(2, 3)
    assert torch.allclose(sampled(x), x @ sampled.weight.T + sampled.bias)
    assert not torch.equal(draw().weight, draw().weight)  # a fresh draw on every call
    assert isinstance(net.weight, torch.nn.Parameter)  # the user's network is left as it was
    with pytest.raises(ValueError, match=r"needs a torch\.nn\.Module"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        pyro.random_module("net", lambda x: x, prior=dist.Normal(0.0, 1.0))


def test_lifted_site_is_seen_by_outer_sample_handlers():
    def model():
        return pyro.param("w", torch.tensor(0.0))

    conditioned = poutine.condition(
        poutine.lift(model, prior=dist.Normal(0.0, 1.0)), data={"w": torch.tensor(4.0)}
    )
    assert conditioned() == 4.0


def test_infer_config_merges_without_touching_the_callers_dict():
    user_infer = {"a": 1}

    def model():
        pyro.sample("z", dist.Bernoulli(0.5), infer=user_infer)

    configured = poutine.infer_config(model, config_fn=lambda site: {"enumerate": "parallel"})
    tr = poutine.trace(configured).get_trace()
    assert tr.nodes["z"]["infer"] == {"a": 1, "enumerate": "parallel"}
    assert user_infer == {"a": 1}


def test_broadcast_expands_to_every_recorded_frame():
    from engine.runtime import CondIndepStackFrame, apply_stack, new_message

    frames = (CondIndepStackFrame("outer", -2, 3), CondIndepStackFrame("inner", -1, 4))

    class StampFrames(poutine.Messenger):  # records frames like a plate, without broadcasting
        def _process_sample(self, msg):
            msg["cond_indep_stack"] = frames

    with poutine.broadcast(), StampFrames():
        msg = apply_stack(new_message("sample", "x", dist.Normal(0.0, 1.0)))
    assert msg["fn"].batch_shape == (3, 4) and msg["value"].shape == (3, 4)
    with StampFrames():
        unbroadcast = apply_stack(new_message("sample", "x", dist.Normal(0.0, 1.0)))
    assert unbroadcast["value"].shape == ()


def test_handlers_as_decorators():
    @poutine.condition(data={"a": torch.tensor(2.0)})
    def model():
        return two_sites()[0]

    assert model() == 2.0


def scope(trace, name):
    return set(trace.nodes[name]["infer"]["_markov_scope"])


def test_markov_loop_scopes_cover_the_history_window():
    def chain(history, keep=False):
        x = torch.tensor(0.0)
        for t in pyro.markov(range(4), history=history, keep=keep):
            x = pyro.sample(f"x_{t}", dist.Normal(x, 1.0))
            pyro.sample(f"y_{t}", dist.Normal(x, 1.0), obs=torch.tensor(0.0))

    tr1 = poutine.trace(chain).get_trace(1)
    assert scope(tr1, "x_3") == {"x_2", "y_2", "x_3"}
    assert scope(tr1, "y_3") == {"x_2", "y_2", "x_3", "y_3"}
    assert scope(poutine.trace(chain).get_trace(2), "x_3") == {"x_1", "y_1", "x_2", "y_2", "x_3"}
    assert scope(poutine.trace(chain).get_trace(0), "x_3") == {"x_3"}
    # keep only matters for branching: a loop's window is still `history` steps
    assert scope(poutine.trace(chain).get_trace(1, True), "x_3") == {"x_2", "y_2", "x_3"}


def tree(name, depth, keep):
    @pyro.markov(keep=keep)
    def node(label, level):
        pyro.sample(label, dist.Normal(0.0, 1.0))
        if level < depth:
            node(label + "L", level + 1)
            node(label + "R", level + 1)

    node(name, 0)


def test_markov_recursion_sees_parents_not_siblings():
    tr = poutine.trace(tree).get_trace("n", 2, False)
    assert scope(tr, "nL") == {"n", "nL"}
    assert scope(tr, "nLR") == {"nL", "nLR"}
    assert scope(tr, "nR") == {"n", "nR"}  # not nL: branches are independent
    assert scope(tr, "nRL") == {"nR", "nRL"}


def test_markov_recursion_with_keep_chains_siblings():
    tr = poutine.trace(tree).get_trace("n", 1, True)
    assert scope(tr, "nL") == {"n", "nL"}
    assert scope(tr, "nR") == {"nL", "nR"}


def test_markov_as_context_and_rejects_funsor_arguments():
    def model():
        with pyro.markov():
            return pyro.sample("s", dist.Normal(0.0, 1.0))

    assert scope(poutine.trace(model).get_trace(), "s") == {"s"}
    with pytest.raises(NotImplementedError, match="funsor"):
        pyro.markov(dim=-3)


def test_block_plate_steps_out_of_one_enclosing_plate():
    from engine.poutine.plate_messenger import block_plate

    def model(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(data)):
            with block_plate("data"):
                scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
            pyro.sample("x", dist.Normal(loc, scale), obs=data)

    tr = poutine.trace(model).get_trace(torch.zeros(4))
    assert tr.nodes["scale"]["value"].shape == () and tr.nodes["scale"]["cond_indep_stack"] == ()
    assert [f.name for f in tr.nodes["x"]["cond_indep_stack"]] == ["data"]
    with pyro.plate("a", 2, dim=-1), pyro.plate("b", 3, dim=-2), block_plate(dim=-2):
        assert pyro.sample("y", dist.Normal(0.0, 1.0)).shape == (2,)
    with pytest.raises(PlateError, match="no enclosing plate named 'data'"), block_plate("data"):
        pass
    with block_plate("data", strict=False):
        assert pyro.sample("z", dist.Normal(0.0, 1.0)).shape == ()
    with pytest.raises(PlateError, match="exactly one of name and dim"), block_plate():
        pass
