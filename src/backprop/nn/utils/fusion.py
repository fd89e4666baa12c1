"""Fold an eval-mode BatchNorm into the convolution or linear layer before it, as
``torch.nn.utils.fusion``: one layer computes what the two did, for faster inference.

With the BatchNorm's running statistics μ, σ², affine γ, β and s = γ / √(σ² + ε)::

    W' = W · s (per output channel)      b' = (b - μ) · s + β

Example::

    conv, bn = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
    fused = nn.utils.fuse_conv_bn_eval(conv.eval(), bn.eval())
    fused(x)    # == bn(conv(x)) in eval mode
"""
from __future__ import annotations

import copy

import numpy as np

from backprop.nn.parameter import Parameter
from backprop.tensor import Tensor

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights"]


def _array(t, like: np.ndarray, fill: float, n: int) -> np.ndarray:
    if t is None:
        return np.full(n, fill, dtype=like.dtype)
    return t._data if isinstance(t, Tensor) else np.asarray(t, dtype=like.dtype)


def _stats(bn_rm, bn_rv, bn_eps, bn_w, bn_b, like: np.ndarray) -> tuple:
    """(s, shift): the BatchNorm as y = x·s + shift."""
    rm, rv = bn_rm._data, bn_rv._data
    n = rm.shape[0]
    scale = _array(bn_w, like, 1.0, n) / np.sqrt(rv + bn_eps)
    return scale, _array(bn_b, like, 0.0, n) - rm * scale


def _params(w: np.ndarray, b: np.ndarray, like_w: Tensor, like_b) -> tuple:
    weight = Parameter(w.astype(like_w._data.dtype, copy=False), like_w.requires_grad)
    req_b = like_b.requires_grad if isinstance(like_b, Tensor) else like_w.requires_grad
    return weight, Parameter(b.astype(like_w._data.dtype, copy=False), req_b)


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b,
                         transpose: bool = False) -> tuple:
    """The (weight, bias) Parameters of a convolution fused with the BatchNorm after it.

    ``transpose``: the weight is a transposed convolution's (in, out, ...), whose output
    channels are dim 1.
    """
    w = conv_w._data
    scale, shift = _stats(bn_rm, bn_rv, bn_eps, bn_w, bn_b, w)
    shape = [1, -1] if transpose else [-1, 1]
    shape += [1] * (w.ndim - 2)
    b = _array(conv_b, w, 0.0, scale.shape[0])
    return _params(w * scale.reshape(shape), b * scale + shift, conv_w, conv_b)


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of ``conv`` that computes ``bn(conv(x))`` (both in eval mode).

    Example::

        fused = nn.utils.fuse_conv_bn_eval(conv.eval(), bn.eval())
    """
    if conv.training or bn.training:
        raise RuntimeError("fuse_conv_bn_eval: fusion only for eval! Call .eval() on both "
                           "the convolution and the BatchNorm first")
    if bn.running_mean is None or bn.running_var is None:
        raise RuntimeError("fuse_conv_bn_eval: the BatchNorm must track running statistics")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias,
        transpose)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b) -> tuple:
    """The (weight, bias) Parameters of a linear layer fused with the BatchNorm after it."""
    w = linear_w._data
    scale, shift = _stats(bn_rm, bn_rv, bn_eps, bn_w, bn_b, w)
    b = _array(linear_b, w, 0.0, scale.shape[0])
    return _params(w * scale[:, None], b * scale + shift, linear_w, linear_b)


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` that computes ``bn(linear(x))`` (both in eval mode).

    Example::

        fused = nn.utils.fuse_linear_bn_eval(nn.Linear(4, 8).eval(), nn.BatchNorm1d(8).eval())
    """
    if linear.training or bn.training:
        raise RuntimeError("fuse_linear_bn_eval: fusion only for eval! Call .eval() on both "
                           "the linear layer and the BatchNorm first")
    if bn.running_mean is None or bn.running_var is None:
        raise RuntimeError("fuse_linear_bn_eval: the BatchNorm must track running statistics")
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise ValueError(f"fuse_linear_bn_eval: the linear layer's out_features "
                         f"({linear.out_features}) must match the BatchNorm's num_features "
                         f"({bn.num_features})")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused
