"""conv2d's and max_pool2d's fast paths against their general code (``conv.FAST_PATHS = False``).

max_pool2d's backward, where the windows tile the input, writes each window's gradient in
place (``_max_pool_grad_tiles``): the same values, compared bit for bit (ties, -0.0 and
leftover rows included).

Two fast paths in the backward of ``Conv2d``:

* the weight gradient as (cols·gᵀ)ᵀ (``_conv_weight_grad``, for K = C/G·kh·kw >= 16);
* the input gradient a kernel row at a time (``_conv_input_grad_rows``, for unit stride
  along the width, kw > 1 and finite weights).

Both compute the same sums of the same products as the general code, in another order
(BLAS may add a dot product's terms in another order for another operand layout; the row
path sums over (o, j) in one product where the general code adds kw partial sums), so
each is checked to the rounding bound of those sums: |fast - general| <= 2·m·ε·Σ|terms|
(m terms per sum, ε the dtype's epsilon), Σ|terms| computed from |g|, |x| and |W|, which
cancel nothing. A test below shows the bound is tight enough to catch one term left out.
(On this machine's OpenBLAS the weight gradient is often, not always, equal bit for bit.)
Where a fast path does not apply, the results must be equal bit for bit, as must the
forward and the bias gradient, which run the same code either way.
"""
import warnings

import numpy as np
import pytest

import backprop
from backprop.ops import conv

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups): odd sizes, strides
# along either axis (stride along the width keeps the general input gradient), dilation,
# groups, one input channel (K < 16: the weight gradient keeps its general product), a
# 1-wide kernel (the row path does not apply), and the benchmark's second layer.
SHAPES = [
    (5, 3, 9, 11, 8, (3, 3), 1, 1, 1, 1),
    (4, 8, 7, 6, 16, (3, 3), 1, 1, 1, 1),
    (3, 4, 10, 9, 6, (2, 3), (2, 1), 0, 1, 1),
    (3, 5, 12, 13, 7, (3, 2), (1, 2), (1, 0), (2, 1), 1),
    (3, 4, 11, 12, 5, (2, 3), 1, (0, 2), (1, 2), 1),
    (2, 6, 8, 8, 4, (3, 3), 1, 2, 2, 2),
    (2, 8, 7, 9, 6, (3, 1), 1, 1, 1, 2),
    (3, 1, 9, 9, 4, (3, 3), 1, 1, 1, 1),
    (6, 16, 14, 14, 32, (3, 3), 1, 1, 1, 1),
]


def _run(x, w, b, g, geometry, fast, monkeypatch):
    """conv2d forward and backward; returns (out, dx, dw, db)."""
    stride, padding, dilation, groups = geometry
    monkeypatch.setattr(conv, "FAST_PATHS", fast)
    xt, wt, bt = (backprop.tensor(a, requires_grad=True) for a in (x, w, b))
    out = conv.conv2d(xt, wt, bt, stride=stride, padding=padding, dilation=dilation,
                      groups=groups)
    out.backward(backprop.tensor(g))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _bits_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


def _within_rounding(fast, general, abs_sum, terms):
    assert fast.dtype == general.dtype and fast.shape == general.shape
    bound = 2 * terms * np.finfo(fast.dtype).eps * abs_sum
    assert np.all(np.abs(fast.astype(np.float64) - general) <= bound)


def _inputs(shape, dtype, rng):
    n, c, h, w_, o, kernel, *geometry = shape
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((o, c // geometry[-1]) + kernel).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    out_shape = conv.conv2d(backprop.tensor(x), backprop.tensor(w), stride=geometry[0],
                            padding=geometry[1], dilation=geometry[2],
                            groups=geometry[-1]).shape
    g = rng.standard_normal(tuple(out_shape)).astype(dtype)
    return x, w, b, g, tuple(geometry)


def _row_path_applies(shape):
    kernel, stride = shape[5], shape[6]
    return kernel[1] > 1 and (stride if isinstance(stride, int) else stride[1]) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_fast_paths_match_the_general_code(shape, dtype, rng, monkeypatch):
    x, w, b, g, geometry = _inputs(shape, dtype, rng)
    out, dx, dw, db = _run(x, w, b, g, geometry, True, monkeypatch)
    out0, dx0, dw0, db0 = _run(x, w, b, g, geometry, False, monkeypatch)
    _bits_equal(out, out0)
    _bits_equal(db, db0)
    # Σ|terms| of every sum: the same gradients of |x|, |W| and |g|, by the general code
    _, abs_dx, abs_dw, _ = _run(np.abs(x), np.abs(w), b, np.abs(g), geometry, False,
                                monkeypatch)
    kernel_size = w.shape[2] * w.shape[3]
    _within_rounding(dw, dw0, abs_dw, terms=g.shape[0] * g.shape[2] * g.shape[3])
    _within_rounding(dx, dx0, abs_dx, terms=w.shape[0] // geometry[-1] * kernel_size)
    if not _row_path_applies(shape):
        _bits_equal(dx, dx0)


def test_the_bound_catches_a_wrong_gradient(rng, monkeypatch):
    """The rounding bound is tight enough to see a real error: one term left out."""
    x, w, b, g, geometry = _inputs((2, 8, 6, 6, 4, (3, 3), 1, 1, 1, 1), np.float64, rng)
    _, dx, dw, _ = _run(x, w, b, g, geometry, True, monkeypatch)
    g_wrong = g.copy()
    g_wrong[0, 0, 2, 2] = 0.0
    _, dx_wrong, dw_wrong, _ = _run(x, w, b, g_wrong, geometry, True, monkeypatch)
    _, abs_dx, abs_dw, _ = _run(np.abs(x), np.abs(w), b, np.abs(g), geometry, False,
                                monkeypatch)
    with pytest.raises(AssertionError):
        _within_rounding(dw_wrong, dw, abs_dw, terms=2 * 6 * 6)
    with pytest.raises(AssertionError):
        _within_rounding(dx_wrong, dx, abs_dx, terms=4 * 9)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_values_reach_the_same_places(monkeypatch):
    """An Inf in the input and a NaN in grad_output land where the general code puts them,
    with the same warnings; an Inf weight keeps the general input gradient (bit for bit)."""
    rng = np.random.default_rng(3)
    x, w, b, g, geometry = _inputs((3, 16, 5, 5, 4, (3, 3), 1, 1, 1, 1), np.float32, rng)
    x[1, 2, 3, 4] = np.inf
    g[2, 1, 0, 0] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, dx, dw, _ = _run(x, w, b, g, geometry, True, monkeypatch)
        n_fast = len(caught)
        _, dx0, dw0, _ = _run(x, w, b, g, geometry, False, monkeypatch)
    assert [str(c.message) for c in caught[:n_fast]] == [str(c.message) for c in
                                                          caught[n_fast:]]
    for fast, general in ((dx, dx0), (dw, dw0)):
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(general))
        np.testing.assert_array_equal(np.isinf(fast), np.isinf(general))
    w[0, 3, 1, 1] = np.inf
    _, dx, _, _ = _run(x, w, b, g, geometry, True, monkeypatch)
    _, dx0, _, _ = _run(x, w, b, g, geometry, False, monkeypatch)
    _bits_equal(dx, dx0)


# -- max_pool2d -------------------------------------------------------------------------------
def _pool(x, g, fast, monkeypatch, **kw):
    monkeypatch.setattr(conv, "FAST_PATHS", fast)
    xt = backprop.tensor(x, requires_grad=True)
    out = conv.max_pool2d(xt, **kw)
    out.backward(backprop.tensor(g))
    return out.detach().numpy(), xt.grad.numpy()


# (input shape, kernel_size, stride, padding, ceil_mode): tiles (even and odd sizes, where
# rows and columns are left over), non-square tiles, and windows that do not tile (the
# general path either way)
POOLS = [
    ((4, 3, 8, 8), 2, None, 0, False),
    ((3, 2, 7, 9), 2, None, 0, False),
    ((2, 3, 9, 10), (3, 2), None, 0, False),
    ((2, 2, 9, 9), 3, 3, 0, False),
    ((2, 2, 7, 7), 2, None, 0, True),
    ((2, 3, 8, 8), 3, 2, 1, False),
    ((2, 3, 8, 8), 2, 1, 0, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("case", POOLS, ids=lambda c: f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}")
def test_max_pool_fast_path_is_bit_for_bit(case, ties, dtype, rng, monkeypatch):
    shape, kernel, stride, padding, ceil_mode = case
    x = rng.standard_normal(shape)
    if ties:  # relu'd and rounded: windows with several equal maxima, zeros among them
        x = np.maximum(np.round(x), 0)
        x[0, 0] = 0.0
    x = x.astype(dtype)
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    out_shape = conv.max_pool2d(backprop.tensor(x), **kw).shape
    g = rng.standard_normal(tuple(out_shape)).astype(dtype)  # negative entries: -0.0 risk
    fast, general = _pool(x, g, True, monkeypatch, **kw), _pool(x, g, False, monkeypatch, **kw)
    for a, b in zip(fast, general):
        _bits_equal(a, b)


def test_max_pool_fast_path_sends_ties_to_the_first_maximum(monkeypatch):
    """One window of four equal values: its whole gradient goes to the first, as in torch."""
    x = np.ones((1, 1, 2, 2), np.float32)
    _, dx = _pool(x, np.full((1, 1, 1, 1), -3.0, np.float32), True, monkeypatch,
                  kernel_size=2)
    _bits_equal(dx, np.array([[[[-3.0, 0.0], [0.0, 0.0]]]], np.float32))


def test_max_pool_non_finite_gradient_keeps_the_general_path(rng, monkeypatch):
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    g = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    g[0, 1, 1, 1], g[1, 0, 2, 0] = np.inf, np.nan
    fast, general = (_pool(x, g, f, monkeypatch, kernel_size=2) for f in (True, False))
    _bits_equal(fast[1], general[1])
