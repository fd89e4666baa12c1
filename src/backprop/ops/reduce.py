"""Reductions over one, several or all dimensions, with ``keepdim``."""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.ops._util import norm_dims


def _expand(grad_output, in_shape, axes, keepdim):
    """Put the reduced axes back (size 1) and broadcast to the input's shape."""
    if not keepdim and axes:
        grad_output = np.expand_dims(grad_output, axes)
    return np.broadcast_to(grad_output, in_shape)


class Sum(Function):
    """out = Σ x over axes;  dx = g broadcast back over those axes"""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.in_shape = x.shape
        ctx.axes = axes
        ctx.keepdim = keepdim
        out = np.sum(x, axis=axes, keepdims=keepdim)
        if x.dtype.kind == "b" or x.dtype.kind in "iu":
            out = out.astype(np.int64)
        return np.asarray(out)

    @staticmethod
    def backward(ctx, grad_output):
        return _expand(grad_output, ctx.in_shape, ctx.axes, ctx.keepdim), None, None


class Mean(Function):
    """out = Σ x / n over axes;  dx = g / n broadcast back"""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.in_shape = x.shape
        ctx.axes = axes
        ctx.keepdim = keepdim
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.mean(x, axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output / ctx.n if ctx.n else grad_output
        return _expand(g.astype(grad_output.dtype, copy=False), ctx.in_shape, ctx.axes,
                       ctx.keepdim), None, None


def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001 (PyTorch's name)
    """Sum over ``dim`` (an int, a tuple, or None for all)."""
    if dtype is not None:
        input = input.to(dtype)
    return Sum.apply(input, norm_dims(dim, input.ndim, "sum"), keepdim)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Arithmetic mean over ``dim``; floating-point tensors only."""
    from backprop.ops._util import require_float

    if dtype is not None:
        input = input.to(dtype)
    require_float(input, "mean")
    return Mean.apply(input, norm_dims(dim, input.ndim, "mean"), keepdim)


__all__ = ["sum", "mean"]

TENSOR_METHODS = {"sum": sum, "mean": mean}
