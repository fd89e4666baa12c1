"""A progress bar for the training loop, drawn by tqdm.

The bar shows the epoch, the steps done in it, the running training loss and
accuracy, the learning rate and, once an epoch is validated, the validation loss
and accuracy. It writes nothing when its stream is not a terminal (a log file, a
pipe, a test), so it can be left on everywhere.

Example::

    fit(model, loss_fn, opt, loader, epochs=20)                   # a bar on a terminal
    fit(model, loss_fn, opt, loader, epochs=20, progress=False)   # never a bar
"""
from __future__ import annotations

import sys
import time
import warnings
from typing import Any

from backprop.train.callbacks import Callback

__all__ = ["ProgressBar"]


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _tqdm(**kwargs):
    """A new tqdm bar (imported here, not at import time: tqdm costs ~0.1 s to import)."""
    from tqdm.auto import tqdm
    return tqdm(dynamic_ncols=True, leave=True, **kwargs)


def _format_metrics(loss, accuracy, lr, val: dict) -> str:
    parts = []
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if accuracy is not None:
        parts.append(f"acc {accuracy:.1%}")
    if "val_loss" in val:
        parts.append(f"val_loss {val['val_loss']:.4f}")
    if "val_accuracy" in val:
        parts.append(f"val_acc {val['val_accuracy']:.1%}")
    if lr is not None:
        parts.append(f"lr {lr:.1e}")
    return " ".join(parts)


class ProgressBar(Callback):
    """Show training progress on a terminal; off when the stream is not one.

    Args:
        file: the stream (default ``sys.stdout``, looked up when fit starts).
        enabled: None (default) shows the bar only when ``file`` is a terminal;
            True or False forces it on or off.
        use_tqdm: deprecated and ignored: tqdm always draws the bar.
        min_interval: the shortest time (seconds) between two redraws of the metrics.

    Example::

        fit(model, loss_fn, opt, loader, epochs=5, progress=False,
            callbacks=[ProgressBar(enabled=True)])
    """

    order = -100

    def __init__(self, file=None, enabled: bool | None = None, use_tqdm: bool | None = None,
                 min_interval: float = 0.1):
        if use_tqdm is not None:
            warnings.warn("ProgressBar(use_tqdm=...) is deprecated and ignored: tqdm, a "
                          "dependency of backprop, always draws the bar",
                          DeprecationWarning, stacklevel=2)
        self.file = file
        self.enabled = enabled
        self.min_interval = float(min_interval)
        self._active = False
        self._bar: Any = None  # a tqdm bar while active (tqdm ships no types)

    # -- lifecycle --------------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        stream = self.file if self.file is not None else sys.stdout
        self._active = _isatty(stream) if self.enabled is None else bool(self.enabled)
        if not self._active:
            return
        self._epochs = trainer.max_epochs
        self._steps_per_epoch = trainer.steps_per_epoch()
        self._val: dict = {}
        self._lr = None
        self._last_draw = 0.0
        self._record: dict | None = None
        self._bar = _tqdm(total=self._steps_per_epoch, file=stream, unit="step")

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if not self._active:
            return
        self._done = 0
        self._loss_sum = self._acc_sum = 0.0
        self._acc_count = 0
        self._bar.reset(total=self._steps_per_epoch)
        self._bar.set_description(f"epoch {epoch}/{self._epochs}", refresh=False)

    def on_batch_end(self, trainer, record: dict) -> None:
        if not self._active:
            return
        self._done += 1
        self._loss_sum += record["loss"]
        if "accuracy" in record:
            self._acc_sum += record["accuracy"]
            self._acc_count += 1
        self._lr = record.get("lr")
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self._draw()

    def on_epoch_end(self, trainer, record: dict) -> None:
        if not self._active:
            return
        self._val = {k: v for k, v in record.items() if k in ("val_loss", "val_accuracy")}
        self._lr = record.get("lr")
        self._record = record
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval or record["epoch"] == self._epochs:
            self._last_draw = now
            self._draw(record)
            self._record = None

    def on_fit_end(self, trainer) -> None:
        self._close()

    def on_exception(self, trainer, error) -> None:
        self._close()

    # -- drawing ----------------------------------------------------------------------
    def _summary(self, record: dict | None) -> str:
        if record is not None:
            return _format_metrics(record.get("loss"), record.get("accuracy"), self._lr,
                                   self._val)
        loss = self._loss_sum / self._done if self._done else None
        acc = self._acc_sum / self._acc_count if self._acc_count else None
        return _format_metrics(loss, acc, self._lr, self._val)

    def _draw(self, record: dict | None = None) -> None:
        self._bar.set_postfix_str(self._summary(record), refresh=True)

    def _close(self) -> None:
        if not self._active:
            return
        if self._record is not None:  # the last epoch's line, not yet drawn
            self._draw(self._record)
            self._record = None
        self._active = False
        self._bar.close()
        self._bar = None
