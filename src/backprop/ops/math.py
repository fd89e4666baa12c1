"""More of PyTorch's tensor maths: rounding, trigonometry and hyperbolic functions, erf and
erfinv, logarithms in other bases, fmod, lerp, logaddexp, xlogy, nan_to_num; cumprod,
median / kthvalue / mode, the ``*_mean`` pairs, diff; diagonals, roll, stacking helpers,
meshgrid, repeat_interleave, tensordot, kron, block_diag and ``Tensor.unfold``.

Primitives (one Function each, forward beside backward) where PyTorch has a gradient
formula of its own; everything else is written from primitives and has no backward.
"""
from __future__ import annotations

import builtins as _builtins
import math as _math
import numbers
from collections import namedtuple

import numpy as np

from backprop import dtypes as _dt
from backprop.autograd.function import Function, named
from backprop.autograd.grad_mode import no_grad
from backprop.errors import DTypeError, ShapeError
from backprop.ops import _special
from backprop.ops._util import (
    TracksView,
    as_tensor,
    check_operand,
    fix_float,
    norm_dim,
    same_source_dtype,
)
from backprop.ops._util import require_tensor as _tensor
from backprop.ops.elementwise import _broadcast_error, _operands, as_float, sub
from backprop.ops.reduce import cumulative
from backprop.tensor import Tensor, _make


# -- element-wise, one input: out = f(x), dx = g · f'(x) ------------------------------------
class _Unary:
    """Shared body of the smooth one-input ops below: integers become float32 (PyTorch's
    default dtype); the subclass gives ``f`` and ``df``, where ``df`` reads the input
    (``uses_out = False``) or the output (``uses_out = True``), whichever it needs."""

    uses_out = False

    @staticmethod
    def forward(ctx, x):
        x = as_float(x)
        with np.errstate(all="ignore"):
            out = np.asarray(ctx.op.f(x)).astype(x.dtype, copy=False)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out if ctx.op.uses_out else x)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (v,) = ctx.saved_tensors
        with np.errstate(all="ignore"):
            return grad_output * ctx.op.df(v)


class Tan(_Unary, Function):
    """out = tan x;  dx = g · (1 + out²)"""

    uses_out = True
    f = staticmethod(np.tan)
    df = staticmethod(lambda out: 1 + out * out)


class Sinh(_Unary, Function):
    """out = sinh x;  dx = g · cosh x"""

    f = staticmethod(np.sinh)
    df = staticmethod(np.cosh)


class Cosh(_Unary, Function):
    """out = cosh x;  dx = g · sinh x"""

    f = staticmethod(np.cosh)
    df = staticmethod(np.sinh)


class Asin(_Unary, Function):
    """out = arcsin x;  dx = g / √(1 - x²)"""

    f = staticmethod(np.arcsin)
    df = staticmethod(lambda x: 1 / np.sqrt(1 - x * x))


class Acos(_Unary, Function):
    """out = arccos x;  dx = -g / √(1 - x²)"""

    f = staticmethod(np.arccos)
    df = staticmethod(lambda x: -1 / np.sqrt(1 - x * x))


class Atan(_Unary, Function):
    """out = arctan x;  dx = g / (1 + x²)"""

    f = staticmethod(np.arctan)
    df = staticmethod(lambda x: 1 / (1 + x * x))


_TWO_OVER_SQRT_PI = 2 / _math.sqrt(_math.pi)


class Erf(_Unary, Function):
    """out = erf x = 2/√π ∫₀ˣ e^(-t²) dt;  dx = g · 2/√π · e^(-x²)"""

    f = staticmethod(_special.erf)
    df = staticmethod(lambda x: _TWO_OVER_SQRT_PI * np.exp(-x * x))


class Erfc(_Unary, Function):
    """out = erfc x = 1 - erf x;  dx = -g · 2/√π · e^(-x²)"""

    f = staticmethod(_special.erfc)
    df = staticmethod(lambda x: -_TWO_OVER_SQRT_PI * np.exp(-x * x))


def _erfinv(y: np.ndarray) -> np.ndarray:
    """The inverse of erf on (-1, 1): ±inf at ±1, NaN outside.

    A starting guess (M. Giles, "Approximating the erfinv function", 2010), then
    Newton steps on erf(x) - y, whose slope 2/√π·e^(-x²) is known exactly.
    """
    w = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        t = -np.log((1.0 - w) * (1.0 + w))
        central = t < 5.0
        tc, tt = t - 2.5, np.sqrt(t) - 3.0
        pc = np.polyval([2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                         0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
                         1.50140941], tc)
        pt = np.polyval([-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                         0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
                         2.83297682], tt)
        x = np.abs(np.where(central, pc, pt) * w)
        a = np.abs(w)
        tail = a > 0.5
        q = 1.0 - a  # exact for a > 0.5: the tail solves erfc(x) = q to full relative precision
        for _ in range(3):
            err = np.where(tail, q - _special.erfc(x), _special.erf(x) - a)
            x = x - err / (_TWO_OVER_SQRT_PI * np.exp(-x * x))
        x = np.copysign(x, w)
        x = np.where(np.abs(w) == 1, np.copysign(np.inf, w), x)
        x = np.where(np.abs(w) > 1, np.nan, x)
    return x


class Erfinv(_Unary, Function):
    """out = erf⁻¹(x);  dx = g · √π/2 · e^(out²)"""

    uses_out = True
    f = staticmethod(_erfinv)
    df = staticmethod(lambda out: (_math.sqrt(_math.pi) / 2) * np.exp(out * out))


class Log2(_Unary, Function):
    """out = log₂ x;  dx = g / (x · ln 2)"""

    f = staticmethod(np.log2)
    df = staticmethod(lambda x: 1 / (x * _math.log(2)))


class Log10(_Unary, Function):
    """out = log₁₀ x;  dx = g / (x · ln 10)"""

    f = staticmethod(np.log10)
    df = staticmethod(lambda x: 1 / (x * _math.log(10)))


class Reciprocal(_Unary, Function):
    """out = 1 / x;  dx = -g · out²"""

    uses_out = True
    f = staticmethod(np.reciprocal)
    df = staticmethod(lambda out: -(out * out))


# -- rounding: piecewise constant, so the gradient is zero (as in PyTorch) -------------------
class _Step:
    """Shared body of floor/ceil/round/trunc: integers pass through unchanged (PyTorch
    returns a copy); the gradient is zeros of the input's shape, not None."""

    @staticmethod
    def forward(ctx, x, *args):
        if x.dtype.kind in "biu":
            return x.copy()
        return ctx.op.f(x, *args)

    @staticmethod
    def backward(ctx, grad_output):
        # NOTE: the derivative is 0 wherever it exists and taken as 0 at the jumps.
        return (np.zeros_like(grad_output),) + (None,) * (len(ctx.needs_input_grad) - 1)


class Floor(_Step, Function):
    """out = ⌊x⌋;  dx = 0"""

    f = staticmethod(np.floor)


class Ceil(_Step, Function):
    """out = ⌈x⌉;  dx = 0"""

    f = staticmethod(np.ceil)


class Trunc(_Step, Function):
    """out = x rounded toward zero;  dx = 0"""

    f = staticmethod(np.trunc)


class Round(_Step, Function):
    """out = x rounded to ``decimals`` places, halves to even;  dx = 0"""

    f = staticmethod(lambda x, decimals: np.round(x, decimals))


def floor(input):
    """⌊input⌋ element-wise; the gradient is zero. Example: ``backprop.floor(t)``."""
    return Floor.apply(_tensor(input, "floor"))


def ceil(input):
    """⌈input⌉ element-wise; the gradient is zero."""
    return Ceil.apply(_tensor(input, "ceil"))


def trunc(input):
    """input rounded toward zero; the gradient is zero."""
    return Trunc.apply(_tensor(input, "trunc"))


fix = trunc


def round(input, *, decimals=0):  # noqa: A001 (PyTorch's name)
    """input rounded to ``decimals`` places (halves to even, as PyTorch); the gradient is zero.

    Example::

        backprop.round(backprop.tensor([0.5, 1.5, 1.234]), decimals=0)   # [0., 2., 1.]
    """
    if not isinstance(decimals, (int, np.integer)) or isinstance(decimals, bool):
        raise TypeError(f"round: decimals must be an int, got {decimals!r}")
    out = Round.apply(_tensor(input, "round"), int(decimals))
    return named(out, "RoundBackward1") if decimals else out


def frac(input):
    """input - trunc(input): the fractional part, with the sign of input; dx = g."""
    x = _tensor(input, "frac")
    if x._data.dtype.kind != "f":
        raise DTypeError(f"frac: expected a floating-point tensor, got {x.dtype}")
    return sub(x, trunc(x))


def _unary_fn(cls, name, doc):
    def fn(input):
        return cls.apply(_tensor(input, name))
    fn.__name__ = name
    fn.__doc__ = doc
    return fn


tan = _unary_fn(Tan, "tan", "Tangent element-wise (radians); integers give float32.")
sinh = _unary_fn(Sinh, "sinh", "Hyperbolic sine element-wise.")
cosh = _unary_fn(Cosh, "cosh", "Hyperbolic cosine element-wise.")
asin = _unary_fn(Asin, "asin", "Arcsine element-wise (NaN outside [-1, 1]).")
acos = _unary_fn(Acos, "acos", "Arccosine element-wise (NaN outside [-1, 1]).")
atan = _unary_fn(Atan, "atan", "Arctangent element-wise.")
erf = _unary_fn(Erf, "erf", "The error function element-wise.")
erfc = _unary_fn(Erfc, "erfc", "The complementary error function 1 - erf(x), element-wise.")
erfinv = _unary_fn(Erfinv, "erfinv", "The inverse error function on (-1, 1) (±inf at ±1).")
log2 = _unary_fn(Log2, "log2", "Base-2 logarithm element-wise.")
log10 = _unary_fn(Log10, "log10", "Base-10 logarithm element-wise.")
reciprocal = _unary_fn(Reciprocal, "reciprocal", "1 / input element-wise; integers give float32.")
arcsin, arccos, arctan = asin, acos, atan


# -- element-wise, two inputs ---------------------------------------------------------------
def _binary_forward(op, np_fn, a, b):
    try:
        with np.errstate(all="ignore"):
            return np.asarray(np_fn(a, b))
    except ValueError:
        raise _broadcast_error(op, a, b) from None


def _float_pair(a, b):
    """Integer operands of a float-valued binary op become the default float dtype."""
    if np.result_type(a, b).kind != "f":
        d = _dt.default_float
        a = np.asarray(a, dtype=d) if isinstance(a, np.ndarray) else float(a)
        b = np.asarray(b, dtype=d) if isinstance(b, np.ndarray) else float(b)
    return a, b


class Atan2(Function):
    """out = atan2(a, b), the angle of the point (b, a);
    da = g · b / (a² + b²),  db = -g · a / (a² + b²)  (0 at a = b = 0)"""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _float_pair(a, b)
        out = fix_float(_binary_forward("atan2", np.arctan2, a, b), a, b)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        with np.errstate(all="ignore"):
            r2 = a * a + b * b
            # NOTE: at the origin the angle has no derivative; PyTorch's gradient there is
            # 0 (not the NaN of 0/0), so is ours.
            scale = np.where(r2 == 0, 0, grad_output / r2).astype(grad_output.dtype, copy=False)
        return (scale * b if ctx.needs_input_grad[0] else None,
                -scale * a if ctx.needs_input_grad[1] else None)


class Fmod(Function):
    """out = a - trunc(a / b) · b (the sign of a, as C's fmod);
    da = g,  db = -g · trunc(a / b)"""

    backward_name = staticmethod(
        lambda ctx: "FmodBackward1" if _operands(ctx) == "tensor-tensor" else "FmodBackward0")

    @staticmethod
    def forward(ctx, a, b):
        if np.result_type(a, b).kind in "iu" and np.any(np.equal(b, 0)):
            raise ZeroDivisionError("fmod: ZeroDivisionError (an integer division by zero)")
        out = fix_float(_binary_forward("fmod", np.fmod, a, b), a, b)
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        gb = None
        if ctx.needs_input_grad[1]:
            a, b = ctx.saved_tensors
            with np.errstate(all="ignore"):
                gb = -grad_output * np.trunc(np.true_divide(a, b))
        return (grad_output if ctx.needs_input_grad[0] else None), gb


class LogAddExp(Function):
    """out = ln(eᵃ + eᵇ), computed without overflow;
    da = g · e^(a - out),  db = g · e^(b - out)"""

    backward_name = "LogaddexpBackward0"

    @staticmethod
    def forward(ctx, a, b):
        a, b = _float_pair(a, b)
        out = fix_float(_binary_forward("logaddexp", np.logaddexp, a, b), a, b)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        a, b, out = ctx.saved_tensors
        with np.errstate(all="ignore"):
            return (grad_output * np.exp(a - out) if ctx.needs_input_grad[0] else None,
                    grad_output * np.exp(b - out) if ctx.needs_input_grad[1] else None)


class XLogY(Function):
    """out = x · ln y, and 0 where x = 0 (unless y is NaN);
    dx = g · ln y (0 where x = 0 and y ≤ 0),  dy = g · x / y"""

    backward_name = staticmethod(lambda ctx: {"tensor-tensor": "XlogyBackward0",
                                              "scalar-tensor": "XlogyBackward1",
                                              "tensor-scalar": "XlogyBackward2"}[_operands(ctx)])

    @staticmethod
    def forward(ctx, x, y):
        x, y = _float_pair(x, y)
        with np.errstate(all="ignore"):
            out = _binary_forward("xlogy", lambda p, q: p * np.log(q), x, y)
            out = np.where((np.equal(x, 0) & ~np.isnan(y)), 0, out).astype(out.dtype)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(x, y)
        return fix_float(out, x, y)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        gx = gy = None
        with np.errstate(all="ignore"):
            if ctx.needs_input_grad[0]:
                # NOTE: PyTorch's choice: 0 only where x = 0 and y <= 0 (there ln y is
                # -inf or NaN); elsewhere ln y, x = 0 included.
                gx = np.where(np.equal(x, 0) & np.less_equal(y, 0), 0,
                              grad_output * np.log(y)).astype(grad_output.dtype)
            if ctx.needs_input_grad[1]:
                gy = grad_output * x / y
        return gx, gy


def _binary_fn(cls, name, doc):
    def fn(input, other):
        return cls.apply(check_operand(input, name), check_operand(other, name))
    fn.__name__ = name
    fn.__doc__ = doc
    return fn


atan2 = _binary_fn(Atan2, "atan2", "atan2(input, other): the angle of the point (other, input), "
                   "in (-π, π], broadcasting.")
arctan2 = atan2
fmod = _binary_fn(Fmod, "fmod", "The remainder of input / other with input's sign (C's fmod); "
                  "compare ``remainder``, which takes other's sign.")
logaddexp = _binary_fn(LogAddExp, "logaddexp", "ln(e^input + e^other) without overflow.")
xlogy = _binary_fn(XLogY, "xlogy", "input · ln(other), taken as 0 where input is 0.")


class NanToNum(Function):
    """out = x with NaN, +inf, -inf replaced by given numbers;  dx = g where x is finite, else 0"""

    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(np.isfinite(x))
        if x.dtype.kind != "f":
            return x.copy()
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, grad_output):
        (finite,) = ctx.saved_tensors
        return grad_output * finite, None, None, None


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (defaults: 0 and the dtype's
    largest / lowest finite values), as PyTorch.

    Example::

        backprop.nan_to_num(backprop.tensor([float("nan"), float("inf"), 1.0]))
    """
    return NanToNum.apply(_tensor(input, "nan_to_num"), nan, posinf, neginf)


def lerp(input, end, weight):
    """input + weight · (end - input), broadcasting; ``weight`` a number or a tensor.

    Example::

        backprop.lerp(backprop.zeros(3), backprop.ones(3), 0.25)   # [0.25, 0.25, 0.25]
    """
    _tensor(input, "lerp")
    end = check_operand(end, "lerp")
    weight = check_operand(weight, "lerp")
    try:
        np.broadcast_shapes(input.shape, np.shape(end._data if isinstance(end, Tensor) else end),
                            np.shape(weight._data if isinstance(weight, Tensor) else weight))
    except ValueError:
        raise ShapeError(f"lerp: shapes {tuple(input.shape)}, {tuple(np.shape(end))} and "
                         f"{tuple(np.shape(weight))} cannot be broadcast together") from None
    return input + weight * (end - input)


def _logical(np_fn, name):
    def fn(input, other):
        a = input._data if isinstance(input, Tensor) else np.asarray(input)
        other = check_operand(other, name)
        b = other._data if isinstance(other, Tensor) else other
        return _make(_binary_forward(name, np_fn, a, b))
    fn.__name__ = name
    fn.__doc__ = f"Element-wise ``{name}`` (non-zero is True): a bool tensor, no gradient."
    return fn


logical_and = _logical(np.logical_and, "logical_and")
logical_or = _logical(np.logical_or, "logical_or")
logical_xor = _logical(np.logical_xor, "logical_xor")


def signbit(input):
    """True where the sign bit is set (negative numbers and -0.0): a bool tensor."""
    return _make(np.asarray(np.signbit(_tensor(input, "signbit")._data)))


# -- scans and order statistics -------------------------------------------------------------
class CumProd(Function):
    """out_i = Π_{j ≤ i} x_j along dim;  dx_k = Σ_{i ≥ k} g_i · Π_{j ≤ i, j ≠ k} x_j"""

    backward_name = "CumprodBackward0"

    @staticmethod
    def forward(ctx, x, dim):
        out = np.cumprod(x, axis=dim)
        if x.dtype.kind in "biu":
            out = out.astype(np.int64)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, out)
            ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, out = ctx.saved_tensors
        x, out, g = (np.moveaxis(a, ctx.dim, -1) for a in (x, out, grad_output))
        n = x.shape[-1]
        with np.errstate(all="ignore"):
            # Where a slice has no zero: reversed cumsum of g·out, divided by x.
            grad = np.flip(np.cumsum(np.flip(g * out, -1), -1), -1) / x
        zero = (x == 0).any(-1)
        if zero.any():
            # NOTE: a slice with a zero can't divide by it: there each dx_k is summed
            # directly, from the products of the slice with x_k replaced by 1 (n² work,
            # only for those slices).
            xs, gs = x[zero], g[zero]                                  # (m, n)
            rep = np.repeat(xs[:, None, :], n, axis=1)                 # (m, k, j)
            rep[:, np.arange(n), np.arange(n)] = 1
            prods = np.cumprod(rep, axis=-1)                           # Π_{j ≤ i, j ≠ k}
            after = np.triu(np.ones((n, n), dtype=bool))               # i ≥ k
            grad[zero] = (prods * gs[:, None, :] * after).sum(-1)
        return np.moveaxis(grad, -1, ctx.dim).astype(grad_output.dtype, copy=False), None


def cumprod(input, dim, *, dtype=None):
    """Cumulative product along ``dim``; the gradient is right with zeros in the input too.

    Example::

        backprop.cumprod(backprop.tensor([1., 2., 3.]), 0)    # [1., 2., 6.]
    """
    return cumulative(CumProd, input, dim, dtype, "cumprod")


# (mypy: the tuple types are named as torch.return_types are, not as the variables)
median_result = namedtuple("median", ("values", "indices"))  # type: ignore[name-match]
kthvalue_result = namedtuple("kthvalue", ("values", "indices"))  # type: ignore[name-match]
mode_result = namedtuple("mode", ("values", "indices"))  # type: ignore[name-match]
aminmax_result = namedtuple("aminmax", ("min", "max"))  # type: ignore[name-match]


def _pick(input, d, idx, keepdim, name):
    """Values of ``input`` at ``idx`` (input's shape, size 1 along d), with their gradient."""
    from backprop.ops.reduce import PickAlongDim

    idx = idx.astype(np.int64, copy=False)
    values = named(PickAlongDim.apply(input, idx, d, keepdim), name)
    return values, _make(idx if keepdim else np.squeeze(idx, d))


def _sorted_position(input, dim, k):
    """Indices (size 1 along dim) of the k-th smallest element (0-based) of each slice;
    a slice holding NaN gives its first NaN, as NaN sorts above everything."""
    x = input._data
    order = np.argsort(x, axis=dim, kind="stable")  # NaN sorts last
    idx = np.take(order, [k], axis=dim)
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        has = nan.any(axis=dim, keepdims=True)
        if has.any():
            idx = np.where(has, np.argmax(nan, axis=dim, keepdims=True), idx)
    return idx


def median(input, dim=None, keepdim=False):
    """The median: the lower of the two middle values for an even count, as PyTorch.

    ``median(input)``: a 0-d tensor (ties share the gradient). ``median(input, dim,
    keepdim=False)``: a named tuple ``(values, indices)``; the gradient goes to the index.
    A slice holding NaN has median NaN.

    Example::

        backprop.median(backprop.tensor([3., 1., 4., 2.]))    # tensor(2.)
    """
    _tensor(input, "median")
    if dim is None:
        flat = input.reshape(-1)
        n = flat.shape[0]
        if n == 0:
            return _make(np.array(np.nan, dtype=input._data.dtype))
        idx = _sorted_position(flat, 0, (n - 1) // 2)
        value = flat._data[idx[0]]
        # NOTE: as PyTorch's median(), every element equal to the median shares the
        # gradient; the value is kept exact (value + 0) rather than averaged.
        ties = flat._data == value if value == value else np.isnan(flat._data)
        weight = _make((ties / ties.sum()).astype(flat._data.dtype))
        return named((flat - flat.detach()).mul(weight).sum() + _make(np.asarray(value)),
                     "MedianBackward0")
    d = norm_dim(dim, input.ndim, "median")
    if input.ndim == 0:
        return median_result(input * 1, _make(np.zeros((), dtype=np.int64)))
    n = input.shape[d]
    if n == 0:
        raise ShapeError(f"median(): expected reduction dim {d} to have non-zero size, but the "
                         f"input has shape {tuple(input.shape)}")
    idx = _sorted_position(input, d, (n - 1) // 2)
    return median_result(*_pick(input, d, idx, keepdim, "MedianBackward1"))


def kthvalue(input, k, dim=-1, keepdim=False):
    """The k-th smallest element (k from 1) along ``dim`` and its index, as PyTorch.

    Example::

        backprop.kthvalue(backprop.tensor([3., 1., 2.]), 2)   # values=2., indices=2
    """
    _tensor(input, "kthvalue")
    d = norm_dim(dim, input.ndim, "kthvalue")
    n = input.shape[d] if input.ndim else 1
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ShapeError(f"kthvalue(): selected number k ({k}) out of range for dimension "
                         f"{d} of size {n}")
    if input.ndim == 0:
        return kthvalue_result(input * 1, _make(np.zeros((), dtype=np.int64)))
    idx = _sorted_position(input, d, int(k) - 1)
    return kthvalue_result(*_pick(input, d, idx, keepdim, "KthvalueBackward0"))


def mode(input, dim=-1, keepdim=False):
    """The most frequent value along ``dim`` (the smallest among equally frequent ones)
    and the index of its last occurrence (PyTorch names one occurrence; which one, for long
    slices, is its implementation's choice)."""
    _tensor(input, "mode")
    d = norm_dim(dim, input.ndim, "mode")
    if input.ndim == 0:
        return mode_result(input * 1, _make(np.zeros((), dtype=np.int64)))
    x = np.moveaxis(input._data, d, -1)
    n = x.shape[-1]
    if n == 0:
        raise ShapeError(f"mode(): expected reduction dim {d} to have non-zero size")
    s = np.sort(x, axis=-1)
    # Each sorted element's count is the length of its run of equal values: from the
    # run's first position to its last.
    at = np.arange(n)
    starts = np.ones(s.shape, dtype=bool)
    starts[..., 1:] = s[..., 1:] != s[..., :-1]
    ends = np.ones(s.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, at, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, at, n - 1), -1), axis=-1), -1)
    best = np.argmax(last - first, axis=-1)  # the first longest run: the smallest value
    value = np.take_along_axis(s, best[..., None], -1)
    hits = x == value
    last = n - 1 - np.argmax(hits[..., ::-1], axis=-1)
    idx = np.moveaxis(last[..., None], -1, d)
    return mode_result(*_pick(input, d, idx, keepdim, "ModeBackward0"))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var(input, ...), mean(input, ...))`` in one call; arguments as :func:`var`."""
    from backprop.ops.reduce import mean, var

    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim=keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std(input, ...), mean(input, ...))`` in one call; arguments as :func:`std`."""
    from backprop.ops.reduce import mean, std

    return (std(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim=keepdim))


def aminmax(input, *, dim=None, keepdim=False):
    """``(min, max)`` over ``dim`` (or everything) as a named tuple; ties share gradients."""
    from backprop.ops.reduce import amax, amin

    _tensor(input, "aminmax")
    axes = () if dim is None else dim
    return aminmax_result(amin(input, axes, keepdim), amax(input, axes, keepdim))


def count_nonzero(input, dim=None):
    """The number of non-zero elements over ``dim`` (int or tuple; None: all); int64."""
    from backprop.ops._util import norm_dims

    x = _tensor(input, "count_nonzero")._data
    axes = None if dim is None else norm_dims(dim, x.ndim, "count_nonzero")
    return _make(np.asarray(np.count_nonzero(x, axis=axes), dtype=np.int64))


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along ``dim``: out[i] = x[i + 1] - x[i], applied n times.

    ``prepend`` / ``append`` are joined to ``input`` along ``dim`` first.

    Example::

        backprop.diff(backprop.tensor([1., 4., 9.]))     # [3., 5.]
    """
    from backprop.ops.shape import cat, narrow

    x = _tensor(input, "diff")
    if x.ndim == 0:
        raise ShapeError("diff: expects input to be at least one-dimensional")
    d = norm_dim(dim, x.ndim, "diff")
    parts = [p if p is None or isinstance(p, Tensor) else as_tensor(p, "diff", x)
             for p in (prepend, x, append)]
    parts = [p if p.ndim else p.expand(*x.shape[:d], 1, *x.shape[d + 1:])
             for p in parts if p is not None]
    if len(parts) > 1:
        x = cat(parts, d)
    for _ in range(int(n)):
        m = x.shape[d]
        if m == 0:
            break
        if x._data.dtype.kind == "b":
            x = logical_xor(narrow(x, d, 1, m - 1), narrow(x, d, 0, m - 1))
        else:
            x = narrow(x, d, 1, m - 1) - narrow(x, d, 0, m - 1)
    return x


# -- diagonals --------------------------------------------------------------------------------
def _diag_view(x: np.ndarray, offset: int, d1: int, d2: int) -> np.ndarray:
    """A view of the diagonal of ``x`` over dims d1, d2 (the diagonal as the last dim),
    writable when ``x`` is."""
    n1, n2 = x.shape[d1], x.shape[d2]
    size = max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))
    index = [slice(None)] * x.ndim
    if size:  # start at the diagonal's first element
        index[d2 if offset >= 0 else d1] = slice(abs(offset), None)
    start = x[tuple(index)]
    rest = [i for i in range(x.ndim) if i not in (d1, d2)]
    shape = tuple(x.shape[i] for i in rest) + (size,)
    strides = tuple(x.strides[i] for i in rest) + (x.strides[d1] + x.strides[d2],)
    return np.lib.stride_tricks.as_strided(start, shape, strides, writeable=x.flags.writeable)


class Diagonal(TracksView, Function):
    """out = the diagonal of x over dims d1, d2 (shifted by offset), a view;
    dx = g written onto that diagonal of zeros"""

    @staticmethod
    def forward(ctx, x, offset, d1, d2):
        ctx.args = (x.shape, offset, d1, d2)
        return _diag_view(x, offset, d1, d2)

    @staticmethod
    def backward(ctx, grad_output):
        shape, offset, d1, d2 = ctx.args
        grad = np.zeros(shape, dtype=grad_output.dtype)
        _diag_view(grad, offset, d1, d2)[...] = grad_output
        return grad, None, None, None


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal over ``dim1``, ``dim2`` (above it for offset > 0), as a new last dim;
    a view, as PyTorch's.

    Example::

        backprop.arange(9.).reshape(3, 3).diagonal()    # [0., 4., 8.]
    """
    x = _tensor(input, "diagonal")
    if x.ndim < 2:
        raise ShapeError(f"diagonal: expects a tensor with at least 2 dimensions, got shape "
                         f"{tuple(x.shape)}")
    d1, d2 = norm_dim(dim1, x.ndim, "diagonal"), norm_dim(dim2, x.ndim, "diagonal")
    if d1 == d2:
        raise ShapeError(f"diagonal: dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal.apply(x, int(offset), d1, d2)


class DiagEmbed(Function):
    """out = zeros with x's last dim written onto the diagonal (offset) of dims d1, d2;
    dx = that diagonal of g"""

    @staticmethod
    def forward(ctx, x, offset, d1, d2):
        n = x.shape[-1] + _builtins.abs(offset)
        shape = list(x.shape[:-1])
        for d in sorted((d1, d2)):
            shape.insert(d, n)
        out = np.zeros(shape, dtype=x.dtype)
        _diag_view(out, offset, d1, d2)[...] = x
        ctx.args = (offset, d1, d2)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        offset, d1, d2 = ctx.args
        return _diag_view(grad_output, offset, d1, d2).copy(), None, None, None


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """A tensor whose (dim1, dim2) diagonals hold the last dim of ``input``; zeros elsewhere.

    Example::

        backprop.diag_embed(backprop.tensor([1., 2.]))    # [[1., 0.], [0., 2.]]
    """
    x = _tensor(input, "diag_embed")
    nd = x.ndim + 1
    d1, d2 = norm_dim(dim1, nd, "diag_embed"), norm_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise ShapeError(f"diag_embed: diagonal dimensions cannot be identical {dim1}, {dim2}")
    return DiagEmbed.apply(x, int(offset), d1, d2)


def diag(input, diagonal=0):
    """1-D input: a square matrix with it on the ``diagonal``-th diagonal. 2-D input: a
    copy of that diagonal as a 1-D tensor.

    Example::

        backprop.diag(backprop.tensor([1., 2.]))       # [[1., 0.], [0., 2.]]
    """
    x = _tensor(input, "diag")
    if x.ndim == 1:
        return DiagEmbed.apply(x, int(diagonal), 0, 1)
    if x.ndim == 2:
        return globals()["diagonal"](x, diagonal).clone()
    raise ShapeError(f"diag: expects a 1-D or 2-D tensor, got shape {tuple(x.shape)}")


def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    x = _tensor(input, "trace")
    if x.ndim != 2:
        raise ShapeError(f"trace: expected a matrix, got shape {tuple(x.shape)}")
    return diagonal(x).sum()


# -- roll and unfold ------------------------------------------------------------------------
class Roll(Function):
    """out = x shifted cyclically by ``shifts`` along ``dims``;  dx = g shifted back"""

    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.args = (shifts, dims)
        if dims is None:
            return np.roll(x.reshape(-1), shifts).reshape(x.shape)
        return np.roll(x, shifts, dims)

    @staticmethod
    def backward(ctx, grad_output):
        shifts, dims = ctx.args
        back = tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts
        if dims is None:
            return np.roll(grad_output.reshape(-1), back).reshape(grad_output.shape), None, None
        return np.roll(grad_output, back, dims), None, None


def roll(input, shifts, dims=None):
    """Shift elements cyclically: ``shifts`` (int or tuple) along ``dims`` (int or tuple;
    None flattens first, then restores the shape).

    Example::

        backprop.roll(backprop.tensor([1., 2., 3.]), 1)     # [3., 1., 2.]
    """
    x = _tensor(input, "roll")
    if dims is None:
        if isinstance(shifts, (tuple, list)):
            if len(shifts) != 1:
                raise ShapeError(f"roll: without dims, shifts must be one number, got {shifts}")
            shifts = shifts[0]
        return Roll.apply(x, int(shifts), None)
    s = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    d = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(s) != len(d):
        raise ShapeError(f"roll: shifts and dimensions must align. shifts: {len(s)}, "
                         f"dims: {len(d)}")
    d = tuple(norm_dim(i, max(x.ndim, 1), "roll") for i in d)
    if x.ndim == 0:
        return x * 1
    return Roll.apply(x, tuple(int(i) for i in s), d)


class Unfold(TracksView, Function):
    """out[..., i, ..., k] = x[..., i·step + k, ...]: every window of ``size`` along dim,
    a view with the window as a new last dim;  dx = the windows of g added back in place"""

    @staticmethod
    def forward(ctx, x, dim, size, step):
        n = (x.shape[dim] - size) // step + 1
        shape = x.shape[:dim] + (n,) + x.shape[dim + 1:] + (size,)
        strides = (x.strides[:dim] + (x.strides[dim] * step,) + x.strides[dim + 1:]
                   + (x.strides[dim],))
        ctx.args = (x.shape, dim, size, step)
        # NOTE: overlapping windows share memory, so writes through them must not be
        # allowed to race; like expand(), an overlapping unfold is read-only.
        writeable = x.flags.writeable and step >= size
        return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=writeable)

    @staticmethod
    def backward(ctx, grad_output):
        shape, dim, size, step = ctx.args
        grad = np.zeros(shape, dtype=grad_output.dtype)
        g = np.moveaxis(grad, dim, -1)
        go = np.moveaxis(grad_output, dim, -2)        # (..., n, size)
        for k in range(size):  # a loop over the window, not the elements
            g[..., k:k + step * go.shape[-2]:step] += go[..., k]
        return grad, None, None, None


def unfold(self, dimension, size, step):
    """``x.unfold(dimension, size, step)``: all windows of ``size`` along ``dimension``,
    ``step`` apart, as a new last dim (a view, as PyTorch's).

    Example::

        backprop.arange(5.).unfold(0, 2, 1)    # [[0, 1], [1, 2], [2, 3], [3, 4]]
    """
    x = _tensor(self, "unfold")
    d = norm_dim(dimension, max(x.ndim, 1), "unfold")
    n = x.shape[d] if x.ndim else 1
    if not isinstance(size, (int, np.integer)) or not 0 <= size <= n:
        raise ShapeError(f"unfold: maximum size for tensor at dimension {d} is {n} but size "
                         f"is {size}")
    if not isinstance(step, (int, np.integer)) or step <= 0:
        raise ValueError(f"unfold: step is {step} but must be > 0")
    if x.ndim == 0:
        return x.reshape(1)
    return Unfold.apply(x, d, int(size), int(step))


# -- building and joining (from primitives) --------------------------------------------------
def atleast_1d(*tensors):
    """Each tensor with at least one dimension (a 0-d one becomes shape (1,))."""
    ts = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
    out = tuple(t.reshape(1) if t.ndim == 0 else t for t in ts)
    return out[0] if len(out) == 1 and len(tensors) == 1 and isinstance(tensors[0], Tensor) else out


def atleast_2d(*tensors):
    """Each tensor with at least two dimensions (new leading dims of size 1)."""
    ts = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
    out = tuple(t.reshape((1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2 else t for t in ts)
    return out[0] if len(out) == 1 and len(tensors) == 1 and isinstance(tensors[0], Tensor) else out


def atleast_3d(*tensors):
    """Each tensor with at least three dims: (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    ts = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors

    def three(t):
        if t.ndim == 0:
            return t.reshape(1, 1, 1)
        if t.ndim == 1:
            return t.reshape(1, t.shape[0], 1)
        if t.ndim == 2:
            return t.unsqueeze(-1)
        return t
    out = tuple(three(t) for t in ts)
    return out[0] if len(out) == 1 and len(tensors) == 1 and isinstance(tensors[0], Tensor) else out


def _tensor_list(tensors, op):
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{op}: expects a non-empty list or tuple of tensors")
    for t in tensors:
        _tensor(t, op)
    return list(tensors)


def hstack(tensors):
    """Join along dim 1 (dim 0 for 1-D tensors), as PyTorch / NumPy."""
    from backprop.ops.shape import cat

    ts = atleast_1d(_tensor_list(tensors, "hstack"))
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Join along dim 0 after making each tensor at least 2-D (rows)."""
    from backprop.ops.shape import cat

    return cat(atleast_2d(_tensor_list(tensors, "vstack")), 0)


row_stack = vstack


def dstack(tensors):
    """Join along dim 2 after making each tensor at least 3-D."""
    from backprop.ops.shape import cat

    return cat(atleast_3d(_tensor_list(tensors, "dstack")), 2)


def column_stack(tensors):
    """Join along dim 1; 0-d and 1-D tensors become columns first."""
    from backprop.ops.shape import cat

    ts = _tensor_list(tensors, "column_stack")
    ts = [t.reshape(-1, 1) if t.ndim < 2 else t for t in ts]
    return cat(ts, 1)


def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-D tensors: ``indexing='ij'`` (matrix, PyTorch's default) or
    ``'xy'`` (Cartesian: the first two dims swapped). Gradients flow back to each input.

    Example::

        xs, ys = backprop.meshgrid(backprop.arange(3.), backprop.arange(2.), indexing="ij")
    """
    ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) \
        else list(tensors)
    if indexing is None:
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in ts:
        if _tensor(t, "meshgrid").ndim > 1:
            raise ShapeError(f"meshgrid: expects 0-D or 1-D tensors, got shape {tuple(t.shape)}")
    ts = [t.reshape(1) if t.ndim == 0 else t for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.shape[0] for t in ts)
    k = len(ts)
    grids = [t.reshape(*[-1 if i == j else 1 for j in range(k)]).expand(*shape)
             for i, t in enumerate(ts)]
    if swap:
        grids[0], grids[1] = grids[1], grids[0]  # (each still varies along its own dim)
    return tuple(grids)


def broadcast_tensors(*tensors):
    """The tensors expanded to their common broadcast shape (views; gradients sum back)."""
    from backprop.ops.shape import broadcast_to

    ts = [_tensor(t, "broadcast_tensors") for t in tensors]
    try:
        shape = np.broadcast_shapes(*(tuple(t.shape) for t in ts))
    except ValueError:
        raise ShapeError(f"broadcast_tensors: shapes {[tuple(t.shape) for t in ts]} cannot be "
                         f"broadcast together") from None
    return tuple(broadcast_to(t, shape) for t in ts)


def broadcast_shapes(*shapes):
    """The shape that tensors of ``shapes`` broadcast to."""
    from backprop.tensor import Size

    try:
        return Size(np.broadcast_shapes(*(tuple(s) if isinstance(s, (tuple, list)) else (s,)
                                          for s in shapes)))
    except ValueError:
        raise ShapeError(f"broadcast_shapes: shapes {list(shapes)} cannot be broadcast "
                         f"together") from None


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element (or each slice along ``dim``) ``repeats`` times in place.

    ``repeats`` is an int or a 1-D tensor with one count per element/slice; without
    ``dim`` the input is flattened first. ``repeat_interleave(counts)`` alone gives
    ``[0]*counts[0] + [1]*counts[1] + ...``.

    Example::

        backprop.tensor([1., 2.]).repeat_interleave(2)     # [1., 1., 2., 2.]
    """
    from backprop.ops.indexing import index_select

    if repeats is None:
        counts = _tensor(input, "repeat_interleave")._data
        if counts.ndim != 1 or counts.dtype.kind not in "iu":
            raise ShapeError(f"repeat_interleave: repeats must be a 1-D integer tensor, got "
                             f"shape {counts.shape}, dtype {counts.dtype}")
        return _make(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
    x = _tensor(input, "repeat_interleave")
    if dim is None:
        x, d = x.reshape(-1), 0
    else:
        d = norm_dim(dim, max(x.ndim, 1), "repeat_interleave")
        if x.ndim == 0:
            x = x.reshape(1)
    n = x.shape[d]
    r = repeats._data if isinstance(repeats, Tensor) else np.asarray(repeats)
    if r.dtype.kind not in "iu" or r.ndim > 1:
        raise TypeError(f"repeat_interleave: repeats must be an int or a 1-D integer tensor, "
                        f"got {repeats!r}")
    if r.ndim == 1 and r.shape[0] not in (1, n):
        raise ShapeError(f"repeat_interleave: repeats must have the same size as input along "
                         f"dim {d} ({n}), got {r.shape[0]}")
    if np.any(r < 0):
        raise ValueError("repeat_interleave: repeats can not be negative")
    index = np.repeat(np.arange(n, dtype=np.int64), np.broadcast_to(r.reshape(-1), (n,)))
    return index_select(x, d, _make(index))


def take(input, index):
    """Elements of ``input`` treated as 1-D, at the positions in ``index`` (any shape)."""
    from backprop.errors import IndexOutOfRange

    x = _tensor(input, "take")
    idx = index._data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"take: index must be an integer tensor, got {idx.dtype}")
    n = x.numel()
    if idx.size and (idx.max() >= n or idx.min() < -n):
        raise IndexOutOfRange(f"take: index out of range for a tensor of {n} elements "
                              f"(got {int(idx.max()) if idx.max() >= n else int(idx.min())})")
    return x.reshape(-1)[_make(idx.astype(np.int64, copy=False))]


def tensordot(a, b, dims=2):
    """Sum products over the last ``dims`` dims of ``a`` and the first of ``b`` (an int), or
    over the paired lists ``dims=([a dims], [b dims])``.

    Example::

        backprop.tensordot(backprop.ones(2, 3), backprop.ones(3, 4), dims=1).shape   # (2, 4)
    """
    a, b = _tensor(a, "tensordot"), _tensor(b, "tensordot")
    if isinstance(dims, (int, np.integer)):
        if dims < 0 or dims > _builtins.min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot: dims ({dims}) must be between 0 and "
                             f"{_builtins.min(a.ndim, b.ndim)}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        if isinstance(dims, Tensor):
            dims = dims.tolist()
        da, db = ([d] if isinstance(d, (int, np.integer)) else list(d) for d in dims)
        da = [norm_dim(d, a.ndim, "tensordot") for d in da]
        db = [norm_dim(d, b.ndim, "tensordot") for d in db]
    if len(da) != len(db):
        raise ShapeError(f"tensordot: both dimension lists should have the same length, got "
                         f"{da} and {db}")
    for i, j in zip(da, db, strict=True):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"tensordot: contracted dimensions need to match, but first has "
                             f"size {a.shape[i]} in dim {i} and second has size {b.shape[j]} "
                             f"in dim {j}")
    free_a = [i for i in range(a.ndim) if i not in da]
    free_b = [j for j in range(b.ndim) if j not in db]
    k = int(np.prod([a.shape[i] for i in da]))
    left = a.permute(*free_a, *da).reshape(-1, k)
    right = b.permute(*db, *free_b).reshape(k, -1)
    return (left @ right).reshape(*[a.shape[i] for i in free_a], *[b.shape[j] for j in free_b])


def kron(input, other):
    """The Kronecker product: every element of ``input`` times a whole copy of ``other``."""
    a, b = _tensor(input, "kron"), _tensor(other, "kron")
    nd = _builtins.max(a.ndim, b.ndim)
    a = a.reshape((1,) * (nd - a.ndim) + tuple(a.shape))
    b = b.reshape((1,) * (nd - b.ndim) + tuple(b.shape))
    # a's dim i and b's dim i interleaved: (a0, b0, a1, b1, ...)
    sa = [s for d in range(nd) for s in (a.shape[d], 1)]
    sb = [s for d in range(nd) for s in (1, b.shape[d])]
    out = a.reshape(*sa) * b.reshape(*sb)
    return out.reshape(*[a.shape[d] * b.shape[d] for d in range(nd)])


def block_diag(*tensors):
    """A block-diagonal matrix from 0-, 1- or 2-D tensors (zeros off the blocks)."""
    from backprop.ops.shape import cat, pad

    ts = []
    for t in tensors:
        t = _tensor(t, "block_diag")
        if t.ndim > 2:
            raise ShapeError(f"block_diag: input tensors must have 2 or fewer dimensions, got "
                             f"shape {tuple(t.shape)}")
        ts.append(t.reshape(1, 1) if t.ndim == 0 else t.reshape(1, -1) if t.ndim == 1 else t)
    if not ts:
        return _make(np.zeros((0, 0), dtype=np.float32))
    dtype = ts[0]._data.dtype
    for t in ts[1:]:
        dtype = _promote(dtype, t._data.dtype)
    ts = [t if t._data.dtype == dtype else t.to(_dtype_of(dtype)) for t in ts]
    width = _builtins.sum(t.shape[1] for t in ts)
    rows, left = [], 0
    for t in ts:
        rows.append(pad(t, (left, width - left - t.shape[1])))
        left += t.shape[1]
    return cat(rows, 0)


def _dtype_of(np_dtype):
    from backprop.dtypes import from_numpy_dtype

    return from_numpy_dtype(np_dtype)


__all__ = [
    "floor", "ceil", "trunc", "fix", "round", "frac", "tan", "sinh", "cosh", "asin", "acos",
    "atan", "arcsin", "arccos", "arctan", "erf", "erfc", "erfinv", "log2", "log10",
    "reciprocal", "atan2", "arctan2", "fmod", "logaddexp", "xlogy", "nan_to_num", "lerp",
    "logical_and", "logical_or", "logical_xor", "signbit",
    "cumprod", "median", "kthvalue", "mode", "var_mean", "std_mean", "aminmax",
    "count_nonzero", "diff", "diagonal", "diag_embed", "diag", "trace", "roll",
    "atleast_1d", "atleast_2d", "atleast_3d", "hstack", "vstack", "row_stack", "dstack",
    "column_stack", "meshgrid", "broadcast_tensors", "broadcast_shapes", "repeat_interleave",
    "take", "tensordot", "kron", "block_diag",
]

TENSOR_METHODS = {
    "floor": floor, "ceil": ceil, "trunc": trunc, "fix": fix, "round": round, "frac": frac,
    "tan": tan, "sinh": sinh, "cosh": cosh, "asin": asin, "acos": acos, "atan": atan,
    "arcsin": asin, "arccos": acos, "arctan": atan, "erf": erf, "erfc": erfc,
    "erfinv": erfinv, "log2": log2, "log10": log10, "reciprocal": reciprocal, "atan2": atan2,
    "arctan2": atan2, "fmod": fmod, "logaddexp": logaddexp, "xlogy": xlogy,
    "nan_to_num": nan_to_num, "lerp": lerp, "logical_and": logical_and,
    "logical_or": logical_or, "logical_xor": logical_xor, "signbit": signbit,
    "cumprod": cumprod, "median": median, "kthvalue": kthvalue, "mode": mode,
    "aminmax": aminmax, "count_nonzero": count_nonzero, "diff": diff, "diagonal": diagonal,
    "diag_embed": diag_embed, "diag": diag, "trace": trace, "roll": roll, "unfold": unfold,
    "repeat_interleave": repeat_interleave, "take": take, "kron": kron,
}


# -- scatter and the index_* family -----------------------------------------------------------
class Scatter(Function):
    """out = x with out[index[i][j]][j] = src[i][j] (dim 0; src a tensor or a number);
    dx = g with the written places zeroed,  dsrc = g gathered at index"""

    @staticmethod
    def forward(ctx, x, index, src, dim):
        corner = tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(index.shape))
        src_corner = tuple(slice(0, s) for s in index.shape)
        vals = src[src_corner] if np.ndim(src) else np.broadcast_to(src, index.shape)
        out = x.copy()
        # (a view of out: put_along_axis writes through it; a repeated place keeps the last)
        np.put_along_axis(out[corner], index, np.asarray(vals).astype(x.dtype, copy=False),
                          axis=dim)
        ctx.save_for_backward(index)
        ctx.args = (dim, corner, src_corner, np.shape(src))
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        dim, corner, src_corner, src_shape = ctx.args
        gx = gsrc = None
        if ctx.needs_input_grad[0]:
            gx = grad_output.copy()
            np.put_along_axis(gx[corner], index, 0, axis=dim)
        if ctx.needs_input_grad[2]:
            gsrc = np.zeros(src_shape, dtype=grad_output.dtype)
            gsrc[src_corner] = np.take_along_axis(grad_output[corner], index, axis=dim)
        return gx, None, gsrc, None


def _scatter_checks(x, dim, index, src, op):
    from backprop.ops.indexing import _check_bounds, _index_tensor

    same_source_dtype(x, src, op)
    idx = _index_tensor(index, op)
    d = norm_dim(dim, max(x.ndim, 1), op)
    s = src._data if isinstance(src, Tensor) else None
    if idx.ndim != max(x.ndim, 1) or (s is not None and s.ndim != idx.ndim):
        raise ShapeError(f"{op}: index, input and src must have the same number of dimensions, "
                         f"got shapes {idx.shape}, {tuple(x.shape)} and "
                         f"{None if s is None else s.shape}")
    for k in range(idx.ndim):
        if (s is not None and idx.shape[k] > s.shape[k]) or (k != d and idx.shape[k] > x.shape[k]):
            raise ShapeError(f"{op}: index of shape {idx.shape} must be no larger than src "
                             f"and than input of shape {tuple(x.shape)} apart from dimension {d}")
    return _check_bounds(idx, x.shape[d], d, op), d


def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """``input`` with ``src[i][j]`` (or ``value``) written at ``out[index[i][j]][j]`` (dim 0).

    ``reduce='add'`` or ``'multiply'`` combines instead of writing (no gradient, as the
    form PyTorch keeps for old code). Where ``index`` names a place twice, the last write
    wins here (PyTorch leaves it unspecified).

    Example::

        backprop.zeros(3).scatter(0, backprop.tensor([2, 0]), backprop.tensor([5., 7.]))
        # tensor([7., 0., 5.])
    """
    x = _tensor(input, "scatter")
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter: give src (a tensor) or value (a number)")
    if x.ndim == 0:
        src1 = src.reshape(-1) if isinstance(src, Tensor) else src
        idx1 = (index._data if isinstance(index, Tensor) else np.asarray(index)).reshape(-1)
        return scatter(x.reshape(1), 0, idx1, src1, reduce=reduce).reshape(())
    idx, d = _scatter_checks(x, dim, index, src if isinstance(src, Tensor) else None, "scatter")
    if reduce is not None:
        return _scatter_reduce(x, d, idx, src, reduce)
    if not isinstance(src, Tensor):
        if not isinstance(src, (numbers.Number, np.generic)):
            raise TypeError(f"scatter: value must be a number, got {type(src).__name__}")
    out = Scatter.apply(x, idx, src, d)
    return out if isinstance(src, Tensor) else named(out, "ScatterBackward1")


def _scatter_reduce(x, d, idx, src, reduce):
    from backprop.autograd.grad_mode import state
    from backprop.ops.indexing import _along_positions

    if reduce not in ("add", "multiply"):
        raise ValueError(f"scatter: reduce argument must be either add or multiply, got "
                         f"{reduce!r}")
    if state.enabled and (x._requires_grad or (isinstance(src, Tensor) and src._requires_grad)):
        raise NotImplementedError("scatter with reduce= has no gradient (as in PyTorch); use "
                                  "scatter_add, or call it under backprop.no_grad()")
    sizes = tuple(x.shape[d] if k == d else s for k, s in enumerate(idx.shape))
    corner = tuple(slice(None) if k == d else slice(0, s) for k, s in enumerate(idx.shape))
    s = src._data[tuple(slice(0, n) for n in idx.shape)] if isinstance(src, Tensor) \
        else np.broadcast_to(src, idx.shape)
    out = x._data.copy()
    part = out[corner].copy()
    ufunc = np.add if reduce == "add" else np.multiply
    ufunc.at(part.reshape(-1), _along_positions(idx, d, sizes).reshape(-1),
             np.asarray(s).astype(out.dtype).reshape(-1))
    out[corner] = part
    return _make(out)


def _full_index(index, dim, shape, op):
    """A 1-D index along ``dim`` spread to ``shape`` (each slice's position at every place)."""
    from backprop.ops.indexing import _index_tensor

    idx = _index_tensor(index, op)
    if idx.ndim > 1:
        raise ShapeError(f"{op}: index should have dimension 1 or 0, got shape {idx.shape}")
    idx = idx.reshape(-1)
    if len(shape) and shape[dim] != len(idx):
        raise ShapeError(f"{op}: the number of indices ({len(idx)}) must equal the size of "
                         f"source along dim {dim} ({shape[dim]})")
    view = [1] * len(shape)
    if view:
        view[dim] = -1
    return np.broadcast_to(idx.reshape(view), shape).astype(np.int64)


def _index_source_checks(x, dim, source, op):
    d = norm_dim(dim, max(x.ndim, 1), op)
    s = _tensor(source, op)
    same_source_dtype(x, s, op)
    if x.ndim == 0 or s.ndim != x.ndim or any(
            a != b for k, (a, b) in enumerate(zip(s.shape, x.shape, strict=True)) if k != d):
        raise ShapeError(f"{op}: source of shape {tuple(s.shape)} must match input of shape "
                         f"{tuple(x.shape)} apart from dimension {d}")
    return d, s


def index_add(input, dim, index, source, *, alpha=1):
    """``input`` with ``alpha · source`` added at the slices ``index`` names along ``dim``
    (repeated indices accumulate).

    Example::

        backprop.zeros(3, 2).index_add(0, backprop.tensor([0, 0]), backprop.ones(2, 2))
    """
    from backprop.ops.indexing import scatter_add

    x = _tensor(input, "index_add")
    d, s = _index_source_checks(x, dim, source, "index_add")
    idx = _full_index(index, d, tuple(s.shape), "index_add")
    return scatter_add(x, d, idx, s if alpha == 1 else s * alpha)


def index_copy(input, dim, index, source):
    """``input`` with the slices along ``dim`` at ``index`` replaced by those of ``source``."""
    x = _tensor(input, "index_copy")
    d, s = _index_source_checks(x, dim, source, "index_copy")
    idx, _ = _scatter_checks(x, d, _full_index(index, d, tuple(s.shape), "index_copy"), s,
                             "index_copy")
    return named(Scatter.apply(x, idx, s, d), "IndexCopyBackward0")


def index_fill(input, dim, index, value):
    """``input`` with the slices along ``dim`` at ``index`` set to ``value`` (a number or a
    0-d tensor, which then gets the gradient of every filled place)."""
    from backprop.ops.indexing import _check_bounds, _index_tensor, masked_fill

    x = _tensor(input, "index_fill")
    d = norm_dim(dim, max(x.ndim, 1), "index_fill")
    idx = _index_tensor(index, "index_fill").reshape(-1)
    n = x.shape[d] if x.ndim else 1
    idx = _check_bounds(idx, n, d, "index_fill")
    hit = np.zeros(n, dtype=bool)
    hit[idx] = True
    mask = hit.reshape([-1 if k == d else 1 for k in range(x.ndim)]) if x.ndim else hit[0]
    return masked_fill(x, np.broadcast_to(mask, x.shape), value)


def masked_scatter(input, mask, source):
    """``input`` with the True places of ``mask`` (broadcast) filled, in order, from the
    elements of ``source``; gradients flow to both.

    Example::

        x = backprop.zeros(4)
        x.masked_scatter(backprop.tensor([True, False, True, False]), backprop.tensor([1., 2.]))
        # tensor([1., 0., 2., 0.])
    """
    x = _tensor(input, "masked_scatter")
    s = _tensor(source, "masked_scatter")
    same_source_dtype(x, s, "masked_scatter")
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise DTypeError(f"masked_scatter: only supports boolean masks, got dtype {m.dtype}")
    try:
        m = np.broadcast_to(m, x.shape)
    except ValueError:
        raise ShapeError(f"masked_scatter: mask of shape {m.shape} can't be broadcast to the "
                         f"input's shape {tuple(x.shape)}") from None
    pos = np.flatnonzero(m)
    if s.numel() < len(pos):
        raise ShapeError(f"masked_scatter: expected source to have at least {len(pos)} "
                         f"elements (the True places of mask), got {s.numel()}")
    flat = Scatter.apply(x.reshape(-1), pos.astype(np.int64), s.reshape(-1), 0)
    return named(flat, "MaskedScatterBackward0").reshape(x.shape)


def _fill_diagonal(self, fill_value, wrap=False):
    """``self`` with ``fill_value`` on its main diagonal (all dims must match unless 2-D;
    ``wrap`` restarts a tall matrix's diagonal every ncols + 1 rows, as NumPy/PyTorch)."""
    x = self
    if x.ndim < 2:
        raise ShapeError(f"fill_diagonal_: dimensions must larger than 1, got shape "
                         f"{tuple(x.shape)}")
    if x.ndim > 2 and len(set(x.shape)) != 1:
        raise ShapeError(f"fill_diagonal_: all dimensions of input must be of equal length, "
                         f"got shape {tuple(x.shape)}")
    n = x.numel()
    if x.ndim == 2:
        rows, cols = x.shape
        step = cols + 1
        end = n if wrap else min(rows, cols) * cols
    else:
        step = int(np.sum(np.cumprod((1,) + tuple(x.shape[:0:-1]))))
        end = n
    pos = np.arange(0, end, step, dtype=np.int64)
    return Scatter.apply(x.reshape(-1), pos, fill_value, 0).reshape(x.shape)


# -- in-place forms --------------------------------------------------------------------------
def _inplace(name, fn):
    """``x.<name>(...)``: x becomes ``fn(x, ...)`` in its own memory; recorded in the graph
    (``backprop.ops.inplace``) when x or a tensor argument requires grad, as ``add_`` is."""
    from backprop.autograd.grad_mode import state

    def compute(self, t, args, kwargs):
        out = fn(t, *args, **kwargs)
        have, want = out._data.dtype, self._data.dtype
        # PyTorch's rule: a result may not be written into a tensor of a lower kind
        # (a float into an integer tensor, a number into a bool one): no silent truncation.
        if (have.kind == "f" and want.kind in "biu") or (have.kind in "iu" and want.kind == "b"):
            raise DTypeError(f"{name}: result type {have} can't be cast to the desired output "
                             f"type {want}")
        return out

    def method(self, *args, **kwargs):
        if state.enabled and (self._requires_grad or _builtins.any(
                isinstance(a, Tensor) and a._requires_grad
                for a in (*args, *kwargs.values()))):
            return self._record(name, lambda t: compute(self, t, args, kwargs))
        value = compute(self, self, args, kwargs)._data
        self._check_inplace(name)
        return self._assign(value, name)
    method.__name__ = name
    method.__doc__ = f"In place: this tensor becomes ``self.{name[:-1]}(...)``."
    return method


def _reshape_inplace(name, fn):
    """``squeeze_``/``unsqueeze_``/``t_``: the tensor takes the new shape (a view of the
    same memory). Refused on a tensor with a history (see the NOTE below)."""
    def method(self, *args):
        from backprop.autograd.grad_mode import state
        from backprop.errors import InplaceError

        if self._requires_grad and self.grad_fn is None and state.enabled:
            raise InplaceError(f"{name}: a leaf tensor that requires grad is being used in "
                               f"an in-place operation; wrap it in backprop.no_grad()")
        if self.grad_fn is not None:
            # NOTE: PyTorch allows this; here an op that already read the tensor would get a
            # gradient of the old shape for an input of the new one (backward breaks), so it
            # is refused rather than half-supported. The out-of-place form costs nothing more.
            raise InplaceError(f"{name}: changing the shape in place of a tensor that is part of "
                               f"the autograd graph (shape {tuple(self._data.shape)}) is not "
                               f"supported; write y = y.{name[:-1]}(...) instead")
        with no_grad():
            self._data = fn(self, *args)._data
        return self
    method.__name__ = name
    return method


# -- tensor facts ----------------------------------------------------------------------------
def _stride(self, dim=None):
    """Steps in elements between neighbours along each dim (a tuple), or along ``dim``."""
    st = tuple(s // self._data.itemsize for s in self._data.strides)
    return st if dim is None else st[norm_dim(dim, max(self.ndim, 1), "stride")]


def _storage_offset(self) -> int:
    """Where this tensor's first element sits in the memory it shares, in elements."""
    from backprop.ops._util import view_base

    base = view_base.get(self)
    if base is None or not np.may_share_memory(base._data, self._data):
        return 0
    start = base._data
    while start.base is not None and isinstance(start.base, np.ndarray):
        start = start.base
    delta = (self._data.__array_interface__["data"][0] - start.__array_interface__["data"][0])
    return int(delta // self._data.itemsize)


def sum_to_size(self, *size):
    """Sum this tensor down to ``size``, which it must broadcast from (the inverse of
    ``expand``)."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    try:
        if np.broadcast_shapes(tuple(self.shape), shape) != tuple(self.shape):
            raise ValueError
    except ValueError:
        raise ShapeError(f"sum_to_size: size {list(shape)} is not expandable to size "
                         f"{list(self.shape)}") from None
    lead = self.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and self.shape[lead + i] != 1)
    out = self.sum(dim=axes, keepdim=True) if axes else self
    return out.reshape(shape) if out.shape != shape else out


TENSOR_METHODS.update({
    "scatter": scatter, "index_add": index_add, "index_copy": index_copy,
    "index_fill": index_fill, "masked_scatter": masked_scatter,
    "scatter_": _inplace("scatter_", scatter),
    "scatter_add_": _inplace("scatter_add_", lambda t, *a, **k: _scatter_add(t, *a, **k)),
    "index_add_": _inplace("index_add_", index_add),
    "index_copy_": _inplace("index_copy_", index_copy),
    "index_fill_": _inplace("index_fill_", index_fill),
    "masked_scatter_": _inplace("masked_scatter_", masked_scatter),
    "fill_diagonal_": _inplace("fill_diagonal_", _fill_diagonal),
    "squeeze_": _reshape_inplace("squeeze_", lambda t, *d: t.squeeze(*d)),
    "unsqueeze_": _reshape_inplace("unsqueeze_", lambda t, d: t.unsqueeze(d)),
    "t_": _reshape_inplace("t_", lambda t: t.t()),
    "stride": _stride, "storage_offset": _storage_offset,
    "is_contiguous": lambda self, memory_format=None: bool(self._data.flags.c_contiguous),
    "data_ptr": lambda self: int(self._data.__array_interface__["data"][0]),
    "nelement": lambda self: int(self._data.size),
    "ndimension": lambda self: self._data.ndim,
    "byte": lambda self: self.to(_dtype_of(np.dtype(np.uint8))),
    "char": lambda self: self.to(_dtype_of(np.dtype(np.int8))),
    "short": lambda self: self.to(_dtype_of(np.dtype(np.int16))),
    "nbytes": property(lambda self: int(self._data.nbytes)),
    "itemsize": property(lambda self: int(self._data.itemsize)),
    "sum_to_size": sum_to_size,
})
for _name in ("floor", "ceil", "trunc", "fix", "round", "frac", "tan", "sinh", "cosh", "asin",
              "acos", "atan", "arcsin", "arccos", "arctan", "erf", "erfc", "erfinv", "log2",
              "log10", "reciprocal", "atan2", "arctan2", "fmod", "xlogy", "nan_to_num", "lerp",
              "cumprod", "logical_and", "logical_or", "logical_xor"):
    TENSOR_METHODS[_name + "_"] = _inplace(_name + "_", globals()[_name])


def _scatter_add(t, dim, index, src):
    from backprop.ops.indexing import scatter_add

    return scatter_add(t, dim, index, src)


__all__ += ["scatter", "index_add", "index_copy", "index_fill", "masked_scatter"]


# -- questions about tensors and dtypes ------------------------------------------------------
def is_tensor(obj) -> bool:
    """True when ``obj`` is a backprop Tensor."""
    return isinstance(obj, Tensor)


def is_floating_point(input) -> bool:
    """True when ``input`` has a floating-point dtype."""
    return _tensor(input, "is_floating_point")._data.dtype.kind == "f"


def numel(input) -> int:
    """The number of elements of ``input``."""
    return int(_tensor(input, "numel")._data.size)


def _np_dtype(d, op):
    from backprop.dtypes import dtype as bp_dtype
    from backprop.dtypes import to_numpy_dtype

    if isinstance(d, bp_dtype):
        return to_numpy_dtype(d)
    raise TypeError(f"{op}: expected a backprop dtype (backprop.float32, ...), got {d!r}")


class finfo:
    """Facts about a floating-point dtype, as ``torch.finfo``: ``bits``, ``eps``, ``max``,
    ``min``, ``tiny`` (= ``smallest_normal``), ``resolution``, ``dtype``.

    Example::

        backprop.finfo(backprop.float32).eps      # 1.1920928955078125e-07
    """

    def __init__(self, type=None):  # noqa: A002 (PyTorch's name)
        from backprop.dtypes import get_default_dtype

        d = _np_dtype(get_default_dtype() if type is None else type, "finfo")
        if d.kind != "f":
            raise TypeError(f"finfo: expected a floating-point dtype, got {d.name}; use iinfo")
        info = np.finfo(d)
        self.bits = int(info.bits)
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.tiny = self.smallest_normal = float(info.tiny)
        self.resolution = 10.0 ** -int(info.precision)
        self.dtype = d.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.tiny:g}, tiny={self.tiny:g}, "
                f"dtype={self.dtype})")


class iinfo:
    """Facts about an integer dtype, as ``torch.iinfo``: ``bits``, ``max``, ``min``, ``dtype``.

    Example::

        backprop.iinfo(backprop.int8).max      # 127
    """

    def __init__(self, type):  # noqa: A002 (PyTorch's name)
        d = _np_dtype(type, "iinfo")
        if d.kind not in "iu":
            raise TypeError(f"iinfo: expected an integer dtype, got {d.name} (finfo is for "
                            f"floats; bool has neither, as in PyTorch)")
        info = np.iinfo(d)
        self.bits, self.max, self.min = int(info.bits), int(info.max), int(info.min)
        self.dtype = d.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def _promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's promotion of two dtypes: bool < integers < floats; within floats the
    wider one (int64 with float16 stays float16, unlike NumPy)."""
    ca, cb = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def promote_types(type1, type2):
    """The smallest dtype both ``type1`` and ``type2`` convert to without losing their kind.

    Example::

        backprop.promote_types(backprop.int32, backprop.float16)    # backprop.float16
    """
    return _dtype_of(_promote(_np_dtype(type1, "promote_types"), _np_dtype(type2, "promote_types")))


def result_type(tensor1, tensor2):
    """The dtype an arithmetic op on these operands gives, by PyTorch's rules: tensors with
    dimensions decide, unless a 0-d tensor or a Python number is of a higher kind (bool <
    integer < float); a Python float then gives the default dtype, an int int64."""
    from backprop.dtypes import get_default_dtype

    groups = [[], [], []]  # tensors with dims, 0-d tensors, Python numbers
    for v in (tensor1, tensor2):
        if isinstance(v, Tensor):
            groups[0 if v.ndim else 1].append(v._data.dtype)
        elif isinstance(v, (bool, np.bool_)):
            groups[2].append(np.dtype(np.bool_))
        elif isinstance(v, (int, np.integer)):
            groups[2].append(np.dtype(np.int64))
        elif isinstance(v, (float, np.floating)):
            groups[2].append(_np_dtype(get_default_dtype(), "result_type"))
        else:
            raise TypeError(f"result_type: expected tensors or numbers, got {type(v).__name__}")
    result = None
    for group in groups:
        if not group:
            continue
        top = _builtins.max(_CATEGORY[d.kind] for d in group)
        g = [d for d in group if _CATEGORY[d.kind] == top]
        g = g[0] if len(g) == 1 else _promote(*g)
        if result is None or _CATEGORY[g.kind] > _CATEGORY[result.kind]:
            result = g
    return _dtype_of(result)


def can_cast(from_, to) -> bool:
    """Whether PyTorch's casting rules allow ``from_`` -> ``to`` in an op's output: never
    to a lower kind (float -> integer, integer -> bool)."""
    a, b = _np_dtype(from_, "can_cast"), _np_dtype(to, "can_cast")
    return _CATEGORY[a.kind] <= _CATEGORY[b.kind]


# -- indices, counts, searching ----------------------------------------------------------------
def nonzero(input, *, as_tuple=False):
    """The indices of the non-zero elements: an int64 tensor of shape (n, ndim), or with
    ``as_tuple`` one 1-D tensor per dim (what ``x[...]`` accepts)."""
    x = _tensor(input, "nonzero")._data
    idx = np.nonzero(x.reshape(1) if x.ndim == 0 else x)
    if as_tuple:
        return tuple(_make(i.astype(np.int64)) for i in idx)
    out = np.stack(idx, axis=1).astype(np.int64) if x.ndim else np.zeros((len(idx[0]), 0),
                                                                          dtype=np.int64)
    return _make(out)


def argwhere(input):
    """``nonzero(input)``: the (n, ndim) indices of the non-zero elements."""
    return nonzero(input)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct elements (or slices along ``dim``), sorted; optionally with the index of
    each input element in them (``return_inverse``) and their counts. No gradient.

    Example::

        values, counts = backprop.unique(backprop.tensor([3, 1, 3]), return_counts=True)
    """
    x = _tensor(input, "unique")._data
    if dim is None:
        vals, inv, counts = np.unique(x.reshape(-1), return_inverse=True, return_counts=True)
        inv = inv.reshape(x.shape)
    else:
        d = norm_dim(dim, max(x.ndim, 1), "unique")
        vals, inv, counts = np.unique(x, return_inverse=True, return_counts=True, axis=d)
        inv = inv.reshape(-1)
    out = [_make(vals)]
    if return_inverse:
        out.append(_make(inv.astype(np.int64)))
    if return_counts:
        out.append(_make(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input, weights=None, minlength=0):
    """How often each value 0, 1, 2, ... occurs in the 1-D non-negative int ``input`` (or
    the sum of ``weights`` there); int64 counts, or the float weights' dtype (float64 for
    integer weights, as PyTorch)."""
    x = _tensor(input, "bincount")._data
    if x.ndim != 1 or x.dtype.kind not in "iub":
        raise ShapeError(f"bincount: only supports 1-d non-negative integral inputs, got "
                         f"shape {x.shape}, dtype {x.dtype}")
    if x.size and x.min() < 0:
        raise ValueError("bincount: input must be non-negative")
    w = None
    if weights is not None:
        w = weights._data if isinstance(weights, Tensor) else np.asarray(weights)
        if w.shape != x.shape:
            raise ShapeError(f"bincount: weights of shape {w.shape} must have the same "
                             f"length as input of shape {x.shape}")
    out = np.bincount(x, weights=w, minlength=int(minlength))
    if w is None:
        return _make(out.astype(np.int64))
    return _make(out.astype(w.dtype if w.dtype.kind == "f" else np.float64))


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None):
    """Where each value of ``input`` would go in ``sorted_sequence`` (its last dim) to keep
    it sorted: the first such place, or the last with ``right=True`` / ``side='right'``.

    Example::

        backprop.searchsorted(backprop.tensor([1., 3., 5.]), backprop.tensor([3., 6.]))
        # tensor([1, 3])
    """
    seq = _tensor(sorted_sequence, "searchsorted")._data
    scalar = not isinstance(input, Tensor)
    vals = np.asarray(input) if scalar else input._data
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"searchsorted: side can only be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise ValueError("searchsorted: side and right can't be set to opposites")
        right = side == "right"
    which = "right" if right else "left"
    if sorter is not None:
        order = sorter._data if isinstance(sorter, Tensor) else np.asarray(sorter)
        seq = np.take_along_axis(seq, order, axis=-1)
    if seq.ndim <= 1:
        out = np.searchsorted(seq.reshape(-1), vals, side=which)
    else:
        if seq.shape[:-1] != vals.shape[:-1]:
            raise ShapeError(f"searchsorted: boundaries of shape {seq.shape} and input of shape "
                             f"{vals.shape} must agree in all but the last dimension")
        rows_s, rows_v = seq.reshape(-1, seq.shape[-1]), vals.reshape(-1, vals.shape[-1])
        out = np.stack([np.searchsorted(s, v, side=which)
                        for s, v in zip(rows_s, rows_v, strict=True)])
        out = out.reshape(vals.shape)
    return _make(np.asarray(out, dtype=np.int32 if out_int32 else np.int64))


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket of each value: i such that boundaries[i-1] < x <= boundaries[i]
    (``right=True``: boundaries[i-1] <= x < boundaries[i])."""
    b = _tensor(boundaries, "bucketize")
    if b.ndim != 1:
        raise ShapeError(f"bucketize: boundaries must be 1-D, got shape {tuple(b.shape)}")
    return searchsorted(b, input, out_int32=out_int32, right=right)


def histc(input, bins=100, min=0, max=0):  # noqa: A002 (PyTorch's names)
    """A histogram of ``bins`` equal-width bins over [min, max] (the data's range when both
    are 0); values outside are ignored. The counts have input's dtype."""
    x = _tensor(input, "histc")._data
    if x.dtype.kind != "f":
        raise DTypeError(f"histc: expects a floating-point tensor, got {x.dtype}")
    if bins <= 0:
        raise ValueError(f"histc: bins must be > 0, got {bins}")
    lo, hi = float(min), float(max)
    if lo == hi and x.size:
        lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise ValueError(f"histc: max must be larger than min, got min={min}, max={max}")
    counts, _ = np.histogram(x, bins=int(bins), range=(lo, hi))
    return _make(counts.astype(x.dtype))


# -- products and distances (from primitives) --------------------------------------------------
def cdist(x1, x2, p=2.0, compute_mode=None):
    """The p-norm distance between each row vector of ``x1`` (…, P, M) and of ``x2``
    (…, R, M): shape (…, P, R); differentiable (a zero distance has gradient 0).

    Example::

        backprop.cdist(backprop.randn(4, 3), backprop.randn(5, 3)).shape    # (4, 5)
    """
    a, b = _tensor(x1, "cdist"), _tensor(x2, "cdist")
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-1]:
        raise ShapeError(f"cdist: X1 and X2 must have the same number of columns (and be at "
                         f"least 2-D), got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if p < 0:
        raise ValueError(f"cdist: only supports non-negative p values, got {p}")
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).norm(p, dim=-1)


def _ignore(input, prod):
    """``prod``, with ``input`` taking part only for its (zero) gradient: beta = 0 means
    input is not read, so a NaN in it does not spread (PyTorch's rule)."""
    from backprop.ops.elementwise import where

    shape = np.broadcast_shapes(tuple(input.shape), tuple(prod.shape))
    return where(_make(np.zeros(shape, dtype=bool)), input, prod)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta · input + alpha · (mat1 @ mat2); ``input`` broadcasts (beta = 0 ignores it, NaN
    included, as PyTorch)."""
    from backprop.ops.linalg import mm

    prod = mm(mat1, mat2)
    prod = prod if alpha == 1 else prod * alpha
    if beta == 0:
        return _ignore(input, prod)
    return (input if beta == 1 else input * beta) + prod


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta · input + alpha · (batch1 @ batch2) for batches of matrices."""
    from backprop.ops.linalg import bmm

    prod = bmm(batch1, batch2)
    prod = prod if alpha == 1 else prod * alpha
    if beta == 0:
        return _ignore(input, prod)
    return (input if beta == 1 else input * beta) + prod


def addcmul(input, tensor1, tensor2, *, value=1):
    """input + value · tensor1 · tensor2 (broadcasting)."""
    return input + (tensor1 * tensor2 if value == 1 else tensor1 * tensor2 * value)


def addcdiv(input, tensor1, tensor2, *, value=1):
    """input + value · tensor1 / tensor2 (broadcasting)."""
    return input + (tensor1 / tensor2 if value == 1 else tensor1 / tensor2 * value)


__all__ += ["is_tensor", "is_floating_point", "numel", "finfo", "iinfo", "promote_types",
            "result_type", "can_cast", "nonzero", "argwhere", "unique", "bincount",
            "searchsorted", "bucketize", "histc", "cdist", "addmm", "baddbmm", "addcmul",
            "addcdiv"]
TENSOR_METHODS.update({
    "nonzero": nonzero, "argwhere": argwhere, "unique": unique, "bincount": bincount,
    "histc": histc, "addmm": addmm, "baddbmm": baddbmm, "addcmul": addcmul, "addcdiv": addcdiv,
    "addmm_": _inplace("addmm_", addmm), "baddbmm_": _inplace("baddbmm_", baddbmm),
})
