"""Functions built on the primitives in ``backprop.ops``, with no backward of their own.

softmax and log_softmax call fused primitives (ops/fused.py) for speed and
stability; dropout is a multiplication by a random mask. This module sits above ``backprop.ops`` in the layer
contract, so it installs its own ``Tensor`` methods (``x.softmax(dim)``).
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop import random as _random
from backprop.ops._util import norm_dim, require_float
from backprop.ops.fused import LogSoftmax, Softmax
from backprop.tensor import Tensor, _make


def log_softmax(input, dim, dtype=None):
    """log softmax along ``dim``: x - log Σ exp(x), stable for huge logits (one fused op).

    Example::

        backprop.log_softmax(backprop.tensor([1e4, 0.0]), 0)   # tensor([0., -10000.])
    """
    if dtype is not None:
        input = input.to(dtype)
    require_float(input, "log_softmax")
    return LogSoftmax.apply(input, norm_dim(dim, input._data.ndim, "log_softmax"))


def softmax(input, dim, dtype=None):
    """softmax along ``dim``: exp(x) / Σ exp(x), stable for huge logits (one fused op).

    Example::

        backprop.softmax(backprop.tensor([1.0, 1.0]), 0)       # tensor([0.5, 0.5])
    """
    if dtype is not None:
        input = input.to(dtype)
    require_float(input, "softmax")
    return Softmax.apply(input, norm_dim(dim, input.ndim, "softmax"))


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
