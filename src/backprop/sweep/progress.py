"""The sweep's progress over trials: a bar on a terminal, one line per finished trial always.

On a terminal a tqdm bar counts finished trials out of all (a resumed sweep starts at the
trials already logged) and shows the best metric so far and how many trials diverged;
each finished trial's line is printed above it. Off a terminal (a log file, a pipe, a
test) only the per-trial lines are written, so a log still says what happened.

Example::

    progress = TrialProgress(total=35, done=5, metric="test_loss")
    progress.update(record)   # one finished trial
    progress.close()
"""
from __future__ import annotations

import sys
import time

from backprop.sweep.results import diverged
from backprop.train.progress import _isatty, _tqdm

__all__ = ["TrialProgress"]


class TrialProgress:
    """Progress over a sweep's trials, written to ``file`` (stderr by default).

    Args:
        total: trials in the sweep.
        done: trials already finished (a resumed sweep).
        metric: the record's ``final`` field shown per trial and as the best so far.
        bar: None (default) draws a bar only on a terminal; False never; True always.
    """

    def __init__(self, total: int, done: int = 0, metric: str = "test_loss", file=None,
                 bar: bool | None = None):
        self.total, self.done, self.metric = total, done, metric
        self.stream = file if file is not None else sys.stderr
        self.best = None
        self.diverged = 0
        self.began = time.perf_counter()
        draw = _isatty(self.stream) if bar is None else bar
        self._tqdm = _tqdm(total=total, initial=done, file=self.stream, unit="trial",
                           desc="trials") if draw else None

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
        if self._tqdm is None:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        self._tqdm.write(text, file=self.stream)
        self._tqdm.update(1)
        self._tqdm.set_postfix_str(self.summary(), refresh=True)

    def close(self) -> None:
        """End the bar (its last state stays on the screen)."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        self.stream.flush()
