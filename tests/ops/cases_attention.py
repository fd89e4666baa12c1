"""Catalogue cases for attention.py: scaled dot-product attention (fused) and tril / triu."""
import numpy as np

from backprop.ops.attention import scaled_dot_product_attention, tril, triu
from tests.ops.catalogue import OpCase

try:  # the oracle: the comparisons below skip cleanly without it
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = TF = None

SDPA = ("ScaledDotProductAttention",)


def _draw(*shapes):
    return lambda r: [r.standard_normal(s) for s in shapes]


def _with_bool_mask(shape_q, shape_k, shape_v, mask_shape, dead_row=False):
    def make(r):
        keep = r.random(mask_shape) > 0.3
        keep[..., 0] = True
        if dead_row:
            keep[..., 1, :] = False  # a query that may see nothing: zeros out, zero gradient
        return [r.standard_normal(shape_q), r.standard_normal(shape_k),
                r.standard_normal(shape_v), keep]
    return make


def _with_float_mask(r):
    m = r.standard_normal((3, 4))
    m[0, 2] = -np.inf
    return [r.standard_normal((2, 3, 5)), r.standard_normal((2, 4, 5)),
            r.standard_normal((2, 4, 2)), m]


def _sdpa(**kw):
    return lambda q, k, v, *m: scaled_dot_product_attention(q, k, v, *m, **kw)


def _torch_sdpa(**kw):
    return lambda q, k, v, *m: TF.scaled_dot_product_attention(q, k, v, *m, **kw)


CASES = [
    OpCase("sdpa", _sdpa(), _draw((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), _torch_sdpa(),
           covers=SDPA),
    OpCase("sdpa/2d-scale", _sdpa(scale=0.3), _draw((3, 4), (5, 4), (5, 2)),
           _torch_sdpa(scale=0.3), covers=SDPA),
    OpCase("sdpa/causal", _sdpa(is_causal=True), _draw((1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 3)),
           _torch_sdpa(is_causal=True), covers=SDPA),
    OpCase("sdpa/broadcast-batch", _sdpa(), _draw((2, 1, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3)),
           _torch_sdpa(), covers=SDPA),
    OpCase("sdpa/bool-mask-dead-row", _sdpa(), _with_bool_mask((2, 3, 4), (2, 5, 4), (2, 5, 3),
                                                                (3, 5), dead_row=True),
           _torch_sdpa(), covers=SDPA),
    OpCase("sdpa/float-mask-grad", _sdpa(), _with_float_mask, _torch_sdpa(), covers=SDPA),
    OpCase("sdpa/gqa", _sdpa(enable_gqa=True), _draw((1, 4, 3, 2), (1, 2, 3, 2), (1, 2, 3, 2)),
           _torch_sdpa(enable_gqa=True), covers=SDPA),
    OpCase("tril", lambda a: tril(a), _draw((4, 5)), lambda a: torch.tril(a), covers=("Tril",)),
    OpCase("tril/batched-diag-neg", lambda a: a.tril(-1), _draw((2, 3, 3)),
           lambda a: a.tril(-1), covers=("Tril",)),
    OpCase("triu", lambda a: triu(a, 1), _draw((3, 4)), lambda a: torch.triu(a, 1),
           covers=("Triu",)),
    OpCase("triu/method-wide", lambda a: a.triu(diagonal=-2), _draw((2, 4, 3)),
           lambda a: a.triu(diagonal=-2), covers=("Triu",)),
]
