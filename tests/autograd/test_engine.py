"""The backward engine: graph walking, accumulation, broadcasting, hooks, in-place rules.

Per-op gradients are swept by tests/ops/test_catalogue.py; these tests are about
the machinery around them and use only the core ops (+ - * / ** exp log sum mean
matmul reshape permute transpose).
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

import backprop
from backprop import DTypeError, GradError, InplaceError, ShapeError
from backprop.autograd import Function


def t64(data, requires_grad=True):
    return backprop.tensor(data, dtype=backprop.float64, requires_grad=requires_grad)


def randn64(*shape, requires_grad=True):
    return backprop.randn(*shape, dtype=backprop.float64, requires_grad=requires_grad)


# -- depth ---------------------------------------------------------------------------


def test_chain_of_100k_ops_backward_without_recursion():
    x = t64(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.backward()
    # d/dx (x * c^n) = c^n with c = 1.00001, n = 100000  (≈ e)
    np.testing.assert_allclose(x.grad.item(), 1.00001 ** 100_000, rtol=1e-9)
    del y
    gc.collect()  # tearing the 100k-node graph down must not overflow either


def test_deep_chain_through_autograd_grad():
    x = t64([1.0, 2.0])
    y = x
    for _ in range(20_000):
        y = y + 1.0
    (g,) = backprop.autograd.grad(y.sum(), x)
    np.testing.assert_array_equal(g.numpy(), [1.0, 1.0])


# -- accumulation within one backward ---------------------------------------------------


def test_tensor_used_twice_in_mul():
    x = t64([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])


def test_tensor_used_twice_in_add():
    x = t64([1.0, -2.0, 3.0])
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_tensor_used_three_times():
    x = t64([1.5, -0.5])
    (x * x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([1.5, -0.5]) ** 2 + 1)


def test_diamond_graph(oracle):
    xv = np.array([0.3, -1.2, 2.0])
    x = t64(xv)
    a = x * 2.0
    b = x.exp()
    c = a * b + a / b  # two paths from x meet twice
    c.sum().backward()

    xt = oracle.tensor(xv, requires_grad=True)
    at = xt * 2.0
    bt = xt.exp()
    (at * bt + at / bt).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_diamond_through_non_leaf():
    x = t64([2.0])
    h = x * 3.0           # non-leaf used by two consumers
    y = h * h + h         # dy/dh = 2h + 1 ; dy/dx = 3(2h + 1)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 * (2 * 6.0 + 1)])


def test_gradients_accumulate_across_backward_calls():
    x = t64([1.0, 2.0])
    (x * x).sum().backward()
    first = x.grad
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 3.0, 4.0 + 3.0])
    assert x.grad is first  # accumulated into the same .grad tensor, as in PyTorch


def test_grad_can_be_reset_to_none_and_zeroed():
    x = t64([1.0, 2.0])
    (x * x).sum().backward()
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    x.grad.zero_()
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_results_are_deterministic():
    def run():
        backprop.manual_seed(123)
        w = randn64(4, 3)
        x = randn64(5, 4)
        h = (x @ w).exp()
        loss = (h / (h + 1.0)).log().mean() + (w * w).sum()
        loss.backward()
        return loss.item(), w.grad.numpy().copy(), x.grad.numpy().copy()

    a, b = run(), run()
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


def test_constant_inputs_get_no_grad():
    x = t64([1.0, 2.0])
    c = t64([3.0, 4.0], requires_grad=False)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_grad_dtype_follows_input_dtype():
    x32 = backprop.tensor([1.0, 2.0], requires_grad=True)
    y64 = t64([3.0, 4.0])
    (x32 * y64).sum().backward()
    assert x32.grad.dtype == backprop.float32
    assert y64.grad.dtype == backprop.float64
    np.testing.assert_allclose(x32.grad.numpy(), [3.0, 4.0])


# -- broadcasting --------------------------------------------------------------------------


def test_broadcast_column_plus_row():
    a = t64(np.arange(3.0).reshape(3, 1))
    b = t64(np.arange(4.0).reshape(1, 4))
    (a + b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4)
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full((1, 4), 3.0))


def test_broadcast_column_times_row_weighted():
    rng = np.random.default_rng(0)
    av, bv = rng.standard_normal((3, 1)), rng.standard_normal((1, 4))
    wv = rng.standard_normal((3, 4))
    a, b = t64(av), t64(bv)
    (a * b * t64(wv, requires_grad=False)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), (bv * wv).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(b.grad.numpy(), (av * wv).sum(axis=0, keepdims=True))


def test_broadcast_zero_dim_tensor():
    s = t64(2.0)
    x = t64([[1.0, 2.0], [3.0, 4.0]])
    (s * x).sum().backward()
    assert s.grad.shape == ()
    assert s.grad.item() == 10.0
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 2), 2.0))


def test_broadcast_leading_dims():
    rng = np.random.default_rng(1)
    av, bv = rng.standard_normal((2, 3, 4)), rng.standard_normal(4)
    a, b = t64(av), t64(bv)
    (a * b).sum().backward()
    assert b.grad.shape == (4,)
    np.testing.assert_allclose(b.grad.numpy(), av.sum(axis=(0, 1)))
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(bv, (2, 3, 4)))


def test_broadcast_leading_and_stretched_dims():
    rng = np.random.default_rng(2)
    av, bv = rng.standard_normal((5, 1, 3)), rng.uniform(1, 2, (4, 1))
    a, b = t64(av), t64(bv)
    (a / b).sum().backward()
    assert a.grad.shape == (5, 1, 3) and b.grad.shape == (4, 1)
    np.testing.assert_allclose(a.grad.numpy(), np.full((5, 1, 3), (1 / bv).sum()))
    expected_b = (-av / bv ** 2).sum(axis=(0, 2)).reshape(4, 1)
    np.testing.assert_allclose(b.grad.numpy(), expected_b)


def test_python_scalar_operands():
    x = t64([1.0, 2.0])
    (2.0 * x - 1.0 + x / 4.0 + 3.0 / x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0 + 0.25 - 3.0 / np.array([1.0, 2.0]) ** 2)


def test_matmul_gradient_has_input_shapes(oracle):
    rng = np.random.default_rng(3)
    av, bv = rng.standard_normal((2, 5, 3)), rng.standard_normal((3, 4))
    a, b = t64(av), t64(bv)
    (a @ b).sum().backward()
    at, bt = oracle.tensor(av, requires_grad=True), oracle.tensor(bv, requires_grad=True)
    (at @ bt).sum().backward()
    assert b.grad.shape == (3, 4)
    np.testing.assert_allclose(a.grad.numpy(), at.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), bt.grad.numpy())


# -- non-leaf gradients, retain_grad --------------------------------------------------------


def test_non_leaf_grad_is_none():
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.sum().backward()
    assert h.grad is None
    assert not h.retains_grad
    assert x.grad is not None


def test_retain_grad_keeps_non_leaf_grad():
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.retain_grad()
    assert h.retains_grad
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [4.0, 8.0])
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 16.0])


def test_retain_grad_accumulates_across_backward():
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.retain_grad()
    y = (h * h).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(h.grad.numpy(), [8.0, 16.0])


def test_retain_grad_on_leaf_is_a_no_op():
    x = t64([1.0])
    x.retain_grad()
    (x * 5.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0])


def test_retain_grad_without_requires_grad_raises():
    with pytest.raises(GradError):
        t64([1.0], requires_grad=False).retain_grad()


def test_retained_grad_sees_hooks_registered_later(oracle):
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.retain_grad()
    h.register_hook(lambda g: g * 10.0)
    h.sum().backward()
    xt = oracle.tensor([1.0, 2.0], dtype=oracle.float64, requires_grad=True)
    ht = xt * 2.0
    ht.retain_grad()
    ht.register_hook(lambda g: g * 10.0)
    ht.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())
    np.testing.assert_allclose(h.grad.numpy(), ht.grad.numpy())  # [10, 10]


# -- hooks ---------------------------------------------------------------------------


def test_hook_on_non_leaf_sees_total_gradient():
    x = t64([1.0, 2.0])
    h = x * 1.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    (h * 3.0 + h * 4.0).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [7.0, 7.0])


def test_hook_return_value_replaces_gradient():
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.register_hook(lambda g: g * 0.5)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_hook_returning_none_leaves_gradient():
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.register_hook(lambda g: None)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_hook_handle_remove():
    x = t64([1.0, 2.0])
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    (x * 1.0).sum().backward()
    handle.remove()
    handle.remove()  # removing twice is harmless
    (x * 1.0).sum().backward()
    assert calls == [1]


def test_non_leaf_hook_handle_remove():
    x = t64([1.0, 2.0])
    h = x * 2.0
    handle = h.register_hook(lambda g: g * 100.0)
    handle.remove()
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_hook_handle_is_a_context_manager():
    x = t64([1.0])
    calls = []
    with x.register_hook(lambda g: calls.append(g.item())):
        (x * 2.0).sum().backward()
    (x * 2.0).sum().backward()
    assert calls == [2.0]


def test_leaf_hook_runs_once_with_summed_gradient():
    x = t64([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (x * 2.0 + x * 3.0 + x).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [6.0, 6.0])


def test_leaf_hook_return_value_replaces_gradient():
    x = t64([1.0, 2.0])
    x.register_hook(lambda g: g * 2.0)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_hooks_run_in_registration_order():
    x = t64([1.0])
    h = x * 1.0
    h.register_hook(lambda g: g + 1.0)
    h.register_hook(lambda g: g * 10.0)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [20.0])  # (1 + 1) * 10


def test_hook_needs_requires_grad():
    with pytest.raises(GradError):
        t64([1.0], requires_grad=False).register_hook(lambda g: g)


# -- backward arguments, retain_graph, freed buffers ------------------------------------


def test_backward_with_gradient_for_non_scalar():
    x = t64([1.0, 2.0, 3.0])
    y = x * x
    y.backward(gradient=t64([1.0, 0.5, -1.0], requires_grad=False))
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) * [1.0, 0.5, -1.0])


def test_backward_gradient_is_positional_and_accepts_arrays():
    x = t64([[1.0, 2.0]])
    (x * 3.0).backward(np.array([[2.0, 1.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[6.0, 3.0]])


def test_backward_gradient_shape_mismatch():
    x = t64([1.0, 2.0])
    with pytest.raises(ShapeError):
        (x * 2.0).backward(gradient=t64([1.0, 2.0, 3.0], requires_grad=False))


def test_backward_on_leaf_root():
    x = t64([1.0, 2.0])
    x.backward(gradient=t64([3.0, 4.0], requires_grad=False))
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_retain_graph_allows_second_backward():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_second_backward_without_retain_graph_raises():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GradError, match="second time"):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # the failed call added nothing


def test_backward_frees_the_graph_even_through_ops_that_save_nothing():
    # A deliberate departure from PyTorch (which lets a second backward through nodes
    # that saved nothing): backward drops every node's links to its input tensors, so a
    # kept output (losses.append(loss)) does not keep the activations alive.
    x = t64([1.0, 2.0])
    y = (x + 1.0).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])
    with pytest.raises(GradError, match="second time"):
        y.backward()
    z = (x + 1.0).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_saved_buffers_freed_after_backward():
    x = t64([1.0, 2.0])
    y = x * x
    node = y.grad_fn
    assert node.saved_tensors  # Mul keeps its operands
    y.sum().backward()
    assert node.saved_tensors is None


def test_saved_buffers_kept_with_retain_graph():
    x = t64([1.0, 2.0])
    y = x.exp()
    node = y.grad_fn
    y.sum().backward(retain_graph=True)
    assert node.saved_tensors is not None and len(node.saved_tensors) > 0


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(GradError):
        t64([1.0], requires_grad=False).sum().backward()


def test_backward_non_scalar_without_gradient_raises():
    x = t64([1.0, 2.0])
    with pytest.raises(GradError, match="scalar"):
        (x * 2.0).backward()


def test_backward_on_one_element_non_scalar_is_implicit():
    x = t64([3.0])
    (x * x).backward()  # shape (1,): an implicit gradient of 1 is allowed
    np.testing.assert_allclose(x.grad.numpy(), [6.0])


# -- autograd.grad and autograd.backward ------------------------------------------------


def test_autograd_grad_does_not_touch_dot_grad():
    x = t64([1.0, 2.0])
    (g,) = backprop.autograd.grad((x * x).sum(), x)
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])
    assert x.grad is None
    assert not g.requires_grad


def test_autograd_grad_single_input_returns_tuple():
    x = t64([1.0])
    out = backprop.autograd.grad((x * 3.0).sum(), x)
    assert isinstance(out, tuple) and len(out) == 1


def test_autograd_grad_multiple_inputs_in_order():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    gx, gy = backprop.autograd.grad((x * y * y).sum(), [x, y])
    np.testing.assert_allclose(gx.numpy(), [9.0, 16.0])
    np.testing.assert_allclose(gy.numpy(), 2 * np.array([1.0, 2.0]) * [3.0, 4.0])


def test_autograd_grad_with_grad_outputs(oracle):
    xv, v = np.array([1.0, -2.0, 0.5]), np.array([0.1, 1.0, -3.0])
    x = t64(xv)
    (g,) = backprop.autograd.grad(x.exp() * x, x, grad_outputs=t64(v, requires_grad=False))
    xt = oracle.tensor(xv, requires_grad=True)
    (gt,) = oracle.autograd.grad(xt.exp() * xt, xt, grad_outputs=oracle.tensor(v))
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-12)


def test_autograd_grad_allow_unused():
    x, unused = t64([1.0]), t64([2.0])
    y = (x * 2.0).sum()
    with pytest.raises(GradError, match="allow_unused"):
        backprop.autograd.grad(y, [x, unused], retain_graph=True)
    gx, gu = backprop.autograd.grad(y, [x, unused], allow_unused=True)
    np.testing.assert_allclose(gx.numpy(), [2.0])
    assert gu is None


def test_autograd_grad_non_leaf_input():
    x = t64([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = backprop.autograd.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), 2 * np.array([3.0, 6.0]))
    np.testing.assert_allclose(gx.numpy(), 2 * np.array([3.0, 6.0]) * 3.0)
    assert x.grad is None and h.grad is None


def test_autograd_grad_multiple_outputs_sum():
    x = t64([1.0, 2.0])
    y1, y2 = (x * x).sum(), (x * 5.0).sum()
    (g,) = backprop.autograd.grad([y1, y2], x)
    np.testing.assert_allclose(g.numpy(), [2.0 + 5.0, 4.0 + 5.0])


def test_autograd_grad_multiple_outputs_with_grad_outputs():
    x = t64([1.0, 2.0])
    y1, y2 = x * 2.0, x * x
    go = [t64([1.0, 1.0], requires_grad=False), t64([0.5, -1.0], requires_grad=False)]
    (g,) = backprop.autograd.grad([y1, y2], [x], grad_outputs=go)
    np.testing.assert_allclose(g.numpy(), [2.0 + 0.5 * 2.0, 2.0 - 1.0 * 4.0])


def test_autograd_grad_frees_graph_unless_retained():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    backprop.autograd.grad(y, x, retain_graph=True)
    backprop.autograd.grad(y, x)
    with pytest.raises(GradError, match="second time"):
        backprop.autograd.grad(y, x)


def test_autograd_grad_input_without_grad_raises():
    x = t64([1.0])
    c = t64([1.0], requires_grad=False)
    with pytest.raises(GradError, match=r"inputs\[1\]"):
        backprop.autograd.grad((x * c).sum(), [x, c])


def test_autograd_backward_several_roots():
    x = t64([1.0, 2.0])
    a, b = (x * x).sum(), (x * 3.0).sum()
    backprop.autograd.backward([a, b])
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 3.0, 4.0 + 3.0])


def test_autograd_backward_with_grad_tensors():
    x = t64([1.0, 2.0])
    a, b = x * 2.0, x * x
    backprop.autograd.backward([a, b], [t64([1.0, 0.0], requires_grad=False),
                                        t64([1.0, 1.0], requires_grad=False)])
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 2.0, 0.0 + 4.0])


def test_autograd_backward_roots_that_depend_on_each_other(oracle):
    def run(lib):
        x = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        h = x * 2.0
        y = (h * h).sum()  # y is downstream of h, and both are roots
        lib.autograd.backward([h, y], [lib.ones(2, dtype=lib.float64), None])
        return x.grad.numpy()

    # dL/dh = 1 + 2h = [5, 9];  dL/dx = 2 dL/dh
    np.testing.assert_allclose(run(backprop), [10.0, 18.0])
    np.testing.assert_allclose(run(backprop), run(oracle))


def test_autograd_backward_same_root_twice():
    x = t64([1.0, 2.0])
    y = (x * x).sum()
    backprop.autograd.backward([y, y])
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_autograd_grad_of_a_tensor_with_respect_to_itself():
    h = t64([1.0, 2.0]) * 3.0
    (g,) = backprop.autograd.grad(h, h, grad_outputs=t64([5.0, 7.0], requires_grad=False))
    np.testing.assert_allclose(g.numpy(), [5.0, 7.0])


def test_hook_on_root_sees_the_seed():
    x = t64([1.0, 2.0])
    h = x * 2.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    h.backward(t64([1.0, 3.0], requires_grad=False))
    np.testing.assert_allclose(seen[0], [1.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 6.0])


def test_leaf_hook_runs_under_autograd_grad():
    x = t64([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (g,) = backprop.autograd.grad((x * 5.0).sum(), x)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 5.0])
    assert x.grad is None


# -- graph structure -------------------------------------------------------------------


def test_detach_cuts_the_graph():
    x = t64([1.0, 2.0])
    h = x * 3.0
    d = h.detach()
    assert d.grad_fn is None and not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), h.detach().numpy())
    (d * x).sum().backward()  # d is a constant here
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 6.0])


def test_no_graph_under_no_grad():
    x = t64([1.0, 2.0])
    with backprop.no_grad():
        y = (x * x).exp().sum()
    assert y.grad_fn is None
    assert not y.requires_grad
    assert y.is_leaf
    with pytest.raises(GradError):
        y.backward()


def test_is_leaf():
    x = t64([1.0])
    c = t64([1.0], requires_grad=False)
    assert x.is_leaf and c.is_leaf
    assert not (x * 2.0).is_leaf
    assert (c * 2.0).is_leaf  # nothing to differentiate: a leaf, as in PyTorch
    assert (x * 2.0).detach().is_leaf


def test_grad_fn_names():
    x, y = t64([[1.0, 2.0]]), t64([[3.0], [4.0]])
    assert (x * y).grad_fn.name() == "MulBackward0"
    assert (x + y).grad_fn.name() == "AddBackward0"
    assert (x - y).grad_fn.name() == "SubBackward0"
    assert (x / y).grad_fn.name() == "DivBackward0"
    assert x.sum().grad_fn.name() == "SumBackward0"
    assert x.mean().grad_fn.name() == "MeanBackward0"
    assert x.exp().grad_fn.name() == "ExpBackward0"
    assert (x ** 2).grad_fn.name() == "PowBackward0"
    assert (x @ y).grad_fn.name() == "MmBackward0"
    assert x.reshape(2).grad_fn.name() == "ViewBackward0"
    assert repr((x * y).grad_fn) == "<MulBackward0>"


def test_next_functions():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    z = x * y
    loss = (z.exp()).sum()
    (exp_node, nr), = loss.grad_fn.next_functions
    assert exp_node.name() == "ExpBackward0" and nr == 0
    (mul_node, _), = exp_node.next_functions
    assert mul_node is z.grad_fn
    (a, _), (b, _) = mul_node.next_functions
    # leaves appear as their AccumulateGrad nodes, one per leaf, as in PyTorch
    assert a.name() == "AccumulateGrad" and a.variable is x and b.variable is y
    assert a is (x * 2).grad_fn.next_functions[0][0]


def test_next_functions_skips_constants():
    x = t64([1.0])
    c = t64([2.0], requires_grad=False)
    z = x * c
    (a, _), (b, nr) = z.grad_fn.next_functions
    assert a.variable is x
    assert b is None and nr == 0  # an input that needs no gradient


def test_requires_grad_propagates():
    x = t64([1.0])
    c = t64([1.0], requires_grad=False)
    assert (x * c).requires_grad
    assert (c * x).requires_grad
    assert not (c * c).requires_grad
    assert (c * c).grad_fn is None


# -- leaf gradients own their memory --------------------------------------------------------


def _independent(*arrays):
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)


def test_leaf_grads_do_not_alias_after_add():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    (x + y).sum().backward()
    _independent(x.grad.numpy(), y.grad.numpy())
    x.grad.add_(10.0)
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])


def test_leaf_grads_do_not_alias_when_add_is_the_root():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    v = t64([5.0, 6.0], requires_grad=False)
    (x + y).backward(v)
    _independent(x.grad.numpy(), y.grad.numpy(), v.numpy())
    x.grad.mul_(0.0)
    np.testing.assert_allclose(y.grad.numpy(), [5.0, 6.0])
    np.testing.assert_allclose(v.numpy(), [5.0, 6.0])


def test_leaf_root_grad_does_not_alias_the_seed():
    x = t64([1.0, 2.0])
    v = t64([5.0, 6.0], requires_grad=False)
    x.backward(v)
    x.grad.zero_()
    np.testing.assert_allclose(v.numpy(), [5.0, 6.0])


def test_leaf_grads_do_not_alias_through_views():
    x = t64(np.arange(6.0).reshape(2, 3))
    y = t64(np.arange(6.0).reshape(3, 2))
    z = t64(np.arange(6.0))
    s = x.reshape(6) + y.transpose(0, 1).reshape(6) + z
    s.backward(t64(np.ones(6), requires_grad=False))
    _independent(x.grad.numpy(), y.grad.numpy(), z.grad.numpy())
    x.grad.add_(1.0)
    y.grad.mul_(3.0)
    np.testing.assert_allclose(z.grad.numpy(), np.ones(6))
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 2.0))
    np.testing.assert_allclose(y.grad.numpy(), np.full((3, 2), 3.0))


def test_leaf_grad_from_sum_is_writable():
    x = t64(np.ones((2, 3)))
    x.T.sum().backward()  # sum's gradient is a broadcast (read-only) view
    x.grad.add_(1.0)
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 2.0))


def test_leaf_grad_does_not_alias_saved_values():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    z = x * y
    z.backward(t64([1.0, 1.0], requires_grad=False))
    # x.grad = y's values; they must be a copy, not y's storage
    assert not np.shares_memory(x.grad.numpy(), y.detach().numpy())
    x.grad.zero_()
    np.testing.assert_allclose(y.detach().numpy(), [3.0, 4.0])


class _SameArrayTwice(Function):
    """out = a + b, but backward hands both inputs the very same array (a fresh one)."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output * 1.0
        return g, g


def test_leaf_grads_do_not_alias_when_backward_reuses_an_array():
    x, y = t64([1.0, 2.0]), t64([3.0, 4.0])
    _SameArrayTwice.apply(x, y).sum().backward()
    x.grad.add_(10.0)
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])


# -- dtypes that can't require grad ---------------------------------------------------------


@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_integer_and_bool_tensors_cannot_require_grad(data):
    with pytest.raises(DTypeError):
        backprop.tensor(data, requires_grad=True)
    t = backprop.tensor(data)
    with pytest.raises(DTypeError):
        t.requires_grad_()
    with pytest.raises(DTypeError):
        t.requires_grad = True
    assert not t.requires_grad


def test_requires_grad_false_on_non_leaf_raises():
    h = t64([1.0]) * 2.0
    with pytest.raises(GradError):
        h.requires_grad_(False)


# -- in-place rules --------------------------------------------------------------------------


INPLACE = [
    ("add_", lambda t: t.add_(1.0)),
    ("sub_", lambda t: t.sub_(1.0)),
    ("mul_", lambda t: t.mul_(2.0)),
    ("div_", lambda t: t.div_(2.0)),
    ("zero_", lambda t: t.zero_()),
    ("fill_", lambda t: t.fill_(3.0)),
    ("copy_", lambda t: t.copy_(backprop.tensor([7.0, 8.0], dtype=backprop.float64))),
    ("clamp_", lambda t: t.clamp_(0.0, 1.5)),
    ("addcmul_", lambda t: t.addcmul_(t.detach(), t.detach(), value=0.5)),
    ("addcdiv_", lambda t: t.addcdiv_(t.detach(), t.detach() + 1.0, value=0.5)),
    ("normal_", lambda t: t.normal_()),
    ("uniform_", lambda t: t.uniform_()),
]


@pytest.mark.parametrize("name,op", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_on_leaf_requiring_grad_raises(name, op):
    w = t64([1.0, 2.0])
    with pytest.raises(InplaceError, match=name):
        op(w)
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 2.0])  # unchanged


@pytest.mark.parametrize("name,op", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_on_leaf_allowed_under_no_grad(name, op):
    w = t64([1.0, 2.0])
    with backprop.no_grad():
        out = op(w)
    assert out is w
    assert w.requires_grad and w.is_leaf
    assert not np.array_equal(w.detach().numpy(), [1.0, 2.0])


def test_optimizer_style_update():
    w = t64([2.0, -1.0])
    (w * w).sum().backward()
    before = w
    with backprop.no_grad():
        w -= 0.1 * w.grad
    assert w is before and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.detach().numpy(), [2.0 - 0.4, -1.0 + 0.2])
    w.grad = None
    (w * w).sum().backward()  # the updated leaf still trains
    np.testing.assert_allclose(w.grad.numpy(), [3.2, -1.6])


def test_saved_tensor_modified_in_place_before_backward():
    w = t64([1.0, 2.0], requires_grad=False)
    x = t64([3.0, 4.0])
    y = (w * x).sum()  # Mul saves w to compute x's gradient
    with backprop.no_grad():
        w.add_(1.0)
    with pytest.raises(InplaceError, match="MulBackward"):
        y.backward()


def test_saved_tensor_modified_in_place_without_no_grad():
    w = t64([1.0, 2.0], requires_grad=False)  # no grad: in-place is allowed in grad mode
    x = t64([3.0, 4.0])
    y = (x / w).sum()
    w.mul_(2.0)
    with pytest.raises(InplaceError, match="DivBackward"):
        y.backward()


def test_parameter_stepped_between_forward_and_backward():
    w = t64([1.0, 2.0])
    x = t64([3.0, 4.0], requires_grad=False)
    y = (w.exp() * x).sum()  # Exp saves its output, Mul saves exp(w) and x
    with backprop.no_grad():
        x.mul_(2.0)
    with pytest.raises(InplaceError, match="MulBackward"):
        y.backward()


def test_inplace_on_input_that_is_not_saved_is_fine():
    w = t64([1.0, 2.0], requires_grad=False)
    x = t64([3.0, 4.0])
    y = (w + x).sum()  # Add saves nothing
    w.add_(1.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_inplace_on_non_leaf_with_live_graph():
    x = t64([1.0, 2.0])
    h = x * 2.0
    h.add_(1.0)  # under grad mode it is recorded, as in PyTorch: h.grad_fn is the Add
    assert h.grad_fn.name() == "AddBackward0"
    with backprop.no_grad():  # as in PyTorch: allowed, no backward needs h's value
        h.mul_(3.0)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    e = x.exp()  # Exp keeps its output for backward: the change is caught at backward
    with backprop.no_grad():
        e.mul_(3.0)
    with pytest.raises(InplaceError, match="ExpBackward"):
        e.sum().backward()
    c = x * 1.0
    s = c * c  # Mul saved c: the change is caught when backward runs
    with backprop.no_grad():
        c.add_(1.0)
    with pytest.raises(InplaceError):
        s.sum().backward()


def test_iadd_on_non_leaf_is_in_place_and_recorded():
    x = t64([1.0, 2.0])
    h = x * 2.0
    alias = h
    h += 1.0
    assert h is alias  # as PyTorch's in-place add: every reference sees the change
    np.testing.assert_allclose(alias.detach().numpy(), [3.0, 5.0])
    h *= h  # Mul needs h's old value for both gradients: kept although h is overwritten
    h.sum().backward()
    # h = (2x + 1)^2 ;  dh/dx = 4 (2x + 1)
    np.testing.assert_allclose(x.grad.numpy(), 4 * (2 * np.array([1.0, 2.0]) + 1))


def test_iadd_on_leaf_requiring_grad_rebinds():
    x = t64([1.0, 2.0])
    leaf = x
    x += 1.0
    assert x is not leaf and not x.is_leaf
    np.testing.assert_allclose(leaf.detach().numpy(), [1.0, 2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), [4.0, 6.0])


def test_iadd_under_no_grad_is_in_place():
    x = t64([1.0, 2.0])
    same = x
    with backprop.no_grad():
        x += 1.0
        x *= 2.0
        x /= 4.0
        x -= 1.0
    assert x is same
    np.testing.assert_allclose(x.detach().numpy(), [0.0, 0.5])


def test_iadd_on_plain_tensor_is_in_place():
    c = t64([1.0, 2.0], requires_grad=False)
    same = c
    c += 1.0
    assert c is same
    np.testing.assert_allclose(c.numpy(), [2.0, 3.0])


def test_inplace_through_detached_alias_is_detected():
    w = t64([1.0, 2.0], requires_grad=False)
    x = t64([3.0, 4.0])
    y = (w * x).sum()
    w.detach().add_(1.0)
    with pytest.raises(InplaceError):
        y.backward()


def test_inplace_through_a_temporary_view_is_detected():
    # the view is gone by the time backward runs: the log keeps its owner and byte range
    w = t64([1.0, 2.0], requires_grad=False)
    x = t64([3.0, 4.0])
    y = (w * x).sum()
    w.detach()[0:1].add_(1.0)
    with pytest.raises(InplaceError, match="MulBackward0: input 0 of shape \\(2,\\)"):
        y.backward()


@pytest.mark.parametrize("part", [slice(None), slice(1, 2)])
def test_inplace_through_a_temporary_wrapper_of_a_foreign_buffer_is_detected(part):
    # memory owned by a bytearray: each np.frombuffer is a new, temporary ndarray over it,
    # so no ndarray owner outlives the change; the log keeps the byte range instead
    buf = bytearray(np.array([1.0, 2.0, 3.0]).tobytes())
    w = backprop.from_numpy(np.frombuffer(buf, dtype=np.float64))
    x = t64([3.0, 4.0, 5.0])
    y = (w * x).sum()
    backprop.from_numpy(np.frombuffer(buf, dtype=np.float64)[part]).add_(1.0)
    with pytest.raises(InplaceError, match="MulBackward0: input 0 of shape \\(3,\\)"):
        y.backward()


def test_inplace_on_a_disjoint_part_of_a_foreign_buffer_is_fine():
    buf = bytearray(np.array([1.0, 2.0, 3.0, 4.0]).tobytes())
    w = backprop.from_numpy(np.frombuffer(buf, dtype=np.float64))
    x = t64([5.0, 6.0])
    y = (w[2:] * x).sum()          # saves a view of the buffer's last two elements
    backprop.from_numpy(np.frombuffer(buf, dtype=np.float64)[0:2]).mul_(10.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_inplace_on_a_disjoint_part_of_the_same_array_is_fine():
    w = t64([1.0, 2.0, 3.0, 4.0], requires_grad=False)
    x = t64([5.0, 6.0])
    y = (w[2:] * x).sum()          # saves a view of w's last two elements
    w.detach()[0:2].mul_(10.0)     # changes the first two only
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    z = (w[2:] * x).sum()
    w.detach()[1:3].add_(1.0)      # overlaps the saved part
    with pytest.raises(InplaceError):
        z.backward()
