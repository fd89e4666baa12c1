"""One lab session: data, a network, an optimizer and the real backprop engine training it.

No web code here: :class:`LabSession` is driven by method calls (the server calls them
from a worker thread, tests call them directly)::

    session = LabSession({"dataset": "spiral", "hidden": [8, 8]})
    session.step(100)
    session.apply({"lr": 0.1, "batch_size": 4})     # live: weights kept, next step uses them
    frame = session.snapshot()                      # JSON-able dict (see below)
    session.apply({"hidden": [16]})                 # a reset-type change rebuilds everything

Live settings (lr, batch size, optimiser and its knobs, schedule, clipping, weight decay,
dropout, activation, speed) change the running session in place; the others rebuild the
data and the network (see ``effect`` in :mod:`backprop.lab.settings`).

Training is ``backprop.train``'s: a :class:`~backprop.train.Trainer` built by
:mod:`backprop.lab.training` takes one ``train_step`` per lab step, on batches drawn by a
:class:`~backprop.data.BatchStream`, with ``optim.lr_scheduler.warmup_cosine`` as the
schedule; the exported script (:mod:`backprop.lab.export`) trains through the same
builders. The data is :mod:`backprop.lab.data`'s, stability maps are
:mod:`backprop.lab.cells`'.

A snapshot (``snapshot()``) is a dict of plain lists, floats rounded to 4-5 significant
digits (:mod:`backprop.lab.rounding`) and NaN/Inf written as None; its keys are listed in
:mod:`backprop.lab.protocol`.
"""
from __future__ import annotations

import copy
import io
import math
import re
from typing import Any

import numpy as np

import backprop
from backprop import nn
from backprop.data import BatchStream
from backprop.diagnostics.doctor import (
    DIVERGENCE_FACTOR,
    divergence_reference,
    lab_wording,
    loss_diverged,
)
from backprop.lab import cells, pictures, training
from backprop.lab.data import CSV_LIMITS, load_data, parse_csv
from backprop.lab.export import script
from backprop.lab.rounding import curve, rounded
from backprop.lab.settings import SETTINGS, LabError, defaults, validate
from backprop.train import TrainingDiverged

__all__ = ["LIMITS", "LabError", "LabSession"]

LIMITS = {
    "max_hidden_layers": SETTINGS["hidden"]["max_len"],
    "max_neurons": SETTINGS["hidden"]["item"]["max"],
    "max_samples": SETTINGS["n_samples"]["max"],
    **CSV_LIMITS,
    "max_stability_cells": 64,
    "max_stability_steps": 2000,
    "boundary_res": 40,
    "max_boundary_res": 100,
    "curve_points": 500,
}
"""Sizes the lab refuses to go beyond (the page may show them)."""

_CURVE_KEEP = 4000          # loss points kept in memory before thinning by half
_FINDINGS_EVERY = 50        # steps between two runs of the doctor (it reads the Monitor)
_MONITOR_INTERVAL = 10      # the Monitor records every 10th step (its cost stays small)
_READINGS_KEEP = 1000       # recorded steps kept for the doctor (the oldest are dropped)
_HISTORY_HEAD = 50          # per-step losses for the doctor: the first ones (the untrained
_HISTORY_KEEP = 1000        # start it compares with) and up to this many recent ones; the
                            # doctor's cost grows with their number (~6 ms per 1000)
_CHECK_EVERY = 10           # steps between two evaluations of the whole data (curve, blow-up)
_STABLE_STEPS = 50
"""A learning rate "trained stably" once it was in force this many steps with every check of
the whole training set at or below the divergence reference (no worse than guessing or the
start); the banner's recovery offers the last such rate."""
_LIVE_OPTIMIZER = {"optimizer", "momentum", "beta1", "beta2", "weight_decay"}


# -- the session --------------------------------------------------------------------------------
class LabSession:
    """A network training on a data set, controlled by the lab's settings.

    Args:
        settings: changes to the defaults (:func:`backprop.lab.settings.defaults`), checked
            by :func:`~backprop.lab.settings.validate`.
        boundary_res: cells per side of the decision-boundary grid (default 40).
        diagnostics: attach a ``backprop.diagnostics.Monitor`` and report the doctor's
            findings (when that package is available).

    Attributes:
        settings: the current settings (read only; change them with :meth:`apply`).
        step_count: optimizer steps since the last reset.
        settings_step: ``step_count`` when the settings last changed: every step after it
            was trained with the current settings.
        version: bumped by every change (a step, a setting), so a caller knows when a
            new snapshot differs from the last.
        data_version: bumped whenever the data changes.

    Example::

        s = LabSession({"dataset": "moons", "hidden": [4]})
        s.step(50)
        s.snapshot()["train_loss"][-1]     # [50, 0.31...]
    """

    diverged: dict | None
    stable_lr: float | None
    last_grad_norm: float | None
    last_batch_loss: float | None
    _csv: dict | None
    _monitor: Any            # a backprop.diagnostics.Monitor, or None
    _view: Any               # {"x": [lo, hi], "y": ...} of 1-D and 2-D data, else None
    _train_curve: list
    _test_curve: list
    _metrics: dict
    _findings: list
    _boundary_cache: tuple      # (key, picture) of the last drawing
    _neurons_cache: tuple

    def __init__(self, settings: dict | None = None, *, boundary_res: int = LIMITS["boundary_res"],
                 diagnostics: bool = True, _csv: dict | None = None):
        if isinstance(boundary_res, bool) or not isinstance(boundary_res, int) \
                or not 4 <= boundary_res <= LIMITS["max_boundary_res"]:
            raise LabError(f"boundary_res must be an int between 4 and "
                           f"{LIMITS['max_boundary_res']}, got {boundary_res!r}")
        self.boundary_res = boundary_res
        self._want_diagnostics = diagnostics
        self._csv = _csv                # {"X", "y", "task", ...} once a CSV is uploaded
        self._monitor = None
        self.version = 0
        self.data_version = 0
        self._points_version = -1      # data_version of the last snapshot that carried points
        self.settings = validate(settings or {}, defaults())
        self._build()


    # -- building ---------------------------------------------------------------------------
    def _build(self) -> None:
        """(Re)build the data, the network, the trainer and the counters from settings.

        The data is loaded first: when it raises LabError nothing has changed yet.
        """
        s = self.settings
        data = load_data(s, self._csv)
        self._close_monitor()
        self.task = data["task"]
        self.n_classes = data["n_classes"]
        self.dims = data["dims"]
        self.inputs = data["inputs"]
        self._raw_train, self._raw_test = data["raw_train"], data["raw_test"]
        self._X_train, self._y_train = data["X_train"], data["y_train"]
        self._X_test, self._y_test = data["X_test"], data["y_test"]
        self._view = self._view_box() if self.dims <= 2 else None
        self.n_train = len(self._y_train)

        net = training.build_model(s, len(self.inputs),
                                   self.n_classes if self.task == "classification" else 1)
        self.model, self.sizes = net.model, net.sizes
        self._linear_at, self._act_at, self._dropout_at = net.linear_at, net.act_at, net.dropout_at
        self._params = list(self.model.parameters())
        self._loss_fn = nn.CrossEntropyLoss() if self.task == "classification" else nn.MSELoss()
        # The Trainer's loss also tells the Monitor each batch's loss (before the step).
        self._trainer = training.build_trainer(s, self.model, self.task,
                                               loss_fn=self._observed_loss)
        self._stream = BatchStream(self.n_train, generator=backprop.Generator(s["seed"]))

        self.step_count = 0
        self.settings_step = 0          # step_count when the settings last changed
        self.diverged = None
        self.last_grad_norm = None
        self.last_batch_loss = None
        self._lr_now = self._lr_in_force()
        self._train_curve = []
        self._test_curve = []
        self._metrics = {}
        self._metrics_version = -1
        self._boundary_cache = (None, None)
        self._neurons_cache = (None, None)
        self._findings = []
        self._findings_step = 0
        # step_count of the findings made after diverging
        self._findings_at_divergence: int | None = None
        # The divergence criterion's reference (backprop.diagnostics.doctor): guessing's loss
        # or the untrained network's; live changes of the learning rate never move it.
        self._reference_loss = divergence_reference(self.metrics()["train_loss"],
                                                    self._chance_loss())
        self.stable_lr = None           # the last learning rate that trained stably
        self._lr_since = 0              # step_count when the learning rate last changed
        self._lr_ok = True              # no check since then was above the reference
        self._attach_monitor()
        self.data_version += 1
        self.version += 1

    def _observed_loss(self, output, target):
        """The training loss of a batch: kept as ``last_batch_loss`` (the data loss, before
        the penalty) and given to the Monitor (a NaN is noted at once)."""
        loss = self._loss_fn(output, target)
        self.last_batch_loss = float(loss.item())
        if self._monitor is not None:
            try:
                self._monitor.log_loss(self.last_batch_loss)
            except Exception:  # a diagnostics problem must never stop the lab from training
                pass
        return loss

    @property
    def _optimizer(self):
        return self._trainer.optimizer

    @property
    def _history(self) -> list:
        """The Trainer's per-step records ``{"step", "epoch", "loss", "lr", "grad_norm"}``
        (bounded: the first and the latest ones), which the doctor reads."""
        return self._trainer.history.steps

    def _lr_in_force(self) -> float:
        return float(self._optimizer.param_groups[0]["lr"])

    def _view_box(self) -> dict:
        """The plotted area: the raw data's extent with a 10% margin."""
        X = np.concatenate([self._raw_train, self._raw_test])
        lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        span = np.maximum(hi - lo, 1e-3)
        lo, hi = lo - 0.1 * span, hi + 0.1 * span
        box = {"x": rounded([lo[0], hi[0]], 3)}
        if self.dims == 2:
            box["y"] = rounded([lo[1], hi[1]], 3)
        return box

    def _sync_trainer(self, changed: set, old: dict) -> None:
        """Make the trainer match the settings after the live changes ``changed``.

        Editing the existing optimizer's groups keeps its state (momentum buffers, Adam's
        moments); only a different kind (say Adam -> SGD) starts from fresh state, at the
        rate in force and with the running schedule moved over to it. A new peak ``lr``
        rescales a running schedule (``LRScheduler.rescale``); choosing the schedule or
        its length starts it again from the current step.
        """
        s, trainer = self.settings, self._trainer
        if training.optimizer_family(s["optimizer"]) != training.optimizer_family(old["optimizer"]):
            self._replace_optimizer()
        elif changed & _LIVE_OPTIMIZER:
            training.configure_optimizer(trainer.optimizer, s)
        if "schedule" in changed or ("schedule_steps" in changed
                                     and s["schedule"] == "warmup_cosine"):
            trainer.scheduler = training.build_schedule(s, trainer.optimizer)
        elif "lr" in changed:
            if trainer.scheduler is not None:
                trainer.scheduler.rescale(s["lr"] / old["lr"])
            elif s["schedule"] != "warmup_cosine":      # (an ended schedule stays at 0)
                for group in trainer.optimizer.param_groups:
                    group["lr"] = s["lr"]
        if "clip" in changed:
            trainer.clip_grad_norm = s["clip"] or None
        if changed & {"l1", "l2"}:
            trainer.regularizer = training.regularizer(s)

    def _replace_optimizer(self) -> None:
        """A new optimizer of the settings' kind, at the rates in force, schedule moved over."""
        trainer = self._trainer
        old = trainer.optimizer
        new = training.build_optimizer(self.settings, self._params)
        scheduler = None
        if trainer.scheduler is not None:
            scheduler = training.build_schedule(self.settings, new)
            if scheduler is not None:   # (None: the same change turned the schedule off)
                scheduler.load_state_dict(trainer.scheduler.state_dict())
        for group, was in zip(new.param_groups, old.param_groups, strict=True):
            group["lr"] = was["lr"]
            if "initial_lr" in was:
                group["initial_lr"] = was["initial_lr"]
        trainer.optimizer, trainer.scheduler = new, scheduler
        if self._monitor is not None:       # a Monitor watches one optimizer
            self._close_monitor()
            self._attach_monitor()

    # -- diagnostics (optional) -------------------------------------------------------------
    def _attach_monitor(self) -> None:
        self._monitor = None
        if not self._want_diagnostics:
            return
        try:
            from backprop.diagnostics import Monitor
        except ImportError:
            return
        try:
            self._monitor = Monitor(self.model, self._optimizer, interval=_MONITOR_INTERVAL)
        except Exception:  # a diagnostics problem must never stop the lab from training
            self._monitor = None
        # A Monitor counts steps from its own start (a new optimizer makes a new Monitor):
        # its step k is the session's step k + offset.
        self._monitor_offset = getattr(self, "step_count", 0)

    def _close_monitor(self) -> None:
        monitor = getattr(self, "_monitor", None)
        if monitor is not None:
            try:
                monitor.close()
            except Exception:
                pass
        self._monitor = None

    def _update_findings(self) -> None:
        """Run the doctor, at most every _FINDINGS_EVERY steps, and once after a divergence.

        The doctor reads the Monitor's readings (every 10th step in detail) and the
        session's own per-step losses (a :class:`~backprop.train.History`), both numbered
        by the session's steps, so its messages name the steps the page shows. When
        training diverged and the doctor has not said so (too few readings yet, or a loss
        that blew up without turning NaN), the lab adds its own ``divergence`` finding.
        """
        if not self._want_diagnostics:
            return
        if self.diverged is not None:
            if self._findings_at_divergence == self.step_count:
                return
            self._findings_at_divergence = self.step_count
        elif self._monitor is None or \
                self.step_count - self._findings_step < _FINDINGS_EVERY:
            return
        self._findings_step = self.step_count
        findings = []
        if self._monitor is not None:
            try:
                findings = self._doctor()
            except Exception:  # a diagnostics problem must never stop the lab from training
                findings = []
        if self.diverged is None and any(f["name"] == "divergence" for f in findings):
            # One verdict: when the doctor says the run diverged, so does the banner.
            self.diverged = self._diverged_record(self.step_count, "doctor")
            self._findings_at_divergence = self.step_count
            self.version += 1
        if self.diverged is not None and not any(f["name"] == "divergence" for f in findings):
            findings.insert(0, self._divergence_finding())
        self._findings = findings

    def _doctor(self) -> list:
        from backprop.diagnostics import Readings, diagnose
        from backprop.train import History

        readings = self._monitor.readings
        steps = readings.steps
        if len(steps) > _READINGS_KEEP:     # a session can run for hours: bounded memory
            del steps[:len(steps) - _READINGS_KEEP // 2]
        offset = self._monitor_offset
        nonfinite = readings.nonfinite
        if offset:
            steps = [{**r, "step": r["step"] + offset} if isinstance(r.get("step"), int) else r
                     for r in steps]
            if nonfinite and isinstance(nonfinite.get("step"), int):
                nonfinite = {**nonfinite, "step": nonfinite["step"] + offset}
        # The batch-size slider is live; the Monitor noted the batch size it saw first.
        meta = {**readings.meta, "batch_size": self.batch_size,
                "chance_loss": self._chance_loss()}  # the reference of the one criterion
        view = Readings(meta=meta, steps=steps, epochs=readings.epochs, nonfinite=nonfinite)
        history = History()
        history.steps = list(self._history)
        report = diagnose(view, history)
        return [{"name": f.name, "severity": f.severity, "summary": self._page_names(f.summary),
                 "advice": self._page_names(lab_wording(f.advice)),
                 "layers": [self._layer_label(n) for n in (getattr(f, "layers", None) or [])]}
                for f in report]

    def _layer_label(self, module: str) -> str:
        """The page's name of a module of the Sequential ("3" -> "layer 2", "output")."""
        if not str(module).isdigit():
            return str(module)
        i = int(module)
        last = len(self._linear_at) - 1
        for n, at in enumerate(self._linear_at):
            if at == i:
                return "output" if n == last else f"layer {n + 1}"
        for n, at in enumerate(self._act_at):
            if at == i:
                return f"layer {n + 1}"
        for n, at in enumerate(self._dropout_at):
            if at == i:
                return f"layer {n + 1} dropout"
        return f"module {i}"

    def _page_names(self, text: str) -> str:
        """``text`` with the Sequential's module numbers ("layer 18", "6.weight") replaced
        by the names the page uses ("the output layer", "layer 3's weights")."""
        if not isinstance(text, str):
            return text

        def module(match):
            label = self._layer_label(match.group(2))
            words = "the output layer" if label == "output" else label
            return words[0].upper() + words[1:] if match.group(1)[0] == "L" else words

        def param(match):
            label = self._layer_label(match.group(1))
            owner = "the output layer" if label == "output" else label
            return f"{owner}'s {'weights' if match.group(2) == 'weight' else 'biases'}"

        text = re.sub(r"\b([Ll]ayer) (\d+)\b", module, text)
        return re.sub(r"\b(\d+)\.(weight|bias)\b", param, text)

    def _divergence_finding(self) -> dict:
        """The lab's own finding for a diverged run, in the doctor's format."""
        d = self.diverged or {}
        lr, batch = self._lr_now, self.batch_size
        if d.get("what") == "loss_blow_up":
            loss = self.metrics()["train_loss"]
            what = (f"the loss on the training set reached {loss:.3g}, more than "
                    f"{DIVERGENCE_FACTOR:g} times {self._reference_loss:.3g} (that of the "
                    f"untrained network or of guessing)")
        elif d.get("what") == "gradient":
            what = f"the gradient norm became {self.last_grad_norm}"
        else:
            what = f"the loss became {self.last_batch_loss}"
        return {
            "name": "divergence", "severity": "error",
            "summary": f"At step {d['step']}, {what} (learning rate {lr:g}, batch size "
                       f"{batch}). Training stopped.",
            "advice": f"The steps overshoot: press \"Reset with learning rate "
                      f"{d['recovery_lr']:g}\" ({self._recovery_words()}), or use a larger "
                      f"batch (a less noisy gradient), gradient clipping or the warmup + "
                      f"cosine schedule.",
            "layers": []}

    def recovery_lr(self) -> float:
        """The learning rate to start again with after a divergence: the last one that
        trained stably, else the default one if it is lower, else a tenth of this one."""
        if self.stable_lr is not None:
            return self.stable_lr
        lr, default = self.settings["lr"], defaults()["lr"]
        return default if default < lr else max(lr / 10, SETTINGS["lr"]["min"])

    def _recovery_words(self) -> str:
        if self.stable_lr is not None:
            return "the last learning rate that trained stably"
        return "no learning rate has trained stably yet" + (
            "; it is the default" if self.recovery_lr() == defaults()["lr"] else
            "; a tenth of this one")
    # -- changing settings ------------------------------------------------------------------
    def apply(self, changes: dict) -> dict:
        """Check and apply setting changes; returns the new settings.

        Live changes take effect at the next step with the weights kept; any reset-type
        change rebuilds the data and the network (and the step count starts again).

        Raises:
            LabError: a bad value (the session is unchanged); ``field`` names it.

        Example::

            session.apply({"lr": 0.3, "optimizer": "momentum"})
        """
        new = validate(changes, self.settings)
        changed = {k for k in SETTINGS if new[k] != self.settings[k]}
        if not changed:
            return copy.deepcopy(self.settings)
        old = self.settings
        if any(SETTINGS[k]["effect"] == "reset" for k in changed):
            self.settings = new
            try:
                self._build()
            except LabError:
                self.settings = old       # _build raised before changing anything else
                raise
            return copy.deepcopy(self.settings)
        self.settings = new
        self._sync_trainer(changed, old)
        if "dropout" in changed:
            for i in self._dropout_at:
                self.model[i].p = new["dropout"]
        if changed & {"activation", "activations"}:
            for i, name in zip(self._act_at, training.activation_names(new), strict=True):
                if not isinstance(self.model[i], training.ACTIVATION_MODULES[name]):
                    self.model[i] = training.ACTIVATION_MODULES[name]()
        self._lr_now = self._lr_in_force()
        self.settings_step = self.step_count
        if "lr" in changed:
            self._lr_since, self._lr_ok = self.step_count, True
        self.version += 1
        if changed & {"activation", "activations"}:
            # A new activation on trained weights is a new function: its loss now may be
            # above the old reference. (The learning rate and the other live settings do
            # not change the loss until a step is taken, so they never move the reference:
            # a learning-rate drag cannot raise the bar a blow-up must cross.)
            now = self.metrics()["train_loss"]
            if math.isfinite(now):
                self._reference_loss = max(self._reference_loss, now)
        return copy.deepcopy(self.settings)

    def reset(self, lr: float | None = None) -> None:
        """Start again: fresh weights from the seed, step 0, the diverged state cleared.

        Args:
            lr: start again with this learning rate (the banner's recovery passes
                :meth:`recovery_lr`); checked like the ``lr`` setting.
        """
        stable = self.stable_lr
        if lr is not None:
            self.settings = validate({"lr": lr}, self.settings)
        self._build()
        self.stable_lr = stable          # same data and network: what trained stably still does

    def close(self) -> None:
        """Remove the diagnostics hooks (the session can't train after this)."""
        self._close_monitor()

    # -- training ---------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Completed passes over the training set."""
        return self._stream.epoch

    @property
    def batch_size(self) -> int:
        """The batch size actually used (the setting, at most the training set)."""
        return min(self.settings["batch_size"], self.n_train)

    def _chance_loss(self) -> float:
        """The loss of the best constant prediction (class frequencies, or the mean)."""
        y = self._y_train
        if self.task == "classification":
            p = np.bincount(y, minlength=self.n_classes) / len(y)
            p = p[p > 0]
            return float(-(p * np.log(p)).sum())
        return float(((y - y.mean()) ** 2).mean())

    def _diverge(self, step: int, what: str) -> None:
        self.diverged = self._diverged_record(step, what)
        self._update_findings()
        self.version += 1

    def _diverged_record(self, step: int, what: str) -> dict:
        lr = self.recovery_lr()
        return {"step": step, "what": what,
                "message": f"diverged at step {step}: learning rate too high for this batch "
                           f"size?",
                "recovery_lr": lr, "recovery_stable": self.stable_lr is not None,
                "recovery": f"Reset with learning rate {lr:g}: {self._recovery_words()}."}

    def _train_step(self, trace: bool = False):
        """One Trainer step on the next mini-batch (``training.train_step``); returns the
        batch's indices, and with ``trace`` each module's output (Linear outputs keep
        their gradients), or None when the step diverged."""
        step = self.step_count + 1
        outs, handles = [], []
        if trace:       # observe the forward through hooks (removed after the step)
            def keep(module, args, output):
                if isinstance(module, nn.Linear):
                    output.retain_grad()    # dL/dz of each layer for the one-step view
                outs.append(output)
            handles = [module.register_forward_hook(keep) for module in self.model]
        # np.errstate, not warnings.catch_warnings: it is per thread, and overflow while a run
        # diverges is expected (the diverged state reports it).
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                idx, record = training.train_step(self._trainer, self._stream, self._X_train,
                                                  self._y_train, self.batch_size, self.settings)
        except TrainingDiverged as error:
            self._lr_now = self._lr_in_force()
            if error.quantity == "loss":
                self._diverge(step, "loss")
            else:
                self.last_grad_norm = error.value
                self._diverge(step, "gradient")
            return None
        finally:
            for handle in handles:
                handle.remove()
        history = self._history
        if len(history) > _HISTORY_HEAD + _HISTORY_KEEP:   # a long session: bounded memory
            del history[_HISTORY_HEAD:len(history) - _HISTORY_KEEP // 2]
        self._lr_now = record["lr"]
        self.last_grad_norm = record["grad_norm"]
        self.step_count = step
        self.version += 1
        return {"batch": idx, "outs": outs if trace else None, "clipped": record["clipped"]}

    def _penalty(self):
        """The L1/L2 penalty of the weights now (the Trainer's regularizer); None when off."""
        regularizer = self._trainer.regularizer
        return None if regularizer is None else regularizer(self.model)

    def step(self, n: int = 1) -> int:
        """Train ``n`` steps (fewer if it diverges); returns how many were done.

        After a non-finite loss or gradient the session stops stepping and
        ``diverged`` holds ``{"step", "what", "message"}`` until :meth:`reset`.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise LabError(f"step: n must be a non-negative int, got {n!r}")
        done = 0
        for _ in range(n):
            if self.diverged is not None:
                break
            self._train_step()
            if self.diverged is None:
                done += 1
                if self.step_count % _CHECK_EVERY == 0:
                    self._check_blow_up()
        return done

    def _check_blow_up(self) -> None:
        """Evaluate the whole data (a loss-curve point), flag a loss that blew up (the
        doctor's criterion, :func:`~backprop.diagnostics.doctor.loss_diverged`) and note a
        learning rate that trains stably."""
        loss = self.metrics()["train_loss"]
        if not math.isfinite(loss):
            self._diverge(self.step_count, "loss")
        elif loss_diverged(loss, self._reference_loss):
            self._diverge(self.step_count, "loss_blow_up")
        elif loss > self._reference_loss:
            self._lr_ok = False
        elif self._lr_ok and self.step_count - self._lr_since >= _STABLE_STEPS:
            self.stable_lr = self.settings["lr"]

    def one_step_detail(self) -> dict:
        """Train one step and return what happened in it, for the one-step animation.

        Returns:
            ``{"type": "step_detail", "step", "batch_size", "loss", "lr", "grad_norm",
            "clipped", "sample", "forward", "backward", "update", "diverged"}``; see
            :mod:`backprop.lab.protocol` for each entry.

        Raises:
            LabError: when the session has diverged (reset first).
        """
        if self.diverged is not None:
            raise LabError(f"training diverged at step {self.diverged['step']}; reset to "
                           f"start again")
        before = [(self.model[i].weight.detach().numpy().copy(),
                   self.model[i].bias.detach().numpy().copy()) for i in self._linear_at]
        traced = self._train_step(trace=True)
        detail = {"type": "step_detail", "step": self.step_count, "batch_size": self.batch_size,
                  "lr": rounded(self._lr_now, 5), "loss": rounded(self.last_batch_loss, 5),
                  "grad_norm": rounded(self.last_grad_norm, 5) if self.last_grad_norm is not None
                  else None, "diverged": self.diverged}
        if traced is None:
            detail.update(clipped=False, sample=None, forward=[], backward=[], update=[])
            return detail
        row = 0                   # the animation follows the batch's first sample
        k = int(traced["batch"][row])
        target = self._y_train[k]
        sample = {"index": k, "input": rounded(self._X_train[k], 4),
                  "raw": rounded(self._raw_train[k], 4) if self._raw_train is not None else None,
                  "target": int(target) if self.task == "classification"
                  else rounded(float(target[0]), 5)}
        forward, backward, update = [], [], []
        outs = traced["outs"]
        for n_layer, (i, (w0, b0)) in enumerate(zip(self._linear_at, before, strict=True)):
            layer = self.model[i]
            z = outs[i]
            last = n_layer == len(self._linear_at) - 1
            if last:
                zs = z.detach().numpy()[row]
                if self.task == "classification":
                    e = np.exp(zs - zs.max())
                    post = e / e.sum()
                else:
                    post = zs
            else:
                post = outs[i + 1].detach().numpy()[row]   # after the activation
            forward.append({"layer": str(i), "pre": rounded(z.detach().numpy()[row], 4),
                            "post": rounded(post, 4)})
            grad_z = z.grad.numpy()[row] if z.grad is not None else np.zeros(z.shape[1])
            backward.append({"layer": str(i), "grad_pre": rounded(grad_z, 4),
                             "weight_grads": rounded(layer.weight.grad.numpy(), 4),
                             "bias_grads": rounded(layer.bias.grad.numpy(), 4)})
            update.append({"layer": str(i),
                           "weights": rounded(layer.weight.detach().numpy() - w0, 4),
                           "biases": rounded(layer.bias.detach().numpy() - b0, 4)})
        detail.update(clipped=traced["clipped"], sample=sample, forward=forward,
                      backward=backward, update=update)
        return detail

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple:
        with backprop.no_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self.model(backprop.from_numpy(X))
            loss = float(self._loss_fn(out, backprop.from_numpy(y)).item())
            acc = None
            if self.task == "classification":
                acc = float((out.numpy().argmax(axis=1) == y).mean())
        return loss, acc

    def metrics(self) -> dict:
        """Loss (and accuracy) of the whole training and test sets now, in eval mode."""
        if self._metrics_version != self.version or not self._metrics:
            was_training = self.model.training
            self.model.eval()
            try:
                train_loss, train_acc = self._evaluate(self._X_train, self._y_train)
                test_loss, test_acc = self._evaluate(self._X_test, self._y_test)
            finally:
                self.model.train(was_training)
            self._metrics = {"train_loss": train_loss, "test_loss": test_loss,
                             "train_accuracy": train_acc, "test_accuracy": test_acc}
            self._metrics_version = self.version
            self._record(self._train_curve, train_loss)
            self._record(self._test_curve, test_loss)
        return dict(self._metrics)

    def _record(self, curve: list, loss: float) -> None:
        if curve and curve[-1][0] == self.step_count:
            curve[-1] = [self.step_count, loss]
            return
        curve.append([self.step_count, loss])
        if len(curve) > _CURVE_KEEP:     # bounded memory: drop every other old point
            del curve[1:-1:2]

    def _neurons(self) -> dict | None:
        """Each hidden neuron's picture (:func:`backprop.lab.pictures.neurons`), cached."""
        if self._neurons_cache[0] != self.version:
            self._neurons_cache = (self.version, pictures.neurons(self))
        return self._neurons_cache[1]

    def _boundary(self) -> dict | None:
        """The decision boundary (:func:`backprop.lab.pictures.boundary`), cached."""
        key = (self.version, self.boundary_res)
        if self._boundary_cache[0] != key:
            self._boundary_cache = (key, pictures.boundary(self))
        return self._boundary_cache[1]

    def snapshot(self, detail: str = "frame") -> dict:
        """The session's state as a JSON-able dict (the lab's ``state`` message).

        Args:
            detail: ``"frame"`` sends the data points only when they changed since the
                last snapshot that carried them; ``"full"`` always sends them.

        Example::

            frame = LabSession().snapshot("full")
            frame["boundary"]["res"], len(frame["points"]["train"])    # (40, 210)
        """
        if detail not in ("frame", "full"):
            raise LabError(f"snapshot: detail must be 'frame' or 'full', got {detail!r}")
        m = self.metrics()
        self._update_findings()
        network, norms = pictures.network(self)
        limit = LIMITS["curve_points"]
        frame = {
            "type": "state", "step": self.step_count, "epoch": self.epoch,
            "samples_seen": self._stream.seen,
            "settings": copy.deepcopy(self.settings),
            "settings_step": self.settings_step,
            "lr_now": rounded(self._lr_now, 5), "batch_size_now": self.batch_size,
            "n_train": self.n_train, "n_test": len(self._y_test),
            "task": self.task, "classes": self.n_classes, "inputs": list(self.inputs),
            "dims": self.dims, "class_labels": self._class_labels(),
            "metrics": {k: None if v is None else rounded(v, 5) for k, v in m.items()},
            "batch_loss": None if self.last_batch_loss is None
            else rounded(self.last_batch_loss, 5),
            "grad_norm": None if self.last_grad_norm is None else rounded(self.last_grad_norm, 5),
            "train_loss": curve(self._train_curve, limit),
            "test_loss": curve(self._test_curve, limit),
            "boundary": self._boundary(),
            "neurons": self._neurons(),
            "network": network,
            "grad_norms": norms,
            "findings": list(self._findings),
            "diverged": copy.deepcopy(self.diverged),
            "data_version": self.data_version,
        }
        if detail == "full" or self._points_version != self.data_version:
            frame["points"] = pictures.points(self)
            self._points_version = self.data_version
        return frame

    def _class_labels(self) -> list | None:
        """The names of classes 0, 1, ... as text (a CSV's labels), or None (numbered)."""
        if self.settings["dataset"] != "csv" or not self._csv \
                or not self._csv.get("class_labels"):
            return None
        return [v if isinstance(v, str) else f"{v:g}" for v in self._csv["class_labels"]]

    # -- user data ----------------------------------------------------------------------------
    def load_csv(self, text: str) -> dict:
        """Use a CSV of two feature columns and a label as the data set (``dataset = csv``).

        The first row may be a header. Labels that are all integers with at most 10
        distinct values make a classification set (classes numbered in sorted order);
        text labels ("yes"/"no", "setosa"...) make one too, at most 10 distinct names, in
        sorted order; any other numbers are a regression target. Nothing in the text is
        evaluated (:func:`backprop.lab.data.parse_csv` reads it).

        Returns:
            ``{"rows", "task", "classes", "class_labels", "header"}``.

        Raises:
            LabError: too big or too small, a row of the wrong width, a feature that is not
                a finite number, an empty label, a single class or too many text labels.

        Example::

            session.load_csv("x1,x2,label\\n0.1,0.2,0\\n...")
        """
        parsed = parse_csv(text)
        previous = (self._csv, self.settings)
        self._csv = {k: parsed[k] for k in ("X", "y", "task", "class_labels", "header")}
        self.settings = validate({"dataset": "csv"}, self.settings)
        try:
            self._build()
        except LabError:
            self._csv, self.settings = previous
            raise
        class_labels = parsed["class_labels"]
        return {"rows": parsed["rows"], "task": parsed["task"],
                "classes": len(class_labels) if class_labels else None,
                "class_labels": class_labels, "header": parsed["header"]}

    # -- export ---------------------------------------------------------------------------------
    def export_checkpoint(self) -> bytes:
        """The trained weights as safetensors bytes (``backprop.load`` reads them back).

        The file holds ``{"model": state_dict, "settings", "step", "sizes", "inputs"}``;
        ``model`` loads into the network that :meth:`export_script` builds.
        """
        buffer = io.BytesIO()
        backprop.save({"model": self.model.state_dict(), "settings": copy.deepcopy(self.settings),
                       "step": self.step_count, "sizes": list(self.sizes),
                       "inputs": list(self.inputs)}, buffer)
        return buffer.getvalue()

    def export_filename(self, what: str) -> str:
        base = f"backprop-lab-{self.settings['dataset']}-step{self.step_count}"
        return base + (".py" if what == "script" else ".safetensors")

    def export_script(self) -> str:
        """Python source that rebuilds this data, network and training with backprop.

        The script trains from the same seed (``--steps N``, default the steps trained so
        far or 1000) and can start from exported weights (``--checkpoint FILE``).
        """
        return script(self)

    # -- stability map --------------------------------------------------------------------------
    def stability_map(self, lrs=None, batch_sizes=None, steps=None, *, axis=None, values=None,
                      max_workers=None, cancel=None, pool=None, max_cells=None, cache=None):
        """Short runs over a grid of learning rates x one other setting, in background processes.

        Every cell trains the current data and network from its initial weights (the
        seed's) for ``steps`` steps with one learning rate and one value of ``axis``; the
        other settings are the session's. The settings are captured when this is called.

        Args:
            lrs: learning rates (default 1e-4 ... 10, six of them).
            batch_sizes: batch sizes (default 1, 4, 16, 64, 256 up to the training set);
                the rows of a batch-size map (the older form of ``values``).
            steps: steps per run (default 200).
            axis: what the rows vary, one of :data:`~backprop.lab.cells.AXES`:
                ``"batch_size"`` (default), ``"init"``, ``"depth"`` or ``"momentum"``.
            values: the rows: values of ``axis`` (defaults in :mod:`backprop.lab.cells`).
            max_workers: processes, when ``pool`` is None (default: the usable cores, at
                most 4).
            cancel: a ``threading.Event``; once set, the iterator stops within a fraction
                of a second, the runs not yet started are dropped and the running ones
                stop (they check between chunks of steps).
            pool: a :class:`~backprop.lab.pool.CellPool` to run on (the server's, shared by
                every session); default: a pool of this map's own, closed when it ends.
            max_cells: cells at most (default ``LIMITS["max_stability_cells"]``; a Ray
                pool allows more).
            cache: a :class:`~backprop.lab.cells.CellCache` (the server's): the cells it
                knows come at once, and only the others run.

        Returns:
            An iterator of cells ``{"type": "stability_cell", "lr", "batch_size", "axis",
            "value" (the cell's value of axis), "i" (index in lrs), "j" (index in values),
            "final_loss" (training loss at the end, None if diverged), "test_loss",
            "diverged", "steps"}`` in the order they finish (:mod:`backprop.lab.cells`).
            Closing it (or dropping it) cancels the runs, as ``cancel`` does.
        """
        lrs, values, steps = self.stability_grid(lrs, batch_sizes, steps, max_cells,
                                                 axis=axis, values=values)
        jobs = cells.stability_jobs(self.settings, self._csv, lrs, values, steps,
                                    axis or "batch_size")
        return cells.run_cells(jobs, pool, max_workers, cancel, cache)

    def stability_grid(self, lrs=None, batch_sizes=None, steps=None, max_cells=None, *,
                       axis=None, values=None) -> tuple:
        """The checked grid ``(lrs, values, steps)`` of :meth:`stability_map` (``values``:
        the rows, batch sizes unless ``axis`` says otherwise)."""
        return cells.stability_grid(self.settings, self.n_train, LIMITS, lrs, batch_sizes,
                                    steps, max_cells, axis=axis, values=values)
