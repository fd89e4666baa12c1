"""conv2d, max_pool2d, avg_pool2d: errors, edge cases, larger shapes against torch."""
import numpy as np
import pytest

import backprop
from backprop.errors import DTypeError, ShapeError
from backprop.ops.conv import avg_pool2d, conv2d, max_pool2d

try:  # the oracle: the comparisons below skip cleanly without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")

TOL = {np.float32: (2e-4, 1e-4), np.float64: (1e-10, 1e-10)}


def _check(ours_fn, torch_fn, arrays, dtype):
    """Forward and every gradient against torch, in ``dtype``."""
    atol, rtol = TOL[dtype]
    ours_in = [backprop.tensor(np.asarray(a, dtype), requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(np.asarray(a, dtype), requires_grad=True) for a in arrays]
    ours, theirs = ours_fn(*ours_in), torch_fn(*theirs_in)
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=atol,
                               rtol=rtol)
    g = np.random.default_rng(7).standard_normal(tuple(theirs.shape)).astype(dtype)
    ours.backward(backprop.tensor(g))
    theirs.backward(torch.tensor(g))
    for b, t in zip(ours_in, theirs_in):
        assert b.grad.dtype == b.dtype
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), atol=atol, rtol=rtol)


# -- errors ---------------------------------------------------------------------------------
def _z(*shape):
    return backprop.zeros(*shape)


@pytest.mark.parametrize("kwargs, match", [
    (dict(input=_z(32, 32), weight=_z(4, 3, 3, 3)),
     r"conv2d: expected input with 4 dimensions \(N, C, H, W\) or 3 \(C, H, W\), got shape "
     r"\(32, 32\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3)),
     r"conv2d: expected weight with 4 dimensions .* got shape \(4, 3, 3\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 4, 3, 3)),
     r"conv2d: input has 3 channels \(shape \(2, 3, 8, 8\)\) but weight \(4, 4, 3, 3\) expects "
     r"4 \(groups=1\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 2, 3, 3), groups=2),
     r"conv2d: input has 3 channels .* expects 4 \(groups=2\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 1, 3, 3), groups=3),
     r"conv2d: weight has 4 output channels .* not divisible by groups=3"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), groups=0),
     r"conv2d: groups must be a positive int, got 0"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), bias=_z(3)),
     r"conv2d: expected bias of shape \(4,\) for weight of shape \(4, 3, 3, 3\), got \(3,\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), stride=0),
     r"conv2d: stride must be positive, got \(0, 0\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), dilation=(1, 0)),
     r"conv2d: dilation must be positive, got \(1, 0\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), padding=-1),
     r"conv2d: padding must be non-negative, got \(-1, -1\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), padding=(1, 2, 3)),
     r"conv2d: padding must be an int or a pair of ints \(h, w\), got \(1, 2, 3\)"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), padding="full"),
     r"conv2d: invalid padding string 'full'"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 3, 3), padding="same", stride=2),
     r"conv2d: padding='same' is not supported for strided convolutions"),
    (dict(input=_z(2, 3, 8, 8), weight=_z(4, 3, 9, 9)),
     r"conv2d: kernel \(9, 9\) .* is larger than the padded input \(8, 8\)"),
    (dict(input=_z(2, 3, 4, 4), weight=_z(4, 3, 3, 3), dilation=2),
     r"conv2d: kernel \(3, 3\) \(dilation \(2, 2\), effective size \(5, 5\)\) is larger"),
])
def test_conv2d_shape_errors(kwargs, match):
    with pytest.raises(ShapeError, match=match):
        conv2d(**kwargs)


def test_conv2d_type_errors():
    with pytest.raises(DTypeError, match="conv2d: input, weight and bias must have the same "
                                         "dtype, got float32, float64"):
        conv2d(_z(1, 3, 5, 5), backprop.zeros(2, 3, 3, 3, dtype=backprop.float64))
    with pytest.raises(DTypeError, match="conv2d: expected a numeric input, got bool"):
        conv2d(backprop.zeros(1, 3, 5, 5, dtype=backprop.bool), _z(2, 3, 3, 3))
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a pair of ints"):
        conv2d(_z(1, 3, 5, 5), _z(2, 3, 3, 3), stride=1.5)


@pytest.mark.parametrize("fn, kwargs, match", [
    (max_pool2d, dict(input=_z(8, 8), kernel_size=2),
     r"max_pool2d: expected input with 4 dimensions \(N, C, H, W\) or 3 \(C, H, W\), got shape "
     r"\(8, 8\)"),
    (max_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=3, padding=2),
     r"max_pool2d: padding must be non-negative and at most half of kernel_size, got padding "
     r"\(2, 2\) with kernel_size \(3, 3\)"),
    (max_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=3, padding=2, dilation=2),
     r"max_pool2d: padding must be non-negative and at most half of kernel_size"),
    (max_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=0),
     r"max_pool2d: kernel_size must be positive, got \(0, 0\)"),
    (max_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=2, stride=0),
     r"max_pool2d: stride must be positive"),
    (max_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=9),
     r"max_pool2d: output size is too small: input of shape \(2, 3, 8, 8\) with kernel_size "
     r"\(9, 9\)"),
    (avg_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=3, padding=2),
     r"avg_pool2d: padding must be non-negative and at most half"),
    (avg_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=9),
     r"avg_pool2d: output size is too small"),
    (avg_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=2, divisor_override=0),
     r"avg_pool2d: divisor_override must be a non-zero int, got 0"),
    (avg_pool2d, dict(input=_z(2, 3, 8, 8), kernel_size=(2, 2, 2)),
     r"avg_pool2d: kernel_size must be an int or a pair of ints \(h, w\), got \(2, 2, 2\)"),
])
def test_pool_errors(fn, kwargs, match):
    with pytest.raises(ShapeError, match=match):
        fn(**kwargs)


# -- behaviour ------------------------------------------------------------------------------
def test_conv2d_keeps_float32():
    x = backprop.randn(2, 3, 6, 6, requires_grad=True)
    w = backprop.randn(4, 3, 3, 3, requires_grad=True)
    out = conv2d(x, w, backprop.zeros(4), padding=1)
    assert out.dtype == backprop.float32 and out.shape == (2, 4, 6, 6)
    out.sum().backward()
    assert x.grad.dtype == backprop.float32 and w.grad.dtype == backprop.float32


@needs_torch
def test_conv2d_integer_input_like_torch():
    x = np.arange(2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    w = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2) % 5 - 2
    ours = conv2d(backprop.tensor(x), backprop.tensor(w), stride=2, padding=1)
    theirs = F.conv2d(torch.tensor(x), torch.tensor(w), stride=2, padding=1)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.dtype == backprop.int64


def test_conv2d_only_weight_needs_grad():
    x = backprop.randn(2, 3, 5, 5)
    w = backprop.randn(2, 3, 3, 3, requires_grad=True)
    conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (2, 3, 3, 3)


def test_conv2d_empty_batch():
    out = conv2d(backprop.zeros(0, 3, 5, 5), backprop.zeros(2, 3, 3, 3))
    assert out.shape == (0, 2, 3, 3)


@needs_torch
def test_max_pool2d_ties_route_to_first_max_like_torch():
    x = np.ones((1, 1, 4, 4))
    ours = backprop.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    max_pool2d(ours, 3, stride=1, padding=1).sum().backward()
    F.max_pool2d(theirs, 3, stride=1, padding=1).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_max_pool2d_nan_propagates():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    out = max_pool2d(backprop.tensor(x), 2).numpy()
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1, 1])


@needs_torch
def test_max_pool2d_infinite_gradient_stays_at_the_argmax():
    x = np.random.default_rng(6).standard_normal((1, 1, 4, 4))
    g = np.ones((1, 1, 2, 2))
    g[0, 0, 0, 1] = np.inf
    ours, theirs = backprop.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    max_pool2d(ours, 2).backward(backprop.tensor(g))
    F.max_pool2d(theirs, 2).backward(torch.tensor(g))
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@needs_torch
@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                    dict(kernel_size=(2, 3), stride=1, dilation=(2, 1))])
def test_max_pool2d_indices_match_torch(kwargs):
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 7))
    out, idx = max_pool2d(backprop.tensor(x), return_indices=True, **kwargs)
    t_out, t_idx = F.max_pool2d(torch.tensor(x), return_indices=True, **kwargs)
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())
    assert idx.dtype == backprop.int64 and not idx.requires_grad
    np.testing.assert_array_equal(out.numpy(), t_out.numpy())


@needs_torch
def test_pools_on_integers_like_torch():
    x = np.arange(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) * 7 % 23 - 11
    for ours, theirs, kw in [(max_pool2d, F.max_pool2d, dict(kernel_size=3, padding=1)),
                             (avg_pool2d, F.avg_pool2d, dict(kernel_size=3, padding=1)),
                             (avg_pool2d, F.avg_pool2d, dict(kernel_size=2, divisor_override=3))]:
        out = ours(backprop.tensor(x), **kw)
        np.testing.assert_array_equal(out.numpy(), theirs(torch.tensor(x), **kw).numpy())
        assert out.dtype == backprop.int64


@needs_torch
def test_stride_as_list_and_empty_stride_defaults_to_kernel():
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 6))
    np.testing.assert_allclose(max_pool2d(backprop.tensor(x), [2, 2], stride=[]).numpy(),
                               F.max_pool2d(torch.tensor(x), 2).numpy())
    np.testing.assert_allclose(
        conv2d(backprop.tensor(x), backprop.tensor(np.ones((1, 2, 3, 3))), stride=[2]).numpy(),
        F.conv2d(torch.tensor(x), torch.ones(1, 2, 3, 3, dtype=torch.float64), stride=[2]).numpy())


# -- larger shapes against torch ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((8, 3, 32, 32), (16, 3, 3, 3), dict(padding=1)),
    ((4, 16, 16, 16), (32, 16, 3, 3), dict(padding=1, stride=2)),
    ((4, 8, 15, 17), (8, 2, 5, 3), dict(padding=(2, 1), dilation=(1, 2), groups=4)),
    ((2, 6, 20, 20), (6, 1, 3, 3), dict(padding="same", groups=6)),
    ((2, 4, 12, 12), (6, 4, 4, 4), dict(padding="same", dilation=2)),
    ((3, 8, 10, 10), (4, 8, 1, 1), dict()),
    ((5, 4, 9, 9), (8, 4, 3, 3), dict(stride=(3, 2), padding="valid")),
])
@needs_torch
def test_conv2d_matches_torch(dtype, x_shape, w_shape, kwargs):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape) * 0.2,
              rng.standard_normal(w_shape[0])]
    _check(lambda x, w, b: conv2d(x, w, b, **kwargs),
           lambda x, w, b: F.conv2d(x, w, b, **kwargs), arrays, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True),
    dict(kernel_size=3, stride=2, dilation=2, padding=1),
])
@needs_torch
def test_max_pool2d_matches_torch(dtype, kwargs):
    x = np.random.default_rng(1).standard_normal((4, 8, 17, 16))
    _check(lambda x: max_pool2d(x, **kwargs), lambda x: F.max_pool2d(x, **kwargs), [x], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=4, stride=3, padding=2, ceil_mode=True),
    dict(kernel_size=3, padding=1, divisor_override=5),
])
@needs_torch
def test_avg_pool2d_matches_torch(dtype, kwargs):
    x = np.random.default_rng(2).standard_normal((4, 8, 17, 16))
    _check(lambda x: avg_pool2d(x, **kwargs), lambda x: F.avg_pool2d(x, **kwargs), [x], dtype)


@needs_torch
def test_unbatched_inputs_match_torch():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    _check(lambda x, w: conv2d(x, w, padding=1), lambda x, w: F.conv2d(x, w, padding=1), [x, w],
           np.float64)
    _check(lambda x: max_pool2d(x, 3, 2), lambda x: F.max_pool2d(x, 3, 2), [x], np.float64)
    _check(lambda x: avg_pool2d(x, 3, 2, 1), lambda x: F.avg_pool2d(x, 3, 2, 1), [x], np.float64)
