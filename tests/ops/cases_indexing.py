"""Catalogue cases for indexing: x[...], gather, index_select, masked_fill, scatter_add, ..."""
import numpy as np

import backprop
from backprop.ops import indexing as I
from tests.ops.catalogue import OpCase, randn

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

IDX = np.array  # readability: index arrays in the inputs list become int64 tensors


def _get(index):
    """A case function that indexes its first input with a fixed index."""
    return lambda a: a[index]


def _with(shape, *extra):
    """Inputs: a float64 array of ``shape`` followed by fixed extra arguments."""
    return lambda r: [r.standard_normal(shape), *extra]


def _both(index, shape, name, torch_index=None):
    """An indexing case whose torch version uses the same index (or ``torch_index``)."""
    t_index = index if torch_index is None else torch_index
    return OpCase(f"getitem/{name}", _get(index), _with(shape), _get(t_index),
                  covers=("GetItem",))


_MASK = np.array([[True, False, True, True], [False, False, True, False],
                  [True, True, False, False]])
_ROWS = np.array([True, False, True])

CASES = [
    # -- basic indexing: ints, slices, None, Ellipsis (views) ---------------------------------
    _both(1, (3, 4), "int"),
    _both(-1, (3, 4), "negative-int"),
    _both((1, -2), (3, 4), "two-ints"),
    _both((0, slice(None), 1), (2, 3, 4), "int-slice-int"),
    _both(slice(1, 3), (4, 2), "slice"),
    _both((slice(None), slice(None, None, 2)), (3, 5), "slice-step"),
    _both((None, Ellipsis, 1), (2, 3, 4), "none-ellipsis"),
    _both((Ellipsis, None), (2, 3), "ellipsis-none"),
    _both((slice(5, 10),), (3, 2), "slice-past-end"),
    _both((slice(None), slice(0, 0)), (3, 2), "slice-empty"),
    _both(True, (2, 3), "scalar-true"),
    _both(False, (2, 3), "scalar-false"),
    OpCase("getitem/0d-none", _get(None), randn(), _get(None), covers=("GetItem",)),
    OpCase("getitem/0d-ellipsis", lambda a: a[...] * 2, randn(), lambda a: a[...] * 2,
           covers=("GetItem",)),
    # negative steps: torch refuses them, so compare with flip
    OpCase("getitem/negative-step", _get(slice(None, None, -1)), randn(4, 2),
           lambda a: a.flip(0), covers=("GetItem",)),
    OpCase("getitem/negative-step-2", _get((slice(None), slice(None, None, -2))), randn(2, 5),
           lambda a: a.flip(1)[:, ::2], covers=("GetItem",)),
    OpCase("getitem/negative-step-bounds", _get(slice(-1, -4, -1)), randn(5),
           lambda a: a.flip(0)[0:3], covers=("GetItem",)),
    # -- advanced: integer lists / arrays / tensors (copies; repeats accumulate) -----------
    _both([0, 2, 2, 0, 2], (3, 4), "list-repeats"),
    _both([-1, 0, -1], (3, 2), "list-negative"),
    _both(([], slice(None)), (3, 2), "list-empty"),
    _both((slice(None), [1, 1, 0]), (2, 3, 2), "list-dim1-repeats"),
    _both(([0, 1, 1], [2, 2, 0]), (3, 4), "two-lists-repeated-pairs"),
    _both(([[0], [2]], [1, 3, 1]), (3, 4), "broadcast-lists"),
    _both(([0, 1], slice(None), [2, 2]), (3, 4, 5), "separated-lists"),
    _both((slice(None), [0, 2, 0], [1, 1, 1]), (2, 3, 4), "adjacent-lists-middle"),
    _both((0, slice(None), [0, 1, 1]), (2, 3, 4), "int-then-list-torch-rule"),
    _both(([1, 0, 1], 0, [2, 2, 0]), (3, 4, 5), "int-between-lists"),
    _both((slice(None), [0, 1, 1], None), (3, 4), "list-then-none"),
    _both(([0, 1], None, [1, 1]), (2, 3), "none-between-lists"),
    _both((Ellipsis, [3, 0, 3]), (2, 3, 4), "ellipsis-list"),
    _both((slice(1, None), [2, 0, 2]), (4, 3), "slice-then-list"),
    _both((slice(None, None, 2), [[1, 1], [0, 1]]), (5, 3), "step-then-2d-list"),
    OpCase("getitem/index-tensor", lambda a, i: a[i],
           lambda r: [r.standard_normal((4, 3)), IDX([[3, 0], [3, 3]])],
           lambda a, i: a[i], covers=("GetItem",)),
    OpCase("getitem/index-tensor-0d", lambda a, i: a[:, i],
           lambda r: [r.standard_normal((4, 3)), IDX(2)], lambda a, i: a[:, i],
           covers=("GetItem",)),
    OpCase("getitem/two-index-tensors", lambda a, i, j: a[i, :, j],
           lambda r: [r.standard_normal((3, 2, 4)), IDX([0, 2, 2, 0]), IDX([3, 3, 1, 3])],
           lambda a, i, j: a[i, :, j], covers=("GetItem",)),
    # one integer tensor per dimension (x[rows, targets]): the "pick" fast path
    OpCase("getitem/pick-rows-targets", lambda a, i, j: a[i, j],
           lambda r: [r.standard_normal((3, 4)), IDX([0, 2, 2, -1, 1]), IDX([1, 3, 3, -1, -4])],
           lambda a, i, j: a[i, j], covers=("GetItem",)),
    OpCase("getitem/pick-broadcast", lambda a, i, j: a[i, j],
           lambda r: [r.standard_normal((3, 4)), IDX([[0], [2], [2]]), IDX([1, 3, 1])],
           lambda a, i, j: a[i, j], covers=("GetItem",)),
    OpCase("getitem/pick-1d", lambda a, i: a[i],
           lambda r: [r.standard_normal(5), IDX([4, 0, 4, -1])],
           lambda a, i: a[i], covers=("GetItem",)),
    OpCase("getitem/pick-empty", lambda a, i, j: a[i, j],
           lambda r: [r.standard_normal((3, 4)), IDX([], dtype=np.int64),
                      IDX([], dtype=np.int64)],
           lambda a, i, j: a[i, j], covers=("GetItem",)),
    OpCase("getitem/embedding-like", lambda w, i: w[i],
           lambda r: [r.standard_normal((6, 20)), IDX([[1, 5, 1], [0, 1, 1]])],
           lambda w, i: w[i], covers=("GetItem",)),
    # -- masks -----------------------------------------------------------------------------
    OpCase("getitem/mask-full", lambda a, m: a[m], lambda r: [r.standard_normal((3, 4)), _MASK],
           lambda a, m: a[m], covers=("GetItem",)),
    OpCase("getitem/mask-rows", lambda a, m: a[m], lambda r: [r.standard_normal((3, 2)), _ROWS],
           lambda a, m: a[m], covers=("GetItem",)),
    OpCase("getitem/mask-dim1", lambda a, m: a[:, m], lambda r: [r.standard_normal((2, 3, 2)),
           _ROWS], lambda a, m: a[:, m], covers=("GetItem",)),
    OpCase("getitem/mask-and-list", lambda a, m: a[m, [2, 2]],
           lambda r: [r.standard_normal((3, 4)), _ROWS], lambda a, m: a[m, [2, 2]],
           covers=("GetItem",)),
    OpCase("getitem/mask-list", _get([True, False, True]), randn(3, 2),
           _get([True, False, True]), covers=("GetItem",)),
    OpCase("getitem/mask-from-compare", lambda a: a[a > 0] * 2, randn(3, 4),
           lambda a: a[a > 0] * 2, covers=("GetItem",)),
    OpCase("getitem/mask-empty-tensor", lambda a, m: a[m],
           lambda r: [r.standard_normal((0, 3)), np.zeros((0, 3), bool)], lambda a, m: a[m],
           covers=("GetItem",)),
    OpCase("getitem/iterate", lambda a: backprop.ops.stack([r * i for i, r in enumerate(a)]),
           randn(3, 2), lambda a: torch.stack([r * i for i, r in enumerate(a)]),
           covers=("GetItem",)),
    # -- gather ------------------------------------------------------------------------------
    OpCase("gather/dim1", lambda a, i: a.gather(1, i),
           lambda r: [r.standard_normal((3, 4)), IDX([[0, 0, 3], [1, 2, 1], [3, 3, 3]])],
           lambda a, i: a.gather(1, i), covers=("Gather",)),
    OpCase("gather/dim0-smaller-index", lambda a, i: I.gather(a, 0, i),
           lambda r: [r.standard_normal((3, 4)), IDX([[2, 0], [2, 2]])],
           lambda a, i: torch.gather(a, 0, i), covers=("Gather",)),
    OpCase("gather/negative-dim-3d", lambda a, i: a.gather(-1, i),
           lambda r: [r.standard_normal((2, 3, 4)), r.integers(0, 4, (2, 3, 6))],
           lambda a, i: a.gather(-1, i), covers=("Gather",)),
    OpCase("gather/1d-0d", lambda a, i: a.gather(0, i),
           lambda r: [r.standard_normal(4), IDX(2)], lambda a, i: a.gather(0, i),
           covers=("Gather",)),
    OpCase("gather/empty", lambda a, i: a.gather(1, i),
           lambda r: [r.standard_normal((3, 4)), np.zeros((3, 0), np.int64)],
           lambda a, i: a.gather(1, i), covers=("Gather",)),
    OpCase("take_along_dim/dim", lambda a, i: I.take_along_dim(a, i, dim=1),
           lambda r: [r.standard_normal((3, 4)), IDX([[0, -1], [1, 1], [3, 0]])],
           lambda a, i: torch.take_along_dim(a, i, dim=1), covers=("Gather",)),
    OpCase("take_along_dim/broadcast", lambda a, i: a.take_along_dim(i, 2),
           lambda r: [r.standard_normal((1, 3, 4)), IDX([[[0, 3, 3]], [[1, 1, -4]]])],
           lambda a, i: a.take_along_dim(i, 2), covers=("Gather", "Expand")),
    OpCase("take_along_dim/flat", lambda a, i: I.take_along_dim(a, i),
           lambda r: [r.standard_normal((3, 4)), IDX([[11, 0], [5, 5]])],
           lambda a, i: torch.take_along_dim(a, i), covers=("Gather", "Reshape")),
    # -- index_select -------------------------------------------------------------------------
    OpCase("index_select/dim0-repeats", lambda a, i: a.index_select(0, i),
           lambda r: [r.standard_normal((4, 3)), IDX([3, 0, 3, 3])],
           lambda a, i: a.index_select(0, i), covers=("IndexSelect",)),
    OpCase("index_select/dim-1", lambda a, i: I.index_select(a, -1, i),
           lambda r: [r.standard_normal((2, 3, 4)), IDX([1, 1, 0])],
           lambda a, i: torch.index_select(a, -1, i), covers=("IndexSelect",)),
    OpCase("index_select/long-rows", lambda a, i: a.index_select(0, i),
           lambda r: [r.standard_normal((5, 3, 8)), IDX([4, 0, 4, 2, 0])],
           lambda a, i: a.index_select(0, i), covers=("IndexSelect",)),
    OpCase("index_select/long-rows-unique", lambda a, i: a.index_select(1, i),
           lambda r: [r.standard_normal((2, 5, 20)), IDX([4, 0, 2])],
           lambda a, i: a.index_select(1, i), covers=("IndexSelect",)),
    OpCase("index_select/0d-index", lambda a, i: a.index_select(1, i),
           lambda r: [r.standard_normal((2, 3)), IDX(1)], lambda a, i: a.index_select(1, i),
           covers=("IndexSelect",)),
    OpCase("index_select/empty", lambda a, i: a.index_select(0, i),
           lambda r: [r.standard_normal((2, 3)), np.zeros(0, np.int64)],
           lambda a, i: a.index_select(0, i), covers=("IndexSelect",)),
    # -- masked_fill / masked_select ------------------------------------------------------------
    OpCase("masked_fill/scalar", lambda a, m: a.masked_fill(m, -2.5),
           lambda r: [r.standard_normal((3, 4)), _MASK], lambda a, m: a.masked_fill(m, -2.5),
           covers=("MaskedFill",)),
    OpCase("masked_fill/broadcast-mask", lambda a, m: I.masked_fill(a, m, 0.0),
           lambda r: [r.standard_normal((2, 3)), _ROWS],
           lambda a, m: torch.masked_fill(a, m, 0.0), covers=("MaskedFill",)),
    OpCase("masked_fill/broadcast-input", lambda a, m: I.masked_fill(a, m, 1.0),
           lambda r: [r.standard_normal(4), _MASK],
           lambda a, m: torch.masked_fill(a, m, 1.0), covers=("MaskedFill",)),
    OpCase("masked_fill/tensor-value", lambda a, m, v: a.masked_fill(m, v),
           lambda r: [r.standard_normal((3, 4)), _MASK, np.array(0.7)],
           lambda a, m, v: a.masked_fill(m, v), covers=("MaskedFill",)),
    OpCase("masked_select", lambda a, m: a.masked_select(m),
           lambda r: [r.standard_normal((2, 3)), _ROWS], lambda a, m: a.masked_select(m),
           covers=("GetItem", "Expand")),
    # -- scatter_add ----------------------------------------------------------------------------
    OpCase("scatter_add/dim0", lambda a, i, s: a.scatter_add(0, i, s),
           lambda r: [r.standard_normal((3, 4)), IDX([[0, 2, 2, 0], [2, 2, 1, 0]]),
                      r.standard_normal((2, 4))],
           lambda a, i, s: a.scatter_add(0, i, s), covers=("ScatterAdd",)),
    OpCase("scatter_add/dim1-smaller-index", lambda a, i, s: I.scatter_add(a, -1, i, s),
           lambda r: [r.standard_normal((3, 4)), IDX([[1, 1], [3, 0]]),
                      r.standard_normal((2, 2))],
           lambda a, i, s: torch.scatter_add(a, -1, i, s), covers=("ScatterAdd",)),
    # torch's own backward fails when src is larger than index, so no torch_fn here
    OpCase("scatter_add/src-larger-than-index", lambda a, i, s: I.scatter_add(a, 1, i, s),
           lambda r: [r.standard_normal((3, 4)), IDX([[1, 1], [3, 0]]),
                      r.standard_normal((3, 3))], covers=("ScatterAdd",)),
]
