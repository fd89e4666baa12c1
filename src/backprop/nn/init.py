"""Weight initialisation, as ``torch.nn.init``: fill a tensor in place and return it.

Every function works under ``no_grad`` (so it can fill parameters that require
grad), draws from the seeded global generator of ``backprop.random`` unless a
``generator`` is given, and returns the tensor it filled.

Why scale matters: a layer with fan_in inputs of unit variance and weights of
variance v produces outputs of variance fan_in·v. Xavier/Glorot keeps it near 1
for tanh-like units (v = 2 / (fan_in + fan_out)); Kaiming/He compensates relu's
halving (v = 2 / fan_in). See ``calculate_gain``.

Example::

    w = backprop.empty(256, 784)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")   # U(-b, b), b = √6 / √784
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from backprop import random as _random
from backprop.tensor import Tensor

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended scale of the weights for a non-linearity, as PyTorch's table.

    linear, conv*, sigmoid: 1;  tanh: 5/3;  relu: √2;  leaky_relu: √(2 / (1 + slope²))
    (slope ``param``, default 0.01);  selu: 3/4.

    Example::

        nn.init.calculate_gain("leaky_relu", 0.2)   # 1.3867...
    """
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple:
    """(fan_in, fan_out) of a weight: (in, out) × the receptive field (kernel size)."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions (got shape {tuple(shape)})")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check(tensor, fn: str) -> bool:
    """Validate the target; False when there is nothing to fill (with PyTorch's warning)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(tensor).__name__}")
    if tensor._data.dtype.kind != "f":
        raise TypeError(f"{fn}: expected a floating-point tensor, got {tensor.dtype}")
    if tensor._data.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return False
    return True


def _fill(tensor: Tensor, values) -> Tensor:
    """Write ``values`` into ``tensor`` in place (outside the graph) and record the change."""
    np.copyto(tensor._data, values, casting="unsafe")
    tensor._bump_version()
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with values drawn from U(a, b).

    Example::

        nn.init.uniform_(backprop.empty(3, 5), -0.1, 0.1)
    """
    if not _check(tensor, "uniform_"):
        return tensor
    return _fill(tensor, _random.generator(generator).uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with values drawn from N(mean, std²).

    Example::

        nn.init.normal_(backprop.empty(3, 5), std=0.02)
    """
    if not _check(tensor, "normal_"):
        return tensor
    return _fill(tensor, _random.generator(generator).normal(mean, std, tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None) -> Tensor:
    """Fill with N(mean, std²) restricted to [a, b] (out-of-range draws are redrawn).

    Example::

        nn.init.trunc_normal_(backprop.empty(3, 5), std=0.02, a=-0.04, b=0.04)
    """
    if not _check(tensor, "trunc_normal_"):
        return tensor
    if not a < b:
        raise ValueError(f"trunc_normal_: the interval [a, b] must have a < b, got a={a}, b={b}")
    g = _random.generator(generator)
    values = g.normal(mean, std, tensor.shape)
    bad = (values < a) | (values > b)
    for _ in range(1000):  # each round redraws only the rejected values (vectorised)
        n_bad = int(np.count_nonzero(bad))
        if n_bad == 0:
            break
        values[bad] = g.normal(mean, std, n_bad)
        bad = (values < a) | (values > b)
    else:  # [a, b] is far in a tail: fall back to a uniform draw inside it
        values[bad] = g.uniform(a, b, int(np.count_nonzero(bad)))
    return _fill(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with the value ``val``."""
    if not _check(tensor, "constant_"):
        return tensor
    return _fill(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return constant_(tensor, 0.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    if not _check(tensor, "eye_"):
        return tensor
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta: each output channel
    copies one input channel (per group), so the convolution starts as the identity.

    Example::

        conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        nn.init.dirac_(conv.weight)      # conv(x) == x
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"dirac_: expected a Tensor, got {type(tensor).__name__}")
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got "
                         f"shape {tuple(tensor.shape)}")
    shape = tuple(tensor.shape)
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1 \
            or shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 (size {shape[0]}) must be divisible by groups, got "
                         f"groups={groups!r}")
    if tensor._data.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    per_group = shape[0] // groups
    k = min(per_group, shape[1])
    out = np.zeros(shape, dtype=tensor._data.dtype)
    centre = tuple(n // 2 for n in shape[2:])
    channels = np.arange(k)
    for g in range(groups):
        out[(g * per_group + channels, channels) + centre] = 1
    return _fill(tensor, out)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot uniform: U(-b, b) with b = gain · √(6 / (fan_in + fan_out)).

    Example::

        nn.init.xavier_uniform_(backprop.empty(3, 5), gain=nn.init.calculate_gain("tanh"))
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot normal: N(0, std²) with std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He uniform: U(-b, b) with b = gain · √(3 / fan), gain = calculate_gain(nonlinearity, a).

    Args:
        a: the negative slope of the leaky_relu that follows (only for leaky_relu).
        mode: ``'fan_in'`` keeps the forward variance, ``'fan_out'`` the backward one.

    Example::

        nn.init.kaiming_uniform_(backprop.empty(16, 8), nonlinearity="relu")
    """
    if not _check(tensor, "kaiming_uniform_"):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He normal: N(0, std²) with std = gain / √fan, gain = calculate_gain(nonlinearity, a)."""
    if not _check(tensor, "kaiming_normal_"):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix times ``gain``; dims after the first are flattened.

    Example::

        w = nn.init.orthogonal_(backprop.empty(4, 4))   # w @ w.T ≈ I
    """
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if not _check(tensor, "orthogonal_"):
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _random.generator(generator).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # NOTE: QR's signs are arbitrary; fixing them by diag(R) makes Q uniformly distributed.
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_"]
