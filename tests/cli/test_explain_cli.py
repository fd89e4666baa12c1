"""``backprop explain``: the trace, vanishing gradients and the graph, in process."""
import importlib
import json
import re
import shutil

import pytest

from backprop.cli import main
from backprop.explain import default_example, trace

graph_module = importlib.import_module("backprop.explain.graph")


def _run(capsys, *argv):
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_explain_prints_the_default_trace(capsys):
    status, out, err = _run(capsys, "explain")
    assert status == 0, err
    assert str(trace(*default_example())) in out
    assert re.search(r"ŷ = A\[2\]\s+1×1\s+\[0\.7673710\]", out)
    assert re.search(r"dW\[2\] = dZ\[2\]·A\[1\]ᵀ / m\s+1×2\s+\[-0\.02704897\s+-0\.02765577\]",
                     out)
    assert re.search(r"loss after\s+0\.02545496", out)
    assert "agree exactly" in out


def test_explain_lr_and_json(capsys):
    status, out, _ = _run(capsys, "explain", "--lr", "0.1", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["lr"] == 0.1
    model, x, y, loss_fn, _ = default_example()
    assert data["loss_after"] == trace(model, x, y, loss_fn, lr=0.1).loss_after
    assert data["loss_after"] > 0.0254550  # a smaller step lowers the loss less


def test_explain_vanishing(capsys):
    status, out, _ = _run(capsys, "explain", "vanishing", "--depth", "8", "--activation",
                          "sigmoid")
    assert status == 0
    assert "verdict: vanishing" in out
    assert len(re.findall(r"^\s+\d+\s+\d\.\d+e[+-]\d+\s+#+", out, flags=re.MULTILINE)) == 8
    status, out, _ = _run(capsys, "explain", "vanishing", "--activation", "relu", "--init", "he")
    assert status == 0 and "verdict: healthy" in out
    status, out, _ = _run(capsys, "explain", "vanishing", "--residual", "--json")
    assert status == 0 and json.loads(out)["config"]["residual"] is True


def test_explain_graph_text(capsys):
    status, out, _ = _run(capsys, "explain", "graph")
    assert status == 0 and out.startswith("flowchart TB") and '-->|"grad ' in out
    status, out, _ = _run(capsys, "explain", "graph", "--format", "dot")
    assert status == 0 and out.startswith("digraph autograd {") and "Sigmoid" in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_explain_graph_render(tmp_path, capsys):
    path = tmp_path / "g.svg"
    status, out, _ = _run(capsys, "explain", "graph", "--out", str(path))
    assert status == 0 and str(path) in out and "<svg" in path.read_text(encoding="utf-8")


def test_explain_graph_without_graphviz(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    status, _, err = _run(capsys, "explain", "graph", "--out", str(tmp_path / "g.svg"))
    assert status == 1 and "Install Graphviz" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["explain", "vanishing", "--depth", "1"],
    ["explain", "vanishing", "--activation", "swish"],
    ["explain", "vanishing", "--init", "bogus"],
    ["explain", "--lr", "nan"],
    ["explain", "graph", "--format", "png"],
    ["explain", "--lr", "-1"],
    ["explain", "graph", "--out", "graph.pdf"],
])
def test_usage_errors_are_one_line(capsys, argv):
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "error" in err
