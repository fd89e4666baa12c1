"""Activation functions: relu, leaky_relu, sigmoid, tanh, gelu, elu, softplus, silu.

Each is one primitive with its own backward, written to be numerically stable
(no overflow and no RuntimeWarning for any finite input) and, where the maths
allows, to reuse the forward output in backward (sigmoid: s(1 - s); tanh: 1 - t²).
Masks are applied by multiplying with bool arrays (see elementwise.py).
"""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import DTypeError, ShapeError
from backprop.ops import _kernels
from backprop.ops._special import ndtr
from backprop.ops._util import require_tensor
from backprop.ops.elementwise import as_float
from backprop.tensor import Tensor

_SQRT_2_OVER_PI = 0.7978845608028654  # √(2/π)
_INV_SQRT_2PI = 0.3989422804014327  # 1/√(2π)
_GELU_C = 0.044715


def _check(input, op: str, kinds: str = "f") -> Tensor:
    """A Tensor whose dtype kind is one of ``kinds`` (NumPy's: f float, i/u integer, b bool)."""
    if not isinstance(input, Tensor):  # (tested here, so relu & co. pay no extra frame)
        require_tensor(input, op)  # raises, with the one message
    if input._data.dtype.kind not in kinds:
        what = "a floating-point" if kinds == "f" else "a numeric (non-bool)"
        raise DTypeError(f"{op}: expected {what} tensor, got {input.dtype}")
    return input


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e⁻ˣ) without overflow: only e^(-|x|) ∈ (0, 1] is ever computed."""
    e = np.exp(-np.abs(x))
    d = np.asarray(e + 1.0)  # (asarray: ufuncs turn 0-d arrays into scalars)
    np.reciprocal(d, out=d)  # 1 / (1 + e^-|x|): the answer for x ≥ 0
    neg = x < 0
    num = e * neg  # e^-|x| / (1 + e^-|x|) = e^x / (1 + e^x) for x < 0; exact 0 or e
    num += ~neg
    num *= d
    return num


class ReLU(Function):
    """out = max(x, 0);  dx = g · [x > 0]"""

    backward_name = 'ReluBackward0'


    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        # NOTE: relu has a kink at 0; like torch we take the gradient there to be 0, and a
        # NaN input passes its gradient through, as in torch. out is max(x, 0): never
        # negative, so out != 0 is exactly torch's "not out <= 0", in one ufunc.
        if _kernels.usable(grad_output, out) and grad_output.shape == out.shape:
            dx = np.empty_like(out)
            _kernels.KERNELS.relu_backward(grad_output, out, dx, out.size)  # the same, one pass
            return dx
        return grad_output * (out != 0)


class LeakyReLU(Function):
    """out = x if x > 0 else slope·x;  dx = g · (1 if x > 0 else slope)"""

    backward_name = 'LeakyReluBackward0'

    @staticmethod
    def forward(ctx, x, negative_slope):
        pos = x > 0
        if 0 <= negative_slope <= 1:  # then the larger of x and slope·x is the answer
            out = np.maximum(x, x * negative_slope)
        else:
            with np.errstate(over="ignore"):
                out = np.where(pos, x, x * negative_slope)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(pos)
            ctx.slope = negative_slope
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (pos,) = ctx.saved_tensors
        # NOTE: at x = 0 the slope is taken from the left (negative_slope), as torch.
        factor = np.multiply(~pos, ctx.slope, dtype=grad_output.dtype)
        factor += pos  # exactly 1 or slope
        return grad_output * factor, None


class Sigmoid(Function):
    """out = σ(x) = 1 / (1 + e⁻ˣ);  dx = g · out · (1 - out)"""


    @staticmethod
    def forward(ctx, x):
        out = _sigmoid(as_float(x))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (s,) = ctx.saved_tensors
        return grad_output * (s * (1.0 - s))


class Tanh(Function):
    """out = tanh x;  dx = g · (1 - out²)"""


    @staticmethod
    def forward(ctx, x):
        out = np.tanh(as_float(x))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (t,) = ctx.saved_tensors
        return grad_output * (1.0 - t * t)


class GELU(Function):
    """out = x · Φ(x) (Φ the standard normal CDF);  dx = g · (Φ(x) + x · φ(x))"""

    backward_name = 'GeluBackward0'

    @staticmethod
    def forward(ctx, x):
        cdf = ndtr(x).astype(x.dtype, copy=False)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, grad_output):
        x, cdf = ctx.saved_tensors
        # |x| is capped where φ(x) has long underflowed to 0, so x² cannot overflow.
        xc = np.clip(x, -40.0, 40.0)
        pdf = np.exp(xc * xc * -0.5)
        pdf *= _INV_SQRT_2PI
        pdf *= x
        pdf += cdf
        return grad_output * pdf


class GELUTanh(Function):
    """out = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³);
    dx = g · (½(1 + tanh u) + ½x(1 - tanh² u) · √(2/π)(1 + 3·0.044715x²))"""

    backward_name = 'GeluBackward0'

    @staticmethod
    def forward(ctx, x):
        # tanh u is ±1 to the last bit well before |x| = 10; capping x there keeps x³
        # from overflowing without changing the result.
        xc = np.clip(x, -10.0, 10.0)
        t = np.tanh(_SQRT_2_OVER_PI * (xc + _GELU_C * xc * xc * xc))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, t)
        return 0.5 * x * (1.0 + t)

    @staticmethod
    def backward(ctx, grad_output):
        x, t = ctx.saved_tensors
        xc = np.clip(x, -10.0, 10.0)
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * xc * xc)
        d = 0.5 * xc * (1.0 - t * t) * du
        d += 0.5 * (1.0 + t)
        return grad_output * d


class ELU(Function):
    """out = x if x > 0 else α(eˣ - 1);  dx = g · (1 if x > 0 else α·eˣ)"""

    backward_name = 'EluBackward0'

    @staticmethod
    def forward(ctx, x, alpha):
        # eˣ - 1 on the negative side, exactly 0 for x > 0 (and for NaN: fmin skips it,
        # so the NaN reaches the output only through max(x, 0)).
        em1 = np.expm1(np.fmin(x, 0))
        out = np.maximum(x, 0)
        out += alpha * em1
        if ctx.needs_input_grad[0]:
            pos = np.asarray(x <= 0)
            np.logical_not(pos, out=pos)  # torch's test is x <= 0, so NaN counts as positive
            ctx.save_for_backward(em1, pos)
            ctx.alpha = alpha
        return out

    @staticmethod
    def backward(ctx, grad_output):
        em1, pos = ctx.saved_tensors
        # NOTE: at x = 0 the gradient is α (the left derivative), as torch.
        factor = em1 + 1.0  # eˣ for x ≤ 0 (and 1 for x > 0, masked out below)
        factor *= ctx.alpha
        factor *= ~pos
        factor += pos
        return grad_output * factor, None


class Softplus(Function):
    """out = log(1 + e^(βx)) / β, or x where βx > threshold;  dx = g · σ(βx), or g there"""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        with np.errstate(over="ignore"):  # β·x may overflow to ±inf: still the right branch
            bx = x * beta if beta != 1 else x
        # max(βx, 0) + log(1 + e^-|βx|): the exponential never overflows.
        out = np.asarray(np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx))))
        if beta != 1:
            out /= beta
        linear = bx > threshold
        any_linear = bool(linear.any())
        if any_linear:
            np.copyto(out, x, where=linear)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out, linear if any_linear else None)
            ctx.beta = beta
        return out

    @staticmethod
    def backward(ctx, grad_output):
        out, linear = ctx.saved_tensors
        # σ(βx) = 1 - e^(-softplus(βx)) = -expm1(-β·out): the output reused, accurate
        # even where σ is tiny.
        with np.errstate(over="ignore"):  # only where out is linear, which is overwritten
            s = np.asarray(np.expm1(out * -ctx.beta if ctx.beta != 1 else -out))
        np.negative(s, out=s)
        if linear is not None:
            np.copyto(s, 1, where=linear)
        return grad_output * s, None, None


class SiLU(Function):
    """out = x · σ(x);  dx = g · σ(x) · (1 + x · (1 - σ(x)))"""

    backward_name = 'SiluBackward0'

    @staticmethod
    def forward(ctx, x):
        s = _sigmoid(x)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad_output):
        x, s = ctx.saved_tensors
        d = 1.0 - s
        d *= x
        d += 1.0
        d *= s
        return grad_output * d


# -- public functions ------------------------------------------------------------------

def relu(input):
    """max(input, 0) element-wise; the gradient at 0 is 0.

    Example::

        backprop.relu(backprop.tensor([-1.0, 0.0, 2.0]))   # tensor([0., 0., 2.])
    """
    return ReLU.apply(_check(input, "relu", "fiu"))


def leaky_relu(input, negative_slope=0.01):
    """input where positive, ``negative_slope`` · input elsewhere."""
    return LeakyReLU.apply(_check(input, "leaky_relu"), float(negative_slope))


def sigmoid(input):
    """The logistic function 1 / (1 + e⁻ˣ), stable for any input (integers give float32).

    Example::

        backprop.sigmoid(backprop.tensor([-1000.0, 0.0, 1000.0]))   # tensor([0.0, 0.5, 1.0])
    """
    return Sigmoid.apply(_check(input, "sigmoid", "fiub"))


def tanh(input):
    """The hyperbolic tangent element-wise (integers give float32)."""
    return Tanh.apply(_check(input, "tanh", "fiub"))


def gelu(input, approximate="none"):
    """The Gaussian error linear unit x·Φ(x); ``approximate='tanh'`` uses the tanh form.

    Example::

        backprop.gelu(backprop.tensor([-1.0, 0.0, 1.0]))   # tensor([-0.1587, 0.0000, 0.8413])
    """
    _check(input, "gelu")
    if approximate == "none":
        return GELU.apply(input)
    if approximate == "tanh":
        return GELUTanh.apply(input)
    raise ValueError(f"gelu: approximate argument must be either 'none' or 'tanh', "
                     f"got {approximate!r}")


def elu(input, alpha=1.0):
    """input where positive, alpha·(eˣ - 1) elsewhere."""
    return ELU.apply(_check(input, "elu"), float(alpha))


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + e^(β·x)) / β, smooth relu; linear (= x) where β·x > threshold."""
    return Softplus.apply(_check(input, "softplus"), float(beta), float(threshold))


def silu(input):
    """x · σ(x) (also called swish)."""
    return SiLU.apply(_check(input, "silu"))


# -- the piecewise-linear ("hard") family, log-sigmoid, mish, prelu ---------------------------
class Hardtanh(Function):
    """out = clamp(x, lo, hi);  dx = g where lo < x < hi, 0 elsewhere (0 at the ends, as torch)"""

    @staticmethod
    def forward(ctx, x, lo, hi):
        if ctx.needs_input_grad[0]:
            inside = np.asarray(x > lo)
            inside &= x < hi
            ctx.save_for_backward(inside)
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        (inside,) = ctx.saved_tensors
        return grad_output * inside, None, None


class Hardsigmoid(Function):
    """out = clamp(x/6 + 1/2, 0, 1);  dx = g/6 where -3 < x < 3, 0 elsewhere"""

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            inside = np.asarray(x > -3.0)
            inside &= x < 3.0
            ctx.save_for_backward(inside)
        out = x / 6.0
        out += 0.5
        return np.clip(out, 0.0, 1.0, out=out)

    @staticmethod
    def backward(ctx, grad_output):
        (inside,) = ctx.saved_tensors
        return grad_output * inside / 6.0


class Hardswish(Function):
    """out = x · clamp(x/6 + 1/2, 0, 1);  dx = g · (0 if x ≤ -3, x/3 + 1/2 if x < 3, else 1)"""

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        gate = x / 6.0
        gate += 0.5
        np.clip(gate, 0.0, 1.0, out=gate)
        return x * gate

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # NOTE: torch's ends: 0 at x = -3, 1 at x = 3 (and 1 for NaN: the "else" branch).
        d = np.where(x < 3.0, x / 3.0 + 0.5, 1.0).astype(x.dtype, copy=False)
        d *= ~(x <= -3.0)
        return grad_output * d


class LogSigmoid(Function):
    """out = log σ(x) = min(x, 0) - log(1 + e^-|x|);  dx = g · σ(-x)"""

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * _sigmoid(-x)


def _bound_pair(lo, hi, op: str):
    lo, hi = float(lo), float(hi)
    if lo > hi:
        raise ValueError(f"{op}: min_val cannot be greater than max_val, got min_val={lo} and "
                         f"max_val={hi}")
    return lo, hi


def hardtanh(input, min_val=-1.0, max_val=1.0):
    """clamp(x, min_val, max_val), with gradient 0 at and beyond the ends.

    Example::

        backprop.ops.hardtanh(backprop.tensor([-2.0, 0.5, 2.0]))   # tensor([-1.0, 0.5, 1.0])
    """
    lo, hi = _bound_pair(min_val, max_val, "hardtanh")
    return Hardtanh.apply(_check(input, "hardtanh"), lo, hi)


def relu6(input):
    """min(max(x, 0), 6): hardtanh between 0 and 6."""
    return Hardtanh.apply(_check(input, "relu6"), 0.0, 6.0)


def hardsigmoid(input):
    """clamp(x/6 + 1/2, 0, 1), a piecewise-linear sigmoid."""
    return Hardsigmoid.apply(_check(input, "hardsigmoid"))


def hardswish(input):
    """x · hardsigmoid(x) (MobileNetV3's activation)."""
    return Hardswish.apply(_check(input, "hardswish"))


def logsigmoid(input):
    """log σ(x), exact for inputs of any size (never log(0))."""
    return LogSigmoid.apply(_check(input, "logsigmoid"))


def mish(input):
    """x · tanh(softplus(x)), written from those primitives.

    Example::

        backprop.ops.mish(backprop.tensor([0.0, 1.0]))   # tensor([0.0000, 0.8651])
    """
    return _check(input, "mish") * tanh(softplus(input))


def prelu(input, weight):
    """x where x > 0, weight · x elsewhere; ``weight`` has one value, or one per channel (dim 1).

    Example::

        backprop.ops.prelu(backprop.tensor([-2.0, 3.0]), backprop.tensor([0.25]))
        # tensor([-0.5000, 3.0000])
    """
    from backprop.ops.elementwise import where

    x = _check(input, "prelu")
    if not isinstance(weight, Tensor):
        raise TypeError(f"prelu: expected weight to be a Tensor, got {type(weight).__name__}")
    n = weight._data.size
    channels = x._data.shape[1] if x._data.ndim >= 2 else 1
    if weight._data.ndim > 1 or (n != 1 and n != channels):
        raise ShapeError(f"prelu: mismatch of parameter numbers and input channel size: weight "
                         f"of shape {weight._data.shape} for input of shape {x._data.shape}")
    if n != 1:  # one slope per channel, broadcast over dim 1
        weight = weight.reshape(n, *([1] * (x._data.ndim - 2)))
    elif weight._data.ndim:
        weight = weight.reshape(())
    return where(x > 0, x, weight * x)


__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "silu",
           "hardtanh", "relu6", "hardsigmoid", "hardswish", "logsigmoid", "mish", "prelu"]

TENSOR_METHODS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}
