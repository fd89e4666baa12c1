"""Indexing: ``x[...]`` reads and writes, ``gather``, ``index_select``, ``masked_fill``, ...

Reading ``x[index]`` follows PyTorch, which is NumPy's rule with one difference:
integers (and 0-d integer tensors) are applied first, as plain selections, so
they never take part in advanced indexing. ``x[0, :, [0, 1]]`` is ``x[0][:, [0, 1]]``
(shape ``(4, 2)`` for ``x`` of shape ``(3, 4, 5)``), where NumPy would give ``(2, 4)``.
Slices may have negative steps (PyTorch refuses them; NumPy allows them).

Backward of advanced indexing is a scatter-add: an element read twice gets
both gradients. The scatter kernels here (``index_add_along``, ``_scatter_flat``)
use ``np.bincount`` or a sort and ``np.add.reduceat``, and picking one element per
row (``x[rows, targets]``) uses ``np.add.at``; never a Python loop.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from backprop.autograd.function import Function
from backprop.autograd.grad_mode import state as _grad_state
from backprop.errors import DTypeError, IndexOutOfRange, InplaceError, ShapeError
from backprop.ops._util import TracksView, norm_dim, same_source_dtype
from backprop.tensor import Tensor, _log_inplace, _make

_INT64 = np.dtype(np.int64)
_SCALAR_BOOL = (bool, np.bool_)


# -- scatter-add kernels ------------------------------------------------------------------

def index_add_along(src: np.ndarray, axis: int, idx: np.ndarray, size: int) -> np.ndarray:
    """Sum the slices of ``src`` along ``axis`` into positions ``idx`` of a new axis of ``size``.

    ``out[..., i, ...] = Σ_{j: idx[j] = i} src[..., j, ...]``, with ``idx`` 1-D,
    non-negative, one entry per slice; repeated indices accumulate. The result
    is a new array that owns its memory.
    """
    shape = src.shape
    n = shape[axis]
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1:])
    out_shape = shape[:axis] + (size,) + shape[axis + 1:]
    if n == 0 or src.size == 0:
        return np.zeros(out_shape, dtype=src.dtype)
    if inner >= 16:
        # Long rows: sort the indices once. No repeats: a plain scatter. Long runs of
        # repeats: sum each run with reduceat. Otherwise fall through to bincount.
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(s[1:], s[:-1], out=first[1:])
        runs = int(np.count_nonzero(first))
        lead = (slice(None),) * axis
        if runs == n or n >= 4 * runs or size > 4 * n:
            out = np.zeros(out_shape, dtype=src.dtype)
            if runs == n:
                out[lead + (idx,)] = src
            else:
                starts = np.flatnonzero(first)
                out[lead + (s[starts],)] = np.add.reduceat(np.take(src, order, axis=axis),
                                                           starts, axis=axis)
            return out
    # One bincount over the flat output positions.
    if outer == 1 and inner == 1:
        lin = idx
    else:
        lin = ((np.arange(outer)[:, None, None] * size + idx[None, :, None]) * inner
               + np.arange(inner)[None, None, :])
    return _scatter_flat(lin, src, out_shape)


# Up to this many output positions one bincount over all of them is cheaper than
# sorting the indices (np.unique), whatever the number of values.
_BINCOUNT_MAX = 1 << 16


def _scatter_flat(lin: np.ndarray, values: np.ndarray, shape: tuple) -> np.ndarray:
    """A new array of ``shape`` with ``values`` summed into the flat positions ``lin``."""
    total = math.prod(shape)
    lin, values = lin.reshape(-1), values.reshape(-1)
    if total > _BINCOUNT_MAX and lin.size * 8 < total:
        # Few values into a big array: sum over the distinct positions only.
        out = np.zeros(shape, dtype=values.dtype)
        places, which = np.unique(lin, return_inverse=True)
        if places.size == lin.size:
            out.reshape(-1)[lin] = values
        else:
            out.reshape(-1)[places] = np.bincount(which.reshape(-1), weights=values,
                                                  minlength=places.size)
        return out
    flat = np.bincount(lin, weights=values, minlength=total)
    out = np.empty(shape, dtype=values.dtype)  # owns its memory, so the engine needn't copy it
    out.reshape(-1)[...] = flat
    return out


# -- parsing an index ---------------------------------------------------------------------

class _FalseIndex:
    """Marks a scalar ``False`` index: a new axis of size 0."""


_FALSE = _FalseIndex()


def _index_array(arr: np.ndarray, op: str, what: str) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "b":
        return arr
    if arr.dtype == np.uint8:  # PyTorch reads uint8 index tensors as masks (deprecated there)
        return arr.astype(bool)
    if kind in "iu":
        return arr
    raise DTypeError(f"{op}: tensors used as indices must be integer or bool tensors, got "
                     f"{what} of dtype {arr.dtype}")


def _convert(item, op: str):
    """One element of an index: int, slice, None, Ellipsis, a scalar bool, or an array."""
    if item is None or item is Ellipsis:
        return item
    if isinstance(item, _SCALAR_BOOL):
        return bool(item)
    if isinstance(item, (int, np.integer)):
        return int(item)
    if isinstance(item, slice):
        parts = []
        for p in (item.start, item.stop, item.step):
            if p is None or isinstance(p, (int, np.integer)) and not isinstance(p, bool):
                parts.append(None if p is None else int(p))
            elif isinstance(p, Tensor) and p._data.dtype.kind in "iu" and p._data.size == 1:
                parts.append(int(p.item()))
            else:
                raise DTypeError(f"{op}: slice indices must be integers or None, got "
                                 f"{type(p).__name__}")
        if parts[2] == 0:
            raise ShapeError(f"{op}: slice step cannot be zero")
        return slice(*parts)
    if isinstance(item, Tensor):
        arr = _index_array(item._data, op, "a tensor")
    elif isinstance(item, np.ndarray):
        arr = _index_array(item, op, "an array")
    elif isinstance(item, range):  # x[range(3)] is x[[0, 1, 2]], as in PyTorch
        arr = np.arange(item.start, item.stop, item.step, dtype=_INT64)
    elif isinstance(item, (list, tuple)):
        if len(item) == 0:
            return np.zeros(0, dtype=_INT64)
        try:
            arr = np.asarray(item)
        except ValueError:
            raise ShapeError(f"{op}: a list used as an index must not be ragged, got "
                             f"{item!r}") from None
        if arr.dtype.kind not in "biu":
            raise DTypeError(f"{op}: lists used as indices must hold integers or bools, got "
                             f"dtype {arr.dtype}")
    else:
        name = "float" if isinstance(item, numbers.Real) else type(item).__name__
        raise DTypeError(f"{op}: only integers, slices, None, Ellipsis and integer or bool "
                         f"tensors are valid indices (got {name})")
    if arr.ndim == 0:
        return bool(arr) if arr.dtype.kind == "b" else int(arr)
    return arr


_BASIC, _EMPTY, _ADVANCED, _PICK = "basic", "empty", "advanced", "pick"


def _simple_slice(it) -> bool:
    return ((it.start is None or type(it.start) is int) and
            (it.stop is None or type(it.stop) is int) and
            (it.step is None or type(it.step) is int and it.step != 0))


def _parse(index, shape: tuple, op: str):
    """Check ``index`` against ``shape``; return its entries (a tuple) and their kind.

    Entries: int (in range, non-negative), slice, None, ``_FALSE``, bool array
    (shape checked) or int array (in range, non-negative). Ellipsis is expanded
    into full slices and missing trailing dims are left implicit. The kind is
    ``_BASIC`` (ints, slices, None: a view), ``_EMPTY`` (basic with a scalar False),
    ``_ADVANCED`` (some array) or ``_PICK`` (one integer array per dimension, nothing
    else: ``x[rows, targets]``; written and read as NumPy does, so where code only needs
    "index ``data`` with ``entries``" it is handled like a basic index).
    """
    items = index if type(index) is tuple else (index,)
    if len(items) == len(shape):
        # Fast path: one integer tensor per dimension (x[rows, targets]); uint8 tensors
        # are masks (as in PyTorch) and take the general path. Bounds are
        # checked by NumPy in forward (GetItem turns its IndexError into ours), and
        # negative indices are wrapped there too.
        arrays = []
        for it in items:
            if not isinstance(it, Tensor) or it._data.dtype.kind != "i":
                break
            arrays.append(it._data)
        else:
            return tuple(arrays), _PICK
    if len(items) <= len(shape):  # fast path: only plain ints and slices
        fast = []
        for d, it in enumerate(items):
            tp = type(it)
            if tp is int:
                n = shape[d]
                if not -n <= it < n:
                    break
                fast.append(it if it >= 0 else it + n)
            elif tp is slice and _simple_slice(it):
                fast.append(it)
            else:
                break
        else:
            return tuple(fast), _BASIC
    entries = _parse_general(items, shape, op)
    if any(isinstance(e, np.ndarray) for e in entries):
        if any(e is _FALSE for e in entries):
            raise IndexOutOfRange(f"{op}: a scalar False index can't be combined with tensor "
                                  f"indices")
        return tuple(entries), _ADVANCED
    if any(e is _FALSE for e in entries):
        return tuple(entries), _EMPTY
    return tuple(entries), _BASIC


def _parse_general(items, shape: tuple, op: str) -> list:
    items = [_convert(it, op) for it in items]
    ndim = len(shape)
    consumed = 0
    ellipses = 0
    for it in items:
        if it is Ellipsis:
            ellipses += 1
        elif isinstance(it, (int, slice)) and not isinstance(it, bool):
            consumed += 1
        elif isinstance(it, np.ndarray):
            consumed += it.ndim if it.dtype.kind == "b" else 1
    if ellipses > 1:
        raise IndexOutOfRange(f"{op}: an index can only have a single ellipsis ('...')")
    if consumed > ndim:
        if ndim == 0:
            raise IndexOutOfRange(f"{op}: invalid index of a 0-dim tensor; use tensor.item() to "
                                  f"get its value as a Python number")
        raise IndexOutOfRange(f"{op}: too many indices for tensor of dimension {ndim} "
                              f"(shape {shape})")
    entries: list = []
    d = 0
    for it in items:
        if it is Ellipsis:
            entries.extend([slice(None)] * (ndim - consumed))
            d += ndim - consumed
        elif it is None:
            entries.append(None)
        elif isinstance(it, bool):
            entries.append(None if it else _FALSE)
        elif isinstance(it, int):
            size = shape[d]
            if not -size <= it < size:
                raise IndexOutOfRange(f"{op}: index {it} is out of bounds for dimension {d} "
                                      f"with size {size}")
            entries.append(it % size)
            d += 1
        elif isinstance(it, slice):
            entries.append(it)
            d += 1
        elif it.dtype.kind == "b":
            want = shape[d:d + it.ndim]
            if it.shape != want:
                raise IndexOutOfRange(
                    f"{op}: the shape of the mask {tuple(it.shape)} does not match the shape "
                    f"{want} of the dimensions it indexes (from dimension {d} of a tensor of "
                    f"shape {shape})")
            entries.append(it)
            d += it.ndim
        else:
            entries.append(_check_bounds(it, shape[d], d, op, allow_negative=True))
            d += 1
    return entries


def _check_bounds(idx: np.ndarray, size: int, dim: int, op: str,
                  allow_negative: bool = False) -> np.ndarray:
    """Raise IndexOutOfRange naming the first bad index; return ``idx`` wrapped to >= 0."""
    if idx.size == 0:
        return idx.astype(_INT64, copy=False)
    lo, hi = idx.min(), idx.max()
    low = -size if allow_negative else 0
    if lo < low or hi >= size:
        bad = idx[(idx < low) | (idx >= size)].flat[0]
        raise IndexOutOfRange(f"{op}: index {int(bad)} is out of bounds for dimension {dim} "
                              f"with size {size}")
    idx = idx.astype(_INT64, copy=False)
    return idx % size if lo < 0 else idx


def _split(entries: list):
    """Separate the integer selections (applied first) from the rest of an advanced index."""
    first = tuple(e if isinstance(e, int) else slice(None)
                  for e in entries if e is not None and e is not _FALSE)
    rest = tuple(e for e in entries if not isinstance(e, int))
    return first, rest


def _false_axes(entries) -> list:
    """Output axes of the ``False`` entries in a basic index (each a new axis of size 0)."""
    axes, pos = [], 0
    for e in entries:
        if e is _FALSE:
            axes.append(pos)
        if e is None or e is _FALSE or isinstance(e, slice):
            pos += 1
    return axes


# -- the primitive ---------------------------------------------------------------------------

class GetItem(TracksView, Function):
    """out = x[index];  dx = zeros with g scattered back to the indexed places (repeats add up)"""

    backward_name = staticmethod(lambda ctx: _getitem_name(ctx))

    @staticmethod
    def forward(ctx, x, entries, kind):
        ctx.in_shape, ctx.kind = x.shape, kind
        if kind == _BASIC:
            ctx.save_for_backward(entries)
            out = x[entries]
            # (one element: a 0-d view of x, as PyTorch's x[0] is, not a copied scalar)
            return out if type(out) is np.ndarray else x[entries + (Ellipsis,)]
        if kind == _EMPTY:
            out = x[tuple(None if e is _FALSE else e for e in entries)]
            falses = _false_axes(entries)
            return out[tuple(slice(0, 0) if a in falses else slice(None)
                             for a in range(out.ndim))]
        if kind == _PICK:
            v, rest = x, entries
        else:
            first, rest = _split(entries)
            v = x[first] if any(isinstance(e, int) for e in entries) else x
        ctx.save_for_backward(entries if kind == _PICK else (first, rest))
        try:
            return v[rest]
        except IndexError:
            raise _index_error(x.shape, entries, "__getitem__", kind == _PICK) from None

    @staticmethod
    def backward(ctx, grad_output):
        return _getitem_backward(ctx, grad_output), None, None


def _index_error(shape: tuple, entries, op: str, pick: bool) -> IndexOutOfRange:
    """Our error for the IndexError NumPy raised indexing an array of ``shape`` with
    ``entries``: an index out of range (``_PICK`` entries, one array per dimension, are
    bounds-checked only here; other kinds were checked by ``_parse``), or index arrays
    whose shapes can't be broadcast together."""
    if pick:
        for d, e in enumerate(entries):  # name the first index that is out of range
            _check_bounds(e, shape[d], d, op, allow_negative=True)
    shapes = ", ".join(str(e.shape) for e in entries if isinstance(e, np.ndarray))
    return IndexOutOfRange(f"{op}: shape mismatch: index tensors of shapes {shapes} "
                           f"can't be broadcast together")


def _getitem_backward(ctx, g):
    """The gradient of x in ``GetItem``: zeros with ``g`` scattered back to the indexed places."""
    gx = np.zeros(ctx.in_shape, dtype=g.dtype)
    if ctx.kind == _EMPTY:
        return gx
    (saved,) = ctx.saved_tensors
    if ctx.kind == _BASIC:
        gx[saved] = g
        return gx
    if ctx.kind == _PICK:
        np.add.at(gx, saved, g)
        return gx
    first, rest = saved
    if len(rest) == gx.ndim and all(isinstance(e, np.ndarray) and e.dtype.kind in "iu"
                                    for e in rest):
        # x[i, j, ...] with one integer array per dimension, as _PICK (e.g. x[[0, 1], [2, 3]]):
        # one unbuffered add at those places (repeats add up; negative indices wrap as
        # in forward, which has checked the bounds), nothing else.
        np.add.at(gx, rest, g)
        return gx
    has_int = any(isinstance(e, int) for e in first)
    arrays = [e for e in rest if isinstance(e, np.ndarray)]
    if len(arrays) == 1 and arrays[0].dtype.kind == "b":
        # NOTE: a single mask never selects an element twice, so a plain write suffices.
        (gx[first] if has_int else gx)[rest] = g
        return gx
    return _advanced_backward(g, gx, first, rest, has_int)


def _advanced_backward(g, gx, first, rest, has_int):
    """Scatter-add ``g`` (laid out as ``v[rest]``) into ``v = gx[first]`` (zeros)."""
    in_shape = gx.shape
    # Masks become their nonzero() coordinate arrays, one per dimension they cover.
    entries = []
    for e in rest:
        if isinstance(e, np.ndarray) and e.dtype.kind == "b":
            entries.extend(np.nonzero(e))
        else:
            entries.append(e)
    adv_pos = [i for i, e in enumerate(entries) if isinstance(e, np.ndarray)]
    adjacent = adv_pos[-1] - adv_pos[0] == len(adv_pos) - 1
    arrays = np.broadcast_arrays(*[entries[i] for i in adv_pos])
    bshape = arrays[0].shape
    nb = len(bshape)

    # Where NumPy put the broadcast index dims in the output: at the first advanced
    # index when they are all adjacent, else in front. Drop the None axes of g and
    # move the broadcast block to the front: g2 has shape (*bshape, *slice dims).
    block = sum(1 for e in entries[:adv_pos[0]] if not isinstance(e, np.ndarray)) \
        if adjacent else 0
    others = [e for e in entries if not isinstance(e, np.ndarray)]  # slices and Nones, in order
    take = []
    for k, e in enumerate(others):
        if k == block:
            take.extend([slice(None)] * nb)
        take.append(0 if e is None else slice(None))
    if len(others) <= block:
        take.extend([slice(None)] * nb)
    g2 = g[tuple(take)]
    start = sum(1 for e in others[:block] if e is not None)
    g2 = np.moveaxis(g2, list(range(start, start + nb)), list(range(nb)))

    # The target: the basic part of the index applied to zeros, advanced dims moved to
    # front. The common x[idx] / x[idx, :] needs none of that: the sums are the gradient.
    consumed = [e for e in entries if e is not None]
    adv_axes = [i for i, e in enumerate(consumed) if isinstance(e, np.ndarray)]
    k = len(adv_axes)
    whole = not has_int and adv_axes == [0] and all(e == slice(None) for e in consumed[1:])
    if whole:
        adv_sizes = in_shape[:1]
    else:
        gv = gx[first] if has_int else gx
        tv = gv[tuple(slice(None) if isinstance(e, np.ndarray) else e for e in consumed)]
        tvm = np.moveaxis(tv, adv_axes, list(range(k)))
        adv_sizes = tvm.shape[:k]
    lin = arrays[0] if k == 1 else np.ravel_multi_index(arrays, adv_sizes)
    n = math.prod(bshape)
    total = math.prod(adv_sizes)
    acc = index_add_along(g2.reshape((n,) + g2.shape[nb:]), 0, lin.reshape(-1), total)
    if whole:
        return acc  # already shaped like x and owning its memory: no copy
    tvm[...] = acc.reshape(adv_sizes + acc.shape[1:])
    return gx


def getitem(input, index):
    """``input[index]``: ints, slices (negative steps too), None, ``...``, integer and bool tensors.

    Example::

        x = backprop.arange(12.).reshape(3, 4)
        x[1], x[:, ::-1], x[[0, 2, 2]], x[x > 5]
    """
    entries, kind = _parse(index, input._data.shape, "__getitem__")
    return GetItem.apply(input, entries, kind)  # (positional: the fast path of apply)


def setitem(self, index, value) -> None:
    """``self[index] = value``: ``value`` is a number, an array or a tensor, broadcast to
    the indexed shape. Outside the graph it writes in place; when ``self`` or ``value``
    requires grad it is recorded (``IndexPut``) so gradients flow to both.
    """
    entries, kind = _parse(index, self._data.shape, "__setitem__")
    if kind == _EMPTY:
        return  # a scalar False selects nothing
    if _grad_state.enabled and (self._requires_grad or (
            isinstance(value, Tensor) and value._requires_grad)):
        from backprop.ops.inplace import record_setitem

        if not isinstance(value, Tensor):
            value = _make(np.asarray(value, dtype=self._data.dtype))
        record_setitem(self, entries, kind, value)
        return
    val: Any  # an array or a scalar (any numbers.Number): what NumPy's __setitem__ takes
    if isinstance(value, Tensor):
        val = value._data
    elif isinstance(value, (numbers.Number, np.ndarray, np.generic)):
        val = value
    elif isinstance(value, (list, tuple)):
        val = np.asarray(value)
    else:
        raise TypeError(f"__setitem__: can't assign a {type(value).__name__} to a tensor")
    self._check_writeable("__setitem__")
    data = self._data
    target, index_ = _indexed_view(data, entries, kind)
    try:
        target[index_] = val
    except IndexError:
        raise _index_error(data.shape, entries, "__setitem__", kind == _PICK) from None
    except ValueError:
        if not data.flags.writeable:
            raise InplaceError("__setitem__: this tensor is a broadcast view (from expand or "
                               "broadcast_to) whose elements share memory; clone() it before "
                               "writing to it") from None
        raise ShapeError(f"__setitem__: shape mismatch: value of shape {np.shape(val)} cannot "
                         f"be broadcast to the indexed shape {np.shape(target[index_])}") \
            from None
    except TypeError:
        raise DTypeError(f"__setitem__: can't write a value of type {type(value).__name__} into "
                         f"a tensor of dtype {self.dtype}") from None
    self._version = _log_inplace(written_part(target, index_, kind))


def written_part(target: np.ndarray, index_, kind) -> np.ndarray:
    """The memory ``target[index_] = v`` writes, for the in-place log: a view of exactly
    those elements for a basic index; all of ``target`` for an index with arrays."""
    if kind in (_ADVANCED, _PICK):
        return target
    return target[tuple(index_) + (Ellipsis,)]  # (Ellipsis: a 0-d view, not a scalar)


def _indexed_view(data: np.ndarray, entries, kind):
    """(array, index) such that ``array[index]`` is the part of ``data`` that ``entries`` select."""
    if kind == _ADVANCED:
        first, index_ = _split(entries)
        return (data[first] if any(isinstance(e, int) for e in entries) else data), index_
    return data, entries


class IndexPut(Function):
    """out = x with out[index] = v;  dx = g with g[index] = 0,  dv = g[index]

    What ``x[index] = v`` records when x or v is part of the graph. The write goes
    into x's own memory (``out`` is x's array), so every alias of x sees it, as in
    PyTorch; ``backprop.ops.inplace`` gives the tensor its new history.
    """

    @staticmethod
    def forward(ctx, x, v, entries=(), kind=_BASIC):
        # mirrors the write in __setitem__ (kept inline in this op's forward); record_setitem
        # has already checked that x is writable and cast v to x's dtype.
        target, index_ = _indexed_view(x, entries, kind)
        try:
            target[index_] = v
        except IndexError:
            raise _index_error(x.shape, entries, "__setitem__", kind == _PICK) from None
        except ValueError:
            raise ShapeError(f"__setitem__: shape mismatch: value of shape {np.shape(v)} cannot "
                             f"be broadcast to the indexed shape {np.shape(target[index_])}") \
                from None
        ctx.entries, ctx.kind = entries, kind
        return x

    @staticmethod
    def backward(ctx, grad_output):
        gx = gv = None
        if ctx.needs_input_grad[1]:
            target, index_ = _indexed_view(grad_output, ctx.entries, ctx.kind)
            gv = np.array(target[index_])  # the engine sums it to v's (broadcast) shape
        if ctx.needs_input_grad[0]:
            gx = grad_output.copy()
            target, index_ = _indexed_view(gx, ctx.entries, ctx.kind)
            target[index_] = 0
        return gx, gv


def _iter(self):
    if self._data.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    for i in range(self._data.shape[0]):
        yield GetItem.apply(self, (i,), _BASIC)


# -- gather and friends -----------------------------------------------------------------------

def _index_tensor(index, op: str, name: str = "index") -> np.ndarray:
    if isinstance(index, Tensor):
        arr = index._data
    elif isinstance(index, np.ndarray):
        arr = index
    else:
        raise TypeError(f"{op}: {name} must be an integer tensor, got {type(index).__name__}")
    if arr.dtype.kind not in "iu" or arr.dtype == np.uint8:
        raise DTypeError(f"{op}: expected dtype int64 (or int32) for {name}, got "
                         f"{arr.dtype}")
    return arr


class Gather(Function):
    """out[i][j] = x[index[i][j]][j] (dim 0);  dx = zeros with g scatter-added at index"""

    @staticmethod
    def forward(ctx, x, index, dim=0):
        # NOTE: index may be smaller than x in the other dims; only that corner of x is
        # read, so only that corner gets a gradient. A 0-d x or index acts as 1-D.
        ctx.in_shape, ctx.dim = x.shape, dim
        x1 = x.reshape(1) if x.ndim == 0 else x
        idx = index.reshape(1) if index.ndim == 0 else index
        corner = tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(idx.shape))
        ctx.save_for_backward(idx)
        ctx.corner, ctx.x1_shape = corner, x1.shape
        return np.take_along_axis(x1[corner], idx, axis=dim).reshape(index.shape)

    @staticmethod
    def backward(ctx, grad_output):
        (idx,) = ctx.saved_tensors
        sizes = tuple(ctx.x1_shape[ctx.dim] if d == ctx.dim else s
                      for d, s in enumerate(idx.shape))
        part = _scatter_flat(_along_positions(idx, ctx.dim, sizes),
                             grad_output.reshape(idx.shape), sizes)
        if sizes == ctx.in_shape:
            return part, None
        gx = np.zeros(ctx.x1_shape, dtype=grad_output.dtype)
        gx[ctx.corner] = part
        return gx.reshape(ctx.in_shape), None


def _along_positions(idx: np.ndarray, dim: int, sizes: tuple) -> np.ndarray:
    """Flat positions in an array of ``sizes`` of the places ``idx`` names along ``dim``.

    Element ``p`` of ``idx`` names the place whose coordinates are ``p`` itself,
    except along ``dim``, where the coordinate is ``idx[p]``.
    """
    if idx.size == 0:
        return idx.astype(_INT64)
    coords = tuple(idx if d == dim else np.arange(s).reshape((s,) + (1,) * (idx.ndim - d - 1))
                   for d, s in enumerate(idx.shape))
    return np.ravel_multi_index(coords, sizes)


def _gather_checks(x: np.ndarray, idx: np.ndarray, dim: int, op: str) -> int:
    nd = max(x.ndim, 1)
    dim = norm_dim(dim, x.ndim, op)
    if max(idx.ndim, 1) != nd:
        raise ShapeError(f"{op}: index must have the same number of dimensions as input, got "
                         f"index of shape {idx.shape} and input of shape {x.shape}")
    xs = x.shape if x.ndim else (1,)
    ids = idx.shape if idx.ndim else (1,)
    for d in range(nd):
        if d != dim and ids[d] > xs[d]:
            raise ShapeError(f"{op}: index of shape {idx.shape} must be no larger than input of "
                             f"shape {x.shape} apart from dimension {dim} (dimension {d})")
    _check_bounds(idx, xs[dim], dim, op)
    return dim


def gather(input, dim, index, *, sparse_grad=False):
    """Pick values along ``dim`` at ``index``: ``out[i][j] = input[i][index[i][j]]`` for dim=1.

    ``index`` is an integer tensor with input's number of dimensions and sizes no
    larger than input's (except along ``dim``); the result has index's shape.

    Example::

        x = backprop.tensor([[1., 2.], [3., 4.]])
        backprop.gather(x, 1, backprop.tensor([[0, 0], [1, 0]]))   # [[1., 1.], [4., 3.]]
    """
    idx = _index_tensor(index, "gather")
    dim = _gather_checks(input._data, idx, dim, "gather")
    return Gather.apply(input, idx.astype(_INT64, copy=False), dim=dim)


def take_along_dim(input, indices, dim=None):
    """``gather`` with broadcasting (and negative indices); ``dim=None`` reads the flattened input.

    Example::

        x = backprop.tensor([[10., 30., 20.], [60., 40., 50.]])
        i = x.argmax(dim=1, keepdim=True)
        backprop.take_along_dim(x, i, dim=1)     # [[30.], [60.]]
    """
    idx = _index_tensor(indices, "take_along_dim", "indices")
    if dim is None:
        flat = input.reshape(-1)
        idx = _check_bounds(idx.reshape(-1), flat.shape[0], 0, "take_along_dim", True)
        return Gather.apply(flat, idx, dim=0)
    x = input._data
    dim = norm_dim(dim, x.ndim, "take_along_dim")
    if idx.ndim != x.ndim:
        raise ShapeError(f"take_along_dim: input and indices should have the same number of "
                         f"dimensions, got shapes {x.shape} and {idx.shape}")
    xs, ids = list(x.shape), list(idx.shape)
    xs[dim] = ids[dim] = 1
    try:
        b = np.broadcast_shapes(tuple(xs), tuple(ids))
    except ValueError:
        raise ShapeError(f"take_along_dim: input of shape {x.shape} and indices of shape "
                         f"{idx.shape} can't be broadcast (apart from dimension {dim})") from None
    idx = _check_bounds(idx, x.shape[dim], dim, "take_along_dim", True)
    xt = tuple(x.shape[dim] if d == dim else s for d, s in enumerate(b))
    it = tuple(idx.shape[dim] if d == dim else s for d, s in enumerate(b))
    from backprop.ops.shape import expand

    src = expand(input, *xt) if xt != x.shape else input
    return Gather.apply(src, np.broadcast_to(idx, it), dim=dim)


class IndexSelect(Function):
    """out = x.take(index, axis=dim);  dx = g summed into the rows it came from"""

    @staticmethod
    def forward(ctx, x, index, dim=0):
        ctx.in_shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return np.take(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        return index_add_along(grad_output, ctx.dim, index, ctx.in_shape[ctx.dim]), None


def index_select(input, dim, index):
    """The slices of ``input`` along ``dim`` at the positions in the 1-D ``index``.

    Example::

        x = backprop.arange(6.).reshape(2, 3)
        backprop.index_select(x, 1, backprop.tensor([2, 0]))    # [[2., 0.], [5., 3.]]
    """
    idx = _index_tensor(index, "index_select")
    if idx.ndim > 1:
        raise ShapeError(f"index_select: index is supposed to be a vector, got shape {idx.shape}")
    x = input._data
    dim = norm_dim(dim, x.ndim, "index_select")
    if x.ndim == 0:
        if idx.size != 1:
            raise ShapeError(f"index_select: index to a 0-d tensor can have only 1 value, got "
                             f"{idx.size}")
        _check_bounds(idx, 1, 0, "index_select")
        return input.reshape(())
    idx = _check_bounds(idx.reshape(-1), x.shape[dim], dim, "index_select")
    return IndexSelect.apply(input, idx, dim=dim)


class MaskedFill(Function):
    """out = where(mask, value, x);  dx = g where not mask,  dvalue = Σ g where mask"""

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        ctx.value_shape = np.shape(value)
        return np.where(mask, value, x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_output):
        (mask,) = ctx.saved_tensors
        gx = np.where(mask, 0, grad_output) if ctx.needs_input_grad[0] else None
        gv = None
        if ctx.needs_input_grad[2]:
            gv = np.sum(np.where(mask, grad_output, 0)).reshape(ctx.value_shape)
        return gx, None, gv


def _mask_and_value(input, mask, value, op: str):
    if not isinstance(mask, (Tensor, np.ndarray)):
        raise TypeError(f"{op}: mask must be a bool tensor, got {type(mask).__name__}")
    m = mask._data if isinstance(mask, Tensor) else mask
    if m.dtype != np.bool_:
        raise DTypeError(f"{op}: only supports boolean masks, but got mask with dtype {m.dtype}")
    if isinstance(value, Tensor):
        if value._data.ndim != 0:
            raise ShapeError(f"{op}: only supports a 0-dimensional value tensor, but got a tensor "
                             f"of shape {value._data.shape}")
    elif not isinstance(value, (numbers.Number, np.generic)):
        raise TypeError(f"{op}: value must be a number or a 0-d tensor, got "
                        f"{type(value).__name__}")
    return m


def masked_fill(input, mask, value):
    """``input`` with ``value`` wherever the bool ``mask`` (broadcast) is True.

    Example::

        scores.masked_fill(~allowed, float("-inf"))
    """
    m = _mask_and_value(input, mask, value, "masked_fill")
    try:
        np.broadcast_shapes(input._data.shape, m.shape)
    except ValueError:
        raise ShapeError(f"masked_fill: mask of shape {m.shape} can't be broadcast with the "
                         f"input's shape {input._data.shape}") from None
    return MaskedFill.apply(input, m, value)


def masked_fill_(self, mask, value):
    """In-place ``masked_fill`` for tensors outside the graph; the mask broadcasts to self."""
    m = _mask_and_value(self, mask, value, "masked_fill_")
    if self._records(value):
        return self._record("masked_fill_", lambda t: masked_fill(t, mask, value))
    try:
        m = np.broadcast_to(m, self._data.shape)
    except ValueError:
        raise ShapeError(f"masked_fill_: mask of shape {m.shape} can't be broadcast to the "
                         f"tensor's shape {self._data.shape}") from None
    self._check_inplace("masked_fill_")
    v = value._data if isinstance(value, Tensor) else value
    np.copyto(self._data, np.asarray(v).astype(self._data.dtype), where=m)
    return self


def masked_select(input, mask):
    """A 1-D tensor of the elements of ``input`` where ``mask`` is True (both broadcast)."""
    m = _mask_and_value(input, mask, 0, "masked_select")
    try:
        shape = np.broadcast_shapes(input._data.shape, m.shape)
    except ValueError:
        raise ShapeError(f"masked_select: mask of shape {m.shape} can't be broadcast with the "
                         f"input's shape {input._data.shape}") from None
    from backprop.ops.shape import expand

    x = expand(input, *shape) if shape != input._data.shape else input
    return GetItem.apply(x, (np.broadcast_to(m, shape),), _ADVANCED)


class ScatterAdd(Function):
    """out = x with src[i][j] added at out[index[i][j]][j] (dim 0);  dx = g, dsrc = gather(g)"""

    @staticmethod
    def forward(ctx, x, index, src, dim=0):
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        sizes = tuple(x.shape[dim] if d == dim else s for d, s in enumerate(index.shape))
        corner = tuple(slice(0, s) for s in index.shape)
        part = _scatter_flat(_along_positions(index, dim, sizes),
                             src[corner], sizes)
        out = x.copy()
        out[tuple(slice(None) if d == dim else slice(0, s)
                  for d, s in enumerate(index.shape))] += part
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        gsrc = None
        if ctx.needs_input_grad[2]:
            dim = ctx.dim
            corner = tuple(slice(None) if d == dim else slice(0, s)
                           for d, s in enumerate(index.shape))
            vals = np.take_along_axis(grad_output[corner], index, axis=dim)
            if vals.shape == ctx.src_shape:
                gsrc = vals
            else:
                gsrc = np.zeros(ctx.src_shape, dtype=grad_output.dtype)
                gsrc[tuple(slice(0, s) for s in index.shape)] = vals
        return grad_output, None, gsrc


def scatter_add(input, dim, index, src):
    """``input`` plus ``src`` summed into the places named by ``index`` along ``dim``.

    ``out[index[i][j]][j] += src[i][j]`` for dim=0 (repeated indices accumulate).
    ``index`` must be no larger than ``src`` in any dim and no larger than ``input``
    except along ``dim``.

    Example::

        counts = backprop.zeros(3).scatter_add(0, labels, backprop.ones(len(labels)))
    """
    idx = _index_tensor(index, "scatter_add")
    x = input._data
    s = src._data if isinstance(src, Tensor) else None
    if s is None:
        raise TypeError(f"scatter_add: src must be a tensor, got {type(src).__name__}")
    same_source_dtype(input, src, "scatter_add")
    dim = norm_dim(dim, x.ndim, "scatter_add")
    if x.ndim == 0:
        return scatter_add(input.reshape(1), 0, idx.reshape(-1), src.reshape(-1)).reshape(())
    if not idx.ndim == x.ndim == s.ndim:
        raise ShapeError(f"scatter_add: index, input and src must have the same number of "
                         f"dimensions, got shapes {idx.shape}, {x.shape} and {s.shape}")
    for d in range(x.ndim):
        if idx.shape[d] > s.shape[d] or (d != dim and idx.shape[d] > x.shape[d]):
            raise ShapeError(f"scatter_add: index of shape {idx.shape} must be no larger than "
                             f"src of shape {s.shape}, and no larger than input of shape "
                             f"{x.shape} apart from dimension {dim}")
    idx = _check_bounds(idx, x.shape[dim], dim, "scatter_add")
    return ScatterAdd.apply(input, idx, src, dim=dim)


__all__ = ["gather", "index_select", "masked_fill", "masked_select", "scatter_add",
           "take_along_dim"]

TENSOR_METHODS = {
    "__getitem__": getitem, "__setitem__": setitem, "__iter__": _iter,
    "gather": gather, "index_select": index_select, "masked_fill": masked_fill,
    "masked_fill_": masked_fill_, "masked_select": masked_select, "scatter_add": scatter_add,
    "take_along_dim": take_along_dim,
}


def _getitem_name(ctx) -> str:
    """PyTorch's name for ``x[index]``: the last step it takes (select, slice, unsqueeze, index)."""
    if ctx.kind in (_ADVANCED, _PICK):
        return "IndexBackward0"
    saved = getattr(ctx, "saved_tensors", None)
    if ctx.kind != _BASIC or not saved:
        return "SliceBackward0"  # freed by backward: the commonest case
    name = "AliasBackward0"
    for e in saved[0]:  # PyTorch indexes entry by entry; a full slice leaves no node
        if type(e) is int:
            name = "SelectBackward0"
        elif e is None:
            name = "UnsqueezeBackward0"
        elif type(e) is slice and e != slice(None):
            name = "SliceBackward0"
    return name
