"""The lab's training recipe: network, optimizer, schedule, penalty and the Trainer's step.

One home for how the lab trains, used by :class:`~backprop.lab.session.LabSession` and by
the script the lab exports (:mod:`backprop.lab.export`), so the two cannot drift apart:

- :func:`build_model`: Linear layers of the settings' sizes, each hidden one followed by
  its activation and a :class:`Dropout`, weights drawn from the seed;
- :func:`build_optimizer` and :func:`configure_optimizer`: ``backprop.train``'s
  ``build_optimizer`` with the settings' knobs in its param groups;
- :func:`build_schedule`: ``backprop.train``'s ``build_scheduler("warmup-cosine")``
  (``optim.lr_scheduler.warmup_cosine``), the first 10% of ``schedule_steps`` warming up;
- :class:`Penalty`: the L1/L2 regulariser given to the Trainer;
- :func:`build_trainer` and :func:`train_step`: a ``backprop.train.Trainer`` and one step
  of it on the next batch of a ``backprop.data.BatchStream``.

Example::

    net = build_model(settings, n_in=2, n_out=3)
    trainer = build_trainer(settings, net.model, "classification")
    stream = BatchStream(len(X), generator=backprop.Generator(settings["seed"]))
    idx, record = train_step(trainer, stream, X, y, settings["batch_size"], settings)
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

import backprop
from backprop import nn
from backprop.random import Generator
from backprop.train import Trainer
from backprop.train.experiment import build_optimizer as _build_optimizer
from backprop.train.experiment import build_scheduler as _build_scheduler

__all__ = ["ACTIVATION_MODULES", "WARMUP_SHARE", "Dropout", "Network", "Penalty",
           "activation_names", "build_model", "build_optimizer", "build_schedule",
           "build_trainer", "configure_optimizer", "end_of_schedule", "optimizer_family",
           "regularizer", "train_step", "warmup_steps"]

ACTIVATION_MODULES = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh,
                      "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
WARMUP_SHARE = 0.1
"""warmup + cosine: the first 10% of ``schedule_steps`` warm up."""


# -- the network --------------------------------------------------------------------------------
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


@dataclasses.dataclass
class Network:
    """A lab network: the ``nn.Sequential`` and where its layers sit in it."""

    model: nn.Sequential
    sizes: list
    linear_at: list        # module indices of the Linear layers
    act_at: list           # ... of the activations
    dropout_at: list       # ... of the Dropout modules


def activation_names(settings: dict) -> list:
    """Each hidden layer's activation: ``activations``, else ``activation`` for all."""
    if settings["activations"] is not None:
        return list(settings["activations"])
    return [settings["activation"]] * len(settings["hidden"])


def build_model(settings: dict, n_in: int, n_out: int) -> Network:
    """The settings' network, its weights drawn from ``Generator(seed)`` (same seed, same
    weights) and its dropout masks from a stream of the seed's own.

    A Dropout module sits after every hidden layer (p = 0 is the identity), so the
    dropout slider changes p in place instead of rebuilding the network.
    """
    sizes = [n_in, *settings["hidden"], n_out]
    dropout_rng = np.random.default_rng([settings["seed"], 1])
    modules: list[nn.Module] = []
    linear_at, act_at, dropout_at = [], [], []
    acts = activation_names(settings)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear_at.append(len(modules))
        modules.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            act_at.append(len(modules))
            modules.append(ACTIVATION_MODULES[acts[i]]())
            dropout_at.append(len(modules))
            modules.append(Dropout(settings["dropout"], dropout_rng))
    model = nn.Sequential(*modules)
    init_weights(model, linear_at, settings["init"], Generator(settings["seed"]))
    return Network(model, sizes, linear_at, act_at, dropout_at)


def init_weights(model: nn.Sequential, linear_at: list, kind: str, generator) -> None:
    """Draw the Linear layers' weights from ``generator`` by the ``init`` setting."""
    for i in linear_at:
        layer = model[i]
        if kind == "default":       # PyTorch's Linear default: U(±1/√fan_in) for both
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            continue
        if kind == "xavier":
            nn.init.xavier_uniform_(layer.weight, generator=generator)
        elif kind == "he":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
        elif kind == "too_small":   # signals and gradients shrink layer by layer
            nn.init.normal_(layer.weight, 0.0, 0.01, generator=generator)
        else:                       # too_large: saturated tanh/sigmoid, exploding relu
            nn.init.normal_(layer.weight, 0.0, 3.0, generator=generator)
        nn.init.zeros_(layer.bias)


# -- optimizer, schedule, penalty ---------------------------------------------------------------
def optimizer_family(name: str) -> str:
    """The optimizer class behind a setting: ``momentum`` is SGD with momentum."""
    return "sgd" if name in ("sgd", "momentum") else name


def build_optimizer(settings: dict, params):
    """A new optimizer of the settings' kind over ``params``, configured by the settings."""
    optimizer = _build_optimizer(optimizer_family(settings["optimizer"]), params,
                                 lr=settings["lr"])
    configure_optimizer(optimizer, settings)
    return optimizer


def configure_optimizer(optimizer, settings: dict) -> None:
    """Write the settings' knobs into the optimizer's groups (its state is kept)."""
    name = settings["optimizer"]
    family = optimizer_family(name)
    for group in optimizer.param_groups:
        group["weight_decay"] = settings["weight_decay"]
        if family == "sgd":
            group["momentum"] = settings["momentum"] if name == "momentum" else 0.0
        elif family in ("adam", "adamw"):
            group["betas"] = (settings["beta1"], settings["beta2"])


def warmup_steps(total: int) -> int:
    """The warmup of a ``total``-step warmup + cosine schedule: its first 10%."""
    return max(1, int(round(WARMUP_SHARE * total)))


def build_schedule(settings: dict, optimizer):
    """The settings' schedule on ``optimizer``, starting now at peak ``lr``; None if constant.

    ``warmup_cosine`` is ``optim.lr_scheduler.warmup_cosine`` (through
    ``backprop.train``'s ``build_scheduler``): step k of it (from 1) runs at
    ``lr * k / (warmup + 1)`` up to the peak at step warmup + 1, then falls along a half
    cosine to 0 at step ``schedule_steps + 1``; stepped after every optimizer step.
    """
    for group in optimizer.param_groups:   # a schedule starts from the setting, afresh
        group["lr"] = settings["lr"]
        group.pop("initial_lr", None)
    if settings["schedule"] != "warmup_cosine":
        return None
    total = settings["schedule_steps"]
    scheduler, _ = _build_scheduler("warmup-cosine", optimizer, total_steps=total,
                                    warmup_steps=warmup_steps(total))
    return scheduler


def end_of_schedule(trainer: Trainer, settings: dict) -> None:
    """Hold the rate at 0 once the schedule has ended (a cosine stepped on would rise)."""
    if trainer.scheduler is not None and trainer.scheduler.last_epoch >= settings["schedule_steps"]:
        trainer.scheduler = None
        for group in trainer.optimizer.param_groups:
            group["lr"] = 0.0


class Penalty:
    """L1 x sum|w| + L2 x sum w**2 over the Linear layers' weights (not the biases): the
    regularisation the Trainer adds to the training loss (its ``regularizer``)."""

    def __init__(self, l1: float, l2: float):
        self.l1, self.l2 = l1, l2

    def __call__(self, model: nn.Sequential):
        total = None
        for module in model:
            if not isinstance(module, nn.Linear):
                continue
            w = module.weight
            term = None
            if self.l1:
                term = w.abs().sum() * self.l1
            if self.l2:
                sq = (w * w).sum() * self.l2
                term = sq if term is None else term + sq
            total = term if total is None else total + term
        return total


def regularizer(settings: dict) -> Penalty | None:
    """The settings' :class:`Penalty`, or None when ``l1`` and ``l2`` are both 0."""
    return Penalty(settings["l1"], settings["l2"]) if settings["l1"] or settings["l2"] else None


# -- the trainer ---------------------------------------------------------------------------------
def build_trainer(settings: dict, model: nn.Sequential, task: str, optimizer=None,
                  loss_fn=None) -> Trainer:
    """A ``backprop.train.Trainer`` training ``model`` as the settings say.

    It clips the gradient norm to ``clip`` (0: off), adds the L1/L2 :class:`Penalty`,
    steps the schedule after every step and raises ``TrainingDiverged`` on a NaN/Inf
    loss or gradient norm. ``optimizer`` defaults to a new :func:`build_optimizer`;
    ``loss_fn`` to cross-entropy (classification) or mean squared error.
    """
    if optimizer is None:
        optimizer = build_optimizer(settings, list(model.parameters()))
    if loss_fn is None:
        loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    return Trainer(model, loss_fn, optimizer, scheduler=build_schedule(settings, optimizer),
                   scheduler_interval="step", clip_grad_norm=settings["clip"] or None,
                   regularizer=regularizer(settings), progress=False, metrics=None,
                   on_divergence="raise")


def train_step(trainer: Trainer, stream, X: np.ndarray, y: np.ndarray, batch_size: int,
               settings: dict) -> tuple:
    """One Trainer step on the next ``batch_size`` samples of ``stream``.

    Returns ``(indices, record)``: the batch's sample indices and the step's record
    (``Trainer.train_step``'s). Raises ``TrainingDiverged`` as the Trainer does.
    """
    idx = stream.next(batch_size)
    trainer.epoch = stream.epoch        # passes completed; the record's epoch is the next
    batch = (backprop.from_numpy(X[idx]), backprop.from_numpy(y[idx]))
    record = trainer.train_step(batch)
    end_of_schedule(trainer, settings)
    return idx, record
