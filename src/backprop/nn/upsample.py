"""Resampling layers: ``Upsample`` (and its two fixed-mode forms), ``PixelShuffle``,
``PixelUnshuffle``: the upsampling steps of decoders and autoencoders."""
from __future__ import annotations

import numbers

from backprop.nn import functional as F
from backprop.nn.module import Module


class Upsample(Module):
    """Resize (N, C, L) or (N, C, H, W) inputs by ``F.interpolate``.

    Args:
        size: output size (int or one per spatial dim), or
        scale_factor: multiplier (number or one per spatial dim); give exactly one.
        mode: ``'nearest'`` (default), ``'nearest-exact'``, ``'linear'`` (3-D) or
            ``'bilinear'`` (4-D).
        align_corners: for the linear modes, map the corner pixels' centres onto
            each other (default False).
        recompute_scale_factor: derive the source spacing from the output size.

    Example::

        nn.Upsample(scale_factor=2)(backprop.randn(1, 3, 4, 4)).shape   # (1, 3, 8, 8)
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        self.scale_factor = (float(scale_factor) if isinstance(scale_factor, numbers.Real)
                             else tuple(float(f) for f in scale_factor) if scale_factor
                             else None)
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample`` with mode ``'nearest'`` (PyTorch's older name).

    Example::

        nn.UpsamplingNearest2d(scale_factor=2)(backprop.randn(1, 1, 2, 2)).shape   # (1, 1, 4, 4)
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample`` with mode ``'bilinear'`` and ``align_corners=True`` (PyTorch's older name).

    Example::

        nn.UpsamplingBilinear2d(scale_factor=2)(backprop.randn(1, 1, 2, 2)).shape  # (1, 1, 4, 4)
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """(*, C·r², H, W) -> (*, C, H·r, W·r): sub-pixel upsampling (``F.pixel_shuffle``).

    Example::

        nn.PixelShuffle(2)(backprop.randn(1, 8, 3, 3)).shape   # (1, 2, 6, 6)
    """

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H·r, W·r) -> (*, C·r², H, W): the inverse of PixelShuffle.

    Example::

        nn.PixelUnshuffle(2)(backprop.randn(1, 2, 6, 6)).shape   # (1, 8, 3, 3)
    """

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
