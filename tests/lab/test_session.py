"""LabSession: the lab's engine side, without any web code."""
import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.lab.session import LIMITS, LabSession
from backprop.lab.settings import LabError

MESSAGE = re.compile(r"^diverged at step (\d+): learning rate too high for this batch size\?$")


def weights(session):
    return [p.detach().numpy().copy() for p in session.model.parameters()]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def trained():
    """A default session (spiral, 3 classes) after 300 steps, and its first snapshot."""
    s = LabSession(diagnostics=False)
    first = s.snapshot()
    s.step(300)
    return s, first


def test_snapshot_is_json_with_the_documented_parts(trained):
    s, first = trained
    frame = s.snapshot()
    text = json.dumps(frame, allow_nan=False)
    assert len(text) < 200_000                                     # frames stay small
    assert frame["type"] == "state" and frame["step"] == 300
    assert frame["settings"]["dataset"] == "spiral" and frame["task"] == "classification"
    assert frame["classes"] == 3 and frame["network"]["sizes"] == [2, 8, 8, 3]
    assert frame["network"]["output"] == "softmax"
    b = frame["boundary"]
    assert (b["res"], b["dims"], len(b["values"])) == (40, 2, 3)
    probs = np.array(b["values"])                                  # (classes, rows, cols)
    assert probs.shape == (3, 40, 40)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=3e-3)
    # curves: one point at step 0, then every 10 steps; whole-set losses fell
    steps = [p[0] for p in frame["train_loss"]]
    assert steps[0] == 0 and steps[-1] == 300 and steps == sorted(steps)
    assert frame["metrics"]["train_loss"] < 0.8 * first["metrics"]["train_loss"]
    assert [g["label"] for g in frame["grad_norms"]] == ["layer 1", "layer 2", "output"]
    assert all(g["norm"] > 0 for g in frame["grad_norms"])
    # the data points come with the first frame after the data changed, not again
    assert len(first["points"]["train"]) == frame["n_train"] == 210
    assert first["points"]["train"][0][2] in (0, 1, 2)
    assert "points" not in frame and "points" in s.snapshot("full")
    assert frame["diverged"] is None


def test_rounding_keeps_frames_short(trained):
    s, _ = trained
    w = s.snapshot()["network"]["weights"][0][0][0]
    assert w == float(f"{w:.4g}")


def test_same_seed_same_run():
    a, b = LabSession({"seed": 3}, diagnostics=False), LabSession({"seed": 3}, diagnostics=False)
    assert same(weights(a), weights(b))
    a.step(20)
    b.step(20)
    assert same(weights(a), weights(b))
    assert not same(weights(a), weights(LabSession({"seed": 4}, diagnostics=False)))


def test_live_changes_keep_weights_and_take_effect_next_step():
    s = LabSession(diagnostics=False)
    s.step(5)
    before = weights(s)
    adam = s._optimizer
    s.apply({"lr": 0.1, "batch_size": 4, "beta1": 0.8, "weight_decay": 0.01})
    assert same(before, weights(s)) and s.step_count == 5 and s.settings_step == 5
    assert s._optimizer is adam and len(adam.state) > 0           # Adam's moments kept
    seen = s._stream.seen
    s.step(1)
    assert s._stream.seen - seen == 4                             # the new batch size
    group = adam.param_groups[0]
    assert (group["lr"], group["betas"][0], group["weight_decay"]) == (0.1, 0.8, 0.01)
    # sgd <-> momentum is the same optimizer; another kind is a new one over the same params
    s.apply({"optimizer": "sgd"})
    sgd = s._optimizer
    assert isinstance(sgd, optim.SGD) and sgd.param_groups[0]["params"] == s._params
    s.apply({"optimizer": "momentum", "momentum": 0.5})
    assert s._optimizer is sgd and sgd.param_groups[0]["momentum"] == 0.5
    s.step(2)
    assert s.step_count == 8 and s.snapshot()["settings"]["optimizer"] == "momentum"


def test_batch_size_is_capped_at_the_training_set():
    s = LabSession({"n_samples": 40, "batch_size": 500}, diagnostics=False)
    assert s.n_train == 28 and s.batch_size == 28
    s.step(3)
    assert s.epoch == 3 and s.snapshot()["batch_size_now"] == 28


def test_activation_and_dropout_swap_in_place():
    s = LabSession(diagnostics=False)
    s.step(3)
    before = weights(s)
    s.apply({"activation": "relu", "dropout": 0.3})
    assert same(before, weights(s))
    kinds = [type(m).__name__ for m in s.model]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert all(s.model[i].p == 0.3 for i in s._dropout_at)
    s.apply({"activations": ["gelu", "sigmoid"]})
    assert isinstance(s.model[1], nn.GELU) and isinstance(s.model[4], nn.Sigmoid)
    assert s.snapshot()["network"]["activations"] == ["gelu", "sigmoid"]
    s.step(2)
    assert s.step_count == 5


def test_reset_changes_rebuild():
    s = LabSession(diagnostics=False)
    s.step(10)
    version = s.data_version
    s.apply({"hidden": [5], "dataset": "moons"})
    assert s.step_count == 0 and s.sizes == [2, 5, 2] and s.data_version == version + 1
    assert "points" in s.snapshot()
    s.apply({"features": ["x1", "x2", "x1^2", "x1*x2", "sin x2"]})
    assert s.sizes[0] == 5 and s.snapshot()["network"]["inputs"][2] == "x1^2"
    np.testing.assert_allclose(s._X_train[:, 3], s._raw_train[:, 0] * s._raw_train[:, 1],
                               rtol=1e-6)


def test_regression_and_one_dimensional_sets():
    s = LabSession({"dataset": "sine", "features": ["x1", "x2", "sin x1"]}, diagnostics=False)
    assert s.inputs == ["x1", "sin x1"] and s.task == "regression"    # no x2 in 1-D data
    frame = s.snapshot()
    assert frame["boundary"]["dims"] == 1 and len(frame["boundary"]["values"][0]) == 80
    assert len(frame["points"]["train"][0]) == 2 and frame["network"]["output"] == "linear"
    with pytest.raises(LabError, match="sine has a single input x1") as e:
        s.apply({"features": ["x2", "x2^2"]})
    assert e.value.field == "features" and s.settings["features"] == ["x1", "x2", "sin x1"]
    plane = LabSession({"dataset": "plane"}, diagnostics=False).snapshot()
    assert plane["boundary"]["kind"] == "regression" and len(plane["boundary"]["range"]) == 2


def warmup_cosine_lrs(lr, total, steps):
    """The rates of optim.lr_scheduler.warmup_cosine with the lab's 10% warmup, then 0."""
    warmup = round(0.1 * total)
    return [lr * k / (warmup + 1) if k <= warmup else
            lr * 0.5 * (1 + math.cos(math.pi * (k - 1 - warmup) / (total - warmup)))
            if k <= total + 1 else 0.0 for k in range(1, steps + 1)]


def test_the_schedule_is_the_librarys_warmup_cosine():
    # NOTE: the lab had a warmup of its own (step t at lr * t / warmup, the peak at step
    # warmup); it now runs optim.lr_scheduler.warmup_cosine, whose step k warms up at
    # lr * k / (warmup + 1) and peaks one step later, at warmup + 1. The rate then stays 0.
    s = LabSession({"schedule": "warmup_cosine", "schedule_steps": 100, "optimizer": "sgd"},
                   diagnostics=False)
    s.step(1)
    assert s.snapshot()["lr_now"] == pytest.approx(0.03 / 11, rel=1e-4)
    s.step(119)
    lrs = [r["lr"] for r in s._history]
    assert lrs == pytest.approx(warmup_cosine_lrs(0.03, 100, 120), rel=1e-9, abs=1e-15)
    assert lrs[10] == pytest.approx(0.03) and lrs[100:] == [0.0] * 20


def test_live_changes_move_the_running_schedule():
    s = LabSession({"schedule": "warmup_cosine", "schedule_steps": 100, "optimizer": "sgd"},
                   diagnostics=False)
    s.step(30)
    s.apply({"lr": 0.06})                           # a new peak rescales the schedule
    s.step(10)
    s.apply({"optimizer": "momentum"})              # same optimizer, knobs edited
    s.apply({"optimizer": "adam"})                  # a new optimizer takes the schedule along
    s.step(10)
    want = warmup_cosine_lrs(0.03, 100, 30) + warmup_cosine_lrs(0.06, 100, 50)[30:]
    assert [r["lr"] for r in s._history] == pytest.approx(want, rel=1e-9)
    s.apply({"schedule_steps": 20})                 # a new length starts it again, now
    s.step(5)
    assert [r["lr"] for r in s._history[-5:]] == pytest.approx(warmup_cosine_lrs(0.06, 20, 5))
    s.apply({"schedule": "constant"})
    assert s.snapshot()["lr_now"] == 0.06
    s.step(1)
    s.apply({"schedule": "warmup_cosine"})          # starts again from the current step
    s.step(1)
    assert s._history[-1]["lr"] == pytest.approx(0.06 / 3)        # 20 steps: 2 warm up


def test_clipping():
    c = LabSession({"clip": 0.01, "optimizer": "sgd"}, diagnostics=False)
    c.step(1)
    total = math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in c._params))
    assert c.last_grad_norm > 0.01 and total == pytest.approx(0.01, rel=1e-4)


def test_every_lab_step_is_a_trainer_step(monkeypatch):
    # One training loop: the lab steps through backprop.train's Trainer.train_step.
    from backprop.train import Trainer

    calls = []
    real = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self, batch: calls.append(
        len(batch[1])) or real(self, batch))
    s = LabSession({"batch_size": 5}, diagnostics=False)
    s.step(3)
    s.one_step_detail()
    assert calls == [5, 5, 5, 5] and s._trainer.step == s.step_count == 4


def test_a_gradient_that_turns_infinite_stops_training(monkeypatch):
    import backprop.train.loop as loop

    s = LabSession({"optimizer": "sgd"})
    s.step(3)
    before = [p.detach().numpy().copy() for p in s._params]
    monkeypatch.setattr(loop, "_total_norm", lambda grads: (math.inf, backprop.tensor(math.inf)))
    assert s.step(5) == 0
    assert s.diverged["what"] == "gradient" and s.diverged["step"] == 4 and s.step_count == 3
    assert s.last_grad_norm == math.inf
    for p, w in zip(s._params, before, strict=True):       # the step was not taken
        np.testing.assert_array_equal(p.detach().numpy(), w)
    frame = json.loads(json.dumps(s.snapshot()))               # still JSON, NaN-free
    assert frame["findings"][0]["name"] == "divergence"
    assert "gradient norm became inf" in frame["findings"][0]["summary"]


def test_divergence_stops_training_until_reset():
    s = LabSession({"dataset": "sine", "optimizer": "sgd", "lr": 10.0}, diagnostics=False)
    done = s.step(200)
    assert s.diverged is not None and done < 200
    step = int(MESSAGE.match(s.diverged["message"]).group(1))
    assert step == s.diverged["step"] and s.step_count == done
    frame = s.snapshot()
    json.dumps(frame, allow_nan=False)                               # NaN written as null
    assert frame["diverged"]["message"] == s.diverged["message"]
    assert s.step(5) == 0 and s.step_count == done                   # no more steps
    with pytest.raises(LabError, match=f"training diverged at step {step}; reset"):
        s.one_step_detail()
    s.reset()
    assert s.diverged is None and s.step_count == 0
    assert s.snapshot()["diverged"] is None


def test_a_loss_that_blows_up_counts_as_diverged():
    # cross-entropy with tanh rarely reaches Inf; a loss 5x worse than guessing is caught
    s = LabSession({"lr": 10.0}, diagnostics=False)
    s.step(100)
    assert s.diverged is not None and s.diverged["what"] == "loss_blow_up"
    assert MESSAGE.match(s.diverged["message"])
    calm = LabSession({"lr": 0.1}, diagnostics=False)
    assert calm.step(100) == 100 and calm.diverged is None


def test_one_step_detail():
    s = LabSession({"hidden": [3], "batch_size": 5}, diagnostics=False)
    s.step(2)
    w0 = weights(s)
    d = s.one_step_detail()
    json.dumps(d, allow_nan=False)
    assert d["type"] == "step_detail" and d["step"] == s.step_count == 3
    assert d["batch_size"] == 5 and d["loss"] > 0 and d["diverged"] is None
    assert [len(f["pre"]) for f in d["forward"]] == [3, 3]
    assert sum(d["forward"][-1]["post"]) == pytest.approx(1.0, abs=1e-3)   # softmax output
    assert d["sample"]["input"] == [round(v, 4) for v in d["sample"]["input"]]
    assert np.array(d["backward"][0]["weight_grads"]).shape == (3, 2)
    # the update is exactly what changed in the weights
    after = weights(s)
    np.testing.assert_allclose(d["update"][0]["weights"], after[0] - w0[0], rtol=1e-3,
                               atol=1e-7)
    # dL/dz of the sample is its share of the bias gradient (a batch mean: 1/B each)
    assert np.all(np.abs(d["backward"][1]["grad_pre"]) <= 1.0 / 5 + 1e-6)


def test_limits():
    with pytest.raises(LabError, match="hidden must have 0 to 6 entries, got 7"):
        LabSession({"hidden": [2] * 7})
    with pytest.raises(LabError, match="boundary_res"):
        LabSession(boundary_res=LIMITS["max_boundary_res"] + 1)
    s = LabSession({"hidden": [32] * 6}, diagnostics=False)
    assert sum(p.numel() for p in s.model.parameters()) < 6000


def test_load_csv_classification_and_regression():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 2))
    labels = np.where(X[:, 0] * X[:, 1] > 0, 7, 3)
    text = "a,b,label\n" + "".join(f"{x:.4f},{y:.4f},{c}\n" for (x, y), c in zip(X, labels))
    s = LabSession(diagnostics=False)
    info = s.load_csv(text)
    assert info == {"rows": 60, "task": "classification", "classes": 2,
                    "class_labels": [3.0, 7.0], "header": ["a", "b", "label"]}
    assert s.settings["dataset"] == "csv" and s.sizes[-1] == 2 and s.step_count == 0
    s.step(50)
    assert s.snapshot("full")["points"]["train"][0][2] in (0, 1)
    s.apply({"lr": 0.05, "hidden": [4]})           # rebuilds on the same uploaded data
    assert s.n_train + len(s._y_test) == 60
    values = "".join(f"{x},{y},{x + y + 0.123}\n" for x, y in X[:20])
    assert s.load_csv(values)["task"] == "regression" and s.task == "regression"


@pytest.mark.parametrize("text, pattern", [
    ("1,2\n" * 20, "CSV row 1: expected 3 columns"),
    ("x,y,z\n1,2,3\n1,two,0\n" + "1,2,0\n" * 20, "CSV row 3: 'two' is not a number"),
    ("1,2,0\n" * 5, "the CSV has 5 data rows; the lab needs at least 10"),
    ("1,2,0\n" * (LIMITS["max_csv_rows"] + 1), "more than 5000 rows"),
    ("1,2,1\n" * 20, "labels are all 1: a classification set needs at least 2 classes"),
    ("1,2,nan\n" * 20, "CSV row 1: values must be finite numbers"),
    ("x" * (LIMITS["max_csv_bytes"] + 1), "bytes; the lab takes at most 1000000 bytes"),
])
def test_load_csv_errors_leave_the_session_alone(text, pattern):
    s = LabSession(diagnostics=False)
    s.step(3)
    with pytest.raises(LabError, match=pattern):
        s.load_csv(text)
    assert s.settings["dataset"] == "spiral" and s.step_count == 3


def test_csv_dataset_needs_an_upload():
    with pytest.raises(LabError, match="dataset csv needs an uploaded CSV file first") as e:
        LabSession({"dataset": "csv"})
    assert e.value.field == "dataset"


def test_export_checkpoint_loads_back():
    s = LabSession({"hidden": [4]}, diagnostics=False)
    s.step(5)
    data = backprop.load(io.BytesIO(s.export_checkpoint()))
    assert data["step"] == 5 and data["settings"] == s.settings and data["sizes"] == [2, 4, 3]
    state = s.model.state_dict()
    assert set(data["model"]) == set(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(data["model"][name].numpy(), tensor.numpy())
    assert s.export_filename("checkpoint") == "backprop-lab-spiral-step5.safetensors"


def test_export_script_runs_and_trains(tmp_path):
    s = LabSession({"optimizer": "momentum", "schedule": "warmup_cosine", "schedule_steps": 50,
                    "clip": 5.0, "init": "he", "features": ["x1", "x2", "x1*x2"],
                    "activations": ["relu", "tanh"], "dropout": 0.1, "lr": 0.1},
                   diagnostics=False)
    s.step(5)
    path = tmp_path / s.export_filename("script")
    path.write_text(s.export_script())
    ckpt = tmp_path / "lab.safetensors"
    ckpt.write_bytes(s.export_checkpoint())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(path), "--steps", "40", "--checkpoint", str(ckpt)],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    losses = [float(v) for v in re.findall(r"train loss ([0-9.]+)", out.stdout)]
    assert len(losses) >= 3 and losses[-1] < losses[0]

    # the script builds the same data and network: its initial weights are the session's
    s0 = LabSession({"hidden": [8, 8], "init": "xavier", "dataset": "blobs"}, diagnostics=False)
    namespace = {"__name__": "lab_script"}
    exec(compile(s0.export_script(), "lab_script.py", "exec"), namespace)
    data = namespace["load_data"](namespace["SETTINGS"], namespace["CSV"])
    np.testing.assert_array_equal(data["X_train"], s0._X_train)
    model = namespace["build_model"](namespace["SETTINGS"], 2, 3).model
    for p, q in zip(model.parameters(), s0.model.parameters(), strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


@pytest.mark.parametrize("settings", [
    {"optimizer": "momentum", "schedule": "warmup_cosine", "schedule_steps": 20, "clip": 0.5,
     "l2": 0.01, "dropout": 0.2, "batch_size": 7, "activations": ["relu", "tanh"]},
    {"optimizer": "adam", "l1": 0.001, "dataset": "sine", "features": ["x1", "sin x1"],
     "init": "he", "seed": 3},
], ids=["momentum-warmup-clip-l2-dropout", "adam-l1-regression"])
def test_the_exported_script_trains_as_the_lab_does(tmp_path, settings):
    # One recipe: the script runs the lab's own builders and Trainer step, so the same seed
    # and steps give the same batch losses, bit for bit.
    s = LabSession(settings, diagnostics=False)
    s.step(30)
    path = tmp_path / "lab_script.py"
    path.write_text(s.export_script())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(path), "--steps", "30", "--history", "h.json"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    history = backprop.train.History.from_json(tmp_path / "h.json")
    assert [r["loss"] for r in history.steps] == [r["loss"] for r in s._history]
    assert [r["lr"] for r in history.steps] == [r["lr"] for r in s._history]


def test_export_script_of_uploaded_data_compiles():
    s = LabSession(diagnostics=False)
    s.load_csv("".join(f"{i / 10},{i % 3 / 5},{i % 2}\n" for i in range(12)))
    namespace = {"__name__": "lab_script"}
    exec(compile(s.export_script(), "lab_script.py", "exec"), namespace)
    data = namespace["load_data"](namespace["SETTINGS"], namespace["CSV"])
    assert len(data["y_train"]) + len(data["y_test"]) == 12
    np.testing.assert_array_equal(data["X_train"], s._X_train)


def test_stability_grid_checks():
    s = LabSession({"n_samples": 100}, diagnostics=False)
    lrs, batch_sizes, steps = s.stability_grid()
    assert lrs[0] == 1e-4 and lrs[-1] == 10.0 and batch_sizes == [1, 4, 16, 64, 70]
    assert steps == 200
    with pytest.raises(LabError, match="lr must be between"):
        s.stability_grid(lrs=[100.0])
    with pytest.raises(LabError, match="9 x 8 = 72 cells is too big; at most 64"):
        s.stability_grid(lrs=[0.1] * 9, batch_sizes=[4] * 8)
    with pytest.raises(LabError, match="steps must be an integer between 1 and 2000"):
        s.stability_grid(steps=0)


def test_stability_map_runs_in_processes():
    s = LabSession({"dataset": "sine", "optimizer": "sgd"}, diagnostics=False)
    s.step(3)
    cells = list(s.stability_map([0.01, 10.0], [4, 16], steps=30, max_workers=2))
    assert len(cells) == 4 and s.step_count == 3          # the session itself did not move
    grid = {(c["i"], c["j"]): c for c in cells}
    assert set(grid) == {(0, 0), (1, 0), (0, 1), (1, 1)}
    for j in (0, 1):
        calm, wild = grid[(0, j)], grid[(1, j)]
        assert calm["lr"] == 0.01 and not calm["diverged"] and calm["final_loss"] > 0
        assert calm["steps"] == 30
        assert wild["lr"] == 10.0 and wild["diverged"] and wild["final_loss"] is None
    assert {c["batch_size"] for c in cells} == {4, 16}
    json.dumps(cells, allow_nan=False)


def test_diagnostics_monitor_is_attached_when_available():
    pytest.importorskip("backprop.diagnostics")
    s = LabSession()
    assert s._monitor is not None
    s.step(60)
    findings = s.snapshot()["findings"]
    assert isinstance(findings, list)
    for f in findings:
        assert set(f) >= {"name", "severity", "summary", "advice"}
    assert len(s._monitor.readings.steps) == 6            # steps 1, 11, ..., 51
    s.apply({"optimizer": "sgd"})                         # a new optimizer: a new Monitor
    s.step(1)
    assert s._monitor.readings.steps and s._monitor.optimizer is s._optimizer
    s.close()
    assert s._monitor is None


# -- the doctor in the lab ------------------------------------------------------------------------
@pytest.mark.parametrize("settings, what", [
    ({"lr": 10.0}, "loss_blow_up"),                                      # no NaN, a loss 5x
    ({"dataset": "sine", "optimizer": "sgd", "lr": 10.0}, "loss"),        # NaN/Inf
])
def test_a_diverged_run_has_a_divergence_finding(settings, what):
    pytest.importorskip("backprop.diagnostics")
    s = LabSession(settings)
    s.step(100)
    assert s.diverged is not None and s.diverged["what"] == what
    assert s.diverged["step"] < 50       # before the doctor's regular 50-step turn
    findings = s.snapshot()["findings"]
    assert findings[0]["name"] == "divergence" and findings[0]["severity"] == "error"


def test_the_lab_says_diverged_when_the_doctor_cannot(monkeypatch):
    diagnostics = pytest.importorskip("backprop.diagnostics")
    monkeypatch.setattr(diagnostics, "diagnose", lambda readings, history=None: [])
    s = LabSession({"lr": 10.0, "optimizer": "sgd"})
    s.step(100)
    step = s.diverged["step"]
    (finding,) = s.snapshot()["findings"]
    assert finding["name"] == "divergence" and finding["severity"] == "error"
    assert finding["summary"].startswith(f"At step {step}, the loss on the training set reached")
    assert "learning rate 10, batch size 16" in finding["summary"]
    # the recovery: nothing trained stably before lr 10, so the default learning rate
    assert 'Reset with learning rate 0.03" (no learning rate has trained stably yet' \
        in finding["advice"]
    assert s.snapshot()["findings"] == [finding]       # made once, not at every frame
    s.reset()
    assert s.snapshot()["findings"] == []


def test_the_doctor_reads_every_step_numbered_as_the_page_shows(monkeypatch):
    diagnostics = pytest.importorskip("backprop.diagnostics")
    real, seen = diagnostics.diagnose, []

    def spy(readings, history=None):
        seen.append((readings, history))
        return real(readings, history)

    monkeypatch.setattr(diagnostics, "diagnose", spy)
    s = LabSession()
    s.step(50)
    s.snapshot()                           # the doctor runs when a frame is made
    readings, history = seen[-1]
    assert [r["step"] for r in history.steps] == list(range(1, 51))
    assert all(math.isfinite(r["loss"]) and r["lr"] == 0.03 for r in history.steps)
    assert readings.meta["batch_size"] == 16
    # a new optimizer makes a new Monitor counting from 1: its steps are shifted to the
    # session's, and the doctor is told the batch size in use now
    s.apply({"optimizer": "sgd", "batch_size": 4})
    s.step(100)
    s.snapshot()
    readings, history = seen[-1]
    assert [r["step"] for r in history.steps] == list(range(1, 151))
    assert [r["step"] for r in readings.steps] == list(range(51, 151, 10))
    assert readings.meta["batch_size"] == 4


def test_findings_name_layers_as_the_page_does():
    pytest.importorskip("backprop.diagnostics")
    s = LabSession({"activation": "sigmoid", "hidden": [8] * 6, "init": "too_small",
                    "optimizer": "sgd", "lr": 0.1})
    # modules: Linear 0, 3, ..., 15 and the output 18; activations 1, 4, ...; dropouts 2, 5, ...
    assert s._page_names("Layer 18 beats layer 4, 6.weight and 18.bias; layer 2 drops") == \
        "The output layer beats layer 2, layer 3's weights and the output layer's biases; " \
        "layer 1 dropout drops"
    s.step(100)
    finding = {f["name"]: f for f in s.snapshot()["findings"]}["vanishing_gradients"]
    assert "layer 1" in finding["summary"]
    assert not re.search(r"layer (1\d|[7-9])\b", finding["summary"])   # no module numbers
    assert set(finding["layers"]) <= {f"layer {k}" for k in range(1, 7)} | {"output"}


def test_load_csv_with_text_labels():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (40, 2))
    names = np.where(X[:, 0] > 0, "yes", "no")
    s = LabSession(diagnostics=False)
    info = s.load_csv("a,b,kind\n" + "".join(f"{x:.3f},{y:.3f}, {n}\n"
                                              for (x, y), n in zip(X, names)))
    assert info == {"rows": 40, "task": "classification", "classes": 2,
                    "class_labels": ["no", "yes"], "header": ["a", "b", "kind"]}
    labels = np.concatenate([s._y_train, s._y_test])
    assert sorted(labels.tolist()) == sorted((names == "yes").astype(int).tolist())
    assert s.step(20) == 20
    compile(s.export_script(), "lab.py", "exec")
    many = "".join(f"{i},{i},class{i}\n" for i in range(12))
    with pytest.raises(LabError, match="labels are text with 12 different values; a "
                                       "classification set takes at most 10 classes"):
        s.load_csv(many)
    with pytest.raises(LabError, match="CSV row 3: the label \\(third column\\) is empty"):
        s.load_csv("1,2,a\n1,2,b\n1,2, \n" + "1,2,a\n" * 10)
    assert s.task == "classification" and s._csv["class_labels"] == ["no", "yes"]


def test_the_doctors_history_is_bounded(monkeypatch):
    import backprop.lab.session as session_module
    monkeypatch.setattr(session_module, "_HISTORY_HEAD", 5)
    monkeypatch.setattr(session_module, "_HISTORY_KEEP", 20)
    s = LabSession(diagnostics=False)
    s.step(137)
    steps = [r["step"] for r in s._history]
    assert steps[:5] == [1, 2, 3, 4, 5]              # the untrained start stays
    assert steps[-1] == 137 and steps[5:] == list(range(steps[5], 138))
    assert len(steps) <= 5 + 20


def test_a_csv_value_beyond_float32_is_refused_not_turned_into_inf():
    rows = "\n".join(f"{i * 0.1},{1e39 if i == 3 else i},{i % 2}" for i in range(20))
    session = LabSession()
    with pytest.raises(LabError, match="row 4: values must be finite"):
        session.load_csv(rows)
    session.snapshot()  # the session is untouched and still draws


def test_a_stability_cell_stops_when_asked():
    from backprop.lab.cells import stability_cell as _stability_cell

    s = LabSession({"dataset": "moons"}, diagnostics=False)
    job = (0, 0, {**s.settings, "lr": 0.01, "batch_size": 8}, None, 200, "batch_size", 8)
    looks = []
    assert _stability_cell(job, lambda: looks.append(1) or len(looks) > 3) is None
    assert len(looks) == 4                      # it looked between chunks, and stopped
    looks.clear()
    cell = _stability_cell(job, lambda: looks.append(1) and False)
    assert cell["steps"] == 200 and not cell["diverged"] and len(looks) == 20


def test_dropout_masks_repeat_from_the_seed_whatever_else_the_process_draws():
    # The masks come from the session's own stream: the global generator (seeded per
    # process from the OS, and shared by every session) does not change a run.
    settings = {"seed": 5, "dropout": 0.3}
    a = LabSession(settings, diagnostics=False)
    backprop.manual_seed(123)
    a.step(15)
    b = LabSession(settings, diagnostics=False)
    backprop.manual_seed(456)
    backprop.rand(1000)
    b.step(15)
    assert same(weights(a), weights(b))
    c = LabSession({"seed": 6, "dropout": 0.3}, diagnostics=False)
    c.step(15)
    assert not same(weights(a), weights(c))
