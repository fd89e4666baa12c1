"""nn.functional: the functional forms against PyTorch, and the fused normalisation primitives."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop.autograd import gradcheck
from backprop.nn import functional as F
from backprop.nn import loss as loss_mod

from tests.nn.common import assert_close


def _t(arr, grad=True):
    return backprop.tensor(arr, requires_grad=grad)


def test_exports_cover_torch_names():
    for name in F.__all__:
        assert callable(getattr(F, name)), name
    for name in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss"):
        assert getattr(F, name) is getattr(loss_mod, name)
    assert F.linear is backprop.linear and F.conv2d is backprop.conv2d


@pytest.mark.parametrize("name,kwargs", [
    ("relu", {}), ("leaky_relu", {"negative_slope": 0.3}), ("sigmoid", {}), ("tanh", {}),
    ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("elu", {"alpha": 0.5}),
    ("softplus", {"beta": 2.0, "threshold": 3.0}), ("silu", {}), ("softmax", {"dim": 0}),
    ("log_softmax", {"dim": -1}), ("normalize", {}), ("normalize", {"p": 1.0, "dim": 0}),
])
def test_activations_match_torch(oracle, rng, name, kwargs):
    x = rng.standard_normal((4, 5))
    a, b = _t(x), oracle.tensor(x, requires_grad=True)
    out_a = getattr(F, name)(a, **kwargs)
    out_b = getattr(oracle.nn.functional, name)(b, **kwargs)
    assert_close(out_a, out_b)
    g = rng.standard_normal(x.shape)
    out_a.backward(backprop.tensor(g))
    out_b.backward(oracle.tensor(g))
    assert_close(a.grad, b.grad)


def test_inplace_flag_is_accepted_and_input_is_kept():
    x = backprop.tensor([-1.0, 2.0])
    out = F.relu(x, inplace=True)
    np.testing.assert_array_equal(out.numpy(), [0.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), [-1.0, 2.0])
    F.leaky_relu(x, 0.1, True), F.elu(x, 1.0, True), F.silu(x, True)


def test_softmax_implicit_dim(oracle, rng):
    x = rng.standard_normal((3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax"):
        ours = F.log_softmax(_t(x, False))
    with pytest.warns(UserWarning):
        theirs = oracle.nn.functional.log_softmax(oracle.tensor(x))
    assert_close(ours, theirs)


def test_dropout_functional():
    x = backprop.ones(10)
    assert F.dropout(x, 0.5, training=False) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 2.0)


def test_one_hot_matches_torch(oracle):
    idx = np.array([[0, 3], [2, 1]])
    ours = F.one_hot(backprop.tensor(idx))
    theirs = oracle.nn.functional.one_hot(oracle.tensor(idx))
    assert ours.dtype == backprop.int64
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(F.one_hot(backprop.tensor([1]), 4).numpy(), [[0, 1, 0, 0]])
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(backprop.tensor([-1]))
    with pytest.raises(ValueError, match="smaller than num_classes"):
        F.one_hot(backprop.tensor([3]), 3)
    with pytest.raises(backprop.DTypeError):
        F.one_hot(backprop.tensor([1.0]))


# -- adaptive average pooling ------------------------------------------------------------------
@pytest.mark.parametrize("shape,size", [
    ((2, 3, 8, 8), 1), ((2, 3, 8, 8), 4), ((1, 2, 7, 5), (3, 2)), ((1, 2, 5, 7), (5, 7)),
    ((1, 1, 3, 3), (5, 4)), ((2, 10, 10), (3, None)), ((1, 1, 13, 11), (6, 4)),
])
def test_adaptive_avg_pool2d_matches_torch(oracle, rng, shape, size):
    x = rng.standard_normal(shape)
    a, b = _t(x), oracle.tensor(x, requires_grad=True)
    out_a = F.adaptive_avg_pool2d(a, size)
    out_b = oracle.nn.functional.adaptive_avg_pool2d(b, size)
    assert_close(out_a, out_b, atol=1e-12)
    g = rng.standard_normal(tuple(out_a.shape))
    out_a.backward(backprop.tensor(g))
    out_b.backward(oracle.tensor(g))
    assert_close(a.grad, b.grad, atol=1e-12)


def test_adaptive_avg_pool2d_errors():
    with pytest.raises(backprop.ShapeError, match="positive"):
        F.adaptive_avg_pool2d(backprop.randn(1, 1, 4, 4), 0)
    with pytest.raises(backprop.DTypeError):
        F.adaptive_avg_pool2d(backprop.zeros(1, 1, 4, 4, dtype=backprop.int64), 2)


# -- normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 2, 4)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_functional_training_matches_torch(oracle, rng, shape, affine):
    x = rng.standard_normal(shape) * 3 + 1
    c = shape[1]
    w, bias = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    a = _t(x)
    ta = oracle.tensor(x, requires_grad=True)
    ours_stats = (backprop.tensor(rm.copy()), backprop.tensor(rv.copy()))
    theirs_stats = (oracle.tensor(rm.copy()), oracle.tensor(rv.copy()))
    params = (_t(w), _t(bias)) if affine else (None, None)
    tparams = (oracle.tensor(w, requires_grad=True),
               oracle.tensor(bias, requires_grad=True)) if affine else (None, None)
    out = F.batch_norm(a, *ours_stats, *params, training=True, momentum=0.3, eps=1e-3)
    tout = oracle.nn.functional.batch_norm(ta, *theirs_stats, *tparams, training=True,
                                           momentum=0.3, eps=1e-3)
    assert_close(out, tout)
    assert_close(ours_stats[0], theirs_stats[0])
    assert_close(ours_stats[1], theirs_stats[1])
    g = rng.standard_normal(shape)
    out.backward(backprop.tensor(g))
    tout.backward(oracle.tensor(g))
    assert_close(a.grad, ta.grad, atol=1e-9)
    if affine:
        assert_close(params[0].grad, tparams[0].grad)
        assert_close(params[1].grad, tparams[1].grad)


def test_batch_norm_functional_eval_matches_torch(oracle, rng):
    x = rng.standard_normal((5, 3, 2))
    rm, rv, w, b = rng.standard_normal(3), rng.random(3) + 0.1, rng.standard_normal(3), \
        rng.standard_normal(3)
    out = F.batch_norm(backprop.tensor(x), backprop.tensor(rm), backprop.tensor(rv),
                       backprop.tensor(w), backprop.tensor(b))
    tout = oracle.nn.functional.batch_norm(oracle.tensor(x), oracle.tensor(rm),
                                           oracle.tensor(rv), oracle.tensor(w), oracle.tensor(b))
    assert_close(out, tout)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(backprop.tensor(x), None, None)
    with pytest.raises(backprop.ShapeError, match="weight"):
        F.batch_norm(backprop.tensor(x), None, None, backprop.ones(4), training=True)


@pytest.mark.parametrize("shape,norm", [((3, 5), (5,)), ((2, 3, 4), (3, 4)), ((7,), (7,))])
def test_layer_norm_functional_matches_torch(oracle, rng, shape, norm):
    x = rng.standard_normal(shape) * 2 - 1
    w, b = rng.standard_normal(norm), rng.standard_normal(norm)
    a, wa, ba = _t(x), _t(w), _t(b)
    ta, tw, tb = (oracle.tensor(v, requires_grad=True) for v in (x, w, b))
    out = F.layer_norm(a, norm, wa, ba, eps=1e-4)
    tout = oracle.nn.functional.layer_norm(ta, norm, tw, tb, eps=1e-4)
    assert_close(out, tout)
    g = rng.standard_normal(shape)
    out.backward(backprop.tensor(g))
    tout.backward(oracle.tensor(g))
    for ours, theirs in ((a, ta), (wa, tw), (ba, tb)):
        assert_close(ours.grad, theirs.grad, atol=1e-9)


@pytest.mark.parametrize("with_weight,with_bias", [(True, True), (True, False), (False, True),
                                                   (False, False)])
def test_normalisation_primitives_gradcheck(rng, with_weight, with_bias):
    x = _t(rng.standard_normal((4, 3, 2)))
    w = _t(rng.standard_normal(3)) if with_weight else None
    b = _t(rng.standard_normal(3)) if with_bias else None
    inputs = tuple(t for t in (x, w, b) if t is not None)

    def unpack(ts):
        it = iter(ts)
        return next(it), next(it) if with_weight else None, next(it) if with_bias else None

    def bn_train(*ts):
        return F.batch_norm(*unpack(ts)[:1], None, None, *unpack(ts)[1:], training=True)

    rm, rv = backprop.tensor(rng.standard_normal(3)), backprop.tensor(rng.random(3) + 0.5)

    def bn_eval(*ts):
        return F.batch_norm(unpack(ts)[0], rm, rv, *unpack(ts)[1:], training=False)

    lw = _t(rng.standard_normal((3, 2))) if with_weight else None
    lb = _t(rng.standard_normal((3, 2))) if with_bias else None
    ln_inputs = tuple(t for t in (x, lw, lb) if t is not None)

    def ln(*ts):
        xx, ww, bb = unpack(ts)
        return F.layer_norm(xx, (3, 2), ww, bb)

    assert gradcheck(bn_train, inputs)
    assert gradcheck(bn_eval, inputs)
    assert gradcheck(ln, ln_inputs)


def test_layer_norm_errors():
    with pytest.raises(backprop.ShapeError, match=r"expected input with shape \[\*, 4\]"):
        F.layer_norm(backprop.randn(2, 3), 4)
    with pytest.raises(backprop.ShapeError, match="weight"):
        F.layer_norm(backprop.randn(2, 3), 3, weight=backprop.ones(4))


def test_batch_norm_training_needs_more_than_one_value():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(backprop.randn(1, 4), None, None, training=True)
