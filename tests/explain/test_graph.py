"""graph(): the autograd graph as data, DOT and Mermaid, with gradient norms after backward."""
import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import backprop
from backprop.explain import Graph, GraphvizNotFound, default_graph, graph

graph_module = importlib.import_module("backprop.explain.graph")
F64 = backprop.float64


def _tutorial():
    p = dict(
        W1=backprop.tensor([[0.15, 0.25], [0.20, 0.30]], dtype=F64, requires_grad=True),
        b1=backprop.tensor([0.35, 0.35], dtype=F64, requires_grad=True),
        W2=backprop.tensor([[0.40, 0.50]], dtype=F64, requires_grad=True),
        b2=backprop.tensor([0.60], dtype=F64, requires_grad=True))
    x = backprop.tensor([0.5, 0.8], dtype=F64)
    h = backprop.sigmoid(p["W1"] @ x + p["b1"])
    y_hat = backprop.sigmoid(p["W2"] @ h + p["b2"])
    loss = ((1.0 - y_hat) ** 2 / 2).sum()
    return p, x, h, y_hat, loss


def _ops(g):
    return sorted(n["op"] for n in g.nodes if n["kind"] == "op")


def test_structure_of_the_tutorial_graph():
    p, _, _, _, loss = _tutorial()
    g = graph(loss, params=p)
    assert isinstance(g, Graph)
    assert _ops(g) == ["Add", "Add", "Div", "MatMul", "MatMul", "Pow", "Sigmoid", "Sigmoid",
                       "Sub", "Sum"]
    leaves = {n["name"]: n for n in g.nodes if n["kind"] != "op"}
    assert set(leaves) == {"W1", "b1", "W2", "b2", None}
    assert leaves["W1"]["kind"] == "parameter" and leaves["W1"]["shape"] == (2, 2)
    assert leaves[None]["kind"] == "input" and leaves[None]["shape"] == (2,)
    assert g.nodes[0]["op"] == "Sum" and g.nodes[0]["shape"] == ()
    shapes = {n["op"]: n["shape"] for n in g.nodes if n["kind"] == "op"}
    assert shapes["Pow"] == (1,)
    # one edge per tensor input of every op (the numbers 1.0 and 2 are not tensors)
    assert len(g.edges) == 14 and len(g.nodes) == 15
    by_id = {n["id"]: n for n in g.nodes}
    into_matmul = sorted((by_id[e["src"]]["name"] or by_id[e["src"]]["op"] or "x")
                         for e in g.edges if by_id[e["dst"]]["op"] == "MatMul")
    assert into_matmul == ["Sigmoid", "W1", "W2", "x"]
    assert all(e["grad_norm"] is None for e in g.edges)  # no backward yet

    dot = g.to_dot()
    assert dot.startswith("digraph autograd {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == 14 and dot.count("label=") == 15
    assert 'label="MatMul\\n2"' in dot and 'label="W1\\n2×2"' in dot
    mermaid = g.to_mermaid()
    assert mermaid.startswith("flowchart TB")
    assert mermaid.count(" --> ") == 14 and "Sigmoid<br/>2" in mermaid
    assert "class " in mermaid and "W1<br/>2×2" in mermaid

    without_inputs = graph(loss, params=p, inputs=False, hooks=False)
    assert len(without_inputs.nodes) == 14 and len(without_inputs.edges) == 13


def test_gradient_norms_after_backward_match_the_retained_grads():
    p, _, h, y_hat, loss = _tutorial()
    h.retain_grad()
    y_hat.retain_grad()
    g = graph(loss, params=p)
    assert g.hooks_pending == len([n for n in g.nodes if n["kind"] != "input"])
    loss.backward()
    assert g.hooks_pending == 0  # every hook removed itself after firing once
    assert all(not t._hooks for t in p.values())
    nodes = g.nodes
    by_id = {n["id"]: n for n in nodes}
    sig = [n for n in nodes if n["op"] == "Sigmoid"]  # breadth-first: output side first
    assert sig[0]["grad_norm"] == pytest.approx(np.linalg.norm(y_hat.grad.numpy()), rel=1e-14)
    assert sig[1]["grad_norm"] == pytest.approx(np.linalg.norm(h.grad.numpy()), rel=1e-14)
    assert nodes[0]["grad_norm"] == 1.0
    for name, t in p.items():
        node = next(n for n in nodes if n["name"] == name)
        assert node["grad_norm"] == pytest.approx(np.linalg.norm(t.grad.numpy()), rel=1e-14)
        (edge,) = [e for e in g.edges if e["src"] == node["id"]]
        assert edge["grad_norm"] == node["grad_norm"]
    for e in g.edges:
        if by_id[e["src"]]["kind"] == "input":
            assert e["grad_norm"] is None
        else:
            assert e["grad_norm"] is not None
    assert g.to_mermaid().count('-->|"grad ') == 13
    assert g.to_dot().count('[label="grad ') == 13

    # a second backward of a new forward no longer reaches this graph's hooks
    before = g.grad_norms
    _, _, _, _, loss2 = _tutorial()
    loss2.backward()
    assert g.grad_norms == before


def test_detach_hooks_and_freed_graphs():
    p, _, _, _, loss = _tutorial()
    g = graph(loss, params=p)
    g.detach_hooks()
    assert g.hooks_pending == 0
    loss.backward()
    assert g.grad_norms == {}
    with pytest.raises(ValueError, match="freed by backward"):
        graph(loss)
    with pytest.raises(TypeError, match="expected a Tensor"):
        graph([1.0])
    with pytest.raises(ValueError, match="does not require grad"):
        graph(backprop.tensor([1.0]))


def test_a_5000_op_chain_needs_no_recursion():
    x = backprop.tensor([0.5, -0.25], dtype=F64, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    loss = y.sum()
    g = graph(loss, params={"x": x})
    assert len(g.nodes) == 5002 and len(g.edges) == 5001
    loss.backward()
    leaf = g.nodes[-1]
    assert leaf["name"] == "x"
    assert leaf["grad_norm"] == pytest.approx(np.linalg.norm(x.grad.numpy()), rel=1e-12)
    assert g.to_dot().count(" -> ") == 5001
    assert g.to_mermaid().count(" -->") == 5001


def test_a_leaf_alone():
    w = backprop.tensor([1.0, 2.0], requires_grad=True)
    g = graph(w)
    assert len(g.nodes) == 1 and g.nodes[0]["kind"] == "leaf" and g.edges == []
    g.detach_hooks()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_svg_and_png(tmp_path):
    g = default_graph()
    svg = g.render(tmp_path / "g.svg")
    text = Path(svg).read_text(encoding="utf-8")
    assert "<svg" in text and "Sigmoid" in text
    png = g.render(tmp_path / "g.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = g.render(tmp_path / "picture", format="svg")
    assert "<svg" in Path(out).read_text(encoding="utf-8")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["g.png", "g.svg", "picture"]


def test_render_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizNotFound, match="apt install graphviz"):
        default_graph().render(tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format must be"):
        default_graph().render(tmp_path / "g.pdf", format="pdf")


def test_default_graph_and_to_dict():
    g = default_graph()
    assert "Linear" in _ops(g) and g.hooks_pending == 0
    names = {n["name"] for n in g.nodes if n["kind"] == "parameter"}
    assert names == {"0.weight", "0.bias", "2.weight", "2.bias"}
    d = g.to_dict()
    assert len(d["nodes"]) == len(g) and all(isinstance(n["shape"], list) for n in d["nodes"])


def test_render_refuses_a_suffix_it_would_not_write(tmp_path, monkeypatch):
    # Checked before looking for Graphviz: SVG text in "g.pdf" would be a broken file.
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    for name in ("g.pdf", "g.jpeg"):
        with pytest.raises(ValueError, match=r"suffix \.(pdf|jpeg) is not one of \.svg, \.png"):
            default_graph().render(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_named_data_stays_an_input():
    x = backprop.tensor([0.5, 0.8])
    W = backprop.tensor([[0.1, 0.2]], requires_grad=True)
    g = graph((W @ x).sum(), params={"x": x, "W": W})
    kinds = {n["name"]: n["kind"] for n in g.nodes if n["kind"] != "op"}
    assert kinds == {"x": "input", "W": "parameter"}
    g.detach_hooks()
    # The default example names its data, so the picture says which input is the target.
    labels = {n["name"]: n["kind"] for n in default_graph().nodes if n["kind"] == "input"}
    assert labels == {"x": "input", "y (target)": "input"}
