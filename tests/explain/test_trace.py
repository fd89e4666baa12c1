"""trace(): one step of backprop in the textbook's notation, every value from the engine."""
import json
import re

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.explain import HalfSquaredError, default_example, trace

F64 = backprop.float64


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _close_to_printed(value, printed, digits):
    """``value`` rounds to ``printed`` (the tutorial's digits)."""
    assert abs(float(value) - float(printed)) <= 10.0 ** -digits, (value, printed)


def test_default_example_gives_the_tutorial_numbers():
    t = trace(*default_example())
    assert t.m == 1 and t.lr == 0.5 and len(t.layers) == 2
    _close_to_printed(t.y_hat[0, 0], "0.767371", 6)
    _close_to_printed(t.loss, "0.0270581", 7)
    _close_to_printed(t.layers[1].dW[0, 0], "-0.0270490", 7)
    _close_to_printed(t.layers[1].dW[0, 1], "-0.0276558", 7)
    _close_to_printed(t.layers[1].db[0, 0], "-0.0415273", 6)
    np.testing.assert_allclose(t.layers[0].dW, [[-0.00188610, -0.00301776],
                                                [-0.00230949, -0.00369518]], atol=6e-9)
    _close_to_printed(t.loss_after, "0.0254550", 7)
    _close_to_printed(t.y_hat_after[0, 0], "0.774368", 6)
    assert t.dtype == F64


def _autograd_reference():
    """The same network written out with tensors, intermediate gradients retained."""
    W1 = backprop.tensor([[0.15, 0.25], [0.20, 0.30]], dtype=F64, requires_grad=True)
    b1 = backprop.tensor([0.35, 0.35], dtype=F64, requires_grad=True)
    W2 = backprop.tensor([[0.40, 0.50]], dtype=F64, requires_grad=True)
    b2 = backprop.tensor([0.60], dtype=F64, requires_grad=True)
    x = backprop.tensor([0.5, 0.8], dtype=F64, requires_grad=True)
    z1 = W1 @ x + b1
    a1 = backprop.sigmoid(z1)
    z2 = W2 @ a1 + b2
    a2 = backprop.sigmoid(z2)
    for t in (z1, a1, z2, a2):
        t.retain_grad()
    loss = ((1.0 - a2) ** 2 / 2).sum()
    loss.backward()
    return dict(W1=W1, b1=b1, W2=W2, b2=b2, x=x, z1=z1, a1=a1, z2=z2, a2=a2, loss=loss)


def test_every_value_is_what_autograd_computes():
    t = trace(*default_example())
    r = _autograd_reference()
    L1, L2 = t.layers

    def same(got, ref):  # textbook column vectors vs the reference's 1-d tensors
        np.testing.assert_allclose(np.asarray(got).reshape(-1), np.asarray(ref).reshape(-1),
                                   rtol=1e-13, atol=1e-17)

    same(L1.Z, r["z1"].detach().numpy())
    same(L1.A, r["a1"].detach().numpy())
    same(L2.Z, r["z2"].detach().numpy())
    same(t.y_hat, r["a2"].detach().numpy())
    assert t.loss == pytest.approx(r["loss"].item(), rel=1e-14)
    same(L2.dA, r["a2"].grad.numpy())
    same(L2.dZ, r["z2"].grad.numpy())
    same(L1.dA, r["a1"].grad.numpy())
    same(L2.dA_prev, r["a1"].grad.numpy())
    same(L1.dZ, r["z1"].grad.numpy())
    same(L1.dA_prev, r["x"].grad.numpy())
    for name, got in (("W1", L1.dW), ("b1", L1.db), ("W2", L2.dW), ("b2", L2.db)):
        same(got, r[name].grad.numpy())
        with backprop.no_grad():
            r[name] -= 0.5 * r[name].grad
    same(L1.W_new, r["W1"].detach().numpy())
    same(L2.b_new, r["b2"].detach().numpy())


def test_dZ_is_dA_times_the_derivative_computed_independently():
    t = trace(*default_example())
    for L in t.layers:
        s = _sig(L.Z)
        np.testing.assert_allclose(L.fprime, s * (1 - s), rtol=1e-14)
        np.testing.assert_allclose(L.dZ, L.dA * s * (1 - s), rtol=1e-13)
        np.testing.assert_allclose(L.dW, L.dZ @ L.A_prev.T / t.m, rtol=1e-13)
    assert set(t.check) and t.max_check_error < 1e-15


def _printed(text: str, label: str) -> np.ndarray:
    """The numbers printed after ``label`` (on its line and the matrix rows below it)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  " + label + " "))
    rows = [lines[start][len(label) + 2:]]  # the label itself has brackets: W[1]
    for line in lines[start + 1:]:
        if not re.match(r"^\s+\[", line):
            break
        rows.append(line)
    values = []
    for row in rows:
        body = re.search(r"\[([^\]]*)\]", row)
        values.append([float(v) for v in body.group(1).split()])
    return np.array(values)


def test_the_printed_values_are_what_autograd_computes():
    text = str(trace(*default_example()))
    r = _autograd_reference()
    expected = {
        "Z[1] = W[1]·A[0] + b[1]": r["z1"].detach().numpy().reshape(2, 1),
        "A[1] = σ(Z[1])": r["a1"].detach().numpy().reshape(2, 1),
        "ŷ = A[2]": r["a2"].detach().numpy().reshape(1, 1),
        "dA[2] = ŷ − y": r["a2"].grad.numpy().reshape(1, 1),
        "dZ[2] = dA[2] ⊙ σ'(Z[2])": r["z2"].grad.numpy().reshape(1, 1),
        "dW[2] = dZ[2]·A[1]ᵀ / m": r["W2"].grad.numpy(),
        "db[2] = Σ dZ[2] / m": r["b2"].grad.numpy().reshape(1, 1),
        "dA[1] = W[2]ᵀ·dZ[2]": r["a1"].grad.numpy().reshape(2, 1),
        "dZ[1] = dA[1] ⊙ σ'(Z[1])": r["z1"].grad.numpy().reshape(2, 1),
        "dW[1] = dZ[1]·A[0]ᵀ / m": r["W1"].grad.numpy(),
        "db[1] = Σ dZ[1] / m": r["b1"].grad.numpy().reshape(2, 1),
        "W[2] ← W[2] − α·dW[2]": (r["W2"] - 0.5 * r["W2"].grad).detach().numpy(),
    }
    for label, ref in expected.items():
        got = _printed(text, label)
        assert got.shape == ref.shape, label
        # seven significant digits for the largest entry of each matrix
        tol = 5.01e-7 * np.abs(ref).max()
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol, err_msg=label)
    assert re.search(r"loss before\s+0\.02705813\b", text)
    assert re.search(r"loss after\s+0\.02545496\b", text)
    assert "agree exactly" in text
    assert "Blame" in text and "W[2]" in text


def test_the_model_is_left_alone():
    model, x, y, loss_fn, lr = default_example()
    before = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    t = trace(model, x, y, loss_fn, lr)
    for k, p in model.named_parameters():
        assert p.grad is None, k
        np.testing.assert_array_equal(p.detach().numpy(), before[k])
    # ...but the step can be applied to it, and gives the loss the trace reports
    model.load_state_dict({k: backprop.tensor(v) for k, v in t.state_dict_after().items()})
    assert loss_fn(model(x), y).item() == pytest.approx(t.loss_after, rel=1e-14)
    assert t.param_names == {"W[1]": "0.weight", "b[1]": "0.bias",
                             "W[2]": "2.weight", "b[2]": "2.bias"}


def test_default_example_leaves_the_global_random_state_alone():
    state = backprop.get_rng_state()
    default_example()
    assert backprop.get_rng_state() == state


def _batch_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(),
                          nn.Linear(4, 2))
    return model.to(F64)


def test_a_batch_with_mse_matches_the_models_own_gradients():
    model = _batch_model()
    rng = np.random.default_rng(1)
    x = backprop.tensor(rng.standard_normal((5, 3)), dtype=F64)
    y = backprop.tensor(rng.standard_normal((5, 2)), dtype=F64)
    t = trace(model, x, y, nn.MSELoss(), lr=0.1)
    assert t.m == 5 and [L.kind for L in t.layers] == ["Tanh", "ReLU", "identity"]
    assert t.dA_out_formula.startswith("2(ŷ − y)/k")

    loss = nn.MSELoss()(model(x), y)
    loss.backward()
    assert t.loss == pytest.approx(loss.item(), rel=1e-14)
    grads = [p.grad.numpy() for p in model.parameters()]
    got = [a for L in t.layers for a in (L.dW, L.db.reshape(-1))]
    for g, a in zip(grads, got):
        np.testing.assert_allclose(a, g, rtol=1e-12, atol=1e-16)
    # dZ = dA ⊙ f'(Z) with f' written out here, and the textbook's dW, db, dA_prev
    tanh_d = 1 - np.tanh(t.layers[0].Z) ** 2
    np.testing.assert_allclose(t.layers[0].dZ, t.layers[0].dA * tanh_d, rtol=1e-12, atol=1e-16)
    relu_d = (t.layers[1].Z > 0).astype(float)
    np.testing.assert_allclose(t.layers[1].dZ, t.layers[1].dA * relu_d, rtol=1e-12, atol=1e-16)
    for L in t.layers:
        np.testing.assert_allclose(L.db, L.dZ.sum(axis=1, keepdims=True) / 5, rtol=1e-12,
                                   atol=1e-16)
    assert t.max_check_error < 1e-12
    with backprop.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    assert t.loss_after == pytest.approx(nn.MSELoss()(model(x), y).item(), rel=1e-12)


def test_class_labels_with_cross_entropy():
    model = nn.Sequential(nn.Linear(3, 5), nn.LeakyReLU(0.1), nn.Linear(5, 3)).to(F64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3))
    y = backprop.tensor([0, 2, 1, 2])
    t = trace(model, x, y, nn.CrossEntropyLoss(), lr=0.2)
    loss = nn.CrossEntropyLoss()(model(backprop.tensor(x, dtype=F64)), y)
    loss.backward()
    np.testing.assert_allclose(t.layers[1].dW, model[2].weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.layers[0].fprime, np.where(t.layers[0].Z > 0, 1, 0.1))
    assert t.dA_out_formula is None and "m·∂L/∂ŷ" in str(t)


def test_unsupported_models_are_named():
    with pytest.raises(TypeError, match=r"model\[1\].*Dropout"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)), [1.0, 2.0], 1.0,
              HalfSquaredError())
    with pytest.raises(TypeError, match="one activation per Linear"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Tanh()), [1.0, 2.0], [1.0, 0.0],
              HalfSquaredError())
    with pytest.raises(TypeError, match="expected an nn.Sequential"):
        trace(nn.MSELoss(), [1.0], 1.0, HalfSquaredError())
    with pytest.raises(ValueError, match=r"x must be \(m, 2\)"):
        trace(nn.Sequential(nn.Linear(2, 1)), [1.0, 2.0, 3.0], 1.0, HalfSquaredError())
    with pytest.raises(ValueError, match="lr must be a non-negative finite number"):
        trace(*default_example()[:4], lr=float("nan"))
    with pytest.raises(ValueError, match=r"trace: lr must be .* got -1"):
        trace(*default_example()[:4], lr=-1)   # named by trace, not by the blame it calls


def test_other_models_are_pointed_to_graph_and_blame():
    class Doubler(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x):
            return 2 * self.fc(x)

    for model in (Doubler(), nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))):
        with pytest.raises(TypeError) as e:
            trace(model, [1.0, 2.0], 1.0, HalfSquaredError())
        assert "graph(loss)" in str(e.value) and "blame(model" in str(e.value)


def test_a_target_that_does_not_fit_names_both_shapes():
    model = nn.Sequential(nn.Linear(2, 1)).to(F64)
    with pytest.raises(backprop.ShapeError, match=r"trace: loss_fn\(y_hat, y\) failed with "
                                                  r"y_hat of shape \(4, 1\).*\(3, 1\)"):
        trace(model, np.zeros((4, 2)), np.zeros((3, 1)), HalfSquaredError())


def test_nested_sequential_and_no_bias():
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 3, bias=False), nn.Sigmoid()),
                          nn.Linear(3, 1)).to(F64)
    t = trace(model, [0.3, -0.2], 0.5, HalfSquaredError(), lr=1.0)
    assert t.layers[0].b is None and t.layers[0].db is None
    assert t.param_names["W[1]"] == "0.0.weight" and "b[1]" not in t.param_names
    text = str(t)
    assert "Z[1] = W[1]·A[0]  " in text and "b[1]" not in text
    assert t.max_check_error < 1e-15


def test_to_dict_is_plain_data():
    d = trace(*default_example()).to_dict()
    again = json.loads(json.dumps(d))
    assert again["loss"] == d["loss"] and len(again["layers"]) == 2
    assert again["layers"][1]["dW"] == d["layers"][1]["dW"]
    assert again["blame"]["rows"][0]["name"] == "W[1]"
    assert abs(sum(r["share"] for r in again["blame"]["rows"]) - 1) < 1e-12
