"""Shape primitives: views and rearrangements whose backward undoes the rearrangement."""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import ShapeError
from backprop.ops._util import norm_dim


class Reshape(Function):
    """out = x viewed with a new shape;  dx = g reshaped back"""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: shape {tuple(shape)} is invalid for input of shape "
                             f"{x.shape} ({x.size} elements)") from None

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.reshape(ctx.in_shape), None


class Permute(Function):
    """out = x with axes reordered;  dx = g with the inverse order"""

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad_output):
        return np.transpose(grad_output, np.argsort(ctx.axes)), None


def _shape_arg(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{op}: shape must be ints, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def reshape(input, *shape):
    """A tensor with the same data and a new shape (one dimension may be -1)."""
    return Reshape.apply(input, _shape_arg(shape, "reshape"))


def view(input, *shape):
    """Same as ``reshape`` (arrays here are always viewable)."""
    return Reshape.apply(input, _shape_arg(shape, "view"))


def permute(input, *dims):
    """Reorder the dimensions: ``x.permute(2, 0, 1)``."""
    dims = _shape_arg(dims, "permute")
    nd = input.ndim
    axes = tuple(norm_dim(d, nd, "permute") for d in dims)
    if sorted(axes) != list(range(nd)):
        raise ShapeError(f"permute: dims {dims} are not a permutation of the {nd} dimensions "
                         f"of a tensor of shape {input.shape}")
    return Permute.apply(input, axes)


def transpose(input, dim0, dim1):
    """Swap two dimensions."""
    nd = input.ndim
    if nd == 0:
        return input
    d0, d1 = norm_dim(dim0, nd, "transpose"), norm_dim(dim1, nd, "transpose")
    axes = list(range(nd))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return Permute.apply(input, tuple(axes))


def t(input):
    """Transpose a tensor of at most 2 dimensions."""
    if input.ndim > 2:
        raise ShapeError(f"t: expects a tensor with <= 2 dimensions, got shape {input.shape}; "
                         f"use transpose(dim0, dim1) or .mT")
    return input if input.ndim < 2 else Permute.apply(input, (1, 0))


__all__ = ["reshape", "view", "permute", "transpose", "t"]

TENSOR_METHODS = {"reshape": reshape, "view": view, "permute": permute, "transpose": transpose,
                  "t": t, "T": property(lambda self: permute(self, *reversed(range(self.ndim)))),
                  "mT": property(lambda self: transpose(self, -2, -1))}
