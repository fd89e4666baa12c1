"""Callbacks: observers of the training loop's events.

A callback subclasses :class:`Callback` and overrides the hooks it needs; the
:class:`~backprop.train.Trainer` calls them at its events, and ``add_callback``
returns a handle whose ``remove()`` detaches it. Callbacks never edit the loop:
they read the trainer, and may ask it to stop with ``trainer.request_stop(reason)``.

Events, in the order they happen::

    on_fit_start(trainer)
      on_epoch_start(trainer, epoch)                  # epoch counts from 1
        on_before_optimizer_step(trainer)             # gradients ready, not yet clipped
        on_batch_end(trainer, step_record)            # after each optimizer step
      on_epoch_end(trainer, epoch_record)             # after validation
    on_fit_end(trainer)                               # a normal end (or a requested stop)
    on_exception(trainer, error)                      # instead of on_fit_end when fit raises

Callbacks with a lower ``order`` run first; :class:`ModelCheckpoint` runs last, so
the checkpoint it writes holds the other callbacks' state after their update.
Whatever ``state_dict()`` returns is saved in training checkpoints and handed back
to ``load_state_dict`` on resume.

Example::

    trainer = Trainer(model, loss_fn, optimizer, callbacks=[
        EarlyStopping(monitor="val_loss", patience=5),
        ModelCheckpoint("runs/x"),
        CSVLogger("runs/x/metrics.csv"),
    ])
"""
from __future__ import annotations

import copy
import csv
import math
import os
from typing import Any, TextIO

from backprop._checks import is_integral, is_real
from backprop.serialization import save as _save
from backprop.train.history import json_line

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "JSONLinesLogger", "LambdaCallback",
    "ModelCheckpoint",
]


class Callback:
    """Base class of training callbacks: override the hooks you need (each does nothing here).

    Attributes:
        order: callbacks run in increasing ``order`` (default 0; checkpoints 100).

    Example::

        class PrintLoss(Callback):
            def on_epoch_end(self, trainer, record):
                print(record["epoch"], record["loss"])
    """

    order = 0

    def on_fit_start(self, trainer) -> None:
        """Before the first epoch (after a checkpoint is loaded, when resuming)."""

    def on_epoch_start(self, trainer, epoch: int) -> None:
        """Before the first batch of epoch ``epoch`` (counting from 1)."""

    def on_before_optimizer_step(self, trainer) -> None:
        """After backward (of every accumulated batch), before clipping and the step."""

    def on_batch_end(self, trainer, record: dict) -> None:
        """After an optimizer step; ``record`` is the step's history record."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        """After an epoch and its validation; ``record`` is the epoch's history record."""

    def on_fit_end(self, trainer) -> None:
        """When ``fit`` returns normally (all epochs run, or a stop was requested)."""

    def on_exception(self, trainer, error: BaseException) -> None:
        """When ``fit`` raises (a diverged loss, Ctrl-C, a bug), before the error propagates."""

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint (unique among a trainer's callbacks)."""
        return type(self).__name__

    def state_dict(self) -> dict:
        """State to keep in training checkpoints (plain values and tensors)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state from :meth:`state_dict`."""


class LambdaCallback(Callback):
    """A callback made of plain functions, one per hook: ``LambdaCallback(on_epoch_end=f)``.

    Example::

        losses = []
        cb = LambdaCallback(on_batch_end=lambda trainer, record: losses.append(record["loss"]))
    """

    _HOOKS = ("on_fit_start", "on_epoch_start", "on_before_optimizer_step", "on_batch_end",
              "on_epoch_end", "on_fit_end", "on_exception")

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; hooks are "
                                 f"{', '.join(self._HOOKS)}")
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable, got "
                                f"{type(fn).__name__}")
            setattr(self, name, fn)


# -- monitoring a metric ----------------------------------------------------------------------
def _check_mode(mode, cls: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"{cls}: mode must be 'min' or 'max', got {mode!r}")


def _check_monitor_available(monitor: str, trainer, cls: str) -> None:
    if monitor.startswith("val_") and trainer.val_data is None:
        raise ValueError(f"{cls}(monitor={monitor!r}) needs validation data: pass val_data to "
                         f"fit, or monitor a training metric such as 'loss'")


def _monitored(record: dict, monitor: str, cls: str) -> float:
    if monitor not in record:
        raise ValueError(f"{cls}: the monitored metric {monitor!r} is not in the epoch record "
                         f"(it has {', '.join(sorted(record))})")
    return float(record[monitor])


def _improves(value: float, best, mode: str, min_delta: float = 0.0) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _copy_state(model) -> dict:
    """A model's state_dict with every tensor cloned (the live one shares the parameters)."""
    return {k: v.detach().clone() if hasattr(v, "detach") else copy.deepcopy(v)
            for k, v in model.state_dict().items()}


# -- early stopping ---------------------------------------------------------------------------
class EarlyStopping(Callback):
    """Stop training when a monitored metric has stopped improving.

    At every epoch end the metric counts as improved when it beats the best so far by
    more than ``min_delta``; after ``patience`` epochs in a row without improvement the
    trainer is asked to stop. A NaN never counts as an improvement.

    Args:
        monitor: a key of the epoch records (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
        mode: ``"min"`` (lower is better) or ``"max"``.
        patience: epochs without improvement to tolerate.
        min_delta: the smallest change that counts as an improvement.
        restore_best: at the end of training, load the weights of the best epoch into
            the model (kept in memory as a copy).

    Attributes:
        best_score, best_epoch: the best value so far and its epoch (None before the first).
        stopped_epoch: the epoch after which it stopped training (None if it did not).

    Example::

        fit(model, loss_fn, opt, train, epochs=100, val_data=val,
            callbacks=[EarlyStopping(patience=5, restore_best=True)])
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 5,
                 min_delta: float = 0.0, restore_best: bool = False):
        _check_mode(mode, "EarlyStopping")
        if isinstance(patience, bool) or not is_integral(patience) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative integer, got "
                             f"{patience!r}")
        if not is_real(min_delta) or not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be a non-negative number, got "
                             f"{min_delta!r}")
        self.monitor = monitor
        self.mode = mode
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self._reset()

    def _reset(self) -> None:
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_state: dict | None = None

    @property
    def state_key(self) -> str:
        return f"EarlyStopping[{self.monitor}]"

    def on_fit_start(self, trainer) -> None:
        _check_monitor_available(self.monitor, trainer, "EarlyStopping")
        if not trainer.resuming:
            self._reset()

    def on_epoch_end(self, trainer, record: dict) -> None:
        value = _monitored(record, self.monitor, "EarlyStopping")
        if _improves(value, self.best_score, self.mode, self.min_delta):
            self.best_score, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self._best_state = _copy_state(trainer.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = record["epoch"]
            best = "none yet" if self.best_score is None else \
                f"best {self.best_score:.4g} at epoch {self.best_epoch}"
            trainer.request_stop(f"early stopping: {self.monitor} has not improved for "
                                 f"{self.wait} epochs ({best})")

    def on_fit_end(self, trainer) -> None:
        if self.restore_best and self._best_state is not None \
                and self.best_epoch != trainer.epoch:
            trainer.model.load_state_dict(self._best_state)

    def state_dict(self) -> dict:
        state: dict[str, Any] = {"best_score": self.best_score, "best_epoch": self.best_epoch,
                                 "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        if self._best_state is not None:
            state["best_state"] = self._best_state
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best_score = state.get("best_score")
        self.best_epoch = state.get("best_epoch")
        self.wait = state.get("wait", 0)
        self.stopped_epoch = state.get("stopped_epoch")
        self._best_state = state.get("best_state")


# -- checkpoints ------------------------------------------------------------------------------
class ModelCheckpoint(Callback):
    """Write full training checkpoints: periodically, at the end, and on the best metric.

    Each file is a :func:`backprop.save` file (safetensors + JSON, written atomically)
    holding ``trainer.state_dict()``: model, optimizer and scheduler state, epoch and
    step, RNG state, history and the callbacks' state, everything
    ``fit(..., resume_from=path)`` needs to continue the run exactly.

    - ``last.safetensors`` is rewritten every ``every_n_epochs`` epochs and every
      ``every_n_steps`` optimizer steps, and (``save_last``) when training ends;
    - ``best.safetensors`` is written at the end of each epoch whose ``monitor`` value
      beats every earlier one (``save_best``).

    Nothing is written once the loss has diverged, so the files always hold the last
    good state.

    Args:
        dirpath: the folder (created if needed).
        every_n_steps: also save ``last`` every this many optimizer steps (None: never).
        every_n_epochs: save ``last`` every this many epochs (None or 0: never).
        save_best: keep ``best.safetensors``.
        monitor: the epoch-record key that decides "best" (``"val_loss"``, ``"loss"``...).
        mode: ``"min"`` or ``"max"``.
        save_last: save ``last`` when fit ends, whatever the period.

    Attributes:
        last_path, best_path: the two file paths.
        best_score, best_epoch: the best monitored value so far and its epoch.
        last_saved: ``(path, step)`` of the latest file written, or None.

    Example::

        ckpt = ModelCheckpoint("runs/spiral", monitor="val_accuracy", mode="max")
        fit(model, loss_fn, opt, train, epochs=50, val_data=val, callbacks=[ckpt])
        fit(model, loss_fn, opt, train, epochs=80, resume_from=ckpt.last_path)  # 30 more
    """

    order = 100

    def __init__(self, dirpath, every_n_steps: int | None = None, every_n_epochs: int | None = 1,
                 save_best: bool = True, monitor: str = "val_loss", mode: str = "min",
                 save_last: bool = True):
        _check_mode(mode, "ModelCheckpoint")
        for name, value in (("every_n_steps", every_n_steps), ("every_n_epochs", every_n_epochs)):
            if value is not None and (isinstance(value, bool) or not is_integral(value)
                                      or value < 0):
                raise ValueError(f"ModelCheckpoint: {name} must be None or a non-negative "
                                 f"integer, got {value!r}")
        self.dirpath = os.fspath(dirpath)
        self.every_n_steps = every_n_steps or None
        self.every_n_epochs = every_n_epochs or None
        self.save_best = bool(save_best)
        self.monitor = monitor
        self.mode = mode
        self.save_last = bool(save_last)
        self.last_path = os.path.join(self.dirpath, "last.safetensors")
        self.best_path = os.path.join(self.dirpath, "best.safetensors")
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.last_saved: tuple[str, int] | None = None

    @property
    def state_key(self) -> str:
        return f"ModelCheckpoint[{self.monitor}]"

    def on_fit_start(self, trainer) -> None:
        if self.save_best:
            _check_monitor_available(self.monitor, trainer, "ModelCheckpoint")
        os.makedirs(self.dirpath, exist_ok=True)
        if not trainer.resuming:
            self.best_score = self.best_epoch = None

    def _save(self, trainer, path: str) -> None:
        _save(trainer.state_dict(), path)
        self.last_saved = (path, trainer.step)

    def on_batch_end(self, trainer, record: dict) -> None:
        if self.every_n_steps and record["step"] % self.every_n_steps == 0:
            self._save(trainer, self.last_path)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.save_best:
            value = _monitored(record, self.monitor, "ModelCheckpoint")
            if _improves(value, self.best_score, self.mode):
                self.best_score, self.best_epoch = value, record["epoch"]
                self._save(trainer, self.best_path)
        if self.every_n_epochs and record["epoch"] % self.every_n_epochs == 0:
            self._save(trainer, self.last_path)

    def on_fit_end(self, trainer) -> None:
        already = self.last_saved is not None and self.last_saved[0] == self.last_path \
            and self.last_saved[1] == trainer.step
        if self.save_last and trainer.diverged is None and not already:
            self._save(trainer, self.last_path)

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_score = state.get("best_score")
        self.best_epoch = state.get("best_epoch")


# -- metric loggers ---------------------------------------------------------------------------
class JSONLinesLogger(Callback):
    """Append every step and epoch record to a JSON-lines file, one object per line.

    Each line is ``{"kind": "step" | "epoch", ...the record...}``, readable with
    ``History.from_jsonl``. When fit starts the file is rewritten with the records
    the trainer's history already holds (none for a new run; those up to the
    checkpoint when resuming), so the file always matches the run.

    Args:
        path: the file.
        log_steps: also write the per-step records (default True).

    Example::

        fit(model, loss_fn, opt, loader, epochs=5, callbacks=[JSONLinesLogger("metrics.jsonl")])
    """

    def __init__(self, path, log_steps: bool = True):
        self.path = os.fspath(path)
        self.log_steps = bool(log_steps)
        self._file: TextIO | None = None

    def on_fit_start(self, trainer) -> None:
        self._file = open(self.path, "w", encoding="utf-8")
        for kind, record in trainer.history.records():
            if kind == "epoch" or self.log_steps:
                self._file.write(json_line(kind, record))
        self._file.flush()

    def on_batch_end(self, trainer, record: dict) -> None:
        if self.log_steps and self._file is not None:
            self._file.write(json_line("step", record))

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self._file is not None:
            self._file.write(json_line("epoch", record))
            self._file.flush()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def on_fit_end(self, trainer) -> None:
        self._close()

    def on_exception(self, trainer, error) -> None:
        self._close()


class _CSVTable:
    """One CSV file whose columns are the keys seen so far (rewritten if a new key appears)."""

    def __init__(self, path: str):
        self.path = path
        self.columns: list[str] = []
        self.rows: list[dict] = []
        self._file: TextIO | None = None
        self._writer: csv.DictWriter | None = None

    def open(self, records) -> None:
        self.rows = list(records)
        self.columns = []
        for row in self.rows:
            self.columns += [k for k in row if k not in self.columns]
        self._rewrite()

    def _rewrite(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, restval="")
        if self.columns:
            self._writer.writeheader()
        self._writer.writerows(self.rows)
        self._file.flush()

    def add(self, record: dict) -> None:
        self.rows.append(record)
        if any(k not in self.columns for k in record):
            self.columns += [k for k in record if k not in self.columns]
            self._rewrite()  # a new column: rewrite the header and every row
        else:
            assert self._writer is not None, "_CSVTable.open comes first"
            self._writer.writerow(record)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


class CSVLogger(Callback):
    """Write the epoch records to a CSV file, and the step records to a second one.

    Columns are the record keys (``epoch, step, loss, accuracy, lr, time, val_loss, ...``);
    the step table goes to ``steps_path``, by default ``path`` with ``_steps`` before the
    extension (``metrics.csv`` -> ``metrics_steps.csv``). Like :class:`JSONLinesLogger`,
    the files are rewritten from the trainer's history when fit starts.

    Args:
        path: the CSV file of epoch records.
        log_steps: also write the step records (default True).
        steps_path: where to write them (default: see above).

    Example::

        fit(model, loss_fn, opt, loader, epochs=5, callbacks=[CSVLogger("metrics.csv")])
    """

    def __init__(self, path, log_steps: bool = True, steps_path=None):
        self.path = os.fspath(path)
        self.log_steps = bool(log_steps)
        if steps_path is None:
            stem, ext = os.path.splitext(self.path)
            steps_path = f"{stem}_steps{ext or '.csv'}"
        self.steps_path = os.fspath(steps_path)
        self._epochs = _CSVTable(self.path)
        self._steps = _CSVTable(self.steps_path) if self.log_steps else None

    def on_fit_start(self, trainer) -> None:
        self._epochs.open(trainer.history.epochs)
        if self._steps is not None:
            self._steps.open(trainer.history.steps)

    def on_batch_end(self, trainer, record: dict) -> None:
        if self._steps is not None:
            self._steps.add(record)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._epochs.add(record)
        if self._steps is not None:
            self._steps.flush()

    def _close(self) -> None:
        self._epochs.close()
        if self._steps is not None:
            self._steps.close()

    def on_fit_end(self, trainer) -> None:
        self._close()

    def on_exception(self, trainer, error) -> None:
        self._close()
