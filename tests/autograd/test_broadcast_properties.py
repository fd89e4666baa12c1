"""Property tests: broadcasting gradients and reductions over random shapes and dims.

Expected values are computed with NumPy directly (and, where installed, checked
against PyTorch too). Examples are derandomized so every run is the same.
"""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import backprop  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def sum_to_shape(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Reduce a broadcast gradient to ``shape`` element by element (independent of the engine)."""
    out = np.zeros(shape)
    padded = (1,) * (g.ndim - len(shape)) + tuple(shape)
    for idx in np.ndindex(*g.shape):
        target = tuple(0 if p == 1 else i for i, p in zip(idx, padded))[g.ndim - len(shape):]
        out[target] += g[idx]
    return out


@st.composite
def broadcast_shapes(draw):
    """Two shapes that broadcast together: a common base with leading dims dropped and some 1s."""
    ndim = draw(st.integers(0, 4))
    base = draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim))

    def derive():
        drop = draw(st.integers(0, ndim))
        dims = base[drop:]
        ones = draw(st.lists(st.booleans(), min_size=len(dims), max_size=len(dims)))
        return tuple(1 if o else d for d, o in zip(dims, ones))

    return derive(), derive(), draw(st.integers(0, 2 ** 32 - 1))


@SETTINGS
@given(broadcast_shapes())
def test_binary_broadcast_gradients(case):
    shape_a, shape_b, seed = case
    rng = np.random.default_rng(seed)
    av = rng.standard_normal(shape_a)
    bv = rng.uniform(0.5, 2.0, shape_b) * rng.choice([-1.0, 1.0], shape_b)
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    wv = rng.standard_normal(out_shape)

    a = backprop.tensor(av, requires_grad=True)
    b = backprop.tensor(bv, requires_grad=True)
    w = backprop.tensor(wv)
    f = a * b + a / b - b
    assert f.shape == out_shape
    np.testing.assert_allclose(f.detach().numpy(), av * bv + av / bv - bv, rtol=1e-12)
    (f * w).sum().backward()

    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    ga = sum_to_shape(np.broadcast_to((bv + 1 / bv), out_shape) * wv, shape_a)
    gb = sum_to_shape(np.broadcast_to(av - av / bv ** 2 - 1.0, out_shape) * wv, shape_b)
    np.testing.assert_allclose(a.grad.numpy(), ga, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), gb, rtol=1e-10, atol=1e-12)

    if torch is not None:
        at = torch.tensor(av, requires_grad=True)
        bt = torch.tensor(bv, requires_grad=True)
        ((at * bt + at / bt - bt) * torch.tensor(wv)).sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), at.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.grad.numpy(), bt.grad.numpy(), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(broadcast_shapes())
def test_same_tensor_broadcast_against_itself_reshaped(case):
    shape_a, shape_b, seed = case
    rng = np.random.default_rng(seed)
    av = rng.standard_normal(shape_a)
    a = backprop.tensor(av, requires_grad=True)
    c = backprop.tensor(rng.standard_normal(shape_b))
    # a is used twice: once broadcast against c, once alone
    loss = (a * c).sum() + (a * a).sum()
    loss.backward()
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    expected = sum_to_shape(np.broadcast_to(c.numpy(), out_shape), shape_a) + 2 * av
    np.testing.assert_allclose(a.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


@st.composite
def reductions(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    span = max(ndim, 1)
    axes = draw(st.lists(st.integers(0, span - 1), unique=True, max_size=span))
    negative = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
    dims = tuple(ax - span if neg else ax for ax, neg in zip(axes, negative))
    form = draw(st.sampled_from(["none", "int", "tuple"]))
    if form == "none" or not dims:
        dim = None
    elif form == "int":
        dim = dims[0]
    else:
        dim = dims
    keepdim = draw(st.booleans())
    return shape, dim, keepdim, draw(st.integers(0, 2 ** 32 - 1))


def _np_axes(dim, ndim):
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else dim
    if ndim == 0:
        return None  # a 0-d tensor reduced over dim 0 / -1 is itself
    return tuple(d % ndim for d in dims)


@SETTINGS
@given(reductions(), st.sampled_from(["sum", "mean"]))
def test_reductions_match_numpy(case, op):
    shape, dim, keepdim, seed = case
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal(shape)
    x = backprop.tensor(xv, requires_grad=True)
    out = getattr(x, op)(dim=dim, keepdim=keepdim)

    axes = _np_axes(dim, len(shape))
    np_keep = keepdim and len(shape) > 0
    expected = getattr(np, op)(xv, axis=axes, keepdims=np_keep)
    assert out.shape == np.shape(expected), (shape, dim, keepdim)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12, atol=1e-14)

    wv = rng.standard_normal(out.shape)
    (out * backprop.tensor(wv)).sum().backward()
    assert x.grad.shape == shape
    # d/dx Σ w·reduce(x): w broadcast back over the reduced axes (divided by n for mean)
    reduced = tuple(range(len(shape))) if axes is None else axes
    w_full = wv if (np_keep or not reduced) else np.expand_dims(wv, reduced)
    expected_grad = np.broadcast_to(w_full, shape).astype(np.float64)
    if op == "mean":
        n = int(np.prod([shape[a] for a in reduced])) if shape else 1
        expected_grad = expected_grad / n
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-14)

    if torch is not None:
        xt = torch.tensor(xv, requires_grad=True)
        ot = getattr(xt, op)(dim=dim, keepdim=keepdim)
        assert tuple(ot.shape) == out.shape
        (ot * torch.tensor(wv)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 2 ** 32 - 1))
def test_reshape_and_permute_gradients_return_to_input_shape(shape, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    xv = rng.standard_normal(shape)
    perm = tuple(rng.permutation(len(shape)).tolist())
    x = backprop.tensor(xv, requires_grad=True)
    y = x.permute(*perm).reshape(-1)
    wv = rng.standard_normal(y.shape)
    (y * backprop.tensor(wv)).sum().backward()
    expected = np.transpose(wv.reshape(np.transpose(xv, perm).shape), np.argsort(perm))
    np.testing.assert_allclose(x.grad.numpy(), expected)
