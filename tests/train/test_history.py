"""History: accessors and lossless JSON / JSON-lines round trips."""
import json
import math

import numpy as np
import pytest

from backprop.train import History


def _history():
    h = History()
    h.add_step({"step": 1, "epoch": 1, "loss": 2.5, "lr": 0.1, "grad_norm": 1.5})
    h.add_step({"step": 2, "epoch": 1, "loss": 2.0, "lr": 0.1, "grad_norm": math.inf})
    h.add_epoch({"epoch": 1, "step": 2, "loss": 2.25, "lr": 0.1, "val_loss": 1.9, "time": 0.5})
    h.add_step({"step": 3, "epoch": 2, "loss": float("nan"), "lr": [0.1, 0.01],
                "grad_norm": 0.5})
    h.add_epoch({"epoch": 2, "step": 3, "loss": 1.5, "lr": 0.05, "val_loss": 2.1, "time": 0.5})
    return h


def _same(a: History, b: History):
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())


def test_accessors():
    h = _history()
    assert h.epoch_metric("val_loss") == [1.9, 2.1]
    assert h.step_metric("grad_norm") == [1.5, math.inf, 0.5]
    assert h.best_epoch("val_loss")["epoch"] == 1
    assert h.best_epoch("loss", mode="max")["epoch"] == 1
    assert h.last_epoch["epoch"] == 2 and h.last_step["step"] == 3 and len(h) == 2
    with pytest.raises(KeyError, match="no epoch record has 'val_acc'; epoch records have"):
        h.epoch_metric("val_acc")
    assert "2 epochs, 3 steps" in repr(h)


def test_dict_round_trip_is_plain_json():
    h = _history()
    d = h.to_dict()
    text = json.dumps(d, allow_nan=False)          # NaN and inf are encoded as strings
    back = History.from_dict(json.loads(text))
    _same(back, h)
    assert math.isnan(back.steps[2]["loss"]) and back.steps[1]["grad_norm"] == math.inf
    assert back.steps[2]["lr"] == [0.1, 0.01]
    with pytest.raises(ValueError, match="'steps' and 'epochs'"):
        History.from_dict({"steps": []})


def test_json_and_jsonl_files(tmp_path):
    h = _history()
    h.to_json(tmp_path / "h.json")
    _same(History.from_json(tmp_path / "h.json"), h)
    h.to_jsonl(tmp_path / "h.jsonl")
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert kinds == ["step", "step", "epoch", "step", "epoch"]
    _same(History.from_jsonl(tmp_path / "h.jsonl"), h)
    (tmp_path / "bad.jsonl").write_text('not json\n{"step": 1}\n')
    with pytest.raises(ValueError, match="no readable record: line 1 is not JSON"):
        History.from_jsonl(tmp_path / "bad.jsonl")


def test_jsonl_skips_damaged_lines_with_one_warning_and_keeps_the_rest(tmp_path):
    h = _history()
    path = tmp_path / "metrics.jsonl"
    h.to_jsonl(path)
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(1, "\x00\x00garbage{\n")                        # line 2
    lines.insert(4, '{"kind": "nonsense", "step": 7}\n')          # line 5
    path.write_bytes("".join(lines).encode() + b"\xff\xfe binary\n" + b'{"kind": "st')
    with pytest.warns(UserWarning) as caught:
        back = History.from_jsonl(path)
    _same(back, h)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and "skipped 3 unreadable lines" in message
    assert "line 2 is not JSON" in message and "line 5 needs" in message
    assert "line 8 is not JSON" in message and "line 9" not in message   # cut-off last line


def test_jsonl_cut_off_last_line_is_skipped_silently(tmp_path, recwarn):
    h = _history()
    path = tmp_path / "metrics.jsonl"
    h.to_jsonl(path)
    with open(path, "a") as f:
        f.write('{"kind": "step", "step": 4, "lo')       # the writer was killed mid-line
    _same(History.from_jsonl(path), h)
    assert len(recwarn) == 0


def test_checkpoint_form_is_columns_and_round_trips():
    h = _history()
    packed = h._to_checkpoint()
    assert packed["steps"]["arrays"]["step"].dtype == np.int64
    assert packed["steps"]["arrays"]["grad_norm"].dtype == np.float64
    assert "lr" in packed["steps"]["other"]                 # a list among numbers
    _same(History._from_checkpoint(packed), h)
    # the incremental cache gives the same as a fresh conversion as the history grows
    g = History()
    for i in range(1, 30):
        g.add_step({"step": i, "epoch": 1, "loss": 1.0 / i, "lr": 0.1, "grad_norm": 0.5})
        if i % 7 == 0:
            _same(History._from_checkpoint(g._to_checkpoint()), g)
    g.add_step({"step": 30, "epoch": 1, "loss": 1, "lr": 0.1, "grad_norm": 0.5})  # an int loss
    back = History._from_checkpoint(g._to_checkpoint())
    assert back.steps[-1]["loss"] == 1 and type(back.steps[-1]["loss"]) is int
    assert type(back.steps[0]["loss"]) is float


def test_truncate():
    h = _history()
    h.truncate(2)
    assert len(h.steps) == 2 and len(h.epochs) == 1
