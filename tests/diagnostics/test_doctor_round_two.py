"""The doctor, issue 16: one divergence criterion (shared with the lab's banner), the
underfitting finding, the noise rule quiet on a meaningless estimate, and the lab's wording."""
import inspect
import math
import re

import pytest

import backprop
from backprop import nn, optim
from backprop.data import DataLoader, TensorDataset
from backprop.data.toy import spiral
from backprop.diagnostics import Monitor, Readings, diagnose
from backprop.diagnostics import doctor
from backprop.diagnostics.doctor import (
    DIVERGENCE_FACTOR,
    LAB_WORDING,
    UNDERFIT_GRAD_FALL,
    divergence_reference,
    lab_wording,
    loss_diverged,
)
from backprop.train import Trainer
from tests.diagnostics.test_doctor import BATCH, healthy_steps, mlp, readings_of


# -- the one criterion ----------------------------------------------------------------------------
def test_loss_diverged_is_the_factor_times_the_reference_or_nonfinite():
    ref = math.log(3)
    assert not loss_diverged(0.9, ref)
    assert not loss_diverged(DIVERGENCE_FACTOR * ref * 0.999, ref)
    assert loss_diverged(DIVERGENCE_FACTOR * ref, ref)
    assert loss_diverged(7.0, ref)                   # the 7 to 50 against guessing's 1.1
    assert loss_diverged(math.nan, ref) and loss_diverged(math.inf, ref)


def test_the_reference_is_the_larger_of_start_and_guessing_and_never_nonfinite():
    assert divergence_reference(1.3, math.log(3)) == 1.3
    assert divergence_reference(0.2, math.log(3)) == pytest.approx(math.log(3))
    assert divergence_reference(0.8) == 0.8
    assert divergence_reference(math.inf, 1.1) == 1.1      # a start that overflowed: skipped
    with pytest.raises(ValueError, match="divergence_reference: needs a finite start"):
        divergence_reference(math.nan, None)


def rising(i):
    """A loss that climbs steadily from 1.1 to about 6, without a spike or a NaN."""
    return 1.1 + 0.5 * i


def test_the_doctor_uses_the_criterion_and_the_guessing_loss_it_is_given():
    steps = healthy_steps(n=12, loss=rising, lr=3.0)
    # The median of the recent losses (about 5.6) is over 5x the start (1.1): diverged.
    # (Before issue 16 the doctor wanted 10x the start, the lab 5x: two verdicts.)
    f = diagnose(readings_of(steps))["divergence"]
    assert f.evidence["reference_loss"] == 1.1
    assert f.evidence["loss_now"] >= DIVERGENCE_FACTOR * 1.1
    # The same losses where guessing scores 2.0 (the lab says so in meta): 5.6 < 5 x 2.
    readings = readings_of(steps)
    guessing = Readings({**readings.meta, "chance_loss": 2.0}, readings.steps, [], None)
    assert "divergence" not in diagnose(guessing)


# -- gradient noise: quiet when its estimate means nothing ---------------------------------------
def stalled(i):
    return 1.1 if i == 0 else 0.9 + 0.02 * (-1) ** i


@pytest.mark.parametrize("b_noise", [math.inf, math.nan, -2.0])
def test_the_noise_rule_is_quiet_on_an_infinite_or_nan_estimate(b_noise):
    steps = healthy_steps(noise=50.0 * BATCH, loss=stalled)
    for s in steps:
        s["noise"]["b_noise"] = b_noise
    assert "gradient_noise" not in diagnose(readings_of(steps))
    # ...and speaks on a finite one, the rest unchanged.
    for s in steps:
        s["noise"]["b_noise"] = 50.0 * BATCH
    assert "gradient_noise" in diagnose(readings_of(steps))


# -- underfitting ---------------------------------------------------------------------------------
def underfit_steps(grad_sq=-1e-3, loss=None, **changes):
    """A run whose loss fell from 1.1 and stopped at about 0.75 while the mean gradient
    (noise taken out) fell to nothing: a linear model on the spiral."""
    steps = healthy_steps(loss=loss or (lambda i: 1.1 if i == 0 else 0.75 + 0.01 * (-1) ** i),
                          noise=math.inf, **changes)
    for s in steps:
        s["noise"]["grad_sq_norm"] = grad_sq
    return steps


def test_underfitting_when_the_loss_stalls_high_and_the_gradient_is_gone():
    report = diagnose(readings_of(underfit_steps()))
    assert report.names() == ["underfitting"], str(report)    # no "larger batch" advice
    f = report["underfitting"]
    assert f.severity == "warning" and f.evidence["grad_now"] == 0.0
    assert "hidden layers" in f.advice and "larger batch" in f.advice   # "...will not help"
    assert "stopped improving at 0.75" in f.summary


def test_underfitting_against_the_loss_of_guessing_when_known():
    steps = underfit_steps()
    readings = readings_of(steps)
    meta = {**readings.meta, "chance_loss": 1.0986}
    f = diagnose(Readings(meta, steps, [], None))["underfitting"]
    assert f.evidence["chance_loss"] == 1.0986 and "the loss of guessing (1.1)" in f.summary
    # Guessing scores 1.4: 0.75 is under half of it, not "far above what the data allows".
    assert "underfitting" not in diagnose(Readings({**meta, "chance_loss": 1.6}, steps, [], None))


def test_underfitting_not_when_the_loss_fell_far_or_the_gradient_is_still_there():
    # Converged: the loss fell far below the start.
    assert "underfitting" not in diagnose(
        readings_of(underfit_steps(loss=lambda i: 1.1 if i == 0 else 0.1)))
    # The mean gradient is as large as at the start: something else holds the loss up.
    early = math.sqrt(sum(g * g for g in (0.5, 0.8, 1.0)))
    steps = underfit_steps(grad_sq=(0.9 * early) ** 2)
    assert "underfitting" not in diagnose(readings_of(steps))
    # Just under the bar: fires.
    steps = underfit_steps(grad_sq=(0.9 * UNDERFIT_GRAD_FALL * early) ** 2)
    assert "underfitting" in diagnose(readings_of(steps))
    # Still falling: not a plateau.
    falling = underfit_steps(loss=lambda i: 1.1 - 0.03 * i)
    assert "underfitting" not in diagnose(readings_of(falling))
    # Tiny steps: the learning rate is the problem, and lr_too_low says so.
    names = diagnose(readings_of(underfit_steps(update_ratio=1e-7))).names()
    assert "lr_too_low" in names and "underfitting" not in names


def spiral_run(hidden, epochs, batch_size=16, seed=0):
    """A real run on the spiral with a Monitor: (report, history)."""
    X, y = spiral(300, noise=0.1, seed=seed)
    loader = DataLoader(TensorDataset(backprop.tensor(X), backprop.tensor(y)),
                        batch_size=batch_size, shuffle=True,
                        generator=backprop.Generator(seed))
    backprop.manual_seed(seed)
    model = mlp([2, *hidden, 3], nn.Tanh)
    monitor = Monitor(model, interval=10)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.03),
                      callbacks=[monitor], progress=False)
    history = trainer.fit(loader, epochs=epochs)
    meta = {**monitor.readings.meta, "chance_loss": math.log(3)}
    readings = Readings(meta, monitor.readings.steps, monitor.readings.epochs,
                        monitor.readings.nonfinite)
    return diagnose(readings, history), history


def test_a_linear_model_on_the_spiral_underfits_and_a_hidden_layer_does_not():
    report, history = spiral_run([], epochs=40)
    assert report.names() == ["underfitting"], str(report)
    assert history.steps[-1]["loss"] > 0.5 * math.log(3)
    report, _ = spiral_run([16, 16], epochs=40)
    assert "underfitting" not in report and "gradient_noise" not in report, str(report)


# -- the lab's wording ------------------------------------------------------------------------------
def test_every_lab_wording_matches_advice_the_doctor_writes():
    source = re.sub(r'"\s*\n\s*"', "", inspect.getsource(doctor))
    source = source.split("LAB_WORDING = (")[0]     # the advice, not the table itself
    for ours, _ in LAB_WORDING:
        assert ours in source, ours


API = re.compile(r"(?<![\w.])nn\.|torch|clip_grad_norm|backprop train|fit/Trainer|"
                 r"EarlyStopping|lr=1e-3")


def test_lab_advice_names_the_labs_controls_not_api_calls():
    # One report with most rules' advice: each rule on readings built to show it.
    reports = [
        diagnose(readings_of(healthy_steps(grad_norms=(1e-5, 2e-3, 1.0)))),    # vanishing
        diagnose(readings_of(healthy_steps(dead=0.9))),                        # dead ReLUs
        diagnose(readings_of(healthy_steps(kind="tanh", saturated=0.9, loss=1.1))),
        diagnose(readings_of(healthy_steps(stds=(1.0, 0.01)))),                # poor init
        diagnose(readings_of(healthy_steps(update_ratio=2e-7, lr=1e-6,
                                           loss=lambda i: 1.1 - 1e-4 * i))),   # lr too low
        diagnose(readings_of(healthy_steps(noise=50.0 * BATCH, loss=stalled))),
        diagnose(readings_of(underfit_steps())),
        diagnose(readings_of(healthy_steps(grad_norms=(3e4, 3e4, 3e4)))),     # exploding
    ]
    losses = [1.1, 0.9, 0.8, 0.7, 0.7, 5.0, 40.0, 300.0, 2000.0]
    reports.append(diagnose(readings_of(healthy_steps(n=9, loss=lambda i: losses[i]))))
    findings = [f for r in reports for f in r]
    names = {f.name for f in findings}
    assert {"vanishing_gradients", "dead_relus", "saturated_units", "poor_initialisation",
            "lr_too_low", "gradient_noise", "underfitting", "exploding_gradients",
            "divergence"} <= names, names
    for f in findings:
        words = lab_wording(f.advice)
        assert not API.search(words), f"{f.name}: {words}"
    said = " ".join(lab_wording(f.advice) for f in findings)
    for control in ("Initialisation menu", "Activation menu", "Gradient clipping slider",
                    "Hidden layers", "Schedule menu"):
        assert control in said, control
