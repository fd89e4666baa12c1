"""Element-wise primitives: arithmetic, powers, exponentials, roots, trigonometry,
absolute value and sign, clamping, maximum/minimum, ``where``, comparisons.

Binary ops broadcast in forward and return gradients in the broadcast shape;
the engine reduces them back to each input's shape (``engine.unbroadcast``).

Where a backward only needs to zero some elements it multiplies by a bool mask rather
than calling ``np.where``, which is several times slower on unpredictable masks.
"""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import DTypeError, ShapeError
from backprop.ops._util import (
    F64,
    check_operand,
    default_float_for,
    fix_float,
    float_result,
    is_f64,
    require_tensor,
)
from backprop.tensor import Tensor, _make


def _shape(x):
    return np.shape(x)


def _broadcast_error(op: str, a, b) -> ShapeError:
    return ShapeError(f"{op}: shapes {_shape(a)} and {_shape(b)} cannot be broadcast together")


# Integer and bool arrays become the default float dtype; floats are kept. (NumPy would
# give float64 for int64, or float16 for int8, in sqrt, exp, sin, ...)
as_float = default_float_for


def _is_integral(v) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "iub"
    return isinstance(v, (int, np.integer, np.bool_))


class Add(Function):
    """out = a + b;  da = g, db = g"""


    @staticmethod
    def forward(ctx, a, b):
        try:
            out = a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None
        return fix_float(out, a, b)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class Sub(Function):
    """out = a - b;  da = g, db = -g"""

    backward_name = staticmethod(lambda ctx: "RsubBackward1" if _operands(ctx) == "scalar-tensor" else "SubBackward0")


    @staticmethod
    def forward(ctx, a, b):
        try:
            out = a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None
        return fix_float(out, a, b)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, (-grad_output if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """out = a * b;  da = g * b, db = g * a"""


    @staticmethod
    def forward(ctx, a, b):
        try:
            out = a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None
        need_a, need_b = ctx.needs_input_grad
        if need_a or need_b:
            ctx.save_for_backward(b if need_a else None, a if need_b else None)
        return fix_float(out, a, b)

    @staticmethod
    def backward(ctx, grad_output):
        b, a = ctx.saved_tensors
        return (None if b is None else grad_output * b,
                None if a is None else grad_output * a)


class Div(Function):
    """out = a / b;  da = g / b, db = -g * a / b²"""


    @staticmethod
    def forward(ctx, a, b):
        try:
            out = np.true_divide(a, b)
        except ValueError:
            raise _broadcast_error("div", a, b) from None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        return fix_float(out, a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        ga = grad_output / b if ctx.needs_input_grad[0] else None
        gb = -grad_output * a / (b * b) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """out = -x;  dx = -g"""


    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, grad_output):
        return -grad_output


def _describe(v) -> str:
    if isinstance(v, np.ndarray) and v.ndim:
        return f"a tensor of shape {v.shape} with negative values"
    return repr(v.item() if isinstance(v, (np.ndarray, np.generic)) else v)


class Pow(Function):
    """out = a ** b;  da = g · b · a^(b-1),  db = g · a^b · ln a (taken as 0 where a = 0)"""

    backward_name = staticmethod(lambda ctx: _pow_name(ctx))


    @staticmethod
    def forward(ctx, a, b):
        if _is_integral(a) and _is_integral(b) and np.any(np.less(b, 0)):
            # NOTE: torch raises for a negative Python exponent and, for a tensor of
            # exponents, truncates (2 ** -1 == 0); NumPy cannot do the latter, so both raise.
            raise DTypeError(f"pow: Integers to negative integer powers are not allowed "
                             f"(base dtype {np.result_type(a)}, exponent {_describe(b)}); "
                             f"use a floating-point base, e.g. x.float() ** -1")
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out = np.power(a, b)
        except ValueError:
            raise _broadcast_error("pow", a, b) from None
        out = fix_float(np.asarray(out), a, b)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            # (the output only for b's gradient: an in-place change of it is no concern else)
            ctx.save_for_backward(a, b, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        a, b, out = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            if isinstance(b, (int, float)) and b == 2:
                ga = grad_output * 2 * a
            else:
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    ga = grad_output * b * np.power(a, b - 1)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                log_a = np.where(a == 0, 0.0, np.log(np.where(a == 0, 1, a)))
                # (an integer base gives a float64 log; the gradient keeps the output's dtype)
                gb = (grad_output * out * log_a).astype(grad_output.dtype, copy=False)
        return ga, gb


# Exp, Log, Sqrt, Sin, Cos, ... share one shape (forward saves what backward needs) but are
# written out rather than built on math._Unary: they are on hot paths (no f/df call per use)
# and some backwards divide where _Unary multiplies by f' (the results stay bit for bit).
class Exp(Function):
    """out = eˣ;  dx = g · out"""


    @staticmethod
    def forward(ctx, x):
        with np.errstate(over="ignore"):
            out = np.exp(as_float(x))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * out


class Log(Function):
    """out = ln x;  dx = g / x"""


    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(as_float(x))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        with np.errstate(divide="ignore"):
            return grad_output / x


class Cast(Function):
    """out = x converted to another dtype;  dx = g converted back (none for non-float inputs)"""

    backward_name = 'ToCopyBackward0'

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.in_dtype.kind != "f":
            return None, None
        return grad_output.astype(ctx.in_dtype), None


class Clone(Function):
    """out = a copy of x;  dx = g"""


    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class Sqrt(Function):
    """out = √x;  dx = g / (2·out)"""


    @staticmethod
    def forward(ctx, x):
        with np.errstate(invalid="ignore"):
            out = np.sqrt(as_float(x))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        # NOTE: at x = 0 the slope is infinite: the gradient is inf (NaN where g = 0), as torch.
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad_output / (out * 2)


class Rsqrt(Function):
    """out = 1/√x;  dx = -g · out³ / 2"""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1.0 / np.sqrt(as_float(x))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        with np.errstate(invalid="ignore", over="ignore"):
            return grad_output * (out * out * out * -0.5)


class Abs(Function):
    """out = |x|;  dx = g · sign(x)"""

    @staticmethod
    def forward(ctx, x):
        if x.dtype.kind == "b":
            raise DTypeError("abs: not supported for bool tensors")
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # NOTE: |x| has a kink at 0; like torch the gradient there is sign(0) = 0.
        return grad_output * np.sign(x)


class Sign(Function):
    """out = sign(x) ∈ {-1, 0, 1};  dx = 0 (piecewise constant)"""

    @staticmethod
    def forward(ctx, x):
        if x.dtype.kind == "b":
            return x.copy()
        out = np.sign(x)
        if x.dtype.kind == "f":
            out[np.isnan(out)] = 0  # torch: sign(NaN) = 0
        return out

    @staticmethod
    def backward(ctx, grad_output):
        # NOTE: the derivative is 0 wherever it exists (and taken as 0 at the jump), so
        # the input gets a gradient of zeros, as in torch, rather than none.
        return np.zeros_like(grad_output)


class Sin(Function):
    """out = sin x;  dx = g · cos x"""

    @staticmethod
    def forward(ctx, x):
        x = as_float(x)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        with np.errstate(invalid="ignore"):
            return np.sin(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        with np.errstate(invalid="ignore"):
            return grad_output * np.cos(x)


class Cos(Function):
    """out = cos x;  dx = -g · sin x"""

    @staticmethod
    def forward(ctx, x):
        x = as_float(x)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        with np.errstate(invalid="ignore"):
            return np.cos(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        with np.errstate(invalid="ignore"):
            return grad_output * -np.sin(x)


class Square(Function):
    """out = x²;  dx = 2 · g · x"""

    backward_name = 'PowBackward0'

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        if x.dtype.kind == "b":
            x = x.astype(np.int64)
        with np.errstate(over="ignore"):
            return np.square(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x * 2)


class Clamp(Function):
    """out = min(max(x, lo), hi);  dx = g·[lo ≤ x ≤ hi],  dlo = g·[x < lo < hi],
    dhi = g·[x > hi or hi < lo]   (lo, hi: numbers, arrays or None)"""

    backward_name = 'ClampBackward1'

    @staticmethod
    def forward(ctx, x, lo, hi):
        try:
            out = x if lo is None else np.maximum(x, lo)
            if hi is not None:
                out = np.minimum(out, hi)
        except ValueError:
            raise ShapeError(f"clamp: input of shape {x.shape}, min of shape {_shape(lo)} and "
                             f"max of shape {_shape(hi)} cannot be broadcast together") from None
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, lo, hi)
        if out.dtype == F64 and not (x.dtype == F64 or is_f64(lo) or is_f64(hi)):
            out = out.astype(float_result(x, lo, hi))  # (a float64 input stays float64, 0-d too)
        return out if out is not x else x.copy()

    @staticmethod
    def backward(ctx, grad_output):
        x, lo, hi = ctx.saved_tensors
        need_x, need_lo, need_hi = ctx.needs_input_grad
        gx = glo = ghi = None
        # NOTE: the boundaries belong to the inside, as in torch: x exactly at min or max
        # gets the gradient, the bound does not. Where min > max the output is max
        # everywhere, so max gets it all. (With min == max and x outside, torch gives
        # the gradient to no one; so do we.)
        if need_x:
            if lo is None:
                inside = x <= hi
            else:
                inside = x >= lo
                if hi is not None:
                    inside &= x <= hi
            gx = grad_output * inside
        if need_lo:
            below = x < lo
            if hi is not None:
                below &= lo < hi
            glo = grad_output * below
        if need_hi:
            above = x > hi
            if lo is not None:
                above |= hi < lo
            ghi = grad_output * above
        return gx, glo, ghi


def _float_mask(mask: np.ndarray, dtype) -> np.ndarray:
    return mask.astype(dtype, copy=False)


class _Extremum:
    """Shared body of maximum and minimum: ``f`` picks the winner of each pair; ``loses``
    gives the ufuncs that mark where ``a``, then ``b``, loses (see ``_extremum_grads``)."""

    @staticmethod
    def forward(ctx, a, b):
        try:
            out = ctx.op.f(a, b)
        except ValueError:
            raise _broadcast_error(ctx.op.f.__name__, a, b) from None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        return fix_float(np.asarray(out), a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        a_loses, b_loses = ctx.op.loses
        return _extremum_grads(ctx, grad_output, a_loses(a, b), b_loses(a, b), np.equal(a, b))


class Maximum(_Extremum, Function):
    """out = max(a, b);  da = g·([a > b] + ½[a = b]),  db = g·([b > a] + ½[a = b])"""

    f = staticmethod(np.maximum)
    loses = (np.less, np.greater)


class Minimum(_Extremum, Function):
    """out = min(a, b);  da = g·([a < b] + ½[a = b]),  db = g·([b < a] + ½[a = b])"""

    f = staticmethod(np.minimum)
    loses = (np.greater, np.less)


def _extremum_grads(ctx, g, a_loses, b_loses, tie):
    # NOTE: at a tie max/min is not differentiable; like torch, each side gets half the
    # gradient. Where either side is NaN (the output is NaN) both get all of it, as in torch.
    dt = g.dtype
    half_tie = _float_mask(tie, dt) * 0.5
    ga = gb = None
    if ctx.needs_input_grad[0]:
        ga = g * (_float_mask(~a_loses, dt) - half_tie)
    if ctx.needs_input_grad[1]:
        gb = g * (_float_mask(~b_loses, dt) - half_tie)
    return ga, gb


class Where(Function):
    """out = x where cond else y;  dx = g·[cond],  dy = g·[¬cond]"""

    @staticmethod
    def forward(ctx, cond, x, y):
        try:
            out = np.where(cond, x, y)
        except ValueError:
            raise ShapeError(f"where: condition of shape {_shape(cond)}, input of shape "
                             f"{_shape(x)} and other of shape {_shape(y)} cannot be broadcast "
                             f"together") from None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            ctx.save_for_backward(cond)
        return fix_float(out, x, y)

    @staticmethod
    def backward(ctx, grad_output):
        (cond,) = ctx.saved_tensors
        # NOTE: np.where rather than a product with the mask, so that an inf or NaN in
        # the incoming gradient stays on its own side (where() is how NaNs get masked).
        zero = grad_output.dtype.type(0)
        gx = np.where(cond, grad_output, zero) if ctx.needs_input_grad[1] else None
        gy = np.where(cond, zero, grad_output) if ctx.needs_input_grad[2] else None
        return None, gx, gy


# -- public functions ------------------------------------------------------------------

def add(input, other, *, alpha=1):
    """input + alpha * other, broadcasting."""
    other = check_operand(other, "add")
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    if not isinstance(input, Tensor):
        return Add.apply(check_operand(input, "add"), other)
    return Add.apply(input, other)


def sub(input, other, *, alpha=1):
    """input - alpha * other, broadcasting."""
    other = check_operand(other, "sub")
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return Sub.apply(check_operand(input, "sub"), other)


def mul(input, other):
    """input * other, element-wise, broadcasting."""
    return Mul.apply(check_operand(input, "mul"), check_operand(other, "mul"))


def div(input, other):
    """input / other (true division), broadcasting."""
    return Div.apply(check_operand(input, "div"), check_operand(other, "div"))


def neg(input):
    """-input."""
    return Neg.apply(input)


def pow(input, exponent):  # noqa: A001 (PyTorch's name)
    """input ** exponent; either may be a tensor or a number."""
    return Pow.apply(check_operand(input, "pow"), check_operand(exponent, "pow"))


def exp(input):
    """eˣ element-wise."""
    return Exp.apply(input)


def log(input):
    """Natural logarithm element-wise (-inf at 0, nan below)."""
    return Log.apply(input)


def cast(input, dtype):
    """``input`` converted to ``dtype`` (differentiable between float dtypes)."""
    from backprop.dtypes import to_numpy_dtype

    np_dtype = to_numpy_dtype(dtype)
    if input._data.dtype == np_dtype:
        return input
    if np_dtype.kind != "f" and input._requires_grad:
        out = Cast.apply(input.detach(), np_dtype)
        return out
    return Cast.apply(input, np_dtype)


def clone(input):
    """A copy of ``input`` with its own storage; gradients pass through."""
    return Clone.apply(input)


def sqrt(input):
    """√input element-wise (NaN below 0; integer inputs give float32)."""
    return Sqrt.apply(require_tensor(input, "sqrt"))


def rsqrt(input):
    """1 / √input element-wise (inf at 0, NaN below)."""
    return Rsqrt.apply(require_tensor(input, "rsqrt"))


def abs(input):  # noqa: A001 (PyTorch's name)
    """|input| element-wise; the gradient at 0 is 0."""
    return Abs.apply(require_tensor(input, "abs"))


def sign(input):
    """-1, 0 or 1 by the sign of each element (0 for NaN); the gradient is zero."""
    return Sign.apply(require_tensor(input, "sign"))


def sin(input):
    """sine element-wise (radians)."""
    return Sin.apply(require_tensor(input, "sin"))


def cos(input):
    """cosine element-wise (radians)."""
    return Cos.apply(require_tensor(input, "cos"))


def square(input):
    """input² element-wise."""
    return Square.apply(require_tensor(input, "square"))


def _bound(value, op: str):
    if value is None or isinstance(value, Tensor):
        return value
    return check_operand(value, op)


def clamp(input, min=None, max=None):  # noqa: A002 (PyTorch's names)
    """Limit every element to [min, max]; either bound may be None, a number or a tensor.

    The gradient is 1 inside the range, boundaries included, and 0 outside; a tensor
    bound gets the gradient where it is the one that limits. If min > max, every
    element becomes max (as in torch).

    Example::

        x = backprop.tensor([-2.0, 0.5, 3.0])
        backprop.clamp(x, min=0.0, max=1.0)     # tensor([0.0000, 0.5000, 1.0000])
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    return Clamp.apply(require_tensor(input, "clamp"), _bound(min, "clamp"), _bound(max, "clamp"))


clip = clamp


def clamp_min(input, min):  # noqa: A002
    """clamp(input, min=min)."""
    return clamp(input, min=min)


def clamp_max(input, max):  # noqa: A002
    """clamp(input, max=max)."""
    return clamp(input, max=max)


def maximum(input, other):
    """Element-wise maximum, broadcasting (NaN wins); ties share the gradient equally."""
    return Maximum.apply(check_operand(input, "maximum"), check_operand(other, "maximum"))


def minimum(input, other):
    """Element-wise minimum, broadcasting (NaN wins); ties share the gradient equally."""
    return Minimum.apply(check_operand(input, "minimum"), check_operand(other, "minimum"))


def where(condition, input=None, other=None):
    """Pick ``input`` where the bool ``condition`` holds and ``other`` elsewhere (broadcasting).

    ``input`` and ``other`` may be tensors or numbers. With only ``condition``, returns
    the indices of its True elements, like ``nonzero(as_tuple=True)``.

    Example::

        x = backprop.tensor([-1.0, 2.0, -3.0])
        backprop.where(x > 0, x, 0.0)           # tensor([0., 2., 0.])
    """
    if isinstance(condition, Tensor):
        cond = condition._data
    elif isinstance(condition, (np.ndarray, np.bool_, bool)):
        cond = np.asarray(condition)
    else:
        raise TypeError(f"where: expected condition to be a bool Tensor, got "
                        f"{type(condition).__name__}")
    if cond.dtype.kind != "b":
        raise DTypeError(f"where: expected condition to be a bool tensor, got dtype "
                         f"{cond.dtype} (compare it, e.g. where(x > 0, ...), or call .bool())")
    if input is None and other is None:
        return tuple(_make(i.astype(np.int64, copy=False)) for i in np.nonzero(cond))
    if input is None or other is None:
        raise TypeError("where: pass both input and other, or neither")
    return Where.apply(cond, check_operand(input, "where"), check_operand(other, "where"))


def _where_method(self, condition, other):
    """``x.where(condition, y)`` is ``where(condition, x, y)``."""
    return where(condition, self, other)


def _compare(np_fn, name):
    def compare(input, other):
        a = input._data if isinstance(input, Tensor) else input
        other = check_operand(other, name)
        b = other._data if isinstance(other, Tensor) else other
        try:
            return _make(np.asarray(np_fn(a, b)))
        except ValueError:
            raise _broadcast_error(name, a, b) from None

    compare.__name__ = name
    compare.__doc__ = f"Element-wise ``{name}`` comparison; a bool tensor with no gradient."
    return compare


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")


__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "cast", "clone",
           "eq", "ne", "lt", "le", "gt", "ge",
           "sqrt", "rsqrt", "abs", "absolute", "sign", "sgn", "sin", "cos", "square",
           "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "where"]

absolute = abs
sgn = sign

TENSOR_METHODS = {
    "add": add, "sub": sub, "mul": mul, "div": div, "neg": neg, "pow": pow, "exp": exp,
    "log": log, "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
    "cast": cast, "clone": clone, "subtract": sub, "multiply": mul, "divide": div, "negative": neg,
    "sqrt": sqrt, "rsqrt": rsqrt, "abs": abs, "absolute": absolute, "sign": sign, "sgn": sgn,
    "sin": sin, "cos": cos, "square": square, "clamp": clamp, "clip": clip,
    "clamp_min": clamp_min, "clamp_max": clamp_max, "maximum": maximum, "minimum": minimum,
    "where": _where_method,
}


# -- more element-wise functions ----------------------------------------------------------

class Log1p(Function):
    """out = ln(1 + x), accurate for small x;  dx = g / (1 + x)"""

    backward_name = 'Log1PBackward0'

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return fix_float(np.log1p(x), x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        with np.errstate(divide="ignore"):
            return grad_output / (1 + x)


class Expm1(Function):
    """out = eˣ - 1, accurate for small x;  dx = g · (out + 1)"""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(over="ignore"):
            out = fix_float(np.expm1(x), x)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * (out + 1)


def log1p(input):
    """ln(1 + x), accurate near 0."""
    return Log1p.apply(input)


def expm1(input):
    """eˣ - 1, accurate near 0."""
    return Expm1.apply(input)


def _data_of(x, op):
    x = check_operand(x, op)
    return x._data if isinstance(x, Tensor) else x


def floor_divide(input, other):
    """⌊input / other⌋ element-wise (``//``); like PyTorch, it has no gradient."""
    a, b = _data_of(input, "floor_divide"), _data_of(other, "floor_divide")
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.floor_divide(a, b)
    except ValueError:
        raise _broadcast_error("floor_divide", a, b) from None
    return _make(fix_float(np.asarray(out), a, b))


def remainder(input, other):
    """input - ⌊input / other⌋ · other (``%``), with the sign of ``other`` as in Python.

    Built from differentiable ops: d/d input = 1, d/d other = -⌊input / other⌋.
    """
    q = floor_divide(input, other)
    return sub(input, mul(q, other))


def _predicate(np_fn, name, doc):
    def predicate(input):
        return _make(np.asarray(np_fn(_data_of(input, name))))
    predicate.__name__ = name
    predicate.__doc__ = doc
    return predicate


isnan = _predicate(np.isnan, "isnan", "A bool tensor: True where the element is NaN.")
isinf = _predicate(np.isinf, "isinf", "A bool tensor: True where the element is ±inf.")
isfinite = _predicate(np.isfinite, "isfinite", "A bool tensor: True where finite.")


def _bitwise(np_fn, name):
    def op(input, other):
        a, b = _data_of(input, name), _data_of(other, name)
        for v in (a, b):
            if np.asarray(v).dtype.kind == "f" or isinstance(v, float):
                raise DTypeError(f"{name}: expects bool or integer tensors, got a floating-point "
                                 f"operand")
        # mirrors _compare's body: inline in these Tensor operators (&, |, ^), no extra frame
        try:
            return _make(np.asarray(np_fn(a, b)))
        except ValueError:
            raise _broadcast_error(name, a, b) from None
    op.__name__ = name
    op.__doc__ = f"Element-wise ``{name}`` of bool or integer tensors (no gradient)."
    return op


bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")


def bitwise_not(input):
    """``~x``: logical not of a bool tensor, bitwise not of an integer one (no gradient)."""
    a = _data_of(input, "bitwise_not")
    if np.asarray(a).dtype.kind == "f":
        raise DTypeError("bitwise_not: expects a bool or integer tensor, got a floating-point one")
    return _make(np.asarray(np.invert(a)))


def logical_not(input):
    return _make(np.asarray(np.logical_not(_data_of(input, "logical_not"))))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """A bool tensor: |input - other| <= atol + rtol · |other|, element-wise."""
    a, b = _data_of(input, "isclose"), _data_of(other, "isclose")
    return _make(np.asarray(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """True when every element of ``input`` is close to ``other`` (see ``isclose``)."""
    a, b = _data_of(input, "allclose"), _data_of(other, "allclose")
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other) -> bool:
    """True when both tensors have the same shape and elements."""
    a, b = _data_of(input, "equal"), _data_of(other, "equal")
    return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))


__all__ += ["log1p", "expm1", "floor_divide", "remainder", "isnan", "isinf", "isfinite",
            "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "logical_not", "isclose",
            "allclose", "equal"]
TENSOR_METHODS.update({
    "log1p": log1p, "expm1": expm1, "floor_divide": floor_divide, "remainder": remainder,
    "isnan": isnan, "isinf": isinf, "isfinite": isfinite, "bitwise_and": bitwise_and,
    "bitwise_or": bitwise_or, "bitwise_xor": bitwise_xor, "bitwise_not": bitwise_not,
    "logical_not": logical_not, "isclose": isclose, "allclose": allclose, "equal": equal,
})


# -- PyTorch's node names for ops whose name depends on their operands --------------------
def _operands(ctx) -> str:
    """``"tensor-tensor"``, ``"tensor-scalar"`` or ``"scalar-tensor"``: what a binary op got.

    Read from the node's inputs while it has them, else (after backward) from which
    inputs wanted a gradient.
    """
    inputs = getattr(ctx, "inputs", None)
    first, second = (inputs[0] is not None, inputs[1] is not None) if inputs is not None \
        else ctx.needs_input_grad[:2]
    return "tensor-tensor" if first and second else ("tensor-scalar" if first else "scalar-tensor")


def _pow_name(ctx) -> str:
    """``x ** 2`` is PowBackward0, ``x ** y`` PowBackward1 and ``2 ** x`` PowBackward2."""
    return {"tensor-scalar": "PowBackward0", "tensor-tensor": "PowBackward1",
            "scalar-tensor": "PowBackward2"}[_operands(ctx)]
