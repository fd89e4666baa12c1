"""Functional forms of the image and sequence layers that are composites of primitives.

Pooling to a fixed size (``adaptive_*``), group and instance normalisation,
channel-wise dropout, ``interpolate`` and pixel (un)shuffling, with
``torch.nn.functional``'s names and signatures. Nothing here has a backward of
its own: each is written from primitives (gather, index_select, matmul, reshape,
the fused normalisation of ``nn.functional``), so its gradient is theirs.
``backprop.nn.functional`` re-exports every name in ``__all__``.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from backprop import ops as _ops
from backprop import random as _random
from backprop._checks import is_real
from backprop.errors import ShapeError
from backprop.ops._util import require_float as _float
from backprop.ops._util import require_tensor as _tensor
from backprop.tensor import Tensor, _make


def _sizes(output_size, spatial: tuple, fn: str) -> tuple:
    """An int, None or a sequence (with None keeping that input size) -> a tuple of ints."""
    k = len(spatial)
    if output_size is None or isinstance(output_size, (numbers.Integral, np.integer)):
        output_size = (output_size,) * k
    if not isinstance(output_size, (tuple, list)) or len(output_size) != k:
        raise ShapeError(f"{fn}: output_size must be an int or a sequence of {k}, got "
                         f"{output_size!r}")
    out = tuple(int(s if o is None else o) for o, s in zip(output_size, spatial, strict=True))
    if min(out) <= 0:
        raise ShapeError(f"{fn}: output_size must be positive, got {output_size!r}")
    return out


# -- adaptive pooling ----------------------------------------------------------------------------
def _adaptive_rows(size: int, n_out: int) -> np.ndarray:
    """(n_out, k): the input cells of each adaptive window (floor(i·size/n_out) ..
    ceil((i+1)·size/n_out) - 1), short windows padded by repeating their last cell."""
    i = np.arange(n_out)
    start = (i * size) // n_out
    end = -((-(i + 1) * size) // n_out)
    k = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(k), end[:, None] - 1)


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling to a fixed output size, as torch.nn.functional.adaptive_max_pool2d.

    Output cell (i, j) is the maximum over input rows floor(i·H/oh) ..
    ceil((i+1)·H/oh) - 1 and the matching columns. The winners are found once in
    NumPy; the output gathers them, so the gradient goes to each window's (first)
    maximum, as in PyTorch.

    Args:
        input: (N, C, H, W) or (C, H, W).
        output_size: int or (oh, ow); None keeps that input size.
        return_indices: also return the flat index h·W + w of each maximum.

    Example::

        F.adaptive_max_pool2d(backprop.randn(2, 3, 7, 5), (3, 2)).shape   # (2, 3, 3, 2)
    """
    fn = "adaptive_max_pool2d"
    x = _tensor(input, fn)
    if x.ndim not in (3, 4):
        raise ShapeError(f"{fn}: expected a 3-D or 4-D input, got shape {tuple(x.shape)}")
    _float(x, fn)
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ShapeError(f"{fn}: expected non-empty spatial dims, got shape {tuple(x.shape)}")
    oh, ow = _sizes(output_size, (h, w), fn)
    rows, cols = _adaptive_rows(h, oh), _adaptive_rows(w, ow)       # (oh, kh), (ow, kw)
    # flat[i, j, a, b] = rows[i, a]·W + cols[j, b]: every window's cells as flat indices
    flat = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(oh, ow, -1)
    lead = tuple(x.shape[:-2])
    plane = x._data.reshape(lead + (h * w,))
    # NOTE: np.argmax returns the first maximum (and a NaN, if any): torch's choice.
    best = np.argmax(plane[..., flat], axis=-1)                      # (*lead, oh, ow)
    indices = flat.reshape(oh * ow, -1)[np.arange(oh * ow), best.reshape(lead + (-1,))]
    indices = indices.reshape(lead + (oh, ow)).astype(np.int64)
    out = _ops.gather(x.reshape(lead + (h * w,)), -1, _make(indices.reshape(lead + (-1,))))
    out = out.reshape(lead + (oh, ow))
    return (out, _make(indices)) if return_indices else out


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    """Max pooling of (N, C, L) or (C, L) to length ``output_size``, as PyTorch.

    Example::

        F.adaptive_max_pool1d(backprop.randn(2, 3, 10), 4).shape   # (2, 3, 4)
    """
    fn = "adaptive_max_pool1d"
    x = _tensor(input, fn)
    if x.ndim not in (2, 3):
        raise ShapeError(f"{fn}: expected a 2-D or 3-D input, got shape {tuple(x.shape)}")
    (o,) = _sizes(_one(output_size, fn), (x.shape[-1],), fn)
    out = adaptive_max_pool2d(_ops.unsqueeze(x, -2), (1, o), return_indices)
    if return_indices:
        return _ops.squeeze(out[0], -2), _ops.squeeze(out[1], -2)
    return _ops.squeeze(out, -2)


def _one(size, fn: str):
    if isinstance(size, (tuple, list)):
        if len(size) != 1:
            raise ShapeError(f"{fn}: output_size must be an int or a 1-tuple, got {size!r}")
        return size[0]
    return size


def adaptive_avg_pool1d(input, output_size):
    """Average pooling of (N, C, L) or (C, L) to length ``output_size``, as PyTorch.

    Example::

        F.adaptive_avg_pool1d(backprop.randn(2, 3, 10), 4).shape   # (2, 3, 4)
    """
    from backprop.nn.functional import adaptive_avg_pool2d  # the 2-D op on one row

    fn = "adaptive_avg_pool1d"
    x = _tensor(input, fn)
    if x.ndim not in (2, 3):
        raise ShapeError(f"{fn}: expected a 2-D or 3-D input, got shape {tuple(x.shape)}")
    (o,) = _sizes(_one(output_size, fn), (x.shape[-1],), fn)
    return _ops.squeeze(adaptive_avg_pool2d(_ops.unsqueeze(x, -2), (1, o)), -2)


# -- normalisation -------------------------------------------------------------------------------
def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalise each sample's channels in ``num_groups`` groups, as torch.nn.functional.group_norm.

    The C channels are split into groups of C/G; each (sample, group) is normalised
    by its own mean and biased variance over its channels and positions, then
    y = x̂·γ[c] + β[c] per channel. One fused normalisation (the primitive BatchNorm
    and LayerNorm use) on the (N, G, C/G, positions) view.

    Args:
        input: (N, C, *).
        num_groups: G, dividing C.
        weight, bias: (C,) or None.

    Example::

        F.group_norm(backprop.randn(2, 6, 4, 4), 3).shape   # (2, 6, 4, 4)
    """
    from backprop.nn.functional import NormalizeBatchStats, _param  # noqa: PLC0415 (imports us)

    fn = "group_norm"
    x = _tensor(input, fn)
    if x.ndim < 2:
        raise ShapeError(f"{fn}: expected an input with at least 2 dims (N, C, *), got shape "
                         f"{tuple(x.shape)}")
    _float(x, fn)
    n, c = x.shape[:2]
    if not isinstance(num_groups, (numbers.Integral, np.integer)) or num_groups <= 0 or c % \
            num_groups:
        raise ShapeError(f"{fn}: expected number of channels in input to be divisible by "
                         f"num_groups, but got input of shape {tuple(x.shape)} and "
                         f"num_groups={num_groups}")
    g = int(num_groups)
    weight = _param(weight, "weight", (c,), fn, x)
    bias = _param(bias, "bias", (c,), fn, x)
    spatial = int(np.prod(x.shape[2:], dtype=np.int64))
    grouped = x.reshape(n, g, c // g, spatial)
    out = NormalizeBatchStats.apply(
        grouped, None if weight is None else weight.reshape(g, c // g),
        None if bias is None else bias.reshape(g, c // g), axes=(2, 3), view=(1, g, c // g, 1),
        param_axes=(0, 3), eps=eps)
    return out.reshape(tuple(x.shape))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each (sample, channel) over its positions, as torch.nn.functional.instance_norm.

    With ``use_input_stats`` the statistics are each instance's own (and given
    running buffers are updated in place with their batch average, the variance
    unbiased); otherwise the running statistics are used.

    Args:
        input: (N, C, *) with at least one position dim.
        running_mean, running_var: (C,) buffers or None.
        weight, bias: (C,) or None.

    Example::

        F.instance_norm(backprop.randn(2, 3, 5, 5)).shape   # (2, 3, 5, 5)
    """
    from backprop.nn.functional import (  # noqa: PLC0415 (their home imports us)
        _normalize_by_batch,
        _normalize_by_running,
        _param,
        _update_running_,
    )

    fn = "instance_norm"
    x = _tensor(input, fn)
    if x.ndim < 3:
        raise ShapeError(f"{fn}: expected an input with at least 3 dims (N, C, *), got shape "
                         f"{tuple(x.shape)}")
    _float(x, fn)
    c = x.shape[1]
    weight = _param(weight, "weight", (c,), fn, x)
    bias = _param(bias, "bias", (c,), fn, x)
    running_mean = _param(running_mean, "running_mean", (c,), fn, x)
    running_var = _param(running_var, "running_var", (c,), fn, x)
    axes = tuple(range(2, x.ndim))
    view = (1, c) + (1,) * (x.ndim - 2)
    param_axes = (0,) + axes
    if not use_input_stats:
        return _normalize_by_running(x, weight, bias, running_mean, running_var, eps, view,
                                     param_axes, fn, "use_input_stats is False")
    count = int(np.prod(x.shape[2:], dtype=np.int64))
    if count <= 1:
        raise ValueError(f"{fn}: expected more than 1 spatial element when training, got "
                         f"input of shape {tuple(x.shape)}")
    out, mean, var = _normalize_by_batch(x, weight, bias, axes, view, param_axes, eps)
    # the running statistics average the per-sample ones over the batch
    _update_running_(running_mean, mean.reshape(x.shape[:2]).mean(0), momentum)
    unbiased = var.reshape(x.shape[:2]) * (count / (count - 1))
    _update_running_(running_var, unbiased.mean(0), momentum)
    return out


# -- dropout -------------------------------------------------------------------------------------
def _check_p(p) -> None:
    if not is_real(p) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep(shape: tuple, p: float, dtype) -> np.ndarray:
    """1 with probability 1-p, else 0, from the global generator (as ``dropout`` draws)."""
    u = _random.generator().random(shape, dtype=np.float64 if dtype == np.float64 else
                                   np.float32)
    return (u >= p).astype(dtype)


def _feature_dropout(x: Tensor, p: float, training: bool, fn: str, batched: bool = True):
    """Zero whole channels: one draw per (sample, channel), broadcast over the positions.

    ``batched``: dim 0 is the batch and dim 1 the channels; else dim 0 is the channels.
    """
    if not training or p == 0:
        return x
    _float(x, fn)
    lead = 2 if batched else 1
    if x.ndim < lead:
        raise ShapeError(f"{fn}: feature dropout requires at least 2 dimensions in the input, "
                         f"got shape {tuple(x.shape)}")
    shape = tuple(x.shape[:lead]) + (1,) * (x.ndim - lead)
    dtype = x._data.dtype
    if p == 1:
        return x * _make(np.zeros(shape, dtype=dtype))
    return x * _make(_keep(shape, p, dtype) * dtype.type(1.0 / (1.0 - p)))


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, L) or (C, L) inputs, as torch.nn.functional.dropout1d.

    Each channel is zeroed with probability ``p`` and the rest are scaled by 1/(1-p).
    (``inplace`` is accepted; the result is computed out of place.)

    Example::

        F.dropout1d(backprop.ones(2, 4, 3)).shape   # (2, 4, 3): rows of 0s or 2s
    """
    _check_p(p)
    x = _tensor(input, "dropout1d")
    if x.ndim not in (2, 3):
        raise ShapeError(f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input "
                         f"(shape {tuple(x.shape)}). dropout1d is channel-wise dropout on "
                         f"(N, C, L) or unbatched (C, L) inputs")
    return _feature_dropout(x, p, training, "dropout1d", batched=x.ndim == 3)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, H, W) inputs, as torch.nn.functional.dropout2d.

    As in PyTorch, a 3-D input is taken as (N, C, L) (1-D channel dropout) with a
    warning, and inputs of other ranks are accepted with a deprecation warning.

    Example::

        F.dropout2d(backprop.ones(2, 4, 3, 3)).shape   # (2, 4, 3, 3)
    """
    _check_p(p)
    x = _tensor(input, "dropout2d")
    if x.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated "
                      f"and will result in an error in a future release. To retain the behavior "
                      f"and silence this warning, please use dropout instead. Note that "
                      f"dropout2d exists to provide channel-wise dropout on inputs with 2 spatial "
                      f"dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      f"3D or 4D inputs).", stacklevel=2)
    if x.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim. This behavior will change in a future release "
                      "to interpret the input as one without a batch dimension, i.e. shape "
                      "(C, H, W). To maintain the 1D channel-wise dropout behavior, please switch "
                      "to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(x, p, training, "dropout2d")


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs, as
    torch.nn.functional.dropout3d (other ranks: a deprecation warning, as PyTorch).

    Example::

        F.dropout3d(backprop.ones(2, 4, 2, 3, 3)).shape   # (2, 4, 2, 3, 3)
    """
    _check_p(p)
    x = _tensor(input, "dropout3d")
    if x.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {x.ndim}-D input to dropout3d, which is deprecated "
                      f"and will result in an error in a future release. To retain the behavior "
                      f"and silence this warning, please use dropout instead. Note that "
                      f"dropout3d exists to provide channel-wise dropout on inputs with 3 spatial "
                      f"dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      f"4D or 5D inputs).", stacklevel=2)
    # like PyTorch, anything but 5-D is taken as unbatched (channels first)
    return _feature_dropout(x, p, training, "dropout3d", batched=x.ndim == 5)


# NOTE: SELU's fixed point: with α' = -λ·α, keeping the mean 0 and variance 1 of
# self-normalising activations when dropped units are set to α' instead of 0.
_ALPHA = 1.7580993408473766


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Dropout for SELU networks, as torch.nn.functional.alpha_dropout (note: ``training``
    defaults to False, as in PyTorch).

    Dropped elements become -λα, then y = a·x' + b with a, b restoring mean 0 and
    variance 1: a = ((1 - p)(1 + p·λ²α²))^(-1/2), b = a·λα·p.

    Example::

        F.alpha_dropout(backprop.randn(4, 5), 0.2, training=True).shape   # (4, 5)
    """
    _check_p(p)
    x = _tensor(input, "alpha_dropout")
    if not training or p == 0:
        return x
    _float(x, "alpha_dropout")
    if p == 1:
        return x * 0.0
    dtype = x._data.dtype
    keep = _keep(tuple(x.shape), p, dtype)
    a = 1.0 / math.sqrt((_ALPHA * _ALPHA * p + 1) * (1 - p))
    shift = (keep - 1) * dtype.type(_ALPHA * a) + dtype.type(_ALPHA * a * p)
    return x * _make((keep * dtype.type(a)).astype(dtype)) + _make(shift.astype(dtype))


# -- resampling ----------------------------------------------------------------------------------
_INTERP_MODES = ("nearest", "nearest-exact", "linear", "bilinear")


def _nearest_index(n_in: int, n_out: int, scale, exact: bool) -> np.ndarray:
    """Source cell of each output cell (float32 arithmetic, as PyTorch's kernels)."""
    s = np.float32(n_in / n_out if scale is None else 1.0 / scale)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if exact else np.floor(dst * s)
    return np.minimum(src.astype(np.int64), n_in - 1)


def _linear_matrix(n_in: int, n_out: int, scale, align_corners: bool, dtype) -> np.ndarray:
    """(n_out, n_in): each row blends the two input cells around its source position."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        s = n_in / n_out if scale is None else 1.0 / scale
        src = np.maximum((dst + 0.5) * s - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m.astype(dtype)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False):
    """Resize (N, C, L) or (N, C, H, W) inputs, as torch.nn.functional.interpolate.

    Modes: ``'nearest'``, ``'nearest-exact'`` (3-D or 4-D input), ``'linear'`` (3-D)
    and ``'bilinear'`` (4-D), with PyTorch's source-index rules (``align_corners``;
    a given ``scale_factor`` sets the source spacing unless
    ``recompute_scale_factor``). Nearest modes select rows and columns
    (index_select); linear modes multiply by one small blending matrix per axis.

    Args:
        input: (N, C, L) or (N, C, H, W).
        size: output size (int or one per spatial dim), or
        scale_factor: multiplier (number or one per spatial dim); give exactly one.

    Example::

        F.interpolate(backprop.randn(1, 3, 4, 4), scale_factor=2).shape   # (1, 3, 8, 8)
    """
    fn = "interpolate"
    x = _tensor(input, fn)
    if mode not in _INTERP_MODES:
        raise NotImplementedError(f"{fn}: mode {mode!r} is not supported; backprop has "
                                  f"{', '.join(_INTERP_MODES)}")
    if antialias:
        raise NotImplementedError(f"{fn}: antialias=True is not supported")
    if mode.startswith("nearest"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    if x.ndim not in (3, 4):
        raise NotImplementedError(f"{fn}: input must be 3-D (N, C, L) or 4-D (N, C, H, W), got "
                                  f"shape {tuple(x.shape)}")
    if mode == "bilinear" and x.ndim != 4:
        raise NotImplementedError(f"{fn}: got {x.ndim}D input, but bilinear mode needs 4D input")
    if mode == "linear" and x.ndim != 3:
        raise NotImplementedError(f"{fn}: got {x.ndim}D input, but linear mode needs 3D input")
    _float(x, fn)
    spatial = tuple(x.shape[2:])
    dims = len(spatial)
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * dims
        if len(sizes) != dims or not all(isinstance(s, (numbers.Integral, np.integer))
                                         for s in sizes):
            raise ShapeError(f"{fn}: size must be an int or {dims} ints for input of shape "
                             f"{tuple(x.shape)}, got {size!r}")
        scales = (None,) * dims
    elif scale_factor is not None:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else \
            (scale_factor,) * dims
        if len(scales) != dims:
            raise ShapeError(f"{fn}: scale_factor must be a number or {dims} numbers for input "
                             f"of shape {tuple(x.shape)}, got {scale_factor!r}")
        sizes = tuple(math.floor(s * f) for s, f in zip(spatial, scales, strict=True))
        if recompute_scale_factor:
            scales = (None,) * dims
    else:
        raise ValueError("either size or scale_factor should be defined")
    sizes = tuple(int(s) for s in sizes)
    if min(sizes) <= 0 or min(spatial) <= 0:
        raise ShapeError(f"{fn}: input {spatial} and output {sizes} sizes should be greater "
                         f"than 0")
    out = x
    for axis, (n_in, n_out, scale) in enumerate(zip(spatial, sizes, scales, strict=True), start=2):
        if mode.startswith("nearest"):
            if n_in == n_out and scale is None:
                continue
            idx = _nearest_index(n_in, n_out, scale, mode == "nearest-exact")
            out = _ops.index_select(out, axis, _make(idx))
        else:
            m = _make(_linear_matrix(n_in, n_out, scale, align_corners, x._data.dtype))
            # contract the axis with the blending matrix: move it last, multiply, move back
            moved = _ops.movedim(out, axis, -1)
            out = _ops.movedim(_ops.matmul(moved, m.t()), -1, axis)
    return out if out is not x else x.clone()


def _shuffle_factor(r, name: str, fn: str):
    """pixel_shuffle's and pixel_unshuffle's factor: a positive int, else a ValueError."""
    if not isinstance(r, (numbers.Integral, np.integer)) or r <= 0:
        raise ValueError(f"{fn}: {name} must be a positive int, got {r!r}")
    return r


def pixel_shuffle(input, upscale_factor: int):
    """(*, C·r², H, W) -> (*, C, H·r, W·r), as torch.nn.functional.pixel_shuffle.

    Example::

        F.pixel_shuffle(backprop.randn(1, 8, 3, 3), 2).shape   # (1, 2, 6, 6)
    """
    fn = "pixel_shuffle"
    x = _tensor(input, fn)
    r = _shuffle_factor(upscale_factor, "upscale_factor", fn)
    if x.ndim < 3 or x.shape[-3] % (r * r):
        raise ShapeError(f"{fn}: expected an input of at least 3 dims whose channel dim "
                         f"(-3) is divisible by upscale_factor² = {r * r}, got shape "
                         f"{tuple(x.shape)}")
    *batch, c, h, w = x.shape
    lead, c = tuple(batch), c // (r * r)
    k = len(lead)
    y = x.reshape(lead + (c, r, r, h, w))
    y = _ops.permute(y, tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2))
    return y.reshape(lead + (c, h * r, w * r))


# The inverse of pixel_shuffle: the same checks (through _shuffle_factor), the reverse reshape.
def pixel_unshuffle(input, downscale_factor: int):
    """(*, C, H·r, W·r) -> (*, C·r², H, W): the inverse of pixel_shuffle, as PyTorch.

    Example::

        F.pixel_unshuffle(backprop.randn(1, 2, 6, 6), 2).shape   # (1, 8, 3, 3)
    """
    fn = "pixel_unshuffle"
    x = _tensor(input, fn)
    r = _shuffle_factor(downscale_factor, "downscale_factor", fn)
    if x.ndim < 3 or x.shape[-2] % r or x.shape[-1] % r:
        raise ShapeError(f"{fn}: expected an input of at least 3 dims whose height and width "
                         f"are divisible by downscale_factor={r}, got shape {tuple(x.shape)}")
    *batch, c, h, w = x.shape
    lead, h, w = tuple(batch), h // r, w // r
    k = len(lead)
    y = x.reshape(lead + (c, h, r, w, r))
    y = _ops.permute(y, tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3))
    return y.reshape(lead + (c * r * r, h, w))


__all__ = [
    "adaptive_max_pool2d", "adaptive_max_pool1d", "adaptive_avg_pool1d", "group_norm",
    "instance_norm", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "interpolate",
    "pixel_shuffle", "pixel_unshuffle",
]
