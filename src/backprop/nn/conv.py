"""Image layers: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``."""
from __future__ import annotations

import math
import numbers

import numpy as np

from backprop import ops as _ops
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.linear import _check_size, _factory
from backprop.nn.module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(value, name: str, cls: str) -> tuple:
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
            for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{cls}: {name} must be an int or a pair of ints, got {value!r}")


class Conv2d(Module):
    """2-D convolution (cross-correlation) over (N, C_in, H, W) images.

    Args:
        in_channels, out_channels: channels of the input and output.
        kernel_size, stride, dilation: int or (h, w).
        padding: int, (h, w), ``'valid'`` (none) or ``'same'`` (output size = input
            size; stride 1 only).
        groups: split the channels into this many independent convolutions.
        bias: learn a per-output-channel bias (default True).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or ``'circular'``.

    Weights (out_channels, in_channels/groups, kH, kW) and bias are initialised as
    PyTorch does: U(-1/√fan_in, 1/√fan_in), fan_in = in_channels/groups · kH · kW.

    Example::

        conv = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        conv(backprop.randn(8, 3, 32, 32)).shape   # (8, 16, 32, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        cls = "Conv2d"
        self.in_channels = _check_size(in_channels, "in_channels", cls)
        self.out_channels = _check_size(out_channels, "out_channels", cls)
        groups = _check_size(groups, "groups", cls, allow_zero=False)
        if in_channels % groups:
            raise ValueError(f"{cls}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups:
            raise ValueError(f"{cls}: out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        self.kernel_size = _pair(kernel_size, "kernel_size", cls)
        self.stride = _pair(stride, "stride", cls)
        self.dilation = _pair(dilation, "dilation", cls)
        for name, v in (("kernel_size", self.kernel_size), ("stride", self.stride),
                        ("dilation", self.dilation)):
            if min(v) <= 0:
                raise ValueError(f"{cls}: {name} must be positive, got {v}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: invalid padding string {padding!r}, should be one of "
                                 f"{{'valid', 'same'}}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{cls}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", cls)
            if min(self.padding) < 0:
                raise ValueError(f"{cls}: padding must be non-negative, got {self.padding}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{cls}: padding_mode must be one of {_PADDING_MODES}, but got "
                             f"padding_mode={padding_mode!r}")
        self.groups = groups
        self.padding_mode = padding_mode
        self.weight = _factory((out_channels, in_channels // groups) + self.kernel_size,
                               device, dtype)
        if bias:
            self.bias = _factory((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights from the global generator (PyTorch's default scheme)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _explicit_padding(self) -> tuple:
        """(left, right, top, bottom) for ``backprop.pad`` when padding_mode isn't zeros."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            th = self.dilation[0] * (self.kernel_size[0] - 1)
            tw = self.dilation[1] * (self.kernel_size[1] - 1)
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, input):
        if self.padding_mode == "zeros":
            return _ops.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                               self.dilation, self.groups)
        padded = _ops.pad(input, self._explicit_padding(), mode=self.padding_mode)
        return _ops.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation,
                           self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class MaxPool2d(Module):
    """2-D max pooling: the largest value in each window.

    Args:
        kernel_size: int or (h, w).
        stride: int or (h, w); defaults to kernel_size.
        padding: implicit -inf padding, at most half the kernel.
        dilation: spacing between window elements.
        return_indices: also return the flat index of each maximum.
        ceil_mode: round the output size up instead of down.

    Example::

        nn.MaxPool2d(2)(backprop.randn(1, 3, 8, 8)).shape   # (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return _ops.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                               ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """2-D average pooling: the mean of each window.

    Args:
        kernel_size: int or (h, w).
        stride: int or (h, w); defaults to kernel_size.
        padding: implicit zero padding, at most half the kernel.
        ceil_mode: round the output size up instead of down.
        count_include_pad: count the zero padding in each window's divisor.
        divisor_override: divide every window's sum by this instead.

    Example::

        nn.AvgPool2d(2)(backprop.randn(1, 3, 8, 8)).shape   # (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return _ops.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                               self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input's height and width.

    Args:
        output_size: int or (oh, ow); None in the pair keeps that input size.

    Example::

        nn.AdaptiveAvgPool2d(1)(backprop.randn(8, 64, 7, 7)).shape   # (8, 64, 1, 1)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
