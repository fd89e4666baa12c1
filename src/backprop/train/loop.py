"""The training loop: ``fit`` and the ``Trainer`` behind it.

One optimizer step (:meth:`Trainer.train_step` for a single batch) is::

    optimizer.zero_grad()
    for each of accumulate_steps batches:
        loss = loss_fn(model(x), y)             # stop here if the loss is NaN or Inf
        ((loss + regularizer(model)) / accumulate_steps).backward()
    norm = total gradient norm                  # recorded; clipped to clip_grad_norm if set
    optimizer.step(); scheduler.step()          # the scheduler per step or per epoch

and an epoch is a pass over ``train_data`` (any iterable of ``(inputs, targets)``
batches, e.g. a ``DataLoader``) followed by a pass over ``val_data`` in eval mode
without gradients. Every step and epoch is recorded in a :class:`History`; callbacks
(:mod:`backprop.train.callbacks`) observe the loop's events, and a checkpoint written
by ``ModelCheckpoint`` (or :meth:`Trainer.save_checkpoint`) resumes the run exactly.

Example::

    from backprop import nn, optim
    from backprop.data import DataLoader, TensorDataset, spiral
    from backprop.train import fit

    X, y = spiral()
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
    history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01),
                  DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True), epochs=100)
    history.epoch_metric("accuracy")[-1]
"""
from __future__ import annotations

import copy
import math
import os
import time
import warnings
from typing import Any

import numpy as np

from backprop import nn
from backprop._checks import is_integral, is_real
from backprop.autograd.grad_mode import no_grad
from backprop.autograd.hooks import RemovableHandle
from backprop.errors import BackpropError
from backprop.optim import lr_scheduler as _lr_scheduler
from backprop.random import Generator, get_rng_state, set_rng_state
from backprop.serialization import SerializationError
from backprop.serialization import load as _load
from backprop.serialization import save as _save
from backprop.tensor import Tensor, _check_device
from backprop.train.callbacks import Callback
from backprop.train.history import History
from backprop.train.progress import ProgressBar

__all__ = ["CheckpointError", "Trainer", "TrainingDiverged", "fit", "load_checkpoint"]

CHECKPOINT_FORMAT = "backprop.train.checkpoint/1"


class CheckpointError(BackpropError, ValueError):
    """A file training can't resume from: damaged, not a training checkpoint, or of another run.

    The message is one line naming the file and the problem. The trainer, its model,
    optimizer and scheduler are left as they were.
    """


class TrainingDiverged(BackpropError, RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite during training.

    The message names the step, the epoch, the learning rate and the last finite
    loss; the same facts are attributes.

    Attributes:
        quantity: ``"loss"`` or ``"gradient norm"``.
        value: the non-finite value (nan, inf or -inf).
        step, epoch: the optimizer step that failed (counting from 1) and its epoch.
        lr: the learning rate of that step (a list when param groups differ).
        last_finite_loss, last_finite_step: the latest finite step loss, or None.
        checkpoint: the path of the last good checkpoint a ``ModelCheckpoint`` wrote, or None.
    """

    def __init__(self, message: str, *, quantity: str = "loss", value: float = math.nan,
                 step: int = 0, epoch: int = 0, lr=None, last_finite_loss=None,
                 last_finite_step=None, checkpoint=None):
        super().__init__(message)
        self.quantity = quantity
        self.value = value
        self.step = step
        self.epoch = epoch
        self.lr = lr
        self.last_finite_loss = last_finite_loss
        self.last_finite_step = last_finite_step
        self.checkpoint = checkpoint


def _one_line(text: str) -> str:
    """A multi-line message (a state_dict's list of mismatches) as one line."""
    out = ""
    for line in (part.strip() for part in text.splitlines()):
        if line:
            out += (" " if out.endswith(":") else "; " if out else "") + line.rstrip(".")
    return out


# -- metrics ----------------------------------------------------------------------------------
def _accuracy_counts(output, target, loss_fn):
    """(correct, total) for a classification batch, or None when accuracy does not apply.

    Classification is recognised from the shapes and dtypes: integer class targets
    with logits that have a class dimension (dim 1), probability targets of
    ``CrossEntropyLoss``, or 0/1 targets of ``BCEWithLogitsLoss`` / ``BCELoss``.
    """
    if not isinstance(output, Tensor) or not isinstance(target, Tensor):
        return None
    o, t = output._data, target._data
    if o.ndim >= 2 and o.shape[1] > 1 and t.dtype.kind in "iu" \
            and t.shape == o.shape[:1] + o.shape[2:]:
        hits = o.argmax(axis=1) == t
        ignore = getattr(loss_fn, "ignore_index", None)
        if ignore is not None:  # targets the loss skips (padding) don't count either
            valid = t != ignore
            return int(np.count_nonzero(hits & valid)), int(np.count_nonzero(valid))
        return int(np.count_nonzero(hits)), int(t.size)
    if isinstance(loss_fn, (nn.BCEWithLogitsLoss, nn.BCELoss)) and o.shape == t.shape:
        threshold = 0.0 if isinstance(loss_fn, nn.BCEWithLogitsLoss) else 0.5
        return int(np.count_nonzero((o > threshold) == (t > 0.5))), int(t.size)
    if isinstance(loss_fn, nn.CrossEntropyLoss) and o.ndim >= 2 and o.shape == t.shape \
            and t.dtype.kind == "f":
        hits = o.argmax(axis=1) == t.argmax(axis=1)
        return int(np.count_nonzero(hits)), int(hits.size)
    return None


class _Metrics:
    """The metrics computed on every batch besides the loss: accuracy and custom functions.

    ``spec`` is ``"auto"`` (accuracy where the batch is classification), None (no
    metric), or a sequence (or ``{name: fn}`` dict) of ``"accuracy"`` and callables
    ``fn(output, target) -> float`` giving the batch mean.
    """

    def __init__(self, spec, loss_fn):
        self.loss_fn = loss_fn
        self.auto = spec == "auto"
        self.accuracy = self.auto
        self.functions = []
        if spec is None or self.auto:
            return
        items = spec.items() if isinstance(spec, dict) else ((None, m) for m in spec) \
            if isinstance(spec, (list, tuple)) else None
        if items is None:
            raise TypeError(f"Trainer: metrics must be 'auto', None, a list of 'accuracy' and "
                            f"functions, or a dict of name -> function; got {spec!r}")
        for name, metric in items:
            if metric == "accuracy":
                self.accuracy = True
            elif callable(metric):
                self.functions.append((name or getattr(metric, "__name__", "metric"), metric))
            else:
                raise ValueError(f"Trainer: unknown metric {metric!r}; use 'accuracy' or a "
                                 f"function fn(output, target) -> float")

    def measure(self, output, target, n: int, sums: dict) -> None:
        """Add this batch's (total, count) of each metric into ``sums``."""
        if self.accuracy:
            counts = _accuracy_counts(output, target, self.loss_fn)
            if counts is not None:
                entry = sums.setdefault("accuracy", [0.0, 0])
                entry[0] += counts[0]
                entry[1] += counts[1]
            elif not self.auto:
                raise ValueError(f"Trainer: accuracy needs class logits of shape (N, C, ...) and "
                                 f"integer targets (or a BCE loss); got output "
                                 f"{tuple(output.shape)} and target {tuple(target.shape)} "
                                 f"{target.dtype}")
        for name, fn in self.functions:
            value = fn(output, target)
            entry = sums.setdefault(name, [0.0, 0])
            entry[0] += float(value) * n
            entry[1] += n


def _means(sums: dict) -> dict:
    return {name: total / count for name, (total, count) in sums.items() if count}


# -- batches ----------------------------------------------------------------------------------
def _unpack(batch):
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    what = (f"a {type(batch).__name__} of {len(batch)}" if isinstance(batch, (list, tuple))
            else f"a {type(batch).__name__}")
    raise TypeError(f"Trainer: each batch must be an (inputs, targets) pair, got {what}")


def _call_model(model, x):
    return model(*x) if isinstance(x, (list, tuple)) else model(x)


def _batch_size(x, y) -> int:
    for t in (y, x):
        shape = getattr(t, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


def _total_norm(grads: list) -> tuple:
    """The 2-norm of all gradients together: ``(as a Python float, as a 0-d tensor)``.

    The tensor, in the gradients' dtype, is what ``clip_grad_norm_`` would compute, so
    clipping with it gives that function's result bit for bit. In float32 the sum of
    squares overflows once gradients pass ~1e19; the norm is then recomputed in float64,
    so that only truly non-finite gradients give inf/NaN.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = nn.utils.get_total_norm(grads)
        norm = float(total)
        if not math.isfinite(norm) and any(g._data.dtype != np.float64 for g in grads):
            total = nn.utils.get_total_norm([g.double() for g in grads])
            norm = float(total)
    return norm, total


def _new_group() -> dict:
    """The running sums of the batches of one optimizer step."""
    return {"loss": 0.0, "count": 0, "batches": 0, "value": None, "metrics": {}}


def _check_positive(value, name: str, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not is_real(value) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"Trainer: {name} must be a positive number, got {value!r}")
    return float(value)


# -- the trainer ------------------------------------------------------------------------------
class Trainer:
    """Trains a model: the loop, its history, callbacks and checkpoints.

    Args:
        model: an ``nn.Module`` (or any callable ``model(x)``, given ``state_dict``
            and ``train``/``eval`` for checkpoints and validation).
        loss_fn: ``loss_fn(output, target)`` returning a scalar tensor, e.g.
            ``nn.CrossEntropyLoss()``.
        optimizer: a ``backprop.optim`` optimizer over the model's parameters.
        scheduler: a learning-rate scheduler of that optimizer, or None.
        scheduler_interval: ``"epoch"`` (default, PyTorch's usual loop) steps the
            scheduler after every epoch, ``"step"`` after every optimizer step (for
            ``warmup_cosine``, ``OneCycleLR``). ``ReduceLROnPlateau`` is stepped per epoch
            with the monitored metric.
        scheduler_monitor: the epoch metric given to ``ReduceLROnPlateau`` (default
            ``"val_loss"`` with validation data, else ``"loss"``).
        clip_grad_norm: clip the total gradient norm (2-norm) to this before each step
            (``nn.utils.clip_grad_norm_``); None (default) does not clip. The pre-clip
            norm is recorded either way, as ``grad_norm``.
        clip_grad_value: clip each gradient element to [-value, value].
        accumulate_steps: batches per optimizer step; their gradients are accumulated
            with the loss scaled by ``1 / accumulate_steps``, which gives the update of
            one batch that many times larger. An epoch that ends inside a group steps
            with the batches it has (their mean gradient).
        callbacks: :class:`~backprop.train.Callback` objects (more with :meth:`add_callback`).
        progress: show a progress bar while on a terminal (a ``ProgressBar`` to
            configure it, False for none).
        metrics: ``"auto"`` (accuracy for classification), None, or a list of
            ``"accuracy"`` and functions ``fn(output, target) -> float``.
        on_divergence: when the loss or the gradient norm becomes NaN or Inf, ``"raise"``
            (default) raises :class:`TrainingDiverged`; ``"stop"`` warns, stops training
            and returns the history (``trainer.diverged`` holds the error). The step is
            not taken either way, so the model keeps its last finite weights.
        regularizer: a function ``regularizer(model)`` returning a scalar tensor (or
            None) added to each batch's loss before ``backward``: an L1/L2 penalty, say.
            The recorded ``loss`` is the data loss alone.
        device: None or ``"cpu"`` (backprop runs on the CPU; accepted for symmetry).

    Attributes:
        history: the :class:`History` so far.
        step, epoch: optimizer steps and epochs completed.
        should_stop, stop_reason: set by :meth:`request_stop`.
        diverged: the :class:`TrainingDiverged` error when training stopped on one.

    Example::

        trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters()),
                          clip_grad_norm=1.0, callbacks=[EarlyStopping(patience=3)])
        history = trainer.fit(train_loader, epochs=50, val_data=val_loader)
        trainer.evaluate(test_loader)          # {'loss': ..., 'accuracy': ...}
    """

    def __init__(self, model, loss_fn, optimizer, *, scheduler=None,
                 scheduler_interval: str = "epoch", scheduler_monitor: str | None = None,
                 clip_grad_norm=None, clip_grad_value=None, accumulate_steps: int = 1,
                 callbacks=(), progress=True, metrics="auto", on_divergence: str = "raise",
                 regularizer=None, device=None):
        if not callable(model):
            raise TypeError(f"Trainer: model must be callable (an nn.Module), got "
                            f"{type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"Trainer: loss_fn must be callable, e.g. nn.CrossEntropyLoss(), "
                            f"got {type(loss_fn).__name__}")
        if not all(hasattr(optimizer, a) for a in ("step", "zero_grad", "param_groups")):
            raise TypeError(f"Trainer: optimizer must be an optimizer (with step, zero_grad and "
                            f"param_groups), got {type(optimizer).__name__}")
        if regularizer is not None and not callable(regularizer):
            raise TypeError(f"Trainer: regularizer must be a function of the model, got "
                            f"{type(regularizer).__name__}")
        if scheduler is not None and not hasattr(scheduler, "step"):
            raise TypeError(f"Trainer: scheduler must be a learning-rate scheduler, got "
                            f"{type(scheduler).__name__}")
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"Trainer: scheduler_interval must be 'step' or 'epoch', got "
                             f"{scheduler_interval!r}")
        if isinstance(scheduler, _lr_scheduler.ReduceLROnPlateau) and scheduler_interval == "step":
            raise ValueError("Trainer: ReduceLROnPlateau needs a metric, so it steps per epoch; "
                             "use scheduler_interval='epoch'")
        if isinstance(accumulate_steps, bool) \
                or not is_integral(accumulate_steps) or accumulate_steps < 1:
            raise ValueError(f"Trainer: accumulate_steps must be an integer >= 1, got "
                             f"{accumulate_steps!r}")
        if on_divergence not in ("raise", "stop"):
            raise ValueError(f"Trainer: on_divergence must be 'raise' or 'stop', got "
                             f"{on_divergence!r}")
        if device is not None:
            _check_device(device, "Trainer")  # DeviceError unless the CPU
        if not (isinstance(progress, (bool, ProgressBar))):
            raise TypeError(f"Trainer: progress must be True, False or a ProgressBar, got "
                            f"{progress!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.clip_grad_norm = _check_positive(clip_grad_norm, "clip_grad_norm")
        self.clip_grad_value = _check_positive(clip_grad_value, "clip_grad_value")
        self.accumulate_steps = int(accumulate_steps)
        self.progress = progress
        self.metrics = _Metrics(metrics, loss_fn)
        self.on_divergence = on_divergence
        self.regularizer = regularizer

        self.history = History()
        self.step = 0
        self.epoch = 0
        self.should_stop = False
        self.stop_reason: str | None = None
        self.diverged: TrainingDiverged | None = None
        self.resuming = False
        # The data, the length of the run and the epoch's state are set by fit (and
        # load_checkpoint) before the loop reads them.
        self.train_data: Any = None
        self.val_data: Any = None
        self.max_epochs: Any = None
        self.max_steps: int | None = None
        self._callbacks: list = []
        self._position = 0          # batches consumed in the epoch under way
        self._accum: Any = None     # that epoch's running sums (None between epochs)
        self._epoch_start = 0.0
        self._epoch_rng: Any = None  # RNG states when that epoch began
        self._pending_rng: dict | None = None  # RNG states of a loaded checkpoint, applied by fit
        self._callback_states: dict = {}
        for cb in callbacks:
            self.add_callback(cb)

    # -- callbacks --------------------------------------------------------------------
    def add_callback(self, callback: Callback) -> RemovableHandle:
        """Attach ``callback`` to the loop's events; ``handle.remove()`` detaches it.

        Example::

            handle = trainer.add_callback(LambdaCallback(on_batch_end=print))
            ...
            handle.remove()
        """
        if not isinstance(callback, Callback):
            raise TypeError(f"Trainer: callbacks must be Callback instances, got "
                            f"{type(callback).__name__}")
        order = getattr(callback, "order", 0)
        index = len(self._callbacks)
        while index and getattr(self._callbacks[index - 1], "order", 0) > order:
            index -= 1
        self._callbacks.insert(index, callback)
        return RemovableHandle(self._callbacks, callback)

    @property
    def callbacks(self) -> list:
        """The attached callbacks, in the order they run."""
        return list(self._callbacks)

    def _call(self, event: str, *args) -> None:
        for cb in tuple(self._callbacks):
            getattr(cb, event)(self, *args)

    def _call_quietly(self, event: str, *args) -> None:
        """Call every callback even if some fail (used while an error is propagating)."""
        for cb in tuple(self._callbacks):
            try:
                getattr(cb, event)(self, *args)
            except Exception as e:  # noqa: BLE001 (the original error matters more)
                warnings.warn(f"{type(cb).__name__}.{event} failed: {e}", RuntimeWarning,
                              stacklevel=3)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to stop: after the current step's epoch ends (it is cut short)."""
        self.should_stop = True
        if self.stop_reason is None:
            self.stop_reason = reason

    def _keyed_callbacks(self) -> dict:
        keyed = {}
        for cb in self._callbacks:
            key, n = cb.state_key, 2
            while key in keyed:
                key, n = f"{cb.state_key}#{n}", n + 1
            keyed[key] = cb
        return keyed

    # -- fitting ----------------------------------------------------------------------
    def fit(self, train_data, epochs: int = 1, val_data=None, *, resume_from=None,
            max_steps: int | None = None) -> History:
        """Train for ``epochs`` epochs in all (counting those already done) and return the history.

        Args:
            train_data: an iterable of ``(inputs, targets)`` batches, iterated once per epoch
                (a ``DataLoader``; ``inputs`` may be a tuple of model arguments).
            epochs: the total number of epochs: a trainer resumed after epoch 3 with
                ``epochs=10`` trains 7 more.
            val_data: batches to evaluate after every epoch (eval mode, no gradients).
            resume_from: a checkpoint path (from ``ModelCheckpoint`` or
                :meth:`save_checkpoint`) to continue from: model, optimizer, scheduler,
                step and epoch, RNG state, history and callback state are restored, so
                the run continues exactly as if it had never stopped.
            max_steps: also stop after this many optimizer steps in all.

        Raises:
            TrainingDiverged: the loss or gradient norm became NaN/Inf (unless
                ``on_divergence="stop"``).
        """
        if isinstance(epochs, bool) or not is_integral(epochs) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
        if max_steps is not None and (isinstance(max_steps, bool) or not is_integral(max_steps)
                                      or max_steps < 0):
            raise ValueError(f"fit: max_steps must be None or a non-negative integer, got "
                             f"{max_steps!r}")
        self.train_data, self.val_data = train_data, val_data
        self.max_epochs, self.max_steps = int(epochs), max_steps
        self.should_stop, self.stop_reason, self.diverged = False, None, None
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        handles = []
        if self.progress is not False:
            bar = self.progress if isinstance(self.progress, ProgressBar) else ProgressBar()
            if bar not in self._callbacks:
                handles.append(self.add_callback(bar))
        was_training = getattr(self.model, "training", True)
        try:
            if self.resuming:
                self._restore_callback_states()
            self._call("on_fit_start")
            if self._pending_rng is not None:
                self._set_rng_states(self._pending_rng)
                self._pending_rng = None
            while not self._finished():
                self._run_epoch()
            self._call("on_fit_end")
        except BaseException as error:
            self._call_quietly("on_exception", error)
            raise
        finally:
            if hasattr(self.model, "train"):
                self.model.train(was_training)
            for handle in handles:
                handle.remove()
            self.resuming = False
        return self.history

    def _finished(self) -> bool:
        return (self.should_stop or self.epoch >= self.max_epochs
                or (self.max_steps is not None and self.step >= self.max_steps))

    def steps_per_epoch(self) -> int | None:
        """Optimizer steps in one epoch of the current ``train_data`` (None if it has no len)."""
        try:
            n = len(self.train_data)
        except TypeError:
            return None
        return -(-n // self.accumulate_steps)

    def _run_epoch(self) -> None:
        epoch = self.epoch + 1
        model, k = self.model, self.accumulate_steps
        resumed_inside = self._accum is not None and self._position > 0
        if not resumed_inside:
            self._epoch_rng = self._rng_states()
            self._accum = {"loss": 0.0, "count": 0, "metrics": {}, "time": 0.0, "lr": None}
            self._position = 0
        self._call("on_epoch_start", epoch)
        if hasattr(model, "train"):
            model.train()
        self._epoch_start = time.perf_counter() - self._accum["time"]
        batches = iter(self.train_data)
        if resumed_inside:
            self._skip_consumed(batches)

        group = _new_group()
        for batch in batches:
            if k == 1:
                if self.train_step(batch) is None:
                    return
            else:
                if group["batches"] == 0:
                    self.optimizer.zero_grad()
                if not self._backward(batch, epoch, group, k):
                    return
                if group["batches"] < k:
                    continue
                if self._optimizer_step(epoch, group) is None:
                    return
                group = _new_group()
            if self.should_stop or (self.max_steps is not None and self.step >= self.max_steps):
                break
        if group["batches"]:  # the data ended inside a group: step with the mean of what it has
            with no_grad():
                for p in self._params_with_grad():
                    p.grad.mul_(k / group["batches"])
            if self._optimizer_step(epoch, group) is None:
                return
        self._end_epoch(epoch)

    def train_step(self, batch) -> dict | None:
        """One optimizer step on one ``(inputs, targets)`` batch: what ``fit`` does per batch.

        Forward, loss (plus the ``regularizer``), backward, the gradient norm (a NaN/Inf
        loss or norm is handled as ``on_divergence`` says), clipping, ``optimizer.step()``,
        the scheduler when it steps per step, the history record and ``on_batch_end``.
        ``accumulate_steps`` applies to ``fit`` only: this steps on the one batch. Use it
        to drive training batch by batch from a loop of your own (the lab does); the
        callbacks then see ``on_before_optimizer_step`` and ``on_batch_end`` (the fit and
        epoch events are ``fit``'s), and the record's ``epoch`` is ``trainer.epoch + 1``.

        Returns:
            The step's history record ``{"step", "epoch", "loss", "lr", "grad_norm", ...}``
            plus ``"clipped"`` (whether ``clip_grad_norm`` scaled the gradients down), or
            None when training diverged with ``on_divergence="stop"``.

        Example::

            trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1),
                              clip_grad_norm=1.0, progress=False)
            trainer.train_step((x, y))     # {'step': 1, 'loss': 0.53, 'clipped': False, ...}
        """
        epoch = self.epoch + 1
        if self._accum is None:  # outside fit: the sums of the epoch under way start here
            self._accum = {"loss": 0.0, "count": 0, "metrics": {}, "time": 0.0, "lr": None}
        self.optimizer.zero_grad()
        group = _new_group()
        if not self._backward(batch, epoch, group, 1):
            return None
        return self._optimizer_step(epoch, group)

    def _backward(self, batch, epoch: int, group: dict, k: int) -> bool:
        """Forward and backward one batch of a step of ``k``; False when the loss diverged."""
        x, y = _unpack(batch)
        output = _call_model(self.model, x)
        loss = self.loss_fn(output, y)
        value = loss.item()
        if not math.isfinite(value):
            self._diverge("loss", value, epoch)
            return False
        if self.regularizer is not None:
            penalty = self.regularizer(self.model)
            if penalty is not None:
                loss = loss + penalty
        (loss / k if k > 1 else loss).backward()
        n = _batch_size(x, y)
        group["loss"] += value * n
        group["count"] += n
        group["batches"] += 1
        group["value"] = value
        self.metrics.measure(output, y, n, group["metrics"])
        self._position += 1
        return True

    def _skip_consumed(self, batches) -> None:
        """Replay the batch order of an epoch resumed from a mid-epoch checkpoint."""
        now = self._rng_states()
        self._set_rng_states(self._epoch_rng)  # the order is drawn from the epoch-start state
        for i in range(self._position):
            try:
                next(batches)
            except StopIteration:
                raise ValueError(f"fit: the checkpoint was saved after batch {self._position} of "
                                 f"epoch {self.epoch + 1}, but train_data has only {i} batches; "
                                 f"resume with the same data") from None
        self._set_rng_states(now)

    def _params_with_grad(self) -> list:
        return [p for group in self.optimizer.param_groups for p in group["params"]
                if p.grad is not None]

    def _optimizer_step(self, epoch: int, group: dict) -> dict | None:
        """Clip, step and record; returns the record with ``clipped``, or None when the
        gradient norm diverged (and training stops)."""
        self._call("on_before_optimizer_step")
        params = self._params_with_grad()
        norm, total = _total_norm([p.grad for p in params])
        if not math.isfinite(norm):
            self._diverge("gradient norm", norm, epoch)
            return None
        clipped = self.clip_grad_norm is not None and norm > self.clip_grad_norm
        if self.clip_grad_norm is not None:  # what clip_grad_norm_ does, with the norm we have
            nn.utils.clip_grads_with_norm_(params, self.clip_grad_norm, total)
        if self.clip_grad_value is not None:
            nn.utils.clip_grad_value_(params, self.clip_grad_value)
        lr = self._current_lr()
        self.optimizer.step()
        self.step += 1
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        # One batch: its loss exactly (value * n / n may differ from it in the last bit).
        loss = group["value"] if group["batches"] == 1 else group["loss"] / group["count"]
        record = {"step": self.step, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": norm}
        record.update(_means(group["metrics"]))
        accum = self._accum
        accum["loss"] += group["loss"]
        accum["count"] += group["count"]
        for name, (total, count) in group["metrics"].items():
            entry = accum["metrics"].setdefault(name, [0.0, 0])
            entry[0] += total
            entry[1] += count
        accum["lr"] = lr
        self.history.add_step(record)
        self._call("on_batch_end", record)
        return {**record, "clipped": clipped}

    def _end_epoch(self, epoch: int) -> None:
        accum = self._accum
        record: dict[str, Any] = {"epoch": epoch, "step": self.step}
        if accum["count"]:
            record["loss"] = accum["loss"] / accum["count"]
            record.update(_means(accum["metrics"]))
        record["lr"] = accum["lr"] if accum["lr"] is not None else self._current_lr()
        if self.val_data is not None:
            record.update({f"val_{k}": v for k, v in self.evaluate(self.val_data).items()})
        record["time"] = time.perf_counter() - self._epoch_start
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler, _lr_scheduler.ReduceLROnPlateau):
                monitor = self.scheduler_monitor or (
                    "val_loss" if self.val_data is not None else "loss")
                if monitor not in record:
                    raise ValueError(f"Trainer: ReduceLROnPlateau monitors {monitor!r}, which is "
                                     f"not in the epoch record (it has "
                                     f"{', '.join(sorted(record))})")
                self.scheduler.step(record[monitor])
            else:
                self.scheduler.step()
        self.history.add_epoch(record)
        self.epoch = epoch
        self._accum = None
        self._position = 0
        self._call("on_epoch_end", record)

    def _current_lr(self):
        lrs = [float(group["lr"]) for group in self.optimizer.param_groups]
        return lrs[0] if len(set(lrs)) == 1 else lrs

    def _diverge(self, quantity: str, value: float, epoch: int) -> None:
        """Stop on a NaN/Inf: raise TrainingDiverged, or warn and stop (on_divergence='stop')."""
        step = self.step + 1
        lr = self._current_lr()
        if isinstance(lr, float):
            lr_text = f"{lr:g}"
        else:  # param groups with different rates
            lr_text = "[" + ", ".join(f"{v:g}" for v in lr) + "]"
        last = self.history.last_step
        message = (f"{quantity} became {value} at step {step} (epoch {epoch}), "
                   f"learning rate {lr_text}")
        if last is not None:
            message += f"; last finite loss {last['loss']:.4g} at step {last['step']}"
            advice = ("the learning rate is probably too high for this batch size"
                      if quantity == "loss" else
                      "the gradients exploded: lower the learning rate or clip them "
                      "(clip_grad_norm=1.0)")
        else:
            message += "; no earlier step had a finite loss"
            advice = ("check the data for NaN or Inf values and the model's initialisation, "
                      "or lower the learning rate")
        message += f": {advice}"
        checkpoint = None
        for cb in self._callbacks:
            saved = getattr(cb, "last_saved", None)
            if saved is not None and (checkpoint is None or saved[1] >= checkpoint[1]):
                checkpoint = saved
        if checkpoint is not None:
            message += (f". The last good checkpoint (step {checkpoint[1]}) is kept at "
                        f"{checkpoint[0]}")
        error = TrainingDiverged(
            message, quantity=quantity, value=value, step=step, epoch=epoch, lr=lr,
            last_finite_loss=None if last is None else last["loss"],
            last_finite_step=None if last is None else last["step"],
            checkpoint=None if checkpoint is None else checkpoint[0])
        self.optimizer.zero_grad()
        if self.on_divergence == "raise":
            raise error
        self.diverged = error
        self.request_stop(message)
        warnings.warn(f"training stopped: {message}", RuntimeWarning, stacklevel=4)

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self, data) -> dict:
        """The mean loss (and metrics) over ``data``, in eval mode and without gradients.

        The mean is weighted by batch size (exact for losses with ``reduction='mean'``).
        The model's train/eval mode is restored afterwards.

        Example::

            trainer.evaluate(test_loader)       # {'loss': 0.12, 'accuracy': 0.97}
        """
        model = self.model
        was_training = getattr(model, "training", False)
        total, count = 0.0, 0
        sums: dict[str, list] = {}
        if hasattr(model, "eval"):
            model.eval()
        try:
            with no_grad():
                for batch in data:
                    x, y = _unpack(batch)
                    output = _call_model(model, x)
                    n = _batch_size(x, y)
                    total += self.loss_fn(output, y).item() * n
                    count += n
                    self.metrics.measure(output, y, n, sums)
        finally:
            if hasattr(model, "train"):
                model.train(was_training)
        if not count:
            raise ValueError("evaluate: the data yielded no batches")
        return {"loss": total / count, **_means(sums)}

    # -- checkpoints ------------------------------------------------------------------
    def _data_generator(self):
        gen = getattr(self.train_data, "generator", None)
        return gen if isinstance(gen, Generator) else None

    def _rng_states(self) -> dict:
        states = {"global": get_rng_state()}
        gen = self._data_generator()
        if gen is not None:
            states["data"] = gen.get_state()
        return states

    def _set_rng_states(self, states: dict) -> None:
        set_rng_state(states["global"])
        gen = self._data_generator()
        if gen is not None and "data" in states:
            gen.set_state(states["data"])

    def state_dict(self) -> dict:
        """Everything needed to resume: what a training checkpoint holds.

        Keys: ``model``, ``optimizer``, ``scheduler`` (state dicts; the scheduler's None
        without one), ``epoch`` and ``step`` (completed), ``rng`` (``backprop.get_rng_state()``
        and the data loader's generator state), ``history``, ``callbacks``, and the
        position inside an unfinished epoch.
        """
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "rng": self._rng_states(),
            "history": self.history._to_checkpoint(),
            "callbacks": {key: cb.state_dict() for key, cb in self._keyed_callbacks().items()},
        }
        if self._accum is not None and self._position:
            accum = dict(self._accum, time=time.perf_counter() - self._epoch_start,
                         metrics={k: list(v) for k, v in self._accum["metrics"].items()})
            state["epoch_position"] = {"batches": self._position, "sums": accum,
                                       "rng": self._epoch_rng}
        return state

    def load_state_dict(self, state: dict, source: str = "the checkpoint") -> None:
        """Restore a state from :meth:`state_dict` (or a loaded checkpoint file).

        Raises:
            CheckpointError: ``state`` is not a training checkpoint or does not fit this
                trainer (another architecture, optimizer or schedule); ``source`` names
                it in the message. Nothing is changed then.
        """
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"Trainer: {source} is not a training checkpoint (format "
                                  f"{got!r}; expected {CHECKPOINT_FORMAT!r}); for a bare "
                                  f"state_dict use model.load_state_dict")
        if self.scheduler is not None and state.get("scheduler") is None:
            raise CheckpointError(f"Trainer: this trainer has a scheduler but {source} has no "
                                  f"scheduler state")
        backup = self._parts_backup()
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            epoch, step = int(state["epoch"]), int(state["step"])
            history = History._from_checkpoint(state["history"])
            position = state.get("epoch_position")
            if position is not None:
                position = (int(position["batches"]), dict(position["sums"]), position["rng"])
            rng = state["rng"]
            if not isinstance(rng, dict) or "global" not in rng:
                raise ValueError(f"'rng' holds {type(rng).__name__}, not the RNG states")
            callback_states = dict(state.get("callbacks") or {})
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            self._restore_parts(backup)
            problem = f"it has no {e}" if isinstance(e, KeyError) else _one_line(str(e))
            raise CheckpointError(f"Trainer: {source} does not fit this run: {problem}") from e
        self.epoch, self.step, self.history = epoch, step, history
        if position is not None:
            self._position, self._accum, self._epoch_rng = position
        else:
            self._position, self._accum, self._epoch_rng = 0, None, None
        self._pending_rng = rng
        self._callback_states = callback_states
        self._restore_callback_states()
        self.resuming = True

    def _parts_backup(self) -> tuple:
        """Copies of the model, optimizer and scheduler states, to undo a failed load."""
        model = {k: v.detach().clone() if hasattr(v, "detach") else copy.deepcopy(v)
                 for k, v in self.model.state_dict().items()}
        scheduler = None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict())
        return model, copy.deepcopy(self.optimizer.state_dict()), scheduler

    def _restore_parts(self, backup: tuple) -> None:
        model, optimizer, scheduler = backup
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(optimizer)
        if scheduler is not None:
            self.scheduler.load_state_dict(scheduler)

    def _restore_callback_states(self) -> None:
        for key, cb in self._keyed_callbacks().items():
            if key in self._callback_states:
                cb.load_state_dict(self._callback_states[key])

    def save_checkpoint(self, path) -> None:
        """Write :meth:`state_dict` to ``path`` with ``backprop.save`` (atomically)."""
        _save(self.state_dict(), path)

    def load_checkpoint(self, path) -> dict:
        """Restore from a checkpoint file; the next :meth:`fit` continues the run. Returns it.

        Raises:
            FileNotFoundError: nothing at ``path``.
            CheckpointError: ``path`` is a folder, a damaged file, not a training
                checkpoint, or the checkpoint of another model; the trainer is unchanged.
        """
        name = os.fspath(path)
        if os.path.isdir(path):
            raise CheckpointError(f"Trainer: can't resume from {name}: it is a folder, not a "
                                  f"checkpoint file")
        if not os.path.exists(path):
            raise FileNotFoundError(f"Trainer: no checkpoint at {name}")
        try:
            state = _load(path)
        except SerializationError as e:  # its message names the file already
            raise CheckpointError(f"Trainer: can't resume from a damaged checkpoint: {e}") from e
        except OSError as e:
            raise CheckpointError(f"Trainer: can't read the checkpoint {name}: "
                                  f"{e.strerror or e}") from e
        self.load_state_dict(state, source=name)
        return state


def fit(model, loss_fn, optimizer, train_data, epochs: int = 1, val_data=None, scheduler=None,
        clip_grad_norm=None, accumulate_steps: int = 1, callbacks=(), progress=True,
        metrics="auto", device=None, *, scheduler_interval: str = "epoch",
        scheduler_monitor=None, clip_grad_value=None, on_divergence: str = "raise",
        resume_from=None, max_steps=None, regularizer=None) -> History:
    """Train ``model`` and return its :class:`History`: ``Trainer(...).fit(...)`` in one call.

    The arguments are those of :class:`Trainer` and :meth:`Trainer.fit`.

    Example::

        history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3),
                      train_loader, epochs=20, val_data=val_loader, clip_grad_norm=1.0)
        history.epoch_metric("val_accuracy")
    """
    trainer = Trainer(model, loss_fn, optimizer, scheduler=scheduler,
                      scheduler_interval=scheduler_interval, scheduler_monitor=scheduler_monitor,
                      clip_grad_norm=clip_grad_norm, clip_grad_value=clip_grad_value,
                      accumulate_steps=accumulate_steps, callbacks=callbacks, progress=progress,
                      metrics=metrics, on_divergence=on_divergence, regularizer=regularizer,
                      device=device)
    return trainer.fit(train_data, epochs=epochs, val_data=val_data, resume_from=resume_from,
                       max_steps=max_steps)


def load_checkpoint(path, model=None, optimizer=None, scheduler=None) -> dict:
    """Read a training checkpoint and load its parts into the objects given.

    Args:
        path: a checkpoint written by ``ModelCheckpoint`` or ``Trainer.save_checkpoint``.
        model, optimizer, scheduler: objects to restore (each optional).

    Returns the whole checkpoint dict (``"epoch"``, ``"step"``, ``"history"`` as a
    :class:`History`, ...).
    To continue training, use ``fit(..., resume_from=path)`` instead.

    Example::

        ckpt = load_checkpoint("runs/spiral/best.safetensors", model)
        print(ckpt["epoch"], ckpt["history"].last_epoch)
    """
    state = _load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"load_checkpoint: {os.fspath(path)} is not a training checkpoint; "
                              f"for a bare state_dict use "
                              f"model.load_state_dict(backprop.load(path))")
    if model is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    state["history"] = History._from_checkpoint(state["history"])
    return state
