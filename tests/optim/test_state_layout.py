"""The per-parameter state every optimizer builds through ``Optimizer._lazy_state`` is
laid out as PyTorch lays it out: the same keys in the same order (so a state dict reads
the same) and the same step counts; buffers switched on mid-run (torch refuses that)
start from zero after the others. Also: the checks that SequentialLR and
ChainedScheduler, OneCycleLR and CyclicLR, LambdaLR and MultiplicativeLR share name the
scheduler that refused."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop.optim import lr_scheduler as bls

from tests.optim.helpers import train

CONFIGS = [
    ("Adam", dict()),
    ("Adam", dict(amsgrad=True)),
    ("AdamW", dict(amsgrad=True)),
    ("Adamax", dict()),
    ("NAdam", dict()),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adadelta", dict()),
    ("RMSprop", dict(momentum=0.9, centered=True)),
    ("Adagrad", dict()),
]


def _step_count(value) -> float:
    return float(value.item() if hasattr(value, "item") else value)


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=lambda c: str(c))
def test_state_keys_and_steps_are_torchs_in_order(oracle, name, kwargs):
    def make(optim, params):
        return getattr(optim, name)(params, **kwargs)

    ours = train(backprop, make, steps=3)["optimizer"].state_dict()["state"]
    theirs = train(oracle, make, steps=3)["optimizer"].state_dict()["state"]
    assert list(ours) == list(theirs)
    for index in theirs:
        assert list(ours[index]) == list(theirs[index]), (name, index)
        assert _step_count(ours[index]["step"]) == _step_count(theirs[index]["step"]) == 3
        for key, value in theirs[index].items():
            # NOTE: torch keeps NAdam's mu_product in float32 (see NAdam), hence rtol 1e-7
            if key not in ("step", "mu_product"):
                np.testing.assert_allclose(np.asarray(ours[index][key]), value.numpy(),
                                           rtol=1e-7, atol=1e-12, err_msg=f"{name} {key}")


def _switch_on_later(lib, name, later):
    """State of parameter 0 after one step, then ``later`` options and a second step."""
    opt = train(lib, lambda optim, params: getattr(optim, name)(params), steps=1)["optimizer"]
    opt.param_groups[0].update(later)
    w = opt.param_groups[0]["params"][0]
    w.grad = lib.ones_like(w)
    opt.step()
    return opt.state_dict()["state"][0]


def test_buffers_switched_on_mid_run_start_from_zero_after_the_first_ones():
    """Adam's amsgrad and RMSprop's momentum and centering turned on after the first step
    (torch raises a KeyError there): the new buffers start at zero and follow the ones
    built on the first step."""
    state = _switch_on_later(backprop, "Adam", dict(amsgrad=True))
    assert list(state) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    np.testing.assert_array_equal(np.asarray(state["max_exp_avg_sq"]),   # max(0, v) = v
                                  np.asarray(state["exp_avg_sq"]))
    state = _switch_on_later(backprop, "RMSprop", dict(momentum=0.5, centered=True))
    assert list(state) == ["step", "square_avg", "momentum_buffer", "grad_avg"]
    np.testing.assert_allclose(np.asarray(state["grad_avg"]), 0.01)   # 0 + (1 - 0.99) * 1


def _opt():
    return backprop.optim.SGD([backprop.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)


@pytest.mark.parametrize("make", [
    lambda opt, scheds: bls.SequentialLR(opt, scheds, milestones=[2] * (len(scheds) - 1)),
    lambda opt, scheds: bls.ChainedScheduler(scheds, optimizer=opt),
], ids=["SequentialLR", "ChainedScheduler"])
def test_scheduler_lists_are_checked_alike_and_name_their_owner(make):
    opt = _opt()
    owner = make(opt, [bls.StepLR(opt, 2)]).__class__.__name__
    plateau = bls.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match=f"^{owner} does not support ReduceLROnPlateau .* "
                                         f"index 1"):
        make(opt, [bls.StepLR(opt, 2), plateau])
    other = _opt()
    with pytest.raises(ValueError, match=f"^{owner} expects all schedulers to belong to the "
                                         f"same optimizer, but scheduler StepLR at index 0"):
        make(opt, [bls.StepLR(other, 2), bls.StepLR(opt, 2)])
    with pytest.raises(TypeError, match=f"^{owner}: scheduler at index 0 should have "
                                        f"`optimizer`"):
        make(opt, [object(), bls.StepLR(opt, 2)])


@pytest.mark.parametrize("make, name", [
    (lambda opt: bls.OneCycleLR(opt, max_lr=0.1, total_steps=10), "OneCycleLR"),
    (lambda opt: bls.CyclicLR(opt, base_lr=0.01, max_lr=0.1), "CyclicLR"),
])
def test_momentum_cycling_needs_a_momentum_and_starts_at_its_maximum(make, name):
    bare = backprop.optim.Adagrad([backprop.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match=f"^{name}: optimizer must support momentum or beta1"):
        make(bare)
    sgd = _opt()
    make(sgd)
    group = sgd.param_groups[0]
    assert group["momentum"] == group["max_momentum"] > group["base_momentum"]
    adam = backprop.optim.Adam([backprop.zeros(2, requires_grad=True)], betas=(0.5, 0.99))
    make(adam)
    group = adam.param_groups[0]
    assert group["betas"] == (group["max_momentum"], 0.99)


@pytest.mark.parametrize("cls", [bls.LambdaLR, bls.MultiplicativeLR])
def test_lambda_schedulers_take_one_function_per_group_alike(cls):
    groups = [{"params": [backprop.zeros(2, requires_grad=True)]} for _ in range(2)]
    opt = backprop.optim.SGD(groups, lr=0.1)
    with pytest.raises(ValueError, match=f"^{cls.__name__}: expected 2 lr_lambdas \\(one per "
                                         f"param group\\), but got 1"):
        cls(opt, [lambda epoch: 1.0])
    with pytest.raises(TypeError, match=f"^{cls.__name__}: lr_lambda"):
        cls(opt, 3)
    one = lambda epoch: 0.5  # noqa: E731
    assert cls(opt, one).lr_lambdas == [one, one]
    assert cls(opt, (one, abs)).lr_lambdas == [one, abs]
