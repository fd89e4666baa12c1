"""dtypes with PyTorch's names (``backprop.float32``) over NumPy dtypes."""
from __future__ import annotations

import builtins as _builtins

import numpy as np

from backprop.errors import DTypeError, ShapeError


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

    def __hash__(self) -> _builtins.int:  # (int is the dtype below)
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

# The dtype Python floats and float creation functions give (set_default_dtype changes it).
# Read it as ``dtypes.default_float`` at call time, never copy it at import.
default_float = np.dtype(np.float32)


def set_default_dtype(d) -> None:
    """Set the floating-point dtype that Python floats, float creation functions and new
    layers' parameters get (float32 at start, as in PyTorch).

    Args:
        d: a floating-point dtype: ``backprop.float64``, ``backprop.float32`` or
            ``backprop.float16``.

    Example::

        backprop.set_default_dtype(backprop.float64)
        backprop.tensor([1.5]).dtype   # backprop.float64
    """
    global default_float
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise DTypeError(f"set_default_dtype: only floating-point types are supported as the "
                         f"default type, got {d!r}")
    default_float = d.np


def get_default_dtype() -> dtype:
    """The current default floating-point dtype (``backprop.float32`` unless changed)."""
    return _BY_NP[default_float]


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



class _NamedConstant:
    """A constant of this module known by its name: it prints as ``backprop.<name>`` and
    pickles (and copies) as a reference to the module attribute of that name, so the
    one instance stays the one instance."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"backprop.{self.name}"

    def __reduce__(self) -> str:
        return self.name


class layout(_NamedConstant):
    """A tensor's memory layout, as ``backprop.strided``: the only one backprop has (dense)."""

    __slots__ = ()


class memory_format(_NamedConstant):
    """A memory format, as ``backprop.contiguous_format``: accepted where PyTorch takes one.

    backprop's arrays are NumPy arrays, so the format changes no values (only strides).
    """

    __slots__ = ()


strided = layout("strided")
contiguous_format = memory_format("contiguous_format")
preserve_format = memory_format("preserve_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
_FORMATS = {f.name: f for f in (contiguous_format, preserve_format, channels_last,
                                channels_last_3d)}


# Pickles made before the constants pickled by name refer to these: kept so they still load.
def _layout_lookup(name: str) -> layout:
    return strided


def _memory_format_lookup(name: str) -> memory_format:
    return _FORMATS[name]


def check_layout(value, op: str) -> None:
    """Accept ``None`` or the strided layout (``torch.strided`` too); refuse sparse ones."""
    if value is None or value is strided or str(value) in ("torch.strided", "backprop.strided"):
        return
    raise DTypeError(f"{op}: layout {value!r} is not supported: backprop tensors are dense "
                     f"(layout=backprop.strided)")


def check_memory_format(value, op: str, ndim: _builtins.int) -> None:
    """Accept PyTorch's memory formats (channels_last needs 4 dimensions, as in PyTorch)."""
    if value is None:
        return
    name = str(value).rpartition(".")[2]
    if name not in _FORMATS:
        raise TypeError(f"{op}: memory_format must be a backprop.memory_format, got {value!r}")
    need = {"channels_last": 4, "channels_last_3d": 5}.get(name)
    if need is not None and ndim != need:
        raise ShapeError(f"{op}: required rank {need} tensor to use {name} format, got "
                         f"{ndim} dimensions")
