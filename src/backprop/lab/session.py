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

A snapshot (``snapshot()``) is a dict of plain lists, floats rounded to 4-5 significant
digits and NaN/Inf written as None; its keys are listed in :mod:`backprop.lab.protocol`.
"""
from __future__ import annotations

import base64
import copy
import csv
import io
import math
import re

import numpy as np

import backprop
from backprop import nn, optim
from backprop.data import load_toy, train_test_split
from backprop.diagnostics.doctor import (
    DIVERGENCE_FACTOR, divergence_reference, lab_wording, loss_diverged,
)
from backprop.lab.pool import CellPool, default_workers
from backprop.lab.settings import (
    REGRESSION_SETS, SETTINGS, LabError, defaults, shown, validate,
)
from backprop.random import Generator
from backprop.serialization import json_safe

__all__ = ["LIMITS", "LabError", "LabSession"]

LIMITS = {
    "max_hidden_layers": SETTINGS["hidden"]["max_len"],
    "max_neurons": SETTINGS["hidden"]["item"]["max"],
    "max_samples": SETTINGS["n_samples"]["max"],
    "max_csv_rows": 5000,
    "min_csv_rows": 10,
    "max_csv_bytes": 1_000_000,
    "max_csv_classes": 10,
    "max_stability_cells": 64,
    "max_stability_steps": 2000,
    "boundary_res": 40,
    "max_boundary_res": 100,
    "curve_points": 500,
}
"""Sizes the lab refuses to go beyond (the page may show them)."""

_ACTIVATION_MODULES = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh,
                       "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
_CURVE_KEEP = 4000          # loss points kept in memory before thinning by half
_FLOAT32_MAX = float(np.finfo(np.float32).max)   # CSV values beyond it would become inf
_FINDINGS_EVERY = 50        # steps between two runs of the doctor (it reads the Monitor)
_MONITOR_INTERVAL = 10      # the Monitor records every 10th step (its cost stays small)
_READINGS_KEEP = 1000       # recorded steps kept for the doctor (the oldest are dropped)
_HISTORY_HEAD = 50          # per-step losses for the doctor: the first ones (the untrained
_HISTORY_KEEP = 1000        # start it compares with) and up to this many recent ones; the
                            # doctor's cost grows with their number (~6 ms per 1000)
_WARMUP_SHARE = 0.1         # warmup + cosine: the first 10% of schedule_steps warm up
_CHECK_EVERY = 10           # steps between two evaluations of the whole data (curve, blow-up)
_STABLE_STEPS = 50
"""A learning rate "trained stably" once it was in force this many steps with every check of
the whole training set at or below the divergence reference (no worse than guessing or the
start); the banner's recovery offers the last such rate."""
_NEURON_RES = 16            # cells per side of each hidden neuron's picture (2-D data)
_NEURON_RES_UNTIL = 64      # hidden neurons up to which they get _NEURON_RES ...
_NEURON_RES_MANY = 10       # ... and beyond which this (a frame stays small)
_NEURON_RES_1D = 32         # points of a neuron's picture on 1-D data
_STABILITY_LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
_STABILITY_BATCHES = (1, 4, 16, 64, 256)
_STABILITY_STEPS = 200
_CELL_CHUNK = 10            # a stability cell looks whether it was cancelled this often (steps)


# -- small helpers ------------------------------------------------------------------------------
def _round(a, digits: int = 4):
    """``a`` (a number or array) as plain Python floats/lists to ``digits`` significant digits.

    Non-finite values become None (JSON has no NaN). Powers of ten are applied exactly, so
    the printed numbers are short (0.1235, not 0.12350000000000001).
    """
    arr = np.asarray(a, dtype=np.float64)
    finite = np.isfinite(arr)
    with np.errstate(all="ignore"):
        safe = np.where(finite & (arr != 0), np.abs(arr), 1.0)
        k = np.floor(np.log10(safe)).astype(np.int64) - (digits - 1)  # 10**k = last digit kept
        up = np.power(10.0, np.maximum(-k, 0))     # exact for the exponents that occur
        down = np.power(10.0, np.maximum(k, 0))
        rounded = np.where(k < 0, np.round(arr * up) / up, np.round(arr / down) * down)
    out = rounded.tolist()
    if finite.all():
        return out
    return json_safe(out, "null")


def _as_bytes(rows: np.ndarray) -> tuple:
    """Pictures (one row each) as one base64 string of bytes and each row's scale.

    Byte ``b`` of row ``k`` stands for ``(b - 127) / 127 * scale[k]``: the row's largest
    size maps to 0 or 254, 0 to 127 exactly; 255 marks a non-finite value."""
    rows = np.asarray(rows, dtype=np.float64)
    with np.errstate(all="ignore"):
        finite = np.isfinite(rows)
        scale = np.where(finite, np.abs(rows), 0.0).max(axis=1) if rows.size else np.zeros(0)
        unit = np.where(scale > 0, scale, 1.0)[:, None]
        q = np.where(finite, np.round(127.0 + 127.0 * rows / unit), 255.0)
    data = np.clip(q, 0, 255).astype(np.uint8).tobytes()
    return base64.b64encode(data).decode("ascii"), _round(scale, 3)


def _finite_or_none(x):
    return float(x) if x is not None and math.isfinite(x) else None


def _curve(points: list, limit: int) -> list:
    """A loss curve ``[[step, loss], ...]`` downsampled to ``limit`` points and rounded."""
    kept = _downsample(points, limit)
    return [[step, loss] for (step, _), loss in zip(kept, _round([p[1] for p in kept], 5))]


def _downsample(points: list, limit: int) -> list:
    """At most ``limit`` evenly spaced entries of ``points``, the first and last kept."""
    n = len(points)
    if n <= limit:
        return list(points)
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
    return [points[i] for i in idx]


def _feature_columns(X: np.ndarray, names) -> np.ndarray:
    """The input features ``names`` computed from raw coordinates ``X`` (n, 1 or 2)."""
    x1 = X[:, 0]
    x2 = X[:, 1] if X.shape[1] > 1 else None
    table = {"x1": lambda: x1, "x2": lambda: x2, "x1^2": lambda: x1 * x1,
             "x2^2": lambda: x2 * x2, "x1*x2": lambda: x1 * x2, "sin x1": lambda: np.sin(x1),
             "sin x2": lambda: np.sin(x2)}
    return np.stack([table[n]() for n in names], axis=1).astype(np.float32)


def _usable_features(names, dims: int) -> list:
    return [n for n in names if dims > 1 or "x2" not in n]


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose masks come from its session's own stream, not the process's
    (named as the layer it is, since the page shows layer names).

    A lab process runs many sessions (and a process starts from a random seed), so masks
    drawn from the global generator would make a session's run depend on everything else
    the process drew; with its own stream, the same settings give the same run.
    """

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__(p)
        self._rng = rng

    def forward(self, input):
        if not self.training or self.p == 0.0:
            return input
        keep = self._rng.random(input.shape) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        return input * backprop.from_numpy(keep * scale).to(input.dtype)


class _Sampler:
    """Draws mini-batches of any size from a fresh permutation each epoch.

    The batch size may change from one draw to the next (the lab's live batch-size
    slider); a draw that runs past the end of an epoch continues into the next one.
    """

    def __init__(self, n: int, rng: np.random.Generator):
        self.n = n
        self.rng = rng
        self.order = rng.permutation(n)
        self.pos = 0
        self.epoch = 0        # completed passes over the training set
        self.seen = 0         # samples drawn so far

    def next(self, batch_size: int) -> np.ndarray:
        need = min(int(batch_size), self.n)
        parts = []
        while need:
            take = min(need, self.n - self.pos)
            parts.append(self.order[self.pos:self.pos + take])
            self.pos += take
            need -= take
            if self.pos == self.n:
                self.order = self.rng.permutation(self.n)
                self.pos = 0
                self.epoch += 1
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.seen += len(batch)
        return batch


def _optimizer_family(name: str) -> str:
    return "sgd" if name in ("sgd", "momentum") else name


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
        """(Re)build the data, the network, the optimizer and the counters from settings.

        The data is loaded first: when it raises LabError nothing has changed yet.
        """
        s = self.settings
        data = self._load_data()
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

        self._gen = Generator(s["seed"])
        self._dropout_rng = np.random.default_rng([s["seed"], 1])  # (weights use _gen)
        self._build_model(len(self.inputs), self.n_classes if self.task == "classification"
                          else 1)
        self._loss_fn = nn.CrossEntropyLoss() if self.task == "classification" else nn.MSELoss()
        self._optimizer = None
        self._optimizer_name = None
        self._sync_optimizer()
        self._sampler = _Sampler(self.n_train, np.random.default_rng(s["seed"]))

        self.step_count = 0
        self.settings_step = 0          # step_count when the settings last changed
        self.diverged = None
        self.last_grad_norm = None
        self.last_batch_loss = None
        self._lr_now = s["lr"]
        self._schedule_start = 0
        self._train_curve = []
        self._test_curve = []
        self._metrics = {}
        self._metrics_version = -1
        self._boundary_cache = (None, None)
        self._neurons_cache = (None, None)
        self._findings = []
        self._findings_step = 0
        self._findings_at_divergence = None   # step_count of the findings made after diverging
        self._history = []              # {"step", "epoch", "loss", "lr", "grad_norm"} per step
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

    def _load_data(self) -> dict:
        s = self.settings
        name = s["dataset"]
        test_fraction = round(1.0 - s["train_fraction"], 6)
        if name == "digits":
            try:
                from backprop.data import load_digits
                train, test = load_digits(test_fraction=test_fraction, seed=s["seed"])
            except ImportError as e:
                raise LabError(str(e), "dataset") from None
            X_tr, y_tr = (t.numpy() for t in train.tensors)
            X_te, y_te = (t.numpy() for t in test.tensors)
            return {"task": "classification", "n_classes": 10, "dims": 64,
                    "inputs": [f"pixel {i + 1}" for i in range(64)],
                    "raw_train": None, "raw_test": None, "X_train": X_tr, "y_train": y_tr,
                    "X_test": X_te, "y_test": y_te}
        if name == "csv":
            if self._csv is None:
                raise LabError("dataset csv needs an uploaded CSV file first", "dataset")
            X, y, task = self._csv["X"], self._csv["y"], self._csv["task"]
        else:
            X, y = self._toy(name, s)
            task = "regression" if name in REGRESSION_SETS else "classification"
        if task == "classification":
            n_classes = int(y.max()) + 1
        else:
            n_classes = None
            y = y.reshape(-1, 1).astype(np.float32)
        (raw_tr, y_tr), (raw_te, y_te) = (
            tuple(t.numpy() for t in part)
            for part in train_test_split(X, y, test_fraction=test_fraction, seed=s["seed"]))
        if len(y_tr) < 1 or len(y_te) < 1:
            raise LabError(f"train_fraction {s['train_fraction']:g} of {len(y)} samples leaves "
                           f"no {'training' if len(y_tr) < 1 else 'test'} samples",
                           "train_fraction")
        dims = X.shape[1]
        inputs = _usable_features(s["features"], dims)
        if not inputs:
            raise LabError(f"{name} has a single input x1: choose a feature of x1 "
                           f"(x1, x1^2, sin x1)", "features")
        return {"task": task, "n_classes": n_classes, "dims": dims, "inputs": inputs,
                "raw_train": raw_tr, "raw_test": raw_te,
                "X_train": _feature_columns(raw_tr, inputs), "y_train": y_tr,
                "X_test": _feature_columns(raw_te, inputs), "y_test": y_te}

    @staticmethod
    def _toy(name: str, s: dict):
        if name == "blobs":
            # Fixed centres on a circle keep the three clusters apart and inside the view;
            # noise is their spread.
            angles = np.deg2rad([90.0, 210.0, 330.0])
            centres = 0.6 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            X, y = load_toy("blobs", n_samples=s["n_samples"], centers=centres,
                            cluster_std=2 * s["noise"], seed=s["seed"])
        else:
            X, y = load_toy(name, n_samples=s["n_samples"], noise=s["noise"], seed=s["seed"])
        X, y = X.numpy(), y.numpy()
        if name == "spiral" and len(np.unique(y)) < 3:
            raise LabError("spiral needs at least 3 samples", "n_samples")
        return X, y

    def _view_box(self) -> dict:
        """The plotted area: the raw data's extent with a 10% margin."""
        X = np.concatenate([self._raw_train, self._raw_test])
        lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        span = np.maximum(hi - lo, 1e-3)
        lo, hi = lo - 0.1 * span, hi + 0.1 * span
        box = {"x": _round([lo[0], hi[0]], 3)}
        if self.dims == 2:
            box["y"] = _round([lo[1], hi[1]], 3)
        return box

    def _activation_names(self) -> list:
        s = self.settings
        return list(s["activations"]) if s["activations"] is not None \
            else [s["activation"]] * len(s["hidden"])

    def _build_model(self, n_in: int, n_out: int) -> None:
        s = self.settings
        self.sizes = [n_in, *s["hidden"], n_out]
        modules, self._linear_at, self._act_at, self._dropout_at = [], [], [], []
        acts = self._activation_names()
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            self._linear_at.append(len(modules))
            modules.append(nn.Linear(fan_in, fan_out))
            if i < len(self.sizes) - 2:
                self._act_at.append(len(modules))
                modules.append(_ACTIVATION_MODULES[acts[i]]())
                # A Dropout module sits after every hidden layer (p = 0 is the identity), so
                # the dropout slider changes p in place instead of rebuilding the network.
                self._dropout_at.append(len(modules))
                modules.append(Dropout(s["dropout"], self._dropout_rng))
        self.model = nn.Sequential(*modules)
        self._init_weights()
        self._params = list(self.model.parameters())

    def _init_weights(self) -> None:
        """Draw the weights from this session's generator (same seed, same weights)."""
        kind, g = self.settings["init"], self._gen
        for i in self._linear_at:
            layer = self.model[i]
            fan_in = layer.in_features
            if kind == "default":       # PyTorch's Linear default: U(±1/√fan_in) for both
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(layer.weight, -bound, bound, generator=g)
                nn.init.uniform_(layer.bias, -bound, bound, generator=g)
                continue
            if kind == "xavier":
                nn.init.xavier_uniform_(layer.weight, generator=g)
            elif kind == "he":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=g)
            elif kind == "too_small":   # signals and gradients shrink layer by layer
                nn.init.normal_(layer.weight, 0.0, 0.01, generator=g)
            else:                       # too_large: saturated tanh/sigmoid, exploding relu
                nn.init.normal_(layer.weight, 0.0, 3.0, generator=g)
            nn.init.zeros_(layer.bias)

    def _sync_optimizer(self) -> None:
        """Make the optimizer match the settings: a new one if its kind changed, else edit it.

        Editing the existing optimizer's groups keeps its state (momentum buffers, Adam's
        moments); only a different kind (say Adam -> SGD) starts from fresh state.
        """
        s = self.settings
        name = s["optimizer"]
        family = _optimizer_family(name)
        if self._optimizer is None or _optimizer_family(self._optimizer_name) != family:
            params = self._params
            if family == "sgd":
                self._optimizer = optim.SGD(params, lr=s["lr"])
            elif family == "rmsprop":
                self._optimizer = optim.RMSprop(params, lr=s["lr"])
            elif family == "adam":
                self._optimizer = optim.Adam(params, lr=s["lr"])
            else:
                self._optimizer = optim.AdamW(params, lr=s["lr"])
            if getattr(self, "_monitor", None) is not None:
                self._close_monitor()
                self._attach_monitor()
        self._optimizer_name = name
        for group in self._optimizer.param_groups:
            group["weight_decay"] = s["weight_decay"]
            if family == "sgd":
                group["momentum"] = s["momentum"] if name == "momentum" else 0.0
            elif family in ("adam", "adamw"):
                group["betas"] = (s["beta1"], s["beta2"])

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
        d = self.diverged
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
        if changed & {"optimizer", "momentum", "beta1", "beta2", "weight_decay", "lr"}:
            self._sync_optimizer()
        if "schedule" in changed or ("schedule_steps" in changed
                                     and new["schedule"] == "warmup_cosine"):
            self._schedule_start = self.step_count   # a schedule starts when it is chosen
        if "dropout" in changed:
            for i in self._dropout_at:
                self.model[i].p = new["dropout"]
        if changed & {"activation", "activations"}:
            for i, name in zip(self._act_at, self._activation_names()):
                if not isinstance(self.model[i], _ACTIVATION_MODULES[name]):
                    self.model[i] = _ACTIVATION_MODULES[name]()
        self._lr_now = self._lr_at(self.step_count + 1)
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
    def _lr_at(self, step: int) -> float:
        s = self.settings
        lr = s["lr"]
        if s["schedule"] != "warmup_cosine":
            return lr
        t = step - self._schedule_start            # 1 for the first scheduled step
        total = s["schedule_steps"]
        warmup = max(1, int(round(_WARMUP_SHARE * total)))
        if t <= warmup:
            return lr * t / warmup
        if t >= total:
            return 0.0
        return lr * 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / (total - warmup)))

    @property
    def epoch(self) -> int:
        """Completed passes over the training set."""
        return self._sampler.epoch

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
        """One optimizer step on the next mini-batch; returns the traced forward when asked."""
        idx = self._sampler.next(self.batch_size)
        xb = backprop.from_numpy(self._X_train[idx])
        yb = backprop.from_numpy(self._y_train[idx])
        step = self.step_count + 1
        self._lr_now = self._lr_at(step)
        for group in self._optimizer.param_groups:
            group["lr"] = self._lr_now
        self._optimizer.zero_grad()
        # np.errstate, not warnings.catch_warnings: it is per thread, and overflow while a run
        # diverges is expected (the diverged state reports it).
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if trace:
                outs, h = [], xb
                for module in self.model:
                    h = module(h)
                    if isinstance(module, nn.Linear):
                        h.retain_grad()     # dL/dz of each layer for the one-step view
                    outs.append(h)
                out = h
            else:
                outs, out = None, self.model(xb)
            loss = self._loss_fn(out, yb)
            loss_value = float(loss.item())     # the data loss: the curves and the doctor's
            penalty = self._penalty()
            objective = loss if penalty is None else loss + penalty
            self.last_batch_loss = loss_value
            record = {"step": step, "epoch": self._sampler.epoch, "loss": loss_value,
                      "lr": self._lr_now, "grad_norm": None}
            self._history.append(record)
            if len(self._history) > _HISTORY_HEAD + _HISTORY_KEEP:   # a long session
                del self._history[_HISTORY_HEAD:len(self._history) - _HISTORY_KEEP // 2]
            if self._monitor is not None:
                try:
                    self._monitor.log_loss(loss_value)
                except Exception:
                    pass
            if not math.isfinite(loss_value):
                self._diverge(step, "loss")
                return None
            objective.backward()
            grads = [p.grad.numpy() for p in self._params if p.grad is not None]
            total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            self.last_grad_norm = total
            record["grad_norm"] = total
            if not math.isfinite(total):
                self._diverge(step, "gradient")
                return None
            clipped = False
            if self.settings["clip"] > 0 and total > self.settings["clip"]:
                nn.utils.clip_grad_norm_(self._params, self.settings["clip"])
                clipped = True
            self._optimizer.step()
        self.step_count = step
        self.version += 1
        return {"batch": idx, "xb": xb, "yb": yb, "outs": outs, "loss": loss_value,
                "grad_norm": total, "clipped": clipped}

    def _penalty(self):
        """L1 x sum|w| + L2 x sum w**2 over the Linear layers' weights (not the biases), the
        regularisation added to the training loss; None when both are 0."""
        l1, l2 = self.settings["l1"], self.settings["l2"]
        if not (l1 or l2):
            return None
        total = None
        for i in self._linear_at:
            w = self.model[i].weight
            term = None
            if l1:
                term = w.abs().sum() * l1
            if l2:
                sq = (w * w).sum() * l2
                term = sq if term is None else term + sq
            total = term if total is None else total + term
        return total

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
                  "lr": _round(self._lr_now, 5), "loss": _round(self.last_batch_loss, 5),
                  "grad_norm": _round(self.last_grad_norm, 5) if self.last_grad_norm is not None
                  else None, "diverged": self.diverged}
        if traced is None:
            detail.update(clipped=False, sample=None, forward=[], backward=[], update=[])
            return detail
        row = 0                   # the animation follows the batch's first sample
        k = int(traced["batch"][row])
        target = self._y_train[k]
        sample = {"index": k, "input": _round(self._X_train[k], 4),
                  "raw": _round(self._raw_train[k], 4) if self._raw_train is not None else None,
                  "target": int(target) if self.task == "classification"
                  else _round(float(target[0]), 5)}
        forward, backward, update = [], [], []
        outs = traced["outs"]
        for n_layer, (i, (w0, b0)) in enumerate(zip(self._linear_at, before)):
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
            forward.append({"layer": str(i), "pre": _round(z.detach().numpy()[row], 4),
                            "post": _round(post, 4)})
            grad_z = z.grad.numpy()[row] if z.grad is not None else np.zeros(z.shape[1])
            backward.append({"layer": str(i), "grad_pre": _round(grad_z, 4),
                             "weight_grads": _round(layer.weight.grad.numpy(), 4),
                             "bias_grads": _round(layer.bias.grad.numpy(), 4)})
            update.append({"layer": str(i),
                           "weights": _round(layer.weight.detach().numpy() - w0, 4),
                           "biases": _round(layer.bias.detach().numpy() - b0, 4)})
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

    def _grid(self, res: int) -> np.ndarray:
        """The input features at the centres of a ``res`` x ``res`` grid over the view (row
        by row from the bottom: row i is y = ymin + (i + .5) dy), or ``res`` points in 1-D."""
        (x0, x1) = self._view["x"]
        xs = x0 + (np.arange(res) + 0.5) * (x1 - x0) / res       # cell centres
        if self.dims == 2:
            (y0, y1) = self._view["y"]
            ys = y0 + (np.arange(res) + 0.5) * (y1 - y0) / res
            gx, gy = np.meshgrid(xs, ys)                          # row i: y = ys[i]
            raw = np.stack([gx.ravel(), gy.ravel()], axis=1)
        else:
            raw = xs[:, None]
        return _feature_columns(raw, self.inputs)

    def _neurons(self):
        """Each hidden neuron's picture: its output, and the gradient of the prediction with
        respect to it, over a coarse grid of the input plane (the lab's ``neurons``).

        The gradient is that of the predicted class's log-probability (regression: of the
        prediction) with respect to the neuron's output, point by point: the loss needs a
        target, which a point of the plane has not. Weights are detached, so the
        parameters' gradients (the training step's) are untouched, and the modules are
        called without their hooks (the Monitor sees only training).
        """
        if self._view is None:
            return None
        key = self.version
        if self._neurons_cache[0] == key:
            return self._neurons_cache[1]
        hidden = sum(self.sizes[1:-1])
        res = (_NEURON_RES if hidden <= _NEURON_RES_UNTIL else _NEURON_RES_MANY) \
            if self.dims == 2 else _NEURON_RES_1D
        x = backprop.from_numpy(self._grid(res)).requires_grad_()
        outs, h = [], x
        with backprop.enable_grad(), np.errstate(over="ignore", invalid="ignore",
                                                 divide="ignore"):
            for i, module in enumerate(self.model):
                if isinstance(module, nn.Linear):
                    h = h @ module.weight.detach().T + module.bias.detach()
                elif i in self._dropout_at:
                    continue                  # dropout is off outside training
                else:
                    h = module.forward(h)
                    h.retain_grad()
                    outs.append(h)
            if self.task == "classification":
                logp = backprop.log_softmax(h, dim=1)
                pick = logp.detach().numpy().argmax(axis=1)
                chosen = (logp * backprop.from_numpy(
                    np.eye(h.shape[1], dtype=np.float32)[pick])).sum()
            else:
                chosen = h.sum()
            if outs:
                chosen.backward()
        layers = []
        for a in outs:
            values, scale = _as_bytes(a.detach().numpy().T)
            grads, grad_scale = _as_bytes(a.grad.numpy().T if a.grad is not None
                                          else np.zeros(a.shape[::-1], np.float32))
            layers.append({"values": values, "scale": scale, "grads": grads,
                           "grad_scale": grad_scale})
        neurons = {"dims": self.dims, "res": res, "x": self._view["x"], "layers": layers}
        if self.dims == 2:
            neurons["y"] = self._view["y"]
        self._neurons_cache = (key, neurons)
        return neurons

    def _boundary(self):
        if self._view is None:
            return None
        key = (self.version, self.boundary_res)
        if self._boundary_cache[0] == key:
            return self._boundary_cache[1]
        res = self.boundary_res if self.dims == 2 else max(self.boundary_res * 2, 50)
        X = self._grid(res)
        was_training = self.model.training
        self.model.eval()
        try:
            with backprop.no_grad(), np.errstate(over="ignore", invalid="ignore",
                                                 divide="ignore"):
                out = self.model(backprop.from_numpy(X)).numpy().astype(np.float64)
        finally:
            self.model.train(was_training)
        if self.task == "classification":
            with np.errstate(all="ignore"):
                e = np.exp(out - out.max(axis=1, keepdims=True))
                values = e / e.sum(axis=1, keepdims=True)
            grids = values.T                                      # (classes, cells)
        else:
            grids = out.T                                         # (1, cells)
        shape = (res, res) if self.dims == 2 else (res,)
        boundary = {"dims": self.dims, "res": res, "x": self._view["x"],
                    "kind": self.task, "classes": self.n_classes,
                    "values": [_round(g.reshape(shape), 3) for g in grids]}
        if self.dims == 2:
            boundary["y"] = self._view["y"]
        if self.task == "regression":
            ys = np.concatenate([self._y_train.ravel(), self._y_test.ravel()])
            boundary["range"] = _round([float(ys.min()), float(ys.max())], 4)
        self._boundary_cache = (key, boundary)
        return boundary

    def _points(self) -> dict | None:
        if self._raw_train is None:
            return None

        def rows(raw, y):
            if self.task == "classification":
                labels = y.astype(np.float64)[:, None]
            else:
                labels = y.astype(np.float64).reshape(-1, 1)
            return _round(np.concatenate([raw.astype(np.float64), labels], axis=1), 4)

        return {"dims": self.dims, "train": rows(self._raw_train, self._y_train),
                "test": rows(self._raw_test, self._y_test)}

    def _network(self) -> tuple:
        """(the network's weights and gradients for drawing, per-layer gradient norms)."""
        weights, biases, wgrads, bgrads, norms = [], [], [], [], []
        for n_layer, i in enumerate(self._linear_at):
            layer = self.model[i]
            w = layer.weight.detach().numpy()
            weights.append(_round(w, 4))
            biases.append(_round(layer.bias.detach().numpy(), 4))
            gw, gb = layer.weight.grad, layer.bias.grad
            wgrads.append(None if gw is None else _round(gw.numpy(), 3))
            bgrads.append(None if gb is None else _round(gb.numpy(), 3))
            norms.append({
                "layer": str(i),
                "label": f"layer {n_layer + 1}" if n_layer < len(self._linear_at) - 1
                else "output",
                "norm": None if gw is None else _round(float(np.linalg.norm(gw.numpy())), 4),
                "weight_norm": _round(float(np.linalg.norm(w)), 4)})
        network = {"sizes": list(self.sizes), "inputs": list(self.inputs),
                   "activations": self._activation_names(),
                   "output": "softmax" if self.task == "classification" else "linear",
                   "weights": weights, "biases": biases, "weight_grads": wgrads,
                   "bias_grads": bgrads}
        return network, norms

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
        network, norms = self._network()
        limit = LIMITS["curve_points"]
        frame = {
            "type": "state", "step": self.step_count, "epoch": self.epoch,
            "samples_seen": self._sampler.seen,
            "settings": copy.deepcopy(self.settings),
            "settings_step": self.settings_step,
            "lr_now": _round(self._lr_now, 5), "batch_size_now": self.batch_size,
            "n_train": self.n_train, "n_test": len(self._y_test),
            "task": self.task, "classes": self.n_classes, "inputs": list(self.inputs),
            "dims": self.dims, "class_labels": self._class_labels(),
            "metrics": {k: None if v is None else _round(v, 5) for k, v in m.items()},
            "batch_loss": None if self.last_batch_loss is None
            else _round(self.last_batch_loss, 5),
            "grad_norm": None if self.last_grad_norm is None else _round(self.last_grad_norm, 5),
            "train_loss": _curve(self._train_curve, limit),
            "test_loss": _curve(self._test_curve, limit),
            "boundary": self._boundary(),
            "neurons": self._neurons(),
            "network": network,
            "grad_norms": norms,
            "findings": list(self._findings),
            "diverged": copy.deepcopy(self.diverged),
            "data_version": self.data_version,
        }
        if detail == "full" or self._points_version != self.data_version:
            frame["points"] = self._points()
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
        evaluated.

        Returns:
            ``{"rows", "task", "classes", "class_labels", "header"}``.

        Raises:
            LabError: too big or too small, a row of the wrong width, a feature that is not
                a finite number, an empty label, a single class or too many text labels.

        Example::

            session.load_csv("x1,x2,label\\n0.1,0.2,0\\n...")
        """
        if not isinstance(text, str):
            raise LabError(f"load_csv: expected the CSV text as a string, got "
                           f"{type(text).__name__}")
        size = len(text.encode("utf-8"))
        if size > LIMITS["max_csv_bytes"]:
            raise LabError(f"the CSV is {size} bytes; the lab takes at most "
                           f"{LIMITS['max_csv_bytes']} bytes")
        reader = csv.reader(io.StringIO(text))
        features, labels, header = [], [], None
        try:
            for number, row in enumerate(reader, start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != 3:
                    raise LabError(f"CSV row {number}: expected 3 columns (x1, x2, label), got "
                                   f"{len(row)}")
                try:
                    values = [float(cell) for cell in row[:2]]
                except ValueError:
                    if not features and header is None:    # a header line names the columns
                        header = [cell.strip() for cell in row]
                        continue
                    bad = next(c for c in row[:2] if not _is_float(c))
                    raise LabError(f"CSV row {number}: {bad.strip()!r} is not a number") \
                        from None
                label = row[2].strip()
                if not label:
                    raise LabError(f"CSV row {number}: the label (third column) is empty")
                number_label = float(label) if _is_float(label) else None
                # Finite, and finite in float32 too (the network's dtype): 1e39 would be inf.
                if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in values) or \
                        (number_label is not None and not (math.isfinite(number_label)
                                                           and abs(number_label) <= _FLOAT32_MAX)):
                    raise LabError(f"CSV row {number}: values must be finite numbers of at most "
                                   f"{_FLOAT32_MAX:.3g} in size")
                features.append(values)
                labels.append(label if number_label is None else number_label)
                if len(features) > LIMITS["max_csv_rows"]:
                    raise LabError(f"the CSV has more than {LIMITS['max_csv_rows']} rows")
        except csv.Error as e:
            raise LabError(f"the CSV can't be read: {e}") from None
        if len(features) < LIMITS["min_csv_rows"]:
            raise LabError(f"the CSV has {len(features)} data rows; the lab needs at least "
                           f"{LIMITS['min_csv_rows']}")
        X = np.asarray(features, dtype=np.float32)
        max_classes = LIMITS["max_csv_classes"]
        if any(isinstance(v, str) for v in labels):
            # Class names: every label is one, numbers included ("0" next to "yes").
            names = [v if isinstance(v, str) else f"{v:g}" for v in labels]
            distinct = sorted(set(names))
            if len(distinct) > max_classes:
                raise LabError(f"the CSV's labels are text with {len(distinct)} different "
                               f"values; a classification set takes at most {max_classes} "
                               f"classes")
            if len(distinct) < 2:
                raise LabError(f"the CSV's labels are all {distinct[0]!r}: a classification "
                               f"set needs at least 2 classes")
            index = {name: k for k, name in enumerate(distinct)}
            y = np.asarray([index[n] for n in names], dtype=np.int64)
            task, class_labels = "classification", distinct
        else:
            numbers = np.asarray(labels, dtype=np.float64)
            distinct = np.unique(numbers)
            integral = bool(np.all(numbers == np.round(numbers)))
            if integral and len(distinct) <= max_classes:
                if len(distinct) < 2:
                    raise LabError(f"the CSV's labels are all {distinct[0]:g}: a "
                                   f"classification set needs at least 2 classes")
                y = np.searchsorted(distinct, numbers).astype(np.int64)
                task, class_labels = "classification", [float(v) for v in distinct]
            else:
                y = numbers.astype(np.float32).reshape(-1, 1)
                task, class_labels = "regression", None
        previous = (self._csv, self.settings)
        self._csv = {"X": X, "y": y, "task": task, "class_labels": class_labels,
                     "header": header}
        self.settings = validate({"dataset": "csv"}, self.settings)
        try:
            self._build()
        except LabError:
            self._csv, self.settings = previous
            raise
        return {"rows": len(features), "task": task,
                "classes": len(class_labels) if class_labels else None,
                "class_labels": class_labels, "header": header}

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
        return _script(self)

    # -- stability map --------------------------------------------------------------------------
    def stability_map(self, lrs=None, batch_sizes=None, steps=None, *, max_workers=None,
                      cancel=None, pool=None, max_cells=None):
        """Short runs over a grid of learning rates x batch sizes, in background processes.

        Every cell trains the current data and network from its initial weights (the
        seed's) for ``steps`` steps with one learning rate and batch size; the other
        settings are the session's. The settings are captured when this is called.

        Args:
            lrs: learning rates (default 1e-4 ... 10, six of them).
            batch_sizes: batch sizes (default 1, 4, 16, 64, 256 up to the training set).
            steps: steps per run (default 200).
            max_workers: processes, when ``pool`` is None (default: the usable cores, at
                most 4).
            cancel: a ``threading.Event``; once set, the iterator stops within a fraction
                of a second, the runs not yet started are dropped and the running ones
                stop (they check between chunks of steps).
            pool: a :class:`~backprop.lab.pool.CellPool` to run on (the server's, shared by
                every session); default: a pool of this map's own, closed when it ends.
            max_cells: cells at most (default ``LIMITS["max_stability_cells"]``; a Ray
                pool allows more).

        Returns:
            An iterator of cells ``{"type": "stability_cell", "lr", "batch_size", "i"
            (index in lrs), "j" (index in batch_sizes), "final_loss" (training loss at the
            end, None if diverged), "test_loss", "diverged", "steps"}`` in the order they
            finish. Closing it (or dropping it) cancels the runs, as ``cancel`` does.
        """
        lrs, batch_sizes, steps = self.stability_grid(lrs, batch_sizes, steps, max_cells)
        base = copy.deepcopy(self.settings)
        csv_data = None
        if base["dataset"] == "csv":
            csv_data = {k: self._csv[k] for k in ("X", "y", "task")}
        jobs = [(i, j, {**base, "lr": lr, "batch_size": bs}, csv_data, steps)
                for j, bs in enumerate(batch_sizes) for i, lr in enumerate(lrs)]
        workers = max_workers or min(default_workers(), len(jobs))
        return _run_cells(jobs, pool, workers, cancel)

    def stability_grid(self, lrs=None, batch_sizes=None, steps=None, max_cells=None) -> tuple:
        """The checked grid ``(lrs, batch_sizes, steps)`` of :meth:`stability_map`."""
        if lrs is None:
            lrs = list(_STABILITY_LRS)
        if batch_sizes is None:
            batch_sizes = sorted({min(b, self.n_train) for b in _STABILITY_BATCHES})
        if steps is None:
            steps = _STABILITY_STEPS
        lrs = _grid_values(lrs, "lrs", "lr", self.settings)
        batch_sizes = _grid_values(batch_sizes, "batch_sizes", "batch_size", self.settings)
        if isinstance(steps, bool) or not isinstance(steps, int) \
                or not 1 <= steps <= LIMITS["max_stability_steps"]:
            raise LabError(f"steps must be an integer between 1 and "
                           f"{LIMITS['max_stability_steps']}, got {shown(steps)}", "steps")
        cells = len(lrs) * len(batch_sizes)
        cap = LIMITS["max_stability_cells"] if max_cells is None else max_cells
        if cells > cap:
            raise LabError(f"a stability map of {len(lrs)} x {len(batch_sizes)} = {cells} cells "
                           f"is too big; at most {cap}")
        return lrs, batch_sizes, steps


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _grid_values(values, name: str, setting: str, settings: dict) -> list:
    """A stability map's axis (``lrs``, ``batch_sizes``), each value checked as ``setting``.

    An error names the axis (the page must not flag its ``lr`` control for a bad ``lrs``).
    """
    if not isinstance(values, (list, tuple)) or not values:
        raise LabError(f"{name} must be a non-empty list, got {shown(values)}", name)
    checked = []
    for k, value in enumerate(values):
        try:
            checked.append(validate({setting: value}, settings)[setting])
        except LabError as e:
            raise LabError(f"{name}[{k}]: {e}", name) from None
    return checked


def _stability_cell(job, should_stop=None) -> dict | None:
    """One cell of a stability map (runs in a worker process).

    Trains in chunks of :data:`_CELL_CHUNK` steps and returns None as soon as
    ``should_stop()`` says so (the map was cancelled or the page left).
    """
    i, j, settings, csv_data, steps = job
    session = LabSession(settings, diagnostics=False, _csv=csv_data)
    done = 0
    while done < steps and session.diverged is None:
        if should_stop is not None and should_stop():
            return None
        done += session.step(min(_CELL_CHUNK, steps - done))
    final = test = None
    if session.diverged is None:
        m = session.metrics()
        final, test = _finite_or_none(m["train_loss"]), _finite_or_none(m["test_loss"])
    diverged = session.diverged is not None or final is None
    return {"type": "stability_cell", "lr": settings["lr"], "batch_size": settings["batch_size"],
            "i": i, "j": j, "final_loss": None if final is None else _round(final, 4),
            "test_loss": None if test is None else _round(test, 4), "diverged": diverged,
            "steps": done}


def _run_cells(jobs: list, pool: CellPool | None, workers: int, cancel=None):
    """The cells of ``jobs`` as they finish, on ``pool`` (or a pool of its own)."""
    own = pool is None
    if own:
        pool = CellPool(workers)
    try:
        yield from pool.submit(_stability_cell, jobs, cancel=cancel)
    finally:
        if own:
            pool.close()


# -- the exported script --------------------------------------------------------------------------
def _script(session: LabSession) -> str:
    s = session.settings
    shown = {k: s[k] for k in SETTINGS if k != "speed"}
    lines = []
    add = lines.append
    add(f'"""Train the network of a backprop lab session again: {s["dataset"]}, hidden '
        f'{s["hidden"]}, {s["optimizer"]} lr {s["lr"]:g}.')
    add("")
    add(f"Exported from the backprop lab at step {session.step_count}. Run it with")
    add("")
    add("    python this_file.py --steps 2000                 # train from the seed's weights")
    add("    python this_file.py --checkpoint lab.safetensors # start from exported weights")
    add('"""')
    add("import argparse")
    add("import math")
    add("")
    add("import numpy as np")
    add("")
    add("import backprop")
    add("from backprop import nn, optim")
    add("from backprop.data import train_test_split")
    add("")
    add("SETTINGS = {")
    for name, value in shown.items():
        add(f"    {name!r}: {value!r},")
    add("}")
    add("")
    # data
    add("")
    add("def load_data():")
    add('    """Raw coordinates and targets, split as the lab split them."""')
    if s["dataset"] == "csv":
        csv_data = session._csv
        add("    # The uploaded CSV, embedded.")
        add(f"    X = np.array({_round(csv_data['X'], 9)}, dtype=np.float32)")
        if csv_data["task"] == "classification":
            add(f"    y = np.array({csv_data['y'].tolist()}, dtype=np.int64)")
        else:
            add(f"    y = np.array({_round(csv_data['y'].ravel(), 9)}, dtype=np.float32)"
                f".reshape(-1, 1)")
    elif s["dataset"] == "digits":
        add("    from backprop.data import load_digits")
        add(f"    train, test = load_digits(test_fraction={round(1 - s['train_fraction'], 6)}, "
            f"seed=SETTINGS['seed'])")
        add("    return ([t.numpy() for t in train.tensors], [t.numpy() for t in test.tensors])")
    elif s["dataset"] == "blobs":
        add("    from backprop.data import load_toy")
        add("    angles = np.deg2rad([90.0, 210.0, 330.0])")
        add("    centres = 0.6 * np.stack([np.cos(angles), np.sin(angles)], axis=1)")
        add("    X, y = load_toy('blobs', n_samples=SETTINGS['n_samples'], centers=centres,")
        add("                    cluster_std=2 * SETTINGS['noise'], seed=SETTINGS['seed'])")
        add("    X, y = X.numpy(), y.numpy()")
    else:
        add("    from backprop.data import load_toy")
        add(f"    X, y = load_toy({s['dataset']!r}, n_samples=SETTINGS['n_samples'], "
            f"noise=SETTINGS['noise'], seed=SETTINGS['seed'])")
        add("    X, y = X.numpy(), y.numpy()")
    if s["dataset"] != "digits":
        add(f"    test_fraction = {round(1 - s['train_fraction'], 6)}")
        add("    train, test = train_test_split(X, y, test_fraction=test_fraction, "
            "seed=SETTINGS['seed'])")
        add("    return [t.numpy() for t in train], [t.numpy() for t in test]")
    add("")
    add("")
    add("def features(raw):")
    if s["dataset"] == "digits":
        add('    """The digits are used as they are: 64 pixel values."""')
        add("    return raw")
    else:
        add(f'    """The input features {session.inputs} of raw coordinates (x1, x2)."""')
        add("    x1 = raw[:, 0]")
        if session.dims > 1:
            add("    x2 = raw[:, 1]")
        exprs = {"x1": "x1", "x2": "x2", "x1^2": "x1 * x1", "x2^2": "x2 * x2",
                 "x1*x2": "x1 * x2", "sin x1": "np.sin(x1)", "sin x2": "np.sin(x2)"}
        add(f"    columns = [{', '.join(exprs[f] for f in session.inputs)}]")
        add("    return np.stack(columns, axis=1).astype(np.float32)")
    add("")
    add("")
    # model
    acts = session._activation_names()
    act_names = {"relu": "nn.ReLU()", "leaky_relu": "nn.LeakyReLU()", "tanh": "nn.Tanh()",
                 "sigmoid": "nn.Sigmoid()", "gelu": "nn.GELU()"}
    add("def build_model(generator):")
    add(f'    """Linear layers {session.sizes}, each hidden one followed by its activation and '
        f'dropout."""')
    add(f"    sizes = {session.sizes}")
    add(f"    activations = [{', '.join(act_names[a] for a in acts)}]")
    add("    layers = []")
    add("    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):")
    add("        linear = nn.Linear(fan_in, fan_out)")
    init = s["init"]
    if init == "default":
        add("        bound = 1.0 / math.sqrt(fan_in)     # PyTorch's default, from our generator")
        add("        nn.init.uniform_(linear.weight, -bound, bound, generator=generator)")
        add("        nn.init.uniform_(linear.bias, -bound, bound, generator=generator)")
    else:
        call = {"xavier": "nn.init.xavier_uniform_(linear.weight, generator=generator)",
                "he": "nn.init.kaiming_normal_(linear.weight, nonlinearity='relu', "
                      "generator=generator)",
                "too_small": "nn.init.normal_(linear.weight, 0.0, 0.01, generator=generator)",
                "too_large": "nn.init.normal_(linear.weight, 0.0, 3.0, generator=generator)"}
        add(f"        {call[init]}")
        add("        nn.init.zeros_(linear.bias)")
    add("        layers.append(linear)")
    add("        if i < len(sizes) - 2:")
    add("            layers += [activations[i], nn.Dropout(SETTINGS['dropout'])]")
    add("    return nn.Sequential(*layers)")
    add("")
    add("")
    add("def lr_at(step, start=0):")
    if s["schedule"] == "warmup_cosine":
        add('    """Linear warmup over the first 10% of schedule_steps, then a cosine to 0."""')
        add("    lr, total = SETTINGS['lr'], SETTINGS['schedule_steps']")
        add(f"    warmup = max(1, round({_WARMUP_SHARE} * total))")
        add("    t = step - start")
        add("    if t <= warmup:")
        add("        return lr * t / warmup")
        add("    if t >= total:")
        add("        return 0.0")
        add("    return lr * 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / (total - warmup)))")
    else:
        add('    """A constant learning rate."""')
        add("    return SETTINGS['lr']")
    add("")
    add("")
    terms = [t for t, on in (("w.abs().sum() * SETTINGS['l1']", s["l1"]),
                             ("(w * w).sum() * SETTINGS['l2']", s["l2"])) if on]
    if terms:     # the lab's LabSession._penalty, term for term
        add("def penalty(model):")
        add('    """L1 x sum|w| + L2 x sum w**2 over the Linear layers\' weights (not the biases),')
        add('    added to the training loss."""')
        add("    weights = [m.weight for m in model if isinstance(m, nn.Linear)]")
        add(f"    return sum({' + '.join(terms)} for w in weights)")
        add("")
        add("")
    opt = s["optimizer"]
    opt_line = {
        "sgd": "optim.SGD(params, lr=SETTINGS['lr'], weight_decay=SETTINGS['weight_decay'])",
        "momentum": "optim.SGD(params, lr=SETTINGS['lr'], momentum=SETTINGS['momentum'], "
                    "weight_decay=SETTINGS['weight_decay'])",
        "rmsprop": "optim.RMSprop(params, lr=SETTINGS['lr'], "
                   "weight_decay=SETTINGS['weight_decay'])",
        "adam": "optim.Adam(params, lr=SETTINGS['lr'], betas=(SETTINGS['beta1'], "
                "SETTINGS['beta2']), weight_decay=SETTINGS['weight_decay'])",
        "adamw": "optim.AdamW(params, lr=SETTINGS['lr'], betas=(SETTINGS['beta1'], "
                 "SETTINGS['beta2']), weight_decay=SETTINGS['weight_decay'])",
    }[opt]
    loss_line = "nn.CrossEntropyLoss()" if session.task == "classification" else "nn.MSELoss()"
    add("def main(argv=None):")
    add("    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])")
    add(f"    parser.add_argument('--steps', type=int, default={max(session.step_count, 1000)},")
    add("                        help='training steps')")
    add("    parser.add_argument('--checkpoint', help='start from weights the lab exported')")
    add("    args = parser.parse_args(argv)")
    add("")
    add("    (raw_train, y_train), (raw_test, y_test) = load_data()")
    add("    X_train, X_test = features(raw_train), features(raw_test)")
    add("    backprop.manual_seed(SETTINGS['seed'])   # dropout masks repeat from run to run")
    add("    generator = backprop.Generator(SETTINGS['seed'])")
    add("    model = build_model(generator)")
    add("    if args.checkpoint:")
    add("        model.load_state_dict(backprop.load(args.checkpoint)['model'])")
    add(f"    loss_fn = {loss_line}")
    add("    params = list(model.parameters())")
    add(f"    optimizer = {opt_line}")
    add("    rng = np.random.default_rng(SETTINGS['seed'])   # batch order")
    add("    order, pos = rng.permutation(len(X_train)), 0")
    add("    batch_size = min(SETTINGS['batch_size'], len(X_train))")
    add("")
    add("    def evaluate(X, y):")
    add("        model.eval()")
    add("        with backprop.no_grad():")
    add("            loss = loss_fn(model(backprop.from_numpy(X)), backprop.from_numpy(y)).item()")
    add("        model.train()")
    add("        return loss")
    add("")
    add("    print(f'step 0: train loss {evaluate(X_train, y_train):.4f}, '")
    add("          f'test loss {evaluate(X_test, y_test):.4f}')")
    add("    report_every = max(1, args.steps // 10)")
    add("    for step in range(1, args.steps + 1):")
    add("        if pos + batch_size > len(order):          # a new epoch: a new permutation")
    add("            rest = order[pos:]")
    add("            order, pos = rng.permutation(len(X_train)), batch_size - len(rest)")
    add("            idx = np.concatenate([rest, order[:pos]])")
    add("        else:")
    add("            idx, pos = order[pos:pos + batch_size], pos + batch_size")
    add("        for group in optimizer.param_groups:")
    add("            group['lr'] = lr_at(step)")
    add("        optimizer.zero_grad()")
    add("        loss = loss_fn(model(backprop.from_numpy(X_train[idx])),")
    add("                       backprop.from_numpy(y_train[idx]))")
    add("        if not math.isfinite(loss.item()):")
    add("            print(f'diverged at step {step}: learning rate too high for this batch "
        "size?')")
    add("            return 1")
    if terms:
        add("        loss = loss + penalty(model)     # the L1 / L2 regularisation")
    add("        loss.backward()")
    if s["clip"] > 0:
        add("        nn.utils.clip_grad_norm_(params, SETTINGS['clip'])")
    add("        optimizer.step()")
    add("        if step % report_every == 0 or step == args.steps:")
    add("            print(f'step {step}: train loss {evaluate(X_train, y_train):.4f}, '")
    add("                  f'test loss {evaluate(X_test, y_test):.4f}')")
    add("    return 0")
    add("")
    add("")
    add("if __name__ == '__main__':")
    add("    raise SystemExit(main())")
    return "\n".join(lines) + "\n"

