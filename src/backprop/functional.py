"""Composite ops: built from the primitives in ``backprop.ops``, with no backward of their own.

Their gradients come from the primitives they are made of, so there is nothing
here to gradient-check beyond the primitives themselves (the catalogue checks
the composites anyway). This module sits above ``backprop.ops`` in the layer
contract, so it installs its own ``Tensor`` methods (``x.softmax(dim)``).
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop import random as _random
from backprop.ops._util import norm_dim, require_float
from backprop.ops.reduce import logsumexp
from backprop.tensor import Tensor, _make


def log_softmax(input, dim, dtype=None):
    """log softmax along ``dim``: x - logsumexp(x, dim), stable for huge logits.

    Example::

        backprop.log_softmax(backprop.tensor([1e4, 0.0]), 0)   # tensor([0., -10000.])
    """
    if dtype is not None:
        input = input.to(dtype)
    require_float(input, "log_softmax")
    d = norm_dim(dim, input.ndim, "log_softmax")
    return input - logsumexp(input, d, keepdim=True)


def softmax(input, dim, dtype=None):
    """softmax along ``dim``: exp(x) / Σ exp(x), computed as exp(log_softmax(x)).

    Example::

        backprop.softmax(backprop.tensor([1.0, 1.0]), 0)       # tensor([0.5, 0.5])
    """
    if dtype is not None:
        input = input.to(dtype)
    require_float(input, "softmax")
    d = norm_dim(dim, input.ndim, "softmax")
    return (input - logsumexp(input, d, keepdim=True)).exp()


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

    The mask comes from the global generator, so ``backprop.manual_seed`` makes it
    repeat. The identity when not ``training`` or ``p == 0``; zeros when ``p == 1``.

    Example::

        backprop.manual_seed(0)
        backprop.dropout(backprop.ones(6), p=0.5)   # e.g. tensor([2., 0., 2., 2., 0., 0.])
    """
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    require_float(input, "dropout")
    data = input._data
    if p == 1:
        mask = np.zeros(data.shape, dtype=data.dtype)
    else:
        u = _random.generator().random(data.shape, dtype=np.float64 if data.dtype ==
                                       np.float64 else np.float32)
        mask = (u >= p).astype(data.dtype)
        mask *= data.dtype.type(1.0 / (1.0 - p))
    if inplace:
        return input.mul_(mask)
    return input * _make(mask)


__all__ = ["softmax", "log_softmax", "dropout"]

TENSOR_METHODS = {"softmax": softmax, "log_softmax": log_softmax}

for _name, _fn in TENSOR_METHODS.items():
    setattr(Tensor, _name, _fn)
