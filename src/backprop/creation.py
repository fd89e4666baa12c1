"""Functions that make tensors: from data, filled with constants, ranges and random numbers."""
from __future__ import annotations

import numpy as np

from backprop import dtypes as _dt
from backprop import random as _random
from backprop.errors import DTypeError, ShapeError
from backprop.tensor import Tensor, _make, _to_array
from backprop.tensor import _check_device as _tensor_check_device


def _size(size, op: str) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{op}: size must be a tuple of ints, got {tuple(size)}")
        if s < 0:
            raise ShapeError(f"{op}: negative dimension {s} in size {tuple(size)}")
        out.append(int(s))
    return tuple(out)


def _float_dtype(dtype, op: str) -> np.dtype:
    d = _dt.default_float if dtype is None else _dt.to_numpy_dtype(dtype)
    return d


def _finish(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = _make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, arrays or tensors).

    Python floats become float32 and ints int64, as in PyTorch; NumPy arrays keep their dtype.

    Example::

        x = backprop.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    """
    _check_device(device)
    arr = _to_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and arr is (data._data if isinstance(data, Tensor)
                                                          else data):
        arr = arr.copy()
    return _finish(arr, requires_grad)


def as_tensor(data, dtype=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, Tensor) and dtype is None:
        return data
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == _dt.to_numpy_dtype(dtype)):
        return from_numpy(data)
    return tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    _dt.from_numpy_dtype(array.dtype)
    return _make(array)


def _check_device(device) -> None:
    if device is not None:
        _tensor_check_device(device, "tensor")


def zeros(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    _check_device(device)
    return _finish(np.zeros(_size(size, "zeros"), _float_dtype(dtype, "zeros")), requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of ones."""
    _check_device(device)
    return _finish(np.ones(_size(size, "ones"), _float_dtype(dtype, "ones")), requires_grad)


def empty(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor of the given size (filled with zeros here, for reproducibility)."""
    return zeros(*size, dtype=dtype, requires_grad=requires_grad, device=device)


def full(size, fill_value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A tensor filled with ``fill_value`` (its dtype inferred from the value unless given)."""
    _check_device(device)
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = np.bool_
        elif isinstance(fill_value, (int, np.integer)):
            dtype = np.int64
        else:
            dtype = _dt.default_float
    size = _size(size if isinstance(size, (tuple, list)) else (size,), "full")
    return _finish(np.full(size, fill_value, _dt.to_numpy_dtype(dtype)), requires_grad)


def zeros_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    d = input._data.dtype if dtype is None else _dt.to_numpy_dtype(dtype)
    return _finish(np.zeros(input.shape, d), requires_grad)


def ones_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    d = input._data.dtype if dtype is None else _dt.to_numpy_dtype(dtype)
    return _finish(np.ones(input.shape, d), requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    d = input._data.dtype if dtype is None else _dt.to_numpy_dtype(dtype)
    return _finish(np.full(input.shape, fill_value, d), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` up to (not including) ``end`` by ``step``.

    Integer arguments give int64; any float argument gives float32 (as in PyTorch).
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                     for v in (start, end, step))
        d = np.dtype(np.int64) if is_int else _dt.default_float
    else:
        d = _dt.to_numpy_dtype(dtype)
    return _finish(np.arange(start, end, step).astype(d), requires_grad)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    return _finish(np.linspace(start, end, int(steps)).astype(_float_dtype(dtype, "linspace")),
                   requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    """The identity matrix of shape (n, m or n)."""
    return _finish(np.eye(n, m, dtype=_float_dtype(dtype, "eye")), requires_grad)


def rand(*size, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform random numbers in [0, 1), from the seeded generator."""
    d = _float_dtype(dtype, "rand")
    if d.kind != "f":
        raise DTypeError(f"rand: dtype must be floating point, got {d}")
    g = _random.generator(generator)
    return _finish(g.random(_size(size, "rand")).astype(d), requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard-normal random numbers, from the seeded generator."""
    d = _float_dtype(dtype, "randn")
    if d.kind != "f":
        raise DTypeError(f"randn: dtype must be floating point, got {d}")
    g = _random.generator(generator)
    return _finish(g.standard_normal(_size(size, "randn")).astype(d), requires_grad)


def randint(low, high=None, size=(), generator=None, dtype=None) -> Tensor:
    """Random integers in [low, high)."""
    if high is None:
        low, high = 0, low
    g = _random.generator(generator)
    d = np.dtype(np.int64) if dtype is None else _dt.to_numpy_dtype(dtype)
    return _make(g.integers(low, high, size=_size(tuple(size), "randint")).astype(d))


def randperm(n: int, generator=None) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    return _make(_random.generator(generator).permutation(int(n)).astype(np.int64))


def rand_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return rand(*input.shape, dtype=dtype or input._data.dtype, requires_grad=requires_grad)


def randn_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return randn(*input.shape, dtype=dtype or input._data.dtype, requires_grad=requires_grad)
