"""dtypes with PyTorch's names (``backprop.float32``) over NumPy dtypes."""
from __future__ import annotations

import builtins as _builtins

import numpy as np

from backprop.errors import DTypeError


class dtype:
    """A tensor element type. ``backprop.float32 == x.dtype``; ``.np`` is the NumPy dtype."""

    __slots__ = ("name", "np", "is_floating_point", "itemsize")

    def __init__(self, name: str, np_dtype):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = self.np.kind == "f"
        self.itemsize = self.np.itemsize

    def __repr__(self) -> str:
        return f"backprop.{self.name}"

    def __eq__(self, other) -> bool:
        if isinstance(other, dtype):
            return self.np == other.np
        try:
            return self.np == np.dtype(other)
        except TypeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self.np)

    def __reduce__(self):
        return (_lookup, (self.name,))


float16 = dtype("float16", np.float16)
float32 = dtype("float32", np.float32)
float64 = dtype("float64", np.float64)
int8 = dtype("int8", np.int8)
int16 = dtype("int16", np.int16)
int32 = dtype("int32", np.int32)
int64 = dtype("int64", np.int64)
uint8 = dtype("uint8", np.uint8)
bool_ = dtype("bool", np.bool_)

half, float, double = float16, float32, float64  # noqa: A001 (PyTorch aliases)
short, int, long = int16, int32, int64  # noqa: A001

_BY_NP = {d.np: d for d in (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)}
_BY_NAME = {d.name: d for d in _BY_NP.values()}

default_float = np.dtype(np.float32)


def _lookup(name: str) -> dtype:
    return _BY_NAME[name]


def from_numpy_dtype(np_dtype) -> dtype:
    """The backprop dtype of a NumPy dtype (raises DTypeError for unsupported ones)."""
    try:
        return _BY_NP[np_dtype]
    except KeyError:
        raise DTypeError(f"unsupported dtype {np_dtype}; backprop supports "
                         f"{', '.join(sorted(_BY_NAME))}") from None


def to_numpy_dtype(d) -> np.dtype:
    """Accept a backprop dtype, NumPy dtype, type (float, int, bool) or name; return a NumPy dtype."""
    if isinstance(d, dtype):
        return d.np
    if d is _builtins.float:  # Python's float means the default float dtype, as in PyTorch
        return default_float
    if d is _builtins.int:
        return np.dtype(np.int64)
    try:
        out = np.dtype(d)
    except TypeError:
        raise DTypeError(f"not a dtype: {d!r}") from None
    if out not in _BY_NP:
        raise DTypeError(f"unsupported dtype {out}; backprop supports {', '.join(sorted(_BY_NAME))}")
    return out

