"""The Monitor and the doctor on PyTorch models: the same readings as backprop's for the same
network, each known sickness diagnosed with PyTorch's APIs in the advice, and `backprop doctor`
on the file a PyTorch run writes. Every test skips without torch (the ``oracle`` fixture)."""
import re

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.cli import main
from backprop.data.toy import spiral
from backprop.diagnostics import Monitor, Readings, diagnose
from backprop.diagnostics.doctor import EXPLODING_NORM, LR_TOO_LOW_RATIO, PYTORCH_WORDING


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture(params=["numpy", "device"])
def layout(request, monkeypatch, oracle):
    """Each test run with the CPU's NumPy path and with the device path (TorchLayout:
    PyTorch's _foreach kernels where the parameters live, layer outputs reduced where they
    live, as on a GPU) on CPU tensors."""
    if request.param == "device":
        from backprop.diagnostics.torch_adapter import TorchAdapter, TorchLayout
        monkeypatch.setattr(TorchAdapter, "layout", lambda self, named: TorchLayout(named, self))
        monkeypatch.setattr(TorchAdapter, "device_reductions", True)
    return request.param


def torch_mlp(torch, sizes, act, dtype=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    model = torch.nn.Sequential(*layers)
    return model.to(dtype) if dtype is not None else model


def init_linears(torch, model, std, bias=0.0):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, std)
                m.bias.fill_(bias)


def spiral_batches(torch, epochs, batch_size=32, n=200, seed=0):
    """The spiral set in shuffled mini-batches, epoch after epoch: [(epoch, x, y)]."""
    X, y = (t.numpy() for t in spiral(n, seed=seed))
    rng = np.random.default_rng(seed)
    out = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            out.append((epoch, torch.from_numpy(X[idx]), torch.from_numpy(y[idx]).long()))
    return out


def train_torch(torch, model, opt, epochs, *, interval=5, path=None, loss_fn=None):
    """A plain PyTorch loop with the two added lines; returns (report, monitor)."""
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    mon = Monitor(model, opt, interval=interval, path=path)            # line 1
    with np.errstate(all="ignore"):
        for epoch, x, y in spiral_batches(torch, epochs):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            mon.log_loss(loss)                                          # line 2
            opt.step()
    mon.close()
    return diagnose(mon.readings), mon


def advice_of(report) -> str:
    return " ".join(f.advice for f in report)


def assert_pytorch_wording(report):
    text = advice_of(report)
    assert "fit/Trainer" not in text and "backprop train" not in text
    assert not re.search(r"(?<![\w.])nn\.", text), text   # every nn. is torch.nn.


# -- lockstep: backprop and PyTorch read the same numbers ----------------------------------------
def copy_weights(torch, bp_model, t_model):
    with torch.no_grad():
        for (bn, bp), (tn, tp) in zip(bp_model.named_parameters(), t_model.named_parameters()):
            assert bn == tn
            tp.copy_(torch.from_numpy(np.array(bp.detach().numpy())))


def lockstep(torch, bp_acts, t_acts, *, steps=8, lr=0.1, interval=2, bias=None, batch=16):
    """One float64 MLP trained by backprop and by PyTorch from the same weights and batches."""
    sizes = (4, 16, 12, 8, 3)

    def build(linear, acts):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(linear(a, b))
            if i < len(sizes) - 2:
                layers.append(acts[i]())
        return layers

    bp_model = nn.Sequential(*build(nn.Linear, bp_acts)).double()
    if bias is not None:
        nn.init.constant_(bp_model[0].bias, bias)
    t_model = torch.nn.Sequential(*build(torch.nn.Linear, t_acts)).double()
    copy_weights(torch, bp_model, t_model)
    bp_opt = optim.SGD(bp_model.parameters(), lr=lr, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=lr, momentum=0.9)
    bp_mon = Monitor(bp_model, bp_opt, interval=interval, noise_window=2)
    t_mon = Monitor(t_model, t_opt, interval=interval, noise_window=2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = rng.normal(size=(batch, sizes[0]))
        y = rng.integers(0, sizes[-1], size=batch)
        bp_opt.zero_grad()
        loss = nn.CrossEntropyLoss()(bp_model(backprop.tensor(x)), backprop.tensor(y))
        loss.backward()
        bp_mon.log_loss(loss)
        bp_opt.step()
        t_opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(t_model(torch.from_numpy(x)),
                                                   torch.from_numpy(y))
        t_loss.backward()
        t_mon.log_loss(t_loss)
        t_opt.step()
    bp_mon.close()
    t_mon.close()
    return bp_mon.readings, t_mon.readings


def assert_same_numbers(a, b, path=""):
    """Equal structure; floats equal within float64 tolerance."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, a, b)
        for k in a:
            assert_same_numbers(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, str):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, (path, a, b)


def test_lockstep_readings_equal_those_of_the_same_network_on_backprop(oracle, layout):
    torch = oracle
    bp, tr = lockstep(torch, (nn.ReLU, nn.Tanh, nn.Sigmoid),
                      (torch.nn.ReLU, torch.nn.Tanh, torch.nn.Sigmoid))
    assert [r["step"] for r in tr.steps] == [1, 3, 5, 7]
    assert tr.meta["framework"] == "torch" and bp.meta["framework"] == "backprop"
    for key in ("params", "layers", "batch_size", "interval", "noise_window"):
        assert tr.meta[key] == bp.meta[key], key
    assert tr.meta["layers"] == ["0", "1", "2", "3", "4", "5", "6"]
    for b_step, t_step in zip(bp.steps, tr.steps):
        assert_same_numbers(b_step, t_step, f"step {b_step['step']}")
    # What was compared is not empty: norms, ratios, activation statistics and noise.
    last = tr.steps[-1]
    assert last["params"]["0.weight"]["update_ratio"] > 0
    assert last["activations"]["1"]["dead_fraction"] is not None
    assert last["activations"]["3"]["saturated_fraction"] is not None
    assert last["noise"] is not None and last["noise"]["batches"] == 2
    assert sum(last["activations"]["5"]["hist"]["counts"]) == 16 * 8


def test_lockstep_dead_relus_give_the_same_findings_in_each_frameworks_words(oracle, layout):
    torch = oracle
    bp, tr = lockstep(torch, (nn.ReLU, nn.ReLU, nn.ReLU),
                      (torch.nn.ReLU, torch.nn.ReLU, torch.nn.ReLU), steps=12, bias=-10.0)
    b_report, t_report = diagnose(bp), diagnose(tr)
    assert t_report.names() == b_report.names() and "dead_relus" in t_report
    for fb, ft in zip(b_report, t_report):
        assert (ft.severity, ft.summary, ft.layers) == (fb.severity, fb.summary, fb.layers)
    assert t_report["dead_relus"].layers[0] == "1"
    assert "torch.nn.init.kaiming_normal_" in t_report["dead_relus"].advice
    assert "torch.nn." not in advice_of(b_report)
    assert_pytorch_wording(t_report)


# -- sick PyTorch runs: the doctor names the problem and the layer ------------------------------
def test_deep_sigmoid_net_with_tiny_init_has_vanishing_gradients(oracle):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2] + [16] * 10 + [3], torch.nn.Sigmoid)
    init_linears(torch, model, 0.01)
    report, _ = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=0.1), 3)
    f = report["vanishing_gradients"]
    assert f.layers[0] == "0" and f.evidence["last_layer"] == "20"
    assert f.evidence["ratio_to_last"]["0"] > 1e6 and f.severity == "error"
    assert "torch.nn.init.kaiming_normal_" in f.advice
    assert_pytorch_wording(report)


def test_deep_relu_net_with_unit_variance_weights_has_exploding_gradients(oracle):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2] + [32] * 8 + [3], torch.nn.ReLU)
    init_linears(torch, model, 1.0)
    report, _ = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=1e-6), 2)
    f = report["exploding_gradients"]
    assert f.evidence["grad_norm"] > EXPLODING_NORM and "divergence" not in report
    assert "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)" in f.advice
    assert report["poor_initialisation"].evidence["direction"] == "grows"
    assert_pytorch_wording(report)


def test_a_learning_rate_of_10_diverges(oracle):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 16, 16, 3], torch.nn.ReLU)
    report, _ = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=10.0), 8)
    f = report["divergence"]
    assert f.severity == "error" and report.names()[0] == "divergence"
    assert f.evidence["lr"] == 10.0 and f.evidence["batch_size"] == 32
    assert "try 1 instead of 10" in f.advice and "torch.nn.utils.clip_grad_norm_" in f.advice
    assert_pytorch_wording(report)


def test_a_loss_that_turns_nan_is_caught_at_its_step(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 16, 16, 3], torch.nn.ReLU)
    opt = torch.optim.SGD(model.parameters(), lr=1e3)

    def mse(out, y):
        return torch.nn.functional.mse_loss(out, torch.nn.functional.one_hot(y, 3).float())

    report, mon = train_torch(torch, model, opt, 5, loss_fn=mse)
    nf = mon.readings.nonfinite
    assert nf is not None and nf["kind"] in ("loss", "parameter", "activation", "gradient")
    f = report["divergence"]
    assert f.evidence["step"] == nf["step"] and f.evidence["lr"] == 1e3


def test_a_large_negative_bias_kills_the_relus_of_that_layer(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 32, 32, 3], torch.nn.ReLU)
    with torch.no_grad():
        model[0].bias.fill_(-10.0)
    report, _ = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=0.1), 3)
    f = report["dead_relus"]
    assert f.layers[0] == "1" and f.evidence["dead_fraction"]["1"] == 1.0
    assert f.severity == "error" and "vanishing_gradients" not in report
    assert_pytorch_wording(report)


@pytest.mark.parametrize("family", ["ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU"])
def test_the_relu_family_is_measured(oracle, family):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 8, 3], getattr(torch.nn, family))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)
    _, mon = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=0.01), 1,
                         interval=1)
    act = mon.readings.last()["activations"]["1"]
    expected = {"ReLU6": "relu", "LeakyReLU": "leaky_relu", "PReLU": "leaky_relu",
                "ELU": "elu", "SELU": "elu", "GELU": "gelu"}[family]
    assert act["kind"] == expected and act["dead_fraction"] == 1.0


def test_a_tiny_learning_rate_is_too_low(oracle):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 32, 32, 3], torch.nn.ReLU)
    report, _ = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=1e-5), 5)
    f = report["lr_too_low"]
    assert f.evidence["update_ratio"] < LR_TOO_LOW_RATIO and f.evidence["lr"] == 1e-5
    assert report.names() == ["lr_too_low"]
    assert "torch.optim.Adam with lr=1e-3" in f.advice


def test_tanh_with_a_too_large_init_saturates(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 32, 32, 32, 3], torch.nn.Tanh)
    init_linears(torch, model, 2.0)
    report, _ = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=0.01), 2)
    f = report["saturated_units"]
    assert "5" in f.layers and all(v > 0.5 for v in f.evidence["saturated_fraction"].values())
    assert "torch.nn.init.xavier_uniform_" in f.advice
    assert_pytorch_wording(report)


def test_a_healthy_run_gets_no_error_or_warning(oracle):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 32, 32, 3], torch.nn.ReLU)
    report, mon = train_torch(torch, model, torch.optim.Adam(model.parameters(), lr=0.01), 40,
                              interval=10)
    assert mon.readings.steps[-1]["loss"] < 0.4                      # it did learn
    assert len(mon.readings.steps) >= 25
    assert [f.name for f in report if f.severity in ("error", "warning")] == [], str(report)


# -- shared, frozen, functional ----------------------------------------------------------------
def test_shared_and_frozen_parameters(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    shared = torch.nn.Linear(8, 8)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), shared, torch.nn.ReLU(),
                                shared, torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model[0].requires_grad_(False)                       # frozen: never has a gradient
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    mon = Monitor(model, opt, interval=1)
    x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
    seen = []
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        mon.log_loss(loss)
        seen.append((float(shared.weight.grad.norm()),
                     float(torch.cat([p.grad.flatten() for p in opt.param_groups[0]["params"]])
                           .norm())))
        opt.step()
    mon.close()
    # The shared layer is listed once (as torch's named_parameters lists it), frozen ones
    # are listed but never measured.
    assert mon.readings.meta["params"] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                           "6.weight", "6.bias"]
    for record, (shared_norm, total) in zip(mon.readings.steps, seen):
        assert set(record["params"]) == {"2.weight", "2.bias", "6.weight", "6.bias"}
        assert record["params"]["2.weight"]["grad_norm"] == pytest.approx(shared_norm, rel=1e-5)
        assert record["grad_norm"] == pytest.approx(total, rel=1e-5)
    # The shared module ran twice per forward: one layer "2" over both calls.
    assert mon.readings.meta["layers"].count("2") == 1
    assert mon.readings.last()["activations"]["3"]["kind"] == "relu"


class Functional:
    """A model that calls its activations as functions inside forward (made per test: torch)."""

    @staticmethod
    def build(torch):
        F = torch.nn.functional

        class Block(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(8, 8)

            def forward(self, x):
                return torch.tanh(self.fc(x))

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = torch.nn.Linear(2, 8)
                self.block = Block()
                self.fc2 = torch.nn.Linear(8, 8)
                self.act = torch.nn.ReLU()
                self.out = torch.nn.Linear(8, 3)

            def forward(self, x):
                h = F.relu(self.fc1(x))
                h = self.block(h)
                h = self.act(self.fc2(h).relu())        # a method call, then a module
                return self.out(h)

        return Net()


def test_functional_activations_inside_forward_are_seen(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    model = Functional.build(torch)
    with torch.no_grad():
        model.fc1.bias.fill_(-10.0)                   # F.relu of fc1: every unit dead
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    with Monitor(model, opt, interval=1) as mon:
        for _ in range(4):
            opt.zero_grad()
            out = model(x)
            loss = torch.nn.functional.cross_entropy(torch.relu(out), y)  # outside forward
            loss.backward()
            mon.log_loss(loss)
            opt.step()
    acts = mon.readings.last()["activations"]
    # Forward order; the functional calls named after the module running them; the
    # nn.ReLU module once (its own F.relu call is not counted twice); the relu applied in
    # the loop, outside the model's forward, is not seen.
    assert mon.readings.meta["layers"] == ["fc1", "relu()", "block.fc", "block.tanh()",
                                           "fc2", "relu()#2", "act", "out"]
    assert acts["relu()"]["kind"] == "relu" and acts["relu()"]["dead_fraction"] == 1.0
    assert acts["block.tanh()"]["kind"] == "tanh"
    assert acts["block.tanh()"]["saturated_fraction"] is not None
    h = model.fc2(model.block(torch.relu(model.fc1(x)))).relu().detach().numpy()
    assert acts["relu()#2"]["dead_fraction"] == pytest.approx(1.0 - np.mean(h.max(0) > 0))
    report = diagnose(mon.readings)
    assert report["dead_relus"].layers[0] == "relu()"
    # Hooks come off after the run: a plain forward afterwards is untouched.
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_model_of_pytorch_layers_alone_runs_unwatched_with_the_same_readings(oracle):
    """A model built only of PyTorch layers that call no activation function themselves
    (and activation modules, measured by their own hooks) gets no function watch: the
    recorded forward runs without one, and the readings are those of a watched run."""
    torch = oracle
    from backprop.diagnostics import torch_adapter

    def run(watch_all: bool):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch_mlp(torch, [2, 16, 16, 3],
                                                                   torch.nn.ReLU))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        mon = Monitor(model, opt, interval=2)
        if watch_all:  # as if no class were known to be quiet
            mon._arrays._quiet = frozenset()
            mon._remove_forward_hooks()
            mon._attach_forward_hooks()
        watched = any(isinstance(h, torch_adapter._ModeHandle) for h in mon._fwd_handles)
        for _, x, y in spiral_batches(torch, 1):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            mon.log_loss(loss)
            opt.step()
        mon.close()
        return watched, mon.readings

    unwatched, readings = run(False)
    watched, reference = run(True)
    assert not unwatched and watched
    assert readings.meta["layers"] == reference.meta["layers"]
    assert_same_numbers(readings.steps, reference.steps)
    # A module of the user's own class is not known to be quiet: it is watched.
    model = Functional.build(torch)
    with Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), interval=1) as mon:
        assert any(isinstance(h, torch_adapter._ModeHandle) for h in mon._fwd_handles)


# -- the file and `backprop doctor` --------------------------------------------------------------
def test_backprop_doctor_reads_the_file_of_a_pytorch_run(oracle, tmp_path, capsys):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 16, 16, 3], torch.nn.ReLU)
    run = tmp_path / "torch_run"
    _, mon = train_torch(torch, model, torch.optim.SGD(model.parameters(), lr=10.0), 8,
                         path=run / "diagnostics.jsonl")
    back = Readings.from_jsonl(run / "diagnostics.jsonl")
    assert back.to_dict() == mon.readings.to_dict()
    assert back.meta["framework"] == "torch"
    status = main(["doctor", str(run), "--no-plots"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "1. ERROR: divergence" in out.out and "learning rate 10" in out.out
    text = re.sub(r"\s+", " ", out.out)
    assert "gradient clipping (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))" in text
    assert "backprop train" not in text


# -- the wording table -----------------------------------------------------------------------------
def test_every_pytorch_wording_matches_advice_the_doctor_writes():
    # If an advice text is reworded, its PyTorch version must follow: each phrase the table
    # replaces must still be in the doctor's source.
    import inspect

    from backprop.diagnostics import doctor
    source = re.sub(r'"\s*\n\s*"', "", inspect.getsource(doctor))
    for ours, _ in PYTORCH_WORDING:
        assert ours in source, ours


def test_a_model_that_is_not_a_torch_module_with_a_torch_optimizer_is_refused(oracle):
    torch = oracle
    bp_model = nn.Linear(2, 2)
    t_opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(TypeError, match="must be a torch.nn.Module, got Linear"):
        Monitor(bp_model, t_opt)
    t_model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="must be a torch.optim.Optimizer, got SGD"):
        Monitor(t_model, optim.SGD(bp_model.parameters(), lr=0.1))


def test_an_in_place_relu_does_not_change_the_reading_of_the_layer_before(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(inplace=True),
                                torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    with torch.no_grad():
        before_relu = model[0](x).numpy()
    with Monitor(model, opt, interval=1) as mon:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    acts = mon.readings.last()["activations"]
    assert acts["0"]["mean"] == pytest.approx(float(before_relu.mean()), rel=1e-5)
    assert acts["0"]["hist"]["edges"][0] == pytest.approx(float(before_relu.min()))
    assert acts["1"]["dead_fraction"] == pytest.approx(1.0 - np.mean(before_relu.max(0) > 0))


def test_a_backprop_monitor_never_imports_torch():
    # PyTorch stays optional: importing backprop and monitoring a backprop model leave it alone.
    import subprocess
    import sys
    code = ("import sys, backprop, backprop.diagnostics\n"
            "from backprop import nn, optim\n"
            "m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))\n"
            "opt = optim.SGD(m.parameters(), lr=0.1)\n"
            "mon = backprop.diagnostics.Monitor(m, opt, interval=1)\n"
            "opt.zero_grad(); loss = m(backprop.randn(8, 2)).sum(); loss.backward()\n"
            "mon.log_loss(loss); opt.step()\n"
            "assert mon.readings.meta['framework'] == 'backprop'\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_without_an_optimizer_each_log_loss_ends_a_step(oracle, layout):
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 8, 3], torch.nn.Tanh)
    mon = Monitor(model, interval=2)
    x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
    for i in range(3):
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        mon.log_loss(loss if i else loss.item())     # a tensor or a plain number
    mon.close()
    assert mon.readings.step_numbers() == [1, 3]
    first = mon.readings.steps[0]
    assert first["loss"] == pytest.approx(loss.item(), rel=1e-6)  # no update: same loss
    assert first["params"]["0.weight"]["update_ratio"] is None
    assert first["params"]["0.weight"]["grad_norm"] == pytest.approx(
        float(model[0].weight.grad.norm()), rel=1e-5)


def test_a_torch_compiled_model_is_measured_through_graph_breaks(oracle):
    # The Monitor's hooks are marked for the compiler to run as Python, not to trace; the
    # "eager" backend compiles nothing itself, keeping the test fast and free of a C compiler.
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 16, 3], torch.nn.ReLU)
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    with Monitor(compiled, opt, interval=1) as mon:
        for _ in range(3):
            with torch.no_grad():
                hidden = torch.relu(model[0](x)).numpy()   # at the last step: step 3's
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(compiled(x), y)
            loss.backward()
            mon.log_loss(loss)
            opt.step()
    assert mon.readings.step_numbers() == [1, 2, 3]
    # The model's own names, not those of torch.compile's wrapper ("_orig_mod.0").
    assert mon.readings.meta["layers"] == ["0", "1", "2"]
    assert mon.readings.meta["params"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    act = mon.readings.last()["activations"]["1"]
    assert act["mean"] == pytest.approx(float(hidden.mean()), rel=1e-5)
    assert mon.readings.last()["params"]["0.weight"]["update_ratio"] > 0


def test_functional_calls_are_not_watched_in_a_compiled_model(oracle):
    # torch.compile fails under the TorchFunctionMode of the watch: module hooks only there.
    torch = oracle
    torch.manual_seed(0)
    model = Functional.build(torch)
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    with Monitor(compiled, opt, interval=1) as mon:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(compiled(x), y).backward()
        opt.step()
    assert mon.readings.meta["layers"] == ["fc1", "block.fc", "fc2", "act", "out"]


def test_a_bfloat16_model_is_read_in_float32(oracle, layout):
    # NumPy has no bfloat16: the adapter reads such tensors as float32 copies.
    torch = oracle
    torch.manual_seed(0)
    model = torch_mlp(torch, [2, 8, 3], torch.nn.ReLU, dtype=torch.bfloat16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 2, dtype=torch.bfloat16), torch.randint(0, 3, (16,))
    with Monitor(model, opt, interval=1) as mon:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        mon.log_loss(loss)
        expected = float(model[0].weight.grad.float().norm())
        opt.step()
    record = mon.readings.last()
    assert record["params"]["0.weight"]["grad_norm"] == pytest.approx(expected, rel=1e-6)
    assert record["activations"]["1"]["kind"] == "relu"


# -- hooks and the function watch come off ---------------------------------------------------
def _no_hooks_left(torch, model, opt):
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    assert torch._C._len_torch_function_stack() == 0


def test_close_inside_a_forward_leaves_no_function_watch_behind(oracle):
    torch = oracle
    torch.manual_seed(0)
    model = Functional.build(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, interval=1)
    # The user's own hook closes the monitor while the model's forward is under way:
    # the watch's exit (the model's forward hook) is gone before the forward ends.
    mine = model.fc2.register_forward_hook(lambda m, a, o: mon.close())
    model(torch.randn(4, 2))
    mine.remove()
    _no_hooks_left(torch, model, opt)


def test_a_forward_in_another_thread_keeps_its_own_function_watch(oracle):
    import threading

    torch = oracle
    torch.manual_seed(0)
    model = Functional.build(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 2)
    inside, go = threading.Event(), threading.Event()
    seen = {}

    def wait_inside(m, a, o):  # the other thread holds its forward open until told to go
        if threading.current_thread() is not threading.main_thread():
            inside.set()
            assert go.wait(120)

    def other():
        model(x)  # ends while the main thread's forward is still under way
        seen["other"] = torch._C._len_torch_function_stack()

    thread = threading.Thread(target=other)

    def finish_other(m, a, o):
        if threading.current_thread() is threading.main_thread():
            go.set()
            thread.join(120)

    h1 = model.fc1.register_forward_hook(wait_inside)
    h2 = model.out.register_forward_hook(finish_other)
    with Monitor(model, opt, interval=1) as mon:
        thread.start()
        assert inside.wait(120)
        model(x)
        seen["main"] = torch._C._len_torch_function_stack()
    h1.remove()
    h2.remove()
    assert not thread.is_alive()
    assert seen == {"other": 0, "main": 0}
    _no_hooks_left(torch, model, opt)


def test_a_big_network_on_a_few_noisy_examples_overfits(oracle):
    """48 training examples with a fifth of their labels flipped, a 2-128-128-3 network and
    Adam: the validation loss turns up while the training loss keeps falling."""
    torch = oracle
    torch.manual_seed(0)
    X, y = (t.numpy() for t in spiral(300, seed=1))
    rng = np.random.default_rng(0)
    order = rng.permutation(300)
    train, val = order[:48], order[48:]
    noisy = y.copy()
    flip = rng.random(300) < 0.2
    noisy[flip] = rng.integers(0, 3, flip.sum())
    x_t, y_t = torch.from_numpy(X[train]), torch.from_numpy(noisy[train]).long()
    x_v, y_v = torch.from_numpy(X[val]), torch.from_numpy(y[val]).long()
    model = torch_mlp(torch, [2, 128, 128, 3], torch.nn.ReLU)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    F = torch.nn.functional
    with Monitor(model, opt, interval=5) as mon:
        for epoch in range(1, 151):
            perm, total = torch.randperm(48), 0.0
            for i in range(0, 48, 16):
                b = perm[i:i + 16]
                opt.zero_grad()
                loss = F.cross_entropy(model(x_t[b]), y_t[b])
                loss.backward()
                mon.log_loss(loss)
                opt.step()
                total += loss.item()
            with torch.no_grad():
                val_loss = F.cross_entropy(model(x_v), y_v).item()
            mon.log_epoch(epoch, loss=total / 3, val_loss=val_loss)
    report = diagnose(mon.readings)
    assert report.names() == ["overfitting"], str(report)
    f = report["overfitting"]
    assert f.evidence["best_epoch"] < f.evidence["last_epoch"] == 150
    assert f.evidence["last_val_loss"] > f.evidence["best_val_loss"]
    assert f.evidence["train_loss_last"] < f.evidence["train_loss_at_best"]
    assert "model.state_dict()" in f.advice and "torch.optim.AdamW" in f.advice
    assert_pytorch_wording(report)


def test_the_device_layout_gives_the_cpu_layouts_readings(oracle, monkeypatch):
    """TorchLayout (the every-step norm and the noise sums in PyTorch's _foreach kernels,
    used where parameters live on a GPU) run on CPU tensors: the same readings as the NumPy
    layout, and its window sums survive a state_dict round trip."""
    torch = oracle
    from backprop.diagnostics._layout import Layout
    from backprop.diagnostics.torch_adapter import TorchAdapter, TorchLayout

    def run(force):
        if force:
            monkeypatch.setattr(TorchAdapter, "layout", lambda self, named: TorchLayout(named, self))
        else:
            monkeypatch.undo()
        torch.manual_seed(0)
        model = torch_mlp(torch, [2, 16, 16, 3], torch.nn.Tanh, dtype=torch.float64)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        mon = Monitor(model, opt, interval=4, noise_window=3)
        assert isinstance(mon._layout, TorchLayout) == force
        assert isinstance(mon._layout, Layout)
        for step, (_, x, y) in enumerate(spiral_batches(torch, 2, batch_size=16, n=96)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x.double()), y)
            loss.backward()
            mon.log_loss(loss)
            opt.step()
            if step == 10:           # inside the window of step 13: a sum is open
                state = mon.state_dict()
        mon.close()
        return mon, state

    cpu, cpu_state = run(False)
    dev, dev_state = run(True)
    assert [r["noise"] is not None for r in dev.readings.steps].count(True) >= 2
    assert all(r["params"]["0.weight"]["update_ratio"] > 0 for r in dev.readings.steps)
    for a, b in zip(cpu.readings.steps, dev.readings.steps):
        assert_same_numbers(a, b, f"step {a['step']}")
    (r, window), = cpu_state["windows"].items()
    assert dev_state["windows"][r]["sum"] == pytest.approx(window["sum"], rel=1e-12)
    restored = dev._layout.sum_from_flat(dev_state["windows"][r]["sum"])
    assert [tuple(t.shape) for t in restored] == [tuple(p.shape) for _, p in dev._named]
    assert np.array_equal(dev._layout.sum_to_flat(restored), dev_state["windows"][r]["sum"])
