"""The blame table and the graph export for PyTorch models (issue 14), checked against the
same network built on backprop from the same weights."""
import math
import subprocess
import sys

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.explain import blame, graph

F64 = backprop.float64


def _twin_mlps(torch, seed=0):
    """The same 3-5-2 ReLU MLP in backprop and in torch (float64, same weights), and a
    loss function for each on the same batch."""
    rng = np.random.default_rng(seed)
    tm = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(),
                             torch.nn.Linear(5, 2)).double()
    bm = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).to(F64)
    with torch.no_grad():
        for (_, tp), (_, bp) in zip(tm.named_parameters(), bm.named_parameters()):
            w = rng.standard_normal(tuple(tp.shape))
            tp.copy_(torch.from_numpy(w))
            bp.data = backprop.tensor(w, dtype=F64)
    x = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 2))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    bx, by = backprop.tensor(x, dtype=F64), backprop.tensor(y, dtype=F64)
    return (tm, lambda: torch.nn.functional.mse_loss(tm(tx), ty),
            bm, lambda: nn.MSELoss()(bm(bx), by))


def _assert_same_table(tt, bt):
    assert tt.names() == bt.names()
    assert tt.mode == bt.mode and tt.optimizer == bt.optimizer
    assert tt.total_grad_norm == pytest.approx(bt.total_grad_norm, rel=1e-10)
    for tr, br in zip(tt, bt):
        assert tr.shape == br.shape
        for key in ("grad_norm", "grad_abs_sum", "share", "weight_norm", "update_norm",
                    "update_ratio"):
            a, b = getattr(tr, key), getattr(br, key)
            assert (a is None) == (b is None), key
            if a is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-15), (tr.name, key)
        np.testing.assert_allclose(tr.grad, br.grad, rtol=1e-10, atol=1e-15)
        if br.update is not None:
            np.testing.assert_allclose(tr.update, br.update, rtol=1e-8, atol=1e-15)


def test_blame_matches_backprop_plain_descent(oracle):
    tm, tloss, bm, bloss = _twin_mlps(oracle)
    tloss().backward()
    bloss().backward()
    _assert_same_table(blame(tm, lr=0.1), blame(bm, lr=0.1))
    _assert_same_table(blame(tm), blame(bm))
    assert blame(tm, sort_by="share").names() == blame(bm, sort_by="share").names()
    per = blame(tm, per_element=True)
    assert len(per) == sum(p.numel() for p in tm.parameters())
    assert per[0].name == "0.weight[0, 0]"


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_blame_with_optimizer_matches_backprop_and_restores_everything(oracle, opt_name):
    torch = oracle
    tm, tloss, bm, bloss = _twin_mlps(torch)
    kw = {"lr": 0.05, "momentum": 0.9} if opt_name == "SGD" else {"lr": 0.05}
    topt = getattr(torch.optim, opt_name)(tm.parameters(), **kw)
    bopt = getattr(optim, opt_name)(bm.parameters(), **kw)
    # One real step first, so the optimizers carry state (momentum, moments, step count).
    for opt, loss in ((topt, tloss), (bopt, bloss)):
        opt.zero_grad()
        loss().backward()
        opt.step()
        opt.zero_grad()
        loss().backward()

    fired = []
    topt.register_step_post_hook(lambda *a: fired.append(1))
    values = {n: p.detach().clone() for n, p in tm.named_parameters()}
    grads = {n: p.grad.clone() for n, p in tm.named_parameters()}
    grad_objects = {n: p.grad for n, p in tm.named_parameters()}
    tt = blame(tm, optimizer=topt)
    _assert_same_table(tt, blame(bm, optimizer=bopt))
    assert tt.mode == "optimizer" and tt.optimizer == opt_name
    assert fired == []  # a Monitor's step hook never sees the measuring step

    for n, p in tm.named_parameters():
        assert torch.equal(p.detach(), values[n]) and torch.equal(p.grad, grads[n])
        assert p.grad is grad_objects[n]
    # The next real step is the one the table predicted, optimizer state included.
    topt.step()
    for (n, p), row in zip(tm.named_parameters(), tt):
        np.testing.assert_allclose((p.detach() - values[n]).numpy(), row.update,
                                   rtol=1e-10, atol=1e-15)
    assert fired == [1]


def test_blame_frozen_and_gradless_parameters(oracle):
    torch = oracle
    tm, tloss, _, _ = _twin_mlps(torch)
    tm[0].bias.requires_grad_(False)
    opt = torch.optim.SGD([p for p in tm.parameters() if p.requires_grad], lr=0.1)
    tloss().backward()
    table = blame(tm, optimizer=opt)
    row = table["0.bias"]
    assert row.grad is None and row.grad_norm is None and row.share == 0
    assert row.update is None  # the optimizer does not hold it
    assert sum(r.share for r in table) == pytest.approx(1.0)
    assert "no grad" in str(table)
    pairs = blame([("w", tm[2].weight)], lr=0.5)
    assert pairs.names() == ["w"]
    assert pairs[0].grad_norm == pytest.approx(float(tm[2].weight.grad.norm()))


def test_blame_torch_errors(oracle):
    torch = oracle
    tm, tloss, bm, _ = _twin_mlps(torch)
    with pytest.raises(ValueError, match="call loss.backward"):
        blame(tm, lr=0.1)
    tloss().backward()
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        blame(tm, optimizer=optim.SGD(bm.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="single torch.Tensor"):
        blame(tm[0].weight)
    with pytest.raises(ValueError, match="not both"):
        blame(tm, lr=0.1, optimizer=torch.optim.SGD(tm.parameters(), lr=0.1))


def _ops(g):
    return [n["op"] for n in g.nodes if n["kind"] == "op"]


def test_graph_of_a_torch_mlp(oracle):
    torch = oracle
    tm, tloss, bm, bloss = _twin_mlps(torch)
    loss = tloss()
    g = graph(loss, params=dict(tm.named_parameters()))
    ops = _ops(g)
    assert ops[0] == "MseLossBackward0"
    assert ops.count("AddmmBackward0") == 2 and ops.count("TBackward0") == 2
    assert "ReluBackward0" in ops
    params = {n["name"]: n for n in g.nodes if n["kind"] == "parameter"}
    assert set(params) == {n for n, _ in tm.named_parameters()}
    assert all(n["op"] == "AccumulateGrad" for n in params.values())
    assert params["0.weight"]["shape"] == (5, 3)
    assert g.nodes[0]["shape"] == ()
    by_id = {n["id"]: n for n in g.nodes}
    links = {(by_id[e["src"]]["name"] or by_id[e["src"]]["op"],
              by_id[e["dst"]]["op"]) for e in g.edges}
    assert ("0.bias", "AddmmBackward0") in links and ("2.bias", "AddmmBackward0") in links
    assert ("0.weight", "TBackward0") in links and ("TBackward0", "AddmmBackward0") in links
    assert ("ReluBackward0", "AddmmBackward0") in links
    assert ("AddmmBackward0", "ReluBackward0") in links
    assert ("AddmmBackward0", "MseLossBackward0") in links
    assert len(g.edges) == len(g.nodes) - 1  # an MLP's graph is a tree
    assert all(e["grad_norm"] is None for e in g.edges)
    assert g.hooks_pending == len(g.nodes)

    loss.backward()
    assert g.hooks_pending == 0
    # Norms on the edges: a parameter's edge carries its gradient's norm, the same
    # number backprop's graph of the same network shows.
    bloss_t = bloss()
    bg = graph(bloss_t, params=dict(bm.named_parameters()))
    bloss_t.backward()
    bnorms = {n["name"]: n["grad_norm"] for n in bg.nodes if n["kind"] == "parameter"}
    for e in g.edges:
        src = by_id[e["src"]]
        assert e["grad_norm"] is not None
        if src["kind"] == "parameter":
            p = dict(tm.named_parameters())[src["name"]]
            assert e["grad_norm"] == pytest.approx(float(p.grad.norm()), rel=1e-12)
            assert e["grad_norm"] == pytest.approx(bnorms[src["name"]], rel=1e-9)
    assert g.nodes[0]["grad_norm"] == pytest.approx(1.0)

    dot = g.to_dot()
    assert dot.startswith("digraph autograd {")
    assert "AddmmBackward0" in dot and "ReluBackward0" in dot and '"0.weight\\n5×3"' in dot
    assert dot.count("->") == len(g.edges) and 'label="grad ' in dot
    mermaid = g.to_mermaid()
    assert mermaid.startswith("flowchart TB") and "ReluBackward0" in mermaid
    assert mermaid.count("-->|") == len(g.edges)


def test_graph_relu_edge_norm_is_the_activation_gradient(oracle):
    torch = oracle
    tm, _, _, _ = _twin_mlps(torch)
    x = torch.randn(4, 3, dtype=torch.float64)
    h = torch.relu(tm[0](x))
    h.retain_grad()
    loss = tm[2](h).pow(2).sum()
    g = graph(loss, params=dict(tm.named_parameters()))
    loss.backward()
    relu = next(n["id"] for n in g.nodes if n["op"] == "ReluBackward0")
    (edge,) = [e for e in g.edges if e["src"] == relu]
    assert edge["grad_norm"] == pytest.approx(float(h.grad.norm()), rel=1e-12)


def test_graph_shared_parameter_and_detach(oracle):
    torch = oracle
    w = torch.nn.Parameter(torch.randn(3, 3, dtype=torch.float64))
    x = torch.randn(3, dtype=torch.float64)
    loss = torch.tanh(w @ torch.tanh(w @ x)).sum()
    g = graph(loss, params={"w": w})
    wnodes = [n for n in g.nodes if n["name"] == "w"]
    assert len(wnodes) == 1  # one AccumulateGrad, one node, two uses
    assert sum(1 for e in g.edges if e["src"] == wnodes[0]["id"]) == 2
    loss.backward()
    assert g.grad_norms[wnodes[0]["id"]] == pytest.approx(float(w.grad.norm()), rel=1e-12)

    loss2 = (w * 2).sum()
    g2 = graph(loss2, params={"w": w})
    assert g2.hooks_pending == len(g2.nodes) == 3
    g2.detach_hooks()
    assert g2.hooks_pending == 0
    loss2.backward()
    assert g2.grad_norms == {}


def test_graph_torch_errors_and_render(oracle, tmp_path):
    torch = oracle
    with pytest.raises(ValueError, match="does not require grad"):
        graph(torch.ones(2))
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        graph((w * 2).sum(), params={"w": [1.0]})
    loss = (w * 3).sum()
    g = graph(loss, params={"w": w})
    assert [n["kind"] for n in g.nodes] == ["op", "op", "parameter"]
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    loss.backward()
    out = g.render(tmp_path / "g.svg")
    text = open(out, encoding="utf-8").read()
    assert "<svg" in text and "MulBackward0" in text


def test_import_backprop_explain_does_not_import_torch():
    code = ("import sys, backprop, backprop.explain; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_backprop_paths_unchanged_by_torch_detection():
    """A backprop model never takes the torch path (whether or not torch is installed)."""
    backprop.manual_seed(0)
    m = nn.Linear(2, 1)
    m(backprop.ones(3, 2)).sum().backward()
    t = blame(m, lr=1.0)
    assert t.names() == ["weight", "bias"]
    assert math.isclose(t["bias"].grad_norm, 3.0)


def test_cuda_model_gives_the_cpu_numbers(oracle):
    torch = oracle
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    tm, tloss, _, _ = _twin_mlps(torch)
    tloss().backward()
    cpu = blame(tm, lr=0.1)
    tm.cuda().zero_grad()
    x = torch.randn(4, 3, dtype=torch.float64)
    gm = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(),
                             torch.nn.Linear(5, 2)).double()
    gm.load_state_dict(tm.state_dict())
    loss_cpu = gm(x).pow(2).sum()
    g_cpu = graph(loss_cpu, params=dict(gm.named_parameters()))
    loss_cpu.backward()
    loss_gpu = tm(x.cuda()).pow(2).sum()
    g_gpu = graph(loss_gpu, params=dict(tm.named_parameters()))
    loss_gpu.backward()
    for a, b in zip(g_cpu.edges, g_gpu.edges):
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-9)
    opt = torch.optim.Adam(tm.parameters(), lr=0.01)
    assert blame(tm, optimizer=opt).names() == cpu.names()
