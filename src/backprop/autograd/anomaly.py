"""``detect_anomaly``: stop at the first NaN or Inf, naming the op and where it was called.

Inside the context every op checks its forward output and every backward its
gradients; the error names the op and the line of *your* code that called it
in the forward pass. It costs a stack capture per op, so use it for debugging.

Example::

    with backprop.autograd.detect_anomaly():
        loss = model(x).log().sum()     # AnomalyError: LogBackward0 ... line 12
        loss.backward()
"""
from __future__ import annotations

import functools

from backprop.autograd.grad_mode import anomaly_state as state


class detect_anomaly:
    """Context manager (and decorator) turning on NaN/Inf checks for every op."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = state.enabled
        state.enabled = self.check_nan
        return self

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly checks on or off for the whole process."""
    state.enabled = bool(mode)


def is_anomaly_enabled() -> bool:
    return state.enabled
