"""Numbers for the page: rounded to a few digits, pictures as bytes, curves thinned.

A lab frame is JSON: plain lists of short floats, NaN/Inf written as None.
"""
from __future__ import annotations

import base64
import math

import numpy as np

from backprop.serialization import json_safe

__all__ = ["as_bytes", "curve", "downsample", "finite_or_none", "rounded"]


def rounded(a, digits: int = 4):
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
        result = np.where(k < 0, np.round(arr * up) / up, np.round(arr / down) * down)
    out = result.tolist()
    if finite.all():
        return out
    return json_safe(out, "null")


def as_bytes(rows: np.ndarray) -> tuple:
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
    return base64.b64encode(data).decode("ascii"), rounded(scale, 3)


def finite_or_none(x):
    """``x`` as a float, or None when it is None or not finite."""
    return float(x) if x is not None and math.isfinite(x) else None


def curve(points: list, limit: int) -> list:
    """A loss curve ``[[step, loss], ...]`` downsampled to ``limit`` points and rounded."""
    kept = downsample(points, limit)
    return [[step, loss] for (step, _), loss in
            zip(kept, rounded([p[1] for p in kept], 5), strict=True)]


def downsample(points: list, limit: int) -> list:
    """At most ``limit`` evenly spaced entries of ``points``, the first and last kept."""
    n = len(points)
    if n <= limit:
        return list(points)
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
    return [points[i] for i in idx]
