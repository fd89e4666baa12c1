"""The doctor: every rule fires on readings built to show its problem, and stays quiet on
readings that are healthy or only close to the problem; then real networks trained with the
real engine and a real Monitor."""
import itertools
import json
import math

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.data import DataLoader, TensorDataset
from backprop.data.toy import spiral
from backprop.diagnostics import Finding, Monitor, Readings, Report, diagnose
from backprop.diagnostics.doctor import (
    DEAD_FRACTION,
    EXPLODING_NORM,
    LR_TOO_LOW_RATIO,
    RULES,
    SEVERITIES,
)
from backprop.train import History, Trainer, TrainingDiverged

WEIGHTS = ["fc1.weight", "fc2.weight", "fc3.weight"]
PARAMS = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
LAYERS = ["fc1", "act1", "fc2", "act2", "fc3"]
BATCH = 32


# -- hand-built readings ----------------------------------------------------------------------
def make_step(step, *, loss, lr=0.01, grad_norms=(0.5, 0.8, 1.0), update_ratio=1e-3,
              kind="relu", dead=0.1, saturated=None, stds=(1.0, 0.9), noise=2.0 * BATCH):
    """One recorded step of a healthy 2-16-16-3 MLP, with the given values changed."""
    params = {}
    for name, g in zip(WEIGHTS, grad_norms):
        params[name] = {"grad_norm": g, "weight_norm": 3.0, "update_ratio": update_ratio,
                        "grad_abs_mean": g / 20}
        params[name.replace("weight", "bias")] = {"grad_norm": g / 4, "weight_norm": 0.5,
                                                  "update_ratio": update_ratio,
                                                  "grad_abs_mean": g / 40}
    acts = {}
    for name, std in zip(("act1", "act2"), stds):
        acts[name] = {"kind": kind, "mean": 0.4, "std": std,
                      "dead_fraction": dead if kind in ("relu", "leaky_relu") else None,
                      "saturated_fraction": saturated if kind in ("sigmoid", "tanh") else None,
                      "hist": {"edges": [0.0, 1.0], "counts": [16]}}
    for name in ("fc1", "fc2", "fc3"):
        acts[name] = {"kind": "linear", "mean": 0.0, "std": 1.0, "dead_fraction": None,
                      "saturated_fraction": None, "hist": {"edges": [0.0, 1.0], "counts": [16]}}
    total = math.sqrt(sum(g * g for g in grad_norms))
    return {"step": step, "epoch": 1 + (step - 1) // 100, "loss": loss, "lr": lr,
            "grad_norm": total, "params": params, "activations": acts,
            "noise": None if noise is None else {"batches": 8, "batch_size": BATCH,
                                                 "trace_cov": noise, "grad_sq_norm": 1.0,
                                                 "b_noise": noise}}


def healthy_steps(n=12, interval=10, **changes):
    """Recorded steps 1, 11, 21, ... of a run whose loss falls from 1.1 towards 0.3."""
    steps = []
    for i in range(n):
        loss = 0.3 + 0.8 * math.exp(-i / 4)
        kw = {key: (value(i) if callable(value) else value) for key, value in changes.items()}
        kw.setdefault("loss", loss)
        steps.append(make_step(1 + i * interval, **kw))
    return steps


def readings_of(steps, *, epochs=(), nonfinite=None, batch_size=BATCH, layers=LAYERS):
    meta = {"interval": 10, "params": PARAMS, "layers": layers, "batch_size": batch_size}
    return Readings(meta, steps, list(epochs), nonfinite)


def test_a_healthy_run_gets_a_clean_report():
    report = diagnose(readings_of(healthy_steps()))
    assert len(report) == 0, str(report)
    assert str(report) == "No problems found in 12 recorded steps."
    assert report.worst is None


# -- vanishing gradients ----------------------------------------------------------------------
def test_vanishing_gradients_names_the_first_layer_and_gives_the_ratios():
    report = diagnose(readings_of(healthy_steps(grad_norms=(1e-5, 2e-3, 1.0))))
    f = report["vanishing_gradients"]
    assert f.layers == ["fc1", "fc2"]              # fc2 is 500x below: flagged too
    assert f.evidence["first_layer"] == "fc1"
    assert f.evidence["ratio_to_last"]["fc1"] == pytest.approx(1e5)
    assert f.evidence["ratio_to_last"]["fc2"] == pytest.approx(500)
    assert f.severity == "error"                   # 1e5 >= VANISHING_SEVERE_RATIO
    assert "fc1" in f.summary and "fc3" in f.summary


def test_vanishing_gradients_lists_every_layer_over_the_ratio_earliest_first():
    report = diagnose(readings_of(healthy_steps(grad_norms=(2e-3, 5e-3, 1.0))))
    f = report["vanishing_gradients"]
    assert f.layers == ["fc1", "fc2"] and f.severity == "warning"


def test_vanishing_gradients_needs_a_persistent_gap():
    # 50x below the last layer is a gap but not orders of magnitude.
    assert "vanishing_gradients" not in diagnose(
        readings_of(healthy_steps(grad_norms=(0.02, 0.5, 1.0))))
    # One odd step among the recent ones is outvoted by the median.
    steps = healthy_steps(grad_norms=lambda i: (1e-4, 0.5, 1.0) if i == 10 else (0.5, 0.8, 1.0))
    assert "vanishing_gradients" not in diagnose(readings_of(steps))
    # A single recorded step is not "persistent".
    assert "vanishing_gradients" not in diagnose(
        readings_of(healthy_steps(n=1, grad_norms=(1e-5, 0.5, 1.0))))


def test_vanishing_gradients_ignores_layers_without_any_gradient():
    # Everything zero (a dead network) is not "early layers far below the last".
    report = diagnose(readings_of(healthy_steps(grad_norms=(0.0, 0.0, 0.0))))
    assert "vanishing_gradients" not in report
    # Exactly zero below dead units is "no gradient", which dead_relus reports.
    report = diagnose(readings_of(healthy_steps(grad_norms=(0.0, 0.3, 1.0), dead=1.0)))
    assert report.names() == ["dead_relus"]


# -- exploding gradients ----------------------------------------------------------------------
def test_exploding_gradients_on_growth_over_the_run():
    steps = healthy_steps(grad_norms=lambda i: (10.0 ** i / 10, 10.0 ** i / 10, 10.0 ** i / 10))
    steps = steps[:6]   # norms 0.17 ... 1.7e4: growth over 1e3
    for s in steps:
        s["grad_norm"] = min(s["grad_norm"], EXPLODING_NORM / 2)  # growth, not a huge norm
    steps[0]["grad_norm"] = steps[1]["grad_norm"] = steps[2]["grad_norm"] = 0.1
    report = diagnose(readings_of(steps))
    f = report["exploding_gradients"]
    assert f.severity == "warning"
    assert f.evidence["growth"] >= 1e3


def test_exploding_gradients_on_a_huge_norm_and_on_a_non_finite_gradient():
    steps = healthy_steps()
    for s in steps[-3:]:
        s["grad_norm"] = 5 * EXPLODING_NORM
    assert diagnose(readings_of(steps))["exploding_gradients"].severity == "warning"

    nonfinite = {"step": 51, "kind": "gradient", "name": "fc1.weight", "detail": "inf in grad"}
    report = diagnose(readings_of(healthy_steps(n=6), nonfinite=nonfinite))
    f = report["exploding_gradients"]
    assert f.severity == "error" and f.layers == ["fc1"] and "51" in f.summary


def test_exploding_gradients_not_for_moderate_growth():
    # Growing 100x (as a run from a small init may) and a single large reading: no alarm.
    steps = healthy_steps(grad_norms=lambda i: (0.01 * 1.6 ** i,) * 3)
    steps[5]["grad_norm"] = 10 * EXPLODING_NORM
    report = diagnose(readings_of(steps))
    assert "exploding_gradients" not in report


# -- divergence -------------------------------------------------------------------------------
def test_divergence_on_a_non_finite_loss_gives_step_lr_and_last_finite_loss():
    steps = healthy_steps(n=8, lr=10.0)
    steps[-1]["loss"] = math.nan
    report = diagnose(readings_of(steps))
    f = report["divergence"]
    assert f.severity == "error"
    assert f.evidence["step"] == 71 and f.evidence["lr"] == 10.0
    assert f.evidence["last_finite_step"] == 61
    assert f.evidence["last_finite_loss"] == pytest.approx(steps[-2]["loss"])
    assert "learning rate is too high for this batch size" in f.advice
    assert "step 71" in f.summary and "10" in f.summary and "batch size 32" in f.summary
    # The NaN gradient that follows a NaN loss is not an exploding gradient.
    steps[-1]["grad_norm"] = math.nan
    assert diagnose(readings_of(steps)).names() == ["divergence"]


def test_divergence_from_the_monitors_nonfinite_record_and_the_history():
    # The trainer stopped before the monitor recorded the step; the history has every step.
    history = History(steps=[{"step": s, "epoch": 1, "loss": 1.0 + s, "lr": 3.0,
                              "grad_norm": 1.0} for s in range(1, 15)])
    nonfinite = {"step": 15, "kind": "loss", "name": "loss", "detail": "loss is nan"}
    f = diagnose(readings_of(healthy_steps(n=2), nonfinite=nonfinite), history)["divergence"]
    assert f.evidence["step"] == 15 and f.evidence["lr"] == 3.0
    assert f.evidence["last_finite_step"] == 14 and f.evidence["last_finite_loss"] == 15.0
    assert "nan" in f.summary


def test_divergence_on_a_rise_by_orders_of_magnitude():
    losses = [1.1, 0.9, 0.8, 0.7, 0.7, 5.0, 40.0, 300.0, 2000.0]
    steps = healthy_steps(n=len(losses), loss=lambda i: losses[i], lr=2.0)
    f = diagnose(readings_of(steps))["divergence"]
    assert f.evidence["lowest_loss"] == pytest.approx(0.7)
    # The first reading after the lowest over 10x the starting level (median 0.9): 40.
    assert f.evidence["step"] == 61 and "step 61" in f.summary
    assert f.evidence["lr"] == 2.0


def test_divergence_when_the_loss_stays_worse_than_untrained_after_a_spike():
    # SGD with a far too large step on a ReLU net: the loss jumps around above where it
    # started (1.1 for three classes) without ever becoming NaN.
    losses = [1.1, 7.5, 3.2, 2.7, 54.6, 3.5, 17.2, 6.3, 4.2, 2.8, 2.3, 1.7, 1.4, 2.5, 7.0, 2.1]
    f = diagnose(readings_of(healthy_steps(n=len(losses), loss=lambda i: losses[i],
                                           lr=10.0)))["divergence"]
    assert f.evidence["step"] == 41 and f.evidence["peak_loss"] == 54.6
    assert f.evidence["loss_start"] == 1.1 and f.evidence["lr"] == 10.0
    assert "learning rate 10" in f.summary


def test_divergence_when_steps_overshoot_and_the_loss_ends_above_the_start():
    # No spike, but one update moved the weights by 150% of their size and the loss never
    # got below the untrained network's again.
    losses = [1.1, 2.0, 2.2, 1.9, 2.1, 2.3, 1.8, 2.0]
    steps = healthy_steps(n=len(losses), loss=lambda i: losses[i], lr=10.0)
    steps[1]["params"]["fc2.weight"]["update_ratio"] = 1.5
    f = diagnose(readings_of(steps))["divergence"]
    assert f.evidence["step"] == 11 and f.evidence["peak_update_ratio"] == 1.5
    assert "150% of their size" in f.summary
    # The same losses with steps of ordinary size: a network stuck a bit above a lucky
    # first batch, not a divergence.
    steps[1]["params"]["fc2.weight"]["update_ratio"] = 0.2
    assert "divergence" not in diagnose(readings_of(steps))


def test_divergence_not_for_noise_or_a_rise_from_a_tiny_loss():
    # Mini-batch noise around a falling loss.
    losses = [1.1, 0.9, 1.3, 0.6, 0.9, 0.5, 0.8, 0.4, 0.7]
    assert "divergence" not in diagnose(
        readings_of(healthy_steps(n=9, loss=lambda i: losses[i])))
    # 1e-6 -> 1e-3 is 1000x but still far below where the run started.
    losses = [1.0, 0.1, 1e-3, 1e-6, 1e-6, 1e-6, 1e-3, 1e-3, 1e-3]
    assert "divergence" not in diagnose(
        readings_of(healthy_steps(n=9, loss=lambda i: losses[i])))
    # One early spike, after which the run learns: a bumpy start, not a divergence.
    losses = [1.1, 15.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45]
    assert "divergence" not in diagnose(
        readings_of(healthy_steps(n=10, loss=lambda i: losses[i])))


# -- learning rate too low --------------------------------------------------------------------
def test_lr_too_low_on_tiny_updates_and_a_flat_loss():
    steps = healthy_steps(update_ratio=2e-7, lr=1e-6, loss=lambda i: 1.1 - 1e-4 * i)
    f = diagnose(readings_of(steps))["lr_too_low"]
    assert f.severity == "warning"
    assert f.evidence["update_ratio"] == pytest.approx(2e-7)
    assert "1e-03" in f.summary or "0.001" in f.summary   # cites the ~1e-3 rule of thumb
    assert "Karpathy" in f.summary


def test_lr_too_low_not_when_one_layer_moves_fine():
    # The early layers hardly move because their gradients vanish, not because of the lr.
    steps = healthy_steps(loss=1.1, grad_norms=(1e-6, 1e-5, 1.0))
    for s in steps:
        for name in ("fc1.weight", "fc2.weight"):
            s["params"][name]["update_ratio"] = 1e-8
    assert diagnose(readings_of(steps)).names() == ["vanishing_gradients"]


def test_lr_too_low_not_when_the_loss_falls_or_the_updates_are_fine():
    # Tiny updates at the end of a decayed schedule, after the loss fell: not "too low".
    steps = healthy_steps(update_ratio=lambda i: 1e-3 if i < 6 else 1e-7)
    assert "lr_too_low" not in diagnose(readings_of(steps))
    # A flat loss with healthy update sizes is something else (e.g. a finished run).
    steps = healthy_steps(update_ratio=1e-3, loss=0.5)
    assert "lr_too_low" not in diagnose(readings_of(steps))
    # Just above the threshold.
    steps = healthy_steps(update_ratio=2 * LR_TOO_LOW_RATIO, loss=0.5)
    assert "lr_too_low" not in diagnose(readings_of(steps))


# -- dead ReLUs -------------------------------------------------------------------------------
def test_dead_relus_names_the_layers():
    steps = healthy_steps()
    for s in steps[-3:]:
        s["activations"]["act2"]["dead_fraction"] = 0.75
    f = diagnose(readings_of(steps))["dead_relus"]
    assert f.layers == ["act2"] and f.severity == "warning"
    assert f.evidence["dead_fraction"] == {"act2": 0.75}
    assert "act2 (75%)" in f.summary


def test_dead_relus_all_dead_is_an_error():
    f = diagnose(readings_of(healthy_steps(dead=1.0)))["dead_relus"]
    assert f.severity == "error" and f.layers == ["act1", "act2"]


def test_dead_relus_all_dead_in_several_layers_reads_as_plural():
    f = diagnose(readings_of(healthy_steps(dead=1.0)))["dead_relus"]
    assert "In act1 and act2 no unit fires at all, so nothing flows back through them" \
        in f.summary


def test_dead_relus_not_for_early_deaths_small_batches_or_leaky_units():
    steps = healthy_steps()
    for s in steps[:5]:                       # dead early, recovered since
        s["activations"]["act1"]["dead_fraction"] = 0.9
    steps[-1]["activations"]["act1"]["dead_fraction"] = 0.9   # one odd batch
    assert "dead_relus" not in diagnose(readings_of(steps))
    assert "dead_relus" not in diagnose(readings_of(healthy_steps(dead=DEAD_FRACTION)))
    # With 4 examples a healthy unit is often silent for the whole batch by chance.
    assert "dead_relus" not in diagnose(readings_of(healthy_steps(dead=0.8), batch_size=4))
    # Leaky ReLU units keep a gradient for negative inputs: never "dead".
    assert "dead_relus" not in diagnose(readings_of(healthy_steps(kind="leaky_relu", dead=0.9)))


# -- saturated units --------------------------------------------------------------------------
def test_saturated_units_on_sigmoid_and_tanh_layers():
    f = diagnose(readings_of(healthy_steps(kind="tanh", saturated=0.8)))["saturated_units"]
    assert f.layers == ["act1", "act2"] and f.severity == "warning"
    steps = healthy_steps(kind="sigmoid", saturated=0.1)
    for s in steps[-3:]:
        s["activations"]["act1"]["saturated_fraction"] = 0.6
    assert diagnose(readings_of(steps))["saturated_units"].layers == ["act1"]


def test_saturated_units_not_once_the_network_has_learned():
    # Trained tanh classifiers sit near +-1: saturated, but the loss fell from 1.1 to 0.05.
    learned = healthy_steps(kind="tanh", saturated=0.8,
                            loss=lambda i: 0.05 + 1.05 * math.exp(-i))
    assert "saturated_units" not in diagnose(readings_of(learned))
    # The same saturation with a loss still at a third of the start is reported, with it.
    stuck = healthy_steps(kind="tanh", saturated=0.8, loss=lambda i: 1.1 if i == 0 else 0.4)
    f = diagnose(readings_of(stuck))["saturated_units"]
    assert f.evidence["loss_start"] == 1.1 and f.evidence["loss_now"] == 0.4
    assert "The loss is still 0.4, against 1.1 at the start." in f.summary


def test_saturated_units_not_below_the_threshold_nor_for_a_confident_output():
    assert "saturated_units" not in diagnose(readings_of(healthy_steps(kind="tanh",
                                                                       saturated=0.3)))
    # A sigmoid at the output saturates when the network is sure of its answers.
    steps = healthy_steps(kind="tanh", saturated=0.1)
    for s in steps:
        s["activations"]["out"] = {"kind": "sigmoid", "mean": 0.5, "std": 0.45,
                                   "dead_fraction": None, "saturated_fraction": 0.95}
    report = diagnose(readings_of(steps, layers=LAYERS + ["out"]))
    assert "saturated_units" not in report


# -- poor initialisation ----------------------------------------------------------------------
def test_poor_initialisation_when_the_activation_std_collapses_or_grows_at_step_1():
    f = diagnose(readings_of(healthy_steps(stds=(1.0, 1e-3))))["poor_initialisation"]
    assert f.severity == "warning" and f.evidence["direction"] == "shrinks"
    assert f.evidence["factor"] == pytest.approx(1000) and f.layers == ["act1", "act2"]
    f = diagnose(readings_of(healthy_steps(stds=(0.5, 10.0))))["poor_initialisation"]
    assert f.severity == "info" and f.evidence["direction"] == "grows"


def test_poor_initialisation_judges_the_first_recorded_step_only():
    # Collapsed later in training (not the init's doing), and fine at step 1.
    steps = healthy_steps(stds=lambda i: (1.0, 0.8) if i == 0 else (1.0, 1e-4))
    assert "poor_initialisation" not in diagnose(readings_of(steps))
    # A 3x change is within what initialisation schemes give.
    assert "poor_initialisation" not in diagnose(readings_of(healthy_steps(stds=(1.0, 0.3))))
    # Monitoring started late: step 501 says nothing about the init.
    late = [dict(s, step=s["step"] + 500) for s in healthy_steps(stds=(1.0, 1e-3))]
    assert "poor_initialisation" not in diagnose(readings_of(late))


# -- overfitting ------------------------------------------------------------------------------
def epochs_of(train, val):
    return [{"epoch": e, "step": 10 * e, "loss": t, "val_loss": v}
            for e, (t, v) in enumerate(zip(train, val), 1)]


TRAIN = [1.0, 0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1]


def test_overfitting_gives_the_best_epoch():
    epochs = epochs_of(TRAIN, [1.0, 0.8, 0.6, 0.62, 0.65, 0.7, 0.75, 0.8, 0.9])
    f = diagnose(readings_of(healthy_steps(), epochs=epochs))["overfitting"]
    assert f.evidence["best_epoch"] == 3 and f.evidence["best_val_loss"] == 0.6
    assert "epoch 3" in f.summary and "epoch 3" in f.advice
    # The same from a History given alongside (or instead of) the readings.
    history = History(epochs=epochs)
    assert diagnose(readings_of(healthy_steps()), history)["overfitting"].evidence[
        "best_epoch"] == 3
    assert diagnose(history).names() == ["overfitting"]


def test_overfitting_not_for_a_wobble_a_fresh_best_or_both_losses_rising():
    wobble = [1.0, 0.8, 0.6, 0.61, 0.6, 0.62, 0.61, 0.6, 0.62]       # under 5% above the best
    recent_best = [1.0, 0.8, 0.6, 0.65, 0.7, 0.8, 0.75, 0.7, 0.55]
    too_soon = [1.0, 0.8, 0.6, 0.5, 0.45, 0.4, 0.38, 0.5, 0.9]       # 2 epochs since the best
    for val in (wobble, recent_best, too_soon):
        assert "overfitting" not in diagnose(
            readings_of(healthy_steps(), epochs=epochs_of(TRAIN, val)))
    rising = [1.0, 0.8, 0.6, 0.62, 0.65, 0.7, 0.75, 0.8, 0.9]
    both = epochs_of([1.0, 0.7, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0], rising)
    assert "overfitting" not in diagnose(readings_of(healthy_steps(), epochs=both))
    # A validation loss near zero that gave back a sliver of what it gained: a network at
    # its best for any practical purpose (seen on moons with tanh: 0.0027 -> 0.0031).
    near_zero = epochs_of([0.5, 0.1, 0.01, 0.005, 0.003, 0.002, 0.0015, 0.001, 0.0008],
                          [0.4, 0.05, 0.004, 0.0027, 0.0028, 0.0029, 0.003, 0.003, 0.0031])
    assert "overfitting" not in diagnose(readings_of(healthy_steps(), epochs=near_zero))
    # Validation no worse than training (momentum SGD oscillating on the same data).
    close = epochs_of([1.0, 0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1],
                      [1.0, 0.7, 0.08, 0.085, 0.09, 0.095, 0.1, 0.1, 0.105])
    assert "overfitting" not in diagnose(readings_of(healthy_steps(), epochs=close))


# -- gradient noise ---------------------------------------------------------------------------
def stalled(i):
    """A loss that fell a little and then stopped improving (wobbling around 0.9)."""
    return 1.1 if i == 0 else 0.9 + 0.02 * (-1) ** i


def test_gradient_noise_when_b_noise_dwarfs_the_batch_and_the_loss_stalls():
    f = diagnose(readings_of(healthy_steps(noise=50.0 * BATCH, loss=stalled)))["gradient_noise"]
    assert f.evidence["b_noise"] == 50.0 * BATCH and f.evidence["batch_size"] == BATCH
    assert "50 times the batch size of 32" in f.summary
    assert "larger batch" in f.advice and "lower the learning rate" in f.advice
    # A negative |G|^2 estimate counts as an infinite B_noise, which names no batch size to
    # aim for (|G| -> 0 near any minimum): the rule stays quiet (issue 16).
    steps = healthy_steps(noise=-3.0, loss=stalled)
    assert "gradient_noise" not in diagnose(readings_of(steps))


def test_gradient_noise_not_while_the_loss_still_falls_or_other_problems_explain_it():
    # Late in a healthy run the noise scale grows; while the loss falls nothing is wrong.
    assert "gradient_noise" not in diagnose(readings_of(healthy_steps(noise=50.0 * BATCH)))
    # Converged: the loss stopped far below where it started (|G| -> 0 makes B_noise grow).
    converged = healthy_steps(noise=50.0 * BATCH, loss=lambda i: 1.1 if i == 0 else 0.1)
    assert "gradient_noise" not in diagnose(readings_of(converged))
    # Tiny steps on a plateau: |G| is tiny, which is not noise's fault.
    plateau = healthy_steps(noise=50.0 * BATCH, loss=stalled, update_ratio=1e-4)
    assert "gradient_noise" not in diagnose(readings_of(plateau))
    # With dead units the gradient is broken; its noise scale is beside the point.
    steps = healthy_steps(noise=50.0 * BATCH, loss=stalled, dead=0.9)
    assert diagnose(readings_of(steps)).names() == ["dead_relus"]


def test_batch_too_large_when_b_noise_is_far_below_the_batch():
    f = diagnose(readings_of(healthy_steps(noise=BATCH / 40)))["batch_too_large"]
    assert f.severity == "info" and "smaller batch" in f.advice


def test_noise_rules_quiet_near_the_batch_size_or_with_too_few_readings():
    for b_noise in (BATCH / 5, BATCH, 5.0 * BATCH):
        names = diagnose(readings_of(healthy_steps(noise=b_noise, loss=stalled))).names()
        assert "gradient_noise" not in names and "batch_too_large" not in names
    steps = healthy_steps(noise=None, loss=stalled)
    for s in steps[-2:]:
        s["noise"] = {"batches": 8, "batch_size": BATCH, "trace_cov": 1e5, "grad_sq_norm": 1.0,
                      "b_noise": 1e5}
    assert "gradient_noise" not in diagnose(readings_of(steps))


# -- the report -------------------------------------------------------------------------------
def test_report_sorts_by_severity_and_reads_like_prose():
    steps = healthy_steps(n=8, lr=10.0, noise=50.0 * BATCH)
    steps[-1]["loss"] = math.inf
    for s in steps[3:7]:
        s["activations"]["act1"]["dead_fraction"] = 0.8
    report = diagnose(readings_of(steps))
    severities = [f.severity for f in report]
    assert severities == sorted(severities, key=SEVERITIES.index)
    assert report.names() == ["divergence", "dead_relus"]
    assert report.worst == "error"
    text = str(report)
    assert text.startswith(f"The doctor found {len(report)} problems in 8 recorded steps")
    assert "1. ERROR: divergence" in text
    assert "Seen:" in text and "Why:" in text and "Try:" in text
    assert "learning rate 10" in text
    assert all(len(line) <= 88 for line in text.splitlines())


def test_rules_about_the_network_ignore_what_follows_a_divergence():
    # After the loss went NaN at step 41 every reading is garbage (here: all units dead).
    steps = healthy_steps(n=8, dead=lambda i: 1.0 if i > 4 else 0.1)
    nonfinite = {"step": 41, "kind": "loss", "name": "loss", "detail": "loss is nan"}
    report = diagnose(readings_of(steps, nonfinite=nonfinite))
    assert report.names() == ["divergence"]
    assert report["divergence"].evidence["last_finite_step"] == 31


def test_report_is_list_like_and_serialisable():
    a = Finding("overfitting", "warning", "val up", {"best_epoch": 3}, "stop early")
    b = Finding("divergence", "error", "nan", {"loss": math.nan}, "lower lr", ["fc1"])
    report = Report([a, b], steps=5)
    assert report.names() == ["divergence", "overfitting"] and len(report) == 2
    assert report[0] is b and report["overfitting"] is a and report.get("x") is None
    assert "divergence" in report and a in report and "dead_relus" not in report
    assert isinstance(report[:1], Report) and report[:1].names() == ["divergence"]
    with pytest.raises(KeyError, match="no finding named 'dead_relus'"):
        report["dead_relus"]
    d = report.to_dict()
    json.dumps(d, allow_nan=False)          # plain JSON: NaN became a string
    assert d["steps"] == 5 and d["findings"][0]["evidence"]["loss"] == "nan"
    assert d["findings"][0]["why"]          # the "why" of a known rule comes along
    assert "divergence (error)" in repr(report)


def test_finding_checks_its_severity_and_prints_one_block():
    with pytest.raises(ValueError, match="severity must be one of"):
        Finding("x", "fatal", "s")
    f = Finding("dead_relus", "warning", "act1: 80% of units never fire", {}, "Try LeakyReLU.",
                ["act1"])
    text = str(f)
    assert text.splitlines()[0] == "WARNING: dead relus"
    assert "Try LeakyReLU." in text and "Layers: act1" in text


def test_diagnose_checks_its_arguments_and_knows_every_rule():
    with pytest.raises(TypeError, match="diagnose"):
        diagnose(None)
    with pytest.raises(TypeError, match="readings must be"):
        diagnose([1, 2, 3])
    assert set(RULES) == {"vanishing_gradients", "exploding_gradients", "divergence",
                          "lr_too_low", "dead_relus", "saturated_units", "poor_initialisation",
                          "overfitting", "gradient_noise", "batch_too_large", "underfitting"}
    assert str(diagnose(Readings())).startswith("No problems found, but no steps")


def test_readings_saved_and_loaded_give_the_same_report(tmp_path):
    steps = healthy_steps(n=8, lr=10.0)
    steps[-1]["loss"] = math.nan
    steps[-1]["grad_norm"] = math.inf
    steps[-1]["params"]["fc1.weight"]["grad_norm"] = math.nan
    readings = readings_of(steps, nonfinite={"step": 71, "kind": "loss", "name": "loss",
                                             "detail": "the loss of step 71 is nan"})
    readings.to_jsonl(tmp_path / "d.jsonl")
    again = diagnose(Readings.from_jsonl(tmp_path / "d.jsonl"))
    assert again.to_dict() == diagnose(readings).to_dict()
    assert "divergence" in again


# -- real networks, the real engine, a real Monitor -------------------------------------------
def spiral_loader(n=200, batch_size=32, seed=0, shuffle=True):
    X, y = spiral(n, seed=seed)
    return DataLoader(TensorDataset(backprop.tensor(X), backprop.tensor(y)),
                      batch_size=batch_size, shuffle=shuffle)


def mlp(sizes, activation):
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def train(model, optimizer, epochs, *, interval=5, batch_size=32, val=False):
    """Train on the spiral set with a Monitor; return (report, monitor, trainer)."""
    monitor = Monitor(model, interval=interval)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer, callbacks=[monitor],
                      progress=False)
    try:
        trainer.fit(spiral_loader(batch_size=batch_size), epochs=epochs,
                    val_data=spiral_loader(200, 200, seed=1, shuffle=False) if val else None)
    except TrainingDiverged:
        pass
    return diagnose(monitor.readings, trainer.history), monitor, trainer


def test_ten_sigmoid_layers_with_tiny_init_have_vanishing_gradients_from_the_first_layer():
    backprop.manual_seed(0)
    model = mlp([2] + [16] * 10 + [3], nn.Sigmoid)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=0.1), epochs=3)
    f = report["vanishing_gradients"]
    assert f.layers[0] == "0" and f.evidence["first_layer"] == "0"   # the first Linear
    assert f.evidence["last_layer"] == "20"
    assert f.evidence["ratio_to_last"]["0"] > 1e6
    assert "layer 0" in f.summary and f.severity == "error"


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
def test_a_learning_rate_of_10_on_the_spiral_set_is_diagnosed_as_divergence(activation):
    backprop.manual_seed(0)
    model = mlp([2, 16, 16, 3], activation)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=10.0), epochs=8)
    f = report["divergence"]
    assert f.severity == "error" and report.names()[0] == "divergence"
    assert f.evidence["lr"] == 10.0 and f.evidence["batch_size"] == 32
    assert "learning rate is too high for this batch size" in f.advice
    assert "try 1 instead of 10" in f.advice


def test_a_loss_that_overflows_is_diagnosed_from_the_monitors_live_file(tmp_path):
    # MSE on one-hot targets with lr 1000 overflows to inf within a few steps; the trainer
    # raises, and the Monitor's file still holds what it saw (the non-finite loss included).
    backprop.manual_seed(0)
    model = mlp([2, 16, 16, 3], nn.ReLU)
    X, y = spiral(200, seed=0)
    targets = backprop.tensor(np.eye(3, dtype=np.float32)[y])
    loader = DataLoader(TensorDataset(backprop.tensor(X), targets), batch_size=32)
    monitor = Monitor(model, interval=5, path=tmp_path / "diagnostics.jsonl")
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1e3),
                      callbacks=[monitor], progress=False)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as error:
        trainer.fit(loader, epochs=5)
    report = diagnose(Readings.from_jsonl(tmp_path / "diagnostics.jsonl"), trainer.history)
    f = report["divergence"]
    assert f.evidence["step"] == error.value.step and f.evidence["lr"] == 1e3
    assert f.evidence["last_finite_step"] == error.value.last_finite_step
    assert f.evidence["last_finite_loss"] == pytest.approx(error.value.last_finite_loss)


def test_a_relu_network_with_a_large_negative_bias_has_dead_relus():
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 3], nn.ReLU)
    nn.init.constant_(model[0].bias, -10.0)     # no input reaches zero: layer 1 never fires
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=0.1), epochs=3)
    f = report["dead_relus"]
    # Layer 1 is dead; layer 3 then sees the same input for every example, so each of its
    # units is on for all of them or for none (about half dead, flagged or not by chance).
    assert f.layers[0] == "1" and f.evidence["dead_fraction"]["1"] == 1.0
    assert set(f.layers) <= {"1", "3"} and f.severity == "error"
    assert "vanishing_gradients" not in report   # zero gradients are dead units, not vanishing


def test_a_healthy_spiral_run_raises_no_alarm():
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 3], nn.ReLU)
    report, monitor, trainer = train(model, optim.Adam(model.parameters(), lr=0.01), epochs=40,
                                     interval=10, val=True)
    assert trainer.history.epochs[-1]["loss"] < 0.3           # it did learn
    assert len(monitor.readings.steps) >= 25
    assert report.names() == [], str(report)
    assert str(report) == f"No problems found in {len(monitor.readings.steps)} recorded steps."


def test_a_well_trained_tanh_network_is_not_called_saturated():
    # Trained to a loss 40 times below its start, the second tanh layer sits near +-1 for
    # most examples: saturated by the numbers, yet nothing is wrong.
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 3], nn.Tanh)
    report, monitor, trainer = train(model, optim.Adam(model.parameters(), lr=0.01),
                                     epochs=150, interval=10)
    last = monitor.readings.steps[-3:]
    assert all(r["activations"]["3"]["saturated_fraction"] > 0.5 for r in last)
    assert trainer.history.epochs[-1]["loss"] < 0.05
    assert report.names() == [], str(report)


def test_large_init_makes_the_activations_grow_with_depth():
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 32, 32, 3], nn.ReLU)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 1.0)     # He would be sqrt(2 / 32) = 0.25
            nn.init.zeros_(module.bias)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=0.01), epochs=2)
    f = report["poor_initialisation"]
    assert f.evidence["direction"] == "grows" and f.evidence["factor"] > 10
    assert f.layers == ["1", "7"] and f.evidence["step"] == 1


def test_tanh_with_large_weights_saturates():
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 32, 3], nn.Tanh)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 2.0)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=0.01), epochs=2)
    f = report["saturated_units"]
    assert "5" in f.layers and all(v > 0.5 for v in f.evidence["saturated_fraction"].values())


def test_a_tiny_learning_rate_is_too_low():
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 3], nn.ReLU)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=1e-5), epochs=5)
    f = report["lr_too_low"]
    assert f.evidence["update_ratio"] < LR_TOO_LOW_RATIO and f.evidence["lr"] == 1e-5
    assert report.names() == ["lr_too_low"]


def test_a_big_network_on_few_noisy_examples_overfits():
    def loader(n, seed):
        X, y = spiral(n, noise=0.5, seed=seed)
        return DataLoader(TensorDataset(backprop.tensor(X), backprop.tensor(y)), batch_size=n)

    backprop.manual_seed(0)
    model = mlp([2, 64, 64, 3], nn.ReLU)
    monitor = Monitor(model, interval=10)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01),
                      callbacks=[monitor], progress=False)
    history = trainer.fit(loader(45, 0), epochs=100, val_data=loader(150, 1000))
    best = history.best_epoch("val_loss")
    f = diagnose(monitor.readings, history)["overfitting"]
    assert f.evidence["best_epoch"] == best["epoch"] < 100 - 5
    assert f.evidence["last_val_loss"] > 1.05 * best["val_loss"]
    # The monitor's own epoch records tell the same story without the history.
    assert diagnose(monitor.readings)["overfitting"].evidence["best_epoch"] == best["epoch"]


def test_a_deep_relu_network_with_unit_variance_weights_has_exploding_gradients():
    # Std 1 where He would be sqrt(2/32) = 0.25: every layer multiplies the signal, and the
    # gradient, by about 4; after 9 layers the total gradient norm is over 1e4.
    backprop.manual_seed(0)
    model = mlp([2] + [32] * 8 + [3], nn.ReLU)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 1.0)
            nn.init.zeros_(module.bias)
    report, monitor, _ = train(model, optim.SGD(model.parameters(), lr=1e-6), epochs=2)
    f = report["exploding_gradients"]
    assert f.severity == "warning" and f.evidence["grad_norm"] > EXPLODING_NORM
    assert "clip" in f.advice.lower()
    assert "poor_initialisation" in report and "divergence" not in report


def test_one_example_per_step_with_a_large_step_is_gradient_noise():
    # Batch 1 with SGD at lr 0.3: each step follows one example, the loss gets nowhere.
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 3], nn.ReLU)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=0.3), epochs=3,
                         batch_size=1, interval=25)
    f = report["gradient_noise"]
    assert f.evidence["batch_size"] == 1 and f.evidence["b_noise"] >= 10
    assert report.names() == ["gradient_noise"]


def test_the_whole_training_set_as_one_batch_is_too_large():
    # 200 examples in one batch: the gradient barely changes from batch to batch, so a
    # fraction of the batch would estimate it as well.
    backprop.manual_seed(0)
    model = mlp([2, 32, 32, 3], nn.ReLU)
    report, _, _ = train(model, optim.SGD(model.parameters(), lr=0.1), epochs=60,
                         batch_size=200, interval=10)
    f = report["batch_too_large"]
    assert f.evidence["batch_size"] == 200 and f.evidence["b_noise"] < 20
    assert report.names() == ["batch_too_large"]


def test_the_nonfinite_word_reads_the_counts_not_the_word_infinite():
    from backprop.diagnostics.doctor import _nonfinite_word

    assert _nonfinite_word("the gradient of 0.weight has 3 NaN and 0 infinite values out of 9") \
        == "nan"
    assert _nonfinite_word("the output of 1 has 0 NaN and 2 infinite values out of 8") == "inf"
    assert _nonfinite_word("1 NaN and 1 infinite values") == "NaN or Inf"
    assert _nonfinite_word("the loss is nan") == "nan"
