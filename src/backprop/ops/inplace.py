"""In-place changes inside the graph: ``y[0] = 5``, ``y.add_(w)``, ``v.mul_(2)`` for a view.

PyTorch's rule, which this module follows: the change writes into the tensor's own
storage (so every alias sees it), and the tensor takes a new ``grad_fn``, the op that
made its new value. Ops recorded before the change keep the history they read (the
engine follows the new node's ``_prev`` back to it), so their gradients stay right;
an op that saved an array the change overwrote makes backward raise ``InplaceError``
(the in-place log in ``backprop.tensor``).

A view is written through its base, as PyTorch's ``CopySlices``: the base (the tensor
whose memory the view shows; ``backprop.ops._util`` keeps track of every view's base)
gets a ``CopySlices`` node that replaces the written elements, and the view becomes an
``AsStrided`` view of the new base. Every other live view of that base that the write
reached is given the same new history, so it never reads values its history misses.

Example::

    x = backprop.tensor([1., 2., 3.], requires_grad=True)
    y = x * 2
    z = y * 3          # uses y as it was
    y[0] = 5           # y.grad_fn is now IndexPutBackward0
    (z.sum() + y.sum()).backward()
    x.grad             # tensor([6., 8., 8.]): z saw all of y, y's first element is 5
"""
from __future__ import annotations

import numpy as np

from backprop import tensor as _tensor_module
from backprop.autograd.engine import stale_error, written_between
from backprop.autograd.function import Function
from backprop.errors import InplaceError, ShapeError
from backprop.ops._util import base_views, view_base
from backprop.ops.indexing import IndexPut, _indexed_view, written_part
from backprop.tensor import Tensor, _log_inplace, _make, clock, last_write, shares


class Overwrite(Function):
    """out = v broadcast to x's shape;  dx = 0,  dv = g (summed to v's shape)

    What ``zero_``, ``fill_`` and ``copy_`` record: the old value has no say in the new.
    """

    @staticmethod
    def forward(ctx, x, v):
        try:
            return np.array(np.broadcast_to(v, x.shape), dtype=x.dtype)
        except ValueError:
            raise ShapeError(f"copy_: a value of shape {np.shape(v)} can't be written into a "
                             f"tensor of shape {x.shape}") from None

    @staticmethod
    def backward(ctx, grad_output):
        need_x, need_v = ctx.needs_input_grad
        return (np.zeros_like(grad_output) if need_x else None,
                grad_output if need_v else None)


def overwrite(before: Tensor, value) -> Tensor:
    if not isinstance(value, Tensor):
        value = np.asarray(value._data if isinstance(value, Tensor) else value)
    return Overwrite.apply(before, value)


class CopySlices(Function):
    """out = base with out.flat[pos] = v, written into base's own memory;
    dbase = g with g.flat[pos] = 0,  dv = g.flat[pos]

    ``pos`` holds, for each written element, its index in the C-order flattening of
    the base. The output *is* the base's array: the write happens in place.
    """

    backward_name = 'CopySlices'

    @staticmethod
    def forward(ctx, base, v, pos):
        try:
            values = np.broadcast_to(v, pos.shape)
        except ValueError:
            raise ShapeError(f"__setitem__: shape mismatch: value of shape {np.shape(v)} cannot "
                             f"be broadcast to the indexed shape {pos.shape}") from None
        _flat(base)[pos] = values
        ctx.save_for_backward(pos)
        return base

    @staticmethod
    def backward(ctx, grad_output):
        (pos,) = ctx.saved_tensors
        need_base, need_v = ctx.needs_input_grad[:2]
        gv = _flat(grad_output)[pos] if need_v else None
        gbase = None
        if need_base:
            gbase = np.array(grad_output)
            _flat(gbase)[pos] = 0
        return gbase, gv, None


class _Flat:
    """``_flat(a)[pos]``: read or write the elements of ``a`` at C-order positions ``pos``."""

    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a

    def __getitem__(self, pos):
        a = self.a
        if a.ndim:
            return a[np.unravel_index(pos, a.shape)]
        return np.broadcast_to(a, pos.shape).copy()  # (a 0-d base: every position is 0)

    def __setitem__(self, pos, values):
        a = self.a
        if a.ndim:
            a[np.unravel_index(pos, a.shape)] = values
        elif pos.size:
            a[...] = np.asarray(values).reshape(-1)[-1]


_flat = _Flat


class AsStrided(Function):
    """out = the view of base whose elements sit at base.flat[pos];  dbase = g scattered to pos

    A view's history after a write through it: ``view`` is the view's own array (it
    already shows the base's memory), ``pos`` where each of its elements sits in the base.
    """

    @staticmethod
    def forward(ctx, base, pos, view):
        ctx.save_for_backward(pos)
        ctx.shape = base.shape
        return view

    @staticmethod
    def backward(ctx, grad_output):
        (pos,) = ctx.saved_tensors
        size = int(np.prod(ctx.shape))
        flat = np.bincount(pos.ravel(), weights=grad_output.ravel(), minlength=size)
        return flat.astype(grad_output.dtype, copy=False).reshape(ctx.shape), None, None


def _positions(view: np.ndarray, base: np.ndarray, op: str) -> np.ndarray:
    """For each element of ``view`` (an array over ``base``'s memory), its index in the
    C-order flattening of ``base``."""
    size = base.itemsize
    offset = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    if view.itemsize != size or offset % size or any(s % size for s in view.strides):
        raise InplaceError(f"{op}: this view reads the memory of its base with another "
                           f"dtype or alignment, so a write through it can't be recorded; "
                           f"clone() it first")
    # An index array laid out as the base is: element k of its memory holds the C-order
    # index of the base element stored there; reading it with the view's layout gives
    # the view's positions.
    index = np.empty_like(base, dtype=np.int64)
    if tuple(s // size for s in base.strides) != tuple(s // 8 for s in index.strides):
        raise InplaceError(f"{op}: the memory of this view's base has a layout a recorded "
                           f"write can't follow; clone() the base first")
    index[...] = np.arange(base.size, dtype=np.int64).reshape(base.shape)
    memory = index.ravel(order="K")  # (a view: index is contiguous in memory order)
    return np.lib.stride_tricks.as_strided(
        memory[offset // size:], view.shape, tuple(s // size * 8 for s in view.strides),
        writeable=False).copy()


def _base_of(t: Tensor, op: str):
    """The tensor whose memory ``t`` shows, and t's positions in it (None when t is it)."""
    if t.grad_fn is not None and t._data.base is not None and written_between(
            t._data, t.grad_fn.seq, last_write[0] + 1):
        raise stale_error(f"{op}: this view", t)  # (a safety net: views are replayed)
    base = view_base.get(t)
    if base is None or not np.may_share_memory(t._data, base._data):
        fn = t.grad_fn
        if t._data.base is not None and fn is not None and fn.inputs and any(
                x is not None and np.may_share_memory(x._data, t._data) for x in fn.inputs):
            # an op whose output shows its input's memory without being a tracked view:
            # a write here would reach that input behind its history's back
            raise InplaceError(f"{op}: this tensor shares memory with an input of "
                               f"{fn.name()}, which is not a view op backprop tracks; "
                               f"clone() it before changing it in place")
        return t, None  # its own memory (or memory no other tensor shows as a base)
    if base._requires_grad and base.grad_fn is None:
        raise InplaceError(f"{op}: a view of a leaf tensor that requires grad is being used in "
                           f"an in-place operation; clone() the view first, or change the "
                           f"leaf under backprop.no_grad()")
    return base, _positions(t._data, base._data, op)


def _replay(base: Tensor, written: np.ndarray, skip: Tensor) -> None:
    """Give the live views of ``base`` that the write reached their new history.

    As PyTorch does: such a view now shows values the write made, so it becomes a view
    of the written base (``AsStrided``); ops recorded before keep the old history through
    ``_prev``. A view that the write did not reach keeps its history, which is still
    right; only its ``requires_grad`` follows the base's, as PyTorch's does.
    """
    views = base_views.get(base)
    for view in (views.keys() if views is not None else ()):
        if view is skip or not np.may_share_memory(view._data, base._data):
            continue
        if view._requires_grad and not shares(view._data, written):
            continue
        pos = _positions(view._data, base._data, "view")
        _rebase(view, AsStrided.apply(base, pos, view._data).grad_fn)


def _check_target(t: Tensor, op: str) -> None:
    if t._requires_grad and t.grad_fn is None:
        raise InplaceError(f"{op}: a leaf tensor that requires grad is being used in an "
                           f"in-place operation; wrap the update in backprop.no_grad()")
    if not t._data.flags.writeable:
        raise InplaceError(f"{op}: this tensor is a read-only broadcast view (made by expand() "
                           f"or broadcast_to()) whose elements share memory; clone() it first")


def _rebase(t: Tensor, node, stamp=None) -> None:
    """t's history becomes ``node``; ops recorded before find the old one in ``_prev``."""
    if stamp is not None:
        node.seq = next(clock)  # after the write, so the write is older than the node
        node._written = stamp   # (and the node read its inputs before it)
        t._version = stamp
    node._prev = t.grad_fn
    t.grad_fn = node
    t._requires_grad = True


def record(t: Tensor, op: str, compute) -> Tensor:
    """``t`` becomes ``compute(before)`` in place, recorded: ``before`` is t as it was."""
    _check_target(t, op)
    base, pos = _base_of(t, op)
    old = t._data
    # (compute works on a copy: its ops may save their input, which the write overwrites)
    before = _make(old.copy(), t._requires_grad, t.grad_fn)
    start = next(clock)
    new = compute(before)
    if not isinstance(new, Tensor):
        new = _make(np.asarray(new))
    if new._data.shape != old.shape:
        raise ShapeError(f"{op}: the result has shape {new._data.shape} but the tensor changed "
                         f"in place has shape {old.shape}")
    if new._data.dtype != old.dtype:
        new = new.to(old.dtype)
    if new.grad_fn is not None and new.grad_fn.seq <= start:
        new = new.clone()  # (compute gave back a tensor it did not make: t needs a node of its own)
    _keep_saved(new.grad_fn, start, old)
    if base is not t:
        _write_view(t, base, pos, new, pos, old)
        return t
    np.copyto(old, new._data)
    stamp = _log_inplace(old, recorded=True)
    if new.grad_fn is None:  # nothing that requires grad reached the new value
        t._version = stamp
        t.grad_fn, t._requires_grad = None, False
        return t
    _rebase(t, new.grad_fn, stamp)
    _replay(t, old, t)
    return t


def _keep_saved(node, start: int, memory: np.ndarray) -> None:
    """Copy the arrays that nodes recorded after ``start`` saved from ``memory``, which is
    about to be overwritten (``y.mul_(y)`` saves y itself for the gradient of the other)."""
    stack = [node]
    while stack:
        fn = stack.pop()
        if fn is None or fn.seq <= start:
            continue
        if any(isinstance(s, np.ndarray) and np.may_share_memory(s, memory)
               for s in fn.saved_tensors):
            fn.saved_tensors = tuple(
                s.copy() if isinstance(s, np.ndarray) and np.may_share_memory(s, memory) else s
                for s in fn.saved_tensors)
        stack.extend(x.grad_fn for x in fn.inputs if x is not None)


def record_setitem(t: Tensor, entries, kind, value: Tensor) -> None:
    """``t[index] = value`` in place, recorded (``entries``, ``kind``: the parsed index)."""
    op = "__setitem__"
    _check_target(t, op)
    if value._data.dtype != t._data.dtype:
        value = value.to(t._data.dtype)
    base, pos = _base_of(t, op)
    target, index = _indexed_view(t._data, entries, kind)
    written = written_part(target, index, kind)
    if base is not t:
        sub_target, sub_index = _indexed_view(pos, entries, kind)
        _write_view(t, base, pos, value, np.array(sub_target[sub_index]), written)
        return
    before = _make(t._data, t._requires_grad, t.grad_fn)  # the same memory: IndexPut writes it
    result = IndexPut.apply(before, value, entries=entries, kind=kind)
    stamp = _log_inplace(written, recorded=True)
    _rebase(t, result.grad_fn, stamp)
    _replay(t, written, t)


def _write_view(t: Tensor, base: Tensor, pos: np.ndarray, value, where: np.ndarray,
                written: np.ndarray) -> None:
    """Write ``value`` at base positions ``where`` through view ``t`` (positions ``pos``)."""
    before = _make(base._data, base._requires_grad, base.grad_fn)
    result = CopySlices.apply(before, value, where)
    stamp = _log_inplace(written, recorded=True)
    _rebase(base, result.grad_fn, stamp)
    view = AsStrided.apply(base, pos, t._data)  # (recorded after the write: a later seq)
    _rebase(t, view.grad_fn)
    _replay(base, written, t)


_tensor_module._GRAPH_INPLACE.update(record=record, overwrite=overwrite)


def _method_(name: str):
    """``x.<name>_(...)``: x becomes ``x.<name>(...)``, in its own memory (recorded in the
    graph when x requires grad, as ``add_`` is)."""
    def method(self, *args, **kwargs):
        op = getattr(Tensor, name)
        if self._records():
            return self._record(name + "_", lambda t: op(t, *args, **kwargs))
        value = op(self, *args, **kwargs)._data
        self._check_inplace(name + "_")
        return self._assign(value, name + "_")
    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``: this tensor becomes ``self.{name}(...)``."
    return method


# PyTorch's in-place forms of element-wise ops (``relu_``, ``exp_``, ...).
TENSOR_METHODS = {name + "_": _method_(name) for name in (
    "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "neg", "pow",
    "clamp_min", "clamp_max", "sin", "cos", "square", "log1p", "expm1", "sign")}
