"""Reductions: error messages, ties, edge values, and property tests against torch."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop
from backprop import ops as O
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")

INF = math.inf


def _pair(x, requires_grad=True):
    """The same float64 data as a backprop tensor and a torch tensor."""
    x = np.asarray(x, dtype=np.float64)
    return (backprop.tensor(x, requires_grad=requires_grad),
            torch.tensor(x, requires_grad=requires_grad))


def _grads_match(ours, theirs, a, b, atol=1e-10):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=atol)
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol)


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, call", [
    ("sum", lambda x: x.sum(3)),
    ("mean", lambda x: x.mean((0, -4))),
    ("prod", lambda x: x.prod(5)),
    ("var", lambda x: x.var(3)),
    ("std", lambda x: x.std((0, 7))),
    ("max", lambda x: x.max(3)),
    ("min", lambda x: x.min(-4)),
    ("amax", lambda x: x.amax(3)),
    ("amin", lambda x: x.amin((1, 3))),
    ("argmax", lambda x: x.argmax(3)),
    ("argmin", lambda x: x.argmin(-5)),
    ("norm", lambda x: x.norm(dim=3)),
    ("logsumexp", lambda x: x.logsumexp(-4)),
])
def test_dim_out_of_range_names_the_op(name, call):
    x = backprop.randn(2, 3, 4)
    with pytest.raises(IndexOutOfRange, match=rf"^{name}: dimension out of range .*\[-3, 2\]"):
        call(x)


@pytest.mark.parametrize("name", ["var", "std", "norm", "mean"])
def test_float_only_reductions_reject_integers(name):
    x = backprop.tensor([1, 2, 3])
    with pytest.raises(DTypeError, match=rf"{name}: expected a floating-point tensor, got "
                                         r"(backprop\.)?int64"):
        getattr(x, name)()


@pytest.mark.parametrize("call, msg", [
    (lambda x: x.max(0), r"max\(\): expected reduction dim 0 to have non-zero size.*\(0, 3\)"),
    (lambda x: O.min(x, 0), r"min\(\): expected reduction dim 0 to have non-zero size"),
    (lambda x: x.max(), r"max\(\): expected reduction dim to be specified for an empty input"),
    (lambda x: x.min(), r"min\(\): expected reduction dim to be specified"),
    (lambda x: x.amax(), r"amax\(\): expected reduction dim 0 to have non-zero size"),
    (lambda x: x.amin(0), r"amin\(\): expected reduction dim 0 to have non-zero size"),
    (lambda x: x.argmax(), r"argmax\(\): expected reduction dim to be specified"),
    (lambda x: x.argmin(0), r"argmin\(\): expected reduction dim 0 to have non-zero size"),
    (lambda x: x.norm(INF, 0), r"norm\(\): expected reduction dim 0 to have non-zero size"),
])
def test_max_like_over_an_empty_dim_is_an_error(call, msg):
    with pytest.raises(ShapeError, match=msg):
        call(backprop.zeros(0, 3))


def test_reductions_over_a_non_empty_dim_of_an_empty_tensor_are_fine():
    x = backprop.zeros(0, 3)
    assert x.max(1).values.shape == (0,) and x.max(1).indices.shape == (0,)
    assert x.amin(1).shape == (0,)
    assert x.argmax(1).shape == (0,)
    assert x.norm(INF, 1).shape == (0,)


def test_norm_bad_p():
    x = backprop.randn(3, 3)
    with pytest.raises(ValueError, match=r"norm: p='nuc' is not supported"):
        x.norm("nuc")
    with pytest.raises(TypeError, match=r"norm: p must be 'fro' or a number, got list"):
        x.norm([2])
    with pytest.raises(ValueError, match=r"norm: p must be a number, got nan"):
        x.norm(math.nan)


def test_var_rejects_both_unbiased_and_correction():
    with pytest.raises(TypeError, match=r"var: pass either unbiased= or correction="):
        backprop.randn(4).var(0, unbiased=True, correction=0)
    with pytest.raises(TypeError, match=r"std: correction must be a number, got str"):
        backprop.randn(4).std(correction="1")


def test_prod_takes_one_dim():
    with pytest.raises(TypeError, match=r"prod: dim must be an int, got tuple"):
        backprop.randn(2, 3).prod((0, 1))


def test_repeated_dims_are_an_error():
    with pytest.raises(ShapeError, match=r"var: dim \(0, -2\) names the same dimension twice"):
        backprop.randn(2, 3).var((0, -2))


# -- max / min forms ---------------------------------------------------------------------

@needs_torch
def test_max_with_dim_returns_a_named_tuple_like_torch():
    data = [[1.0, 5.0, 5.0], [2.0, 2.0, 0.0]]
    a, b = _pair(data)
    ours, theirs = a.max(1), b.max(1)
    values, indices = ours
    assert values is ours.values and indices is ours.indices
    assert indices.dtype == backprop.int64 and not indices.requires_grad
    np.testing.assert_array_equal(indices.numpy(), theirs.indices.numpy())
    assert repr(ours).startswith("max(values=")
    mins = O.min(a, dim=1, keepdim=True)
    np.testing.assert_array_equal(mins.indices.numpy(), b.min(1, keepdim=True).indices.numpy())
    assert type(mins).__name__ == "min"


@needs_torch
def test_max_dim_gradient_goes_to_the_first_tie_only():
    a, b = _pair([[1.0, 5.0, 5.0], [2.0, 2.0, 0.0]])
    _grads_match(a.max(1).values, b.max(1).values, a, b)
    np.testing.assert_array_equal(a.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


@needs_torch
@pytest.mark.parametrize("call", [
    lambda x: x.max(), lambda x: x.min(), lambda x: x.amax(), lambda x: x.amin(0),
    lambda x: x.amax((0, 1), keepdim=True), lambda x: x.amin(1),
    lambda x: x.norm(INF), lambda x: x.norm(-INF, 1), lambda x: x.norm(INF, 0, True),
])
def test_ties_share_the_gradient_evenly_like_torch(call):
    data = [[3.0, -1.0, 3.0, 1.0], [-3.0, 3.0, 1.0, -1.0], [2.0, 2.0, 2.0, 2.0]]
    a, b = _pair(data)
    _grads_match(call(a), call(b), a, b)


def test_max_of_ints_and_bools_keeps_the_dtype():
    x = backprop.tensor([[1, 7], [9, 2]])
    assert x.max().dtype == backprop.int64 and x.max().item() == 9
    assert x.max(0).values.tolist() == [9, 7]
    assert backprop.tensor([True, False]).amax().dtype == backprop.bool


@needs_torch
def test_max_with_a_tensor_is_the_elementwise_maximum():
    from backprop.ops import elementwise

    if not hasattr(elementwise, "maximum"):
        pytest.skip("elementwise.maximum is not written yet")
    a, b = _pair([1.0, 5.0, -2.0])
    c, d = _pair([3.0, 4.0, -1.0])
    np.testing.assert_array_equal(O.max(a, c).detach().numpy(), torch.max(b, d).detach().numpy())
    np.testing.assert_array_equal(a.min(c).detach().numpy(), b.min(d).detach().numpy())
    np.testing.assert_array_equal(O.max(a, other=c).detach().numpy(), [3.0, 5.0, -1.0])


def test_zero_dim_inputs():
    x = backprop.tensor(2.5, requires_grad=True)
    v, i = x.max(0)
    assert v.item() == 2.5 and i.item() == 0 and i.shape == ()
    assert x.argmax().item() == 0 and x.argmin(0, keepdim=True).shape == ()
    assert x.sum(0).item() == 2.5 and x.amax(-1).item() == 2.5
    v.backward()
    assert x.grad.item() == 1.0


@needs_torch
def test_argmax_flat_index_and_keepdim():
    data = np.array([[1.0, 9.0, 3.0], [9.0, 0.0, 2.0]])
    x, t = backprop.tensor(data), torch.tensor(data)
    assert x.argmax().item() == t.argmax().item() == 1          # first of the ties
    assert x.argmax(keepdim=True).shape == tuple(t.argmax(keepdim=True).shape) == (1, 1)
    np.testing.assert_array_equal(x.argmin(0).numpy(), t.argmin(0).numpy())
    assert x.argmax(1).dtype == backprop.int64


@needs_torch
def test_nan_propagates_through_max_like_torch():
    data = [1.0, math.nan, 3.0]
    a, b = _pair(data, requires_grad=False)
    assert math.isnan(a.max().item()) and math.isnan(a.amax().item())
    assert a.max(0).indices.item() == b.max(0).indices.item() == 1
    assert a.argmax().item() == b.argmax().item()


# -- var / std / norm / prod edges -------------------------------------------------------------

@needs_torch
def test_std_of_a_constant_has_gradient_zero_like_torch():
    a, b = _pair(np.ones((2, 3)))
    _grads_match(a.std(1), b.std(1), a, b)
    assert np.all(a.grad.numpy() == 0)


@needs_torch
def test_var_with_too_few_elements_is_nan_like_torch():
    a, b = _pair([1.0])
    with pytest.warns(UserWarning, match=r"var\(\): degrees of freedom is <= 0"):
        tv = b.var()
    with pytest.warns(UserWarning, match=r"var\(\): degrees of freedom is <= 0"):
        assert math.isnan(a.var().item()) and math.isnan(tv.item())
    with pytest.warns(UserWarning, match=r"std\(\): degrees of freedom is <= 0"):
        assert math.isnan(a.std(correction=2).item())
    assert a.var(correction=0).item() == 0.0


@needs_torch
@pytest.mark.parametrize("p", [2, "fro", 1, 3, 0.5, INF])
def test_norm_gradient_at_zero_is_zero_not_nan(p):
    a, b = _pair(np.zeros((2, 3)))
    _grads_match(a.norm(p), b.norm(p), a, b)
    assert np.all(a.grad.numpy() == 0)


@needs_torch
def test_norm_with_some_zeros_matches_torch():
    for p in (0.5, 1, 2, 3, INF):
        a, b = _pair([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]])
        _grads_match(a.norm(p, 1), b.norm(p, 1), a, b)


@needs_torch
def test_prod_gradient_with_zeros_matches_torch():
    a, b = _pair([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.0, 2.0, 3.0]])
    _grads_match(a.prod(1), b.prod(1), a, b)
    a, b = _pair([[0.0, 2.0], [1.0, 3.0]])
    _grads_match(a.prod(), b.prod(), a, b)


def test_float32_stays_float32():
    x = backprop.randn(3, 4)
    for out in (x.var(1), x.std(), x.norm(), x.norm(3, 0), x.norm(INF), x.logsumexp(1),
                x.prod(0), x.amax(), x.max(1).values, x.mean(), x.var(correction=0.5)):
        assert out.dtype == backprop.float32
    assert x.double().var().dtype == backprop.float64


# -- logsumexp --------------------------------------------------------------------------------

@needs_torch
def test_logsumexp_huge_float32_logits_do_not_overflow():
    data = (np.random.default_rng(0).standard_normal((4, 6)) * 1e4).astype(np.float32)
    a = backprop.tensor(data, requires_grad=True)
    b = torch.tensor(data, requires_grad=True)
    ours, theirs = a.logsumexp(1), b.logsumexp(1)
    assert ours.dtype == backprop.float32
    assert np.isfinite(ours.detach().numpy()).all()
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-6)
    assert O.logsumexp(backprop.tensor([1e4, 1e4]), 0).item() == pytest.approx(1e4 + math.log(2))


@needs_torch
def test_logsumexp_with_infinities():
    data = np.array([[-INF, -INF, -INF], [-INF, 0.0, 1.0], [INF, 1.0, 2.0]])
    a, b = _pair(data)
    ours, theirs = a.logsumexp(1), b.logsumexp(1)
    np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
    ours.backward(backprop.ones(3, dtype=backprop.float64))
    theirs.backward(torch.ones(3, dtype=torch.float64))
    # NOTE: an all -inf row gets gradient 0 where torch gives NaN (see LogSumExp.backward)
    np.testing.assert_array_equal(a.grad.numpy()[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(a.grad.numpy()[1], b.grad.numpy()[1])
    np.testing.assert_array_equal(a.grad.numpy()[2, 1:], b.grad.numpy()[2, 1:])


@needs_torch
def test_logsumexp_requires_dim_and_takes_ints():
    with pytest.raises(TypeError):
        O.logsumexp(backprop.randn(3))
    out = O.logsumexp(backprop.tensor([1, 2]), 0)
    assert out.dtype == backprop.float32
    assert out.item() == pytest.approx(torch.logsumexp(torch.tensor([1, 2]), 0).item())


# -- property tests against torch -------------------------------------------------------------

@st.composite
def _shape_and_dim(draw, min_size=1, tuples=True):
    shape = tuple(draw(st.lists(st.integers(min_size, 4), min_size=0, max_size=4)))
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"] if tuples else ["none", "int"]))
    if kind == "none" or ndim == 0:
        dim = None
    elif kind == "int":
        dim = draw(st.integers(-ndim, ndim - 1))
    else:
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        dim = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    return shape, dim, draw(st.booleans()), draw(st.integers(0, 2 ** 16))


_OPS = {
    "sum": (lambda x, d, k: x.sum(d, keepdim=k), lambda x, d, k: x.sum(d, keepdim=k)),
    "mean": (lambda x, d, k: x.mean(d, keepdim=k), lambda x, d, k: x.mean(d, keepdim=k)),
    "var": (lambda x, d, k: x.var(d, keepdim=k), lambda x, d, k: x.var(d, keepdim=k)),
    "std0": (lambda x, d, k: x.std(d, keepdim=k, correction=0),
             lambda x, d, k: x.std(d, keepdim=k, correction=0)),
    "amax": (lambda x, d, k: x.amax(() if d is None else d, keepdim=k),
             lambda x, d, k: x.amax(() if d is None else d, keepdim=k)),
    "amin": (lambda x, d, k: x.amin(() if d is None else d, k),
             lambda x, d, k: x.amin(() if d is None else d, k)),
    "logsumexp": (lambda x, d, k: x.logsumexp(() if d is None else d, k),
                  lambda x, d, k: x.logsumexp(tuple(range(x.ndim)) if d is None else d, k)),
    "norm2": (lambda x, d, k: x.norm(2, d, k), lambda x, d, k: x.norm(2, d, k)),
    "norm1": (lambda x, d, k: x.norm(1, d, k), lambda x, d, k: x.norm(1, d, k)),
    "norm3": (lambda x, d, k: x.norm(3, d, k), lambda x, d, k: x.norm(3, d, k)),
    "norminf": (lambda x, d, k: x.norm(INF, d, k), lambda x, d, k: x.norm(INF, d, k)),
}


@needs_torch
@pytest.mark.filterwarnings("ignore:var\\(\\)")
@pytest.mark.parametrize("name", sorted(_OPS))
@settings(max_examples=25, deadline=None)
@given(case=_shape_and_dim())
def test_reductions_match_torch_on_random_shapes_and_dims(name, case):
    shape, dim, keepdim, seed = case
    ours_fn, torch_fn = _OPS[name]
    if name == "logsumexp" and not shape:
        dim = 0  # torch's logsumexp needs a dim on 0-d tensors too
    data = np.random.default_rng(seed).standard_normal(shape)
    a, b = _pair(data)
    ours, theirs = ours_fn(a, dim, keepdim), torch_fn(b, dim, keepdim)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-9,
                               atol=1e-12)
    v = np.random.default_rng(seed + 1).standard_normal(ours.shape)
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(case=_shape_and_dim(tuples=False))
def test_max_min_argmax_agree_with_numpy(case):
    shape, dim, keepdim, seed = case
    data = np.random.default_rng(seed).integers(-3, 3, shape).astype(np.float32)  # many ties
    x = backprop.tensor(data)
    if dim is None:
        assert x.max().item() == data.max() and x.min().item() == data.min()
        assert x.argmax().item() == np.argmax(data)
        return
    vals, idx = x.max(dim, keepdim)
    np.testing.assert_array_equal(vals.numpy(), data.max(axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(idx.numpy(), np.argmax(data, axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(x.argmin(dim, keepdim).numpy(),
                                  np.argmin(data, axis=dim, keepdims=keepdim))
    if torch is not None:
        t = torch.tensor(data)
        np.testing.assert_array_equal(x.min(dim, keepdim).indices.numpy(),
                                      t.min(dim, keepdim).indices.numpy())
