"""The composites in backprop.functional: softmax, log_softmax, dropout."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop
import backprop.functional as F
from backprop.errors import DTypeError, IndexOutOfRange

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")
INF = math.inf


# -- softmax / log_softmax --------------------------------------------------------------------

def test_tensor_methods_are_installed():
    x = backprop.randn(2, 3)
    np.testing.assert_allclose(x.softmax(1).numpy(), F.softmax(x, 1).numpy())
    np.testing.assert_allclose(x.log_softmax(dim=-1).numpy(), F.log_softmax(x, -1).numpy())
    assert set(F.__all__) == {"softmax", "log_softmax", "dropout"}


@needs_torch
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("scale", [1.0, 1e4, 1e30])
def test_huge_float32_logits_are_stable_and_match_torch(name, scale):
    data = (np.random.default_rng(0).standard_normal((4, 7)) * scale).astype(np.float32)
    a = backprop.tensor(data, requires_grad=True)
    b = torch.tensor(data, requires_grad=True)
    ours, theirs = getattr(F, name)(a, 1), getattr(torch, name)(b, 1)
    assert ours.dtype == backprop.float32
    assert np.isfinite(ours.detach().numpy()).all()
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    v = np.random.default_rng(1).standard_normal(data.shape).astype(np.float32)
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_softmax_rows_sum_to_one_and_keep_dtype():
    x = backprop.randn(3, 5, dtype=backprop.float64)
    s = F.softmax(x, 0)
    assert s.dtype == backprop.float64
    np.testing.assert_allclose(s.numpy().sum(0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, 0).exp().numpy(), s.numpy(), rtol=1e-12)


@needs_torch
def test_masked_logits_like_torch():
    data = np.array([[-INF, 0.0, 1.0], [-INF, -INF, 2.0]], dtype=np.float32)
    for name in ("softmax", "log_softmax"):
        ours = getattr(F, name)(backprop.tensor(data), 1).numpy()
        theirs = getattr(torch, name)(torch.tensor(data), 1).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    a = backprop.tensor(data, requires_grad=True)
    b = torch.tensor(data, requires_grad=True)
    v = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=np.float32)
    F.softmax(a, 1).backward(backprop.tensor(v))
    torch.softmax(b, 1).backward(torch.tensor(v))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-6)


def test_softmax_gradient_of_a_sum_is_zero():
    x = backprop.randn(4, 3, dtype=backprop.float64, requires_grad=True)
    F.softmax(x, 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 0.0, atol=1e-12)


def test_softmax_errors():
    with pytest.raises(IndexOutOfRange, match=r"^softmax: dimension out of range"):
        F.softmax(backprop.randn(2, 3), 2)
    with pytest.raises(IndexOutOfRange, match=r"^log_softmax: dimension out of range"):
        backprop.randn(2, 3).log_softmax(-3)
    with pytest.raises(DTypeError, match=r"softmax: expected a floating-point tensor"):
        F.softmax(backprop.tensor([1, 2]), 0)
    with pytest.raises(TypeError):
        F.softmax(backprop.randn(3))  # dim is required


def test_softmax_dtype_argument():
    x = backprop.randn(2, 3)
    assert F.softmax(x, 1, dtype=backprop.float64).dtype == backprop.float64
    assert x.log_softmax(1, dtype=backprop.float64).dtype == backprop.float64


@needs_torch
@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_log_softmax_matches_torch_on_random_shapes(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    scale = data.draw(st.sampled_from([1.0, 100.0, 1e6]))
    x = np.random.default_rng(data.draw(st.integers(0, 999))).standard_normal(shape) * scale
    a, b = backprop.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = F.log_softmax(a, dim), torch.log_softmax(b, dim)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10,
                               atol=1e-9)
    v = np.random.default_rng(0).standard_normal(shape)
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-10)


# -- dropout ------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, "0.5", True])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"dropout: probability p has to be between 0 and 1, "
                                         rf"but got {p}"):
        F.dropout(backprop.ones(3), p)


def test_dropout_identity_when_not_training_or_p_zero():
    x = backprop.randn(5, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_p_one_gives_zeros_and_zero_gradient():
    x = backprop.randn(4, 3, requires_grad=True)
    out = F.dropout(x, 1.0)
    assert np.all(out.detach().numpy() == 0) and out.dtype == backprop.float32
    out.sum().backward()
    assert np.all(x.grad.numpy() == 0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    x = backprop.ones(200_000)
    out = F.dropout(x, p).numpy()
    assert out.dtype == np.float32
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.02  # inverted dropout preserves the mean


def test_dropout_repeats_with_the_seed():
    backprop.manual_seed(7)
    a = F.dropout(backprop.ones(50), 0.5).numpy()
    b = F.dropout(backprop.ones(50), 0.5).numpy()
    backprop.manual_seed(7)
    c = F.dropout(backprop.ones(50), 0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


def test_dropout_gradient_is_the_mask_over_keep_probability():
    p = 0.3
    x = backprop.randn(30, 20, dtype=backprop.float64, requires_grad=True)
    out = F.dropout(x, p)
    assert out.dtype == backprop.float64
    out.sum().backward()
    mask = out.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask / (1 - p), rtol=1e-15)
    np.testing.assert_allclose(out.detach().numpy(), x.detach().numpy() * mask / (1 - p))


def test_dropout_inplace_and_dtype_checks():
    x = backprop.ones(10)
    assert F.dropout(x, 0.5, inplace=True) is x
    assert set(np.unique(x.numpy())) <= {0.0, 2.0}
    with pytest.raises(DTypeError, match=r"dropout: expected a floating-point tensor"):
        F.dropout(backprop.tensor([1, 2, 3]), 0.5)
