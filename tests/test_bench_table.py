"""benchmarks/table.py's table from fake benchmark JSON: its rows, goals, a missing PyTorch and
a failed script (nothing is run or timed here)."""
import copy
import importlib.util
import os

import pytest

PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "table.py")


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("bench_table", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing it runs nothing
    return module


def _spread(median, lo=None, hi=None):
    return {"median": median, "min": lo or median * 0.9, "max": hi or median * 1.1, "n": 5}


def _info(torch="2.13.0+cpu"):
    return {"threads": 1, "engine": "C accelerator", "kernels": "C",
            "versions": {"backprop": "0.1.0", "numpy": "2.4.6", "torch": torch}}


def _mlp(bp, pt, np_, vs_pt, vs_np):
    fig = {"samples_per_s": {"backprop": bp, "numpy by hand": np_},
           "ratios": {"numpy by hand": _spread(vs_np)}}
    if pt is not None:
        fig["samples_per_s"]["pytorch"] = pt
        fig["ratios"]["pytorch"] = _spread(vs_pt)
    return fig


def fake_results(torch=True):
    """What the four scripts write, with PyTorch's figures left out where ``torch`` is False."""
    t = "2.13.0+cpu" if torch else None
    per_op = {"us_per_op": {"backprop": 1.5}, "best_us_per_op": {"backprop": 1.4}}
    if torch:
        per_op["us_per_op"]["pytorch"] = 6.0
        per_op["ratio_to_pytorch"] = _spread(0.25)
    run = {**_info(t), "per_op": per_op, "matmul_gflops": 100.0, "mlp_raw": {
        "32": _mlp(20000, 25000 if torch else None, 19000, 0.8, 1.05),
        "256": _mlp(60000, 70000 if torch else None, 50000, 0.86, 1.2)}}
    idiomatic = {**_info(t), "mlp_idiomatic": {
        "32": _mlp(18000, 22000 if torch else None, 17000, 0.82, 1.06),
        "256": _mlp(55000, 60000 if torch else None, 48000, 0.92, 1.15)}}
    cnn = {**_info(t), "batch": 64, "ms_per_step": {"backprop": 9.0}}
    if torch:
        cnn["ms_per_step"]["pytorch"] = 10.0
        cnn["ratio_to_pytorch"] = _spread(0.9)
    lab = {**_info(None), "latency_ms": {"median": 51.0, "p90": 60.0, "min": 30, "max": 70}}
    by_script = {key: {"status": "ok", "data": data} for key, data in
                 (("run", run), ("idiomatic", idiomatic), ("cnn", cnn), ("lab", lab))}
    return {1: by_script, 2: copy.deepcopy(by_script)}


def test_rows_and_goals(table):
    text, rows = table.build_table(fake_results())
    assert len(rows) == 14  # seven rows at each of two thread counts
    assert [r["threads"] for r in rows] == [1] * 7 + [2] * 7
    assert rows[0]["label"] == "1 (taskset -c 0)" and rows[7]["label"] == "2"
    by = {r["measure"]: r for r in rows if r["threads"] == 1}
    per_op = next(r for m, r in by.items() if m.startswith("per-op"))
    assert per_op["ratio"].startswith("0.25x PyTorch")
    assert per_op["goal"] == "<= 0.3x PyTorch: met" and per_op["met"] is True
    raw32 = next(r for m, r in by.items() if "raw ops, batch 32" in m)
    assert raw32["backprop"] == "20,000" and raw32["pytorch"] == "25,000"
    assert raw32["numpy"] == "19,000"
    assert raw32["ratio"].startswith("1.05x NumPy") and "0.80x PyTorch" in raw32["ratio"]
    assert raw32["goal"] == ">= 1.1x hand NumPy: MISSED" and raw32["met"] is False
    raw256 = next(r for m, r in by.items() if "raw ops, batch 256" in m)
    assert raw256["met"] is True
    idiomatic = [r for m, r in by.items() if "idiomatic" in m]
    assert [r["met"] for r in idiomatic] == [False, True]
    cnn = next(r for m, r in by.items() if m.startswith("CNN"))
    assert cnn["goal"] == "<= 1.0x PyTorch: met" and cnn["pytorch"] == "10.00 ms"
    lab = next(r for m, r in by.items() if m.startswith("lab"))
    assert lab["backprop"] == "51.0 ms (p90 60.0)" and lab["goal"] == "median < 100 ms: met"
    lines = text.splitlines()
    assert lines[0] == ("| threads | measure | backprop | PyTorch 2.13 | hand NumPy | ratio "
                        "| goal |")
    assert len(lines) == 2 + 14
    assert table.summary(rows) == "goals met: 10 of 14 measured"


def test_without_pytorch(table):
    text, rows = table.build_table(fake_results(torch=False), pinned=False)
    assert "| PyTorch |" in text.splitlines()[0]
    assert rows[0]["label"] == "1 (not pinned)"
    assert all(r["pytorch"] == "-" for r in rows)
    assert all("PyTorch" not in r["ratio"] for r in rows)
    per_op, cnn = rows[0], rows[5]
    assert per_op["ratio"] == "-" and per_op["met"] is None
    assert per_op["goal"] == "<= 0.3x PyTorch: not measured"
    assert cnn["met"] is None
    raw32 = rows[1]  # the NumPy goal is still judged
    assert raw32["ratio"].startswith("1.05x NumPy") and raw32["met"] is False


def test_failed_script_is_reported(table):
    results = fake_results()
    results[2]["cnn"] = {"status": "failed", "note": "(exit 1)", "data": None}
    results[1]["lab"] = {"status": "not run", "note": "(needs the lab extra: websockets)",
                         "data": None}
    text, rows = table.build_table(results)
    cnn2 = next(r for r in rows if r["threads"] == 2 and r["measure"].startswith("CNN"))
    assert cnn2["backprop"] == "FAILED: cnn.py (exit 1)" and cnn2["met"] is None
    assert cnn2["goal"] == "<= 1.0x PyTorch: not measured"
    lab1 = next(r for r in rows if r["threads"] == 1 and r["measure"].startswith("lab"))
    assert lab1["backprop"].startswith("not run: lab_latency.py") and lab1["status"] == "not run"
    assert "FAILED: cnn.py (exit 1)" in text
    assert table.summary(rows).endswith("FAILED: cnn.py at 2 threads")


def test_a_figure_missing_from_the_json_fails_its_row(table):
    results = fake_results()
    del results[1]["run"]["data"]["per_op"]
    _, rows = table.build_table(results)
    assert rows[0]["status"] == "failed" and rows[0]["backprop"].startswith("FAILED: run.py")
    assert rows[1]["status"] == "ok"  # the MLP rows of the same script still show


def test_skipped_scripts_give_no_rows(table):
    results = fake_results()
    for by_script in results.values():
        del by_script["lab"]
    _, rows = table.build_table(results)
    assert len(rows) == 12 and not any(r["script"] == "lab_latency.py" for r in rows)


def test_options(table):
    args = table._parse(["--quick", "--threads", "2", "--skip", "lab,cnn"])
    assert args.quick and args.threads == [2] and args.skip == {"lab", "cnn"}
    with pytest.raises(SystemExit):
        table._parse(["--skip", "nope"])
