"""Padding layers with PyTorch's names: ``ZeroPad2d``, ``ConstantPad1d``, ``ReflectionPad2d``,
``ReplicationPad1d``, ``CircularPad2d`` and the rest.

Each is ``F.pad`` as a module: ``padding`` is one int (the same on every side) or a tuple
(left, right[, top, bottom[, front, back]]) starting from the last dimension, as in
PyTorch; a negative size crops.

Example::

    pad = nn.ReflectionPad2d((1, 1, 2, 0))
    pad(backprop.randn(1, 3, 8, 8)).shape        # (1, 3, 10, 10)
"""
from __future__ import annotations

import numbers

from backprop._checks import is_real
from backprop.errors import ShapeError
from backprop.nn.module import Module
from backprop.ops import pad as _pad
from backprop.ops._util import require_tensor

__all__ = [
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d",
    "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
]


def _padding(padding, n: int, cls: str) -> tuple:
    """``padding`` as a tuple of 2·n ints (an int is repeated on every side)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * (2 * n)
    if (isinstance(padding, (tuple, list)) and len(padding) == 2 * n
            and all(isinstance(p, numbers.Integral) and not isinstance(p, bool)
                    for p in padding)):
        return tuple(int(p) for p in padding)
    raise ValueError(f"{cls}: padding must be an int or a tuple of {2 * n} ints, got "
                     f"{padding!r}")


class _PadNd(Module):
    """Shared body: ``mode`` and the number of padded dims ``_n`` come from the subclass."""

    mode = "constant"
    _n = 1

    def __init__(self, padding) -> None:
        super().__init__()
        self.padding = _padding(padding, self._n, type(self).__name__)

    def _check_input(self, input) -> None:
        require_tensor(input, type(self).__name__)
        # Non-constant modes need the padded dims plus a channel dim (and maybe a batch dim).
        if self.mode != "constant" and input.ndim not in (self._n + 1, self._n + 2):
            raise ShapeError(f"{type(self).__name__}: expected {self._n + 1}D or "
                             f"{self._n + 2}D input (got {input.ndim}D input of shape "
                             f"{tuple(input.shape)})")

    def forward(self, input):
        self._check_input(input)
        return _pad(input, self.padding, self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float) -> None:
        super().__init__(padding)
        if not is_real(value):
            raise TypeError(f"{type(self).__name__}: value must be a number, got {value!r}")
        self.value = value

    def forward(self, input):
        self._check_input(input)
        return _pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dimension with ``value``: padding = (left, right) or one int.

    Example::

        nn.ConstantPad1d(2, 3.5)(backprop.zeros(1, 2, 4)).shape    # (1, 2, 8)
    """

    _n = 1


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dimensions with ``value``: padding = (left, right, top, bottom).

    Example::

        nn.ConstantPad2d((1, 0, 2, 0), -1.0)(backprop.zeros(1, 3, 3)).shape    # (1, 5, 4)
    """

    _n = 2


class ConstantPad3d(_ConstantPadNd):
    """Pad the last three dimensions with ``value``:
    padding = (left, right, top, bottom, front, back).

    Example::

        nn.ConstantPad3d(1, 0.5)(backprop.zeros(1, 1, 2, 2, 2)).shape    # (1, 1, 4, 4, 4)
    """

    _n = 3


class _ZeroPadNd(_ConstantPadNd):
    """A constant pad whose value is always zero (so it takes only ``padding``)."""

    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)

    extra_repr = _PadNd.extra_repr


class ZeroPad1d(_ZeroPadNd, ConstantPad1d):
    """Pad the last dimension with zeros.

    Example::

        nn.ZeroPad1d((1, 2))(backprop.ones(1, 3)).tolist()    # [[0, 1, 1, 1, 0, 0]]
    """


class ZeroPad2d(_ZeroPadNd, ConstantPad2d):
    """Pad the last two dimensions with zeros.

    Example::

        nn.ZeroPad2d(1)(backprop.ones(1, 2, 2)).shape    # (1, 4, 4)
    """


class ZeroPad3d(_ZeroPadNd, ConstantPad3d):
    """Pad the last three dimensions with zeros.

    Example::

        nn.ZeroPad3d(1)(backprop.ones(1, 1, 2, 2, 2)).shape    # (1, 1, 4, 4, 4)
    """


# The Reflection/Replication/Circular classes mirror each other on purpose: PyTorch has a
# class per mode and rank (isinstance, repr); each names its mode and rank, _PadNd does the work.
class ReflectionPad1d(_PadNd):
    """Mirror the last dimension about its edges (the edge itself not repeated).

    Example::

        nn.ReflectionPad1d(2)(backprop.arange(4.).reshape(1, 4))    # [[2, 1, 0, 1, 2, 3, 2, 1]]
    """

    mode, _n = "reflect", 1


class ReflectionPad2d(_PadNd):
    """Mirror the last two dimensions about their edges.

    Example::

        nn.ReflectionPad2d(1)(backprop.randn(1, 3, 4, 4)).shape    # (1, 3, 6, 6)
    """

    mode, _n = "reflect", 2


class ReflectionPad3d(_PadNd):
    """Mirror the last three dimensions about their edges.

    Example::

        nn.ReflectionPad3d(1)(backprop.randn(1, 1, 3, 3, 3)).shape    # (1, 1, 5, 5, 5)
    """

    mode, _n = "reflect", 3


class ReplicationPad1d(_PadNd):
    """Repeat the edge values of the last dimension.

    Example::

        nn.ReplicationPad1d((2, 1))(backprop.tensor([[1.0, 2.0]]))    # [[1, 1, 1, 2, 2]]
    """

    mode, _n = "replicate", 1


class ReplicationPad2d(_PadNd):
    """Repeat the edge values of the last two dimensions.

    Example::

        nn.ReplicationPad2d(1)(backprop.randn(1, 3, 4, 4)).shape    # (1, 3, 6, 6)
    """

    mode, _n = "replicate", 2


class ReplicationPad3d(_PadNd):
    """Repeat the edge values of the last three dimensions.

    Example::

        nn.ReplicationPad3d(1)(backprop.randn(1, 1, 2, 2, 2)).shape    # (1, 1, 4, 4, 4)
    """

    mode, _n = "replicate", 3


class CircularPad1d(_PadNd):
    """Wrap the last dimension around (periodic boundary).

    Example::

        nn.CircularPad1d(1)(backprop.tensor([[1.0, 2.0, 3.0]]))    # [[3, 1, 2, 3, 1]]
    """

    mode, _n = "circular", 1


class CircularPad2d(_PadNd):
    """Wrap the last two dimensions around (periodic boundary).

    Example::

        nn.CircularPad2d(1)(backprop.randn(1, 3, 4, 4)).shape    # (1, 3, 6, 6)
    """

    mode, _n = "circular", 2


class CircularPad3d(_PadNd):
    """Wrap the last three dimensions around (periodic boundary).

    Example::

        nn.CircularPad3d(1)(backprop.randn(1, 1, 2, 2, 2)).shape    # (1, 1, 4, 4, 4)
    """

    mode, _n = "circular", 3
