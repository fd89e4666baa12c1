"""ConstantLR, MultiplicativeLR, PolynomialLR, CosineAnnealingWarmRestarts, CyclicLR and
ChainedScheduler drive training exactly as PyTorch's do (float64, step for step), and
their states round-trip through state_dict / load_state_dict."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import backprop
import backprop.optim  # noqa: F401 (makes backprop.optim an attribute for the harness)
from backprop.optim import lr_scheduler as bp_sched

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


class Halver:
    """A callable object (not a function), so state_dict saves its attributes."""

    def __init__(self):
        self.factor = 0.5

    def __call__(self, x):
        return self.factor ** x


CASES = {
    "ConstantLR": (sgd(), lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=12)),
    "ConstantLR-defaults": (adam(), lambda s, o: s.ConstantLR(o)),
    "MultiplicativeLR": (sgd(), lambda s, o: s.MultiplicativeLR(o, lambda e: 0.97)),
    "MultiplicativeLR-list": (two_groups("Adam", lr=0.02), lambda s, o: s.MultiplicativeLR(
        o, [lambda e: 0.95, lambda e: 1.0 if e % 3 else 0.8])),
    "PolynomialLR": (sgd(), lambda s, o: s.PolynomialLR(o, total_iters=30, power=2.0)),
    "PolynomialLR-defaults": (adam(), lambda s, o: s.PolynomialLR(o)),
    "CosineAnnealingWarmRestarts": (sgd(), lambda s, o: s.CosineAnnealingWarmRestarts(
        o, T_0=7, eta_min=0.001)),
    "CosineAnnealingWarmRestarts-T_mult": (adam(), lambda s, o: s.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2)),
    "CyclicLR-triangular-sgd": (sgd(momentum=0.9), lambda s, o: s.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=6)),
    "CyclicLR-triangular2-adam": (adam(), lambda s, o: s.CyclicLR(
        o, base_lr=0.005, max_lr=0.05, step_size_up=4, step_size_down=7, mode="triangular2",
        base_momentum=0.85, max_momentum=0.95)),
    "CyclicLR-exp_range": (sgd(momentum=0.5), lambda s, o: s.CyclicLR(
        o, base_lr=0.01, max_lr=0.2, step_size_up=5, mode="exp_range", gamma=0.97,
        cycle_momentum=False)),
    "CyclicLR-scale_fn-iterations": (sgd(), lambda s, o: s.CyclicLR(
        o, base_lr=0.02, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 1 / (1 + 0.05 * x),
        scale_mode="iterations")),
    "CyclicLR-groups": (two_groups("SGD", lr=0.1, momentum=0.9), lambda s, o: s.CyclicLR(
        o, base_lr=[0.01, 0.02], max_lr=[0.1, 0.05], step_size_up=5,
        base_momentum=[0.8, 0.7], max_momentum=0.9)),
    "ChainedScheduler": (sgd(), lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.2, total_iters=5), s.ExponentialLR(o, gamma=0.95)])),
    "ChainedScheduler-three": (adam(), lambda s, o: s.ChainedScheduler(
        [s.LinearLR(o, start_factor=0.25, total_iters=8), s.StepLR(o, 10, gamma=0.5),
         s.PolynomialLR(o, total_iters=60)], optimizer=o)),
    "SequentialLR-of-new": (sgd(), lambda s, o: s.SequentialLR(
        o, [s.ConstantLR(o, factor=0.1, total_iters=20), s.PolynomialLR(o, total_iters=40)],
        milestones=[10])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_scheduled_training_matches_torch(oracle, case):
    make_optimizer, make_scheduler = CASES[case]
    ours = both(oracle, make_optimizer, make_scheduler)
    assert len(set(np.round(ours["lrs"][:, 0], 15))) > 1  # the schedule did change the rate


def _lrs(lib, make, epochs=60, lr=0.5, opt="SGD", step_arg=None):
    """The rates (and momenta) a schedule gives over ``epochs`` steps, no training."""
    w = lib.zeros(1, requires_grad=True)
    optimizer = (lib.optim.SGD([w], lr=lr, momentum=0.9) if opt == "SGD"
                 else lib.optim.Adam([w], lr=lr))
    sched = make(lib.optim.lr_scheduler, optimizer)
    lrs, moms = [], []
    for epoch in range(epochs):
        optimizer.step()
        if step_arg is None:
            sched.step()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sched.step(step_arg(epoch))
        lrs.append(sched.get_last_lr()[0])
        group = optimizer.param_groups[0]
        moms.append(group["betas"][0] if "betas" in group else group["momentum"])
    return np.array(lrs), np.array(moms)


@pytest.mark.parametrize("make", [
    lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=1),
    lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=3, eta_min=0.05),
    lambda s, o: s.PolynomialLR(o, total_iters=13, power=0.5),
    lambda s, o: s.ConstantLR(o, factor=0.0, total_iters=0),
    lambda s, o: s.CyclicLR(o, base_lr=0.1, max_lr=1.0, step_size_up=1, step_size_down=2,
                            mode="triangular2"),
    lambda s, o: s.MultiplicativeLR(o, lambda e: 1.0 + (-1) ** e * 0.1),
], ids=["cawr-T0=1", "cawr-T_mult=3", "poly-sqrt", "constant-0-iters", "cyclic-short",
        "multiplicative-alternating"])
def test_schedule_values_match_torch(oracle, make):
    ours, theirs = _lrs(backprop, make), _lrs(oracle, make)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("t_mult", [1, 2])
def test_warm_restarts_fractional_epochs_match_torch(oracle, t_mult):
    """step(epoch + i / n) anneals within an epoch and restarts at the right time."""
    def make(s, o):
        return s.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=t_mult, eta_min=0.01)

    def arg(k):
        return k / 4
    ours, theirs = _lrs(backprop, make, step_arg=arg), _lrs(oracle, make, step_arg=arg)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make", [
    lambda s, o: s.ConstantLR(o, factor=0.3, total_iters=7),
    lambda s, o: s.PolynomialLR(o, total_iters=20, power=3.0),
], ids=["constant", "poly"])
def test_closed_form_epoch_argument_matches_torch(oracle, make):
    """The deprecated step(epoch) jumps use the closed form, as in PyTorch."""
    arg = lambda k: (k * 7) % 25  # noqa: E731
    ours, theirs = _lrs(backprop, make, step_arg=arg), _lrs(oracle, make, step_arg=arg)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-13, atol=1e-16)


ROUND_TRIP = {
    "ConstantLR": lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=9),
    "MultiplicativeLR": lambda s, o: s.MultiplicativeLR(o, Halver()),
    "PolynomialLR": lambda s, o: s.PolynomialLR(o, total_iters=25, power=1.5),
    "CosineAnnealingWarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
    "CyclicLR": lambda s, o: s.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4,
                                        mode="exp_range", gamma=0.9),
    "ChainedScheduler": lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.5, total_iters=3), s.ExponentialLR(o, gamma=0.9)]),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_resumes_the_schedule(name):
    """A fresh scheduler loaded from a state (saved mid-schedule, through JSON) continues
    exactly as the uninterrupted one."""
    make = ROUND_TRIP[name]

    def fresh():
        w = backprop.zeros(1, requires_grad=True)
        opt = backprop.optim.SGD([w], lr=0.5, momentum=0.9)
        return opt, make(bp_sched, opt)

    opt, sched = fresh()
    for _ in range(11):
        opt.step()
        sched.step()
    saved_opt = opt.state_dict()
    saved = json.loads(json.dumps(sched.state_dict()))  # plain data only
    if name == "MultiplicativeLR":
        sched.lr_lambdas[0].factor = 0.75  # a callable object's attributes are state
        saved = sched.state_dict()
    expected = []
    for _ in range(15):
        opt.step()
        sched.step()
        expected.append(sched.get_last_lr()[0])

    opt2, sched2 = fresh()
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    if name == "MultiplicativeLR":
        assert sched2.lr_lambdas[0].factor == 0.75
    got = []
    for _ in range(15):
        opt2.step()
        sched2.step()
        got.append(sched2.get_last_lr()[0])
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_cyclic_state_dict_matches_torch_keys(oracle):
    """The saved entries are PyTorch's (so a state moves between the two by name)."""
    def state(lib):
        w = lib.zeros(1, requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1, momentum=0.9)
        return lib.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=3).state_dict()
    ours, theirs = state(backprop), state(oracle)
    assert set(theirs) - {"_scale_fn_ref"} <= set(ours)
    for key in ("total_size", "step_ratio", "max_lrs", "base_lrs", "last_epoch",
                "base_momentums", "max_momentums", "scale_mode", "_last_lr"):
        assert ours[key] == theirs[key], key


def _opt(momentum=0.0, lr=0.1, groups=1):
    ws = [backprop.zeros(1, requires_grad=True) for _ in range(groups)]
    return backprop.optim.SGD([{"params": [w]} for w in ws], lr=lr, momentum=momentum)


@pytest.mark.parametrize("build, match", [
    (lambda: bp_sched.ConstantLR(_opt(), factor=1.5), "ConstantLR.*between 0 and 1"),
    (lambda: bp_sched.PolynomialLR(_opt(), total_iters=0), "PolynomialLR.*total_iters"),
    (lambda: bp_sched.CosineAnnealingWarmRestarts(_opt(), T_0=0), "T_0"),
    (lambda: bp_sched.CosineAnnealingWarmRestarts(_opt(), T_0=2.5), "T_0"),
    (lambda: bp_sched.CosineAnnealingWarmRestarts(_opt(), T_0=2, T_mult=0), "T_mult"),
    (lambda: bp_sched.CosineAnnealingWarmRestarts(_opt(), T_0=2, eta_min="0"), "eta_min"),
    (lambda: bp_sched.CyclicLR(_opt(), 0.1, 1.0, mode="square"), "mode 'square'"),
    (lambda: bp_sched.CyclicLR(_opt(), 0.1, 1.0, scale_mode="epochs",
                               scale_fn=lambda x: 1.0), "scale_mode"),
    (lambda: bp_sched.CyclicLR(_opt(momentum=0.9, groups=2), [0.1], 1.0), "base_lr.*2"),
    (lambda: bp_sched.MultiplicativeLR(_opt(groups=2), [lambda e: 1.0]), "2 lr_lambdas"),
    (lambda: bp_sched.ChainedScheduler([]), "at least one"),
])
def test_bad_arguments_raise_value_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_types_and_mismatched_optimizers():
    with pytest.raises(TypeError, match="MultiplicativeLR.*function"):
        bp_sched.MultiplicativeLR(_opt(), 0.9)
    with pytest.raises(TypeError, match="not an Optimizer"):
        bp_sched.CyclicLR(object(), 0.1, 1.0)
    from backprop.optim.optimizer import Optimizer

    class Bare(Optimizer):  # no momentum and no betas
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))

    with pytest.raises(ValueError, match="CyclicLR: optimizer must support momentum"):
        bp_sched.CyclicLR(Bare([backprop.zeros(1, requires_grad=True)]), 0.1, 1.0)
    a, b = _opt(), _opt()
    with pytest.raises(ValueError, match="same optimizer"):
        bp_sched.ChainedScheduler([bp_sched.ConstantLR(a), bp_sched.ConstantLR(b)])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        bp_sched.ChainedScheduler([bp_sched.ReduceLROnPlateau(a)])
    with pytest.raises(ValueError, match="non-negative epoch"):
        bp_sched.CosineAnnealingWarmRestarts(a, T_0=2).step(-1)


def test_cyclic_sets_momentum_and_lr_at_construction():
    opt = _opt(momentum=0.5)
    bp_sched.CyclicLR(opt, base_lr=0.02, max_lr=0.2, step_size_up=10)
    group = opt.param_groups[0]
    assert group["lr"] == 0.02 and group["momentum"] == 0.9
    assert group["max_momentum"] == 0.9 and group["base_momentum"] == 0.8
    assert group["initial_lr"] == 0.02  # as in PyTorch: base_lr is written first


def test_repr_of_chained():
    opt = _opt()
    sched = bp_sched.ChainedScheduler([bp_sched.ConstantLR(opt), bp_sched.ExponentialLR(opt, 0.9)])
    assert repr(sched).startswith("ChainedScheduler([ConstantLR, ExponentialLR]")
