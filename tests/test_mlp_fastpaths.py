"""The MLP fast paths (issue 15) against the general paths they shortcut, bit for bit.

Each fast path performs the general path's floating-point operations on the same values in
the same order, so every comparison here is exact (``np.array_equal``, no tolerance):

- ``cross_entropy`` on (N, C) logits with in-range class indices, no weights, no smoothing
  (``fused._ce_plain_forward`` / ``_ce_plain_backward``);
- ``linear`` with valid tensors skips the argument checks that name a problem
  (``linalg._plain_linear``);
- ``linear`` on few rows against a wide layer computes (W @ xᵀ)ᵀ (``linalg._few_rows``):
  the same dot products, bit for bit with OpenBLAS (a rounding bound elsewhere);
- ``sgd`` with momentum and nothing else (``sgd._heavy_ball``).

The reference is the general path itself, reached by switching the fast path off.
Run under both engines (``BACKPROP_PURE_PYTHON=1`` for the reference engine).
"""
import numpy as np
import pytest

import backprop as bp
import backprop.nn.functional as F
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError
from backprop.ops import fused, linalg
from backprop.optim import sgd as sgd_mod


def _general_ce(monkeypatch):
    monkeypatch.setattr(fused, "_ce_plain_forward", lambda *args: None)


def _ce_run(x_np, t_np, **kwargs):
    x = bp.tensor(x_np, requires_grad=True)
    loss = F.cross_entropy(x, bp.tensor(t_np), **kwargs)
    g = np.ones(loss.shape, dtype=x_np.dtype) if loss.ndim else None
    loss.backward(None if g is None else bp.tensor(g))
    return loss, x.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tdtype", [np.int64, np.int32, np.uint8])
def test_cross_entropy_plain_path_is_the_general_path(monkeypatch, rng, reduction, dtype,
                                                       tdtype):
    x = (rng.standard_normal((37, 10)) * 4).astype(dtype)
    x[3] = [1e4, -1e4, 0, 0, 0, 0, 0, 0, 0, 3]  # large logits: only x - max is exponentiated
    t = rng.integers(0, 10, 37).astype(tdtype)
    loss, grad = _ce_run(x, t, reduction=reduction)
    assert loss.grad_fn.plain  # the fast path ran
    with monkeypatch.context() as m:
        _general_ce(m)
        ref_loss, ref_grad = _ce_run(x, t, reduction=reduction)
        assert not ref_loss.grad_fn.plain
    assert loss.dtype == ref_loss.dtype and loss.shape == ref_loss.shape
    assert np.array_equal(loss.detach().numpy(), ref_loss.detach().numpy())
    assert grad.dtype == ref_grad.dtype and np.array_equal(grad, ref_grad)


def test_cross_entropy_plain_path_unbatched_and_incoming_gradient(monkeypatch, rng):
    x = rng.standard_normal(7).astype(np.float32)
    results = []
    for general in (False, True):
        with monkeypatch.context() as m:
            if general:
                _general_ce(m)
            xt = bp.tensor(x, requires_grad=True)
            loss = F.cross_entropy(xt, bp.tensor(3))
            (loss * 2.5).backward()  # an incoming gradient other than 1
            results.append((loss.detach().numpy(), xt.grad.numpy(), loss.grad_fn.plain))
    (fast_loss, fast_grad, fast_plain), (ref_loss, ref_grad, ref_plain) = results
    assert fast_plain and not ref_plain
    assert np.array_equal(fast_loss, ref_loss) and np.array_equal(fast_grad, ref_grad)


@pytest.mark.parametrize("case", ["ignored", "weight", "smoothing", "spatial", "empty"])
def test_cross_entropy_other_cases_take_the_general_path(rng, case):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.integers(0, 4, 6)
    kwargs = {}
    if case == "ignored":
        t[2] = 1
        kwargs["ignore_index"] = 1
    elif case == "weight":
        kwargs["weight"] = bp.tensor(np.arange(1, 5, dtype=np.float32))
    elif case == "smoothing":
        kwargs["label_smoothing"] = 0.1
    elif case == "spatial":
        x, t = rng.standard_normal((2, 4, 3)).astype(np.float32), rng.integers(0, 4, (2, 3))
    else:
        x, t = x[:0], t[:0]
    loss = F.cross_entropy(bp.tensor(x, requires_grad=True), bp.tensor(t), **kwargs)
    assert not loss.grad_fn.plain


@pytest.mark.parametrize("bad", [-1, 4, -100])
def test_cross_entropy_out_of_range_targets_still_named(rng, bad):
    x = bp.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    t = np.array([0, 1, bad, 2, 3])
    if bad == -100:  # the default ignore_index: ignored, not an error (general path)
        loss = F.cross_entropy(x, bp.tensor(t))
        assert not loss.grad_fn.plain
        return
    with pytest.raises(IndexOutOfRange, match=f"cross_entropy: target {bad} is out of bounds"):
        F.cross_entropy(x, bp.tensor(t))


def test_linear_fast_check_keeps_the_general_errors(monkeypatch, rng):
    x = bp.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    w = bp.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    b = bp.tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    assert linalg._plain_linear(x, w, b) and linalg._plain_linear(x, w, None)
    with pytest.raises(ShapeError, match=r"linear: input has 3 features"):
        bp.linear(x[:, :3], w, b)
    with pytest.raises(DTypeError, match="linear: expected operands of the same dtype"):
        bp.linear(x, w, b.double())
    with pytest.raises(ShapeError, match="linear: expected bias of shape"):
        bp.linear(x, w, b[:4])
    # the general checks accept what the fast check passes on: a broadcast bias, a list
    assert not linalg._plain_linear(x, w, b[:1])
    out = bp.linear(x, w, b[:1])
    assert np.array_equal(out.detach().numpy(), x.detach().numpy() @ w.detach().numpy().T
                          + b.detach().numpy()[:1])
    assert not linalg._plain_linear(x.detach().numpy().tolist(), w, b)
    assert bp.linear(x.detach().numpy().tolist(), w, b).shape == (3, 5)


_OPENBLAS = "openblas" in np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]


@pytest.mark.parametrize("shape", [(32, 784, 256), (32, 256, 128), (7, 50, 300), (1, 3, 128),
                                   (2, 5, 64, 256)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_linear_few_rows_order_is_the_usual_product(monkeypatch, rng, shape, bias, dtype):
    """x @ Wᵀ computed as (W @ xᵀ)ᵀ for few rows: each entry is the same dot product.
    With OpenBLAS (NumPy's wheels) the bits are the same; with another BLAS the summation
    order inside a dot product may differ, so there the test allows the rounding bound of
    two different orders (2·K·eps·Σ|x||W|)."""
    *lead, in_f, out_f = shape
    x = rng.standard_normal((*lead, in_f)).astype(dtype)
    w = rng.standard_normal((out_f, in_f)).astype(dtype)
    b = rng.standard_normal(out_f).astype(dtype) if bias else None
    assert linalg._few_rows(x.reshape(-1, in_f), w)
    results = []
    for usual in (False, True):
        with monkeypatch.context() as m:
            if usual:
                m.setattr(linalg, "_few_rows", lambda a, b: False)
            xt, wt = bp.tensor(x, requires_grad=True), bp.tensor(w, requires_grad=True)
            bt = None if b is None else bp.tensor(b, requires_grad=True)
            out = bp.linear(xt, wt, bt)
            out.backward(bp.tensor(np.ones(out.shape, dtype)))
            arr = out.detach().numpy()
            assert arr.flags.c_contiguous and arr.dtype == dtype and arr.shape == (*lead, out_f)
            results.append([arr, xt.grad.numpy(), wt.grad.numpy()])
    (fast, fgx, fgw), (usual, ugx, ugw) = results
    assert np.array_equal(fgx, ugx) and np.array_equal(fgw, ugw)  # backward is unchanged
    if _OPENBLAS:
        assert np.array_equal(fast, usual)
    else:  # pragma: no cover - depends on the BLAS NumPy was built with
        bound = 2 * in_f * np.finfo(dtype).eps * (np.abs(x) @ np.abs(w).T + (0 if b is None
                                                                               else np.abs(b)))
        assert np.all(np.abs(fast - usual) <= bound)


def test_linear_few_rows_rule():
    def few(rows, n, k=3, c_order=True):
        b = np.zeros((n, k), np.float32) if c_order else np.zeros((k, n), np.float32).T
        return linalg._few_rows(np.zeros((rows, k), np.float32), b)
    assert few(32, 256) and few(32, 128) and few(64, 256)
    assert not few(32, 10)  # the narrow last layer: the usual order
    assert not few(256, 256) and not few(128, 1024)  # big batches
    assert not few(64, 128)  # wide, but not four times the rows
    assert not few(32, 256, c_order=False)  # bᵀ already C-ordered: the usual order is fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_backward_few_rows_order_is_the_usual_product(monkeypatch, rng, dtype):
    """The raw-op layer x @ W: dL/dx = g @ Wᵀ, computed as (W @ gᵀ)ᵀ for few rows."""
    x = rng.standard_normal((32, 256)).astype(dtype)
    w = rng.standard_normal((256, 128)).astype(dtype)
    g = rng.standard_normal((32, 128)).astype(dtype)
    assert linalg._few_rows(g, w)
    results = []
    for usual in (False, True):
        with monkeypatch.context() as m:
            if usual:
                m.setattr(linalg, "_few_rows", lambda a, b: False)
            xt, wt = bp.tensor(x, requires_grad=True), bp.tensor(w, requires_grad=True)
            (xt @ wt).backward(bp.tensor(g))
            results.append((xt.grad.numpy(), wt.grad.numpy()))
    (fx, fw), (ux, uw) = results
    assert fx.flags.c_contiguous and fx.dtype == dtype and np.array_equal(fw, uw)
    if _OPENBLAS:
        assert np.array_equal(fx, ux)
    else:  # pragma: no cover - depends on the BLAS NumPy was built with
        bound = 2 * 128 * np.finfo(dtype).eps * (np.abs(g) @ np.abs(w).T)
        assert np.all(np.abs(fx - ux) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_heavy_ball_is_the_general_loop(rng, dtype):
    """The general loop, reached with maximize=True on negated gradients (-(-g) == g
    exactly), against the fast loop on the same values, over several steps."""
    shapes = [(6, 5), (6,), (1,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ref = [p.copy() for p in params]
    bufs, ref_bufs = [None] * 3, [None] * 3
    for _ in range(4):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        kept = [g.copy() for g in grads]
        sgd_mod.sgd(params, grads, bufs, lr=0.1, momentum=0.9)
        sgd_mod.sgd(ref, [-g for g in grads], ref_bufs, lr=0.1, momentum=0.9, maximize=True)
        assert all(np.array_equal(g, k) for g, k in zip(grads, kept))  # grads only read
        assert all(b is not g for b, g in zip(bufs, grads))  # the buffer is never the grad
    for p, r, b, rb in zip(params, ref, bufs, ref_bufs):
        assert p.dtype == dtype and np.array_equal(p, r) and np.array_equal(b, rb)


def _train(steps: int, rng_seed: int = 0):
    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Linear(12, 160), bp.nn.ReLU(), bp.nn.Linear(160, 8),
                             bp.nn.ReLU(), bp.nn.Linear(8, 5))
    opt = bp.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = np.random.default_rng(rng_seed)
    for _ in range(steps):
        x = bp.tensor(data.standard_normal((9, 12)).astype(np.float32))
        y = bp.tensor(data.integers(0, 5, 9))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()], loss.item()


@pytest.mark.skipif(not _OPENBLAS, reason="the few-rows product is bit for bit with OpenBLAS")
def test_idiomatic_mlp_training_is_unchanged_by_the_fast_paths(monkeypatch):
    assert linalg._few_rows(np.zeros((9, 12)), np.zeros((160, 12)))  # the first layer does
    fast, fast_loss = _train(6)
    with monkeypatch.context() as m:
        _general_ce(m)
        m.setattr(linalg, "_plain_linear", lambda *args: False)
        m.setattr(linalg, "_few_rows", lambda a, b: False)
        m.setattr(sgd_mod, "_heavy_ball", _general_heavy_ball)
        ref, ref_loss = _train(6)
    assert fast_loss == ref_loss
    assert all(np.array_equal(a, b) for a, b in zip(fast, ref))


def _general_heavy_ball(params, grads, bufs, lr, momentum):
    """sgd's general loop in place of the fast one (maximize on negated gradients)."""
    sgd_mod.sgd(params, [-g for g in grads], bufs, lr=lr, momentum=momentum, maximize=True)


@pytest.mark.parametrize("case, error, message", [
    ("bool target", DTypeError, "expected class-index targets of an integer dtype"),
    ("batch mismatch", ShapeError, r"expected input batch size \(4\) to match target batch "
                                   r"size \(3\)"),
    ("int logits", DTypeError, "expected input to be a floating-point tensor"),
    ("bad reduction", ValueError, "'avg' is not a valid value for reduction"),
    ("bad smoothing", ValueError, "label_smoothing must be between 0.0 and 1.0"),
])
def test_cross_entropy_fast_check_keeps_the_general_errors(rng, case, error, message):
    x = bp.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    t = bp.tensor(np.array([0, 2, 1, 1]))
    kwargs = {}
    if case == "bool target":
        t = bp.tensor(np.array([True, False, True, True]))
    elif case == "batch mismatch":
        t = bp.tensor(np.array([0, 2, 1]))
    elif case == "int logits":
        x = bp.tensor(np.ones((4, 3), dtype=np.int64))
    elif case == "bad reduction":
        kwargs["reduction"] = "avg"
    else:
        kwargs["label_smoothing"] = 1.5
    assert not fused._plain_ce_args(x, t, None, -100, kwargs.get("reduction", "mean"),
                                    kwargs.get("label_smoothing", 0.0))
    with pytest.raises(error, match=message):
        F.cross_entropy(x, t, **kwargs)


def test_cross_entropy_probability_targets_are_not_taken_for_indices(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    p = np.full((4, 3), 1 / 3, dtype=np.float32)
    loss = F.cross_entropy(bp.tensor(x, requires_grad=True), bp.tensor(p))
    assert not fused._plain_ce_args(bp.tensor(x), bp.tensor(p), None, -100, "mean", 0.0)
    assert loss.grad_fn.probs
