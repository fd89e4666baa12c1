"""The C array kernels (``ops/_ckernels.c``) against the NumPy code they stand in for.

Each kernel must give the NumPy code's bits: max-pool over tiling windows (its maxima,
the first argmax on ties, NaN winning its window, -0.0 against +0.0 kept as np.maximum
keeps them, the input gradient with +0.0 off the argmax and leftover rows and columns),
and ReLU's backward (g·0 is -0.0 for a negative g, NaN for an infinite one). The NumPy
code runs with the kernels switched off (``_kernels.KERNELS = None``), as it does under
BACKPROP_PURE_PYTHON=1 or without a C compiler; these tests skip where the kernels are
not built.
"""
import numpy as np
import pytest

import backprop
from backprop.ops import _kernels, conv

pytestmark = pytest.mark.skipif(_kernels.KERNELS is None,
                                reason="the C array kernels are not built (or pure Python)")


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _awkward(rng, shape, dtype):
    """Values with ties, ±0.0, NaN and ±inf among ordinary ones."""
    x = rng.integers(-3, 4, size=shape).astype(dtype)  # many ties
    mask = rng.random(shape) < 0.3
    x[mask] = rng.standard_normal(int(mask.sum()))
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
    flat[picks[:3]] = -0.0
    flat[picks[3:5]] = np.nan
    flat[picks[5:7]] = np.inf
    flat[picks[7:9]] = -np.inf
    return x


REAL = _kernels.KERNELS


def _pool(x, kernel, g, monkeypatch, kernels_on, return_indices=False):
    monkeypatch.setattr(_kernels, "KERNELS", REAL if kernels_on else None)
    xt = backprop.tensor(x, requires_grad=True)
    res = conv.max_pool2d(xt, kernel, return_indices=return_indices)
    out, idx = res if return_indices else (res, None)
    out.backward(backprop.tensor(g))
    return out.detach().numpy(), xt.grad.numpy(), None if idx is None else idx.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel", [
    ((2, 3, 8, 8), 2), ((3, 2, 7, 9), 2), ((2, 2, 9, 7), 3), ((2, 4, 6, 10), (2, 3)),
    ((1, 1, 5, 5), 5), ((4, 16, 28, 28), 2)])
def test_max_pool_tiles_gives_the_numpy_bits(shape, kernel, dtype, monkeypatch):
    rng = np.random.default_rng(sum(shape))
    x = _awkward(rng, shape, dtype)
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    out_shape = shape[:2] + (shape[2] // k[0], shape[3] // k[1])
    g = rng.standard_normal(out_shape).astype(dtype)
    g.reshape(-1)[:4] = -0.0  # a -0.0 gradient becomes +0.0 at its argmax, as in NumPy's
    fast = _pool(x, kernel, g, monkeypatch, True, return_indices=True)
    ref = _pool(x, kernel, g, monkeypatch, False, return_indices=True)
    for a, b in zip(fast, ref, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert _bits(a) == _bits(b)


@pytest.fixture
def kernel_calls(monkeypatch) -> list:
    """The names of the kernels called while the test runs, in order."""
    calls = []

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(REAL, name)

    monkeypatch.setattr(_kernels, "KERNELS", Spy())
    return calls


def test_the_kernel_really_runs_for_a_tiling_pool(kernel_calls):
    calls = kernel_calls
    x = backprop.tensor(np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4), requires_grad=True)
    backprop.nn.functional.relu(conv.max_pool2d(x, 2)).sum().backward()
    assert calls == ["max_pool2d_tiles", "relu_backward", "max_pool2d_tiles_backward"]
    assert x.grad.numpy()[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 0, 1],
                                             [0, 0, 0, 0], [0, 1, 0, 1]]


def test_pools_the_kernel_does_not_take_run_the_numpy_code(kernel_calls):
    """Overlapping windows, padding, a strided view and float16 keep the NumPy code."""
    calls = kernel_calls
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    conv.max_pool2d(backprop.tensor(x), 3, stride=2)
    conv.max_pool2d(backprop.tensor(x), 2, padding=1)
    conv.max_pool2d(backprop.tensor(x.astype(np.float16)), 2)
    conv.max_pool2d(backprop.tensor(x).transpose(2, 3), 2)
    assert calls == []


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's inf·0
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_gives_the_numpy_bits(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x = _awkward(rng, (5, 7, 9), dtype)
    g = _awkward(rng, (5, 7, 9), dtype)  # -0.0, NaN and ±inf gradients too

    def run():
        xt = backprop.tensor(x, requires_grad=True)
        backprop.nn.functional.relu(xt).backward(backprop.tensor(g))
        return xt.grad.numpy()

    fast = run()
    monkeypatch.setattr(_kernels, "KERNELS", None)
    ref = run()
    assert fast.dtype == ref.dtype and _bits(fast) == _bits(ref)


def test_the_kernels_refuse_what_they_cannot_read():
    k = _kernels.KERNELS
    x = np.zeros((1, 4, 4), np.float32)
    out = np.zeros((1, 2, 2), np.float32)
    arg = np.zeros((1, 2, 2), np.int16)
    with pytest.raises(TypeError, match="x and out differ in dtype"):
        k.max_pool2d_tiles(x, out.astype(np.float64), arg, 1, 4, 4, 2, 2, 2, 2)
    with pytest.raises(TypeError, match="format"):
        k.max_pool2d_tiles(x.astype(np.int32), out, arg, 1, 4, 4, 2, 2, 2, 2)
    with pytest.raises(ValueError, match="holds 16 items, expected 32"):
        k.max_pool2d_tiles(x, out, arg, 2, 4, 4, 2, 2, 2, 2)
    with pytest.raises(ValueError, match="do not tile"):
        k.max_pool2d_tiles(x, out, arg, 1, 4, 4, 3, 3, 2, 2)
    with pytest.raises(ValueError, match="argmax 4 outside a 2x2 window"):
        k.max_pool2d_tiles_backward(out, np.full((1, 2, 2), 4, np.int16), x,
                                    1, 4, 4, 2, 2, 2, 2)
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        k.relu_backward(x, x, np.zeros((4, 8), np.float32)[:, ::2], 16)
