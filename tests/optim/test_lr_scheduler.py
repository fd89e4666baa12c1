"""Learning-rate schedulers: stepping semantics, state_dict round trips, the warmup recipe."""
from __future__ import annotations

import json
import math
import warnings
from collections import Counter

import numpy as np
import pytest

import backprop
from backprop import optim
from backprop.optim import lr_scheduler as S


def make_opt(lr=0.1, groups=1, cls=optim.SGD, **kwargs):
    ws = [backprop.zeros(2, requires_grad=True) for _ in range(groups)]
    return cls([{"params": [w], "lr": lr * (i + 1)} for i, w in enumerate(ws)], lr=lr, **kwargs)


def run(opt, sched, steps, metric=None):
    lrs = []
    for k in range(steps):
        opt.step()
        sched.step() if metric is None else sched.step(metric(k))
        lrs.append(list(sched.get_last_lr()))
    return np.array(lrs)


MAKERS = {
    "LambdaLR": lambda o: S.LambdaLR(o, lambda e: 0.9 ** e),
    "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9]),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=6, eta_min=0.01),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.25, total_iters=8),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.5, total_iters=3), S.ExponentialLR(o, gamma=0.8)],
        milestones=[4]),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=40),
    "warmup_cosine": lambda o: S.warmup_cosine(o, warmup_steps=4, total_steps=30, min_lr=1e-3),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, patience=1, cooldown=1),
}


def plateau_metric(k):
    return 1.0 / (1 + k // 3)  # improves every third step


def test_construction_takes_the_first_step():
    opt = make_opt(lr=0.1, groups=2)
    sched = S.LinearLR(opt, start_factor=0.5, total_iters=4)
    assert sched.last_epoch == 0
    assert sched.base_lrs == [0.1, 0.2]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.2]
    assert sched.get_last_lr() == [0.05, 0.1] == [g["lr"] for g in opt.param_groups]
    assert S._LRScheduler is S.LRScheduler and isinstance(sched, S.LRScheduler)


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_opt(), step_size=2, last_epoch=5)


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip(name):
    """Save after 7 steps, load into a fresh optimizer and scheduler, continue: identical."""
    metric = plateau_metric if name == "ReduceLROnPlateau" else None
    opt = make_opt(groups=2)
    sched = MAKERS[name](opt)
    run(opt, sched, 7, metric)
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    json.dumps(sched_sd)  # plain data: serialisable as JSON
    assert "optimizer" not in sched_sd

    fresh_opt = make_opt(groups=2)
    fresh = MAKERS[name](fresh_opt)  # build the scheduler first, then load, as in torch
    fresh_opt.load_state_dict(opt_sd)
    fresh.load_state_dict(sched_sd)
    later = (lambda k: plateau_metric(k + 7)) if metric else None
    np.testing.assert_array_equal(run(fresh_opt, fresh, 20, later), run(opt, sched, 20, later))


def test_multistep_state_dict_is_a_sorted_list_and_loads_back_to_a_counter():
    opt = make_opt()
    sched = S.MultiStepLR(opt, milestones=[9, 2, 5, 5])
    sd = sched.state_dict()
    assert sd["milestones"] == [2, 5, 5, 9]
    other = S.MultiStepLR(make_opt(), milestones=[1])
    other.load_state_dict(json.loads(json.dumps(sd)))
    assert other.milestones == Counter({2: 1, 5: 2, 9: 1})
    other.load_state_dict({**sd, "milestones": Counter({3: 1})})  # torch's own format
    assert other.milestones == Counter({3: 1})


def test_lambda_lr_saves_callable_objects_but_not_functions():
    class Decay:
        def __init__(self):
            self.rate = 0.5

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = make_opt(groups=2)
    decay = Decay()
    sched = S.LambdaLR(opt, [decay, lambda e: 1.0])
    decay.rate = 0.25
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.25}, None]
    other_decay = Decay()
    other = S.LambdaLR(make_opt(groups=2), [other_decay, lambda e: 1.0])
    other.load_state_dict(sd)
    assert other_decay.rate == 0.25
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        S.LambdaLR(opt, [decay])


def test_warmup_cosine_values():
    base, warm, total, min_lr = 0.3, 5, 25, 0.01
    opt = make_opt(lr=base)
    sched = S.warmup_cosine(opt, warmup_steps=warm, total_steps=total, min_lr=min_lr)
    assert isinstance(sched, S.SequentialLR)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(total):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    expected = [base * (k + 1) / (warm + 1) for k in range(warm)]
    expected += [min_lr + (base - min_lr) * (1 + math.cos(math.pi * (k - warm) / (total - warm)))
                 / 2 for k in range(warm, total + 1)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[warm] == pytest.approx(base) and lrs[total] == pytest.approx(min_lr)
    assert all(a < b for a, b in zip(lrs[:warm], lrs[1:warm + 1]))  # rising
    assert all(a > b for a, b in zip(lrs[warm:total], lrs[warm + 1:total + 1]))  # falling


def test_warmup_cosine_edge_cases():
    opt = make_opt(lr=0.2)
    assert isinstance(S.warmup_cosine(opt, 0, 10), S.CosineAnnealingLR)
    with pytest.raises(ValueError, match="total_steps must be an integer larger than warmup"):
        S.warmup_cosine(make_opt(), 10, 10)
    with pytest.raises(ValueError, match="warmup_steps must be a non-negative integer"):
        S.warmup_cosine(make_opt(), -1, 10)
    sched = S.warmup_cosine(make_opt(lr=1.0), 4, 10, start_factor=0.5)
    assert sched.get_last_lr() == [0.5]


def test_cosine_annealing_goes_back_up_past_t_max():
    opt = make_opt(lr=1.0)
    lrs = run(opt, S.CosineAnnealingLR(opt, T_max=4), 12)[:, 0]
    closed = [(1 + math.cos(math.pi * k / 4)) / 2 for k in range(1, 13)]
    np.testing.assert_allclose(lrs, closed, atol=1e-15)


def test_one_cycle_cycles_beta1_and_stops_at_total_steps():
    opt = make_opt(lr=0.1, cls=optim.Adam)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(1.0 / 25) and group["betas"][0] == pytest.approx(0.95)
    lrs = run(opt, sched, 9)[:, 0]  # epochs 1..9: the last of the 10 steps ends the cycle
    assert lrs.max() == pytest.approx(1.0) and lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
    assert group["betas"][0] == pytest.approx(0.95) and group["betas"][1] == 0.999
    sched.step()  # epoch 10: allowed, as in torch
    with pytest.raises(ValueError, match="tried to step 11 times.*total steps is 10"):
        sched.step()
    with pytest.raises(ValueError, match="either total_steps OR"):
        S.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="optimizer must support momentum"):
        S.OneCycleLR(make_opt(cls=optim.Adagrad), max_lr=1.0, total_steps=5)
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        S.OneCycleLR(make_opt(), max_lr=[1.0, 2.0], total_steps=5)


def test_reduce_on_plateau_reduces_after_patience_and_respects_min_lr():
    opt = make_opt(lr=1.0)
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, min_lr=0.3)
    for value in [1.0, 1.0, 1.0]:
        sched.step(value)
    assert sched.get_last_lr() == [1.0]
    sched.step(1.0)  # the third bad epoch in a row exceeds patience=2
    assert sched.get_last_lr() == [0.5]
    for _ in range(3):
        sched.step(1.0)
    assert sched.get_last_lr() == [0.3]  # floor
    sched.step(0.1)
    assert sched.best == 0.1 and sched.num_bad_epochs == 0
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        S.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="threshold mode 'x' is unknown"):
        S.ReduceLROnPlateau(opt, threshold_mode="x")


def test_step_with_epoch_uses_the_closed_form_and_warns():
    opt = make_opt(lr=1.0)
    sched = S.StepLR(opt, step_size=3, gamma=0.5)
    opt.step()
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(7)
    assert sched.last_epoch == 7 and sched.get_last_lr() == [0.25]


def test_warnings_for_misuse():
    opt = make_opt()
    sched = S.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()
    opt = make_opt()
    sched = S.ExponentialLR(opt, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()  # the right order: no warning


def test_argument_errors():
    opt = make_opt()
    with pytest.raises(ValueError, match="starting multiplicative factor"):
        S.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="ending multiplicative factor"):
        S.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="one milestone fewer than schedulers"):
        S.SequentialLR(opt, [S.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.SequentialLR(opt, [S.StepLR(opt, 2), S.ReduceLROnPlateau(opt)], milestones=[3])
    with pytest.raises(ValueError, match="same optimizer"):
        S.SequentialLR(opt, [S.StepLR(opt, 2), S.StepLR(make_opt(), 2)], milestones=[3])
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 2)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        S.StepLR(opt, 0)
