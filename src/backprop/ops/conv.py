"""Convolution and pooling over images: ``conv2d``, ``max_pool2d``, ``avg_pool2d``.

All three read the (padded) input through one strided *window view*,
``v[n, c, i, j, h, w] = x_pad[n, c, h·sh + i·dh, w·sw + j·dw]`` (kernel offset i, j;
output position h, w), built with ``as_strided`` and never copied until needed.
Convolution copies that view once (im2col) and does one matrix product; pooling
reduces over the kernel offsets. Every backward is the adjoint of the view
(``_fold``, col2im): it adds each kernel offset's contribution into a strided
slice of the padded gradient, kh·kw vectorised steps, then crops the padding.
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import DTypeError, ShapeError
from backprop.ops import _kernels
from backprop.ops._util import as_tensor
from backprop.tensor import _make

_as_strided = np.lib.stride_tricks.as_strided


# -- argument handling ------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)


def _pair(value, name: str, op: str) -> tuple:
    """An int or a 1- or 2-sequence of ints -> (h, w)."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = (value[0], value[0])
        if len(value) != 2:
            raise ShapeError(f"{op}: {name} must be an int or a pair of ints (h, w), got "
                             f"{tuple(value)}")
        if all(_is_int(v) for v in value):
            return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints (h, w), got {value!r}")


def _check_positive(value: tuple, name: str, op: str) -> None:
    if min(value) <= 0:
        raise ShapeError(f"{op}: {name} must be positive, got {value}")


def _check_input(x, op: str, dims: int = 2) -> None:
    """An input of ``dims`` spatial dims (2: H, W; 1: L), batched or not, of a numeric dtype."""
    if x.ndim not in (dims + 1, dims + 2):
        spatial = "H, W" if dims == 2 else "L"
        raise ShapeError(f"{op}: expected input with {dims + 2} dimensions (N, C, {spatial}) or "
                         f"{dims + 1} (C, {spatial}), got shape {tuple(x.shape)}")
    if x._data.dtype.kind not in "fiu":
        raise DTypeError(f"{op}: expected a numeric input, got {x._data.dtype}")


def _conv_operands(input, weight, op: str, dims: int, weight_layout: str) -> tuple:
    """(input, weight) of a convolution with ``dims`` spatial dims, as tensors, checked:
    the weight has ``dims + 2`` dimensions, laid out as ``weight_layout`` says."""
    x, w = as_tensor(input, op), as_tensor(weight, op)
    _check_input(x, op, dims)
    if w.ndim != dims + 2:
        raise ShapeError(f"{op}: expected weight with {dims + 2} dimensions ({weight_layout}), "
                         f"got shape {tuple(w.shape)}")
    return x, w


def _unbatched(fn, x, *args, **kwargs):
    """Run a 4-D op on a (C, H, W) input by adding, then removing, a batch axis."""
    out = fn(x.reshape((1,) + tuple(x.shape)), *args, **kwargs)
    if isinstance(out, tuple):
        return tuple(o.reshape(tuple(o.shape[1:])) for o in out)
    return out.reshape(tuple(out.shape[1:]))


# -- the window view and its adjoint ----------------------------------------------------------
def _pad(x: np.ndarray, pads: tuple, value) -> np.ndarray:
    """Pad (top, bottom, left, right) around the last two axes with ``value``."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def _windows(xp: np.ndarray, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Read-only view (N, C, kh, kw, Ho, Wo): v[n,c,i,j,h,w] = xp[n,c,h·sh+i·dh,w·sw+j·dw]."""
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    return _as_strided(xp, (n, c) + tuple(kernel) + tuple(out_hw),
                       (s_n, s_c, s_h * dilation[0], s_w * dilation[1],
                        s_h * stride[0], s_w * stride[1]), writeable=False)


def _fold(piece, padded_shape, dtype, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Adjoint of ``_windows``: dxp[n, c, h·sh + i·dh, w·sw + j·dw] += piece(i, j)[n, c, h, w].

    One vectorised, strided add per kernel offset (kh·kw steps), so overlapping
    windows accumulate.
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    dxp = np.zeros(padded_shape, dtype=dtype)
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        for j in range(kw):
            dxp[:, :, rows, j * dw:j * dw + sw * (wo - 1) + 1:sw] += piece(i, j)
    return dxp


def _crop(dxp: np.ndarray, pads: tuple, hw: tuple) -> np.ndarray:
    top, _, left, _ = pads
    if dxp.shape[2:] == tuple(hw):
        return dxp
    return dxp[:, :, top:top + hw[0], left:left + hw[1]]


def _out_size(size: int, k: int, s: int, d: int, pad_total: int) -> int:
    return (size + pad_total - d * (k - 1) - 1) // s + 1


# -- conv2d ---------------------------------------------------------------------------------
#: Take conv2d's and max_pool2d's fast paths where they apply. Tests turn this off to
#: compare each fast path with the general code (tests/ops/test_conv_fastpaths.py).
FAST_PATHS = True


class Conv2d(Function):
    """out = W·im2col(x_pad) + b;  dx = col2im(Wᵀ·g),  dW = Σₙ g·im2col(x_pad)ᵀ,  db = Σ g

    (out[n,o,h,w] = b[o] + Σ_{c,i,j} W[o,c,i,j]·x_pad[n, c, h·sh + i·dh, w·sw + j·dw])
    """

    backward_name = 'ConvolutionBackward0'

    @staticmethod
    def forward(ctx, x, weight, bias, *, stride, padding, dilation, groups):
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        xp = _pad(x, padding, 0)
        ho = _out_size(xp.shape[2], kh, stride[0], dilation[0], 0)
        wo = _out_size(xp.shape[3], kw, stride[1], dilation[1], 0)
        k, length = cg * kh * kw, ho * wo
        # im2col: the one copy of the window view, grouped as (N, G, C/G·kh·kw, Ho·Wo),
        # so a single (batched) matrix product gives the output already in NCHW order.
        cols = _windows(xp, (kh, kw), stride, dilation, (ho, wo)).reshape(n, groups, k, length)
        wmat = weight.reshape(groups, o // groups, k)
        out = np.matmul(wmat, cols).reshape(n, o, ho, wo)
        if bias is not None:
            out += bias.reshape(1, o, 1, 1)
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(wmat if need_x else None, cols if need_w else None)
        ctx.geometry = (x.shape, xp.shape, weight.shape, stride, padding, dilation, groups,
                        (ho, wo))
        return out

    @staticmethod
    def backward(ctx, grad_output):
        wmat, cols = ctx.saved_tensors
        x_shape, xp_shape, w_shape, stride, padding, dilation, groups, out_hw = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c = x_shape[:2]
        o, cg, kh, kw = w_shape
        g = grad_output.reshape(n, groups, o // groups, out_hw[0] * out_hw[1])
        gx = gw = gb = None
        if need_w:
            gw = _conv_weight_grad(g, cols).reshape(w_shape)
        if need_x:
            dxp = _conv_input_grad_fast(wmat, g, xp_shape, (kh, kw), stride, dilation, out_hw)
            gx = _crop(dxp, padding, x_shape[2:])
        if need_b:
            gb = grad_output.sum(axis=(0, 2, 3))
        return gx, gw, gb


# NOTE: the weight gradient is one product per sample, summed over the batch. As
# g·colsᵀ (O/G x Ho·Wo times Ho·Wo x K) it needs no copy; as (cols·gᵀ)ᵀ it needs gᵀ
# copied, (N, G, Ho·Wo, O/G), but BLAS runs that product ~1.7x faster here (both
# operands row-major; measured on the CNN of benchmarks/cnn.py, K = 144). The copy of g
# is paid off once K = C/G·kh·kw is large; for a first layer (1 channel, K = 9) it is not.
_WEIGHT_GRAD_TRANSPOSED_MIN_K = 16


def _conv_weight_grad(g, cols) -> np.ndarray:
    """dW = Σₙ gₙ·colsₙᵀ, as (G, O/G, K), from g (N, G, O/G, L) and cols (N, G, K, L)."""
    if FAST_PATHS and cols.shape[2] >= _WEIGHT_GRAD_TRANSPOSED_MIN_K:
        g_t = np.ascontiguousarray(np.swapaxes(g, -1, -2))
        # NaN made from an Inf (Inf·0) goes unreported by the general product; likewise here
        with np.errstate(invalid="ignore"):
            return np.swapaxes(np.matmul(cols, g_t).sum(axis=0), -1, -2)
    # one product per batch item, summed: no transposed copy of cols is needed
    return np.matmul(g, np.swapaxes(cols, -1, -2)).sum(axis=0)


def _conv_input_grad_fast(wmat, g, xp_shape, kernel, stride, dilation, out_hw) -> np.ndarray:
    """``_conv_input_grad``, with the fast path below where it applies."""
    if FAST_PATHS and stride[1] == 1 and kernel[1] > 1 and np.isfinite(wmat).all():
        return _conv_input_grad_rows(wmat, g, xp_shape, kernel, stride, dilation, out_hw)
    return _conv_input_grad(wmat, g, xp_shape, kernel, stride, dilation, out_hw)


def _conv_input_grad_rows(wmat, g, xp_shape, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Gradient w.r.t. the padded input, one kernel row at a time (unit stride along the width).

    NOTE: ``_conv_input_grad`` makes a column gradient for every kernel offset (i, j) and
    adds each one into the image (kh·kw passes over a kh·kw times larger array). Here
    the offsets along a row are summed by the matrix product itself: g, its rows widened
    to the padded width wp, is stacked with copies shifted right by j·dw, and one product
    with the weight ordered (i, c) x (o, j) gives, for each kernel row i, that row's whole
    contribution in place (a shifted row never leaves its widened row: wp = wo + (kw-1)·dw).
    kh passes remain, over one third of the data for 3x3: ~20% faster on the CNN of
    benchmarks/cnn.py. Each input element's sum is ordered
    differently, so it matches ``_conv_input_grad`` to rounding (tests: the rounding
    bound); an Inf or NaN weight would turn the widened zeros into NaN, so that case keeps
    the general path.
    """
    n, c, hp, wp = xp_shape
    groups, og = g.shape[1:3]
    (kh, kw), (ho, wo), (dh, dw) = kernel, out_hw, dilation
    cg, m = c // groups, ho * wp
    shifted = np.zeros((n, groups, og, kw, ho, wp), dtype=g.dtype)
    shifted[:, :, :, 0, :, :wo] = g.reshape(n, groups, og, ho, wo)
    flat_g = shifted.reshape(n, groups, og, kw, m)
    for j in range(1, kw):
        flat_g[:, :, :, j, j * dw:] = flat_g[:, :, :, 0, :m - j * dw]
    weight = wmat.reshape(groups, og, cg, kh, kw).transpose(0, 3, 2, 1, 4)
    rows = np.matmul(weight.reshape(groups, kh * cg, og * kw), flat_g.reshape(n, groups, -1, m))
    rows = rows.reshape(n, groups, kh, cg, ho, wp)
    flat = np.zeros((n, groups, cg, hp * wp), dtype=g.dtype)
    s_n, s_g, s_c, item = flat.strides[:3] + (flat.itemsize,)
    for i in range(kh):
        target = _as_strided(flat[..., i * dh * wp:], (n, groups, cg, ho, wp),
                             (s_n, s_g, s_c, stride[0] * wp * item, item))
        target += rows[:, :, i]
    return flat.reshape(n, c, hp, wp)


def _conv_input_grad(wmat, g, xp_shape, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Gradient w.r.t. the padded input: dcols = Wᵀ g, folded back onto the image (col2im)."""
    n, c, hp, wp = xp_shape
    (kh, kw), (ho, wo) = kernel, out_hw
    wmat_t = np.swapaxes(wmat, -1, -2)
    if stride[1] != 1:
        dcols = np.matmul(wmat_t, g).reshape(n, c, kh, kw, ho, wo)
        return _fold(lambda i, j: dcols[:, :, i, j], xp_shape, g.dtype, kernel, stride,
                     dilation, out_hw)
    # NOTE: with unit stride along the width, widen every output row to the padded
    # width wp (the extra columns of g are zero). Then each kernel offset (i, j) adds
    # whole rows at one flat offset of the padded plane, i·dh·wp + j·dw: long
    # contiguous runs instead of wo-long pieces. The zero columns spill into the
    # next row (or one spare row at the end) and add nothing.
    g_wide = np.zeros(g.shape[:-1] + (ho, wp), dtype=g.dtype)
    g_wide[..., :wo] = g.reshape(g.shape[:-1] + (ho, wo))
    dcols = np.matmul(wmat_t, g_wide.reshape(g.shape[:-1] + (ho * wp,)))
    dcols = dcols.reshape(n, c, kh, kw, ho, wp)
    flat = np.zeros((n, c, (hp + 1) * wp), dtype=g.dtype)
    s_n, s_c, item = flat.strides[0], flat.strides[1], flat.itemsize
    for i in range(kh):
        for j in range(kw):
            start = i * dilation[0] * wp + j * dilation[1]
            rows = _as_strided(flat[:, :, start:], (n, c, ho, wp),
                               (s_n, s_c, stride[0] * wp * item, item))
            rows += dcols[:, :, i, j]
    return flat.reshape(n, c, hp + 1, wp)[:, :, :hp]


def _conv_padding(padding, kernel, stride, dilation, op: str) -> tuple:
    """(top, bottom, left, right) from an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ShapeError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            # NOTE: an even effective kernel needs an odd total padding; like torch, the
            # extra row/column goes at the bottom/right.
            th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        raise ShapeError(f"{op}: invalid padding string {padding!r}; expected 'valid', 'same', "
                         f"an int or a pair of ints")
    ph, pw = _pair(padding, "padding", op)
    if min(ph, pw) < 0:
        raise ShapeError(f"{op}: padding must be non-negative, got {(ph, pw)}")
    return ph, ph, pw, pw


def _check_groups(groups, op: str) -> int:
    if not _is_int(groups) or groups <= 0:
        raise ShapeError(f"{op}: groups must be a positive int, got {groups!r}")
    return int(groups)


def _check_bias(bias, n_out: int, ws: tuple, x, arrays: list, op: str):
    """The bias as a tensor of shape (n_out,) (or None); appends its array to ``arrays``."""
    if bias is not None:
        bias = as_tensor(bias, op, like=x)
        if tuple(bias.shape) != (n_out,):
            raise ShapeError(f"{op}: expected bias of shape ({n_out},) for weight of shape "
                             f"{ws}, got {tuple(bias.shape)}")
        arrays.append(bias._data)
    for a in arrays[1:]:
        if a.dtype != arrays[0].dtype:
            raise DTypeError(f"{op}: input, weight and bias must have the same dtype, got "
                             f"{', '.join(str(b.dtype) for b in arrays)}")
    return bias


def _single(value, name: str, op: str) -> int:
    """An int or a 1-sequence of ints -> int (the 1-D ops' arguments)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not _is_int(value):
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {value!r}")
    return int(value)


def _as_image(x):
    """(N, C, L) -> (N, C, 1, L) and (C, L) -> (1, C, 1, L): 1-D ops run as 2-D ones."""
    shape = tuple(x.shape)
    return x.reshape((1,) * (4 - len(shape) - 1) + shape[:-1] + (1, shape[-1]))


def _as_sequence(out, batched: bool):
    """Undo ``_as_image`` on an output (N, C, 1, L')."""
    shape = tuple(out.shape)
    return out.reshape((shape[:2] if batched else shape[1:2]) + (shape[3],))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation (what deep learning calls convolution), as torch.nn.functional.conv2d.

    Args:
        input: (N, C_in, H, W), or unbatched (C_in, H, W).
        weight: (C_out, C_in / groups, kH, kW).
        bias: (C_out,) or None.
        stride, dilation: int or (h, w).
        padding: int, (h, w), 'valid' (no padding) or 'same' (output size = input
            size; stride 1 only). Zero padding.
        groups: split the channels into this many independent convolutions.

    Example::

        x, w = backprop.randn(8, 3, 32, 32), backprop.randn(16, 3, 3, 3)
        backprop.conv2d(x, w, padding=1).shape   # (8, 16, 32, 32)
    """
    op = "conv2d"
    x, w = _conv_operands(input, weight, op, 2, "C_out, C_in/groups, kH, kW")
    if x.ndim == 3:
        return _unbatched(conv2d, x, w, bias, stride, padding, dilation, groups)
    groups = _check_groups(groups, op)
    xs, ws = tuple(x.shape), tuple(w.shape)
    if ws[0] % groups:
        raise ShapeError(f"{op}: weight has {ws[0]} output channels (shape {ws}), which is not "
                         f"divisible by groups={groups}")
    if xs[1] != ws[1] * groups:
        raise ShapeError(f"{op}: input has {xs[1]} channels (shape {xs}) but weight {ws} expects "
                         f"{ws[1] * groups} (groups={groups})")
    bias = _check_bias(bias, ws[0], ws, x, [x._data, w._data], op)
    stride = _pair(stride, "stride", op)
    dilation = _pair(dilation, "dilation", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    kernel = ws[2:]
    pads = _conv_padding(padding, kernel, stride, dilation, op)
    padded = (xs[2] + pads[0] + pads[1], xs[3] + pads[2] + pads[3])
    effective = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    if effective[0] > padded[0] or effective[1] > padded[1]:
        raise ShapeError(f"{op}: kernel {kernel} (dilation {dilation}, effective size "
                         f"{effective}) is larger than the padded input {padded} "
                         f"(input shape {xs})")
    return Conv2d.apply(x, w, bias, stride=stride, padding=pads, dilation=dilation,
                        groups=groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation over sequences, as torch.nn.functional.conv1d.

    Runs as ``conv2d`` on a height-1 image (one im2col product, same speed).

    Args:
        input: (N, C_in, L), or unbatched (C_in, L).
        weight: (C_out, C_in / groups, k).
        bias: (C_out,) or None.
        stride, dilation: int or 1-tuple.
        padding: int, 1-tuple, 'valid' or 'same' (stride 1 only). Zero padding.
        groups: split the channels into this many independent convolutions.

    Example::

        x, w = backprop.randn(8, 4, 50), backprop.randn(16, 4, 5)
        backprop.conv1d(x, w, padding=2).shape   # (8, 16, 50)
    """
    op = "conv1d"
    x, w = _conv_operands(input, weight, op, 1, "C_out, C_in/groups, k")
    groups = _check_groups(groups, op)
    xs, ws = tuple(x.shape), tuple(w.shape)
    if ws[0] % groups:
        raise ShapeError(f"{op}: weight has {ws[0]} output channels (shape {ws}), which is not "
                         f"divisible by groups={groups}")
    if xs[-2] != ws[1] * groups:
        raise ShapeError(f"{op}: input has {xs[-2]} channels (shape {xs}) but weight {ws} "
                         f"expects {ws[1] * groups} (groups={groups})")
    bias = _check_bias(bias, ws[0], ws, x, [x._data, w._data], op)
    stride = _single(stride, "stride", op)
    dilation = _single(dilation, "dilation", op)
    _check_positive((stride,), "stride", op)
    _check_positive((dilation,), "dilation", op)
    if not isinstance(padding, str):
        padding = (0, _single(padding, "padding", op))
    pads = _conv_padding(padding, (1, ws[2]), (1, stride), (1, dilation), op)
    padded = xs[-1] + pads[2] + pads[3]
    if dilation * (ws[2] - 1) + 1 > padded:
        raise ShapeError(f"{op}: kernel size {ws[2]} (dilation {dilation}) is larger than the "
                         f"padded input length {padded} (input shape {xs})")
    out = Conv2d.apply(_as_image(x), w.reshape(ws[:2] + (1, ws[2])), bias, stride=(1, stride),
                       padding=pads, dilation=(1, dilation), groups=groups)
    return _as_sequence(out, x.ndim == 3)


# -- transposed convolution -------------------------------------------------------------------
class ConvTranspose2d(Function):
    """out = crop(col2im(Wᵀ·x));  dx = W·im2col(g_pad),  dW = Σₙ x·im2col(g_pad)ᵀ,  db = Σ g

    The adjoint of conv2d in its input: out[n, o, h·sh + i·dh - ph, w·sw + j·dw - pw] +=
    Σ_c x[n, c, h, w]·W[c, o, i, j] (weight (C_in, C_out/groups, kH, kW)), so its
    backward is conv2d of the padded grad_output with the same weight.
    """

    backward_name = 'ConvolutionBackward0'  # PyTorch's one node for every convolution

    @staticmethod
    def forward(ctx, x, weight, bias, *, stride, padding, output_padding, dilation, groups):
        n, c, h, w = x.shape
        _, og, kh, kw = weight.shape
        full_hw = tuple((size - 1) * s + d * (k - 1) + 1 + op for size, s, d, k, op in
                        zip((h, w), stride, dilation, (kh, kw), output_padding, strict=True))
        wmat = weight.reshape(groups, c // groups, og * kh * kw)
        xg = x.reshape(n, groups, c // groups, h * w)
        # The uncropped output is conv2d's input gradient for "grad_output" x: one
        # matrix product, then col2im onto the full plane.
        if stride[1] == 1:  # col2im's fast path for unit stride along the width
            full = _conv_input_grad(wmat, xg, (n, og * groups) + full_hw, (kh, kw), stride,
                                    dilation, (h, w))
        else:
            full = _transpose_strided(weight, xg, groups, stride, dilation, full_hw, (h, w))
        ph, pw = padding
        out = np.ascontiguousarray(full[:, :, ph:full_hw[0] - ph, pw:full_hw[1] - pw])
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(wmat if need_x else None, xg if need_w else None)
        ctx.geometry = (x.shape, weight.shape, stride, padding, dilation, groups)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        wmat, xg = ctx.saved_tensors
        x_shape, w_shape, stride, padding, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c, h, w = x_shape
        _, og, kh, kw = w_shape
        gx = gw = gb = None
        if need_x or need_w:
            gp = _pad(grad_output, (padding[0], padding[0], padding[1], padding[1]), 0)
            # output_padding rows/columns past the last window are never read
            cols = _windows(gp, (kh, kw), stride, dilation, (h, w)).reshape(
                n, groups, og * kh * kw, h * w)
            if need_x:
                gx = np.matmul(wmat, cols).reshape(x_shape)
            if need_w:
                gw = np.matmul(xg, np.swapaxes(cols, -1, -2)).sum(axis=0).reshape(w_shape)
        if need_b:
            gb = grad_output.sum(axis=(0, 2, 3))
        return gx, gw, gb


def _transpose_strided(weight, xg, groups, stride, dilation, full_hw, in_hw) -> np.ndarray:
    """The uncropped transposed convolution for strided upsampling: one matrix product
    with the kernel offsets (i, j) outermost, so each offset's contribution is one
    contiguous block, added into a strided slice of the full plane (kh·kw steps)."""
    n, _, cg, _ = xg.shape
    _, og, kh, kw = weight.shape
    (h, w), (sh, sw), (dh, dw) = in_hw, stride, dilation
    wk = np.ascontiguousarray(weight.reshape(groups, cg, og, kh, kw).transpose(0, 3, 4, 2, 1))
    dcols = np.matmul(wk.reshape(groups, kh * kw * og, cg), xg)
    dcols = dcols.reshape(n, groups, kh, kw, og, h, w)
    full = np.zeros((n, groups, og) + tuple(full_hw), dtype=dcols.dtype)
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (h - 1) + 1, sh)
        for j in range(kw):
            full[..., rows, j * dw:j * dw + sw * (w - 1) + 1:sw] += dcols[:, :, i, j]
    return full.reshape((n, groups * og) + tuple(full_hw))


def _transpose_args(x, w, bias, stride, padding, output_padding, groups, dilation, dims, op):
    """Check conv_transpose{1,2}d's arguments; returns (bias, stride, padding, output_padding,
    dilation, groups) as (h, w) pairs (height 1 for the 1-D op)."""
    xs, ws = tuple(x.shape), tuple(w.shape)
    groups = _check_groups(groups, op)
    if xs[-dims - 1] != ws[0]:
        raise ShapeError(f"{op}: input has {xs[-dims - 1]} channels (shape {xs}) but weight "
                         f"{ws} expects {ws[0]} (weight is (C_in, C_out/groups, ...))")
    if ws[0] % groups:
        raise ShapeError(f"{op}: weight has {ws[0]} input channels (shape {ws}), which is not "
                         f"divisible by groups={groups}")
    bias = _check_bias(bias, ws[1] * groups, ws, x, [x._data, w._data], op)
    if dims == 1:  # the 2-D op on a height-1 image
        stride = (1, _single(stride, "stride", op))
        dilation = (1, _single(dilation, "dilation", op))
        padding = (0, _single(padding, "padding", op))
        output_padding = (0, _single(output_padding, "output_padding", op))
    else:
        if isinstance(padding, str):
            raise ShapeError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
        stride, padding = _pair(stride, "stride", op), _pair(padding, "padding", op)
        output_padding = _pair(output_padding, "output_padding", op)
        dilation = _pair(dilation, "dilation", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    if min(padding) < 0 or min(output_padding) < 0:
        raise ShapeError(f"{op}: padding and output_padding must be non-negative, got "
                         f"padding={padding[2 - dims:]}, "
                         f"output_padding={output_padding[2 - dims:]}")
    for op_, s, d in zip(output_padding, stride, dilation, strict=True):
        if op_ >= max(s, d):
            raise ShapeError(f"{op}: output_padding must be smaller than either stride or "
                             f"dilation, got output_padding={output_padding[2 - dims:]}, "
                             f"stride={stride[2 - dims:]}, dilation={dilation[2 - dims:]}")
    kernel = (1,) * (2 - dims) + ws[2:]
    sizes = (1,) * (2 - dims) + xs[-dims:]
    out = tuple((size - 1) * s - 2 * p + d * (k - 1) + op_ + 1 for size, s, p, d, k, op_ in
                zip(sizes, stride, padding, dilation, kernel, output_padding, strict=True))
    if min(out) <= 0:
        raise ShapeError(f"{op}: output size {out[2 - dims:]} is not positive for input of shape "
                         f"{xs}, weight {ws}, stride {stride[2 - dims:]} and padding "
                         f"{padding[2 - dims:]}")
    return bias, stride, padding, output_padding, dilation, groups


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution (the gradient of conv2d w.r.t. its input), as
    torch.nn.functional.conv_transpose2d; upsamples by ``stride``.

    Output size per axis: (in - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1.

    Args:
        input: (N, C_in, H, W), or unbatched (C_in, H, W).
        weight: (C_in, C_out / groups, kH, kW).
        bias: (C_out,) or None.
        stride, padding, output_padding, dilation: int or (h, w); output_padding
            (extra rows/columns at the bottom/right) must be below stride or dilation.
        groups: split the channels into this many independent convolutions.

    Example::

        x, w = backprop.randn(8, 16, 7, 7), backprop.randn(16, 8, 3, 3)
        backprop.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).shape
        # (8, 8, 14, 14)
    """
    op = "conv_transpose2d"
    x, w = _conv_operands(input, weight, op, 2, "C_in, C_out/groups, kH, kW")
    if x.ndim == 3:
        return _unbatched(conv_transpose2d, x, w, bias, stride, padding, output_padding, groups,
                          dilation)
    bias, stride, padding, output_padding, dilation, groups = _transpose_args(
        x, w, bias, stride, padding, output_padding, groups, dilation, 2, op)
    return ConvTranspose2d.apply(x, w, bias, stride=stride, padding=padding,
                                 output_padding=output_padding, dilation=dilation, groups=groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution, as torch.nn.functional.conv_transpose1d (runs as the 2-D op
    on a height-1 image).

    Args:
        input: (N, C_in, L), or unbatched (C_in, L).
        weight: (C_in, C_out / groups, k).
        bias, stride, padding, output_padding, groups, dilation: as conv_transpose2d
            (ints or 1-tuples).

    Example::

        backprop.conv_transpose1d(backprop.randn(2, 4, 10), backprop.randn(4, 3, 4),
                                  stride=2).shape   # (2, 3, 22)
    """
    op = "conv_transpose1d"
    x, w = _conv_operands(input, weight, op, 1, "C_in, C_out/groups, k")
    bias, stride, padding, output_padding, dilation, groups = _transpose_args(
        x, w, bias, stride, padding, output_padding, groups, dilation, 1, op)
    ws = tuple(w.shape)
    out = ConvTranspose2d.apply(_as_image(x), w.reshape(ws[:2] + (1, ws[2])), bias,
                                stride=stride, padding=padding, output_padding=output_padding,
                                dilation=dilation, groups=groups)
    return _as_sequence(out, x.ndim == 3)


# -- pooling --------------------------------------------------------------------------------
def _pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode, op):
    """Output size and (top, bottom, left, right) padding, with ceil_mode's extra rows."""
    out, pads = [], []
    for size, k, s, p, d in zip(shape[2:], kernel, stride, padding, dilation, strict=True):
        span = size + 2 * p - d * (k - 1) - 1
        n_out = (span + (s - 1 if ceil_mode else 0)) // s + 1
        # NOTE: with ceil_mode the last window must still start inside the input (or
        # its left padding); torch drops one that would start in the right padding.
        if ceil_mode and (n_out - 1) * s >= size + p:
            n_out -= 1
        if n_out <= 0:
            raise ShapeError(f"{op}: output size is too small: input of shape {tuple(shape)} "
                             f"with kernel_size {tuple(kernel)}, stride {tuple(stride)}, "
                             f"padding {tuple(padding)} and dilation {tuple(dilation)} gives "
                             f"no output")
        extra = max(0, (n_out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
        out.append(n_out)
        pads.extend((p, p + extra))
    return tuple(out), tuple(pads)


def _pool_args(kernel_size, stride, padding, dilation, op):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and
                                          len(stride) == 0) else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    dilation = _pair(dilation, "dilation", op)
    _check_positive(kernel, "kernel_size", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    # NOTE: torch bounds the padding by half the kernel size, dilation or not, so that
    # every window holds at least one element of the input.
    for p, k in zip(padding, kernel, strict=True):
        if p < 0 or p > k // 2:
            raise ShapeError(f"{op}: padding must be non-negative and at most half of "
                             f"kernel_size, got padding {padding} with kernel_size {kernel}")
    return kernel, stride, padding, dilation


def _tiles(kernel, stride, padding, dilation) -> bool:
    """Whether pooling windows tile the input: stride = kernel, no padding or dilation."""
    return stride == kernel and dilation == (1, 1) and not any(padding)


def _padded_shape(shape: tuple, padding: tuple) -> tuple:
    """The shape of an (N, C, H, W) input padded by (top, bottom, left, right)."""
    top, bottom, left, right = padding
    return shape[:2] + (shape[2] + top + bottom, shape[3] + left + right)


class MaxPool2d(Function):
    """out = max over each window of x_pad (-inf padding);  dx: g goes to the window's argmax"""

    backward_name = 'MaxPool2DWithIndicesBackward0'

    @staticmethod
    def forward(ctx, x, *, kernel, stride, padding, dilation, out_hw, indices_out=None):
        need_arg = ctx.needs_input_grad[0] or indices_out is not None
        if FAST_PATHS and _tiles(kernel, stride, padding, dilation) and _kernels.usable(x) \
                and kernel[0] * kernel[1] < 2 ** 15:
            # The C kernel: one pass, the same bits as the NumPy code below.
            n, c, h, w = x.shape
            best = np.empty((n, c) + tuple(out_hw), dtype=x.dtype)
            arg = np.empty(best.shape, dtype=np.int16) if need_arg else None
            _kernels.KERNELS.max_pool2d_tiles(x, best, arg, n * c, h, w, *kernel, *out_hw)
        else:
            best, arg = MaxPool2d._max_and_argmax(x, kernel, stride, padding, dilation,
                                                  out_hw, need_arg)
        if indices_out is not None:
            h, w = x.shape[2:]
            ki, kj = np.divmod(arg.astype(np.int64), kernel[1])
            rows = np.arange(out_hw[0])[:, None] * stride[0] + ki * dilation[0] - padding[0]
            cols = np.arange(out_hw[1]) * stride[1] + kj * dilation[1] - padding[2]
            indices_out.append(rows * w + cols)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(arg)
            ctx.geometry = (x.shape, _padded_shape(x.shape, padding), kernel, stride, padding,
                            dilation, out_hw)
        return best

    @staticmethod
    def _max_and_argmax(x, kernel, stride, padding, dilation, out_hw, need_arg) -> tuple:
        """(the windows' maxima, the first argmax offset of each or None): NumPy's code."""
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = _pad(x, padding, fill)
        win = _windows(xp, kernel, stride, dilation, out_hw)
        offsets = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
        # Running max over the kh·kw kernel offsets, each step one vectorised pass over
        # every window at once (np.maximum propagates NaN, as torch does).
        best = win[:, :, 0, 0].copy()
        for i, j in offsets[1:]:
            np.maximum(best, win[:, :, i, j], out=best)
        arg = None
        if need_arg:
            # The winning offset k = i·kw + j of each window. Walking the offsets
            # backwards and overwriting on every match leaves the *first* maximum
            # (torch's choice on ties). (Arithmetic blend: masked writes are slower.)
            itype = np.int16 if len(offsets) < 2 ** 15 else np.int64
            arg = np.zeros(best.shape, dtype=itype)
            has_nan = x.dtype.kind == "f" and np.isnan(best).any()
            for k in range(len(offsets) - 1, -1, -1):
                cand = win[:, :, offsets[k][0], offsets[k][1]]
                hit = cand == best
                if has_nan:  # a NaN window points at its NaN
                    hit |= np.isnan(cand)
                arg += hit * (itype(k) - arg)
        return best, arg

    @staticmethod
    def backward(ctx, grad_output):
        (arg,) = ctx.saved_tensors
        x_shape, xp_shape, kernel, stride, padding, dilation, out_hw = ctx.geometry
        g, kw = grad_output, kernel[1]
        # NOTE: each window sends its whole gradient to its argmax; windows that overlap
        # and share a maximum add their gradients there (the strided adds in _fold).
        # Multiplying by the mask is fastest but would turn an Inf/NaN gradient into
        # NaN everywhere in its window, so that rare case selects instead.
        if np.isfinite(g).all():
            if FAST_PATHS and _tiles(kernel, stride, padding, dilation) and g.dtype.kind == "f":
                return _max_pool_grad_tiles(g, arg, x_shape, kernel, out_hw)

            def piece(i, j):
                return g * (arg == i * kw + j)
        else:
            def piece(i, j):
                return np.where(arg == i * kw + j, g, g.dtype.type(0))
        dxp = _fold(piece, xp_shape, g.dtype, kernel, stride, dilation, out_hw)
        return _crop(dxp, padding, x_shape[2:])


def _max_pool_grad_tiles(g, arg, x_shape, kernel, out_hw) -> np.ndarray:
    """MaxPool2d's input gradient when the windows tile the input (stride = kernel, no
    padding or dilation), for a finite gradient.

    NOTE: tiles never overlap, so each kernel offset's share, g·[arg = k], is written
    straight into its strided slot instead of added onto zeros (``_fold``): no zeroed
    image, no read of it. A product g·0 is -0.0 where g < 0 while the general path's
    0 + (-0.0) is +0.0; adding +0.0 at the end makes every such zero +0.0, as there
    (and as PyTorch has it). Rows and columns past the last tile get no gradient.
    """
    n, c = x_shape[:2]
    (kh, kw), (ho, wo) = kernel, out_hw
    g = np.ascontiguousarray(g)  # read kh·kw times: one copy pays (a cropped conv gradient)
    dx = np.empty(x_shape, dtype=g.dtype)
    if _kernels.usable(g) and arg.dtype == np.int16 and arg.flags.c_contiguous:
        # The C kernel: one pass, the same bits as the NumPy code below.
        _kernels.KERNELS.max_pool2d_tiles_backward(g, arg, dx, n * c, *x_shape[2:], *kernel,
                                                   *out_hw)
        return dx
    s_n, s_c, s_h, s_w = dx.strides
    tiles = _as_strided(dx, (n, c, ho, kh, wo, kw),
                        (s_n, s_c, kh * s_h, s_h, kw * s_w, s_w))
    for i in range(kh):
        for j in range(kw):
            np.multiply(g, arg == i * kw + j, out=tiles[:, :, :, i, :, j])
    dx[:, :, ho * kh:] = 0
    dx[:, :, :, wo * kw:] = 0
    dx += 0.0
    return dx


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling, as torch.nn.functional.max_pool2d.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W).
        kernel_size: int or (h, w).
        stride: int or (h, w); defaults to kernel_size.
        padding: implicit -inf padding on each side, at most half the kernel.
        dilation: spacing between kernel elements.
        ceil_mode: round the output size up instead of down.
        return_indices: also return, for every output, the flat index h·W + w of its
            maximum within the (unpadded) input plane.

    Example::

        backprop.max_pool2d(backprop.randn(1, 3, 8, 8), 2).shape   # (1, 3, 4, 4)
    """
    op = "max_pool2d"
    x = as_tensor(input, op)
    _check_input(x, op)
    if x.ndim == 3:
        return _unbatched(max_pool2d, x, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices)
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, dilation, op)
    out_hw, pads = _pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode, op)
    holder = [] if return_indices else None
    out = MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation,
                          out_hw=out_hw, indices_out=holder)
    if return_indices:
        return out, _make(holder[0])
    return out


class AvgPool2d(Function):
    """out = Σ over each window of x_pad / divisor[h, w];  dx: g / divisor to every element"""

    backward_name = 'AvgPool2DBackward0'

    @staticmethod
    def forward(ctx, x, *, kernel, stride, padding, divisor, out_hw):
        xp = _pad(x, padding, 0)
        win = _windows(xp, kernel, stride, (1, 1), out_hw)
        total = win[:, :, 0, 0].copy()
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                if i or j:
                    total += win[:, :, i, j]
        if x.dtype.kind == "f":
            out = total / divisor.astype(x.dtype)
        else:  # integer inputs: torch truncates the mean towards zero
            out = np.trunc(total / divisor).astype(x.dtype)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(divisor)
            ctx.geometry = (x.shape, xp.shape, kernel, stride, padding, out_hw)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (divisor,) = ctx.saved_tensors
        x_shape, xp_shape, kernel, stride, padding, out_hw = ctx.geometry
        share = grad_output / divisor.astype(grad_output.dtype)
        # NOTE: every element of a window (padding included, then cropped) receives the
        # same share; elements in several windows collect one share from each.
        dxp = _fold(lambda i, j: share, xp_shape, grad_output.dtype, kernel, stride, (1, 1),
                    out_hw)
        return _crop(dxp, padding, x_shape[2:])


def _avg_divisor(size, k, s, p, n_out, count_include_pad) -> np.ndarray:
    """How many elements each window along one axis averages (torch's rule)."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, size + p)  # windows never count the ceil_mode overhang
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling, as torch.nn.functional.avg_pool2d.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W).
        kernel_size: int or (h, w).
        stride: int or (h, w); defaults to kernel_size.
        padding: implicit zero padding on each side, at most half the kernel.
        ceil_mode: round the output size up instead of down.
        count_include_pad: whether the zero padding counts in the divisor.
        divisor_override: divide every window sum by this instead.

    Example::

        backprop.avg_pool2d(backprop.randn(1, 3, 8, 8), 2).shape   # (1, 3, 4, 4)
    """
    op = "avg_pool2d"
    x = as_tensor(input, op)
    _check_input(x, op)
    if x.ndim == 3:
        return _unbatched(avg_pool2d, x, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override)
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, 1, op)
    out_hw, pads = _pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode, op)
    if divisor_override is not None:
        if not _is_int(divisor_override) or divisor_override == 0:
            raise ShapeError(f"{op}: divisor_override must be a non-zero int, got "
                             f"{divisor_override!r}")
        divisor = np.full(out_hw, float(divisor_override))
    else:
        dh = _avg_divisor(x.shape[2], kernel[0], stride[0], padding[0], out_hw[0],
                          count_include_pad)
        dw = _avg_divisor(x.shape[3], kernel[1], stride[1], padding[1], out_hw[1],
                          count_include_pad)
        divisor = (dh[:, None] * dw[None, :]).astype(np.float64)
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=pads, divisor=divisor,
                           out_hw=out_hw)


def _pool1d_args(x, kernel_size, stride, padding, dilation, ceil_mode, op):
    """Check a 1-D pooling's arguments in 1-D terms; returns (kernel, stride, padding,
    dilation) as the (h, w) pairs of the 2-D op on a height-1 image."""
    _check_input(x, op, dims=1)
    k = _single(kernel_size, "kernel_size", op)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else _single(stride, "stride", op)
    p, d = _single(padding, "padding", op), _single(dilation, "dilation", op)
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        _check_positive((v,), name, op)
    if p < 0 or p > k // 2:
        raise ShapeError(f"{op}: padding must be non-negative and at most half of kernel_size, "
                         f"got padding {p} with kernel_size {k}")
    length = x.shape[-1]
    if (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1 <= 0:
        raise ShapeError(f"{op}: output size is too small: input of shape {tuple(x.shape)} with "
                         f"kernel_size {k}, stride {s}, padding {p} and dilation {d} gives no "
                         f"output")
    return (1, k), (1, s), (0, p), (1, d)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling, as torch.nn.functional.max_pool1d (the 2-D op on a height-1 image).

    Args:
        input: (N, C, L) or unbatched (C, L).
        kernel_size, stride (default kernel_size), padding, dilation: ints or 1-tuples.
        ceil_mode, return_indices: as max_pool2d (indices are positions along L).

    Example::

        backprop.max_pool1d(backprop.randn(2, 3, 8), 2).shape   # (2, 3, 4)
    """
    op = "max_pool1d"
    x = as_tensor(input, op)
    kernel, stride, padding, dilation = _pool1d_args(x, kernel_size, stride, padding, dilation,
                                                     ceil_mode, op)
    out = max_pool2d(_as_image(x), kernel, stride, padding, dilation, ceil_mode, return_indices)
    if return_indices:
        return _as_sequence(out[0], x.ndim == 3), _as_sequence(out[1], x.ndim == 3)
    return _as_sequence(out, x.ndim == 3)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling, as torch.nn.functional.avg_pool1d (the 2-D op on a height-1 image).

    Args:
        input: (N, C, L) or unbatched (C, L).
        kernel_size, stride (default kernel_size), padding: ints or 1-tuples.
        ceil_mode, count_include_pad: as avg_pool2d.

    Example::

        backprop.avg_pool1d(backprop.randn(2, 3, 8), 2).shape   # (2, 3, 4)
    """
    op = "avg_pool1d"
    x = as_tensor(input, op)
    kernel, stride, padding, _ = _pool1d_args(x, kernel_size, stride, padding, 1, ceil_mode, op)
    out = avg_pool2d(_as_image(x), kernel, stride, padding, ceil_mode, count_include_pad)
    return _as_sequence(out, x.ndim == 3)


__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "conv1d", "conv_transpose2d",
           "conv_transpose1d", "max_pool1d", "avg_pool1d"]

TENSOR_METHODS: dict = {}
