"""``Tensor``: an n-dimensional array that remembers how it was made.

A tensor holds a NumPy array, and, when it requires a gradient and was produced
by an op, the graph node (``grad_fn``) that made it. Operators and methods call
into ``backprop.ops``; nothing here does maths of its own.
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop import dtypes as _dt
from backprop.autograd.grad_mode import state as _state
from backprop.errors import DTypeError, GradError, InplaceError, ShapeError

_new = object.__new__


def _make(data, requires_grad: bool = False, grad_fn=None) -> "Tensor":
    """Wrap an array in a Tensor with no checks: the engine's fast path."""
    t = _new(Tensor)
    t._data = data
    t._requires_grad = requires_grad
    t.grad_fn = grad_fn
    t.grad = None
    t._version = 0
    t._hooks = None
    return t


_SCALARS = (numbers.Number, np.generic)
_OPERANDS = (numbers.Real, np.ndarray, np.generic)


class Tensor:
    """A NumPy-backed tensor with reverse-mode automatic differentiation.

    Create tensors with :func:`backprop.tensor`, :func:`backprop.zeros`,
    :func:`backprop.randn` and friends rather than this constructor.

    Example::

        x = backprop.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        y.backward()
        x.grad          # tensor([2., 4.])
    """

    __slots__ = ("_data", "_requires_grad", "grad_fn", "grad", "_version", "_hooks",
                 "__weakref__")

    # NumPy must hand mixed expressions (ndarray * Tensor) to our reflected operators.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        arr = _to_array(data, dtype)
        self._data = arr
        self._requires_grad = False
        self.grad_fn = None
        self.grad = None
        self._version = 0
        self._hooks = None
        if requires_grad:
            self.requires_grad_(True)

    # -- basic attributes ------------------------------------------------------
    @property
    def data(self) -> "Tensor":
        """A tensor sharing this one's storage but outside the graph (as ``x.data`` in PyTorch)."""
        return _make(self._data)

    @data.setter
    def data(self, value) -> None:
        arr = value._data if isinstance(value, Tensor) else np.asarray(value)
        self._data = arr

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> _dt.dtype:
        return _dt.from_numpy_dtype(self._data.dtype)

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by an op on tensors requiring grad."""
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Start (or stop) recording operations on this leaf tensor. Returns self."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise GradError("requires_grad_: you can only change requires_grad of leaf "
                                "tensors; use detach() to get a tensor outside the graph")
            return self
        if requires_grad and self._data.dtype.kind != "f":
            raise DTypeError(f"requires_grad_: only floating-point tensors can require "
                             f"gradients, but this tensor has dtype {self.dtype}")
        self._requires_grad = bool(requires_grad)
        return self

    def size(self, dim: int | None = None):
        if dim is None:
            return self._data.shape
        return self._data.shape[_norm_dim(dim, self._data.ndim, "size")]

    def numel(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.itemsize

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ShapeError(f"item: only one-element tensors can be converted to Python "
                             f"scalars, got shape {self._data.shape}")
        return self._data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied). Refused for tensors that require grad."""
        if self._requires_grad:
            raise GradError("numpy: can't call numpy() on a tensor that requires grad; "
                            "use tensor.detach().numpy()")
        return self._data

    def tolist(self):
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ShapeError(f"bool: the truth value of a tensor with {self._data.size} "
                             f"elements is ambiguous; use .any() or .all()")
        return bool(self._data.reshape(()).item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise DTypeError("__index__: only integer tensors of a single element can be "
                             "used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    # -- graph ---------------------------------------------------------------
    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, outside the graph (no grad_fn, no grad)."""
        return _make(self._data)

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self._requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that requires it.

        Args:
            gradient: d(something)/d(self), required unless self has one element.
            retain_graph: keep saved values so that backward can run through the graph again.
        """
        from backprop.autograd.engine import backward

        backward(self, gradient, retain_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self._requires_grad:
            raise GradError("retain_grad: can't retain_grad on a tensor that does not require grad")
        if self.grad_fn is None or getattr(self.grad_fn, "_retains", False):
            return
        import weakref

        ref = weakref.ref(self)

        def _retain(grad):
            t = ref()
            if t is not None:
                g = grad._data.copy()
                if t.grad is None:
                    t.grad = _make(g)
                else:
                    t.grad._data = t.grad._data + g

        self.grad_fn._retains = True
        self.register_hook(_retain)

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and getattr(self.grad_fn, "_retains", False)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a handle whose ``remove()`` detaches the hook.
        """
        if not self._requires_grad:
            raise GradError("register_hook: cannot register a hook on a tensor that doesn't "
                            "require gradient")
        if self.grad_fn is not None:
            return self.grad_fn.register_hook(hook)
        from backprop.autograd.hooks import RemovableHandle

        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    # -- in-place updates ------------------------------------------------------
    def _check_inplace(self, op: str) -> None:
        if self._requires_grad and _state.enabled:
            if self.grad_fn is None:
                raise InplaceError(f"{op}: a leaf tensor that requires grad is being used in an "
                                   f"in-place operation; wrap the update in backprop.no_grad()")
            raise InplaceError(f"{op}: in-place change of a tensor produced by "
                               f"{self.grad_fn.name()}, which is part of the autograd graph; "
                               f"use the out-of-place version")
        if self.grad_fn is not None and self.grad_fn.saved_tensors is not None:
            raise InplaceError(f"{op}: in-place change of a tensor produced by "
                               f"{self.grad_fn.name()} while its graph is still alive; backward "
                               f"would use the changed value")
        from backprop.autograd.function import tick

        self._version = tick()

    def _operand(self, other, op: str):
        if isinstance(other, Tensor):
            return other._data
        if isinstance(other, _OPERANDS):
            return other
        raise TypeError(f"{op}: expected a Tensor or a number, got {type(other).__name__}")

    def _assign(self, value: np.ndarray, op: str) -> "Tensor":
        try:
            np.copyto(self._data, np.broadcast_to(value, self._data.shape), casting="unsafe")
        except ValueError:
            raise ShapeError(f"{op}: a value of shape {np.shape(value)} can't be written into a "
                             f"tensor of shape {self._data.shape}") from None
        return self

    def add_(self, other, alpha=1) -> "Tensor":
        """self += alpha * other, in place."""
        self._check_inplace("add_")
        o = self._operand(other, "add_")
        return self._assign(self._data + (o if alpha == 1 else alpha * o), "add_")

    def sub_(self, other, alpha=1) -> "Tensor":
        self._check_inplace("sub_")
        o = self._operand(other, "sub_")
        return self._assign(self._data - (o if alpha == 1 else alpha * o), "sub_")

    def mul_(self, other) -> "Tensor":
        self._check_inplace("mul_")
        return self._assign(self._data * self._operand(other, "mul_"), "mul_")

    def div_(self, other) -> "Tensor":
        self._check_inplace("div_")
        return self._assign(self._data / self._operand(other, "div_"), "div_")

    def addcmul_(self, t1, t2, value=1) -> "Tensor":
        self._check_inplace("addcmul_")
        return self._assign(self._data + value * self._operand(t1, "addcmul_")
                            * self._operand(t2, "addcmul_"), "addcmul_")

    def addcdiv_(self, t1, t2, value=1) -> "Tensor":
        self._check_inplace("addcdiv_")
        return self._assign(self._data + value * self._operand(t1, "addcdiv_")
                            / self._operand(t2, "addcdiv_"), "addcdiv_")

    def zero_(self) -> "Tensor":
        self._check_inplace("zero_")
        self._data[...] = 0
        return self

    def fill_(self, value) -> "Tensor":
        self._check_inplace("fill_")
        return self._assign(self._operand(value, "fill_"), "fill_")

    def copy_(self, src) -> "Tensor":
        """Copy ``src`` (broadcast to this shape) into this tensor, in place."""
        self._check_inplace("copy_")
        return self._assign(self._operand(src, "copy_"), "copy_")

    def clamp_(self, min=None, max=None) -> "Tensor":  # noqa: A002 (PyTorch's names)
        self._check_inplace("clamp_")
        return self._assign(np.clip(self._data, min, max), "clamp_")

    def normal_(self, mean=0.0, std=1.0, generator=None) -> "Tensor":
        from backprop import random as _random

        self._check_inplace("normal_")
        g = _random.generator(generator)
        return self._assign(g.normal(mean, std, self._data.shape), "normal_")

    def uniform_(self, a=0.0, b=1.0, generator=None) -> "Tensor":
        from backprop import random as _random

        self._check_inplace("uniform_")
        g = _random.generator(generator)
        return self._assign(g.uniform(a, b, self._data.shape), "uniform_")

    # -- conversion ------------------------------------------------------------
    def to(self, *args, dtype=None, **kwargs) -> "Tensor":
        """Convert dtype (``x.to(backprop.float64)``); devices other than "cpu" are refused."""
        target = dtype
        for a in args:
            if isinstance(a, str) and a in ("cpu",):
                continue
            if isinstance(a, Tensor):
                target = a._data.dtype
            else:
                target = a
        device = kwargs.pop("device", None)
        if device not in (None, "cpu"):
            raise ValueError(f"to: device {device!r} is not available; backprop runs on the CPU")
        if target is None:
            return self
        return self.cast(target)  # installed by backprop.ops.elementwise

    def type(self, dtype=None):
        if dtype is None:
            return f"backprop.{self.dtype.name}"
        return self.to(dtype)

    def float(self) -> "Tensor":
        return self.to(_dt.float32)

    def double(self) -> "Tensor":
        return self.to(_dt.float64)

    def half(self) -> "Tensor":
        return self.to(_dt.float16)

    def long(self) -> "Tensor":
        return self.to(_dt.int64)

    def int(self) -> "Tensor":
        return self.to(_dt.int32)

    def bool(self) -> "Tensor":
        return self.to(_dt.bool_)

    def cpu(self) -> "Tensor":
        return self

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def contiguous(self) -> "Tensor":
        return self

    # -- printing --------------------------------------------------------------
    def __repr__(self) -> str:
        return _format(self)

    def __str__(self) -> str:
        return _format(self)

    def __format__(self, spec: str) -> str:
        if spec and self._data.size == 1:
            return format(self.item(), spec)
        return str(self)


def _to_array(data, dtype=None) -> np.ndarray:
    """Turn Python data, arrays or tensors into an array with PyTorch's default dtypes."""
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        arr = np.array([_to_array(x) for x in data])
    else:
        arr = data
    if dtype is not None:
        np_dtype = _dt.to_numpy_dtype(dtype)
        try:
            return np.array(arr, dtype=np_dtype)
        except (TypeError, ValueError) as e:
            raise DTypeError(f"tensor: can't convert {type(data).__name__} to {dtype}: {e}") from None
    try:
        out = np.array(arr)
    except ValueError as e:
        raise ShapeError(f"tensor: can't build a tensor from ragged data: {e}") from None
    kind = out.dtype.kind
    if kind == "f":
        if not isinstance(data, (np.ndarray, np.generic, Tensor)):
            out = out.astype(_dt.default_float)  # Python floats -> float32, as in PyTorch
    elif kind in "iu":
        if not isinstance(data, (np.ndarray, np.generic, Tensor)):
            out = out.astype(np.int64)
    elif kind == "b":
        pass
    elif kind == "O" or kind in "USV":
        raise DTypeError(f"tensor: can't make a tensor from data of type {type(data).__name__} "
                         f"(elements must be numbers)")
    if out.dtype not in _dt._BY_NP:
        raise DTypeError(f"tensor: unsupported dtype {out.dtype}")
    return out


def _flat(seq):
    stack = list(seq)
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        else:
            yield x


def _norm_dim(dim: int, ndim: int, op: str) -> int:
    lo = -max(ndim, 1)
    if not (lo <= dim < max(ndim, 1)):
        from backprop.errors import IndexOutOfRange

        raise IndexOutOfRange(f"{op}: dimension out of range (expected to be in range of "
                              f"[{lo}, {max(ndim, 1) - 1}], but got {dim})")
    return dim % max(ndim, 1)


def _format(t: Tensor) -> str:
    """PyTorch-like repr: ``tensor([1.0000, 2.5000], requires_grad=True)``."""
    arr = t._data
    prefix = "tensor("
    if arr.dtype.kind == "f" and arr.size:
        finite = arr[np.isfinite(arr)]
        integral = finite.size == 0 or bool(np.all(finite == np.round(finite)))
        big = finite.size and (np.abs(finite).max() >= 1e8 or
                               (np.abs(finite[finite != 0]).min(initial=1) < 1e-4))
        if integral and not big:
            fmt = {"float_kind": lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)}
        elif big:
            fmt = {"float_kind": lambda v: f"{v:.4e}"}
        else:
            fmt = {"float_kind": lambda v: f"{v:.4f}" if np.isfinite(v) else str(v)}
        body = np.array2string(arr, separator=", ", prefix=prefix, formatter=fmt,
                               threshold=1000, edgeitems=3, max_line_width=80)
    else:
        body = np.array2string(arr, separator=", ", prefix=prefix, threshold=1000,
                               edgeitems=3, max_line_width=80)
        if arr.dtype.kind == "b":
            body = body.replace("True", "True").replace("False", "False")
    extras = []
    if arr.dtype not in (np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_)) or \
            arr.size == 0:
        extras.append(f"dtype={t.dtype}")
    if arr.size == 0:
        body = "[]" if arr.ndim == 1 else body
        if arr.ndim > 1:
            extras.insert(0, f"size={arr.shape}")
            body = "[]"
    if t.grad_fn is not None:
        extras.append(f"grad_fn={t.grad_fn!r}")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"


# Operators and methods are attached by backprop.ops (see ops/__init__.py), so that
# every op lives next to its gradient and this file stays about the tensor itself.
