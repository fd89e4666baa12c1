"""run_experiment's extra callbacks: instances and (model, optimizer) factories."""
from __future__ import annotations

from backprop.diagnostics import Monitor, Readings
from backprop.train import Callback
from backprop.train.experiment import RunConfig, run_experiment


class Counter(Callback):
    def __init__(self):
        self.batches = 0

    def on_batch_end(self, trainer, record):
        self.batches += 1


def test_callbacks_and_factories(tmp_path):
    seen = {}

    def factory(model, optimizer):
        seen["model"], seen["optimizer"] = model, optimizer
        return Monitor(model, interval=2, path=tmp_path / "run" / "diagnostics.jsonl")

    counter = Counter()
    config = RunConfig(dataset="moons", n_samples=80, layers="2-8-2", epochs=2, batch_size=16,
                       out=str(tmp_path / "run"))
    result = run_experiment(config, progress=False, callbacks=[counter, factory])
    assert counter.batches == result["steps"] == 8
    assert seen["optimizer"].param_groups[0]["params"][0] is next(seen["model"].parameters())
    assert "diagnostics.jsonl" in result["files"]
    readings = Readings.from_jsonl(tmp_path / "run" / "diagnostics.jsonl")
    assert [s["step"] for s in readings.steps] == [1, 3, 5, 7]
    assert readings.meta["params"] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_a_fresh_run_clears_old_diagnostics(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(dataset="moons", n_samples=80, layers="2-8-2", epochs=1, batch_size=16,
                       out=str(out))
    out.mkdir()
    (out / "diagnostics.jsonl").write_text("stale\n")
    (out / "grad_norms.png").write_bytes(b"stale")
    result = run_experiment(config, progress=False)  # no monitor this time
    assert not (out / "diagnostics.jsonl").exists() and not (out / "grad_norms.png").exists()
    assert "diagnostics.jsonl" not in result["files"]
