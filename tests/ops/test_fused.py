"""The fused losses beyond the catalogue: extreme logits, ignore_index corner cases, float32
accuracy, errors, and a speed sanity check (no Python loop over samples)."""
import time
import warnings

import numpy as np
import pytest

import backprop
from backprop import ops as O
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError


def _t(a, grad=False):
    return backprop.tensor(a, requires_grad=grad)


@pytest.fixture(autouse=True)
def _no_numpy_warnings():
    # every loss must be silent: no overflow / divide / invalid RuntimeWarning leaks out
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# -- cross-entropy: stability ----------------------------------------------------------------

def test_cross_entropy_is_exact_for_huge_float32_logits():
    x = _t(np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 3e4]], dtype=np.float32), grad=True)
    loss = O.cross_entropy(x, _t(np.array([1, 2])), reduction="none")
    assert loss.dtype == backprop.float32
    np.testing.assert_array_equal(loss.detach().numpy(), [1e4, 0.0])
    loss.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, -1, 0], [0, 0, 0]])


@pytest.mark.parametrize("scale", [1.0, 50.0, 1e4])
def test_cross_entropy_float32_matches_float64(oracle, rng, scale):
    x = rng.standard_normal((64, 10)) * scale
    t = rng.integers(0, 10, 64)
    w = rng.uniform(0.2, 2.0, 10)
    ours = _t(x.astype(np.float32), grad=True)
    loss = O.cross_entropy(ours, _t(t), weight=_t(w.astype(np.float32)), label_smoothing=0.1)
    loss.backward()
    ref = oracle.tensor(x, requires_grad=True)
    ref_loss = oracle.nn.functional.cross_entropy(ref, oracle.tensor(t), weight=oracle.tensor(w),
                                                  label_smoothing=0.1)
    ref_loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(ours.grad.numpy()).all()
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-5)
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_cross_entropy_masked_logits_and_ignored_rows(oracle):
    # -inf logits (masking) are fine; an ignored row full of -inf contributes exactly 0
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, 2.0], [-np.inf, 5.0, -np.inf]])
    t = np.array([0, 2, -100])
    ours = _t(x, grad=True)
    loss = O.cross_entropy(ours, _t(t))
    loss.backward()
    ref = oracle.tensor(x, requires_grad=True)
    ref_loss = oracle.nn.functional.cross_entropy(ref, oracle.tensor(t))
    ref_loss.backward()
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-12)


# -- cross-entropy: ignore_index and reductions ---------------------------------------------

@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_all_ignored(oracle, rng, label_smoothing, weighted):
    x = rng.standard_normal((4, 3))
    t = np.full(4, -100)
    w = rng.uniform(0.5, 2.0, 3) if weighted else None
    for reduction, expected in (("mean", np.nan), ("sum", 0.0)):
        ours = _t(x, grad=True)
        loss = O.cross_entropy(ours, _t(t), weight=None if w is None else _t(w),
                               reduction=reduction, label_smoothing=label_smoothing)
        loss.backward()
        np.testing.assert_equal(loss.item(), expected)
        np.testing.assert_array_equal(ours.grad.numpy(), np.zeros((4, 3)))
        ref = oracle.nn.functional.cross_entropy(
            oracle.tensor(x), oracle.tensor(t), weight=None if w is None else oracle.tensor(w),
            reduction=reduction, label_smoothing=label_smoothing)
        np.testing.assert_equal(ref.item(), expected)
    loss = O.cross_entropy(_t(x), _t(t), reduction="none", label_smoothing=label_smoothing)
    np.testing.assert_array_equal(loss.numpy(), np.zeros(4))


def test_cross_entropy_weighted_mean_divides_by_the_target_weights(rng):
    x = rng.standard_normal((5, 3))
    t = np.array([0, 2, -100, 2, 1])
    w = np.array([0.5, 2.0, 3.0])
    per = O.cross_entropy(_t(x), _t(t), weight=_t(w), reduction="none").numpy()
    mean = O.cross_entropy(_t(x), _t(t), weight=_t(w)).item()
    assert per[2] == 0.0
    np.testing.assert_allclose(mean, per.sum() / (0.5 + 3.0 + 3.0 + 2.0), rtol=1e-14)


@pytest.mark.parametrize("seed", range(6))
def test_cross_entropy_random_configurations_match_torch(oracle, seed):
    # spatial shapes, weights, ignore_index, smoothing and reductions together, in float32
    r = np.random.default_rng(seed)
    shape = (int(r.integers(1, 5)), int(r.integers(2, 7))) + tuple(
        int(s) for s in r.integers(1, 4, int(r.integers(0, 3))))
    classes = shape[1]
    x = (r.standard_normal(shape) * 4).astype(np.float32)
    t = r.integers(0, classes, shape[:1] + shape[2:])
    t = np.where(r.random(t.shape) < 0.25, 3, t)
    kw = dict(ignore_index=3, label_smoothing=float(r.choice([0.0, 0.1, 0.5])),
              reduction=str(r.choice(["mean", "sum", "none"])))
    w = r.uniform(0.1, 2.0, classes).astype(np.float32) if seed % 2 else None
    ours = _t(x, grad=True)
    loss = O.cross_entropy(ours, _t(t), weight=None if w is None else _t(w), **kw)
    ref = oracle.tensor(x, requires_grad=True)
    ref_loss = oracle.nn.functional.cross_entropy(
        ref, oracle.tensor(t), weight=None if w is None else oracle.tensor(w), **kw)
    np.testing.assert_allclose(loss.detach().numpy(), ref_loss.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    v = r.standard_normal(loss.shape).astype(np.float32)
    loss.backward(_t(v))
    ref_loss.backward(oracle.tensor(v))
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_cross_entropy_empty_batch(oracle):
    x = _t(np.zeros((0, 4)), grad=True)
    t = _t(np.zeros(0, dtype=np.int64))
    assert np.isnan(O.cross_entropy(x, t).item())
    assert O.cross_entropy(x, t, reduction="sum").item() == 0.0
    assert O.cross_entropy(x, t, reduction="none").shape == (0,)
    O.cross_entropy(x, t, reduction="sum").backward()
    assert x.grad.shape == (0, 4)


def test_cross_entropy_probability_target_promotes_like_torch(rng):
    x = _t(rng.standard_normal((3, 4)).astype(np.float32))
    p = _t(np.full((3, 4), 0.25))
    assert O.cross_entropy(x, p).dtype == backprop.float64


def test_cross_entropy_class_indices_get_no_gradient_and_uint8_works(rng):
    x = _t(rng.standard_normal((3, 4)), grad=True)
    t = _t(np.array([0, 3, 1], dtype=np.uint8))
    loss = O.cross_entropy(x, t)
    assert loss.grad_fn.name() == "NllLossBackward0"
    assert len(loss.grad_fn.next_functions) == 1  # the class indices are no input of the graph
    loss.backward()
    assert t.grad is None


def test_cross_entropy_backward_twice_gives_the_same_gradient(rng):
    # backward must not overwrite what it saved: retain_graph runs it again
    x = _t(rng.standard_normal((4, 5)), grad=True)
    loss = O.cross_entropy(x, _t(np.array([0, -100, 3, 1])), label_smoothing=0.1,
                           weight=_t(rng.uniform(0.5, 1.5, 5)))
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    x.grad = None
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), first)


def test_no_graph_under_no_grad(rng):
    x = _t(rng.standard_normal((3, 4)), grad=True)
    with backprop.no_grad():
        loss = O.cross_entropy(x, _t(np.array([0, 1, 2])))
    assert loss.grad_fn is None and not loss.requires_grad


def test_cross_entropy_is_vectorised():
    # 200,000 samples: a Python loop over them would take seconds
    r = np.random.default_rng(0)
    x = _t(r.standard_normal((200_000, 10)).astype(np.float32), grad=True)
    t = _t(r.integers(0, 10, 200_000))
    O.cross_entropy(x, t).backward()  # warm up
    start = time.perf_counter()
    O.cross_entropy(x, t, label_smoothing=0.1).backward()
    assert time.perf_counter() - start < 1.0


# -- cross-entropy and nll: errors --------------------------------------------------------------

def test_cross_entropy_errors():
    x = _t(np.zeros((3, 10), dtype=np.float32))
    with pytest.raises(IndexOutOfRange, match=r"cross_entropy: target 12 is out of bounds for "
                                              r"10 classes"):
        O.cross_entropy(x, _t(np.array([0, 12, 1])))
    with pytest.raises(IndexOutOfRange, match="target -3 is out of bounds"):
        O.cross_entropy(x, _t(np.array([0, -3, 1])))
    with pytest.raises(DTypeError, match=r"cross_entropy: expected class-index targets of an "
                                         r"integer dtype.*float32 of shape \(3,\)"):
        O.cross_entropy(x, _t(np.array([0.0, 1.0, 2.0], dtype=np.float32)))
    with pytest.raises(DTypeError, match="bool"):
        O.cross_entropy(x, _t(np.array([True, False, True])))
    with pytest.raises(DTypeError, match="class probabilities and must be floating point"):
        O.cross_entropy(x, _t(np.zeros((3, 10), dtype=np.int64)))
    with pytest.raises(ShapeError, match=r"cross_entropy: expected input batch size \(3\) to "
                                         r"match target batch size \(2\)"):
        O.cross_entropy(x, _t(np.array([0, 1])))
    with pytest.raises(ShapeError, match=r"expected target of shape \(2, 4\) for input of "
                                         r"shape \(2, 10, 4\), got \(2, 3\)"):
        O.cross_entropy(_t(np.zeros((2, 10, 4))), _t(np.zeros((2, 3), dtype=np.int64)))
    with pytest.raises(ShapeError, match="0-d target"):
        O.cross_entropy(x, _t(np.array(1)))
    with pytest.raises(ShapeError, match=r"unbatched input of shape \(10,\) needs a 0-d target"):
        O.cross_entropy(_t(np.zeros(10)), _t(np.array([1, 2])))
    with pytest.raises(ShapeError, match="0-d tensor"):
        O.cross_entropy(_t(np.array(1.0)), _t(np.array(0)))
    with pytest.raises(ValueError, match=r"cross_entropy: 'avg' is not a valid value for "
                                         r"reduction"):
        O.cross_entropy(x, _t(np.array([0, 1, 2])), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0, got 1.5"):
        O.cross_entropy(x, _t(np.array([0, 1, 2])), label_smoothing=1.5)
    with pytest.raises(ShapeError, match=r"weight should have one entry per class \(10\), got "
                                         r"shape \(4,\)"):
        O.cross_entropy(x, _t(np.array([0, 1, 2])), weight=backprop.ones(4))
    with pytest.raises(DTypeError, match="input to be a floating-point tensor, got .*int64"):
        O.cross_entropy(_t(np.zeros((3, 10), dtype=np.int64)), _t(np.array([0, 1, 2])))
    with pytest.raises(TypeError, match="expected target to be a Tensor, got list"):
        O.cross_entropy(x, [0, 1, 2])
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        O.cross_entropy(x, _t(np.array([0, 1, 2])), ignore_index=1.5)


def test_nll_loss_errors_and_ignored_minus_inf():
    x = _t(np.log(np.full((2, 4), 0.25)))
    with pytest.raises(IndexOutOfRange, match="nll_loss: target 7 is out of bounds for 4 classes"):
        O.nll_loss(x, _t(np.array([0, 7])))
    with pytest.raises(DTypeError, match="nll_loss: expected class-index targets"):
        O.nll_loss(x, _t(np.zeros((2, 4))))
    with pytest.raises(ShapeError, match=r"nll_loss: expected input batch size \(2\)"):
        O.nll_loss(x, _t(np.array([0, 1, 2])))
    # log-probabilities of -inf at an ignored sample still give 0 there
    logp = _t(np.array([[0.0, -np.inf], [-np.inf, 0.0]]), grad=True)
    loss = O.nll_loss(logp, _t(np.array([0, -100])), reduction="none")
    np.testing.assert_array_equal(loss.detach().numpy(), [0.0, 0.0])


def test_nll_loss_matches_log_softmax_then_nll(oracle, rng):
    x = rng.standard_normal((5, 4, 3))
    t = rng.integers(0, 4, (5, 3))
    a = _t(x, grad=True)
    b = _t(x, grad=True)
    O.nll_loss(backprop.log_softmax(a, 1), _t(t), ignore_index=2).backward()
    O.cross_entropy(b, _t(t), ignore_index=2).backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-15)


# -- binary cross-entropy ---------------------------------------------------------------------

def test_binary_cross_entropy_clamps_the_log_like_torch(oracle):
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 1 - 1e-16])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 0.3])
    ours_p, ours_t = _t(p, grad=True), _t(t, grad=True)
    loss = O.binary_cross_entropy(ours_p, ours_t, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [0, 0, 100, 100, 30, 25.715760], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # torch's own inf target gradients
        ref_p, ref_t = oracle.tensor(p, requires_grad=True), oracle.tensor(t, requires_grad=True)
        ref = oracle.nn.functional.binary_cross_entropy(ref_p, ref_t, reduction="none")
        ref.sum().backward()
    loss.sum().backward()
    np.testing.assert_allclose(loss.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    # (torch's 1e-12 floor on p(1 - p) is rounded to float32: a relative 4e-9 apart)
    np.testing.assert_allclose(ours_p.grad.numpy(), ref_p.grad.numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours_t.grad.numpy(), ref_t.grad.numpy(), rtol=1e-7)


def test_binary_cross_entropy_errors():
    p = _t(np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input should be "
                                         r"between 0 and 1"):
        O.binary_cross_entropy(_t(np.array([0.5, 1.5])), _t(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        O.binary_cross_entropy(_t(np.array([0.5, np.nan])), _t(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="all elements of target should be between 0 and 1"):
        O.binary_cross_entropy(p, _t(np.array([0.0, 2.0])))
    with pytest.raises(ShapeError, match=r"target size \(2, 1\) differs from input size \(2,\)"):
        O.binary_cross_entropy(p, _t(np.zeros((2, 1))))
    with pytest.raises(DTypeError, match="expected target to be a floating-point tensor, got .*"
                                         "int64"):
        O.binary_cross_entropy(p, _t(np.array([0, 1])))
    with pytest.raises(ShapeError, match=r"weight of shape \(3,\) does not broadcast to the "
                                         r"input's shape \(2,\)"):
        O.binary_cross_entropy(p, _t(np.array([0.0, 1.0])), weight=backprop.ones(3))


def test_bce_with_logits_is_exact_for_huge_logits():
    x = _t(np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=np.float32), grad=True)
    t = _t(np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype=np.float32))
    loss = O.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [0.0, 0.0, 1e4, 1e4, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 1.0, -1.0, 0.0], atol=1e-7)


def test_bce_with_logits_equals_bce_of_sigmoid(rng):
    x = rng.standard_normal((4, 3))
    t = rng.uniform(0, 1, (4, 3))
    a = O.binary_cross_entropy_with_logits(_t(x), _t(t), reduction="none")
    b = O.binary_cross_entropy(backprop.sigmoid(_t(x)), _t(t), reduction="none")
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_bce_with_logits_errors():
    x = _t(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match=r"binary_cross_entropy_with_logits: target size \(3,\) "
                                         r"must be the same as input size \(2, 3\)"):
        O.binary_cross_entropy_with_logits(x, _t(np.zeros(3)))
    with pytest.raises(ShapeError, match=r"pos_weight of shape \(2,\) does not broadcast"):
        O.binary_cross_entropy_with_logits(x, _t(np.zeros((2, 3))), pos_weight=backprop.ones(2))
    with pytest.raises(ValueError, match="'elementwise' is not a valid value for reduction"):
        O.binary_cross_entropy_with_logits(x, _t(np.zeros((2, 3))), reduction="elementwise")


# -- softmax and log_softmax: the fast path (every slice's max finite) and the careful one -

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_special_values_match_torch_without_warnings(oracle, dtype):
    inf, nan = float("inf"), float("nan")
    big = float(np.finfo(dtype).max) / 4
    data = np.array([[0.5, -1.0, 2.0], [inf, 1.0, 2.0], [-inf, -inf, -inf], [nan, 0.0, 1.0],
                     [-inf, 0.0, 1.0], [big, -big, 1.0]], dtype=dtype)
    for rows in (data, data[[0, 4, 5]]):  # the careful path, then the fast one
        for dim in (1, 0):
            tol = 1e-6 if dtype == np.float32 else 1e-15  # NaN and ±inf must match exactly
            for name in ("log_softmax", "softmax"):
                ours = getattr(backprop, name)(backprop.tensor(rows), dim).numpy()
                theirs = getattr(oracle, name)(oracle.tensor(rows), dim).numpy()
                np.testing.assert_allclose(ours, theirs, rtol=tol, atol=0, err_msg=name)


def test_log_softmax_gradient_is_the_same_on_both_paths(rng):
    x = rng.standard_normal((4, 5))
    x_inf = x.copy()
    x_inf[3] = -np.inf  # one slice's max is -inf: the careful path for the whole tensor
    w = backprop.tensor(rng.standard_normal((3, 5)))
    grads = []
    for data in (x, x_inf):
        a = backprop.tensor(data, requires_grad=True)
        (backprop.log_softmax(a, 1)[:3] * w).sum().backward()
        grads.append(a.grad.numpy()[:3])
    np.testing.assert_array_equal(grads[0], grads[1])
