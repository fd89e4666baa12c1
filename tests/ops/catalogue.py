"""The op catalogue: one entry per way of calling a primitive, swept by test_catalogue.py.

Every op module has a ``cases_<module>.py`` beside this file with a ``CASES`` list.
Each case gives a backprop function, how to draw its inputs, and (optionally) the
same function written with torch. The sweep gradchecks every case in float64 and,
when torch is installed, compares values and gradients with it. A coverage test
fails when a ``Function`` subclass in ``backprop.ops`` has no case.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class OpCase:
    """One way to call an op.

    name:     the test id, e.g. "mul/broadcast".
    fn:       backprop callable taking the inputs (tensors and plain values).
    inputs:   rng -> list of arguments. float64 arrays become tensors that require
              grad; other arrays become tensors without grad; anything else is
              passed unchanged.
    torch_fn: the same computation in torch (same argument order), or None.
    covers:   names of the Function classes this case exercises (for coverage).
    grad:     False for ops without gradients (comparisons, argmax...).
    atol, rtol: for the torch comparison.
    gradcheck_kw: extra arguments for gradcheck (eps, atol, rtol).
    """

    name: str
    fn: Callable
    inputs: Callable[[np.random.Generator], list]
    torch_fn: Callable | None = None
    covers: tuple = ()
    grad: bool = True
    atol: float = 1e-10
    rtol: float = 1e-7
    gradcheck_kw: dict = field(default_factory=dict)
    extra: Any = None


def randn(*shape):
    """An input maker: one float64 standard-normal array of the given shape."""
    return lambda rng: [rng.standard_normal(shape)]


def away_from(x: np.ndarray, points=(0.0,), gap=0.1) -> np.ndarray:
    """Nudge values away from kinks (e.g. relu at 0) so finite differences are valid."""
    x = x.copy()
    for p in points:
        close = np.abs(x - p) < gap
        x[close] = p + np.where(x[close] >= p, gap, -gap)
    return x


def positive(*shape, low=0.5, high=2.0):
    return lambda rng: [rng.uniform(low, high, shape)]
