"""Experiments from a plain configuration: what ``backprop train`` runs.

A :class:`RunConfig` names a dataset (a toy set or the 8x8 digits), an MLP, an
optimizer, a schedule and the training knobs; :func:`run_experiment` builds them,
trains with :class:`~backprop.train.Trainer` and writes a run folder::

    config.json          the configuration: ``backprop train --config`` repeats the run
    metrics.jsonl        every step and epoch record, one JSON object per line
    history.json         the whole history in one JSON document
    last.safetensors     a full training checkpoint after every epoch (for --resume)
    best.safetensors     the checkpoint of the epoch with the lowest test loss
    loss_curve.png       loss per step and epoch, accuracy beside (when matplotlib is installed)
    diagnostics.jsonl    gradient/activation readings, when a callback writes them there
                         (``backprop train`` adds a diagnostics Monitor that does)

The builders (:func:`build_mlp`, :func:`build_optimizer`, :func:`build_scheduler`)
are useful on their own.

Example::

    config = RunConfig(dataset="spiral", layers="2-16-16-3", epochs=50, out="runs/spiral")
    result = run_experiment(config, progress=False)
    result["test"]            # {'loss': ..., 'accuracy': ...}
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import numbers
import os
import time
import warnings
from typing import Any

from backprop import nn, optim
from backprop._checks import is_integral, is_real
from backprop.data import (
    TOY_DATASETS,
    TOY_TASKS,
    DataLoader,
    TensorDataset,
    load_digits,
    load_toy,
    train_test_split,
)
from backprop.errors import shorten
from backprop.random import Generator, manual_seed
from backprop.serialization import atomic_write_text
from backprop.train.callbacks import Callback, JSONLinesLogger, ModelCheckpoint
from backprop.train.history import History
from backprop.train.loop import Trainer, TrainingDiverged
from backprop.train.plotting import (
    PlotDependencyError,
    draw_loss,
    new_figure,
    require_matplotlib,
    save_png,
)

__all__ = [
    "ACTIVATIONS", "ConfigError", "DATASETS", "OPTIMIZERS", "RunConfig", "SCHEDULES",
    "TrainingDiverged", "build_mlp", "build_optimizer", "build_scheduler", "load_run_config",
    "parse_layers", "plot_history", "prepare_run_dir", "run_experiment", "write_config",
]


class ConfigError(ValueError):
    """A configuration that can't run: the message says which setting and why, in one line."""


ACTIVATIONS = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU, "elu": nn.ELU, "softplus": nn.Softplus, "silu": nn.SiLU,
}
"""Activation names accepted by :func:`build_mlp` (``leaky-relu`` also works)."""

OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
"""Optimizer names accepted by :func:`build_optimizer`."""

SCHEDULES = ("none", "cosine", "warmup-cosine", "onecycle", "step", "plateau")
"""Schedule names accepted by :func:`build_scheduler`."""

DATASETS = tuple(sorted(TOY_DATASETS)) + ("digits",)
"""Dataset names a :class:`RunConfig` accepts."""

DIGITS_SAMPLES = 1797
"""Images in the 8x8 digits (scikit-learn's copy of the UCI set)."""

# -- limits -----------------------------------------------------------------------------------
# Every size and rate has a ceiling that RunConfig.check() enforces before anything is
# allocated: a slip such as 2-100000-100000-3 (10 billion weights) would otherwise allocate
# until MemoryError, or be killed by the OS. Each is generous for an MLP on a laptop.
MAX_PARAMETERS = 50_000_000
"""Weights and biases of the MLP: 200 MB in float32, under 1 GB with gradients and Adam."""
MAX_LAYERS = 1_000
"""Widths in ``layers`` (input and output included)."""
MAX_WIDTH = 10_000
"""Units of any one layer."""
MAX_SAMPLES = 1_000_000
"""``n_samples`` of a toy set, and the largest ``batch_size``."""
MAX_ACTIVATIONS = 100_000_000
"""Values one training batch keeps for backward: samples per batch (the batch size, or the
whole data set when smaller) times the sum of the layer widths; 400 MB in float32."""
MAX_EPOCHS = 1_000_000
"""``epochs``, and ``warmup_steps``' own ceiling is the run's step count."""
MAX_LR = 1e6
"""The largest learning rate (already far past any that trains)."""
MAX_NOISE = 100.0
"""The largest ``noise`` of a toy set, whose points lie within a few units of the origin."""
MAX_SEED = 2**63 - 1
"""Seeds are non-negative 64-bit integers."""


# -- builders ---------------------------------------------------------------------------------
def parse_layers(layers) -> list:
    """``"2-16-16-3"`` (or a list of ints) as a list of at least two positive layer widths."""
    if isinstance(layers, str):
        parts = layers.replace(",", "-").split("-")
        # Plain ASCII digits only: int() would also take " 2", "1_000" and Arabic-Indic digits.
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise ConfigError(f"layers must be widths joined by '-', like 2-16-16-3; got "
                              f"{shorten(layers)}")
        longest = max(parts, key=len)
        if len(longest) > 18:  # no such layer fits in memory; and int() refuses 4,300 digits
            raise ConfigError(f"layers {shorten(layers)[1:-1]} has a width of {len(longest)} "
                              f"digits; the limit is {MAX_WIDTH:,} units per layer")
        sizes = [int(p) for p in parts]
    elif isinstance(layers, (list, tuple)) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in layers):
        sizes = [int(s) for s in layers]
    else:
        raise ConfigError(f"layers must be a string like 2-16-16-3 or a list of ints; got "
                          f"{shorten(layers)}")
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ConfigError(f"layers needs at least an input and an output width, each >= 1, like "
                          f"2-16-16-3; got {shorten(layers)}")
    return sizes


def _activation(name: str):
    key = str(name).lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {shorten(name)}; choose from "
                          f"{', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]


def build_mlp(layers, activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """A multi-layer perceptron: Linear layers of the given widths, an activation between them.

    Args:
        layers: widths from input to output, ``"2-16-16-3"`` or ``[2, 16, 16, 3]``.
        activation: a name in :data:`ACTIVATIONS`.
        dropout: dropout probability after each hidden activation (0: none).

    Example::

        build_mlp("2-16-16-3", "tanh")
        # Sequential((0): Linear(2 -> 16) (1): Tanh() (2): Linear(16 -> 16) (3): Tanh() ...)
    """
    sizes = parse_layers(layers)
    act = _activation(activation)
    if not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    modules = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        modules.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            modules.append(act())
            if dropout:
                modules.append(nn.Dropout(dropout))
    return nn.Sequential(*modules)


def build_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.0):
    """An optimizer by name (:data:`OPTIMIZERS`) with the common options.

    ``momentum`` applies to ``sgd`` and ``rmsprop`` only.

    Example::

        opt = build_optimizer("adamw", model.parameters(), lr=1e-3, weight_decay=0.01)
    """
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    options = {"lr": lr, "weight_decay": weight_decay}
    if momentum:
        if key not in ("sgd", "rmsprop"):
            raise ConfigError(f"momentum applies to sgd and rmsprop, not {key}")
        options["momentum"] = momentum
    try:
        return OPTIMIZERS[key](params, **options)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def build_scheduler(name: str, optimizer, total_steps: int, warmup_steps: int | None = None,
                    epochs: int | None = None):
    """A learning-rate schedule by name and the interval to step it at: ``(scheduler, interval)``.

    Names (:data:`SCHEDULES`):

    - ``none``: a constant rate (returns ``(None, "epoch")``);
    - ``cosine``: cosine decay to 0 over ``total_steps`` (per step);
    - ``warmup-cosine``: linear warmup over ``warmup_steps`` (default 5% of the steps),
      then cosine decay (per step; ``optim.lr_scheduler.warmup_cosine``);
    - ``onecycle``: ``OneCycleLR`` peaking at the optimizer's rate (per step);
    - ``step``: ``StepLR`` dividing the rate by 10 after each third of ``epochs``;
    - ``plateau``: ``ReduceLROnPlateau`` halving the rate after 10 epochs without
      improvement of the monitored loss (per epoch).

    Example::

        sched, interval = build_scheduler("warmup-cosine", opt, total_steps=2000)
    """
    sched = optim.lr_scheduler
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    if name == "none":
        return None, "epoch"
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, total_steps)), "step"
    if name == "warmup-cosine":
        if warmup_steps is None:
            warmup_steps = max(1, round(0.05 * total_steps)) if total_steps > 1 else 0
        if warmup_steps >= total_steps:
            raise ConfigError(f"warmup steps ({warmup_steps}) must be fewer than the run's "
                              f"{total_steps} steps")
        return sched.warmup_cosine(optimizer, warmup_steps=warmup_steps,
                                   total_steps=total_steps), "step"
    if name == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return sched.OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(1, total_steps),
                                cycle_momentum=False), "step"
    if name == "step":
        return sched.StepLR(optimizer, step_size=max(1, (epochs or 3) // 3), gamma=0.1), "epoch"
    return sched.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=10), "epoch"


# -- configuration ----------------------------------------------------------------------------
@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run; ``config.json`` holds it as a JSON object.

    ``layers`` None uses hidden widths 32-32 (64-128-64-10 for digits); ``noise`` and
    ``n_samples`` None use the toy set's defaults; ``warmup_steps`` None is 5% of the
    steps. ``test_fraction`` of the data is held out for testing (0: none).
    """

    dataset: str = "spiral"
    layers: str | None = None
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float = 0.01
    batch_size: int = 32
    epochs: int = 100
    schedule: str = "none"
    warmup_steps: int | None = None
    clip: float | None = None
    weight_decay: float = 0.0
    momentum: float = 0.0
    seed: int = 0
    noise: float | None = None
    n_samples: int | None = None
    test_fraction: float = 0.2
    out: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """Build from a dict (a loaded config.json); unknown keys are an error."""
        if not isinstance(d, dict):
            raise ConfigError(f"a run configuration must be a JSON object, got "
                              f"{type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"backprop_version", "command"})
        if unknown:
            shown = ", ".join(shorten(k).strip("'") for k in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ConfigError(f"unknown configuration keys {shown}{more}; known keys are "
                              f"{', '.join(sorted(names))}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def out_dir(self) -> str:
        return self.out or os.path.join("runs", str(self.dataset))

    def check(self) -> None:
        """Check every value that can be checked without loading the data; ConfigError if not."""
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {shorten(self.dataset)}; choose from "
                              f"{', '.join(DATASETS)}")
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()
                                     or "\0" in self.out):
            raise ConfigError(f"out must be a folder path, got {shorten(self.out)}; leave it out "
                              f"for runs/{self.dataset}")
        if self.layers is not None:
            _check_layer_limits(parse_layers(self.layers), self.layers)
        _activation(self.activation)
        if str(self.optimizer).lower() not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {shorten(self.optimizer)}; choose from "
                              f"{', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {shorten(self.schedule)}; choose from "
                              f"{', '.join(SCHEDULES)}")
        _number(self.lr, "lr", positive=True, maximum=MAX_LR)
        _integer(self.batch_size, "batch_size", minimum=1, maximum=MAX_SAMPLES)
        _integer(self.epochs, "epochs", minimum=1, maximum=MAX_EPOCHS)
        _integer(self.seed, "seed", minimum=0, maximum=MAX_SEED)
        if self.warmup_steps is not None:
            _integer(self.warmup_steps, "warmup_steps", minimum=0)
            if self.schedule != "warmup-cosine":
                raise ConfigError("warmup_steps applies to the warmup-cosine schedule only")
        if self.clip is not None:
            _number(self.clip, "clip", positive=True)
        _number(self.weight_decay, "weight_decay", maximum=1)
        _number(self.momentum, "momentum")
        if not self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.momentum and str(self.optimizer).lower() not in ("sgd", "rmsprop"):
            raise ConfigError(f"momentum applies to sgd and rmsprop, not {self.optimizer}")
        if self.noise is not None:
            _number(self.noise, "noise", maximum=MAX_NOISE)
        if self.n_samples is not None:
            _integer(self.n_samples, "n_samples", minimum=2, maximum=MAX_SAMPLES)
        if self.dataset == "digits" and (self.noise is not None or self.n_samples is not None):
            raise ConfigError("noise and n_samples apply to the toy datasets, not digits")
        _number(self.test_fraction, "test_fraction")
        if not self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in [0, 1), got {shorten(self.test_fraction)}")
        if self.layers is not None:
            _check_activations(parse_layers(self.layers), self)


def _check_layer_limits(sizes: list, spec) -> None:
    """ConfigError when ``sizes`` has too many layers, too wide a layer or too many
    parameters (:data:`MAX_LAYERS`, :data:`MAX_WIDTH`, :data:`MAX_PARAMETERS`)."""
    shown = spec if isinstance(spec, str) else "-".join(map(str, sizes))
    shown = shorten(shown).strip("'")
    if len(sizes) > MAX_LAYERS:
        raise ConfigError(f"layers {shown} has {len(sizes):,} widths; the limit is "
                          f"{MAX_LAYERS:,}")
    n_params = sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    if n_params > MAX_PARAMETERS:
        raise ConfigError(f"layers {shown} has {n_params:,} parameters; the limit is "
                          f"{MAX_PARAMETERS:,}")
    widest = max(sizes)
    if widest > MAX_WIDTH:
        raise ConfigError(f"layers {shown} has a layer of {widest:,} units; the limit is "
                          f"{MAX_WIDTH:,} per layer")


def _check_activations(sizes: list, config: RunConfig) -> None:
    """ConfigError when one training batch would hold more than :data:`MAX_ACTIVATIONS`
    values: the batch (or the whole data set, when smaller) times the sum of the widths."""
    if config.dataset == "digits":
        n = DIGITS_SAMPLES
    elif config.n_samples is not None:
        n = config.n_samples
    else:
        n = inspect.signature(TOY_DATASETS[config.dataset]).parameters["n_samples"].default
    batch = min(config.batch_size, n)
    values = batch * sum(sizes)
    if values > MAX_ACTIVATIONS:
        raise ConfigError(f"a batch of {batch:,} samples through layers {config.layers} holds "
                          f"{values:,} activation values; the limit is {MAX_ACTIVATIONS:,}: "
                          f"use a smaller batch_size or narrower layers")


def _number(value, name: str, positive: bool = False, maximum: float | None = None) -> None:
    if isinstance(value, bool) or not is_real(value) or value < 0 \
            or (positive and value == 0) or (not is_integral(value)
                                             and not math.isfinite(value)):
        need = "a positive number" if positive else "a non-negative number"
        raise ConfigError(f"{name} must be {need}, got {shorten(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {_plain(maximum)}, got {shorten(value)}")


def _integer(value, name: str, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not is_integral(value) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {shorten(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {_plain(maximum)}, got {shorten(value)}")


def _plain(limit) -> str:
    """A limit as people write it: 1,000,000 rather than 1e+06."""
    return f"{int(limit):,}" if float(limit).is_integer() else f"{limit:g}"


def load_run_config(path) -> RunConfig:
    """Read a ``config.json`` written by :func:`run_experiment`."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(f"can't read the configuration {os.fspath(path)}: "
                          f"{e.strerror or e}") from None
    except ValueError as e:
        raise ConfigError(f"{os.fspath(path)} is not valid JSON: {e}") from None
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise ConfigError(f"{os.fspath(path)} is nested too deeply to be a run "
                          f"configuration (a JSON object of settings)") from None
    return RunConfig.from_dict(data)


# -- data -------------------------------------------------------------------------------------
def _load_data(config: RunConfig):
    """(train TensorDataset, test TensorDataset or None, n_features, n_outputs, task)."""
    if config.dataset == "digits":
        try:
            train, test = load_digits(test_fraction=config.test_fraction, seed=config.seed)
        except ImportError as e:
            raise ConfigError(str(e)) from None
        if not len(train):
            raise ConfigError(f"test_fraction {config.test_fraction} leaves no training samples")
        return train, (test if len(test) else None), 64, 10, "classification"
    fn = TOY_DATASETS[config.dataset]
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {"seed": config.seed}
    if config.n_samples is not None:
        kwargs["n_samples"] = config.n_samples
    if config.noise is not None:
        kwargs["noise" if "noise" in params else "cluster_std"] = config.noise
    try:
        X, y = load_toy(config.dataset, **kwargs)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    task = TOY_TASKS[config.dataset]
    n_outputs = int(y.max().item()) + 1 if task == "classification" else 1
    if config.test_fraction:
        (X_train, y_train), (X_test, y_test) = train_test_split(
            X, y, test_fraction=config.test_fraction, seed=config.seed)
        test = TensorDataset(X_test, y_test) if len(y_test) else None
    else:
        (X_train, y_train), test = (X, y), None
    if not len(y_train):
        raise ConfigError(f"test_fraction {config.test_fraction} leaves no training samples")
    return TensorDataset(X_train, y_train), test, int(X.shape[1]), n_outputs, task


def _default_layers(dataset: str, n_in: int, n_out: int) -> list:
    hidden = [128, 64] if dataset == "digits" else [32, 32]
    return [n_in, *hidden, n_out]


def _check_layer_sizes(sizes: list, config: RunConfig, n_in: int, n_out: int, task: str) -> None:
    example = "-".join(str(s) for s in [n_in, *sizes[1:-1], n_out])
    if sizes[0] != n_in:
        raise ConfigError(f"layers {config.layers} start with {sizes[0]} inputs but "
                          f"{config.dataset} has {n_in} features; use e.g. {example}")
    if sizes[-1] != n_out:
        what = f"{n_out} classes" if task == "classification" else "1 output (regression)"
        raise ConfigError(f"layers {config.layers} end with {sizes[-1]} outputs but "
                          f"{config.dataset} has {what}; use e.g. {example}")


# -- the run folder ---------------------------------------------------------------------------
RUN_FILES = ("config.json", "metrics.jsonl", "history.json", "last.safetensors",
             "best.safetensors", "loss_curve.png", "diagnostics.jsonl",
             # the plots `backprop doctor` writes into the folder (diagnostics.plots.PLOT_FILES)
             "loss_steps.png", "grad_norms.png", "update_ratios.png", "activations.png")


def prepare_run_dir(config: RunConfig, *, resume: bool = False, overwrite: bool = False) -> list:
    """Create (or check) the run folder and return notes to show; ConfigError if it's unusable."""
    out = config.out_dir
    notes: list[str] = []
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"cannot write to the run folder {out}: {e.strerror or e}") from None
    config_path = os.path.join(out, "config.json")
    if resume:
        if not os.path.exists(os.path.join(out, "last.safetensors")):
            raise ConfigError(f"nothing to resume in {out}: it has no last.safetensors checkpoint")
        return notes
    if os.path.exists(config_path):
        try:
            same = load_run_config(config_path).to_dict() == config.to_dict()
        except ConfigError:
            same = False
        if not (same or overwrite):
            raise ConfigError(f"{out} already holds a different run; continue it with --resume, "
                              f"replace it with --overwrite, or choose another --out")
        notes.append(f"replacing the previous run in {out}")
    for name in RUN_FILES:
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    return notes


def write_config(config: RunConfig) -> str:
    """Write ``config.json`` into the run folder (atomically); returns its path."""
    from backprop import __version__  # the package root (imported here: it is mid-import above)

    path = os.path.join(config.out_dir, "config.json")
    data = {"command": "train", "backprop_version": __version__, **config.to_dict()}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def plot_history(history: History, path, title: str | None = None) -> bool:
    """Save a loss-curve PNG: :func:`~backprop.train.plotting.draw_loss` (the loss per step
    and per epoch, train and validation), the accuracy per epoch beside it when recorded.

    Returns False, writing nothing, when matplotlib is not installed.
    """
    try:
        require_matplotlib()
    except PlotDependencyError:
        return False
    epochs = [r for r in history.epochs if "step" in r]
    has_acc = any("accuracy" in r for r in epochs)
    fig = new_figure(figsize=(10 if has_acc else 6, 4))
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    draw_loss(axes[0], history)
    if has_acc:
        # The colours of the loss panel's epoch lines: C1 train, C2 validation.
        for key, label, color in (("accuracy", "train", "C1"),
                                  ("val_accuracy", "validation", "C2")):
            pts = [(r["step"], r[key]) for r in epochs if key in r]
            if pts:
                axes[1].plot(*zip(*pts, strict=True), marker="o", ms=3, color=color, label=label)
        axes[1].set_xlabel("optimizer step")
        axes[1].set_ylabel("accuracy")
        axes[1].set_title("Accuracy")
        axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, "plot_history")
    return True


# -- running ----------------------------------------------------------------------------------
def run_experiment(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
                   progress: bool = True, callbacks=None) -> dict:
    """Train the run that ``config`` describes and write its run folder.

    Args:
        config: the run.
        resume: continue the run in ``config.out`` from its ``last.safetensors``.
        overwrite: replace a different run already in ``config.out``.
        progress: show a progress bar (only on a terminal).
        callbacks: extra training callbacks, run beside the run folder's own. Each is a
            :class:`~backprop.train.Callback`, or a function ``(model, optimizer) ->
            Callback`` for one that needs the model and optimizer built here, e.g.
            ``lambda model, opt: Monitor(model, path=out + "/diagnostics.jsonl")``.

    Returns:
        A summary dict: ``history``, ``epochs``, ``steps``, ``time`` (training seconds),
        ``train`` and ``test`` (``{"loss", "accuracy"}`` of the final model; test None
        without a test set), ``best_epoch`` and ``best`` (the best epoch's record),
        ``stop_reason``, ``out``, ``files`` (written) and ``notes`` (for the reader).

    Raises:
        ConfigError: a setting that can't run (before anything is trained).
        TrainingDiverged: the loss became NaN/Inf (history.json is still written).
        CheckpointError: ``resume`` with a ``last.safetensors`` that is damaged, a folder,
            not a training checkpoint, or of another model (nothing is written).
    """
    config.check()
    train_set, test_set, n_in, n_out, task = _load_data(config)
    sizes = parse_layers(config.layers) if config.layers is not None \
        else _default_layers(config.dataset, n_in, n_out)
    _check_layer_sizes(sizes, config, n_in, n_out, task)
    if config.layers is None:
        config = dataclasses.replace(config, layers="-".join(map(str, sizes)))
    notes = prepare_run_dir(config, resume=resume, overwrite=overwrite)
    out = config.out_dir

    manual_seed(config.seed)
    model = build_mlp(sizes, config.activation)
    loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr,
                                config.weight_decay, config.momentum)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                        generator=Generator(config.seed))
    total_steps = config.epochs * len(loader)
    scheduler, interval = build_scheduler(config.schedule, optimizer, total_steps,
                                          config.warmup_steps, config.epochs)
    eval_size = 1024
    test_loader = None if test_set is None else DataLoader(test_set, batch_size=eval_size)
    monitor = "val_loss" if test_loader is not None else "loss"
    checkpoint = ModelCheckpoint(out, every_n_epochs=1, monitor=monitor)
    extra = [cb if isinstance(cb, Callback) or not callable(cb) else cb(model, optimizer)
             for cb in (callbacks or ())]  # a non-callback is refused by the Trainer
    trainer = Trainer(model, loss_fn, optimizer, scheduler=scheduler, scheduler_interval=interval,
                      clip_grad_norm=config.clip, progress=progress,
                      callbacks=[checkpoint, JSONLinesLogger(os.path.join(out, "metrics.jsonl")),
                                 *extra])
    if resume:
        # Read the checkpoint before anything is written: a damaged or foreign one raises
        # CheckpointError and leaves the run folder as it was.
        trainer.load_checkpoint(checkpoint.last_path)
    else:
        write_config(config)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # NumPy's overflow warnings while a loss blows up add nothing to the
            # TrainingDiverged message that follows them.
            warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered",
                                    RuntimeWarning)
            trainer.fit(loader, epochs=config.epochs, val_data=test_loader)
    finally:  # also after a divergence or Ctrl-C: the history so far is worth keeping
        trainer.history.to_json(os.path.join(out, "history.json"))
    wall = time.perf_counter() - started

    history = trainer.history
    files = ["config.json", "metrics.jsonl", "history.json", "last.safetensors"]
    if os.path.exists(checkpoint.best_path):
        files.append("best.safetensors")
    if os.path.exists(os.path.join(out, "diagnostics.jsonl")):
        files.append("diagnostics.jsonl")
    if plot_history(history, os.path.join(out, "loss_curve.png"),
                    title=f"{config.dataset} {config.layers} {config.activation}"):
        files.append("loss_curve.png")
    else:
        notes.append("loss_curve.png skipped: matplotlib is not installed "
                     "(pip install 'backprop[plot]')")
    train_eval = trainer.evaluate(DataLoader(train_set, batch_size=eval_size))
    test_eval = None if test_loader is None else trainer.evaluate(test_loader)
    best = history.best_epoch(monitor, "min")
    return {
        "history": history, "epochs": trainer.epoch, "steps": trainer.step,
        "time": sum(r.get("time", 0.0) for r in history.epochs), "wall_time": wall,
        "train": train_eval, "test": test_eval, "monitor": monitor,
        "best_epoch": None if best is None else best["epoch"], "best": best,
        "stop_reason": trainer.stop_reason, "out": out, "files": files, "notes": notes,
        "config": config, "task": task,
    }

