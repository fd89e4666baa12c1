"""The Optimizer base class: groups, argument checks, lazy state, zero_grad, state_dict, dtypes."""
from __future__ import annotations

import json

import numpy as np
import pytest

import backprop
from backprop import optim
from backprop.optim.adam import adam
from backprop.optim.adagrad import adagrad
from backprop.optim.rmsprop import rmsprop
from backprop.optim.sgd import sgd

from tests.optim.helpers import problem, train

ALL = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
]
IDS = [cls.__name__ for cls, _ in ALL]


def params(dtype=backprop.float64):
    return [backprop.tensor(w, dtype=dtype, requires_grad=True) for w in problem()[3]]


def quadratic_step(opt, ps, times=1):
    for _ in range(times):
        opt.zero_grad()
        sum(((p * p).sum() * (i + 1) for i, p in enumerate(ps)), backprop.tensor(0.0)).backward()
        opt.step()


# -- construction -----------------------------------------------------------------------
def test_groups_take_defaults_and_override_them():
    ps = params()
    opt = optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.5, "momentum": 0.1}],
                    lr=0.01, momentum=0.9)
    g0, g1 = opt.param_groups
    assert g0["lr"] == 0.01 and g0["momentum"] == 0.9
    assert g0["params"][0] is ps[0] and len(g0["params"]) == 2
    assert (g1["lr"], g1["momentum"], g1["dampening"]) == (0.5, 0.1, 0)
    assert opt.defaults["lr"] == 0.01
    assert set(g1) == {"params", "lr", "momentum", "dampening", "weight_decay", "nesterov",
                       "maximize"}


def test_generator_named_parameters_and_add_param_group():
    ps = params()
    opt = optim.Adam((p for p in ps[:3]), lr=0.1)
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 3
    opt.add_param_group({"params": ps[3], "lr": 0.2})  # a bare tensor becomes a list
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is ps[3]
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)

    named = optim.SGD([("w1", ps[0]), ("b1", ps[1])], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w1", "b1"]
    assert named.state_dict()["param_groups"][0]["param_names"] == ["w1", "b1"]


@pytest.mark.parametrize("bad, error, match", [
    ([], ValueError, "empty parameter list"),
    (backprop.zeros(2, requires_grad=True), TypeError, "single Tensor"),
    ({"params": []}, TypeError, "a dict"),
    (5, TypeError, "iterable of Tensors"),
    ([np.zeros(3)], TypeError, "can only optimize Tensors, but parameter 0 is ndarray"),
    ([backprop.zeros(2, dtype=backprop.int64)], TypeError, "floating-point"),
])
def test_bad_params_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        optim.SGD(bad, lr=0.1)


def test_sets_and_duplicates_are_refused():
    a, b = params()[:2]
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD([{"params": {a, b}}], lr=0.1)
    with pytest.raises(ValueError, match="parameter 1 appears twice.*position 0"):
        optim.SGD([a, a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [b, a]}], lr=0.1)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_non_leaf_parameter_is_refused():
    w = backprop.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf Tensor.*MulBackward"):
        optim.Adam([w * 2], lr=0.1)
    optim.Adam([(w * 2).detach().requires_grad_()], lr=0.1)  # the suggested fix works


ARG_ERRORS = [
    (optim.SGD, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero "
                                              "dampening"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum"),
    (optim.Adam, dict(lr=float("nan")), "Invalid learning rate: nan"),
    (optim.Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.AdamW, dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
    (optim.RMSprop, dict(alpha=-0.9), "Invalid alpha value: -0.9"),
    (optim.RMSprop, dict(momentum=-1.0), "Invalid momentum value: -1.0"),
    (optim.RMSprop, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (optim.Adagrad, dict(lr_decay=-1.0), "Invalid lr_decay value: -1.0"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0),
     "Invalid initial_accumulator_value value: -1.0"),
    (optim.Adagrad, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
]


@pytest.mark.parametrize("cls, kwargs, message", ARG_ERRORS)
def test_argument_checks_carry_the_value(cls, kwargs, message):
    with pytest.raises(ValueError) as info:
        cls(params(), **kwargs)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("cls, kwargs, message", ARG_ERRORS)
def test_argument_check_messages_are_torchs(oracle, cls, kwargs, message):
    with pytest.raises(ValueError) as theirs:
        getattr(oracle.optim, cls.__name__)([oracle.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        cls(params(), **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_group_options_are_checked_too():
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD([{"params": params(), "lr": -1}], lr=0.1)
    with pytest.raises(TypeError, match="Invalid learning rate: expected a number, got str"):
        optim.Adam(params(), lr="0.1")


def test_differentiable_is_refused_and_foreach_accepted():
    with pytest.raises(NotImplementedError, match="differentiable"):
        optim.Adam(params(), differentiable=True)
    optim.Adam(params(), foreach=False, fused=None)
    optim.SGD(params(), lr=0.1, foreach=True)


# -- state ------------------------------------------------------------------------------
def test_state_is_created_lazily():
    ps = params()
    opt = optim.Adam(ps, lr=0.01, amsgrad=True)
    assert len(opt.state) == 0
    quadratic_step(opt, ps)
    state = opt.state[ps[0]]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state["step"] == 1 and state["exp_avg"].shape == ps[0].shape
    assert isinstance(state["exp_avg"], backprop.Tensor)

    sgd_opt = optim.SGD(ps, lr=0.1)  # no momentum: no state at all, as in torch
    quadratic_step(sgd_opt, ps)
    assert all(len(s) == 0 for s in sgd_opt.state.values())


def test_adagrad_state_exists_from_construction():
    ps = params()
    opt = optim.Adagrad(ps, initial_accumulator_value=0.25)
    assert len(opt.state) == 4
    np.testing.assert_array_equal(opt.state[ps[2]]["sum"].numpy(), np.full(ps[2].shape, 0.25))
    assert opt.state[ps[2]]["step"] == 0


def test_a_hand_set_gradient_of_the_wrong_shape_is_a_clear_error():
    w = backprop.zeros(3, requires_grad=True)
    w.grad = backprop.ones(2, 3)
    with pytest.raises(backprop.ShapeError, match=r"SGD.step: a parameter of shape \(3,\) has "
                                                  r"a gradient of shape \(2, 3\)"):
        optim.SGD([w], lr=0.1).step()


def test_parameters_without_grad_are_untouched():
    ps = params()
    before = ps[1].detach().numpy().copy()
    opt = optim.RMSprop(ps, lr=0.1, momentum=0.9)
    (ps[0] * ps[0]).sum().backward()
    opt.step()
    np.testing.assert_array_equal(ps[1].detach().numpy(), before)
    assert ps[1] not in opt.state or len(opt.state[ps[1]]) == 0


def test_step_bumps_the_version_so_stale_graphs_are_caught():
    w = backprop.randn(3, dtype=backprop.float64, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    y = (w * w).sum()          # saves w for backward
    y.backward(retain_graph=True)
    version = w._version
    opt.step()
    assert w._version != version
    with pytest.raises(backprop.InplaceError, match="modified by an in-place operation"):
        y.backward()


def test_step_runs_without_recording_and_the_closure_with():
    w = backprop.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    seen = {}

    def closure():
        seen["enabled"] = backprop.is_grad_enabled()
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with backprop.no_grad():
        loss = opt.step(closure)
    assert seen["enabled"] is True
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6])
    assert w.grad_fn is None and w.is_leaf


# -- zero_grad --------------------------------------------------------------------------
def test_zero_grad_set_to_none_and_in_place():
    ps = params()
    opt = optim.SGD(ps, lr=0.1)
    quadratic_step(opt, ps)
    assert all(p.grad is not None for p in ps)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)

    quadratic_step(opt, ps)
    arrays = [p.grad._data for p in ps]
    versions = [p.grad._version for p in ps]
    opt.zero_grad(set_to_none=False)
    for p, arr, v in zip(ps, arrays, versions):
        assert p.grad._data is arr  # zeroed in place, not replaced
        assert not arr.any()
        assert p.grad._version != v
    # the next backward accumulates onto the zeros
    (ps[0] * 3).sum().backward()
    np.testing.assert_array_equal(ps[0].grad.numpy(), np.full(ps[0].shape, 3.0))


# -- state_dict -------------------------------------------------------------------------
def test_state_dict_has_torchs_format():
    ps = params()
    opt = optim.SGD([{"params": ps[:3]}, {"params": ps[3:], "lr": 0.5}], lr=0.1, momentum=0.9)
    quadratic_step(opt, ps)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1, 2], [3]]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(sd["state"][3]["momentum_buffer"].numpy(),
                                  opt.state[ps[3]]["momentum_buffer"].numpy())
    assert "params" in opt.param_groups[0]  # the optimizer's own groups are untouched


def test_state_dict_keys_match_torchs(oracle):
    """Same state keys and group option keys as PyTorch (ignoring torch's backend knobs)."""
    knobs = {"foreach", "fused", "capturable", "differentiable"}
    for cls, kwargs in ALL:
        ours_ps = params()
        theirs_ps = [oracle.tensor(p.detach().numpy(), requires_grad=True) for p in ours_ps]
        ours = cls(ours_ps, **kwargs)
        theirs = getattr(oracle.optim, cls.__name__)(theirs_ps, **kwargs)
        for opt, ps in ((ours, ours_ps), (theirs, theirs_ps)):
            loss = sum((p * p).sum() for p in ps)
            loss.backward()
            opt.step()
        a, b = ours.state_dict(), theirs.state_dict()
        assert set(a["state"][0]) == set(b["state"][0]), cls.__name__
        assert set(a["param_groups"][0]) == set(b["param_groups"][0]) - knobs, cls.__name__


@pytest.mark.parametrize("cls, kwargs", ALL, ids=IDS)
def test_state_dict_round_trip_resumes_exactly(cls, kwargs):
    """Save after 10 steps, load into a fresh optimizer, continue: same as never stopping."""
    ps = params()
    opt = cls(ps, **kwargs)
    quadratic_step(opt, ps, 10)
    resumed = [backprop.tensor(p.detach().numpy().copy(), requires_grad=True) for p in ps]
    fresh = cls(resumed, lr=123.0)  # options come from the state dict
    fresh.load_state_dict(opt.state_dict())
    quadratic_step(opt, ps, 10)  # the uninterrupted run
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]
    assert fresh.param_groups[0]["params"][0] is resumed[0]
    quadratic_step(fresh, resumed, 10)
    for a, b in zip(ps, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_state_dict_tensors_are_references_as_in_torch():
    """As in PyTorch, state_dict() does not copy the state tensors: keep a snapshot with
    copy.deepcopy (or load it, which copies) before stepping again."""
    import copy

    ps = params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    quadratic_step(opt, ps, 2)
    sd = opt.state_dict()
    snapshot = copy.deepcopy(sd)
    quadratic_step(opt, ps, 1)
    assert sd["state"][0]["momentum_buffer"] is opt.state[ps[0]]["momentum_buffer"]
    assert not np.array_equal(snapshot["state"][0]["momentum_buffer"].numpy(),
                              sd["state"][0]["momentum_buffer"].numpy())


def test_load_state_dict_deep_copies():
    ps = params()
    opt = optim.Adam(ps, lr=0.01)
    quadratic_step(opt, ps, 3)
    sd = opt.state_dict()
    other = optim.Adam(params(), lr=0.01)
    other.load_state_dict(sd)
    mine = other.state[other.param_groups[0]["params"][0]]["exp_avg"]
    assert mine._data is not sd["state"][0]["exp_avg"]._data
    before = mine.numpy().copy()
    quadratic_step(opt, ps, 1)  # changes sd's arrays (they are opt's own, as in torch)
    np.testing.assert_array_equal(mine.numpy(), before)
    sd["param_groups"][0]["betas"] = (0.5, 0.5)
    assert other.param_groups[0]["betas"] == (0.9, 0.999)


def test_load_state_dict_from_json_like_data_and_casts_dtype():
    """Plain lists and string keys (as after a JSON trip) load; arrays take the param dtype."""
    ps = params()
    opt = optim.RMSprop(ps, lr=0.01, momentum=0.9)
    quadratic_step(opt, ps, 2)
    sd = opt.state_dict()
    plain = {"state": {str(k): {n: (v.tolist() if isinstance(v, backprop.Tensor) else v)
                                for n, v in s.items()} for k, s in sd["state"].items()},
             "param_groups": sd["param_groups"]}
    plain = json.loads(json.dumps(plain))
    ps32 = params(backprop.float32)
    opt32 = optim.RMSprop(ps32, lr=0.5)
    opt32.load_state_dict(plain)
    state = opt32.state[ps32[0]]
    assert state["step"] == 2 and state["square_avg"].dtype == backprop.float32
    np.testing.assert_allclose(state["momentum_buffer"].numpy(),
                               opt.state[ps[0]]["momentum_buffer"].numpy(), rtol=1e-6)


def test_load_state_dict_errors_are_clear():
    ps = params()
    opt = optim.SGD([{"params": ps[:2]}, {"params": ps[2:]}], lr=0.1, momentum=0.9)
    quadratic_step(opt, ps)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match=r"different number of parameter groups \(2\).*\(1\)"):
        optim.SGD(params(), lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter group 0 has 2 parameters in the loaded "
                                         "state dict but 3 in the optimizer"):
        fresh = params()
        optim.SGD([{"params": fresh[:3]}, {"params": fresh[3:]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    swapped = [backprop.tensor(np.zeros((3, 3)), requires_grad=True) for _ in range(4)]
    with pytest.raises(backprop.ShapeError, match="'momentum_buffer' of parameter 0 has shape "
                                                  r"\(5, 7\).*\(3, 3\)"):
        optim.SGD([{"params": swapped[:2]}, {"params": swapped[2:]}], lr=0.1).load_state_dict(sd)


def test_load_torch_state_dict_and_continue(oracle):
    """A state dict saved by PyTorch's Adam loads into ours and training continues identically."""
    def make(optim_module, ps):
        return optim_module.Adam(ps, lr=0.01, amsgrad=True)

    theirs = train(oracle, make, steps=10)
    ours = train(backprop, make, steps=10)
    sd = theirs["optimizer"].state_dict()
    ps = [backprop.tensor(w, requires_grad=True) for w in theirs["params"]]
    opt = optim.Adam(ps, lr=0.01, amsgrad=True)
    opt.load_state_dict(sd)
    assert opt.state[ps[0]]["step"] == 10
    mine = ours["optimizer"].state[list(ours["optimizer"].state)[0]]["exp_avg"].numpy()
    np.testing.assert_allclose(opt.state[ps[0]]["exp_avg"].numpy(), mine, rtol=1e-10)


# -- dtypes and speed-relevant behaviour ------------------------------------------------
@pytest.mark.parametrize("cls, kwargs", ALL, ids=IDS)
def test_float32_stays_float32(cls, kwargs):
    ps32 = params(backprop.float32)
    ps64 = params(backprop.float64)
    kwargs = dict(kwargs, maximize=True)
    opt32, opt64 = cls(ps32, **kwargs), cls(ps64, **kwargs)
    quadratic_step(opt32, ps32, 5)
    quadratic_step(opt64, ps64, 5)
    for p32, p64 in zip(ps32, ps64):
        assert p32.dtype == backprop.float32 and p32._data.dtype == np.float32
        np.testing.assert_allclose(p32.detach().numpy(), p64.detach().numpy(), rtol=2e-4,
                                   atol=1e-5)
    for state in opt32.state.values():
        for key, value in state.items():
            if isinstance(value, backprop.Tensor):
                assert value._data.dtype == np.float32, key


def test_functional_updates_follow_their_docstrings():
    p, g, bufs = np.ones(3), np.full(3, 0.5), [None]
    sgd([p], [g], bufs, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p, 0.95)
    np.testing.assert_array_equal(bufs[0], g)
    assert bufs[0] is not g

    p, g = np.zeros(2), np.array([1.0, -1.0])
    adam([p], [g], [np.zeros(2)], [np.zeros(2)], [], [1], lr=0.1, beta1=0.9, beta2=0.999,
         eps=1e-8)
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-6)

    p, g = np.zeros(2), np.array([2.0, -2.0])
    rmsprop([p], [g], [np.zeros(2)], [], [], lr=0.01, alpha=0.99, eps=1e-8)
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-6)

    p, g = np.zeros(2), np.array([3.0, -3.0])
    adagrad([p], [g], [np.zeros(2)], [1], lr=0.1)
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(g, [3.0, -3.0])  # gradients are only read


def test_hooks_run_around_step_and_can_be_removed():
    ps = params()
    opt = optim.SGD(ps, lr=0.1)
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o)))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o)))
    quadratic_step(opt, ps)
    assert calls == [("pre", opt), ("post", opt)]
    pre.remove()
    quadratic_step(opt, ps)
    assert [c[0] for c in calls] == ["pre", "post", "post"]


def test_repr_lists_each_group():
    text = repr(optim.AdamW([{"params": params()[:2]}, {"params": params()[2:], "lr": 0.1}]))
    assert text.startswith("AdamW (") and "Parameter Group 1" in text and "lr: 0.1" in text
    assert "weight_decay: 0.01" in text
