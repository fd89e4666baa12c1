"""Activations and the special functions behind gelu: accuracy, stability, errors, dtypes."""
import math
import warnings

import numpy as np
import pytest

import backprop
from backprop import ops as O
from backprop.errors import DTypeError
from backprop.ops import _special

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")

ACTIVATIONS = {
    "relu": O.relu,
    "leaky_relu": O.leaky_relu,
    "leaky_relu/-0.5": lambda x: O.leaky_relu(x, -0.5),
    "leaky_relu/1.5": lambda x: O.leaky_relu(x, 1.5),
    "sigmoid": O.sigmoid,
    "tanh": O.tanh,
    "gelu": O.gelu,
    "gelu/tanh": lambda x: O.gelu(x, approximate="tanh"),
    "elu": O.elu,
    "softplus": O.softplus,
    "softplus/beta": lambda x: O.softplus(x, beta=0.5, threshold=10.0),
    "softplus/beta2": lambda x: O.softplus(x, beta=2.0),
    "silu": O.silu,
}


def _points():
    """Test points for erf/erfc: a dense middle, tails, tiny and subnormal values, zeros."""
    rng = np.random.default_rng(0)
    mags = np.concatenate([np.linspace(0, 7, 7001), rng.uniform(0, 27, 3000),
                           10.0 ** rng.uniform(-320, 1.4, 2000), [0.5, 1.0, 1.0 + 2e-16, 3.0]])
    return np.concatenate([mags, -mags])


# -- erf / erfc / ndtr ------------------------------------------------------------------------

def test_erf_matches_math_erf_to_float64_precision():
    x = _points()
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(_special.erf(x), expected, rtol=1e-15, atol=1e-322)


def test_erfc_matches_math_erfc_to_float64_precision():
    x = _points()
    expected = np.array([math.erfc(v) for v in x])
    normal = expected > 1e-300  # below that the result is subnormal: absolute precision only
    got = _special.erfc(x)
    np.testing.assert_allclose(got[normal], expected[normal], rtol=2e-15)
    np.testing.assert_allclose(got[~normal], expected[~normal], rtol=0, atol=1e-310)


def test_ndtr_is_accurate_in_both_tails():
    x = np.concatenate([np.linspace(-37, 8, 4501), [-0.0, 0.0]])
    # math.erfc(-x / √2) rounds its argument: compare loosely there, then tightly with mpmath.
    expected = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(_special.ndtr(x), expected, rtol=5e-13, atol=1e-320)
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    pts = np.array([-37.5, -30.0, -20.0, -8.25, -1.0, 0.0, 1e-8, 2.0, 6.0])
    exact = np.array([float(mpmath.ncdf(mpmath.mpf(v))) for v in pts])
    np.testing.assert_allclose(_special.ndtr(pts), exact, rtol=1e-15)


def test_special_functions_at_zeros_infinities_and_nan():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    erf = _special.erf(x)
    assert erf[0] == 0.0 and not np.signbit(erf[0])
    assert erf[1] == 0.0 and np.signbit(erf[1])  # erf(-0) = -0
    assert erf[2] == 1.0 and erf[3] == -1.0 and np.isnan(erf[4])
    np.testing.assert_array_equal(_special.erfc(x), [1.0, 1.0, 0.0, 2.0, np.nan])
    np.testing.assert_array_equal(_special.ndtr(x), [0.5, 0.5, 1.0, 0.0, np.nan])


# float32 computes exp(-x²) directly: ~x²·6e-8 relative in erfc's tail (5e-6 at x = 9).
@pytest.mark.parametrize("fn, ref, rtol", [(_special.erf, math.erf, 3e-7),
                                           (_special.erfc, math.erfc, 6e-6)])
def test_special_functions_in_float32(fn, ref, rtol):
    x = np.linspace(-9, 9, 3601).astype(np.float32)
    got = fn(x)
    assert got.dtype == np.float32
    expected = np.array([ref(float(v)) for v in x])
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-37)


def test_special_functions_keep_shape_and_raise_no_warnings():
    x = np.array([[-1e308, -50.0, -1e-310], [0.3, 27.0, 1e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (_special.erf, _special.erfc, _special.ndtr):
            assert fn(x).shape == (2, 3)
            assert fn(np.float64(0.5)).shape == ()


# -- stability: no overflow, no warnings ------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_give_no_warnings(name, dtype):
    big = 3e38 if dtype == np.float32 else 1e300
    x = backprop.tensor(np.array([-big, -1000.0, -88.0, -20.0, 0.0, 20.0, 88.0, 1000.0, big],
                                 dtype=dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ACTIVATIONS[name](x)
        y.backward(backprop.ones(9, dtype=x.dtype))
    assert y.dtype == x.dtype and x.grad.dtype == x.dtype
    assert np.isfinite(y.detach().numpy()[1:-1]).all() and np.isfinite(x.grad.numpy()).all()


def test_sigmoid_saturates_exactly_without_warnings():
    x = backprop.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = O.sigmoid(x)
        y.sum().backward()
    assert y.dtype == backprop.float32
    assert y.tolist() == [0.0, 0.5, 1.0]
    assert x.grad.tolist() == [0.0, 0.25, 0.0]


def test_sigmoid_is_accurate_in_the_far_negative_tail():
    x = np.array([-700.0, -100.0, -40.0])
    np.testing.assert_allclose(O.sigmoid(backprop.tensor(x)).numpy(), np.exp(x), rtol=1e-15)


def test_softplus_is_stable_for_large_inputs():
    x = backprop.tensor([-1000.0, -50.0, 50.0, 1000.0], dtype=backprop.float64)
    y = O.softplus(x, threshold=1e9)  # the linear shortcut is off: the formula itself is stable
    np.testing.assert_allclose(y.numpy(), [0.0, math.exp(-50.0), 50.0, 1000.0], rtol=1e-15)
    assert O.softplus(x).tolist()[2:] == [50.0, 1000.0]


def test_softplus_gradient_is_accurate_where_sigmoid_is_tiny():
    x = backprop.tensor([-40.0, -700.0], dtype=backprop.float64, requires_grad=True)
    O.softplus(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([-40.0, -700.0]), rtol=1e-13)


# -- kinks and boundaries, against torch ------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("name, ours, theirs", [
    ("relu", O.relu, lambda t: torch.relu(t)),
    ("leaky_relu", lambda x: O.leaky_relu(x, 0.1), lambda t: TF.leaky_relu(t, 0.1)),
    ("leaky_relu/negative", lambda x: O.leaky_relu(x, -2.0), lambda t: TF.leaky_relu(t, -2.0)),
    ("elu", lambda x: O.elu(x, 2.0), lambda t: TF.elu(t, 2.0)),
    ("elu/negative-alpha", lambda x: O.elu(x, -0.5), lambda t: TF.elu(t, -0.5)),
    ("softplus/threshold", lambda x: O.softplus(x, 2.0, 4.0), lambda t: TF.softplus(t, 2.0, 4.0)),
    ("gelu", O.gelu, lambda t: TF.gelu(t)),
    ("silu", O.silu, lambda t: TF.silu(t)),
])
def test_kinks_and_boundaries_match_torch(name, ours, theirs):
    # 0 is the kink; 2.0 is where β·x meets the softplus threshold exactly.
    data = np.array([-2.0, -0.0, 0.0, 2.0, 2.0 + 1e-12, float("nan")])
    a = backprop.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    y, ty = ours(a), theirs(t)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    y.backward(backprop.ones(6, dtype=backprop.float64))
    ty.backward(torch.ones(6, dtype=torch.float64))
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_relu_gradient_at_zero_is_zero():
    x = backprop.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    O.relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_matches_torch_on_a_wide_range(dtype):
    x = np.linspace(-12, 12, 2401).astype(dtype)
    for approximate in ("none", "tanh"):
        # float32 tanh form: 1 - tanh² cancels where tanh is within an ulp of ±1 (an ulp
        # of tanh there becomes ~1e-6 of gradient; torch's float32 tanh rounds differently).
        tol = 1e-14 if dtype == np.float64 else 1e-6 if approximate == "none" else 3e-6
        a = backprop.tensor(x, requires_grad=True)
        t = torch.tensor(x, requires_grad=True)
        y, ty = O.gelu(a, approximate=approximate), TF.gelu(t, approximate=approximate)
        assert y.dtype.name == str(ty.dtype).replace("torch.", "")
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


# -- dtypes and errors ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_float32_in_float32_out_and_0d(name):
    x = backprop.tensor(np.float32(0.3), requires_grad=True)
    y = ACTIVATIONS[name](x)
    assert y.dtype == backprop.float32 and y.shape == ()
    y.backward()
    assert x.grad.dtype == backprop.float32


@pytest.mark.parametrize("make, dtype", [
    (lambda: O.relu(backprop.tensor([-1, 2])), backprop.int64),
    (lambda: O.sigmoid(backprop.tensor([-1, 2])), backprop.float32),
    (lambda: O.tanh(backprop.tensor([True, False])), backprop.float32),
    (lambda: backprop.tensor([1, 2]).sigmoid(), backprop.float32),
])
def test_integer_inputs_where_torch_takes_them(make, dtype):
    assert make().dtype == dtype


@pytest.mark.parametrize("name, call", [
    ("leaky_relu", O.leaky_relu), ("gelu", O.gelu), ("elu", O.elu), ("softplus", O.softplus),
    ("silu", O.silu),
])
def test_integer_inputs_are_refused_where_torch_refuses(name, call):
    with pytest.raises(DTypeError, match=f"{name}: expected a floating-point tensor, got "
                                         f".*int64"):
        call(backprop.tensor([1, 2]))


def test_relu_of_bool_is_refused():
    with pytest.raises(DTypeError, match="relu: expected a numeric"):
        O.relu(backprop.tensor([True]))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="gelu: approximate argument must be either 'none' or "
                                         "'tanh', got 'erf'"):
        O.gelu(backprop.ones(2), approximate="erf")


@pytest.mark.parametrize("fn", [O.relu, O.sigmoid, O.tanh, O.gelu, O.silu])
def test_activations_want_a_tensor(fn):
    with pytest.raises(TypeError, match=f"{fn.__name__}: expected a Tensor"):
        fn([1.0, 2.0])


def test_methods_and_top_level_names():
    x = backprop.tensor([-1.0, 0.5])
    assert x.relu().tolist() == [0.0, 0.5]
    np.testing.assert_allclose(x.sigmoid().numpy(), 1 / (1 + np.exp([1.0, -0.5])), rtol=1e-6)
    np.testing.assert_allclose(x.tanh().numpy(), np.tanh([-1.0, 0.5]), rtol=1e-6)
    from backprop.ops import activation
    for name in activation.__all__:
        top = getattr(O, name)  # the op itself, or the op with PyTorch's out= added (ops/_out.py)
        assert getattr(top, "__wrapped__", top) is getattr(activation, name)


def test_no_graph_without_requires_grad():
    x = backprop.tensor([-1.0, 2.0])
    for fn in ACTIVATIONS.values():
        y = fn(x)
        assert y.grad_fn is None and not y.requires_grad
