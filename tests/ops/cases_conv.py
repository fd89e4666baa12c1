"""Catalogue cases for the convolutions and pooling of ops/conv.py (small shapes: float64
gradcheck)."""
import warnings

import numpy as np

from backprop.ops.conv import (
    avg_pool1d, avg_pool2d, conv1d, conv2d, conv_transpose1d, conv_transpose2d, max_pool1d,
    max_pool2d,
)
from tests.ops.catalogue import OpCase

try:  # the oracle: the comparisons below skip cleanly without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None


def _draw(*shapes):
    return lambda r: [r.standard_normal(s) for s in shapes]


def _distinct(*shape):
    """A permutation of well-separated values: every window has one clear maximum,
    so finite differences never straddle a tie."""
    def make(r):
        n = int(np.prod(shape))
        return [(r.permutation(n) * 0.1 - n * 0.05).reshape(shape)]
    return make


def _torch_conv2d(*args, **kw):
    with warnings.catch_warnings():  # torch warns about 'same' with even kernels
        warnings.simplefilter("ignore")
        return F.conv2d(*args, **kw)


def _conv_case(name, x_shape, w_shape, bias=True, **kw):
    shapes = (x_shape, w_shape) + ((w_shape[0],) if bias else ())
    return OpCase(f"conv2d/{name}", lambda *a: conv2d(*a, **kw), _draw(*shapes),
                  lambda *a: _torch_conv2d(*a, **kw), covers=("Conv2d",))


def _pool_case(kind, name, x_shape, **kw):
    ours = {"max": max_pool2d, "avg": avg_pool2d}[kind]
    return OpCase(f"{kind}_pool2d/{name}", lambda x: ours(x, **kw),
                  _distinct(*x_shape) if kind == "max" else _draw(x_shape),
                  lambda x: getattr(F, f"{kind}_pool2d")(x, **kw),  # F looked up when run
                  covers=("MaxPool2d",) if kind == "max" else ("AvgPool2d",))


CASES = [
    _conv_case("basic", (1, 2, 4, 4), (3, 2, 2, 2)),
    _conv_case("stride2-padding1", (2, 2, 5, 5), (2, 2, 3, 3), stride=2, padding=1),
    _conv_case("asymmetric", (1, 2, 5, 4), (2, 2, 3, 2), stride=(2, 1), padding=(1, 0)),
    _conv_case("dilation2", (1, 1, 6, 6), (2, 1, 2, 2), dilation=2, padding=1),
    _conv_case("groups2", (1, 4, 4, 4), (4, 2, 2, 2), groups=2),
    _conv_case("depthwise", (1, 3, 4, 4), (3, 1, 2, 2), groups=3, padding=1),
    _conv_case("no-bias", (2, 2, 4, 4), (2, 2, 3, 3), bias=False, padding=1),
    _conv_case("same-even-kernel", (1, 1, 5, 5), (2, 1, 2, 2), padding="same"),
    _conv_case("same-dilated", (1, 1, 5, 4), (1, 1, 3, 3), padding="same", dilation=2),
    _conv_case("valid", (1, 2, 4, 5), (2, 2, 3, 3), padding="valid"),
    _conv_case("1x1", (2, 3, 3, 3), (2, 3, 1, 1)),
    _conv_case("unbatched", (2, 4, 4), (2, 2, 3, 3), padding=1),
    _pool_case("max", "2x2", (1, 2, 4, 4), kernel_size=2),
    _pool_case("max", "overlapping", (1, 2, 5, 5), kernel_size=3, stride=1),
    _pool_case("max", "overlapping-padded", (2, 1, 5, 5), kernel_size=3, stride=2, padding=1),
    _pool_case("max", "rect-dilated", (1, 2, 6, 5), kernel_size=(2, 3), stride=(1, 2),
               dilation=(2, 1), padding=(1, 1)),
    _pool_case("max", "ceil-mode", (1, 2, 5, 5), kernel_size=2, ceil_mode=True),
    _pool_case("max", "unbatched", (2, 4, 4), kernel_size=2, stride=1),
    OpCase("max_pool2d/return-indices", lambda x: max_pool2d(x, 2, return_indices=True),
           _distinct(1, 2, 4, 4), lambda x: F.max_pool2d(x, 2, return_indices=True),
           covers=("MaxPool2d",)),
    _pool_case("avg", "2x2", (1, 2, 4, 4), kernel_size=2),
    _pool_case("avg", "overlapping", (1, 2, 5, 5), kernel_size=3, stride=1),
    _pool_case("avg", "padded", (2, 1, 5, 5), kernel_size=3, stride=2, padding=1),
    _pool_case("avg", "padded-exclude-pad", (2, 1, 5, 5), kernel_size=3, stride=2, padding=1,
               count_include_pad=False),
    _pool_case("avg", "rect", (1, 2, 5, 6), kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)),
    _pool_case("avg", "ceil-mode", (1, 2, 5, 5), kernel_size=2, ceil_mode=True),
    _pool_case("avg", "ceil-mode-padded", (1, 1, 6, 6), kernel_size=3, stride=2, padding=1,
               ceil_mode=True, count_include_pad=False),
    _pool_case("avg", "divisor-override", (1, 2, 4, 4), kernel_size=2, divisor_override=3),
    _pool_case("avg", "unbatched", (2, 4, 4), kernel_size=2, stride=1),
]


def _case(fn, torch_name, name, shapes, covers, make=None, **kw):
    """A case for one of the other conv/pool functions; torch's twin is looked up when run."""
    return OpCase(f"{fn.__name__}/{name}", lambda *a: fn(*a, **kw), make or _draw(*shapes),
                  lambda *a: getattr(F, torch_name)(*a, **kw), covers=covers)


def _conv1d(name, x, w, bias=True, **kw):
    return _case(conv1d, "conv1d", name, (x, w) + ((w[0],) if bias else ()), ("Conv2d",), **kw)


def _tconv(name, x, w, bias=True, **kw):
    fn, tname = (conv_transpose2d, "conv_transpose2d") if len(w) == 4 else \
        (conv_transpose1d, "conv_transpose1d")
    n_out = w[1] * kw.get("groups", 1)
    return _case(fn, tname, name, (x, w) + ((n_out,) if bias else ()), ("ConvTranspose2d",),
                 **kw)


CASES += [
    _conv1d("basic", (2, 3, 7), (4, 3, 3)),
    _conv1d("stride-padding-groups", (2, 4, 9), (6, 2, 3), stride=2, padding=1, groups=2),
    _conv1d("same-dilated-even", (1, 2, 8), (3, 2, 4), padding="same", dilation=2),
    _conv1d("valid-no-bias", (1, 2, 6), (3, 2, 2), bias=False, padding="valid"),
    _conv1d("unbatched", (3, 6), (2, 3, 3), padding=1),
    _tconv("basic", (2, 3, 3, 3), (3, 2, 2, 2)),
    _tconv("stride2-padding1-outpad1", (1, 2, 3, 3), (2, 3, 3, 3), stride=2, padding=1,
           output_padding=1),
    _tconv("asymmetric", (1, 2, 3, 4), (2, 2, 3, 2), stride=(2, 3), padding=(1, 0),
           output_padding=(0, 2)),
    _tconv("groups-dilation", (2, 4, 3, 3), (4, 1, 2, 2), groups=2, dilation=2, padding=1),
    _tconv("depthwise-outpad-dilation", (1, 2, 3, 3), (2, 1, 2, 2), groups=2, dilation=3,
           output_padding=2),
    _tconv("no-bias", (2, 2, 3, 3), (2, 2, 3, 3), bias=False, stride=2),
    _tconv("unbatched", (2, 3, 3), (2, 2, 2, 2), stride=2),
    _tconv("1d", (2, 3, 5), (3, 2, 3), stride=3, padding=1, output_padding=2),
    _tconv("1d-unbatched-groups", (4, 5), (4, 1, 2), groups=2),
    _case(max_pool1d, "max_pool1d", "overlapping-padded", (), ("MaxPool2d",),
          _distinct(2, 2, 7), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    _case(max_pool1d, "max_pool1d", "unbatched-dilated", (), ("MaxPool2d",), _distinct(2, 8),
          kernel_size=2, dilation=2),
    OpCase("max_pool1d/return-indices", lambda x: max_pool1d(x, 2, return_indices=True),
           _distinct(1, 2, 6), lambda x: F.max_pool1d(x, 2, return_indices=True),
           covers=("MaxPool2d",)),
    _case(avg_pool1d, "avg_pool1d", "padded-exclude-pad", ((2, 2, 7),), ("AvgPool2d",),
          kernel_size=3, stride=2, padding=1, count_include_pad=False),
    _case(avg_pool1d, "avg_pool1d", "unbatched-ceil", ((2, 7),), ("AvgPool2d",), kernel_size=2,
          ceil_mode=True),
]
