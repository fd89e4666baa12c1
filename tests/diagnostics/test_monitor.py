"""Monitor and Readings: what is measured matches NumPy, hooks come and go on schedule."""
import json
import math
import shutil

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.diagnostics import Monitor, Readings
from backprop.diagnostics.monitor import (
    HISTOGRAM_SAMPLE, SIGMOID_SATURATION_DERIVATIVE, TANH_SATURATION_DERIVATIVE, activation_stats,
)
from backprop.ops import _kernels
from backprop.train import ModelCheckpoint, Trainer, TrainingDiverged, fit

from tests.train.common import moons_loaders


# -- helpers ----------------------------------------------------------------------------------
def mlp(sizes=(2, 16, 8, 3), act=nn.ReLU, dtype=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    model = nn.Sequential(*layers)
    return model.double() if dtype == "float64" else model


def batch(n=32, d=2, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (backprop.tensor(rng.normal(size=(n, d)).astype(np.float32)),
            backprop.tensor(rng.integers(0, classes, size=n)))


def manual_steps(model, opt, mon, steps, data=None, before_step=None, loss_fn=None):
    """A plain training loop; ``before_step(i)`` runs after backward (i counts from 1)."""
    x, y = data if data is not None else batch()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    for i in range(1, steps + 1):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if mon is not None:
            mon.log_loss(loss)
        if before_step is not None:
            before_step(i)
        opt.step()


def no_hooks_left(model, opt):
    return (all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
            and not opt._pre_hooks and not opt._post_hooks)


# -- Readings -----------------------------------------------------------------------------------
def sample_readings():
    return Readings(
        meta={"interval": 2, "params": ["fc.weight", "fc.bias", "out.weight"], "layers": ["fc"],
              "batch_size": 4},
        steps=[{"step": 1, "epoch": 1, "loss": 0.5, "lr": 0.1, "grad_norm": math.inf,
                "params": {"fc.weight": {"grad_norm": 1.0, "weight_norm": 2.0,
                                         "update_ratio": None, "grad_abs_mean": math.nan}},
                "activations": {"fc": {"kind": "relu", "mean": 0.1, "std": -math.inf,
                                       "dead_fraction": 0.25, "saturated_fraction": None,
                                       "hist": {"edges": [0.0, 1.0], "counts": [3]}}},
                "noise": None},
               {"step": 3, "epoch": 2, "loss": math.nan, "lr": 0.1, "grad_norm": 2.0,
                "params": {}, "activations": {},
                "noise": {"batches": 2, "batch_size": 4, "trace_cov": 1.0,
                          "grad_sq_norm": 0.0, "b_noise": math.inf}}],
        epochs=[{"epoch": 1, "step": 2, "loss": 0.4, "val_loss": math.nan}],
        nonfinite={"step": 3, "kind": "loss", "name": "loss", "detail": "the loss is nan"})


def test_readings_round_trip_keeps_nonfinite_floats(tmp_path):
    r = sample_readings()
    path = tmp_path / "r.jsonl"
    r.to_jsonl(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["meta", "step", "epoch", "step", "nonfinite"]
    back = Readings.from_jsonl(path)
    assert back.to_dict() == r.to_dict()
    assert math.isinf(back.steps[0]["grad_norm"]) and back.steps[0]["grad_norm"] > 0
    assert math.isnan(back.steps[0]["params"]["fc.weight"]["grad_abs_mean"])
    assert back.steps[0]["activations"]["fc"]["std"] == -math.inf
    assert math.isnan(back.epochs[0]["val_loss"])
    assert back.steps[1]["noise"]["b_noise"] == math.inf
    assert Readings.from_dict(r.to_dict()).to_dict() == r.to_dict()


def test_readings_helpers():
    r = sample_readings()
    assert len(r) == 2
    assert r.last()["step"] == 3
    assert r.step_numbers() == [1, 3]
    assert r.series("lr") == [0.1, 0.1]
    assert r.param_series("fc.weight", "grad_norm") == [1.0, None]
    assert r.activation_series("fc", "dead_fraction") == [0.25, None]
    assert r.layer_weight_names() == ["fc.weight", "out.weight"]
    with pytest.raises(KeyError, match="no parameter 'nope'.*fc.weight"):
        r.param_series("nope", "grad_norm")
    assert "2 recorded steps" in repr(r) and "non-finite loss" in repr(r)
    r.truncate(2)
    assert r.step_numbers() == [1] and r.nonfinite is None and len(r.epochs) == 1
    assert Readings().last() is None and len(Readings()) == 0


def test_readings_from_jsonl_tolerates_a_cut_last_line_and_skips_bad_ones(tmp_path, recwarn):
    path = tmp_path / "r.jsonl"
    lines = list(sample_readings().lines())
    path.write_text("".join(lines) + '{"kind": "step", "st')
    assert len(Readings.from_jsonl(path)) == 2 and len(recwarn) == 0   # silently
    # damaged lines amid good ones: skipped, one warning naming the file and each line
    damaged = lines[:2] + ["nope\n", '{"kind": "weird"}\n', '{"kind": "nonfinite"}\n'] + lines[2:]
    path.write_text("".join(damaged))
    with pytest.warns(UserWarning) as caught:
        back = Readings.from_jsonl(path)
    assert back.to_dict() == sample_readings().to_dict()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and "skipped 3 unreadable lines" in message
    assert "line 3 is not JSON" in message and 'line 4 needs "kind"' in message
    assert 'line 5 needs its record under "nonfinite"' in message
    # nothing readable at all: not a readings file
    path.write_text('{"kind": "weird"}\nnope\n')
    with pytest.raises(ValueError, match='no readable record: line 1 needs "kind"'):
        Readings.from_jsonl(path)


# -- per-parameter measurements -------------------------------------------------------------------
def test_grad_norms_and_update_ratios_match_numpy():
    model = mlp()
    lr = 0.05
    opt = optim.SGD(model.parameters(), lr=lr)
    mon = Monitor(model, opt, interval=1)
    expected = []

    def measure(i):
        names = [n for n, _ in model.named_parameters()]
        grads = [p.grad.numpy().astype(np.float64) for p in model.parameters()]
        weights = [p.detach().numpy().astype(np.float64) for p in model.parameters()]
        expected.append({
            "total": np.sqrt(sum((g ** 2).sum() for g in grads)),
            **{n: (np.linalg.norm(g), np.linalg.norm(w), np.linalg.norm(lr * g) / np.linalg.norm(w),
                   np.abs(g).mean()) for n, g, w in zip(names, grads, weights)}})

    manual_steps(model, opt, mon, 3, before_step=measure)
    assert len(mon.readings) == 3
    for record, want in zip(mon.readings.steps, expected):
        assert record["grad_norm"] == pytest.approx(want["total"], rel=1e-5)
        for name, stats in record["params"].items():
            gn, wn, ratio, gam = want[name]
            assert stats["grad_norm"] == pytest.approx(gn, rel=1e-5)
            assert stats["weight_norm"] == pytest.approx(wn, rel=1e-5)
            assert stats["update_ratio"] == pytest.approx(ratio, rel=1e-4)
            assert stats["grad_abs_mean"] == pytest.approx(gam, rel=1e-5)
    assert mon.readings.steps[0]["lr"] == lr
    mon.close()


def test_params_without_gradients_are_left_out_of_the_record():
    model = mlp()
    model[0].bias.requires_grad_(False)
    opt = optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with Monitor(model, opt, interval=1) as mon:
        manual_steps(model, opt, mon, 2)
    record = mon.readings.last()
    assert "0.bias" in mon.readings.meta["params"]
    assert "0.bias" not in record["params"] and "0.weight" in record["params"]
    assert mon.readings.param_series("0.bias", "grad_norm") == [None, None]


# -- activations --------------------------------------------------------------------------------
def test_dead_fraction_of_a_relu_layer():
    model = mlp((4, 16, 3))
    x, y = batch(64, 4)
    opt = optim.SGD(model.parameters(), lr=0.01)
    with Monitor(model, opt, interval=1) as mon:
        manual_steps(model, opt, mon, 1, data=(x, y))
    healthy = mon.readings.last()["activations"]["1"]
    assert healthy["kind"] == "relu" and healthy["saturated_fraction"] is None
    assert 0.0 <= healthy["dead_fraction"] < 1.0
    pre = x.numpy() @ model[0].weight.detach().numpy().T + model[0].bias.detach().numpy()
    assert healthy["dead_fraction"] == pytest.approx(np.mean((pre <= 0).all(axis=0)))
    assert mon.readings.last()["activations"]["0"]["dead_fraction"] is None  # a Linear

    with backprop.no_grad():
        model[0].bias.fill_(-100.0)
    with Monitor(model, opt, interval=1) as mon:
        manual_steps(model, opt, mon, 1, data=(x, y))
    assert mon.readings.last()["activations"]["1"]["dead_fraction"] == 1.0
    assert mon.readings.meta["layers"] == ["0", "1", "2"]


def test_saturated_fraction_of_sigmoid_and_tanh():
    for act, kind in ((nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh")):
        model = mlp((4, 32, 2), act=act)
        with backprop.no_grad():
            model[0].weight.mul_(200.0)
        x, y = batch(64, 4, classes=2)
        opt = optim.SGD(model.parameters(), lr=0.0)
        with Monitor(model, opt, interval=1) as mon:
            manual_steps(model, opt, mon, 1, data=(x, y))
        stats = mon.readings.last()["activations"]["1"]
        assert stats["kind"] == kind and stats["dead_fraction"] is None
        assert stats["saturated_fraction"] > 0.95
        out = model[1](model[0](x)).detach().numpy().astype(np.float64)
        deriv = out * (1 - out) if kind == "sigmoid" else 1 - out ** 2
        limit = SIGMOID_SATURATION_DERIVATIVE if kind == "sigmoid" else TANH_SATURATION_DERIVATIVE
        assert stats["saturated_fraction"] == pytest.approx(np.mean(deriv < limit), abs=1e-3)


def test_activation_stats_mean_std_histogram():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 7)).astype(np.float32)
    b = rng.normal(size=(30, 7)).astype(np.float32)
    stats = activation_stats("relu", [a, b])
    both = np.concatenate([a, b]).astype(np.float64)
    assert stats["mean"] == pytest.approx(both.mean()) and stats["std"] == pytest.approx(both.std())
    assert sum(stats["hist"]["counts"]) == both.size and len(stats["hist"]["edges"]) == 21
    # two calls in one step: a unit is dead only if it was <= 0 in both
    a[:, 0] = -1.0
    b[:, 0] = -1.0
    a[:, 1] = -1.0
    stats = activation_stats("relu", [np.maximum(a, 0), np.maximum(b, 0)])
    assert stats["dead_fraction"] == pytest.approx(1 / 7)
    assert activation_stats("tanh", [a], histograms=False)["hist"] is None


# -- gradient noise -------------------------------------------------------------------------------
def regression_problem(n=4000, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    y = X @ w_true + 0.5 * rng.normal(size=n)
    return X, y


def test_noise_trace_cov_matches_the_formula_on_the_same_gradients():
    X, y = regression_problem(n=512)
    K, B = 6, 16
    model = nn.Linear(5, 1, bias=False).double()
    opt = optim.SGD(model.parameters(), lr=0.01)
    mon = Monitor(model, opt, interval=K, noise_window=K)
    rng = np.random.default_rng(3)
    grads = []
    for step in range(1, K + 2):
        idx = rng.integers(0, len(X), size=B)
        opt.zero_grad()
        loss = nn.MSELoss()(model(backprop.tensor(X[idx])), backprop.tensor(y[idx, None]))
        loss.backward()
        grads.append(model.weight.grad.numpy().ravel().copy())
        opt.step()
    record = mon.readings.steps[-1]
    assert [r["step"] for r in mon.readings.steps] == [1, K + 1]
    assert mon.readings.steps[0]["noise"] is None          # one batch only
    g = np.array(grads[1:])                                 # steps 2..K+1: the window
    mean = g.mean(axis=0)
    S = ((g - mean) ** 2).sum() / (K - 1)
    G2 = mean @ mean - S / K
    noise = record["noise"]
    assert noise["batches"] == K and noise["batch_size"] == B
    assert noise["trace_cov"] == pytest.approx(B * S, rel=1e-9)
    assert noise["grad_sq_norm"] == pytest.approx(G2, rel=1e-9)
    assert noise["b_noise"] == pytest.approx(B * S / G2, rel=1e-9)
    mon.close()


def test_noise_scale_estimate_is_near_the_true_one():
    X, y = regression_problem()
    B, K = 32, 64
    model = nn.Linear(5, 1, bias=False).double()
    with backprop.no_grad():
        model.weight.fill_(0.0)
    w = np.zeros(5)
    # Per-example gradients of (x.w - y)^2 at w, and the true simple noise scale tr(Sigma)/|G|^2.
    per_example = 2 * (X @ w - y)[:, None] * X
    G = per_example.mean(axis=0)
    true_b = np.trace(np.cov(per_example.T, bias=True)) / (G @ G)
    opt = optim.SGD(model.parameters(), lr=0.0)               # the same w for every batch
    mon = Monitor(model, opt, interval=K, noise_window=K, activations=False)
    rng = np.random.default_rng(5)
    for _ in range(K + 1):
        idx = rng.integers(0, len(X), size=B)
        opt.zero_grad()
        nn.MSELoss()(model(backprop.tensor(X[idx])), backprop.tensor(y[idx, None])).backward()
        opt.step()
    est = mon.readings.last()["noise"]["b_noise"]
    assert true_b / 1.5 < est < true_b * 1.5, (est, true_b)
    assert mon.readings.meta["batch_size"] == B
    mon.close()


# -- non-finite values --------------------------------------------------------------------------
def test_nonfinite_activation_names_the_first_layer():
    model = mlp((2, 8, 8, 8, 3))
    with backprop.no_grad():
        model[2].weight[0, 0] = float("nan")
    opt = optim.SGD(model.parameters(), lr=0.01)
    with Monitor(model, opt, interval=1) as mon:
        manual_steps(model, opt, mon, 1)
    bad = mon.readings.nonfinite
    assert bad["kind"] == "activation" and bad["name"] == "2" and bad["step"] == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nonfinite_parameter_found_through_the_loss_on_an_unrecorded_step():
    model = mlp((2, 8, 8, 3))
    opt = optim.SGD(model.parameters(), lr=0.01)

    def poison(i):
        if i == 2:
            with backprop.no_grad():
                model[2].weight[1, 1] = float("inf")

    with Monitor(model, opt, interval=100) as mon:
        manual_steps(model, opt, mon, 4, before_step=poison)
    bad = mon.readings.nonfinite
    # step 2's update spreads the inf; step 3's loss is NaN and the check finds which tensor
    assert (bad["step"], bad["kind"], bad["name"]) == (3, "parameter", "2.weight"), bad
    assert "1 infinite" in bad["detail"]


def test_nonfinite_gradient_names_the_parameter():
    model = mlp((2, 8, 8, 3))
    opt = optim.SGD(model.parameters(), lr=0.01)

    def poison(i):
        if i == 2:
            model[4].weight.grad.numpy()[0, 0] = np.inf

    with Monitor(model, opt, interval=100) as mon:
        manual_steps(model, opt, mon, 2, before_step=poison)
    bad = mon.readings.nonfinite
    assert (bad["step"], bad["kind"], bad["name"]) == (2, "gradient", "4.weight")
    assert "1 infinite" in bad["detail"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_trainer_run_keeps_the_first_nonfinite_value(tmp_path):
    train, _ = moons_loaders(n=64, batch_size=16)
    model = mlp((2, 16, 2))
    path = tmp_path / "diag.jsonl"
    mon = Monitor(model, interval=2, path=path)
    opt = optim.SGD(model.parameters(), lr=1e12)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, nn.CrossEntropyLoss(), opt, train, epochs=5, callbacks=[mon], progress=False)
    bad = mon.readings.nonfinite
    # step 3 is recorded: the forward hooks see the last layer's output overflow first
    assert info.value.step == 3
    assert (bad["step"], bad["kind"], bad["name"]) == (3, "activation", "2"), bad
    assert no_hooks_left(model, opt)
    on_disk = Readings.from_jsonl(path)
    assert on_disk.nonfinite == mon.readings.nonfinite
    assert on_disk.step_numbers() == mon.readings.step_numbers()


# -- the trainer ------------------------------------------------------------------------------
def test_works_as_a_trainer_callback(tmp_path):
    train, val = moons_loaders(n=96, batch_size=16)            # 6 steps an epoch
    model = mlp((2, 16, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "d.jsonl"
    mon = Monitor(model, interval=4, noise_window=4, path=path)
    history = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=2, val_data=val,
                  clip_grad_norm=1e-3, callbacks=[mon], progress=False)
    r = mon.readings
    assert r.step_numbers() == [1, 5, 9]
    steps = {s["step"]: s for s in history.steps}
    for record in r.steps:
        s = steps[record["step"]]
        assert record["loss"] == s["loss"] and record["lr"] == s["lr"]
        assert record["epoch"] == s["epoch"]
        assert record["grad_norm"] == pytest.approx(s["grad_norm"], rel=1e-5)   # before clipping
        # validation forwards (no_grad, 96 rows) are not counted in the step's batch
        assert record["noise"] is None or record["noise"]["batch_size"] == 16
    assert r.steps[1]["noise"]["batches"] == 4 and r.steps[2]["noise"]["batches"] == 4
    assert [e["epoch"] for e in r.epochs] == [1, 2] and "val_loss" in r.epochs[0]
    assert r.meta["batch_size"] == 16 and r.meta["layers"] == ["0", "1", "2"]
    assert no_hooks_left(model, opt)          # the optimizer was borrowed from the trainer
    assert Readings.from_jsonl(path).to_dict() == r.to_dict()


def test_trainer_resume_continues_the_live_file(tmp_path):
    def setup():
        backprop.manual_seed(0)
        model = mlp((2, 8, 2))
        train, _ = moons_loaders(n=64, batch_size=16, generator=backprop.Generator(7))  # 4 steps
        return model, optim.SGD(model.parameters(), lr=0.1), train

    path = tmp_path / "d.jsonl"
    model, opt, train = setup()
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, progress=False, callbacks=[
        Monitor(model, interval=3, path=path), ModelCheckpoint(tmp_path / "ck", save_best=False)])
    trainer.fit(train, epochs=1)
    shutil.copy(tmp_path / "ck" / "last.safetensors", tmp_path / "epoch1.safetensors")
    trainer.fit(train, epochs=3)
    full = Readings.from_jsonl(path)
    assert full.step_numbers() == [1, 4, 7, 10]

    # resume from step 4 in new objects: the file is cut back to step 4, then continued
    model, opt, train = setup()
    mon = Monitor(model, interval=3, path=path)
    fit(model, nn.CrossEntropyLoss(), opt, train, epochs=3, callbacks=[mon], progress=False,
        resume_from=tmp_path / "epoch1.safetensors")
    again = Readings.from_jsonl(path)
    assert again.step_numbers() == mon.readings.step_numbers() == [1, 4, 7, 10]
    assert [s["grad_norm"] for s in again.steps] == pytest.approx(
        [s["grad_norm"] for s in full.steps], rel=1e-6)


def _noise_run(tmp_path, epochs, resume_from=None, checkpoint=True):
    """4 steps an epoch; recorded steps 1, 7, 13, ... with noise windows of 4 steps."""
    backprop.manual_seed(0)
    model = mlp((2, 8, 2))
    train, _ = moons_loaders(n=64, batch_size=16, generator=backprop.Generator(7))
    mon = Monitor(model, interval=6, noise_window=4, path=tmp_path / "d.jsonl")
    callbacks = [mon] + ([ModelCheckpoint(tmp_path / "ck", save_best=False)] if checkpoint else [])
    Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), progress=False,
            callbacks=callbacks).fit(train, epochs=epochs, resume_from=resume_from)
    return mon.readings


def test_noise_after_a_resume_equals_an_uninterrupted_run(tmp_path):
    full = _noise_run(tmp_path / "full", epochs=4, checkpoint=False)
    assert full.step_numbers() == [1, 7, 13]
    _noise_run(tmp_path, epochs=1)          # stops at step 4: inside step 7's window (4..7)
    resumed = _noise_run(tmp_path, epochs=4, resume_from=tmp_path / "ck" / "last.safetensors")
    assert resumed.step_numbers() == [1, 7, 13]
    assert resumed.steps[1]["noise"]["batches"] == 4
    assert [r["noise"] for r in resumed.steps] == [r["noise"] for r in full.steps]


def test_a_partial_noise_window_gives_no_estimate(tmp_path):
    _noise_run(tmp_path, epochs=1)
    # a checkpoint without the windows (an older backprop's): step 7 would see 3 gradients
    ckpt = backprop.load(tmp_path / "ck" / "last.safetensors")
    del ckpt["callbacks"]["Monitor"]
    backprop.save(ckpt, tmp_path / "old.safetensors")
    resumed = _noise_run(tmp_path, epochs=4, resume_from=tmp_path / "old.safetensors")
    assert resumed.step_numbers() == [1, 7, 13]
    assert resumed.steps[1]["noise"] is None                       # dropped, not half-made
    noise = resumed.steps[2]["noise"]                              # a full window again
    assert noise["batches"] == 4 and noise["grad_sq_norm"] > 0 and math.isfinite(noise["b_noise"])


def test_resume_keeps_the_readings_around_a_damaged_line(tmp_path):
    _noise_run(tmp_path, epochs=2)                                  # steps 1..8: readings 1, 7
    shutil.copy(tmp_path / "ck" / "last.safetensors", tmp_path / "epoch2.safetensors")
    full = _noise_run(tmp_path, epochs=5, resume_from=tmp_path / "epoch2.safetensors")
    path = tmp_path / "d.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, "{garbage\n")                    # line 3, after the meta and step 1 lines
    path.write_text("".join(lines))
    with pytest.warns(UserWarning, match="skipped 1 unreadable line of .*d.jsonl: line 3 "):
        again = _noise_run(tmp_path, epochs=5, resume_from=tmp_path / "epoch2.safetensors")
    assert again.step_numbers() == full.step_numbers() == [1, 7, 13, 19]
    assert Readings.from_jsonl(path).to_dict() == again.to_dict()   # the file is whole again


# -- schedule and hooks -------------------------------------------------------------------------
def test_interval_and_forward_hooks_only_on_recorded_steps():
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, interval=3)
    hooked = []

    def has_hooks():
        return any(m._forward_hooks for m in model.modules())

    x, y = batch()
    for _ in range(10):
        hooked.append(has_hooks())
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        assert has_hooks() == hooked[-1]
        opt.step()
        assert has_hooks() == (len(hooked) % 3 == 0)       # attached for the step after: 4, 7..
    assert [i + 1 for i, h in enumerate(hooked) if h] == [1, 4, 7, 10]
    assert mon.readings.step_numbers() == [1, 4, 7, 10]
    assert all(r["loss"] is None for r in mon.readings.steps)    # log_loss was never called
    mon.close()
    assert no_hooks_left(model, opt)
    mon.close()  # twice is fine
    manual_steps(model, opt, None, 3)
    assert len(mon.readings) == 4                                 # closed: nothing more recorded


def test_gradient_accumulation_and_tuple_outputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(2, 8)
            self.act = nn.ReLU()
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            h = self.act(self.body(x))
            return self.head(h), h

    model = TwoHeads()
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = batch(16)
    with Monitor(model, opt, interval=1) as mon:
        for _ in range(2):
            opt.zero_grad()
            for half in (slice(0, 8), slice(8, 16)):                 # two micro-batches
                out, _ = model(x[half])
                loss = nn.CrossEntropyLoss()(out, y[half]) / 2
                loss.backward()
                mon.log_loss(loss)
            opt.step()
    record = mon.readings.last()
    assert record["loss"] is not None and set(record["activations"]) == {"body", "act", "head"}
    assert mon.readings.meta["batch_size"] == 16
    counts = record["activations"]["act"]["hist"]["counts"]
    assert sum(counts) == 16 * 8


def test_without_an_optimizer_log_loss_ends_each_step():
    model = mlp()
    x, y = batch()
    with Monitor(model, interval=2, noise_window=2) as mon:
        for _ in range(5):
            model.zero_grad()
            loss = nn.CrossEntropyLoss()(model(x), y)
            loss.backward()
            mon.log_loss(loss)
    assert mon.readings.step_numbers() == [1, 3, 5]
    record = mon.readings.last()
    assert record["loss"] == pytest.approx(loss.item())
    assert all(p["update_ratio"] is None and p["grad_norm"] > 0 for p in record["params"].values())
    assert record["noise"]["batches"] == 2


def test_live_file_is_written_as_it_goes(tmp_path):
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "sub" / "live.jsonl"
    mon = Monitor(model, opt, interval=2, path=path)
    manual_steps(model, opt, mon, 3)
    assert Readings.from_jsonl(path).step_numbers() == [1, 3]   # before close: already flushed
    mon.log_epoch(1, loss=0.5, val_loss=0.7)
    mon.close()
    back = Readings.from_jsonl(path)
    assert back.to_dict() == mon.readings.to_dict()
    assert back.epochs == [{"epoch": 1, "step": 3, "loss": 0.5, "val_loss": 0.7}]


def test_bad_arguments():
    model = mlp()
    with pytest.raises(ValueError, match="interval must be an integer >= 1, got 0"):
        Monitor(model, interval=0)
    with pytest.raises(ValueError, match="noise_window must be an integer >= 2"):
        Monitor(model, noise_window=1)
    with pytest.raises(TypeError, match="optimizer must be a backprop optimizer"):
        Monitor(model, object())
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        Monitor(lambda x: x)
    mon = Monitor(model, optim.SGD(model.parameters(), lr=0.1))
    other = optim.SGD(model.parameters(), lr=0.1)
    train, _ = moons_loaders(n=16, batch_size=16)
    with pytest.raises(ValueError, match="different optimizer"):
        fit(model, nn.CrossEntropyLoss(), other, train, callbacks=[mon], progress=False)
    mon.close()


def test_overlapping_noise_windows():
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.01)
    with Monitor(model, opt, interval=2, noise_window=4) as mon:
        manual_steps(model, opt, mon, 7)
    noise = mon.readings.series("noise")
    assert mon.readings.step_numbers() == [1, 3, 5, 7]
    # step 3's window would hold steps 1..3 only: a partial window gives no estimate
    assert noise[:2] == [None, None] and [n["batches"] for n in noise[2:]] == [4, 4]
    assert all(n["batch_size"] == 32 and n["trace_cov"] >= 0 for n in noise[2:])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_on_an_unrecorded_step_with_on_divergence_stop():
    train, _ = moons_loaders(n=64, batch_size=16)
    model = mlp((2, 16, 2))
    opt = optim.SGD(model.parameters(), lr=1e20)
    mon = Monitor(model, interval=100)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, callbacks=[mon], on_divergence="stop",
                      progress=False)
    trainer.fit(train, epochs=3)
    assert trainer.diverged.step == 2
    assert mon.readings.nonfinite == {"step": 2, "kind": "loss", "name": "loss",
                                      "detail": "the loss of step 2 is nan"}
    assert mon.readings.step_numbers() == [1] and no_hooks_left(model, opt)


def test_histograms_match_numpy_and_sample_large_outputs():
    rng = np.random.default_rng(2)
    small = rng.normal(size=(16, 40)).astype(np.float32)
    hist = activation_stats("linear", [small])["hist"]
    counts, edges = np.histogram(small, bins=20)
    assert hist["counts"] == counts.tolist()
    np.testing.assert_allclose(hist["edges"], edges, rtol=1e-6, atol=1e-6)
    big = rng.normal(size=(512, 64)).astype(np.float32)
    hist = activation_stats("linear", [big])["hist"]
    assert HISTOGRAM_SAMPLE // 2 < sum(hist["counts"]) <= HISTOGRAM_SAMPLE
    sample_share = np.array(hist["counts"]) / sum(hist["counts"])
    full_share = np.histogram(big, bins=hist["edges"])[0] / big.size
    assert np.abs(sample_share - full_share).max() < 0.02
    assert activation_stats("linear", [np.full((4, 3), 2.0)])["hist"]["counts"][10] == 12


@pytest.mark.parametrize("dtype,big", [(np.float32, 3e38), (np.float16, 40000.0)])
def test_outputs_whose_range_overflows_their_dtype_still_get_a_histogram(dtype, big):
    """max - min beyond the dtype's largest value (outputs blowing up, in float32 or half
    precision) is binned in float64, not overflowed to inf and a negative bin."""
    out = np.array([[-big, -1.0, 0.0, 1.0, big]] * 3, dtype)
    stats = activation_stats("linear", [out])
    hist = stats["hist"]
    counts = np.array(hist["counts"])
    assert counts.sum() == 15 and counts[0] == 3 and counts[-1] == 3
    assert counts[len(counts) // 2 - 1: len(counts) // 2 + 1].sum() == 9  # -1, 0 and 1
    assert hist["edges"][0] == pytest.approx(-big, rel=1e-3)
    assert hist["edges"][-1] == pytest.approx(big, rel=1e-3)
    assert stats["mean"] == pytest.approx(0.0, abs=1e-6 * big)


# -- the C passes (ops/_ckernels.c) against NumPy's calls ---------------------------------------
def _same_readings(a, b, rel, path=""):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            _same_readings(a[k], b[k], rel, f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_readings(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rel, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


@pytest.mark.skipif(_kernels.KERNELS is None, reason="the C array kernels are not built")
@pytest.mark.parametrize("dtype,rel", [(None, 1e-5), ("float64", 1e-12)])
def test_the_c_passes_give_numpys_readings(dtype, rel, monkeypatch):
    """Gradients, weights, updates and layer outputs read by one C pass each (with the noise
    windows' sums added in it) give the readings of NumPy's calls: equal to the arrays'
    rounding, since the passes add in another order."""
    from backprop.diagnostics import _layout

    def run(c_passes: bool):
        calls = []

        def counted(fn):
            def call(*args):
                calls.append(fn.__name__)
                return fn(*args)
            return call

        for name in ("_sum_pass", "_copy_pass"):
            real = getattr(_kernels.KERNELS, name.lstrip("_"))
            monkeypatch.setattr(_layout, name, counted(real) if c_passes else None)
        backprop.manual_seed(0)
        model = mlp((2, 32, 16, 3), act=nn.Tanh, dtype=dtype)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        mon = Monitor(model, opt, interval=4, noise_window=3)
        x, y = batch(n=48)
        manual_steps(model, opt, mon, 14, data=(x.double() if dtype else x, y))
        mon.close()
        return mon.readings, calls

    c, calls = run(True)
    numpy, none = run(False)
    assert none == []
    # Every step's check, the windows' and recorded steps' reads, the weights' copies and
    # changes, and each layer's sums ran in C.
    assert calls.count("copy_pass") == 2 * 6 * len(c.steps)
    assert calls.count("sum_pass") > 14 * 6
    assert [r["noise"] is not None for r in c.steps] == [False, True, True, True]
    assert len(c.steps) == len(numpy.steps) == 4
    for a, b in zip(numpy.steps, c.steps, strict=True):
        _same_readings(a, b, rel, f"step {a['step']}")


@pytest.mark.parametrize("c_pass", [True, False])
def test_squared_norms_overflow_quietly_into_float64(c_pass, monkeypatch):
    """A float32 ‖a‖² past float32's range, and any float16 one past 65504 (a vector of 300s),
    is summed again in float64, with no RuntimeWarning for the user to puzzle over."""
    import warnings

    from backprop.diagnostics import _layout

    if not c_pass:
        monkeypatch.setattr(_layout, "_sum_pass", None)
    elif _kernels.KERNELS is None:
        pytest.skip("the C array kernels are not built")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _layout.sq_norm(np.full(1000, 3e37, np.float32)) == pytest.approx(9e77, rel=1e-6)
        assert _layout.sq_norm(np.full((10, 100), 300, np.float16)) == 9e7
        assert math.isnan(_layout.sq_norm(np.array([1.0, np.nan], np.float32)))
