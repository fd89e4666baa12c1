"""Losses (backprop.nn.loss): every loss and reduction against torch (values and gradients of
input and target, float64), gradchecks, PyTorch's shape rules and warnings, and the modules."""
import warnings

import numpy as np
import pytest

import backprop
from backprop.autograd import gradcheck
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError
from backprop.nn import loss as L
from backprop.nn.module import Module

REDUCTIONS = ["mean", "sum", "none"]


def _bp(a, grad=None):
    a = np.asarray(a)
    return backprop.tensor(a, requires_grad=a.dtype == np.float64 if grad is None else grad)


def _th(torch, a, grad=None):
    a = np.asarray(a)
    return torch.tensor(a, requires_grad=a.dtype == np.float64 if grad is None else grad)


def _kw_bp(kw):
    return {k: _bp(v, grad=False) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


def _kw_th(torch, kw):
    return {k: _th(torch, v, grad=False) if isinstance(v, np.ndarray) else v
            for k, v in kw.items()}


def _compare(torch, name, inputs, rtol=1e-10, atol=1e-12, **kw):
    """Run F.<name> in both libraries on the same arrays; compare the loss and the gradient
    of every float64 input (input and, where it is float, target)."""
    ours_in = [_bp(a) for a in inputs]
    ref_in = [_th(torch, a) for a in inputs]
    ours = getattr(L, name)(*ours_in, **_kw_bp(kw))
    ref = getattr(torch.nn.functional, name)(*ref_in, **_kw_th(torch, kw))
    assert tuple(ours.shape) == tuple(ref.shape)
    assert ours.dtype.name == str(ref.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.detach().numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    v = np.random.default_rng(5).standard_normal(tuple(ours.shape))
    ours.backward(backprop.tensor(v))
    ref.backward(torch.tensor(v))
    for i, (a, b) in enumerate(zip(ours_in, ref_in)):
        if b.requires_grad:
            assert a.grad is not None, f"{name}: no gradient for input {i}"
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name}: gradient of input {i}")


# -- regression losses ---------------------------------------------------------------------

REGRESSION = [
    ("mse_loss", {}),
    ("l1_loss", {}),
    ("huber_loss", {}),
    ("huber_loss", {"delta": 0.4}),
    ("smooth_l1_loss", {}),
    ("smooth_l1_loss", {"beta": 0.3}),
    ("smooth_l1_loss", {"beta": 0.0}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw", REGRESSION, ids=[f"{n}{k}" for n, k in REGRESSION])
def test_regression_losses_match_torch(oracle, rng, name, kw, reduction):
    x = rng.standard_normal((4, 3, 2))
    t = rng.standard_normal((4, 3, 2)) * 1.5
    _compare(oracle, name, [x, t], reduction=reduction, **kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_regression_losses_match_torch(oracle, rng, name, reduction):
    # torch 2.13's elementwise weight: mean is Σ w·l / Σ w for mse and l1, mean(w·l) for huber
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    _compare(oracle, name, [x, t], reduction=reduction, weight=rng.uniform(0.1, 2.0, (5, 3)))


def test_regression_losses_at_their_kinks_match_torch(oracle):
    # differences of exactly 0 (l1) and exactly ±delta / ±beta (huber, smooth l1)
    x = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 2.0])
    t = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    _compare(oracle, "l1_loss", [x, t], reduction="sum")
    _compare(oracle, "huber_loss", [x, t], reduction="sum")
    _compare(oracle, "huber_loss", [x, t], reduction="sum", delta=0.5)
    _compare(oracle, "smooth_l1_loss", [x, t], reduction="sum", beta=0.5)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"])
def test_broadcastable_shapes_warn_like_torch(oracle, rng, name):
    x, t = rng.standard_normal((4, 1)), rng.standard_normal(4)
    with pytest.warns(UserWarning, match=r"Using a target size \(4,\) that is different to the "
                                         r"input size \(4, 1\)"):
        ours = getattr(L, name)(_bp(x), _bp(t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(oracle.nn.functional, name)(oracle.tensor(x), oracle.tensor(t))
    np.testing.assert_allclose(ours.item(), ref.item(), rtol=1e-12)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"])
def test_non_broadcastable_shapes_raise(name):
    with pytest.raises(ShapeError, match=rf"{name}: target of shape \(4,\) cannot be broadcast "
                                         rf"with input of shape \(3,\)"):
        getattr(L, name)(backprop.zeros(3), backprop.zeros(4))


def test_regression_loss_errors():
    x = backprop.zeros(3)
    with pytest.raises(ValueError, match="huber_loss: delta must be a positive number, got 0"):
        L.huber_loss(x, x, delta=0)
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be a non-negative number"):
        L.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="mse_loss: 'elementwise_mean' is not a valid value"):
        L.mse_loss(x, x, reduction="elementwise_mean")
    with pytest.raises(ShapeError, match=r"mse_loss: weights and input must have the same size"):
        L.mse_loss(x, x, weight=backprop.ones(2))
    with pytest.raises(DTypeError, match="l1_loss: expected input to be a floating-point"):
        L.l1_loss(backprop.tensor([1, 2]), backprop.tensor([1, 2]))
    with pytest.raises(TypeError, match="mse_loss: expected target to be a Tensor, got list"):
        L.mse_loss(x, [0.0, 0.0, 0.0])


def test_mixed_dtypes_promote_like_torch(oracle):
    a = backprop.zeros(3, dtype=backprop.float64)
    assert L.mse_loss(a, backprop.ones(3)).dtype == backprop.float64
    assert L.l1_loss(backprop.zeros(3), backprop.ones(3)).dtype == backprop.float32


def test_legacy_size_average_and_reduce(oracle, rng):
    x, t = _bp(rng.standard_normal(4), False), _bp(rng.standard_normal(4), False)
    with pytest.warns(UserWarning, match="please use reduction='sum' instead"):
        summed = L.mse_loss(x, t, size_average=False)
    np.testing.assert_allclose(summed.item(), L.mse_loss(x, t, reduction="sum").item())
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert L.l1_loss(x, t, reduce=False).shape == (4,)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert L.CrossEntropyLoss(size_average=False).reduction == "sum"


# -- binary cross-entropy -------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(oracle, rng, reduction):
    p, t = rng.uniform(0.02, 0.98, (4, 3)), rng.uniform(0, 1, (4, 3))
    _compare(oracle, "binary_cross_entropy", [p, t], reduction=reduction)
    _compare(oracle, "binary_cross_entropy", [p, t], reduction=reduction,
             weight=rng.uniform(0.5, 2.0, 3))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(oracle, rng, reduction):
    x, t = rng.standard_normal((4, 3)) * 5, rng.uniform(0, 1, (4, 3))
    _compare(oracle, "binary_cross_entropy_with_logits", [x, t], reduction=reduction)
    _compare(oracle, "binary_cross_entropy_with_logits", [x, t], reduction=reduction,
             weight=rng.uniform(0.5, 2.0, (4, 1)), pos_weight=rng.uniform(0.5, 4.0, 3))
    # multi-label images: pos_weight per class, broadcast over (C, 1, 1)
    x, t = rng.standard_normal((2, 3, 2, 2)), (rng.random((2, 3, 2, 2)) > 0.5).astype(float)
    _compare(oracle, "binary_cross_entropy_with_logits", [x, t], reduction=reduction,
             pos_weight=rng.uniform(0.5, 4.0, (3, 1, 1)))


def test_binary_losses_need_equal_shapes():
    with pytest.raises(ShapeError, match=r"binary_cross_entropy: target size \(4,\) differs "
                                         r"from input size \(4, 1\)"):
        L.binary_cross_entropy(backprop.full((4, 1), 0.5), backprop.zeros(4))
    with pytest.raises(ShapeError, match=r"target size \(4,\) must be the same as input size"):
        L.binary_cross_entropy_with_logits(backprop.zeros(4, 1), backprop.zeros(4))


# -- cross-entropy and nll ---------------------------------------------------------------------

def _classes(rng, shape, classes, ignore=0.0, ignore_index=-100):
    t = rng.integers(0, classes, shape)
    if ignore:
        t = np.where(rng.random(shape) < ignore, ignore_index, t)
        t.flat[0] = 0
    return t


CE_CONFIGS = [
    {},
    {"weight": "w"},
    {"ignore": 0.3},
    {"ignore": 0.3, "weight": "w"},
    {"label_smoothing": 0.2},
    {"label_smoothing": 0.1, "weight": "w", "ignore": 0.3},
    {"ignore": 0.3, "ignore_index": 1},
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (2, 4, 3, 2), (4,)], ids=str)
@pytest.mark.parametrize("config", CE_CONFIGS, ids=lambda c: "-".join(map(str, c.items())) or
                         "plain")
def test_cross_entropy_class_indices_match_torch(oracle, rng, config, shape, reduction):
    config = dict(config)
    classes = shape[0] if len(shape) == 1 else shape[1]
    ignore, ignore_index = config.pop("ignore", 0.0), config.get("ignore_index", -100)
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    t = _classes(rng, tshape, classes, ignore if tshape else 0.0, ignore_index)
    if config.get("weight") == "w":
        config["weight"] = rng.uniform(0.2, 2.0, classes)
    x = rng.standard_normal(shape) * 2
    _compare(oracle, "cross_entropy", [x, t], reduction=reduction, **config)
    if not config.get("label_smoothing"):
        logp = x - np.log(np.exp(x).sum(axis=0 if len(shape) == 1 else 1, keepdims=True))
        _compare(oracle, "nll_loss", [logp, t], reduction=reduction, **config)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 2), (4,)], ids=str)
@pytest.mark.parametrize("config", [{}, {"weight": "w"}, {"label_smoothing": 0.3},
                                    {"label_smoothing": 0.1, "weight": "w"}],
                         ids=lambda c: "-".join(map(str, c.items())) or "plain")
def test_cross_entropy_probabilities_match_torch(oracle, rng, config, shape, reduction):
    config = dict(config)
    axis = 0 if len(shape) == 1 else 1
    if config.get("weight") == "w":
        config["weight"] = rng.uniform(0.2, 2.0, shape[axis])
    x = rng.standard_normal(shape)
    p = rng.random(shape) + 0.01
    p /= p.sum(axis=axis, keepdims=True)
    _compare(oracle, "cross_entropy", [x, p], reduction=reduction, **config)


def test_cross_entropy_errors_through_nn():
    with pytest.raises(IndexOutOfRange, match="cross_entropy: target 12 is out of bounds for "
                                              "10 classes"):
        L.cross_entropy(backprop.zeros(2, 10), backprop.tensor([1, 12]))
    with pytest.raises(ShapeError, match=r"nll_loss: expected input batch size \(2\) to match "
                                         r"target batch size \(3\)"):
        L.NLLLoss()(backprop.zeros(2, 10), backprop.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0, got -0.1"):
        L.CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(ShapeError, match=r"CrossEntropyLoss: weight must be 1-D with one entry "
                                         r"per class, got shape \(2, 5\)"):
        L.CrossEntropyLoss(weight=backprop.ones(2, 5))
    with pytest.raises(ValueError, match="MSELoss: 'avg' is not a valid value for reduction"):
        L.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="HuberLoss: delta must be a positive number, got -1"):
        L.HuberLoss(delta=-1)
    with pytest.raises(TypeError, match="BCELoss: weight must be a Tensor or None, got list"):
        L.BCELoss(weight=[1.0, 2.0])


# -- gradchecks ------------------------------------------------------------------------------

def _gradcheck(fn, *arrays):
    tensors = tuple(_bp(a) for a in arrays)
    assert gradcheck(fn, tensors)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_every_loss(rng, reduction):
    x = rng.standard_normal((3, 4))
    t = rng.standard_normal((3, 4))
    kw = {"reduction": reduction}
    _gradcheck(lambda a, b: L.mse_loss(a, b, **kw), x, t)
    _gradcheck(lambda a, b: L.l1_loss(a, b, **kw), x, t)
    _gradcheck(lambda a, b: L.huber_loss(a, b, delta=0.7, **kw), x, t)
    _gradcheck(lambda a, b: L.smooth_l1_loss(a, b, beta=0.6, **kw), x, t)
    p, q = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))
    w = _bp(rng.uniform(0.5, 2.0, 4), False)
    _gradcheck(lambda a, b: L.binary_cross_entropy(a, b, weight=w, **kw), p, q)
    _gradcheck(lambda a, b: L.binary_cross_entropy_with_logits(a, b, pos_weight=w, **kw), x, q)
    idx = _bp(np.array([0, -100, 3]))
    _gradcheck(lambda a: L.cross_entropy(a, idx, weight=w, label_smoothing=0.1, **kw), x)
    _gradcheck(lambda a: L.nll_loss(a, idx, weight=w, **kw), x)
    probs = rng.dirichlet(np.ones(4), 3)
    _gradcheck(lambda a, b: L.cross_entropy(a, b, weight=w, label_smoothing=0.2, **kw), x, probs)


# -- modules ------------------------------------------------------------------------------------

MODULES = [
    ("MSELoss", "mse_loss", {}),
    ("L1Loss", "l1_loss", {"reduction": "sum"}),
    ("HuberLoss", "huber_loss", {"delta": 0.5}),
    ("SmoothL1Loss", "smooth_l1_loss", {"beta": 0.5, "reduction": "none"}),
]


@pytest.mark.parametrize("cls,fn,kw", MODULES, ids=[m[0] for m in MODULES])
def test_regression_modules_match_torch(oracle, rng, cls, fn, kw):
    x, t = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    ours = getattr(L, cls)(**kw)
    ref = getattr(oracle.nn, cls)(**kw)
    assert isinstance(ours, Module)
    a, b = _bp(x), _th(oracle, x)
    out, expected = ours(a, _bp(t, False)), ref(b, _th(oracle, t, False))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12)
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)
    assert repr(ours) == repr(ref)
    assert ours.reduction == ref.reduction


def test_classification_modules_match_torch(oracle, rng):
    w = rng.uniform(0.5, 2.0, 4)
    x = rng.standard_normal((6, 4))
    t = np.array([0, 3, -100, 2, 1, 1])
    for cls, inp, kw in [
        ("CrossEntropyLoss", x, dict(label_smoothing=0.1, ignore_index=-100)),
        ("NLLLoss", x - np.log(np.exp(x).sum(1, keepdims=True)), dict(reduction="sum")),
    ]:
        ours = getattr(L, cls)(weight=_bp(w, False), **kw)
        ref = getattr(oracle.nn, cls)(weight=oracle.tensor(w), **kw)
        a, b = _bp(inp), _th(oracle, inp)
        out, expected = ours(a, _bp(t)), ref(b, _th(oracle, t))
        np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-12)
        out.backward()
        expected.backward()
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)
        assert repr(ours) == repr(ref) == f"{cls}()"
    p, q = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))
    out = L.BCELoss(weight=_bp(w, False))(_bp(p, False), _bp(q, False))
    expected = oracle.nn.BCELoss(weight=oracle.tensor(w))(oracle.tensor(p), oracle.tensor(q))
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-12)
    out = L.BCEWithLogitsLoss(pos_weight=_bp(w, False), reduction="sum")(_bp(x[:3], False),
                                                                         _bp(q, False))
    expected = oracle.nn.BCEWithLogitsLoss(pos_weight=oracle.tensor(w), reduction="sum")(
        oracle.tensor(x[:3]), oracle.tensor(q))
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-12)


def test_weights_are_buffers():
    w = backprop.tensor([1.0, 2.0, 0.5])
    ce = L.CrossEntropyLoss(weight=w)
    assert ce.weight is w
    assert dict(ce.named_buffers()) == {"weight": w}
    assert list(ce.state_dict()) == ["weight"]
    assert list(ce.parameters()) == []
    assert L.CrossEntropyLoss().weight is None
    bce = L.BCEWithLogitsLoss(weight=backprop.ones(3), pos_weight=backprop.ones(3))
    assert sorted(bce.state_dict()) == ["pos_weight", "weight"]
    ce.double()
    assert ce.weight.dtype == backprop.float64
    x = backprop.randn(2, 3, dtype=backprop.float64)
    assert ce(x, backprop.tensor([0, 2])).dtype == backprop.float64


def test_module_attributes_follow_torch():
    ce = L.CrossEntropyLoss(ignore_index=5, reduction="sum", label_smoothing=0.25)
    assert (ce.ignore_index, ce.reduction, ce.label_smoothing) == (5, "sum", 0.25)
    assert L.NLLLoss(ignore_index=3).ignore_index == 3
    assert L.HuberLoss(delta=2).delta == 2.0
    assert L.SmoothL1Loss(beta=0.5).beta == 0.5
    assert L.MSELoss().reduction == "mean"


def test_float32_training_step_with_cross_entropy_loss():
    backprop.manual_seed(0)
    w = backprop.randn(4, 3, requires_grad=True)
    x = backprop.randn(32, 4)
    y = (x @ backprop.randn(4, 3)).argmax(1)  # labels a linear model can fit
    criterion = L.CrossEntropyLoss()
    losses = []
    for _ in range(50):
        loss = criterion(x @ w, y)
        assert loss.dtype == backprop.float32
        losses.append(loss.item())
        w.grad = None
        loss.backward()
        with backprop.no_grad():
            w -= 0.5 * w.grad
    assert losses[-1] < losses[0] * 0.5
    assert all(b < a for a, b in zip(losses, losses[1:]))
