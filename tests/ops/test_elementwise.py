"""Element-wise ops: error messages, kinks/ties/boundaries against torch, dtypes, warnings."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop
from backprop import ops as O
from backprop.errors import DTypeError, ShapeError

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")


def _pair(x, requires_grad=True):
    """The same float64 data as a backprop tensor and a torch tensor."""
    x = np.asarray(x, dtype=np.float64)
    return (backprop.tensor(x, requires_grad=requires_grad),
            torch.tensor(x, requires_grad=requires_grad))


def _check_against_torch(ours, theirs, ours_in, theirs_in, atol=1e-12):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=atol)
    v = np.arange(1, ours.numel() + 1, dtype=np.float64).reshape(ours.shape)
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    for a, b in zip(ours_in, theirs_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol)


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: backprop.tensor([2, 3]) ** -1,
    lambda: O.pow(backprop.tensor([2, 3]), -2),
    lambda: backprop.tensor([2, 3]) ** backprop.tensor([1, -1]),
    lambda: 2 ** backprop.tensor([1, -1]),
    lambda: backprop.tensor([True]) ** -1,
])
def test_pow_integer_to_negative_integer_raises(call):
    with pytest.raises(DTypeError, match="pow: Integers to negative integer powers are not "
                                         "allowed"):
        call()


def test_pow_message_names_dtype_and_exponent():
    with pytest.raises(DTypeError, match=r"base dtype int64, exponent -1\)"):
        backprop.tensor([2, 3]) ** -1


def test_pow_integer_cases_that_work():
    x = backprop.tensor([2, 3])
    assert (x ** 0).dtype == backprop.int64 and (x ** 0).tolist() == [1, 1]
    assert (x ** 2).tolist() == [4, 9]
    y = x ** -1.0  # a float exponent is fine, and gives float32
    assert y.dtype == backprop.float32
    np.testing.assert_allclose(y.numpy(), [0.5, 1 / 3], rtol=1e-6)
    z = backprop.tensor([2.0, 4.0]) ** -1
    assert z.dtype == backprop.float32 and z.tolist() == [0.5, 0.25]
    w = backprop.tensor([2, 4]) ** backprop.tensor([-1.0, 0.5])
    assert w.dtype == backprop.float32
    np.testing.assert_allclose(w.numpy(), [0.5, 2.0])


@needs_torch
def test_pow_integer_base_float_exponent_gradient_keeps_float32():
    b = backprop.tensor([0.5, 2.0], requires_grad=True)
    tb = torch.tensor([0.5, 2.0], requires_grad=True)
    y = backprop.tensor([2, 3]) ** b
    assert y.dtype == backprop.float32
    y.sum().backward()
    (torch.tensor([2, 3]) ** tb).sum().backward()
    assert b.grad.dtype == backprop.float32
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, call", [
    ("maximum", lambda a, b: O.maximum(a, b)),
    ("minimum", lambda a, b: a.minimum(b)),
    ("clamp", lambda a, b: O.clamp(a, min=b)),
    ("clamp", lambda a, b: a.clamp(max=b)),
    ("where", lambda a, b: O.where(backprop.ones(2, dtype=backprop.bool), a, b)),
])
def test_broadcast_failures_name_op_and_shapes(name, call):
    a, b = backprop.ones(2, 3), backprop.ones(4)
    with pytest.raises(ShapeError, match=rf"{name}: .*\(2, 3\).*\(4,\)"):
        call(a, b)


def test_where_condition_shape_in_message():
    with pytest.raises(ShapeError, match=r"where: condition of shape \(5,\), input of shape "
                                         r"\(3,\) and other of shape \(\)"):
        O.where(backprop.ones(5, dtype=backprop.bool), backprop.ones(3), 0.0)


@pytest.mark.parametrize("dtype", [backprop.float32, backprop.int64, backprop.uint8])
def test_where_needs_a_bool_condition(dtype):
    cond = backprop.ones(3, dtype=dtype)
    name = str(dtype).split(".")[-1]
    with pytest.raises(DTypeError, match=f"where: expected condition to be a bool tensor, got "
                                         f"dtype {name}"):
        O.where(cond, backprop.ones(3), backprop.zeros(3))


def test_where_argument_errors():
    with pytest.raises(TypeError, match="where: expected condition to be a bool Tensor"):
        O.where([True, False], backprop.ones(2), 0.0)
    with pytest.raises(TypeError, match="where: pass both input and other"):
        O.where(backprop.ones(2, dtype=backprop.bool), backprop.ones(2))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp: at least one of 'min' or 'max'"):
        O.clamp(backprop.ones(2))
    with pytest.raises(ValueError, match="clamp"):
        backprop.ones(2).clip()


@pytest.mark.parametrize("fn", [O.sqrt, O.rsqrt, O.abs, O.sign, O.sin, O.cos, O.square])
def test_unary_ops_want_a_tensor(fn):
    with pytest.raises(TypeError, match=f"{fn.__name__}: expected a Tensor"):
        fn(4.0)


def test_binary_ops_reject_strings():
    with pytest.raises(TypeError, match="maximum: unsupported operand type str"):
        O.maximum(backprop.ones(2), "a")
    with pytest.raises(TypeError, match="clamp: unsupported operand type str"):
        O.clamp(backprop.ones(2), min="a")


def test_abs_of_bool_is_refused():
    with pytest.raises(DTypeError, match="abs: not supported for bool"):
        O.abs(backprop.tensor([True, False]))


# -- kinks, ties and boundaries, against torch ------------------------------------------------

@needs_torch
def test_clamp_gradient_at_the_boundaries_matches_torch():
    a, b = _pair([-1.0, 0.0, 0.5, 1.0, 2.0])
    _check_against_torch(O.clamp(a, 0.0, 1.0), torch.clamp(b, 0.0, 1.0), [a], [b])
    # exactly at the boundary the input gets the gradient (the range is closed)
    assert a.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 0.0]


@needs_torch
def test_clamp_tensor_bounds_at_ties_and_crossed_bounds_match_torch():
    x = [-1.0, 0.0, 0.5, 1.0, 2.0, 0.5, 0.5, 3.0, -3.0]
    lo = [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.5, 0.5]
    hi = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.5, 0.5]
    (a, ta), (l, tl), (h, th) = _pair(x), _pair(lo), _pair(hi)
    _check_against_torch(O.clamp(a, l, h), torch.clamp(ta, tl, th), [a, l, h], [ta, tl, th])
    for lo_only in (True, False):
        (a, ta), (l, tl) = _pair(x), _pair(lo)
        if lo_only:
            ours, theirs = O.clamp(a, min=l), torch.clamp(ta, min=tl)
        else:
            ours, theirs = O.clamp(a, max=l), torch.clamp(ta, max=tl)
        _check_against_torch(ours, theirs, [a, l], [ta, tl])


@needs_torch
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_ties_split_the_gradient_equally(op):
    (a, ta), (b, tb) = _pair([1.0, 2.0, 3.0, 5.0]), _pair([1.0, 1.0, 4.0, 5.0])
    ours, theirs = getattr(O, op)(a, b), getattr(torch, op)(ta, tb)
    _check_against_torch(ours, theirs, [a, b], [ta, tb])
    assert a.grad[0].item() == b.grad[0].item() == 0.5


@needs_torch
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_nan_propagates_and_both_sides_get_the_gradient(op):
    nan = float("nan")
    (a, ta), (b, tb) = _pair([nan, 1.0]), _pair([1.0, nan])
    ours, theirs = getattr(O, op)(a, b), getattr(torch, op)(ta, tb)
    assert np.isnan(ours.detach().numpy()).all()
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())


@needs_torch
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2, 2), min_size=1, max_size=8),
       st.lists(st.integers(-2, 2), min_size=1, max_size=8))
def test_maximum_minimum_with_many_ties_match_torch(xs, ys):
    n = min(len(xs), len(ys))
    for op in ("maximum", "minimum"):
        (a, ta), (b, tb) = _pair(xs[:n]), _pair(ys[:n])
        _check_against_torch(getattr(O, op)(a, b), getattr(torch, op)(ta, tb), [a, b], [ta, tb])


@needs_torch
@pytest.mark.parametrize("op", ["abs", "sign", "sqrt", "rsqrt"])
def test_values_and_gradients_at_zero_match_torch(op):
    a, ta = _pair([0.0, -0.0, 1.5, -2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours, theirs = getattr(O, op)(a), getattr(torch, op)(ta)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy())
        ours.backward(backprop.ones(4, dtype=backprop.float64))
    theirs.backward(torch.ones(4, dtype=torch.float64))
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())


@needs_torch
def test_where_keeps_inf_gradients_on_their_own_side():
    cond = backprop.tensor([True, False, True])
    (a, ta), (b, tb) = _pair([1.0, 2.0, 3.0]), _pair([4.0, 5.0, 6.0])
    v = np.array([np.inf, 1.0, np.nan])
    O.where(cond, a, b).backward(backprop.tensor(v))
    torch.where(torch.tensor([True, False, True]), ta, tb).backward(torch.tensor(v))
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())
    assert b.grad.tolist() == [0.0, 1.0, 0.0]


def test_sign_of_nan_is_zero_and_its_gradient_is_zeros():
    x = backprop.tensor([float("nan"), -2.0, 0.0, 3.0], dtype=backprop.float64,
                        requires_grad=True)
    y = O.sign(x)
    assert y.tolist() == [0.0, -1.0, 0.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 0.0]


# -- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    O.sqrt, O.rsqrt, O.abs, O.sign, O.sin, O.cos, O.square, O.exp, O.log,
    lambda x: O.clamp(x, 0.1, 0.9),
    lambda x: O.clamp(x, min=np.float64(0.2)),
    lambda x: O.maximum(x, 0.5),
    lambda x: O.minimum(x, np.float64(0.5)),
    lambda x: O.where(x > 0.5, x, 0.0),
    lambda x: O.where(x > 0.5, 1.0, x),
    lambda x: x ** 2,
])
def test_float32_stays_float32(call):
    x = backprop.tensor(np.linspace(0.1, 2.0, 6, dtype=np.float32), requires_grad=True)
    y = call(x)
    assert y.dtype == backprop.float32
    y.sum().backward()
    assert x.grad is not None and x.grad.dtype == backprop.float32


@pytest.mark.parametrize("make, dtype", [
    (lambda: O.sqrt(backprop.tensor([4], dtype=backprop.int8)), backprop.float32),
    (lambda: O.sin(backprop.tensor([1, 2])), backprop.float32),
    (lambda: O.exp(backprop.tensor([1], dtype=backprop.int8)), backprop.float32),
    (lambda: O.abs(backprop.tensor([-3], dtype=backprop.int8)), backprop.int8),
    (lambda: O.sign(backprop.tensor([-3, 0, 2])), backprop.int64),
    (lambda: O.square(backprop.tensor([True, False])), backprop.int64),
    (lambda: O.clamp(backprop.tensor([1, 2, 3]), min=1.5), backprop.float32),
    (lambda: O.clamp(backprop.tensor([1.0, 2.0]),
                     min=backprop.tensor([0.0], dtype=backprop.float64)), backprop.float64),
    (lambda: O.maximum(backprop.tensor([1]), backprop.tensor([1.5])), backprop.float32),
    (lambda: O.where(backprop.tensor([True, False]), 1, 0), backprop.int64),
    (lambda: O.where(backprop.tensor([True, False]), 1.0, 0.0), backprop.float32),
    (lambda: O.where(backprop.tensor([True, False]), backprop.tensor([1.0, 2.0]),
                     backprop.tensor([1.0, 2.0], dtype=backprop.float64)), backprop.float64),
])
def test_result_dtypes_follow_torch(make, dtype):
    assert make().dtype == dtype


# -- no warnings, odd shapes, forms -----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_warnings_at_domain_edges(dtype):
    x = backprop.tensor(np.array([-1.0, 0.0, 1e-30, 1e30, np.inf], dtype=dtype),
                        requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (O.sqrt, O.rsqrt, O.sin, O.cos, O.abs, O.sign, O.square,
                   lambda t: O.clamp(t, -1, 1), lambda t: t ** 0.5, lambda t: t ** -1):
            x.grad = None
            fn(x).backward(backprop.ones(5, dtype=x.dtype))


def test_where_with_condition_only_gives_indices():
    cond = backprop.tensor([[True, False, True], [False, False, True]])
    rows, cols = O.where(cond)
    assert rows.dtype == cols.dtype == backprop.int64
    assert rows.tolist() == [0, 0, 1] and cols.tolist() == [0, 2, 2]


def test_where_method_and_numpy_condition():
    x = backprop.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.where(x > 0, backprop.zeros(3))
    assert y.tolist() == [1.0, 0.0, 3.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]
    assert O.where(np.array([True, False]), 1.0, 2.0).tolist() == [1.0, 2.0]


def test_gradient_reaches_broadcast_bounds_with_their_shapes():
    x = backprop.tensor(np.array([[-2.0, 0.0, 2.0], [3.0, -3.0, 0.1]]), requires_grad=True)
    lo = backprop.tensor(np.array([-1.0]), requires_grad=True)
    hi = backprop.tensor(np.array([[1.0], [0.5]]), requires_grad=True)
    O.clamp(x, lo, hi).sum().backward()
    assert lo.grad.shape == (1,) and lo.grad.tolist() == [2.0]
    assert hi.grad.shape == (2, 1) and hi.grad.tolist() == [[1.0], [1.0]]
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_tensor_methods_are_installed():
    x = backprop.tensor([-1.5, 0.25, 4.0])
    for name in ("sqrt", "rsqrt", "abs", "absolute", "sign", "sgn", "sin", "cos", "square",
                 "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "where"):
        assert callable(getattr(x, name)), name
    assert x.clamp_min(0.0).tolist() == [0.0, 0.25, 4.0]
    assert x.clamp_max(0.0).tolist() == [-1.5, 0.0, 0.0]
    assert x.abs().maximum(backprop.ones(3)).tolist() == [1.5, 1.0, 4.0]


def test_reductions_binary_max_uses_maximum():
    a, b = backprop.tensor([1.0, 5.0]), backprop.tensor([3.0, 2.0])
    assert O.max(a, b).tolist() == [3.0, 5.0]
    assert O.min(a, b).tolist() == [1.0, 2.0]


def test_no_graph_without_requires_grad():
    x = backprop.tensor([1.0, 4.0])
    for y in (O.sqrt(x), O.clamp(x, 0, 2), O.maximum(x, x), O.where(x > 2, x, 0.0)):
        assert y.grad_fn is None and not y.requires_grad
