"""Affine and shape layers: ``Linear``, ``Identity``, ``Flatten``, ``Unflatten``."""
from __future__ import annotations

import math
import numbers

import numpy as np

from backprop import dtypes as _dt
from backprop import ops as _ops
from backprop.nn import init
from backprop.nn.module import Module
from backprop.nn.parameter import Parameter
from backprop.tensor import _check_device


def _factory(shape: tuple, device, dtype) -> Parameter:
    """An uninitialised parameter of ``shape`` (float32 unless ``dtype``); CPU only."""
    _check_device(device, "layer parameters")  # None: the default device (set_default_device)
    np_dtype = _dt.default_float if dtype is None else _dt.to_numpy_dtype(dtype)
    if np_dtype.kind != "f":
        raise TypeError(f"parameters must have a floating-point dtype, got {dtype}")
    return Parameter(np.empty(shape, dtype=np_dtype))


def _check_size(value, name: str, cls: str, allow_zero: bool = True) -> int:
    if not isinstance(value, (numbers.Integral, np.integer)) or isinstance(value, bool) or \
            value < (0 if allow_zero else 1):
        raise ValueError(f"{cls}: {name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"int, got {value!r}")
    return int(value)


class Identity(Module):
    """Returns its input unchanged (a placeholder that keeps a model's structure).

    Any constructor arguments are accepted and ignored, as in PyTorch.

    Example::

        nn.Identity()(backprop.ones(2))   # tensor([1., 1.])
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x Wᵀ + b, as one fused op.

    Args:
        in_features, out_features: sizes of each input and output sample.
        bias: learn an additive bias (default True).
        dtype: parameter dtype (float32 by default).

    Weights W (out_features, in_features) and bias are initialised as PyTorch
    does: U(-1/√in_features, 1/√in_features) (kaiming_uniform_ with a=√5).

    Example::

        layer = nn.Linear(784, 256)
        layer(backprop.randn(32, 784)).shape   # (32, 256)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.in_features = _check_size(in_features, "in_features", "Linear")
        self.out_features = _check_size(out_features, "out_features", "Linear")
        self.weight = _factory((self.out_features, self.in_features), device, dtype)
        if bias:
            self.bias = _factory((self.out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights from the global generator (PyTorch's default scheme)."""
        # NOTE: kaiming_uniform_(a=√5) gives bound √6/√((1 + 5)·fan_in) = 1/√fan_in.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return _ops.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merge dims ``start_dim``..``end_dim`` into one: (N, C, H, W) -> (N, C·H·W) by default.

    Example::

        nn.Flatten()(backprop.zeros(8, 3, 4, 4)).shape   # (8, 48)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return _ops.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``: the inverse of ``Flatten``.

    Example::

        nn.Unflatten(1, (3, 4, 4))(backprop.zeros(8, 48)).shape   # (8, 3, 4, 4)
    """

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                            f"{type(unflattened_size).__name__}")
        for i, size in enumerate(unflattened_size):
            if not isinstance(size, (numbers.Integral, np.integer)) or isinstance(size, bool):
                raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, but found "
                                f"element of type {type(size).__name__} at pos {i}")
        self.dim = dim
        self.unflattened_size = unflattened_size  # kept as given (a list stays a list), as torch

    def forward(self, input):
        return _ops.unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
