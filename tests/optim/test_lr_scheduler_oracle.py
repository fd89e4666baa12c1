"""Every scheduler drives training exactly as PyTorch's does (50 steps, float64).

Each case trains the same MLP with backprop and with torch, stepping the scheduler after
every optimizer step; the learning rates (and cycled momenta), losses and final weights
must agree step for step.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import backprop.optim  # noqa: F401 (makes backprop.optim an attribute for the harness)

from tests.optim.helpers import both


def sgd(lr=0.1, momentum=0.9):
    return lambda optim, params: optim.SGD(params, lr=lr, momentum=momentum)


def adam(lr=0.02):
    return lambda optim, params: optim.Adam(params, lr=lr)


def two_groups(name="SGD", **kwargs):
    def make(optim, params):
        return getattr(optim, name)([{"params": params[:2]},
                                     {"params": params[2:], "lr": kwargs["lr"] / 2}], **kwargs)
    return make


CASES = {
    "StepLR": (sgd(), lambda s, o: s.StepLR(o, step_size=10, gamma=0.5)),
    "StepLR-adam": (adam(), lambda s, o: s.StepLR(o, step_size=7)),
    "MultiStepLR": (sgd(), lambda s, o: s.MultiStepLR(o, milestones=[10, 25, 25, 40], gamma=0.5)),
    "ExponentialLR": (sgd(), lambda s, o: s.ExponentialLR(o, gamma=0.95)),
    "CosineAnnealingLR-past-T_max": (
        sgd(), lambda s, o: s.CosineAnnealingLR(o, T_max=15, eta_min=0.001)),
    "CosineAnnealingLR": (adam(), lambda s, o: s.CosineAnnealingLR(o, T_max=50)),
    "LinearLR": (sgd(), lambda s, o: s.LinearLR(o)),
    "LinearLR-decay": (
        sgd(), lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=30)),
    "SequentialLR-warmup-cosine": (adam(), lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.1, total_iters=10),
            s.CosineAnnealingLR(o, T_max=40, eta_min=1e-4)], milestones=[10])),
    "SequentialLR-three": (sgd(), lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.5, total_iters=4), s.ExponentialLR(o, gamma=0.9),
            s.StepLR(o, step_size=5, gamma=0.5)], milestones=[8, 20])),
    "OneCycleLR-sgd-cos": (sgd(momentum=0.9),
                           lambda s, o: s.OneCycleLR(o, max_lr=0.2, total_steps=50)),
    "OneCycleLR-adam-linear-three-phase": (adam(), lambda s, o: s.OneCycleLR(
        o, max_lr=0.05, epochs=5, steps_per_epoch=10, anneal_strategy="linear",
        three_phase=True, pct_start=0.25, div_factor=10.0, final_div_factor=100.0)),
    "OneCycleLR-groups": (two_groups("SGD", lr=0.1, momentum=0.9), lambda s, o: s.OneCycleLR(
        o, max_lr=[0.2, 0.05], total_steps=60, base_momentum=[0.8, 0.85],
        max_momentum=0.95)),
    "OneCycleLR-no-momentum-cycle": (sgd(momentum=0.0), lambda s, o: s.OneCycleLR(
        o, max_lr=0.3, total_steps=55, cycle_momentum=False, pct_start=0.4)),
    "LambdaLR": (sgd(), lambda s, o: s.LambdaLR(o, lambda e: 1.0 / (1.0 + 0.1 * e))),
    "LambdaLR-list": (two_groups("Adam", lr=0.02), lambda s, o: s.LambdaLR(
        o, [lambda e: 0.97 ** e, lambda e: 1.0 + math.sin(e) / 2])),
    "StepLR-groups": (two_groups("RMSprop", lr=0.01), lambda s, o: s.StepLR(o, 5, gamma=0.7)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_scheduled_training_matches_torch(oracle, case):
    make_optimizer, make_scheduler = CASES[case]
    ours = both(oracle, make_optimizer, make_scheduler)
    assert len(set(np.round(ours["lrs"][:, 0], 15))) > 1  # the schedule did change the rate


def _noisy(step, loss):
    """A metric that plateaus now and then, so the scheduler has something to react to."""
    return loss + 0.05 * (step % 6)


@pytest.mark.parametrize("kwargs", [
    dict(factor=0.5, patience=2),
    dict(mode="max", factor=0.5, patience=1, threshold=0.01, threshold_mode="abs",
         cooldown=2, min_lr=0.02),
    dict(factor=0.3, patience=0, cooldown=1, threshold=0.0, min_lr=[0.01, 0.005], eps=1e-3),
])
def test_reduce_lr_on_plateau_matches_torch(oracle, kwargs):
    metric = _noisy if kwargs.get("mode", "min") == "min" else (lambda s, loss: -_noisy(s, loss))
    make_opt = two_groups("SGD", lr=0.1, momentum=0.9) if isinstance(kwargs.get("min_lr"), list) \
        else sgd()
    ours = both(oracle, make_opt, lambda s, o: s.ReduceLROnPlateau(o, **kwargs), metric=metric)
    assert len(set(ours["lrs"][:, 0])) > 2  # it reduced at least twice


def test_warmup_cosine_matches_torch_sequential(oracle):
    """backprop's helper equals PyTorch's SequentialLR(LinearLR, CosineAnnealingLR) recipe."""
    from backprop.optim.lr_scheduler import warmup_cosine

    warm, total, min_lr = 8, 50, 1e-3

    def ours_sched(s, o):
        if s is backprop.optim.lr_scheduler:
            return warmup_cosine(o, warmup_steps=warm, total_steps=total, min_lr=min_lr)
        return s.SequentialLR(o, [s.LinearLR(o, start_factor=1 / (warm + 1), total_iters=warm),
                                  s.CosineAnnealingLR(o, T_max=total - warm, eta_min=min_lr)],
                              milestones=[warm])

    both(oracle, adam(lr=0.03), ours_sched)


def test_scheduler_lr_values_match_torch_over_many_epochs(oracle):
    """Schedules alone (no training) over 120 epochs: past T_max, milestones and restarts."""
    import backprop

    def run(lib, make):
        w = lib.zeros(1, requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.5, momentum=0.9)
        sched = make(lib.optim.lr_scheduler, opt)
        lrs = []
        for _ in range(120):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
        return np.array(lrs)

    makers = [
        lambda s, o: s.CosineAnnealingLR(o, T_max=17, eta_min=0.01),
        lambda s, o: s.CosineAnnealingLR(o, T_max=1),
        lambda s, o: s.StepLR(o, 13, gamma=0.8),
        lambda s, o: s.MultiStepLR(o, [3, 50, 90], gamma=0.3),
        lambda s, o: s.LinearLR(o, start_factor=0.2, end_factor=0.6, total_iters=40),
        lambda s, o: s.ExponentialLR(o, gamma=0.99),
    ]
    for make in makers:
        np.testing.assert_allclose(run(backprop, make), run(oracle, make), rtol=1e-13, atol=1e-16)
