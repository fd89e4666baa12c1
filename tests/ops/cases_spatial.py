"""Catalogue cases for the composites of backprop.nn.spatial (adaptive max pooling, group and
instance norm, interpolate, pixel shuffle): no Function of their own, but gradchecked in
float64 on both engines and compared with PyTorch like every op."""
import numpy as np

import backprop.nn.functional as BF
from tests.ops.catalogue import OpCase

try:  # the oracle: the comparisons below skip cleanly without it
    import torch  # noqa: F401
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    F = None


def _draw(*shapes):
    return lambda r: [r.standard_normal(s) for s in shapes]


def _distinct(*shape):
    """Well-separated values: every window has one clear maximum."""
    def make(r):
        n = int(np.prod(shape))
        return [(r.permutation(n) * 0.1 - n * 0.05).reshape(shape)]
    return make


def _case(name, fn_name, make, **kw):
    return OpCase(f"{fn_name}/{name}", lambda *a: getattr(BF, fn_name)(*a, **kw), make,
                  lambda *a: getattr(F, fn_name)(*a, **kw))


def _gn(name, groups, *shapes):
    return OpCase(f"group_norm/{name}", lambda x, *wb: BF.group_norm(x, groups, *wb),
                  _draw(*shapes), lambda x, *wb: F.group_norm(x, groups, *wb))


CASES = [
    _case("uneven", "adaptive_max_pool2d", _distinct(2, 2, 7, 5), output_size=(3, 2)),
    _case("none-keeps-width", "adaptive_max_pool2d", _distinct(1, 2, 5, 4),
          output_size=(2, None)),
    _case("unbatched-upsizing", "adaptive_max_pool2d", _distinct(2, 3, 3), output_size=4),
    OpCase("adaptive_max_pool2d/return-indices",
           lambda x: BF.adaptive_max_pool2d(x, 3, return_indices=True), _distinct(1, 2, 7, 7),
           lambda x: F.adaptive_max_pool2d(x, 3, return_indices=True)),
    _case("uneven", "adaptive_max_pool1d", _distinct(2, 3, 10), output_size=4),
    _case("uneven", "adaptive_avg_pool1d", _draw((2, 3, 10)), output_size=4),
    _case("unbatched", "adaptive_avg_pool1d", _draw((3, 7)), output_size=(3,)),
    _gn("groups", 3, (2, 6, 3, 2), (6,), (6,)),
    _gn("one-group-1d", 1, (3, 4, 5), (4,), (4,)),
    _gn("per-channel-no-affine", 4, (2, 4, 3)),
    _gn("2d-input", 2, (3, 4), (4,), (4,)),
    OpCase("instance_norm/affine", lambda x, w, b: BF.instance_norm(x, weight=w, bias=b),
           _draw((2, 3, 4, 3), (3,), (3,)), lambda x, w, b: F.instance_norm(x, weight=w, bias=b)),
    _case("1d", "instance_norm", _draw((2, 3, 5))),
    _case("nearest-2x", "interpolate", _draw((1, 2, 3, 3)), scale_factor=2),
    _case("nearest-size", "interpolate", _draw((1, 2, 5, 3)), size=(3, 7)),
    _case("nearest-exact", "interpolate", _draw((1, 2, 5, 3)), size=(3, 7), mode="nearest-exact"),
    _case("nearest-1d-fraction", "interpolate", _draw((2, 2, 4)), scale_factor=1.7),
    _case("bilinear", "interpolate", _draw((1, 2, 3, 4)), size=(5, 7), mode="bilinear"),
    _case("bilinear-align-corners", "interpolate", _draw((2, 1, 3, 3)), scale_factor=2,
          mode="bilinear", align_corners=True),
    _case("bilinear-downsize", "interpolate", _draw((1, 2, 6, 5)), scale_factor=(0.5, 0.7),
          mode="bilinear"),
    _case("linear-recompute", "interpolate", _draw((2, 2, 4)), scale_factor=1.7, mode="linear",
          recompute_scale_factor=True),
    _case("r2", "pixel_shuffle", _draw((2, 8, 2, 3)), upscale_factor=2),
    _case("r2", "pixel_unshuffle", _draw((2, 2, 4, 6)), downscale_factor=2),
]
