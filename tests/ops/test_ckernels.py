"""The C array kernels (``ops/_ckernels.c``) against the NumPy code they stand in for.

Each kernel must give the NumPy code's bits: max-pool over tiling windows (its maxima,
the first argmax on ties, NaN winning its window, -0.0 against +0.0 kept as np.maximum
keeps them, the input gradient with +0.0 off the argmax and leftover rows and columns),
and ReLU's backward (g·0 is -0.0 for a negative g, NaN for an infinite one). The
Monitor's passes (``sum_pass``, ``copy_pass``) write NumPy's bits and sum in an order of
their own, which ``_lane_sums`` below repeats in NumPy, bit for bit. The optimizers' steps
(SGD with momentum, Adam) give the NumPy path's parameters and state bit for bit. The NumPy
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


# -- the Monitor's passes ------------------------------------------------------------------
LANES, BLOCK = 32, 2048  # as in _ckernels.c


def _lane_sums(terms: list) -> list:
    """The C passes' sums of each array of per-element ``terms``, in their order: per block
    of BLOCK elements, LANES lanes in the terms' dtype (element i of a block into lane
    i % LANES, in order), each block's lanes added into float64 totals, and the totals
    added pairwise at the end (lane j + 16 into j, then j + 8, ...)."""
    n = terms[0].size
    out = []
    for t in terms:
        totals = np.zeros(LANES, np.float64)
        for start in range(0, n, BLOCK):
            block = t[start:start + BLOCK]
            lanes = np.zeros(LANES, t.dtype)
            for row in range(0, block.size, LANES):
                part = block[row:row + LANES]
                lanes[:part.size] += part
            totals += lanes.astype(np.float64)
        width = LANES // 2
        while width >= 1:
            totals[:width] += totals[width:2 * width]
            width //= 2
        out.append(float(totals[0]))
    return out


SIZES = [0, 1, 31, 32, 33, 2047, 2048, 2049, 5000]


TERMS = {2: "x²", 6: "x², |x|", 3: "x, x²"}  # sum_pass's terms: 1 Σx, 2 Σx², 4 Σ|x|


@pytest.mark.parametrize("terms", sorted(TERMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_sum_pass_sums_in_its_stated_order_and_adds_as_numpy_adds(n, dtype, terms):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 1e3], n)).astype(dtype)
    x[: min(n, 3)] = -0.0
    adds = [rng.standard_normal(n).astype(dtype) for _ in range(2)]
    expected_adds = [a + x for a in adds]
    got = REAL.sum_pass(x, tuple(adds), n, terms)
    want = _lane_sums([x, x * x, np.abs(x)])
    assert got == tuple(w if terms & bit else 0.0 for w, bit in zip(want, (1, 2, 4), strict=True))
    for a, e in zip(adds, expected_adds, strict=True):
        assert _bits(a) == _bits(e)
    if n >= 2048:  # float64 totals: close to the exact sums, not only to float32's
        exact = x.astype(np.float64)
        assert got[1] == pytest.approx(float(exact @ exact), rel=1e-6)
        if terms & 4:
            assert got[2] == pytest.approx(float(np.abs(exact).sum()), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_pass_lets_nan_and_infinity_through(dtype):
    x = np.arange(100, dtype=dtype)
    total = np.zeros(100, dtype)
    x[40] = np.inf
    assert REAL.sum_pass(x, (total,), 100, 6) == (0.0, np.inf, np.inf) and total[40] == np.inf
    x[41] = -np.inf
    s, sq, _ = REAL.sum_pass(x, (), 100, 3)
    assert np.isnan(s) and sq == np.inf
    x[7] = np.nan
    assert all(np.isnan(v) for v in REAL.sum_pass(x, (), 100, 6)[1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_copy_pass_copies_or_subtracts_as_numpy_does(n, dtype):
    rng = np.random.default_rng(n + 1)
    src = rng.standard_normal(n).astype(dtype)
    src[: min(n, 2)] = [-0.0, np.nan][: min(n, 2)]
    dst = rng.standard_normal(n).astype(dtype)
    sq = REAL.copy_pass(src, dst, False, n)
    assert _bits(dst) == _bits(src)
    assert sq == _lane_sums([src * src])[0] or (n >= 2 and np.isnan(sq))
    before = rng.standard_normal(n).astype(dtype)
    now = before + rng.standard_normal(n).astype(dtype) * dtype(1e-3)
    change = before.copy()
    sq = REAL.copy_pass(now, change, True, n)
    diff = now - before
    assert _bits(change) == _bits(diff)
    assert sq == _lane_sums([diff * diff])[0]


def test_the_passes_refuse_what_they_cannot_read():
    k = _kernels.KERNELS
    x = np.zeros(8, np.float32)
    with pytest.raises(TypeError, match="differ in dtype"):
        k.sum_pass(x, (np.zeros(8),), 8, 2)
    with pytest.raises(ValueError, match="holds 8 items, expected 9"):
        k.sum_pass(x, (), 9, 2)
    with pytest.raises(TypeError):  # the arrays to add into come as a tuple
        k.sum_pass(x, [x.copy()], 8, 2)
    with pytest.raises(ValueError, match="at most 16 arrays"):
        k.sum_pass(x, tuple(np.zeros(8, np.float32) for _ in range(17)), 8, 2)
    with pytest.raises(ValueError, match="terms 2 .* got 7"):
        k.sum_pass(x, (), 8, 7)
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        k.sum_pass(np.zeros(16, np.float32)[::2], (), 8, 2)
    with pytest.raises((BufferError, ValueError), match="writable|read-only"):
        read_only = np.zeros(8, np.float32)
        read_only.flags.writeable = False
        k.sum_pass(x, (read_only,), 8, 2)
    with pytest.raises(TypeError, match="src and dst differ in dtype"):
        k.copy_pass(x, np.zeros(8), False, 8)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's inf - inf
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_momentum_gives_the_numpy_bits(dtype, monkeypatch, kernel_calls):
    """optim.sgd's heavy-ball step (momentum, nothing else) in one C pass: the parameters
    and buffers of five steps equal the NumPy path's bit for bit, -0.0 and a gradient's
    NaN and infinities included."""
    from backprop.optim.sgd import sgd

    rng = np.random.default_rng(5)
    shapes = [(33, 17), (2049,), (1,)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    start[0][0, :3] = -0.0
    grads = []
    for _ in range(5):
        step = [(rng.standard_normal(s) * 10).astype(dtype) for s in shapes]
        step[0][1, :2] = -0.0
        grads.append(step)
    grads[3][1][[5, 6, 7]] = [np.nan, np.inf, -np.inf]

    def run():
        params, bufs = [p.copy() for p in start], [None] * len(shapes)
        for step in grads:
            sgd(params, step, bufs, lr=0.05, momentum=0.9)
        return params + bufs

    fast = run()
    assert kernel_calls.count("sgd_momentum") == 4 * len(shapes)  # every step after the first
    monkeypatch.setattr(_kernels, "KERNELS", None)
    ref = run()
    for a, b in zip(fast, ref, strict=True):
        assert a.dtype == b.dtype and _bits(a) == _bits(b)
    with pytest.raises(TypeError, match="differ in dtype"):
        other = np.float64 if dtype == np.float32 else np.float32
        REAL.sgd_momentum(start[2].copy(), start[2].copy(), start[2].astype(other), 1, 0.1, 0.9)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's inf - inf
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps: backprop.optim.Adam(ps, lr=0.01),
    lambda ps: backprop.optim.Adam(ps, lr=0.05, betas=(0.3, 0.99), weight_decay=0.1),
    lambda ps: backprop.optim.AdamW(ps, lr=0.02, eps=1e-6, weight_decay=0.01),
    lambda ps: backprop.optim.Adam(ps, lr=0.01, maximize=True),
], ids=["adam", "adam-l2-far-lerp", "adamw", "maximize"])
def test_adam_gives_the_numpy_bits(make, dtype, monkeypatch, kernel_calls):
    """Adam's update (without amsgrad) in one C pass: parameters and both moments after six
    steps equal the NumPy path's bit for bit, -0.0 and a gradient's NaN and infinities
    included; amsgrad keeps the NumPy path."""
    rng = np.random.default_rng(6)
    shapes = [(33, 17), (2049,), (1,)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    start[0][0, :3] = -0.0
    grads = [[(rng.standard_normal(s) * 3).astype(dtype) for s in shapes] for _ in range(6)]
    grads[1][0][2, :2] = -0.0
    grads[4][1][[5, 6, 7]] = [np.nan, np.inf, -np.inf]

    def run():
        params = [backprop.tensor(p.copy(), requires_grad=True) for p in start]
        opt = make(params)
        for step in grads:
            for p, g in zip(params, step, strict=True):
                p.grad = backprop.tensor(g)
            opt.step()
        state = [opt.state[p][k].numpy() for p in params for k in ("exp_avg", "exp_avg_sq")]
        return [p.detach().numpy() for p in params] + state

    fast = run()
    assert kernel_calls.count("adam_step") == 6 * len(shapes)
    monkeypatch.setattr(_kernels, "KERNELS", None)
    ref = run()
    for a, b in zip(fast, ref, strict=True):
        assert a.dtype == b.dtype and _bits(a) == _bits(b)


def test_amsgrad_keeps_the_numpy_path(kernel_calls):
    p = backprop.tensor(np.ones(4, np.float32), requires_grad=True)
    opt = backprop.optim.Adam([p], lr=0.1, amsgrad=True)
    p.grad = backprop.tensor(np.full(4, 0.5, np.float32))
    opt.step()
    assert "adam_step" not in kernel_calls
