"""Functions that make tensors: from data, filled with constants, ranges and random numbers.

Each takes PyTorch's keywords (``dtype``, ``device``, ``requires_grad``, ``layout``,
``pin_memory``, ``generator``, ``out``, ``memory_format`` where PyTorch has them), so the
device/dtype boilerplate of PyTorch programs runs unchanged. backprop computes on the CPU:
``device="cpu"`` (or none) is accepted, any other device raises ``DeviceError``.
"""
from __future__ import annotations

import numpy as np

from backprop import dtypes as _dt
from backprop import random as _random
from backprop.autograd.grad_mode import no_grad
from backprop.autograd.grad_mode import state as _grad_state
from backprop.errors import DTypeError, GradError, ShapeError
from backprop.tensor import (
    Device,
    DeviceError,
    Tensor,
    _check_device,
    _default_device,
    _make,
    _to_array,
)


# -- the default device ----------------------------------------------------------------------
def set_default_device(device) -> None:
    """Set the device creation functions use when given none (``None`` resets it to the CPU).

    As in PyTorch any device can be named; a tensor created while it is not the CPU raises
    ``DeviceError`` (backprop computes on the CPU only).

    Example::

        backprop.set_default_device("cpu")
    """
    _default_device[0] = None if device is None else Device(device)


def get_default_device() -> Device:
    """The device creation functions use when given none (``device(type='cpu')`` at start)."""
    return _default_device[0] or Device("cpu")


# -- shared argument handling ------------------------------------------------------------------
def _size(size, op: str) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor) and s.ndim == 0 and s._data.dtype.kind in "iu":
            s = s.item()
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{op}: size must be a tuple of ints, got {tuple(size)}")
        if s < 0:
            raise ShapeError(f"{op}: negative dimension {s} in size {tuple(size)}")
        out.append(int(s))
    return tuple(out)


def _float_dtype(dtype, op: str) -> np.dtype:
    """``dtype`` as a NumPy dtype, or the default float dtype (``set_default_dtype``)."""
    return _dt.default_float if dtype is None else _dt.to_numpy_dtype(dtype)


def _random_float(dtype, op: str) -> np.dtype:
    d = _float_dtype(dtype, op)
    if d.kind != "f":
        raise DTypeError(f"{op}: dtype must be floating point, got {_dt.from_numpy_dtype(d)}")
    return d


def _check(op: str, device=None, layout=None, pin_memory: bool = False, like: bool = False
           ) -> None:
    """Check the keywords every creation function shares, before any work is done.

    ``like``: a ``*_like`` function, whose ``device=None`` means the input's device (the CPU).
    """
    _dt.check_layout(layout, op)
    _check_device("cpu" if like and device is None else device, op)
    if pin_memory:
        raise DeviceError(f"{op}: pin_memory=True needs a CUDA or other accelerator backend; "
                          f"backprop computes on the CPU only (leave pin_memory out)")


def _finish(arr: np.ndarray, op: str, requires_grad: bool = False, out=None,
            memory_format=None) -> Tensor:
    _dt.check_memory_format(memory_format, op, arr.ndim)
    t = _make(arr)
    if out is not None:
        t = write_out(out, t, op, resize=True)
    if requires_grad:
        t.requires_grad_(True)
    return t


def write_out(out, result: Tensor, op: str, *, resize: bool = False) -> Tensor:
    """Write ``result`` into ``out`` and return ``out``: PyTorch's ``out=`` argument.

    Refused (``GradError``), as in PyTorch, when grad mode is on and ``result`` or ``out``
    requires grad: a tensor written in place has no history to differentiate.

    Args:
        out: the tensor to write into. Its dtype is kept (the result is cast to it where
            PyTorch allows: a float result into an int tensor is refused). Its shape must be
            the result's, unless it has no elements (then it takes the result's shape, as in
            PyTorch) or ``resize`` is true (creation functions, which PyTorch resizes).
        result: the computed tensor.
        op: the op's name, for errors.

    Example::

        c = backprop.empty(2)
        backprop.add(backprop.ones(2), 1, out=c)   # c is now tensor([2., 2.])
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"{op}(): argument 'out' must be a Tensor, got {type(out).__name__}")
    if _grad_state.enabled and (result._requires_grad or out._requires_grad):
        raise GradError(f"{op}(): functions with out=... arguments don't support automatic "
                        f"differentiation, but one of the arguments requires grad.")
    src, dst = result._data, out._data
    if src.dtype != dst.dtype and not np.can_cast(src.dtype, dst.dtype, "same_kind"):
        raise DTypeError(f"{op}(): result type {_dt.from_numpy_dtype(src.dtype)} can't be cast "
                         f"to the desired output type {_dt.from_numpy_dtype(dst.dtype)}")
    if dst.shape == src.shape:
        with no_grad():
            out.copy_(result)
        return out
    if dst.size == 0 or resize:
        # A new array of the result's shape: nothing saved for backward can hold it.
        out._data = np.array(src, dtype=dst.dtype)
        return out
    raise ShapeError(f"{op}(): out= has shape {tuple(dst.shape)} but the result has shape "
                     f"{tuple(src.shape)}; pass an out tensor of that shape (or one with no "
                     f"elements, which is resized)")


# -- from data ---------------------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad: bool = False, device=None, *,
           pin_memory: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, arrays or tensors).

    Python floats become the default float dtype (float32) and ints int64, as in PyTorch;
    NumPy arrays keep their dtype.

    Example::

        x = backprop.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    """
    _check("tensor", device, None, pin_memory)
    arr = _to_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and arr is (data._data if isinstance(data, Tensor)
                                                          else data):
        arr = arr.copy()
    return _finish(arr, "tensor", requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array or tensor when it can.

    Example::

        a = np.zeros(3); t = backprop.as_tensor(a)   # t shares a's memory
    """
    _check("as_tensor", device)
    if isinstance(data, (Tensor, np.ndarray)) and (
            dtype is None or data.dtype == _dt.to_numpy_dtype(dtype)):
        return data if isinstance(data, Tensor) else from_numpy(data)
    return tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    _dt.from_numpy_dtype(array.dtype)
    return _make(array)


# -- constants ---------------------------------------------------------------------------------
def zeros(*size, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``.

    Example::

        backprop.zeros(2, 3, dtype=backprop.float64, device="cpu")
    """
    _check("zeros", device, layout, pin_memory)
    return _finish(np.zeros(_size(size, "zeros"), _float_dtype(dtype, "zeros")), "zeros",
                   requires_grad, out)


def ones(*size, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
         pin_memory: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    _check("ones", device, layout, pin_memory)
    return _finish(np.ones(_size(size, "ones"), _float_dtype(dtype, "ones")), "ones",
                   requires_grad, out)


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False, memory_format=None) -> Tensor:
    """A tensor of the given size (filled with zeros here, so runs repeat exactly)."""
    _check("empty", device, layout, pin_memory)
    return _finish(np.zeros(_size(size, "empty"), _float_dtype(dtype, "empty")), "empty",
                   requires_grad, out, memory_format)


def _fill_dtype(fill_value) -> np.dtype:
    """The dtype PyTorch infers from a fill value: bool, int64 or the default float."""
    if isinstance(fill_value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(fill_value, (int, np.integer)):
        return np.dtype(np.int64)
    return _dt.default_float


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None,
         requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (dtype inferred from the value).

    Example::

        backprop.full((2, 2), 7)     # int64
        backprop.full((2,), 0.5)     # float32
    """
    _check("full", device, layout, pin_memory)
    if isinstance(size, Tensor) or not isinstance(size, (tuple, list)):
        raise TypeError(f"full(): argument 'size' must be a tuple of ints, not "
                        f"{type(size).__name__}")
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    d = _fill_dtype(fill_value) if dtype is None else _dt.to_numpy_dtype(dtype)
    return _finish(np.full(_size(tuple(size), "full"), fill_value, d), "full", requires_grad, out)


def _like_dtype(input, dtype, op: str) -> np.dtype:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be a Tensor, not {type(input).__name__}")
    return input._data.dtype if dtype is None else _dt.to_numpy_dtype(dtype)


def zeros_like(input: Tensor, *, dtype=None, layout=None, device=None,
               requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """Zeros with ``input``'s shape and dtype (unless ``dtype`` is given)."""
    _check("zeros_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "zeros_like")
    return _finish(np.zeros(input.shape, d), "zeros_like", requires_grad,
                   memory_format=memory_format)


def ones_like(input: Tensor, *, dtype=None, layout=None, device=None,
              requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """Ones with ``input``'s shape and dtype (unless ``dtype`` is given)."""
    _check("ones_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "ones_like")
    return _finish(np.ones(input.shape, d), "ones_like", requires_grad,
                   memory_format=memory_format)


def empty_like(input: Tensor, *, dtype=None, layout=None, device=None,
               requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """A tensor with ``input``'s shape and dtype (filled with zeros here)."""
    _check("empty_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "empty_like")
    return _finish(np.zeros(input.shape, d), "empty_like", requires_grad,
                   memory_format=memory_format)


def full_like(input: Tensor, fill_value, *, dtype=None, layout=None, device=None,
              requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """``fill_value`` everywhere, with ``input``'s shape and dtype (unless ``dtype`` is given).

    Example::

        backprop.full_like(backprop.zeros(2, dtype=backprop.int64), 2.7)   # tensor([2, 2])
    """
    _check("full_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "full_like")
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _finish(np.full(input.shape, fill_value).astype(d), "full_like", requires_grad,
                   memory_format=memory_format)


def new_filled(like: Tensor, op: str, size: tuple, fill_value, dtype=None, device=None,
               requires_grad: bool = False, layout=None, pin_memory: bool = False) -> Tensor:
    """``Tensor.new_full`` / ``new_zeros`` / ``new_ones`` / ``new_empty``: ``like``'s dtype
    and device unless given (``size`` as the ``*size`` of ``zeros``)."""
    _check(op, device, layout, pin_memory, like=True)
    d = _like_dtype(like, dtype, op)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _finish(np.full(_size(size, op), fill_value).astype(d), op, requires_grad)


def new_tensor(like: Tensor, data, dtype=None, device=None, requires_grad: bool = False,
               layout=None, pin_memory: bool = False) -> Tensor:
    """``Tensor.new_tensor``: a copy of ``data`` with ``like``'s dtype unless ``dtype`` is given."""
    _check("new_tensor", device, layout, pin_memory, like=True)
    arr = _to_array(data, _like_dtype(like, dtype, "new_tensor"))
    return _finish(arr, "new_tensor", requires_grad)


# -- ranges ------------------------------------------------------------------------------------
def _as_out_shape(values: np.ndarray, out) -> np.ndarray:
    """PyTorch's range functions fill an ``out`` with as many elements keeping its shape."""
    if out is not None and isinstance(out, Tensor) and out._data.size == values.size:
        return values.reshape(out._data.shape)
    return values


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _number(v, op: str, name: str):
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise ShapeError(f"{op}: {name} must be a number or a one-element tensor, got shape "
                             f"{tuple(v.shape)}")
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a number, got {type(v).__name__}")
    return v


def arange(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
           requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Values from ``start`` up to (not including) ``end`` by ``step``.

    Integer arguments give int64; any float argument gives the default float dtype, as in
    PyTorch.

    Example::

        backprop.arange(5)            # tensor([0, 1, 2, 3, 4])
        backprop.arange(0, 1, 0.25)   # tensor([0.0000, 0.2500, 0.5000, 0.7500])
    """
    _check("arange", device, layout, pin_memory)
    if end is None:
        start, end = 0, start
    start, end, step = (_number(v, "arange", n) for v, n in ((start, "start"), (end, "end"),
                                                              (step, "step")))
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: upper bound and lower bound inconsistent with step sign "
                         f"(start={start}, end={end}, step={step})")
    if dtype is None:
        d = np.dtype(np.int64) if all(_is_int(v) for v in (start, end, step)) else _dt.default_float
    else:
        d = _dt.to_numpy_dtype(dtype)
    # The length is counted in double precision (as PyTorch does), then values cast.
    n = max(int(np.ceil((end - start) / step)), 0)
    values = start + step * np.arange(n, dtype=np.float64) if not all(
        _is_int(v) for v in (start, end, step)) else np.arange(start, end, step)
    return _finish(_as_out_shape(values.astype(d), out), "arange", requires_grad, out)


def linspace(start, end, steps: int, *, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive.

    Example::

        backprop.linspace(0, 1, 5)    # tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    """
    _check("linspace", device, layout, pin_memory)
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"linspace: number of steps must be a non-negative int, got {steps!r}")
    values = np.linspace(start, end, int(steps), dtype=np.float64)
    values = _as_out_shape(values.astype(_float_dtype(dtype, "linspace")), out)
    return _finish(values, "linspace", requires_grad, out)


def logspace(start, end, steps: int, base: float = 10.0, *, out=None, dtype=None, layout=None,
             device=None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """``steps`` values from ``base ** start`` to ``base ** end``, evenly spaced in log scale.

    Example::

        backprop.logspace(0, 2, 3)    # tensor([  1.,  10., 100.])
    """
    _check("logspace", device, layout, pin_memory)
    start, end = _number(start, "logspace", "start"), _number(end, "logspace", "end")
    base = _number(base, "logspace", "base")
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"logspace: number of steps must be a non-negative int, got {steps!r}")
    values = np.power(float(base), np.linspace(start, end, int(steps), dtype=np.float64))
    values = _as_out_shape(values.astype(_float_dtype(dtype, "logspace")), out)
    return _finish(values, "logspace", requires_grad, out)


def eye(n: int, m: int | None = None, *, out=None, dtype=None, layout=None, device=None,
        requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """The identity matrix of shape (n, m), m defaulting to n.

    Example::

        backprop.eye(2)   # tensor([[1., 0.], [0., 1.]])
    """
    _check("eye", device, layout, pin_memory)
    for name, v in (("n", n), ("m", n if m is None else m)):
        if not _is_int(v):
            raise TypeError(f"eye: {name} must be an int, got {type(v).__name__}")
        if v < 0:
            raise ShapeError(f"eye: {name} must be greater or equal to 0, got {v}")
    return _finish(np.eye(int(n), None if m is None else int(m), dtype=_float_dtype(dtype, "eye")),
                   "eye", requires_grad, out)


# -- random ------------------------------------------------------------------------------------
def rand(*size, generator=None, out=None, dtype=None, layout=None, device=None,
         requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Uniform random numbers in [0, 1), from the seeded generator (``manual_seed``).

    Example::

        backprop.rand(2, 3, device="cpu")
    """
    _check("rand", device, layout, pin_memory)
    d = _random_float(dtype, "rand")
    g = _random.generator(generator)
    return _finish(g.random(_size(size, "rand")).astype(d), "rand", requires_grad, out)


def randn(*size, generator=None, out=None, dtype=None, layout=None, device=None,
          requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Standard-normal random numbers, from the seeded generator (``manual_seed``).

    Example::

        w = backprop.randn(3, 5, requires_grad=True)
    """
    _check("randn", device, layout, pin_memory)
    d = _random_float(dtype, "randn")
    g = _random.generator(generator)
    return _finish(g.standard_normal(_size(size, "randn")).astype(d), "randn", requires_grad, out)


def _integers(g, low, high, size, op: str) -> np.ndarray:
    low, high = _number(low, op, "low"), _number(high, op, "high")
    if not (_is_int(low) and _is_int(high)):
        low, high = int(low), int(high)
    if low >= high:
        raise ValueError(f"{op}: expects 'low' to be less than 'high', but got low={low} >= "
                         f"high={high}")
    return g.integers(low, high, size=size)


def randint(low=0, high=None, size=None, *, generator=None, out=None, dtype=None, layout=None,
            device=None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Random integers in [low, high) of shape ``size`` (int64 unless ``dtype``).

    Called as PyTorch allows: ``randint(10, (3,))`` or ``randint(3, 10, (2, 2))``.

    Example::

        backprop.randint(0, 10, (4,))
    """
    _check("randint", device, layout, pin_memory)
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high  # randint(high, size)
    elif high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint(): missing the 'size' argument (a tuple of ints), as in "
                        "randint(0, 10, (3,))")
    size = _size(tuple(size) if isinstance(size, (tuple, list)) else (size,), "randint")
    d = np.dtype(np.int64) if dtype is None else _dt.to_numpy_dtype(dtype)
    g = _random.generator(generator)
    return _finish(_integers(g, low, high, size, "randint").astype(d), "randint", requires_grad,
                   out)


def randperm(n: int, *, generator=None, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64 unless ``dtype``).

    Example::

        backprop.randperm(5)
    """
    _check("randperm", device, layout, pin_memory)
    if not _is_int(n):
        raise TypeError(f"randperm: n must be an int, got {type(n).__name__}")
    if n < 0:
        raise ShapeError(f"randperm: n must be non-negative, got {n}")
    d = np.dtype(np.int64) if dtype is None else _dt.to_numpy_dtype(dtype)
    perm = _random.generator(generator).permutation(int(n)).astype(d)
    return _finish(perm, "randperm", requires_grad, out)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None, layout=None,
           device=None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Normal random numbers with the given ``mean`` and ``std`` (numbers or tensors).

    ``normal(mean_tensor, std)`` broadcasts the two; ``normal(0.0, 1.0, size)`` needs a
    size. It is ``mean + std * randn(...)``, so a gradient flows to tensor arguments, as in
    PyTorch.

    Example::

        backprop.normal(0.0, 2.0, (3,))
        backprop.normal(backprop.zeros(3), backprop.ones(3))
    """
    _check("normal", device, layout, pin_memory)
    tensors = [v for v in (mean, std) if isinstance(v, Tensor)]
    if not isinstance(std, Tensor):
        if _number(std, "normal", "std") < 0:
            raise ValueError(f"normal: expects std >= 0.0, but found std {std}")
    elif std.numel() and float(std._data.min()) < 0:
        raise ValueError(f"normal: expects all elements of std >= 0.0, found "
                         f"{float(std._data.min())}")
    g = _random.generator(generator)
    if not tensors:
        if size is None:
            raise TypeError("normal(): with a number mean and std, give a size: "
                            "normal(0.0, 1.0, (2, 3))")
        d = _random_float(dtype, "normal")
        arr = (_number(mean, "normal", "mean")
               + _number(std, "normal", "std") * g.standard_normal(_size((size,), "normal")))
        return _finish(arr.astype(d), "normal", requires_grad, out)
    if size is not None:
        raise TypeError("normal(): size is only taken with a number mean and std")
    shape = np.broadcast_shapes(*(t.shape for t in tensors))
    d = np.result_type(*(t._data.dtype for t in tensors))
    if d.kind != "f":
        raise DTypeError(f"normal: mean and std must be floating point, got {d}")
    noise = _make(g.standard_normal(shape).astype(d))
    result = mean + std * noise  # composite: the ops above give it its gradient
    if out is not None:
        return write_out(out, result, "normal")
    return result


def rand_like(input: Tensor, *, generator=None, dtype=None, layout=None, device=None,
              requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """Uniform random numbers in [0, 1) with ``input``'s shape and dtype."""
    _check("rand_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "rand_like")
    _dt.check_memory_format(memory_format, "rand_like", input.ndim)
    return rand(*input.shape, generator=generator, dtype=d, requires_grad=requires_grad)


def randn_like(input: Tensor, *, generator=None, dtype=None, layout=None, device=None,
               requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """Standard-normal random numbers with ``input``'s shape and dtype."""
    _check("randn_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "randn_like")
    _dt.check_memory_format(memory_format, "randn_like", input.ndim)
    return randn(*input.shape, generator=generator, dtype=d, requires_grad=requires_grad)


def randint_like(input: Tensor, low=0, high=None, *, generator=None, dtype=None, layout=None,
                 device=None, requires_grad: bool = False, pin_memory: bool = False,
                 memory_format=None) -> Tensor:
    """Random integers in [low, high) with ``input``'s shape and dtype.

    Example::

        backprop.randint_like(backprop.zeros(3), 10)   # floats in {0., ..., 9.}
    """
    _check("randint_like", device, layout, pin_memory, like=True)
    d = _like_dtype(input, dtype, "randint_like")
    if high is None:
        low, high = 0, low
    arr = _integers(_random.generator(generator), low, high, input.shape, "randint_like")
    return _finish(arr.astype(d), "randint_like", requires_grad, memory_format=memory_format)
