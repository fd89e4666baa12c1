"""Stress tests for the engine's hot paths: ``Function.apply`` and the backward walk.

These run on both engines (the C accelerator ``_cengine.c`` and, with
``BACKPROP_PURE_PYTHON=1``, the pure-Python reference) and look for what a C
implementation gets wrong and ordinary tests miss: references leaked or dropped
(``sys.getrefcount``, ``tracemalloc``, weak references), leaf gradients sharing
memory with something else, errors raised half-way that leave the engine broken,
threads, tensor subclasses, plain values as arguments, and 0-d arrays (where NumPy
hands back scalars). Tests that can crash the interpreter run in a subprocess.
"""
from __future__ import annotations

import gc
import inspect
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import weakref
from collections import namedtuple

import numpy as np
import pytest

import backprop
from backprop import GradError, InplaceError, ShapeError
from backprop.autograd import Function, engine, function

PURE = engine.pure_python_requested()
ACCEL = engine._accel is not None and function._capply is not None


def t64(data, requires_grad=True):
    return backprop.tensor(data, dtype=backprop.float64, requires_grad=requires_grad)


def arr(t):
    """A tensor's array, whether or not it requires grad."""
    return t.detach().numpy()


class Boom(Exception):
    """Raised by the ops and hooks below on purpose."""


class Stop(BaseException):
    """Not an Exception: must propagate through the engine untouched too."""


def _raise(exc):
    raise exc


# -- custom ops taking every kind of path through apply and the walk ------------------------


class Mul(Function):
    """a * b, saving both inputs (so the in-place check has something to check)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.tag = "mul"  # an attribute in the node's __dict__
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a


class Square(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a * a

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return 2.0 * g * a


class Ident(Function):
    """Hands its incoming gradient on unchanged: the engine must copy it for a leaf."""

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return g


class Fork(Function):
    """a + b whose backward returns the same fresh array for both inputs."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        same = g * 1.0
        return same, same


class ReturnSaved(Function):
    """a * 1 whose gradient for a is the very array it saved (b's data)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(b)
        return a * 1.0

    @staticmethod
    def backward(ctx, g):
        (b,) = ctx.saved_tensors
        return b, None


class ReturnView(Function):
    """Identity whose gradient is a view of a fresh array (a view's base is alive elsewhere)."""

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return np.concatenate([g, g])[: g.shape[0]]


class Scale3(Function):
    """x * k with k a keyword: takes the generic (Python) apply path."""

    @staticmethod
    def forward(ctx, x, y, z, k=1.0):
        ctx.k = k
        return (x + y + z) * k

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, g * ctx.k, g * ctx.k


def _returning(value_fn, name="Custom", n_inputs=1):
    """A Function class whose backward returns ``value_fn(g)`` (forward: the identity, or a + b)."""
    if n_inputs == 1:
        def forward(ctx, a):
            return a.copy()
    else:
        def forward(ctx, a, b):
            return a + b

    def backward(ctx, g):
        return value_fn(g)

    return type(name, (Function,), {"forward": staticmethod(forward),
                                    "backward": staticmethod(backward)})


# -- references: nothing leaked, nothing dropped ----------------------------------------------


def _refcounts(objs: dict) -> dict:
    gc.collect()
    return {k: sys.getrefcount(v) for k, v in objs.items()}


def _training_step(x, y, w, c, plain, hook):
    z = Mul.apply(x, y)                      # tensor, tensor
    z = Mul.apply(z, w)                      # non-leaf, Parameter (a Tensor subclass)
    z = Mul.apply(z, c)                      # a tensor that needs no grad
    z = Mul.apply(2.5, z)                    # a Python float first
    z = Mul.apply(z, plain)                  # a NumPy array second
    z = Square.apply(z) + Square.apply(x) + Ident.apply(y) + Fork.apply(x, w)
    z = z + Scale3.apply(x, y, c, k=0.5)     # the generic path in the same graph
    z.register_hook(hook)
    loss = (z * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    with backprop.no_grad():
        Mul.apply(x, y)
        Square.apply(x)
    Square.apply(c)
    x.grad = y.grad = w.grad = None


def test_forward_and_backward_keep_reference_counts_steady():
    x, y = t64([1.0, 2.0, 3.0]), t64([0.5, -1.0, 2.0])
    w = backprop.nn.Parameter(t64([1.5, 1.0, -0.5], requires_grad=False))
    c = t64([2.0, 2.0, 2.0], requires_grad=False)
    plain = np.array([1.0, -1.0, 0.5])

    def hook(g):
        return None

    objs = {"x": x, "y": y, "w": w, "c": c, "x._data": x._data, "y._data": y._data,
            "w._data": w._data, "c._data": c._data, "plain": plain, "hook": hook,
            "Mul": Mul, "Square": Square, "Ident": Ident, "Fork": Fork, "Scale3": Scale3,
            "needs0": function._NEEDS2[0], "needs1": function._NEEDS2[1],
            "needs2": function._NEEDS2[2], "needs3": function._NEEDS2[3],
            "grad1": function._GRAD1, "no_grad1": function._NO_GRAD1}
    for _ in range(20):
        _training_step(x, y, w, c, plain, hook)
    before = _refcounts(objs)
    for _ in range(300):
        _training_step(x, y, w, c, plain, hook)
    after = _refcounts(objs)
    assert after == before, {k: (before[k], after[k]) for k in objs if before[k] != after[k]}


class FwdRaise(Function):
    @staticmethod
    def forward(ctx, a, b=None):
        raise Boom("forward failed")

    @staticmethod
    def backward(ctx, g):
        return g


class BwdRaise(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a + b

    @staticmethod
    def backward(ctx, g):
        raise Boom("backward failed")


TooMany = _returning(lambda g: (g, g, g), "TooMany", n_inputs=2)
BadShape = _returning(lambda g: (np.ones(7), g), "BadShape", n_inputs=2)
TupleOut = type("TupleOut", (Function,), {
    "forward": staticmethod(lambda ctx, a, b: (a, b)),
    "backward": staticmethod(lambda ctx, g: (g, g))})


def _failing_step(x, y):
    failures = [
        lambda: FwdRaise.apply(x, y),
        lambda: FwdRaise.apply(x),
        lambda: BwdRaise.apply(x, y).sum().backward(),
        lambda: TooMany.apply(x, y).sum().backward(),
        lambda: BadShape.apply(x, y).sum().backward(),
        lambda: TupleOut.apply(x, y),
    ]
    for fail in failures:
        with pytest.raises((Boom, GradError, ShapeError, TypeError)):
            fail()
    z = Mul.apply(x, y)

    def bad_hook(g):
        raise Boom("hook failed")

    z.register_hook(bad_hook)
    with pytest.raises(Boom):
        (z * 2.0).sum().backward()
    loss = Mul.apply(x, y).sum()
    loss.backward()
    with pytest.raises(GradError):
        loss.backward()
    x.grad = y.grad = None


def test_error_paths_keep_reference_counts_and_memory_steady():
    x, y = t64([1.0, 2.0, 3.0]), t64([0.5, -1.0, 2.0])
    objs = {"x": x, "y": y, "x._data": x._data, "y._data": y._data, "Mul": Mul,
            "BwdRaise": BwdRaise, "TooMany": TooMany, "BadShape": BadShape,
            "needs3": function._NEEDS2[3], "grad1": function._GRAD1}
    for _ in range(20):
        _failing_step(x, y)
    before = _refcounts(objs)
    tracemalloc.start()
    try:
        for _ in range(20):
            _failing_step(x, y)
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            _failing_step(x, y)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    after = _refcounts(objs)
    assert after == before, {k: (before[k], after[k]) for k in objs if before[k] != after[k]}
    assert grown < 32 * 1024, f"{grown} bytes kept by 100 failing steps"


def test_memory_does_not_grow_over_a_thousand_training_steps():
    rng = np.random.default_rng(0)
    w1 = backprop.nn.Parameter(backprop.tensor(rng.standard_normal((4, 8)), dtype=backprop.float64))
    b1 = t64(np.zeros(8))
    w2 = t64(rng.standard_normal((8, 1)))
    xb = t64(rng.standard_normal((16, 4)), requires_grad=False)
    seen = []

    def step(i):
        h = Mul.apply(xb @ w1 + b1, 0.5)               # broadcast bias: the engine reduces it
        h.register_hook(lambda g: seen.append(1) if i % 1000 == 0 else None)
        out = Square.apply(h @ w2) + Ident.apply(h).sum() * 0.0
        loss = out.mean()
        loss.backward(retain_graph=(i % 7 == 0))
        if i % 7 == 0:
            loss.backward()
        for p in (w1, b1, w2):
            p.grad = None
        return loss

    tracemalloc.start()
    try:
        for i in range(600):  # under tracing: free lists and caches fill up first
            step(i)
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        for i in range(400):
            step(i)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024, f"{grown} bytes kept by 400 training steps"


def test_graph_dies_by_reference_counting_alone():
    """No leaked reference keeps a node, its saved arrays or its output alive (gc off)."""
    gc.collect()
    gc.disable()
    try:
        x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
        z = Mul.apply(Square.apply(x), y)
        node, inner = weakref.ref(z.grad_fn), weakref.ref(z.grad_fn.inputs[0].grad_fn)
        saved = [weakref.ref(a) for a in z.grad_fn.saved_tensors]
        data = weakref.ref(z._data)
        z.sum().backward()
        assert z.grad_fn.saved_tensors is None and z.grad_fn.inputs is None
        assert all(r() is None or r() is y._data for r in saved)
        assert inner() is None  # freed: backward dropped the links to the inputs
        del z
        assert node() is None and data() is None
        # and an output dropped without any backward
        z = Mul.apply(x, y)
        node, data = weakref.ref(z.grad_fn), weakref.ref(z._data)
        del z
        assert node() is None and data() is None
        # an op whose forward raised leaves nothing behind
        before = sys.getrefcount(x._data), sys.getrefcount(y._data)
        try:
            FwdRaise.apply(x, y)
        except Boom:
            pass
        assert (sys.getrefcount(x._data), sys.getrefcount(y._data)) == before
    finally:
        gc.enable()


# -- what apply records ------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["tt", "tv", "vt", "tc", "ct", "pp", "t", "v", "c"])
def test_apply_records_inputs_and_needs_input_grad(case):
    leaf = t64([1.0, 2.0])
    param = backprop.nn.Parameter(backprop.tensor([3.0, 4.0], dtype=backprop.float64))
    const = t64([5.0, 6.0], requires_grad=False)
    kinds = {"t": leaf, "p": param, "c": const, "v": 2.0}
    args = [kinds[k] for k in case]
    if case == "pp":
        args = [param, param]
    op = Mul if len(args) == 2 else Square
    out = op.apply(*args)
    assert type(out) is backprop.Tensor
    assert out._version == 0 and out.grad is None and out._hooks is None
    assert type(out._data) is np.ndarray
    needs = tuple(isinstance(a, backprop.Tensor) and a.requires_grad for a in args)
    if not any(needs):
        assert out.grad_fn is None and not out.requires_grad
        return
    fn = out.grad_fn
    assert out.requires_grad and fn.op is op
    assert fn.needs_input_grad == needs and type(fn.needs_input_grad) is tuple
    assert type(fn.inputs) is tuple and len(fn.inputs) == len(args)
    for a, i in zip(args, fn.inputs):
        assert i is (a if isinstance(a, backprop.Tensor) else None)
    assert isinstance(fn.seq, int) and fn.seq > 0
    with backprop.no_grad():
        again = op.apply(*args)
    assert again.grad_fn is None and not again.requires_grad
    out.sum().backward()
    for a, need in zip(args, needs):
        if need:
            assert a.grad is not None and a.grad.shape == a.shape


def test_apply_with_plain_values_and_arrays():
    x = t64([1.0, 2.0, 3.0])
    for other in (2.0, 3, np.float64(2.0), np.float32(2.0), np.array(2.0),
                  np.array([2.0, 2.0, 2.0]), np.array([[2.0], [2.0]])):
        x.grad = None
        left, right = Mul.apply(x, other), Mul.apply(other, x)
        np.testing.assert_allclose(arr(left), arr(right))
        (left.sum() + right.sum()).backward()
        expected = 2 * np.broadcast_to(np.asarray(other, dtype=np.float64), left.shape)
        expected = expected.reshape(-1, 3).sum(axis=0)
        np.testing.assert_allclose(x.grad.numpy(), expected)
        assert x.grad.dtype == x.dtype
    # no tensor at all: a plain result, no graph
    out = Mul.apply(2.0, np.array([1.0, 2.0]))
    assert type(out._data) is np.ndarray and out.grad_fn is None
    out = Square.apply(3.0)
    assert out.item() == 9.0 and out.grad_fn is None


def test_same_tensor_twice_and_a_parameter():
    p = backprop.nn.Parameter(backprop.tensor([1.0, -2.0], dtype=backprop.float64))
    out = Mul.apply(p, p)
    assert [i is p for i in out.grad_fn.inputs] == [True, True]
    assert out.grad_fn.needs_input_grad == (True, True)
    out.sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [2.0, -4.0])
    assert type(p.grad) is backprop.Tensor


# -- 0-d tensors: NumPy returns scalars -------------------------------------------------------


class Total(Function):
    """sum: forward returns a NumPy scalar, backward a broadcast (read-only) view."""

    @staticmethod
    def forward(ctx, a):
        ctx.shape = a.shape
        return a.sum()  # np.float64, not an array

    @staticmethod
    def backward(ctx, g):
        return np.broadcast_to(g, ctx.shape)


class ScalarGrad(Function):
    """0-d in, 0-d out; backward returns a NumPy scalar, not an array."""

    @staticmethod
    def forward(ctx, a):
        return a * 3.0

    @staticmethod
    def backward(ctx, g):
        return (g * 3.0)[()]  # np.float64


def test_zero_dim_outputs_and_gradients():
    x = t64(2.0)
    out = Total.apply(x)
    assert type(out._data) is np.ndarray and out.shape == ()
    y = ScalarGrad.apply(x)
    assert type(y._data) is np.ndarray
    # x reaches the loss four ways: running sums of 0-d leaf and node gradients
    h = y * x
    loss = h + h + ScalarGrad.apply(h) + Total.apply(x) + x * 2.0
    loss.backward()
    assert type(x.grad._data) is np.ndarray and x.grad.shape == ()
    # loss = 2*3x*x + 3*(3x*x) + x + 2x = 15 x^2 + 3x  ->  30x + 3
    np.testing.assert_allclose(x.grad.item(), 30 * 2.0 + 3)
    loss2 = ScalarGrad.apply(x) * ScalarGrad.apply(x)
    loss2.backward()
    np.testing.assert_allclose(x.grad.item(), 63.0 + 18 * 2.0)


def test_python_float_gradient_for_zero_dim_and_vector_inputs():
    AsFloat = _returning(lambda g: float(np.sum(g)) * 2.0, "AsFloat")
    x = t64(1.5)
    AsFloat.apply(x).backward()
    assert x.grad.item() == 2.0 and x.grad.dtype == backprop.float64
    v = t64([1.0, 2.0])
    with pytest.raises(ShapeError, match="AsFloatBackward"):
        AsFloat.apply(v).sum().backward()
    assert v.grad is None


# -- what a custom backward may return --------------------------------------------------------


@pytest.mark.parametrize("kind", ["tuple", "list", "tensor", "bare", "float32", "int", "broadcast"])
def test_backward_return_forms(kind):
    x = t64([1.0, 2.0, 3.0])
    forms = {
        "tuple": lambda g: (g * 2.0,),
        "list": lambda g: [g * 2.0],
        "tensor": lambda g: backprop.tensor(g * 2.0),
        "bare": lambda g: g * 2.0,
        "float32": lambda g: (g * 2.0).astype(np.float32),
        "int": lambda g: np.full(g.shape, 2, dtype=np.int64),
        "broadcast": lambda g: np.broadcast_to(g * 2.0, (4,) + g.shape),  # reduced: x4
    }
    Op = _returning(forms[kind], f"Form_{kind}")
    Op.apply(x).sum().backward()
    want = 8.0 if kind == "broadcast" else 2.0
    np.testing.assert_allclose(x.grad.numpy(), [want] * 3)
    assert x.grad.dtype == backprop.float64 and type(x.grad._data) is np.ndarray
    x.grad.add_(1.0)  # writable and its own


@pytest.mark.parametrize("returned,n", [(lambda g: (g, g, g), 3), (lambda g: (g,), 1),
                                        (lambda g: [], 0),
                                        (lambda g: namedtuple("G", "a b")(g, g), 1)],
                         ids=["three", "one", "none", "namedtuple"])
def test_backward_returning_the_wrong_count_names_the_op(returned, n):
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    Op = _returning(returned, "Miscount", n_inputs=2)
    loss = (Op.apply(x, y) * 2.0).sum()
    with pytest.raises(GradError, match=rf"MiscountBackward: backward returned {n} gradients"):
        loss.backward()
    assert x.grad is None and y.grad is None


def test_wrong_shape_gradient_names_the_op_and_input():
    x, y = t64([1.0, 2.0]), t64([[1.0, 2.0], [3.0, 4.0]])
    Op = _returning(lambda g: (g, np.ones(3)), "Skewed", n_inputs=2)
    with pytest.raises(ShapeError, match=r"SkewedBackward.*input 1 of shape \(2, 2\)"):
        Op.apply(x, y).sum().backward()


# -- leaf gradients own their memory ----------------------------------------------------------


def _independent(*arrays):
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)


def test_leaf_grads_share_memory_with_nothing():
    x, y, z = t64([1.0, 2.0]), t64([3.0, 4.0]), t64([5.0, 6.0])
    p = backprop.nn.Parameter(backprop.tensor([0.5, 0.25], dtype=backprop.float64))
    kept = []

    def keep(g):
        kept.append(g.detach().numpy())

    h = Ident.apply(x)           # h's gradient passes through to x unchanged
    h.register_hook(keep)
    s = ReturnSaved.apply(y, z)  # y's gradient is z's saved array itself
    f = Fork.apply(p, z)         # the same fresh array for p and z
    v = ReturnView.apply(x)      # a view of a fresh array
    loss = (h + s + f + v + Ident.apply(p)).sum()
    loss.backward()
    grads = [t.grad.numpy() for t in (x, y, z, p)]
    _independent(*grads, *kept, *(arr(t) for t in (x, y, z, p)))
    for g in grads:
        g += 100.0  # writing into one .grad changes nothing else
    np.testing.assert_allclose(arr(z), [5.0, 6.0])
    np.testing.assert_allclose(kept[0], [1.0, 1.0])
    np.testing.assert_allclose(y.grad.numpy(), [105.0, 106.0])
    np.testing.assert_allclose(z.grad.numpy(), [101.0, 101.0])


def test_leaf_grad_does_not_alias_an_array_saved_in_a_list():
    class SavedList(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.saved_tensors = [b]  # not through save_for_backward
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            return ctx.saved_tensors[0], None

    x, y = t64([1.0, 2.0]), t64([3.0, 4.0], requires_grad=False)
    SavedList.apply(x, y).sum().backward()
    assert not np.shares_memory(x.grad.numpy(), arr(y))


def test_accumulation_never_writes_into_a_gradient_the_user_holds():
    x = t64([1.0, 2.0])
    (Square.apply(x) + Ident.apply(x)).sum().backward()
    first = x.grad
    held = first.numpy()
    snapshot = held.copy()
    (Square.apply(x) + Ident.apply(x) + Fork.apply(x, x)).sum().backward()
    np.testing.assert_array_equal(held, snapshot)  # the old array is untouched
    np.testing.assert_allclose(x.grad.numpy(), 2 * snapshot + 2.0)


def test_engine_never_adds_into_an_array_a_backward_or_hook_kept():
    kept_by_op, kept_by_hook = [], []

    class Keep(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2.0

        @staticmethod
        def backward(ctx, g):
            out = g * 2.0
            kept_by_op.append((out, out.copy()))
            return out

    x = t64([1.0, 2.0, 3.0])
    h = x * 1.0                     # a node parent: Keep's gradients for it are summed
    k = Keep.apply(h)
    k.register_hook(lambda g: kept_by_hook.append((g.numpy(), g.numpy().copy())))
    loss = (k + k * 3.0 + Keep.apply(h) + Keep.apply(h) + h).sum()
    loss.backward()
    for held, copy in kept_by_op + kept_by_hook:
        np.testing.assert_array_equal(held, copy)
    np.testing.assert_allclose(x.grad.numpy(), [2.0 * 4 + 2.0 + 2.0 + 1.0] * 3)


# -- errors raised half-way ---------------------------------------------------------------------


def _still_works():
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    (Mul.apply(a, b) + Square.apply(a)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [5.0, 8.0])
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("nargs", [1, 2, 3])
def test_exception_in_forward_propagates_cleanly(nargs):
    class Fails(Function):
        @staticmethod
        def forward(ctx, *args):
            raise Boom(f"forward of {len(args)}")

        @staticmethod
        def backward(ctx, g):
            return g

    x = t64([1.0, 2.0])
    with pytest.raises(Boom, match=f"forward of {nargs}"):
        Fails.apply(*([x] * nargs))
    Stops = type("Stops", (Function,), {"forward": staticmethod(lambda ctx, a: _raise(Stop())),
                                        "backward": staticmethod(lambda ctx, g: g)})
    with pytest.raises(Stop):
        Stops.apply(x)
    _still_works()


def test_exception_in_backward_propagates_and_leaves_no_partial_grads():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    mid = BwdRaise.apply(x * 2.0, y)
    loss = (mid * y + Square.apply(y)).sum()
    with pytest.raises(Boom, match="backward failed"):
        loss.backward()
    assert x.grad is None and y.grad is None  # leaves accumulate only once the walk is done
    # the nodes that ran before the failure were freed, as in a normal walk
    with pytest.raises(GradError, match="second time"):
        loss.backward()
    _still_works()


def test_base_exception_in_backward_is_not_swallowed():
    StopOp = _returning(lambda g: _raise(Stop()), "StopOp")
    x = t64([1.0])
    with pytest.raises(Stop):
        (StopOp.apply(x) * 2.0).sum().backward()
    _still_works()


@pytest.mark.parametrize("where", ["node", "leaf", "root"])
def test_hook_that_raises(where):
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    h = Mul.apply(x, y)
    loss = (h * 2.0).sum()

    def bad(g):
        raise Boom(where)

    {"node": h, "leaf": x, "root": loss}[where].register_hook(bad)
    with pytest.raises(Boom, match=where):
        loss.backward()
    assert x.grad is None and y.grad is None
    _still_works()


def test_hook_returning_a_bad_value_is_reported():
    x = t64([1.0, 2.0])
    h = Square.apply(x)
    h.register_hook(lambda g: np.ones(5))  # a wrong-shaped replacement
    with pytest.raises((ShapeError, ValueError)):
        (h * 3.0).sum().backward()
    _still_works()


def test_backward_through_a_freed_graph():
    x = t64([1.0, 2.0])
    shared = Square.apply(Mul.apply(x, 3.0))
    first, second = shared.sum(), (shared * 2.0).sum()
    first.backward(retain_graph=True)
    first.backward()           # frees the shared part
    np.testing.assert_allclose(x.grad.numpy(), 2 * 18 * np.array([1.0, 2.0]))
    with pytest.raises(GradError, match="SquareBackward: trying to backward through the graph "
                                        "a second time"):
        second.backward()
    with pytest.raises(GradError, match="second time"):
        first.backward()
    _still_works()


def test_inplace_change_of_a_saved_array_is_caught_on_both_apply_paths():
    for make in (lambda a, b: Mul.apply(a, b), lambda a, b: Scale3.apply(a, b, b, k=1.0) * b):
        w = t64([1.0, 2.0], requires_grad=False)
        x = t64([3.0, 4.0])
        out = make(x, w)
        part = w.detach()[0:1]
        part.add_(1.0)  # through an alias, and only part of it
        with pytest.raises(InplaceError, match="Backward"):
            out.sum().backward()
    # a change made before the op ran is fine
    w = t64([1.0, 2.0], requires_grad=False)
    x = t64([3.0, 4.0])
    w.add_(1.0)
    Mul.apply(x, w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 3.0])
    _still_works()


def test_nested_backward_inside_a_backward():
    class Nested(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a ** 3

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            inner = t64(a.copy())
            Square.apply(Mul.apply(inner, 1.5)).sum().backward()  # d/da (1.5a)^2 = 4.5 a
            return g * inner.grad.numpy() * (2.0 / 3.0) * a        # 3 a^2

    x = t64([1.0, 2.0])
    (Nested.apply(x) + Square.apply(x)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([1.0, 4.0]) + 2 * np.array([1.0, 2.0]))


THIS_FILE = __file__


def test_anomaly_names_the_callers_line_for_custom_ops():
    Nan1 = type("Nan1", (Function,), {"forward": staticmethod(lambda ctx, a: a * np.nan),
                                      "backward": staticmethod(lambda ctx, g: g)})
    Nan2 = type("Nan2", (Function,), {"forward": staticmethod(lambda ctx, a, b: a * b * np.nan),
                                      "backward": staticmethod(lambda ctx, g: (g, g))})
    x = t64([1.0])
    with backprop.autograd.detect_anomaly():
        with pytest.raises(backprop.AnomalyError) as one:
            line1 = inspect.currentframe().f_lineno + 1
            Nan1.apply(x)
        with pytest.raises(backprop.AnomalyError) as two:
            line2 = inspect.currentframe().f_lineno + 1
            Nan2.apply(x, 2.0)
    assert f'"{THIS_FILE}", line {line1}' in str(one.value) and "Nan1" in str(one.value)
    assert f'"{THIS_FILE}", line {line2}' in str(two.value) and "Nan2" in str(two.value)


# -- threads ------------------------------------------------------------------------------------


def _thread_work(seed: int, steps: int) -> list:
    rng = np.random.default_rng(seed)
    w = t64(rng.standard_normal((3, 4)))
    b = t64(rng.standard_normal(4))
    out = []
    for i in range(steps):
        xb = t64(rng.standard_normal((5, 3)), requires_grad=False)
        h = Mul.apply(xb @ w + b, 0.5)
        loss = (Square.apply(h) + Fork.apply(h, b) + Ident.apply(h)).mean()
        loss.backward()
        if i % 10 == 0:
            with backprop.no_grad():
                assert Mul.apply(w, b).grad_fn is None
        out.append((loss.item(), w.grad.numpy().copy(), b.grad.numpy().copy()))
        w.grad = b.grad = None
    return out


def test_threads_running_independent_graphs_match_one_thread():
    steps, n = 200, 4
    expected = [_thread_work(seed, steps) for seed in range(n)]
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def run(k):
        try:
            barrier.wait()
            results[k] = _thread_work(k, steps)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave as much as possible
    try:
        threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    for k in range(n):
        for (l1, w1, b1), (l2, w2, b2) in zip(results[k], expected[k]):
            assert l1 == l2
            np.testing.assert_array_equal(w1, w2)
            np.testing.assert_array_equal(b1, b2)


def test_no_grad_in_one_thread_does_not_stop_another():
    x = t64([1.0, 2.0])
    stop = threading.Event()
    seen = {"recorded": 0, "unrecorded": 0, "bad": 0}

    def quiet():
        with backprop.no_grad():
            while not stop.is_set():
                out = Mul.apply(x, x)
                seen["unrecorded"] += 1
                if out.grad_fn is not None or out.requires_grad:
                    seen["bad"] += 1

    def loud():
        for _ in range(300):
            out = Mul.apply(x, 2.0)
            seen["recorded"] += 1
            if out.grad_fn is None:
                seen["bad"] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        q = threading.Thread(target=quiet)
        q.start()
        loud_threads = [threading.Thread(target=loud) for _ in range(2)]
        for th in loud_threads:
            th.start()
        for th in loud_threads:
            th.join()
        stop.set()
        q.join()
    finally:
        sys.setswitchinterval(old)
    assert seen["bad"] == 0 and seen["recorded"] == 600 and seen["unrecorded"] > 0
    assert backprop.autograd.is_grad_enabled()  # this thread's mode never changed


# -- crashes, isolated in a subprocess ----------------------------------------------------------


def _run_script(script: str, pure: bool | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pure is not None:
        env["BACKPROP_PURE_PYTHON"] = "1" if pure else "0"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False,
                          capture_output=True, text=True, env=env, timeout=60)



def test_tensor_subclass_computing_its_data_on_access():
    proc = _run_script("""
        import numpy as np
        from backprop.autograd import Function
        from backprop.tensor import Tensor

        class Lazy(Tensor):
            __slots__ = ("_store",)
            @property
            def _data(self):
                return self._store * 1.0   # a fresh array on every access
            @_data.setter
            def _data(self, value):
                self._store = value

        class Ident(Function):
            @staticmethod
            def forward(ctx, a):
                return a + 0.0
            @staticmethod
            def backward(ctx, g):
                return g

        t = Lazy(np.array([1.0, 2.0, 3.0]))
        for i in range(20):
            junk = [np.full(3, 9.0 + i) for _ in range(50)]
            assert Ident.apply(t)._data.tolist() == [1.0, 2.0, 3.0]
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr)


def test_array_replaced_while_apply_runs_python_code():
    """The first op of a new thread runs the grad-mode state's __init__ (Python code) inside
    apply, where the collector (or another thread) may run and replace a tensor's array."""
    proc = _run_script("""
        import gc, threading, weakref
        import numpy as np
        import backprop
        from backprop.autograd import Function

        class Probe(Function):
            @staticmethod
            def forward(ctx, a, b):
                # the array forward got must be alive: the old one, or the new one
                result.append(old() is not None or a is t._data)
                return b + 0.0
            @staticmethod
            def backward(ctx, g):
                return None, g

        t = backprop.tensor(np.ones(4))
        u = backprop.tensor(np.ones(4), requires_grad=True)
        old = weakref.ref(t._data)
        result, armed = [], [False]

        def replace(phase, info):
            if phase == "start" and armed[0]:
                armed[0] = False
                t._data = np.zeros(4)    # as t.data = ... in another thread would

        # ops call the C apply directly (no Python frame in between), as Tensor.__mul__ does
        from backprop.autograd import function
        apply2 = function._capply[1] if function._capply else Probe.apply
        def body():  # a fresh thread: this op is its first
            gc.callbacks.append(replace)
            gc.set_threshold(1, 10, 10)
            gc.collect()
            armed[0] = True
            apply2(Probe, t, u) if function._capply else apply2(t, u)
            gc.set_threshold(700, 10, 10)
            gc.callbacks.remove(replace)

        th = threading.Thread(target=body)
        th.start()
        th.join()
        print("ok" if result == [True] else f"bad {result}")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stdout,
                                                                   proc.stderr)


MEMORY_SCRIPT = """
    import gc, tracemalloc
    import numpy as np
    import backprop
    from backprop.autograd import Function

    class Attrs(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.dim = 0
            ctx.keep = True
            return a
        @staticmethod
        def backward(ctx, g):
            return g

    x = backprop.tensor(np.ones(2), requires_grad=True)
    keep = [Attrs.apply(x) for _ in range(100)]
    gc.collect()
    tracemalloc.start()
    keep = [Attrs.apply(x) for _ in range(5000)]
    print(tracemalloc.get_traced_memory()[0] / 5000)
"""


def test_nodes_with_ctx_attributes_cost_no_more_memory_than_the_reference():
    if not ACCEL:
        pytest.skip("the reference itself: nothing to compare")
    here, reference = _run_script(MEMORY_SCRIPT), _run_script(MEMORY_SCRIPT, pure=True)
    assert here.returncode == 0 and reference.returncode == 0, here.stderr + reference.stderr
    per_node, per_node_ref = float(here.stdout), float(reference.stdout)
    assert per_node <= 1.15 * per_node_ref, (per_node, per_node_ref)


def test_broadcast_leaf_gradients_are_summed_owned_and_accumulated():
    # A bias (leading axes added) and a 0-d scale (every axis): the engine sums both
    # (the C walk does the bias itself; NumPy gives a scalar for the 0-d sum), and the
    # leaves keep arrays of their own shape that own their memory.
    s = t64(2.0)
    b = t64([0.5, -1.0, 2.0])
    x = t64(np.arange(12.0).reshape(4, 3), requires_grad=False)
    for _ in range(2):  # the second pass adds into the first pass's .grad
        (x * s + b).sum().backward()
    assert type(arr(s.grad)) is np.ndarray and arr(s.grad).shape == ()
    assert arr(s.grad) == 2 * arr(x).sum()
    np.testing.assert_array_equal(arr(b.grad), [8.0, 8.0, 8.0])
    assert arr(b.grad).flags.owndata and arr(s.grad).flags.owndata
    # a bias of another dtype is summed and cast (float32 bias, float64 gradient)
    b32 = backprop.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 1.0 + b32.to(backprop.float64)).sum().backward()
    assert b32.grad.dtype == backprop.float32
    np.testing.assert_array_equal(arr(b32.grad), [4.0, 4.0, 4.0])
