"""The sweep's progress over trials: a bar on a terminal, one line per finished trial always.

On a terminal the bar counts finished trials out of all (a resumed sweep starts at the
trials already logged) and shows the best metric so far and how many trials diverged;
each finished trial's line is printed above it. tqdm draws the bar when it is installed,
else a line of text redrawn in place. Off a terminal (a log file, a pipe, a test) only
the per-trial lines are written, so a log still says what happened.

Example::

    progress = TrialProgress(total=35, done=5, metric="test_loss")
    progress.update(record)   # one finished trial
    progress.close()
"""
from __future__ import annotations

import sys
import time

from backprop.sweep.results import diverged
from backprop.train.progress import _columns, _isatty, _load_tqdm

__all__ = ["TrialProgress"]


class TrialProgress:
    """Progress over a sweep's trials, written to ``file`` (stderr by default).

    Args:
        total: trials in the sweep.
        done: trials already finished (a resumed sweep).
        metric: the record's ``final`` field shown per trial and as the best so far.
        bar: None (default) draws a bar only on a terminal; False never; True always.
        use_tqdm: None (default) uses tqdm when installed; False the built-in text bar.
    """

    def __init__(self, total: int, done: int = 0, metric: str = "test_loss", file=None,
                 bar: bool | None = None, use_tqdm: bool | None = None):
        self.total, self.done, self.metric = total, done, metric
        self.stream = file if file is not None else sys.stderr
        self.best = None
        self.diverged = 0
        self.began = time.perf_counter()
        self._bar = _isatty(self.stream) if bar is None else bar
        self._tqdm = None
        self._width = 0
        if self._bar and use_tqdm in (None, True):
            tqdm = _load_tqdm()
            if tqdm is not None:
                self._tqdm = tqdm(total=total, initial=done, file=self.stream, unit="trial",
                                  dynamic_ncols=True, leave=True, desc="trials")
        self._draw()

    def _value(self, record: dict):
        final = record.get("final") or {}
        value = final.get(self.metric)
        return value if value is not None else final.get("train_loss")

    def line(self, record: dict) -> str:
        """The one line that says how a finished trial ended."""
        value = self._value(record)
        status = "diverged" if diverged(record) else (
            "stopped early" if record.get("stopped_early") else
            f"{self.metric} {value:.4g}" if value is not None else "done")
        return (f"[{self.done}/{self.total}] {record['trial_id']}: {status} "
                f"({record.get('seconds', 0):.1f} s; "
                f"{time.perf_counter() - self.began:.0f} s elapsed)")

    def summary(self) -> str:
        """The bar's text: the best metric so far and the diverged count."""
        parts = []
        if self.best is not None:
            parts.append(f"best {self.metric} {self.best:.4g}")
        if self.diverged:
            parts.append(f"{self.diverged} diverged")
        return ", ".join(parts)

    def update(self, record: dict) -> None:
        """Count one finished trial and print its line."""
        self.done += 1
        value = self._value(record)
        if diverged(record):
            self.diverged += 1
        elif value is not None and not record.get("stopped_early") and \
                (self.best is None or value < self.best):
            self.best = value
        text = self.line(record)
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.stream)
            self._tqdm.update(1)
            self._tqdm.set_postfix_str(self.summary(), refresh=True)
            return
        self._clear()
        self.stream.write(text + "\n")
        self._draw()

    def _clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def _draw(self) -> None:
        if not self._bar or self._tqdm is not None:
            self.stream.flush()
            return
        filled = int(20 * self.done / self.total) if self.total else 20
        text = self.summary()
        line = f"trials [{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total}" + \
            (f"  {text}" if text else "")
        columns = _columns(self.stream)
        if columns:
            line = line[:columns]
        self.stream.write("\r" + line)
        self._width = len(line)
        self.stream.flush()

    def close(self) -> None:
        """End the bar (its last state stays on the screen)."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        elif self._width:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()
