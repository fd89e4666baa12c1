"""PyTorch compatibility audit: realistic PyTorch-style code, run unchanged on both libraries.

Every snippet below is written once, as a function of a namespace ``L`` that holds
``T`` (the top-level module: ``backprop`` or ``torch``), ``nn``, ``optim``, ``F``
(``nn.functional``), ``DataLoader`` and ``TensorDataset``, exactly as a user would
after ``import backprop as torch``. Each test runs the snippet with backprop and
with torch from identical weights and data (weights are written from one NumPy
generator through ``copy_`` under ``no_grad``), then compares what the snippet
returns (losses per step, outputs, final weights, gradients) to a tight tolerance
in float64 and a float32-sized one in float32.

Known bugs are kept as ``xfail(strict=True)`` tests that assert the PyTorch
behaviour; they start passing (and so fail the suite) when the bug is fixed.

The whole file skips when PyTorch (the oracle) is not installed.
"""
from __future__ import annotations

import copy
import gc
import threading
import types
import weakref

import numpy as np
import pytest

import backprop
from backprop import nn as bnn
from backprop import optim as boptim
from backprop.utils.data import DataLoader as BDataLoader
from backprop.utils.data import TensorDataset as BTensorDataset

TOL = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=2e-4, atol=2e-5)}


# -- harness ---------------------------------------------------------------------------------
def _namespace(T, nn, optim, F, DataLoader, TensorDataset):
    return types.SimpleNamespace(T=T, nn=nn, optim=optim, F=F, DataLoader=DataLoader,
                                 TensorDataset=TensorDataset, name=T.__name__)


@pytest.fixture
def libs(oracle):
    """(backprop namespace, torch namespace): the same names a PyTorch script imports."""
    import torch.nn.functional
    import torch.utils.data

    bp = _namespace(backprop, bnn, boptim, bnn.functional, BDataLoader, BTensorDataset)
    pt = _namespace(oracle, oracle.nn, oracle.optim, oracle.nn.functional,
                    oracle.utils.data.DataLoader, oracle.utils.data.TensorDataset)
    return bp, pt


def _np(value):
    """Tensors (of either library), numbers and containers of them, as NumPy / Python data."""
    if isinstance(value, dict):
        return {k: _np(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_np(v) for v in value]
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return np.array(value.detach().numpy())
    return value


def _assert_same(a, b, tol, path="result"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            _assert_same(a[k], b[k], tol, f"{path}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, tol, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, err_msg=path, **tol)
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float) or isinstance(b, float):
        np.testing.assert_allclose(a, b, err_msg=path, **tol)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def run_both(snippet, libs, dtype="float64", **kwargs):
    """Run ``snippet(L, ...)`` with backprop and with torch; assert equal results; return them."""
    bp, pt = libs
    got = _np(snippet(bp, dtype=dtype, **kwargs))
    want = _np(snippet(pt, dtype=dtype, **kwargs))
    _assert_same(got, want, TOL[dtype])
    return got, want


def init_weights(L, model, seed=0, scale=0.5):
    """Deterministic weights from NumPy, written the PyTorch way (copy_ under no_grad)."""
    rng = np.random.default_rng(seed)
    with L.T.no_grad():
        for name, p in model.named_parameters():
            fan_in = p.shape[1] if p.dim() > 1 else 1
            for s in p.shape[2:]:
                fan_in *= s
            p.copy_(L.T.tensor(rng.standard_normal(tuple(p.shape)) * scale / np.sqrt(fan_in)))
    return model


def dt(L, dtype):
    return getattr(L.T, dtype)


def data(L, shape, dtype, seed=1):
    return L.T.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dt(L, dtype))


def labels(L, n, classes, seed=2):
    return L.T.tensor(np.random.default_rng(seed).integers(0, classes, n))


# -- 1. an MLP classifier: Sequential + CrossEntropyLoss + Adam + DataLoader -----------------
def mlp_classifier(L, dtype):
    T, nn, optim = L.T, L.nn, L.optim
    X, y = data(L, (60, 5), dtype), labels(L, 60, 3)
    loader = L.DataLoader(L.TensorDataset(X, y), batch_size=16, shuffle=False)
    model = nn.Sequential(
        nn.Linear(5, 16), nn.ReLU(),
        nn.Linear(16, 16), nn.Tanh(),
        nn.Dropout(p=0.0),
        nn.Linear(16, 3),
    ).to(dt(L, dtype))
    init_weights(L, model)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    losses, accs = [], []
    for epoch in range(3):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            logits = model(xb)
            loss = criterion(logits, yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        correct, total = 0, 0
        with T.no_grad():
            for xb, yb in loader:
                pred = model(xb).argmax(dim=1)
                correct += (pred == yb).sum().item()
                total += yb.size(0)
        accs.append(correct / total)
    with T.no_grad():
        probs = T.softmax(model(X), dim=-1)
    return {"losses": losses, "accs": accs, "probs": probs,
            "weights": [p for p in model.parameters()],
            "n_batches": len(loader), "n_params": sum(p.numel() for p in model.parameters())}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_classifier_training(libs, dtype):
    got, _ = run_both(mlp_classifier, libs, dtype)
    assert got["losses"][-1] < got["losses"][0]
    assert got["n_batches"] == 4


def mlp_with_shuffle(L, dtype):
    """shuffle=True: each epoch visits every sample once (orders differ between libraries)."""
    T = L.T
    T.manual_seed(0)
    X = T.arange(20, dtype=dt(L, dtype)).reshape(10, 2)
    y = T.arange(10)
    loader = L.DataLoader(L.TensorDataset(X, y), batch_size=4, shuffle=True, drop_last=False)
    seen = []
    for xb, yb in loader:
        assert xb.shape[1:] == (2,) and xb.dtype == dt(L, dtype) and yb.dtype == T.int64
        np.testing.assert_array_equal(_np(xb[:, 0]), 2 * _np(yb))
        seen.extend(yb.tolist())
    return {"sorted": sorted(seen), "sizes": [len(b[1]) for b in loader]}


def test_dataloader_shuffle_covers_dataset(libs):
    run_both(mlp_with_shuffle, libs, "float64")


# -- 2. a small CNN: Conv2d / BatchNorm2d / MaxPool2d / Flatten / Linear -----------------------
def build_cnn(L):
    nn = L.nn
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 3),
    )


def small_cnn(L, dtype):
    T, nn, optim, F = L.T, L.nn, L.optim, L.F
    model = build_cnn(L).to(dtype=dt(L, dtype))
    init_weights(L, model)
    X, y = data(L, (8, 1, 8, 8), dtype), labels(L, 8, 3)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(4):
        model.train()
        out = model(X)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        eval_out = model(X)
    bn = model[1]
    return {"losses": losses, "eval": eval_out, "running_mean": bn.running_mean,
            "running_var": bn.running_var, "nbt": bn.num_batches_tracked.item(),
            "state_keys": list(model.state_dict().keys()),
            "grads": [p.grad for p in model.parameters()]}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_small_cnn_training(libs, dtype):
    got, _ = run_both(small_cnn, libs, dtype)
    assert got["nbt"] == 4


def conv_variants(L, dtype):
    """Strided, dilated and grouped convolutions, pooling variants, LayerNorm over (C, H, W)."""
    T, nn = L.T, L.nn
    model = nn.Sequential(
        nn.Conv2d(2, 4, kernel_size=3, stride=2, padding=2, dilation=2),
        nn.ELU(),
        nn.Conv2d(4, 4, kernel_size=(3, 1), padding=(1, 0), groups=2),
        nn.LayerNorm([4, 5, 5]),
        nn.AvgPool2d(kernel_size=2, stride=1),
        nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d(3),
        nn.SiLU(),
        nn.Flatten(start_dim=1),
        nn.Linear(36, 8), nn.Softplus(), nn.Linear(8, 2), nn.Sigmoid(),
    ).to(dt(L, dtype))
    init_weights(L, model, scale=1.0)
    X = data(L, (3, 2, 9, 9), dtype).requires_grad_(True)
    Y = (data(L, (3, 2), dtype, seed=6) > 0).to(dt(L, dtype))
    loss = nn.BCELoss()(model(X), Y)
    loss.backward()
    return {"loss": loss, "x.grad": X.grad, "grads": [p.grad for p in model.parameters()]}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv_variants(libs, dtype):
    run_both(conv_variants, libs, dtype)


# -- 3. regression: MSELoss + SGD(momentum, nesterov, weight_decay) + StepLR ------------------
def regression(L, dtype):
    T, nn, optim = L.T, L.nn, L.optim
    rng = np.random.default_rng(3)
    X = T.tensor(rng.uniform(-1, 1, (32, 3)), dtype=dt(L, dtype))
    true_w = T.tensor([[2.0], [-1.0], [0.5]], dtype=dt(L, dtype))
    y = X @ true_w + 0.3
    model = nn.Linear(3, 1).to(dt(L, dtype))
    init_weights(L, model)
    loss_fn = nn.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    losses, lrs = [], []
    for epoch in range(8):
        for i in range(0, 32, 8):
            opt.zero_grad()
            loss = loss_fn(model(X[i:i + 8]), y[i:i + 8])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return {"losses": losses, "lrs": lrs, "last_lr": sched.get_last_lr(),
            "w": model.weight, "b": model.bias}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_regression_sgd_nesterov_steplr(libs, dtype):
    got, _ = run_both(regression, libs, dtype)
    assert got["lrs"][:4] == [0.1, 0.1, 0.05, 0.05]


def other_optimizers(L, dtype, name):
    T, nn, optim = L.T, L.nn, L.optim
    model = init_weights(L, nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
                         .to(dt(L, dtype)))
    X, Y = data(L, (10, 4), dtype), data(L, (10, 2), dtype, seed=5)
    make = {
        "AdamW": lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
        "Adam-amsgrad": lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
        "RMSprop": lambda p: optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
        "Adagrad": lambda p: optim.Adagrad(p, lr=1e-1),
        "SGD-groups": lambda p: optim.SGD([{"params": model[0].parameters()},
                                           {"params": model[2].parameters(), "lr": 0.01}],
                                          lr=0.1, momentum=0.8, dampening=0.1),
    }[name]
    opt = make(model.parameters())
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = L.F.smooth_l1_loss(model(X), Y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return {"losses": losses, "params": list(model.parameters()),
            "lrs": [g["lr"] for g in opt.param_groups]}


@pytest.mark.parametrize("name", ["AdamW", "Adam-amsgrad", "RMSprop", "Adagrad", "SGD-groups"])
def test_other_optimizers_and_cosine_schedule(libs, name):
    run_both(other_optimizers, libs, "float64", name=name)


# -- 4. custom modules: submodules, buffers, ModuleList, parameter sharing ------------------
def make_custom_module(L):
    T, nn, F = L.T, L.nn, L.F

    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.fc = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)

        def forward(self, x):
            return x + F.gelu(self.fc(self.norm(x)))

    class Net(nn.Module):
        def __init__(self, vocab=7, dim=6, depth=2):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
            self.head = nn.Linear(dim, vocab, bias=False)
            self.head.weight = self.embed.weight            # tied weights
            self.scale = nn.Parameter(T.ones(1))
            self.register_buffer("calls", T.zeros((), dtype=T.int64))
            self.register_buffer("cache", T.zeros(3), persistent=False)

        def forward(self, idx):
            self.calls += 1
            h = self.embed(idx)
            for block in self.blocks:
                h = block(h)
            return self.head(h) * self.scale

    return Net()


def custom_module(L, dtype):
    T, optim = L.T, L.optim
    model = make_custom_module(L).to(dt(L, dtype))
    init_weights(L, model)
    idx = T.tensor(np.random.default_rng(4).integers(0, 7, (5, 4)))
    target = T.tensor(np.random.default_rng(5).integers(0, 7, (5, 4)))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        logits = model(idx)
        loss = L.F.cross_entropy(logits.reshape(-1, 7), target.view(-1))
        opt.zero_grad()
        loss.backward()
        assert model.embed.weight.grad is model.head.weight.grad
        opt.step()
        losses.append(loss.item())
    return {
        "losses": losses,
        "names": [n for n, _ in model.named_parameters()],
        "n_unique": len(list(model.parameters())),
        "state_keys": list(model.state_dict()),
        "buffers": [n for n, _ in model.named_buffers()],
        "modules": [n for n, _ in model.named_modules()],
        "children": [n for n, _ in model.named_children()],
        "calls": model.calls.item(),
        "tied": model.head.weight is model.embed.weight,
        "params": [p for p in model.parameters()],
        "training": [m.training for m in model.eval().modules()],
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_custom_module_shared_parameters(libs, dtype):
    got, _ = run_both(custom_module, libs, dtype)
    assert got["tied"] and got["calls"] == 3
    assert "head.weight" not in got["names"] and "head.weight" in got["state_keys"]


def module_dict_and_freezing(L, dtype):
    T, nn, optim = L.T, L.nn, L.optim
    heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 2)}).to(dt(L, dtype))
    init_weights(L, heads)
    heads["b"].requires_grad_(False)
    opt = optim.SGD(filter(lambda p: p.requires_grad, heads.parameters()), lr=0.5)
    x = data(L, (4, 3), dtype)
    for _ in range(2):
        opt.zero_grad()
        (heads["a"](x).pow(2).mean() + heads["b"](x).abs().mean()).backward()
        opt.step()
    return {"keys": list(heads.keys()), "params": list(heads.parameters()),
            "b_grad_none": heads["b"].weight.grad is None,
            "n_trainable": sum(p.numel() for p in heads.parameters() if p.requires_grad)}


def test_module_dict_and_freezing(libs):
    run_both(module_dict_and_freezing, libs)


# -- 5. checkpoints: state_dict through save/load, optimizer state, resume -------------------
def checkpoint_resume(L, dtype, tmp_path):
    T, nn, optim = L.T, L.nn, L.optim
    path = str(tmp_path / f"ckpt-{L.name}.pt")

    def build():
        m = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
        return init_weights(L, m.to(dt(L, dtype)))

    X, Y = data(L, (6, 3), dtype), data(L, (6, 2), dtype, seed=9)

    def train(model, opt, steps):
        out = []
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(X), Y)
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    model = build()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    first = train(model, opt, 2)
    T.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 2}, path)
    straight = train(model, opt, 2)

    ckpt = T.load(path)
    model2 = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    model2 = model2.to(dt(L, dtype))
    result = model2.load_state_dict(ckpt["model"])
    opt2 = optim.Adam(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["optimizer"])
    resumed = train(model2, opt2, 2)
    assert ckpt["epoch"] == 2
    return {"first": first, "straight": straight, "resumed": resumed,
            "missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys),
            "params": list(model2.parameters()),
            "opt_state_keys": sorted(opt2.state_dict()["state"][0].keys()),
            "param_groups": [{k: v for k, v in g.items() if k in ("lr", "betas", "eps", "params")}
                             for g in opt2.state_dict()["param_groups"]]}


def test_checkpoint_save_load_resume(libs, tmp_path):
    got, _ = run_both(checkpoint_resume, libs, "float64", tmp_path=tmp_path)
    np.testing.assert_allclose(got["straight"], got["resumed"], rtol=1e-12)


def load_state_dict_errors(L, dtype):
    nn = L.nn
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    sd["extra"] = sd["weight"]
    res = m.load_state_dict(sd, strict=False)
    del sd["bias"]
    try:
        m.load_state_dict(sd)
        strict_raised = None
    except RuntimeError as e:
        strict_raised = ("Missing key(s)" in str(e), "Unexpected key(s)" in str(e))
    bad = {"weight": L.T.zeros(2, 4), "bias": L.T.zeros(2)}
    try:
        m.load_state_dict(bad)
        size_raised = None
    except RuntimeError as e:
        size_raised = "size mismatch for weight" in str(e)
    return {"unexpected": list(res.unexpected_keys), "missing": list(res.missing_keys),
            "strict": strict_raised, "size": size_raised}


def test_load_state_dict_reports_keys(libs):
    run_both(load_state_dict_errors, libs)


# -- 6. autograd: grad, no_grad, detach, requires_grad_, hooks --------------------------------
def autograd_tour(L, dtype):
    T = L.T
    x = data(L, (4,), dtype).requires_grad_()
    w = data(L, (4,), dtype, seed=7)
    w.requires_grad = True
    y = (x * w).sin().sum() + (x ** 2).mean()
    (gx, gw) = T.autograd.grad(y, (x, w), retain_graph=True)
    y.backward()
    acc_first = x.grad.clone()
    out = {"gx": gx, "gw": gw, "xgrad": acc_first, "is_leaf": [x.is_leaf, y.is_leaf],
           "y_requires": y.requires_grad}
    # accumulation over two backward passes, then zeroing
    z = (x * 3).sum()
    z.backward()
    out["accumulated"] = x.grad.clone()
    x.grad = None
    # detach and no_grad
    d = (x * 2).detach()
    with T.no_grad():
        n = x * 2
    out["detached"] = [d.requires_grad, n.requires_grad, n.grad_fn is None, T.is_grad_enabled()]
    # set_grad_enabled / enable_grad nesting
    with T.set_grad_enabled(False):
        a = x * 1
        with T.enable_grad():
            b = x * 1
    out["modes"] = [a.requires_grad, b.requires_grad]
    # vector-Jacobian product via grad_outputs and backward(gradient)
    v = data(L, (4,), dtype, seed=8)
    u = x.exp() * w
    (vjp,) = T.autograd.grad(u, x, grad_outputs=v)
    u2 = x.tanh() * w
    u2.backward(gradient=v)
    out["vjp"], out["vjp_backward"] = vjp, x.grad
    # allow_unused
    other = T.zeros(2, dtype=dt(L, dtype), requires_grad=True)
    g_unused = T.autograd.grad((x * 2).sum(), [x, other], allow_unused=True)
    out["unused_is_none"] = g_unused[1] is None
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_autograd_tour(libs, dtype):
    run_both(autograd_tour, libs, dtype)


def hooks_tour(L, dtype):
    T, nn = L.T, L.nn
    seen = {}
    x = data(L, (3,), dtype).requires_grad_()
    h = x * 2
    h.retain_grad()
    handle = h.register_hook(lambda g: g * 10)          # scales what flows on to x
    x.register_hook(lambda g: seen.setdefault("x", g.clone()))
    (h ** 2).sum().backward()
    seen["h.grad"] = h.grad
    seen["x.grad"] = x.grad
    handle.remove()
    x.grad = None
    h2 = x * 2
    (h2 ** 2).sum().backward()
    seen["x.grad after remove"] = x.grad

    model = init_weights(L, nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
                         .to(dt(L, dtype)))
    acts, grads = {}, {}
    fh = model[0].register_forward_hook(lambda m, inp, out: acts.__setitem__("fc1", out.detach()))
    bh = model[2].register_full_backward_hook(
        lambda m, gin, gout: grads.__setitem__("fc2", (gin[0].clone(), gout[0].clone())))
    inp = data(L, (5, 3), dtype, seed=3)
    model(inp).sum().backward()
    fh.remove()
    bh.remove()
    seen["act"] = acts["fc1"]
    seen["fc2 grad_input"], seen["fc2 grad_output"] = grads["fc2"]
    pre = model[0].register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    seen["pre-hooked"] = model(inp)
    pre.remove()
    return seen


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_hooks(libs, dtype):
    run_both(hooks_tour, libs, dtype)


def manual_sgd(L, dtype):
    """The from-scratch loop of the PyTorch tutorials: update weights in place under no_grad."""
    T = L.T
    X, y = data(L, (16, 3), dtype), data(L, (16,), dtype, seed=4)
    w = T.zeros(3, dtype=dt(L, dtype), requires_grad=True)
    b = T.zeros(1, dtype=dt(L, dtype)).requires_grad_(True)
    losses = []
    for _ in range(5):
        pred = X @ w + b
        loss = ((pred - y) ** 2).mean()
        loss.backward()
        with T.no_grad():
            w -= 0.1 * w.grad
            b.sub_(0.1 * b.grad)
            w.grad.zero_()
            b.grad.zero_()
        losses.append(loss.item())
    with T.no_grad():
        w.clamp_(-0.5, 0.5)
        w.mul_(2).add_(1, alpha=0.5)
    return {"losses": losses, "w": w, "b": b, "leaf": [w.is_leaf, b.is_leaf],
            "grads": [w.grad, b.grad]}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_manual_sgd_inplace_updates(libs, dtype):
    run_both(manual_sgd, libs, dtype)


# -- 7. tensor manipulation idioms ------------------------------------------------------------
def tensor_idioms(L, dtype):
    T = L.T
    f = dt(L, dtype)
    x = T.arange(24, dtype=f).reshape(2, 3, 4)
    out = {}
    out["index"] = [x[0], x[:, 1], x[..., -1], x[1, :, ::2], list(x[:, None, 0].shape),
                    x[-1, -1, -1].item()]
    out["view"] = [x.view(6, 4), x.view(-1), x.reshape(4, -1), x.permute(2, 0, 1),
                   x.transpose(0, 1).contiguous().view(3, 8), x.flatten(1), x.unsqueeze(0).shape,
                   x[:, :1].squeeze(1), x.t() if x.dim() == 2 else x.mT]
    out["catstack"] = [T.cat([x, x], dim=0).shape, T.stack([x, x], dim=-1).shape,
                       T.cat((x[0], x[1]), 1)]
    scores = data(L, (4, 5), dtype)
    mask = T.tensor([[True, False, True, False, False]]).expand(4, 5)
    out["masked_fill"] = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)
    idx = T.tensor([[0], [2], [4], [1]])
    out["gather"] = scores.gather(1, idx).squeeze(1)
    target = T.tensor([0, 2, 4, 1])
    pred = scores.argmax(dim=1)
    out["accuracy"] = (pred == target).float().mean().item()
    out["accuracy2"] = pred.eq(target).sum().item() / len(target)
    out["max"] = [t for t in scores.max(dim=1)]
    out["max_values"] = scores.max(dim=1).values
    out["tolist"] = x[0].tolist()
    out["item_types"] = [type(T.tensor(3).item()).__name__, type(T.tensor(3.5).item()).__name__,
                         type(T.tensor(True).item()).__name__]
    out["dtypes"] = [str(x.long().dtype).split(".")[-1], str(x.int().dtype).split(".")[-1],
                     str((x > 3).dtype).split(".")[-1], str(x.bool().float().dtype).split(".")[-1],
                     str(T.tensor([1, 2]).dtype).split(".")[-1],
                     str(T.tensor([1.0, 2]).dtype).split(".")[-1],
                     str((T.tensor([1, 2]) / 2).dtype).split(".")[-1],
                     str((T.tensor([1, 2]) * 1.5).dtype).split(".")[-1],
                     str(x.double().float().dtype).split(".")[-1]]
    out["compare"] = [(x > 5).sum().item(), (x <= 5).sum().item(), (x != 3).sum().item(),
                      T.eq(x, x).float().mean().item(), T.where(x > 10, x, T.zeros_like(x))]
    out["reductions"] = [x.sum(), x.sum(dim=(0, 2)), x.mean(dim=-1, keepdim=True), x.std(dim=1),
                         x.var(dim=2, unbiased=False), x.amax(dim=1), x.min(), x.prod(dim=0),
                         x.norm(), x.logsumexp(dim=2)]
    out["split"] = [t.shape for t in x.split(2, dim=2)] + [t.shape for t in x.chunk(3, dim=1)]
    y = x.clone()
    with T.no_grad():
        y[0, 0] = -1
        y[y > 20] = 0
        y[:, :, 0] += 100
        y.masked_fill_(y == 5, 55)
    out["setitem"] = y
    out["broadcast"] = [x - x.mean(dim=0), x / x.sum(dim=-1, keepdim=True),
                        (T.ones(3, 1, dtype=f) * T.arange(4, dtype=f)).shape]
    out["clamp"] = [x.clamp(min=3, max=7), x.clamp_min(10), T.clamp(x, max=2)]
    out["one_hot"] = L.F.one_hot(target, num_classes=5)
    out["len_numel_dim"] = [len(x), x.numel(), x.dim(), x.ndim, list(x.shape), x.size(-1)]
    out["arange_like"] = [T.zeros_like(x).sum().item(), T.ones_like(x).shape,
                          T.full_like(x, 7.0)[0, 0, 0].item(), T.linspace(0, 1, 5),
                          T.eye(3, dtype=f)]
    out["index_tensor"] = [x[0, T.tensor([2, 0])], x[:, :, T.tensor([True, False, True, False])],
                           x.index_select(1, T.tensor([2, 0]))]
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tensor_idioms(libs, dtype):
    run_both(tensor_idioms, libs, dtype)


def gradients_through_idioms(L, dtype):
    """Gradients of the manipulation idioms (indexing, gather, masked_fill, cat, ...)."""
    T = L.T
    x = data(L, (3, 4), dtype).requires_grad_(True)
    y = data(L, (3, 4), dtype, seed=4).requires_grad_(True)
    parts = [
        x[1:, ::2].sum(),
        x[T.tensor([0, 0, 2])].pow(2).sum(),                           # repeated index
        x[x > 0].sum(),
        x.gather(1, T.tensor([[1], [3], [3]])).sum(),
        x.masked_fill(x < 0, 0.0).exp().sum(),
        T.cat([x, y], dim=1).view(-1).softmax(0)[::5].sum(),
        T.stack([x, y]).permute(2, 0, 1).reshape(4, -1).max(dim=1).values.sum(),
        (x.unsqueeze(2) * y.unsqueeze(1)).mean(),
        T.where(x > y, x, y).sum(),
        x.log_softmax(dim=-1).mean(),
        T.einsum("ij,ij->", x, y),
        x.clamp(-0.5, 0.5).sum(),
        x.abs().sqrt().sum(),
        y.norm(dim=1).sum(),
    ]
    total = sum(p * (i + 1) for i, p in enumerate(parts))
    total.backward()
    return {"parts": [p.item() for p in parts], "gx": x.grad, "gy": y.grad}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_through_idioms(libs, dtype):
    run_both(gradients_through_idioms, libs, dtype)


def losses_and_functional(L, dtype):
    T, nn, F = L.T, L.nn, L.F
    logits = data(L, (6, 4), dtype).requires_grad_()
    target = labels(L, 6, 4)
    pred = data(L, (6, 4), dtype, seed=11)
    probs = T.sigmoid(data(L, (6, 4), dtype, seed=12))
    bin_t = (data(L, (6, 4), dtype, seed=13) > 0).to(dt(L, dtype))
    w = T.tensor([1.0, 2.0, 0.5, 1.0], dtype=dt(L, dtype))
    out = {
        "ce": F.cross_entropy(logits, target),
        "ce_sum": nn.CrossEntropyLoss(reduction="sum")(logits, target),
        "ce_none": nn.CrossEntropyLoss(reduction="none")(logits, target),
        "ce_weight": nn.CrossEntropyLoss(weight=w)(logits, target),
        "ce_smooth": nn.CrossEntropyLoss(label_smoothing=0.1)(logits, target),
        "ce_ignore": F.cross_entropy(logits, T.tensor([0, 1, -100, 3, 2, -100])),
        "nll": F.nll_loss(F.log_softmax(logits, dim=1), target),
        "mse": nn.MSELoss()(logits, pred),
        "l1": nn.L1Loss(reduction="sum")(logits, pred),
        "huber": nn.HuberLoss(delta=0.5)(logits, pred),
        "bce": nn.BCELoss()(probs, bin_t),
        "bce_logits": nn.BCEWithLogitsLoss(pos_weight=w)(logits, bin_t),
        "softplus": F.softplus(logits).sum(),
        "leaky": F.leaky_relu(logits, 0.2).sum(),
        "elu": F.elu(logits).sum(),
        "silu": F.silu(logits).sum(),
        "gelu_tanh": F.gelu(logits, approximate="tanh").sum(),
        "normalize": F.normalize(logits, dim=1),
        "layer_norm": F.layer_norm(logits, (4,)),
        "dropout_eval": F.dropout(logits, p=0.5, training=False),
        "pad": F.pad(logits, (1, 2)),
    }
    total = sum(v.sum() for v in out.values())
    total.backward()
    out["grad"] = logits.grad
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_losses_and_functional(libs, dtype):
    run_both(losses_and_functional, libs, dtype)


def clip_and_init(L, dtype):
    T, nn = L.T, L.nn
    model = init_weights(L, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
                         .to(dt(L, dtype)))
    X = data(L, (8, 4), dtype)
    (model(X) ** 2).sum().mul(10).backward()
    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    grads = [p.grad.clone() for p in model.parameters()]
    nn.utils.clip_grad_value_(model.parameters(), clip_value=0.05)
    vec = nn.utils.parameters_to_vector(model.parameters())
    with T.no_grad():
        nn.init.zeros_(model[0].bias)
        nn.init.constant_(model[2].bias, 0.5)
    return {"total": total, "grads": grads, "clipped": [p.grad for p in model.parameters()],
            "vec": vec, "bias": [model[0].bias, model[2].bias]}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clip_grad_and_init(libs, dtype):
    run_both(clip_and_init, libs, dtype)


def manual_seed_repeats(L, dtype):
    T = L.T
    T.manual_seed(123)
    a = [T.randn(3), T.rand(2), T.randint(0, 10, (4,)), T.randperm(5)]
    T.manual_seed(123)
    b = [T.randn(3), T.rand(2), T.randint(0, 10, (4,)), T.randperm(5)]
    T.manual_seed(1)
    m1 = L.nn.Linear(3, 2)
    T.manual_seed(1)
    m2 = L.nn.Linear(3, 2)
    return {"same": [bool(np.array_equal(_np(x), _np(y))) for x, y in zip(a, b)],
            "same_init": bool(np.array_equal(_np(m1.weight), _np(m2.weight))),
            "dtypes": [str(t.dtype).split(".")[-1] for t in a]}


def test_manual_seed_reproducibility(libs):
    run_both(manual_seed_repeats, libs)


def repr_and_printing(L, dtype):
    T, nn = L.T, L.nn
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(1, 2, 3, padding=1),
                      nn.BatchNorm2d(2), nn.MaxPool2d(2), nn.Flatten(), nn.CrossEntropyLoss())
    reprs = {"module": repr(m), "tensor": repr(T.tensor([[1.5, -2.0], [0.25, 3.0]])),
             "int": repr(T.tensor([1, 2, 3])), "f64": repr(T.tensor([1.0], dtype=T.float64)),
             "grad": repr(T.tensor([1.0], requires_grad=True)),
             "grad_fn": repr(T.tensor([1.0], requires_grad=True) * 2)}
    return {k: v.replace("torch.", "backprop.") for k, v in reprs.items()}


def test_repr(libs):
    run_both(repr_and_printing, libs)


def train_eval_batchnorm_dropout(L, dtype):
    T, nn = L.T, L.nn
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.2), nn.Dropout(0.5))
    m = init_weights(L, m.to(dt(L, dtype)))
    X = data(L, (10, 3), dtype)
    m.train()
    _ = m(X)
    m.eval()
    with T.no_grad():
        e1 = m(X)
        e2 = m(X)
    return {"eval": e1, "deterministic": bool(np.array_equal(_np(e1), _np(e2))),
            "rm": m[1].running_mean, "rv": m[1].running_var, "training": m.training,
            "child_training": m[2].training}


def test_train_eval_modes(libs):
    run_both(train_eval_batchnorm_dropout, libs)


def deepcopy_model(L, dtype):
    T, nn = L.T, L.nn
    m = init_weights(L, nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).to(dt(L, dtype)))
    best = copy.deepcopy(m)
    with T.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    return {"copy": list(best.parameters()), "orig": list(m.parameters()),
            "distinct": best[0].weight is not m[0].weight,
            "copy_state": list(best.state_dict())}


def test_deepcopy_model(libs):
    run_both(deepcopy_model, libs)


# == known bugs: each asserts PyTorch's behaviour and is expected to fail =======================
def inplace_on_nonleaf_under_no_grad(L, dtype):
    T = L.T
    x = data(L, (3,), dtype).requires_grad_()
    y = x * 2
    with T.no_grad():
        y.add_(1)                      # e.g. clamp_/mul_ of an activation for logging, EMA, ...
    y.sum().backward()
    return {"y": y.detach(), "grad": x.grad}


def test_fixed_inplace_on_nonleaf_under_no_grad(libs):
    run_both(inplace_on_nonleaf_under_no_grad, libs)


def inplace_into_plain_tensor(L, dtype):
    T = L.T
    W = data(L, (2, 3), dtype).requires_grad_()
    x = data(L, (4, 2), dtype, seed=5)
    h = T.zeros(4, 3, dtype=dt(L, dtype))     # a plain buffer, accumulated into
    h += x @ W
    loss = h.sum()
    return {"requires_grad": h.requires_grad,
            "grad": T.autograd.grad(loss, W)[0] if loss.requires_grad else None}


def test_fixed_inplace_into_plain_tensor_loses_graph(libs):
    run_both(inplace_into_plain_tensor, libs)


def setitem_with_grad_value(L, dtype):
    T = L.T
    w = data(L, (3,), dtype).requires_grad_()
    out = T.zeros(2, 3, dtype=dt(L, dtype))
    out[0] = w * 2
    out[1] = w.exp()
    out.sum().backward()
    return {"grad": w.grad}


def test_fixed_setitem_with_grad_value(libs):
    run_both(setitem_with_grad_value, libs)


def tensor_constructor(L, dtype):
    T = L.T
    return {"from_list": str(T.Tensor([1, 2]).dtype).split(".")[-1],
            "sized": list(T.Tensor(3, 4).shape)}


def test_fixed_tensor_constructor(libs):
    run_both(tensor_constructor, libs)


def device_idiom(L, dtype):
    T, nn = L.T, L.nn
    device = T.device("cuda" if T.cuda.is_available() else "cpu")
    m = nn.Linear(2, 1).to(device)
    x = T.ones(3, 2).to(device)
    return {"device": str(device), "out": list(m(x).shape), "x_device": str(x.device)}


def test_fixed_device_idiom(libs):
    run_both(device_idiom, libs)


def boolean_mask_operators(L, dtype):
    T = L.T
    x = T.arange(6, dtype=dt(L, dtype)) - 2
    m = (x > -1) & (x < 3)
    return {"and": m, "or": (x < -1) | (x > 2), "not": ~m, "abs": abs(x),
            "floordiv": T.arange(5) // 2, "mod": T.arange(5) % 2,
            "any": (x > 2).any().item(), "all": (x > -5).all().item(),
            "isnan": T.isnan(x / x).sum().item()}


def test_fixed_boolean_mask_operators(libs):
    run_both(boolean_mask_operators, libs)


def zero_dim_promotion(L, dtype):
    T = L.T
    x = T.ones(3)                               # float32
    scale = T.tensor(0.5, dtype=T.float64)      # a 0-d float64 tensor, e.g. from np.float64
    return {"mul": str((x * scale).dtype).split(".")[-1],
            "int_plus_0d": str((T.arange(3) + T.tensor(1.5)).dtype).split(".")[-1]}


def test_fixed_zero_dim_type_promotion(libs):
    run_both(zero_dim_promotion, libs)


def no_grad_generator(L, dtype):
    T = L.T
    w = T.ones(2, requires_grad=True)

    @T.no_grad()
    def batches():
        for _ in range(2):
            yield w * 2

    return {"requires_grad": [b.requires_grad for b in batches()]}


def test_fixed_no_grad_decorated_generator(libs):
    run_both(no_grad_generator, libs)


def size_object(L, dtype):
    x = L.T.zeros(2, 3)
    return {"numel": x.shape.numel(), "size_numel": x.size().numel()}


def test_fixed_size_numel(libs):
    run_both(size_object, libs)


def common_tensor_methods(L, dtype):
    T = L.T
    x = data(L, (3, 4), dtype)
    return {"type_as": str(T.ones(2).type_as(x).dtype).split(".")[-1],
            "new_zeros": x.new_zeros(2, 2), "topk": x.topk(2, dim=1).indices,
            "sort": x.sort(dim=1).values, "cumsum": x.cumsum(dim=0),
            "allclose": T.allclose(x, x.clone()), "log1p": x.abs().log1p(),
            "inference_mode": T.inference_mode is not None}


def test_fixed_common_tensor_methods(libs):
    run_both(common_tensor_methods, libs)


# -- review findings in engine / tensor / grad mode --------------------------------------------
def test_grad_mode_is_per_thread():
    """Evaluating under no_grad in one thread never stops another thread recording."""
    started, release = threading.Event(), threading.Event()
    result = {}

    def evaluator():
        with backprop.no_grad():
            started.set()
            release.wait(60)

    t = threading.Thread(target=evaluator)
    t.start()
    assert started.wait(60)
    x = backprop.ones(2, requires_grad=True)
    result["recording"] = (x * 2).requires_grad
    release.set()
    t.join()
    assert result["recording"] and backprop.is_grad_enabled()


def test_fixed_graph_keeps_activations_alive_after_backward():
    """Holding on to ``loss`` after backward must not keep the activations alive.

    PyTorch nodes hold only what backward saved, and backward frees that, so a
    ``losses.append(loss)`` keeps small node objects. backprop nodes hold their
    input tensors, so ``h`` (an input of ``sum``, not needed by its backward) lives on.
    """
    x = backprop.randn(64, 64, requires_grad=True)
    h = (x * 2).exp()
    ref = weakref.ref(h._data)
    loss = h.sum()
    loss.backward()
    del h
    gc.collect()
    assert ref() is None, "the activation is still referenced through loss.grad_fn"


def _inplace_race_attempt(max_iter=5000):
    import sys

    errors, stop = [], threading.Event()

    def trainer():
        x = backprop.randn(4, 4, requires_grad=True)
        other = backprop.zeros(3)
        try:
            for _ in range(max_iter):
                y = (x * 2).sigmoid()     # Sigmoid saves its output
                other.add_(1)             # any in-place op after the forward triggers the check
                y.sum().backward()
                if stop.is_set():
                    break
        except RuntimeError as e:
            errors.append(e)
        stop.set()

    def mutator():                        # e.g. a data-prep or evaluation thread
        z = backprop.zeros(3)
        while not stop.is_set():
            z.add_(1)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=trainer), threading.Thread(target=mutator)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    return errors


def test_fixed_backward_races_with_inplace_ops_in_another_thread():
    errors = _inplace_race_attempt()
    assert not errors, f"backward failed: {errors[0]!r}"


def numpy_copy(L, dtype):
    T, nn = L.T, L.nn
    m = init_weights(L, nn.Linear(3, 1).to(dt(L, dtype)))
    opt = L.optim.SGD(m.parameters(), lr=0.5)
    before = np.array(m.weight.detach())          # a snapshot: np.array copies
    opt.zero_grad()
    m(T.ones(4, 3, dtype=dt(L, dtype))).sum().backward()
    opt.step()
    t = T.ones(3, dtype=dt(L, dtype))
    arr = np.array(t)
    arr[0] = 5.0
    return {"snapshot_moved": float(np.abs(before - m.weight.detach().numpy()).max()),
            "tensor_after_writing_copy": t}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own __array__ lacks copy=
def test_fixed_np_array_of_tensor_is_not_a_copy(libs):
    run_both(numpy_copy, libs)


def backward_keywords(L, dtype):
    T = L.T
    x = data(L, (3,), dtype).requires_grad_()
    w = data(L, (3,), dtype, seed=3).requires_grad_()
    (x * w).sum().backward(create_graph=False)
    (gx,) = T.autograd.grad((x * w).sum(), x, create_graph=False)
    x.grad = w.grad = None
    (x * w).sum().backward(inputs=[x])
    return {"gx": gx, "x.grad": x.grad, "w.grad is None": w.grad is None}


def test_fixed_backward_keywords(libs):
    run_both(backward_keywords, libs)


def inplace_in_forward(L, dtype):
    T = L.T
    x = data(L, (2, 3), dtype).requires_grad_()
    s = x * 2
    s.masked_fill_(s < 0, 0.0)          # attention-mask / ReLU-like idioms inside forward
    s[:, 0] = 0
    s.mul_(3)
    s.sum().backward()
    return {"s": s.detach(), "grad": x.grad}


def test_inplace_ops_on_activations(libs):
    run_both(inplace_in_forward, libs)
