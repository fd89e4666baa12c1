"""Reductions over one, several or all dimensions, with ``keepdim``.

sum, mean, prod, var, std, norm, logsumexp; max/min in torch's three forms;
amax/amin (ties share the gradient); argmax/argmin (indices, no gradient).

Every reducing Function takes ``axes`` as a sorted tuple of non-negative dims
(``_axes`` builds it) and works on ``keepdims=True`` results internally, so its
backward can broadcast the reduced values against the input without reshaping.
"""
from __future__ import annotations

import builtins as _builtins
import math
import numbers
import warnings
from collections import namedtuple

import numpy as np

from backprop.autograd.function import Function, named
from backprop.errors import ShapeError
from backprop.ops._util import norm_dim, norm_dims, require_float, require_tensor
from backprop.tensor import Tensor, _make

_INT64 = np.dtype(np.int64)

#: What ``max(input, dim)`` / ``min(input, dim)`` return, like ``torch.return_types``.
# (mypy: the tuple types are named as torch.return_types are, not as the variables)
max_result = namedtuple("max", ("values", "indices"))  # type: ignore[name-match]
min_result = namedtuple("min", ("values", "indices"))  # type: ignore[name-match]


# -- helpers --------------------------------------------------------------------------

def _axes(dim, ndim: int, op: str) -> tuple:
    """``dim`` as a sorted tuple of axes: None or () means every axis, as in torch.

    A 0-d tensor accepts dim 0 / -1 (torch does) and has no axis to reduce.
    """
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    axes = norm_dims(dim, ndim, op)
    return axes if ndim else ()


def _keep(arr: np.ndarray, axes: tuple, keepdim: bool) -> np.ndarray:
    """Put the reduced axes back (size 1) so ``arr`` broadcasts against the input."""
    if keepdim or not axes:
        return arr
    return np.expand_dims(arr, axes)


def _drop(arr: np.ndarray, axes: tuple, keepdim: bool) -> np.ndarray:
    """The inverse of ``_keep``: remove the (size-1) reduced axes unless ``keepdim``."""
    if keepdim or not axes:
        return arr
    return arr.reshape([s for i, s in enumerate(arr.shape) if i not in axes])


def _spread(g: np.ndarray, in_shape: tuple, axes: tuple, keepdim: bool) -> np.ndarray:
    """``g`` (the reduced shape) copied back over the reduced axes: a new, writable array.

    (One allocation and one C-level broadcast copy: cheaper than expand_dims +
    broadcast_to, which are Python functions, and it hands the engine an array it owns.)
    """
    out = np.empty(in_shape, dtype=g.dtype)
    if not keepdim and axes:
        g = g.reshape(tuple(1 if i in axes else s for i, s in enumerate(in_shape)))
    np.copyto(out, g)
    return out


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def _check_nonempty(x: np.ndarray, axes: tuple, op: str) -> None:
    """Max-like reductions have no identity: reducing an empty dim is an error, as in torch."""
    for a in axes:
        if x.shape[a] == 0:
            raise ShapeError(f"{op}(): expected reduction dim {a} to have non-zero size, but the "
                             f"input has shape {x.shape}")


def _tie_grad(x, out_k, gk):
    """Route ``gk`` to the elements equal to the reduced value, split evenly among ties."""
    mask = x == out_k
    axes = tuple(i for i, (s, o) in enumerate(zip(x.shape, out_k.shape, strict=True))
                 if o == 1 and s != 1)
    count = mask.sum(axis=axes, keepdims=True, dtype=gk.dtype) if axes else mask.astype(gk.dtype)
    return mask * (gk / count)


# -- sum, mean, prod --------------------------------------------------------------------

class Sum(Function):
    """out = Σ x over axes;  dx = g broadcast back over those axes"""

    backward_name = "SumBackward0"  # (SumBackward1 when a dim is given: see sum())

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.in_shape = x.shape
        ctx.axes = axes
        ctx.keepdim = keepdim
        out = np.sum(x, axis=axes, keepdims=keepdim)
        if x.dtype.kind in "biu":
            out = out.astype(np.int64)
        return np.asarray(out)

    @staticmethod
    def backward(ctx, grad_output):
        return _spread(grad_output, ctx.in_shape, ctx.axes, ctx.keepdim), None, None


# forward's bookkeeping mirrors Sum.forward's: each primitive keeps its own (hot path).
class Mean(Function):
    """out = Σ x / n over axes;  dx = g / n broadcast back"""

    backward_name = "MeanBackward0"  # (MeanBackward1 when a dim is given: see mean())

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.in_shape = x.shape
        ctx.axes = axes
        ctx.keepdim = keepdim
        ctx.n = _count(x.shape, axes)
        total = np.add.reduce(x, axis=axes, keepdims=keepdim)
        if ctx.n:
            return np.asarray(total / ctx.n, dtype=x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing: NaN
            return np.asarray(np.true_divide(total, 0), dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output / ctx.n if ctx.n else grad_output
        if g.ndim == 0:  # the mean of everything (a loss): one fill
            out = np.empty(ctx.in_shape, dtype=grad_output.dtype)
            out.fill(g)
            return out, None, None
        return _spread(g.astype(grad_output.dtype, copy=False), ctx.in_shape, ctx.axes,
                       ctx.keepdim), None, None


class Prod(Function):
    """out = Π x over axes;  dx = g · Π_{j≠i} x_j"""

    backward_name = "ProdBackward0"  # (ProdBackward1 when a dim is given: see prod())

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        out = np.prod(x, axis=axes, keepdims=True)
        if x.dtype.kind in "biu":
            out = out.astype(np.int64)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, out)
            ctx.axes, ctx.keepdim = axes, keepdim
        return _drop(np.asarray(out), axes, keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        x, out_k = ctx.saved_tensors
        gk = _keep(grad_output, ctx.axes, ctx.keepdim)
        zero = x == 0
        if not zero.any():
            return gk * (out_k / x), None, None
        # NOTE: out / x is the product of the others only where x != 0. A slice with
        # one zero sends the product of its other elements to that zero and 0 to the
        # rest; a slice with two or more zeros has gradient 0 everywhere.
        n_zero = zero.sum(axis=ctx.axes, keepdims=True)
        safe = np.where(zero, 1, x)
        others = np.prod(safe, axis=ctx.axes, keepdims=True)
        grad = np.where(n_zero == 0, others / safe, np.where(zero & (n_zero == 1), others, 0))
        return gk * grad, None, None


# -- variance and standard deviation ----------------------------------------------------

def _centered(x, axes, correction, op):
    """x - mean(x) over axes, and the divisor max(0, n - correction)."""
    n = _count(x.shape, axes)
    if n - correction <= 0:
        warnings.warn(f"{op}(): degrees of freedom is <= 0 (correction={correction} with "
                      f"{n} elements per reduction); the result is inf or nan", UserWarning,
                      stacklevel=5)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.true_divide(np.sum(x, axis=axes, keepdims=True), n, dtype=x.dtype)
    return x - mean, _builtins.max(0, n - correction)


def _sum_sq(diff, axes):
    with np.errstate(over="ignore"):
        return np.sum(diff * diff, axis=axes, keepdims=True)


class Var(Function):
    """out = Σ (x - x̄)² / (n - c) over axes (c: correction);  dx = g · 2 (x - x̄) / (n - c)"""

    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        diff, denom = _centered(x, axes, correction, "var")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.true_divide(_sum_sq(diff, axes), denom, dtype=x.dtype)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(diff)
            ctx.axes, ctx.keepdim, ctx.denom = axes, keepdim, denom
        return _drop(out, axes, keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        (diff,) = ctx.saved_tensors
        gk = _keep(grad_output, ctx.axes, ctx.keepdim)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.true_divide(2 * gk, ctx.denom, dtype=gk.dtype)
            return diff * scale, None, None, None


class Std(Function):
    """out = √(Σ (x - x̄)² / (n - c)) (c: correction);  dx = g · (x - x̄) / ((n - c) · out)"""

    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        diff, denom = _centered(x, axes, correction, "std")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sqrt(np.true_divide(_sum_sq(diff, axes), denom, dtype=x.dtype))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(diff, out)
            ctx.axes, ctx.keepdim, ctx.denom = axes, keepdim, denom
        return _drop(out, axes, keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        diff, out_k = ctx.saved_tensors
        gk = _keep(grad_output, ctx.axes, ctx.keepdim)
        # NOTE: a constant slice has std 0 and an infinite slope; like torch we give it
        # gradient 0 (diff is 0 there too) rather than 0/0 = NaN.
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.true_divide(gk, np.where(out_k == 0, np.inf, out_k * ctx.denom),
                                   dtype=gk.dtype)
            return diff * scale, None, None, None


# -- max / min ----------------------------------------------------------------------------

class _ExtremumOver:
    """Shared body of amax and amin: ``f`` (``np.max`` or ``np.min``) over the axes."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        out = ctx.op.f(x, axis=axes, keepdims=True)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, out)
            ctx.axes, ctx.keepdim = axes, keepdim
        return _drop(np.asarray(out), axes, keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        x, out_k = ctx.saved_tensors
        # NOTE: at ties the maximum (minimum) is not differentiable; like torch, the
        # gradient is shared evenly among the tied elements (a subgradient, and symmetric).
        return _tie_grad(x, out_k, _keep(grad_output, ctx.axes, ctx.keepdim)), None, None


class AMax(_ExtremumOver, Function):
    """out = max x over axes;  dx = g · [x = out] / (number of elements equal to out)"""

    backward_name = 'AmaxBackward0'
    f = staticmethod(np.max)


class AMin(_ExtremumOver, Function):
    """out = min x over axes;  dx = g · [x = out] / (number of elements equal to out)"""

    backward_name = 'AminBackward0'
    f = staticmethod(np.min)


class PickAlongDim(Function):
    """out = x[..., index, ...] along dim (one index per slice);  dx = g at index, 0 elsewhere"""

    backward_name = 'MaxBackward0'

    @staticmethod
    def forward(ctx, x, index, dim, keepdim):
        # index has the input's shape with size 1 along dim (argmax(..., keepdims=True)).
        ctx.in_shape = x.shape
        if x.ndim == 0:
            return x.copy()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(index)
            ctx.dim, ctx.keepdim = dim, keepdim
        out = np.take_along_axis(x, index, axis=dim)
        return out if keepdim else np.squeeze(out, dim)

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.in_shape:
            return grad_output, None, None, None
        (index,) = ctx.saved_tensors
        # NOTE: at ties only the chosen index (the first one) gets the gradient, as torch's
        # max(dim) does: the indices returned and the gradient agree.
        g = grad_output if ctx.keepdim else np.expand_dims(grad_output, ctx.dim)
        grad = np.zeros(ctx.in_shape, dtype=grad_output.dtype)
        np.put_along_axis(grad, index, g, axis=ctx.dim)
        return grad, None, None, None


def _extremum(input, dim, keepdim, other, op):
    """The shared body of max/min: the full reduction, the (values, indices) form, or binary."""
    if isinstance(dim, Tensor) or other is not None:
        from backprop.ops import elementwise  # lazily: written alongside this module

        fn = getattr(elementwise, "maximum" if op == "max" else "minimum")
        return fn(input, dim if other is None else other)
    x = input._data
    if dim is None:
        if x.size == 0:
            raise ShapeError(f"{op}(): expected reduction dim to be specified for an empty "
                             f"input (shape {x.shape}); pass dim=")
        out = (AMax if op == "max" else AMin).apply(input, tuple(range(x.ndim)), False)
        return named(out, "MaxBackward1" if op == "max" else "MinBackward1")
    d = norm_dim(dim, x.ndim, op)
    if x.ndim == 0:
        index = np.zeros((), dtype=_INT64)
    else:
        _check_nonempty(x, (d,), op)
        index = (np.argmax if op == "max" else np.argmin)(x, axis=d, keepdims=True)
        index = index.astype(_INT64, copy=False)
    values = PickAlongDim.apply(input, index, d, keepdim)
    if op == "min":
        named(values, "MinBackward0")
    if values._requires_grad:  # backward keeps index: hand the user a copy to change freely
        index = index.copy()
    if x.ndim and not keepdim:
        index = np.squeeze(index, d)
    return (max_result if op == "max" else min_result)(values, _make(index))


def max(input, dim=None, keepdim=False, *, other=None):  # noqa: A001 (PyTorch's name)
    """The largest element, torch's three ways.

    ``max(input)``: a 0-d tensor (the gradient is shared evenly among ties).
    ``max(input, dim, keepdim=False)``: a named tuple ``(values, indices)``; the
    indices are int64 and the gradient flows to the chosen (first) index.
    ``max(input, other)``: the element-wise maximum of two tensors.

    Example::

        x = backprop.tensor([[1.0, 5.0], [4.0, 2.0]])
        x.max()                 # tensor(5.)
        x.max(dim=1).indices    # tensor([1, 0])
    """
    return _extremum(input, dim, keepdim, other, "max")


def min(input, dim=None, keepdim=False, *, other=None):  # noqa: A001 (PyTorch's name)
    """The smallest element: ``min(input)``, ``min(input, dim, keepdim)``, ``min(input, other)``.

    See :func:`max` for the three forms.
    """
    return _extremum(input, dim, keepdim, other, "min")


def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim`` (int or tuple; () for all); ties share the gradient evenly."""
    axes = _axes(dim, input.ndim, "amax")
    _check_nonempty(input._data, axes, "amax")
    return AMax.apply(input, axes, keepdim)


def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim`` (int or tuple; () for all); ties share the gradient evenly."""
    axes = _axes(dim, input.ndim, "amin")
    _check_nonempty(input._data, axes, "amin")
    return AMin.apply(input, axes, keepdim)


def _arg(input, dim, keepdim, np_fn, op):
    x = input._data
    if dim is None:
        if x.size == 0:
            raise ShapeError(f"{op}(): expected reduction dim to be specified for an empty "
                             f"input (shape {x.shape})")
        out = np.asarray(np_fn(x), dtype=_INT64)
        return _make(out.reshape((1,) * x.ndim) if keepdim else out)
    d = norm_dim(dim, x.ndim, op)
    if x.ndim == 0:
        return _make(np.zeros((), dtype=_INT64))
    _check_nonempty(x, (d,), op)
    return _make(np.asarray(np_fn(x, axis=d, keepdims=keepdim), dtype=_INT64))


def argmax(input, dim=None, keepdim=False):
    """Index of the largest element (first at ties), int64, no gradient.

    With ``dim=None`` the index is into the flattened tensor.
    """
    return _arg(input, dim, keepdim, np.argmax, "argmax")


def argmin(input, dim=None, keepdim=False):
    """Index of the smallest element (first at ties), int64, no gradient."""
    return _arg(input, dim, keepdim, np.argmin, "argmin")


# -- norm and logsumexp -------------------------------------------------------------------

class Norm(Function):
    """out = (Σ |x|ᵖ)^(1/p) (p = ±inf: max / min |x|);  dx = g · sign(x) (|x| / out)^(p-1)"""

    backward_name = 'LinalgVectorNormBackward0'

    @staticmethod
    def forward(ctx, x, p, axes, keepdim):
        if p == 2:
            if len(axes) == x.ndim and x.flags.c_contiguous:
                flat = x.reshape(-1)
                out = np.sqrt(np.dot(flat, flat)).reshape((1,) * x.ndim).astype(x.dtype)
            else:
                out = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
        else:
            a = np.abs(x)
            if p == 1:
                out = np.sum(a, axis=axes, keepdims=True)
            elif p == math.inf:
                out = np.max(a, axis=axes, keepdims=True)
            elif p == -math.inf:
                out = np.min(a, axis=axes, keepdims=True)
            elif p == 0:
                out = np.sum(x != 0, axis=axes, keepdims=True, dtype=x.dtype)
            else:
                with np.errstate(divide="ignore", over="ignore"):
                    out = np.power(np.sum(np.power(a, p), axis=axes, keepdims=True), 1.0 / p)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, out)
            ctx.p, ctx.axes, ctx.keepdim = p, axes, keepdim
        return _drop(np.asarray(out, dtype=x.dtype), axes, keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        x, out_k = ctx.saved_tensors
        p = ctx.p
        gk = _keep(grad_output, ctx.axes, ctx.keepdim)
        if p == 2:
            # NOTE: at the all-zero vector the norm has no gradient (a cone's tip); like
            # torch we return 0 there: x is 0 too, so only the 0/0 needs avoiding.
            return x * (gk / np.where(out_k == 0, 1, out_k)), None, None, None
        if p == 1:
            # NOTE: sign(0) = 0, the subgradient torch picks at the kink.
            return gk * np.sign(x), None, None, None
        if p == 0:
            return None, None, None, None
        if p in (math.inf, -math.inf):
            # NOTE: ties of |x| share the gradient evenly, as in amax.
            return np.sign(x) * _tie_grad(np.abs(x), out_k, gk), None, None, None
        # NOTE: where the norm is 0 the gradient is taken as 0 (as for p = 2), and for
        # p < 1 an element equal to 0 gets 0 instead of the infinite |x|^(p-1).
        a = np.abs(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t = np.power(a / np.where(out_k == 0, 1, out_k), p - 1)
        t = np.where((a == 0) | (out_k == 0), 0, t)
        return gk * np.sign(x) * t, None, None, None


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The vector p-norm over ``dim`` (all elements when None).

    p: 'fro' or 2 (Euclidean), 1, inf (max |x|), -inf (min |x|), 0 (number of
    non-zeros), or any other real number: (Σ |x|ᵖ)^(1/p).

    Example::

        backprop.tensor([3.0, 4.0]).norm()     # tensor(5.)
    """
    if dtype is not None:
        input = input.to(dtype)
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use 'fro', or a number "
                             f"(2, 1, inf, -inf, 0, ...)")
        p = 2
    elif not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"norm: p must be 'fro' or a number, got {type(p).__name__}")
    if p != p:
        raise ValueError(f"norm: p must be a number, got {p}")
    p = float(p) if p not in (1, 2, 0) else int(p)
    require_float(input, "norm")
    axes = _axes(dim, input.ndim, "norm")
    if p in (math.inf, -math.inf):
        _check_nonempty(input._data, axes, "norm")
    return Norm.apply(input, p, axes, keepdim)


class LogSumExp(Function):
    """out = m + ln Σ exp(x - m) over axes, m = max x;  dx = g · exp(x - m) / Σ exp(x - m)"""

    backward_name = 'LogsumexpBackward0'

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        if x.size == 0:  # the sum of no exponentials is 0, so the result is -inf
            m = np.zeros(tuple(1 if i in axes else s for i, s in enumerate(x.shape)), x.dtype)
        else:
            m = np.max(x, axis=axes, keepdims=True)
            # NOTE: a slice whose max is ±inf would give inf - inf = NaN; shifting it by 0
            # instead gives torch's answers: -inf for an all -inf slice, +inf with a +inf.
            if not np.isfinite(m).all():
                m = np.where(np.isinf(m), 0, m).astype(x.dtype, copy=False)
        e = np.asarray(x - m)
        np.exp(e, out=e)
        total = np.sum(e, axis=axes, keepdims=True)
        with np.errstate(divide="ignore"):
            out = np.log(total)
        out += m
        if ctx.needs_input_grad[0]:
            # Keeping exp(x - m) (rather than x) makes backward one multiply instead of
            # a subtract, an exp and a multiply: the softmax is e / total.
            ctx.save_for_backward(e, total)
            ctx.axes, ctx.keepdim = axes, keepdim
        return _drop(out, axes, keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        e, total = ctx.saved_tensors
        gk = _keep(grad_output, ctx.axes, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.asarray(gk / total)
        # NOTE: an all -inf slice has total 0, and torch's gradient there is NaN; the
        # output does not depend on such a slice, so we return 0 for it instead.
        dead = total == 0
        if dead.any():
            scale = np.where(dead, 0, scale).astype(gk.dtype, copy=False)
        if np.isinf(total).any():  # a +inf logit: NaN at it, 0 elsewhere, as in torch
            with np.errstate(invalid="ignore"):
                return e * scale, None, None
        return e * scale, None, None


def logsumexp(input, dim, keepdim=False):
    """log Σ exp(input) over ``dim`` (int or tuple), computed without overflow.

    Example::

        backprop.logsumexp(backprop.tensor([1e4, 1e4]), 0)    # tensor(10000.6934)
    """
    if input._data.dtype.kind != "f":
        input = input.float()
    return LogSumExp.apply(input, _axes(dim, input.ndim, "logsumexp"), keepdim)


# -- public functions ----------------------------------------------------------------------

def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 (PyTorch's name)
    """Sum over ``dim`` (an int, a tuple, or None for all)."""
    if dtype is not None:
        input = input.to(dtype)
    out = Sum.apply(input, _axes(dim, input.ndim, "sum"), keepdim)
    return out if dim is None else named(out, "SumBackward1")  # PyTorch's dim overload


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Arithmetic mean over ``dim``; floating-point tensors only."""
    if dtype is not None:
        input = input.to(dtype)
    require_float(input, "mean")
    out = Mean.apply(input, _axes(dim, input._data.ndim, "mean"), keepdim)
    return out if dim is None else named(out, "MeanBackward1")  # PyTorch's dim overload


def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product over ``dim`` (one int, or None for all elements); exact gradients at zeros."""
    if dtype is not None:
        input = input.to(dtype)
    axes = tuple(range(input.ndim)) if dim is None else _axes(norm_dim(dim, input.ndim, "prod"),
                                                             input.ndim, "prod")
    out = Prod.apply(input, axes, keepdim if dim is not None else False)
    return out if dim is None else named(out, "ProdBackward1")  # PyTorch's dim overload


def _correction(dim, unbiased, correction, op):
    """Resolve torch's overloads: (dim, *, correction), (dim, unbiased), (unbiased)."""
    if isinstance(dim, bool):  # var(x, True): the old (input, unbiased) form
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass either unbiased= or correction=, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    elif not isinstance(correction, numbers.Real) or isinstance(correction, bool):
        raise TypeError(f"{op}: correction must be a number, got {type(correction).__name__}")
    return dim, correction


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim``: Σ (x - mean)² / (n - correction); correction defaults to 1.

    Also takes torch's older ``unbiased`` flag (True: correction 1, False: 0).

    Example::

        backprop.tensor([1.0, 2.0, 3.0, 4.0]).var()    # tensor(1.6667)
    """
    dim, correction = _correction(dim, unbiased, correction, "var")
    require_float(input, "var")
    return Var.apply(input, _axes(dim, input.ndim, "var"), correction, keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over ``dim``: √var; see :func:`var` for ``correction``/``unbiased``."""
    dim, correction = _correction(dim, unbiased, correction, "std")
    require_float(input, "std")
    return Std.apply(input, _axes(dim, input.ndim, "std"), correction, keepdim)


__all__ = ["sum", "mean", "prod", "var", "std", "max", "min", "amax", "amin", "argmax",
           "argmin", "norm", "logsumexp"]

TENSOR_METHODS = {
    "sum": sum, "mean": mean, "prod": prod, "var": var, "std": std, "max": max, "min": min,
    "amax": amax, "amin": amin, "argmax": argmax, "argmin": argmin, "norm": norm,
    "logsumexp": logsumexp,
}


# -- scans, sorting and truth reductions -------------------------------------------------

class CumSum(Function):
    """out_i = Σ_{j ≤ i} x_j along dim;  dx_j = Σ_{i ≥ j} g_i (a reversed cumulative sum)"""

    backward_name = 'CumsumBackward0'

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        out = np.cumsum(x, axis=dim)
        return out.astype(np.int64) if x.dtype.kind in "biu" else out

    @staticmethod
    def backward(ctx, grad_output):
        flipped = np.flip(grad_output, axis=ctx.dim)
        return np.flip(np.cumsum(flipped, axis=ctx.dim), axis=ctx.dim), None


def cumsum(input, dim, *, dtype=None):
    """Cumulative sum along ``dim``."""
    return cumulative(CumSum, input, dim, dtype, "cumsum")


def cumulative(scan, input, dim, dtype, op: str):
    """Apply the scan primitive ``scan`` (CumSum, CumProd) along ``dim``, after casting to
    ``dtype`` when one is given; a 0-d tensor gives a copy of itself."""
    require_tensor(input, op)
    if dtype is not None:
        input = input.to(dtype)
    d = norm_dim(dim, input.ndim, op)
    if input.ndim == 0:
        return input * 1
    return scan.apply(input, d)


# (mypy: the tuple types are named as torch.return_types are, not as the variables)
sort_result = namedtuple("sort", ("values", "indices"))  # type: ignore[name-match]
topk_result = namedtuple("topk", ("values", "indices"))  # type: ignore[name-match]


def sort(input, dim=-1, descending=False, stable=False):
    """Sorted values along ``dim`` and their indices; gradients flow to the picked elements.

    Ties keep their original order (a stable sort), so the result is deterministic.
    """
    from backprop.ops.indexing import gather

    if input.ndim == 0:
        return sort_result(input * 1, _make(np.zeros((), dtype=np.int64)))
    d = norm_dim(dim, input.ndim, "sort")
    data = input._data
    idx = np.argsort(-data if descending and data.dtype.kind != "b" else data, axis=d,
                     kind="stable")
    if descending and data.dtype.kind == "b":
        idx = np.flip(np.argsort(data, axis=d, kind="stable"), axis=d)
    idx = _make(idx.astype(np.int64))
    return sort_result(gather(input, d, idx), idx)


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort ``input`` along ``dim``."""
    return sort(input, dim, descending, stable).indices


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 (PyTorch's name)
    """The ``k`` largest (or smallest) values along ``dim`` and their indices."""
    d = norm_dim(dim, input.ndim, "topk")
    n = input.shape[d] if input.ndim else 1
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ShapeError(f"topk: k ({k}) is out of range for dimension {d} of size {n}")
    values, indices = sort(input, d, descending=largest)
    from backprop.ops.shape import narrow

    if input.ndim == 0:
        return topk_result(values, indices)
    return topk_result(narrow(values, d, 0, k), narrow(indices, d, 0, k))


def _truth(np_fn, name):
    def reduce_(input, dim=None, keepdim=False):
        data = input._data
        if dim is None:
            return _make(np.asarray(np_fn(data)))
        axes = norm_dims(dim, data.ndim, name)
        return _make(np.asarray(np_fn(data, axis=axes, keepdims=keepdim)))
    reduce_.__name__ = name
    reduce_.__doc__ = f"``{name}`` over ``dim`` (or everything): a bool tensor, no gradient."
    return reduce_


any = _truth(np.any, "any")  # noqa: A001 (PyTorch's name)
all = _truth(np.all, "all")  # noqa: A001 (PyTorch's name)

__all__ += ["cumsum", "sort", "argsort", "topk", "any", "all"]
TENSOR_METHODS.update({"cumsum": cumsum, "sort": sort, "argsort": argsort, "topk": topk,
                       "any": any, "all": all})

