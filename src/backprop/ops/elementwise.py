"""Element-wise primitives: arithmetic, powers, exponentials, comparisons.

Binary ops broadcast in forward and return gradients in the broadcast shape;
the engine reduces them back to each input's shape (``engine.unbroadcast``).
"""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import ShapeError
from backprop.ops._util import F64, check_operand, fix_float, is_f64
from backprop.tensor import Tensor, _make


def _shape(x):
    return np.shape(x)


def _broadcast_error(op: str, a, b) -> ShapeError:
    return ShapeError(f"{op}: shapes {_shape(a)} and {_shape(b)} cannot be broadcast together")


class Add(Function):
    """out = a + b;  da = g, db = g"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            out = a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None
        if out.dtype == F64 and not is_f64(a) and not is_f64(b):
            out = out.astype(np.float32)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class Sub(Function):
    """out = a - b;  da = g, db = -g"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            out = a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None
        if out.dtype == F64 and not is_f64(a) and not is_f64(b):
            out = out.astype(np.float32)
        return out

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
        if out.dtype == F64 and not is_f64(a) and not is_f64(b):
            out = out.astype(np.float32)
        return out

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
            ctx.save_for_backward(a, b)
        if out.dtype == F64 and not is_f64(a) and not is_f64(b):
            out = out.astype(np.float32)
        return out

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


class Pow(Function):
    """out = a ** b;  da = g · b · a^(b-1),  db = g · a^b · ln a (taken as 0 where a = 0)"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.power(a, b) if not (isinstance(a, np.ndarray) and a.dtype.kind in "iu"
                                             and isinstance(b, (int, np.integer)) and b < 0) \
                    else np.power(a.astype(np.float32), b)
        except ValueError:
            raise _broadcast_error("pow", a, b) from None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b, out)
        return fix_float(np.asarray(out), a, b)

    @staticmethod
    def backward(ctx, grad_output):
        a, b, out = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            if isinstance(b, (int, float)) and b == 2:
                ga = grad_output * 2 * a
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ga = grad_output * b * np.power(a, b - 1)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a == 0, 0.0, np.log(np.where(a == 0, 1, a)))
            gb = grad_output * out * log_a
        return ga, gb


class Exp(Function):
    """out = eˣ;  dx = g · out"""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(over="ignore"):
            out = np.exp(x)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return fix_float(out, x)

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
            return fix_float(np.log(x), x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        with np.errstate(divide="ignore"):
            return grad_output / x


class Cast(Function):
    """out = x converted to another dtype;  dx = g converted back (none for non-float inputs)"""

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
           "eq", "ne", "lt", "le", "gt", "ge"]

TENSOR_METHODS = {
    "add": add, "sub": sub, "mul": mul, "div": div, "neg": neg, "pow": pow, "exp": exp,
    "log": log, "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
    "cast": cast, "clone": clone, "subtract": sub, "multiply": mul, "divide": div, "negative": neg,
}
