"""blame(): each parameter's gradient, its share, and the change the next step will make."""
import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.explain import BlameTable, blame

F64 = backprop.float64


def _model_and_loss(seed=0):
    backprop.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(F64)
    rng = np.random.default_rng(seed)
    x = backprop.tensor(rng.standard_normal((8, 3)), dtype=F64)
    y = backprop.tensor(rng.standard_normal((8, 2)), dtype=F64)
    return model, (lambda: nn.MSELoss()(model(x), y))


def test_norms_shares_and_plain_gradient_descent():
    model, loss = _model_and_loss()
    loss().backward()
    table = blame(model, lr=0.1)
    assert isinstance(table, BlameTable) and table.mode == "sgd"
    assert table.names() == [n for n, _ in model.named_parameters()]
    total_l1 = sum(np.abs(p.grad.numpy()).sum() for p in model.parameters())
    for (name, p), row in zip(model.named_parameters(), table):
        g = p.grad.numpy()
        assert row.grad_norm == pytest.approx(np.linalg.norm(g), rel=1e-12)
        assert row.share == pytest.approx(np.abs(g).sum() / total_l1, rel=1e-12)
        np.testing.assert_array_equal(row.update, -0.1 * g)
        assert row.update_ratio == pytest.approx(0.1 * np.linalg.norm(g) /
                                                 np.linalg.norm(p.detach().numpy()))
    assert sum(r.share for r in table) == pytest.approx(1.0, abs=1e-12)
    assert table.total_grad_norm == pytest.approx(
        np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in model.parameters())))
    text = str(table)
    assert "0.weight" in text and "%" in text and "lr = 0.1" in text


def _state_copy(opt):
    out = {}
    for p, s in opt.state.items():
        out[id(p)] = {k: (v.numpy().copy() if isinstance(v, backprop.Tensor) else v)
                      for k, v in s.items()}
    return out


@pytest.mark.parametrize("make", [
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01),
], ids=["adam", "sgd-momentum", "rmsprop"])
def test_optimizer_step_is_measured_and_undone(make):
    model, loss = _model_and_loss(1)
    opt = make(model.parameters())
    for _ in range(3):  # build up optimizer state first
        opt.zero_grad()
        loss().backward()
        opt.step()
    opt.zero_grad()
    loss().backward()
    fired = []
    opt.register_step_pre_hook(lambda *a: fired.append("pre"))
    opt.register_step_post_hook(lambda *a: fired.append("post"))
    params = [p.detach().numpy().copy() for p in model.parameters()]
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    state, count = _state_copy(opt), opt._step_count

    table = blame(model, optimizer=opt, sort_by="share")
    assert table.mode == "optimizer" and table.optimizer == type(opt).__name__
    assert fired == []  # observers never saw the measuring step
    assert opt._step_count == count
    for p, before, g in zip(model.parameters(), params, grads):
        np.testing.assert_array_equal(p.detach().numpy(), before)
        np.testing.assert_array_equal(p.grad.numpy(), g)
    after_state = _state_copy(opt)
    assert after_state.keys() == state.keys()
    for k in state:
        for key, v in state[k].items():
            np.testing.assert_array_equal(after_state[k][key], v)

    # the predicted change is the change the real next step makes
    opt.step()
    assert fired == ["pre", "post"]
    for (name, p), before in zip(model.named_parameters(), params):
        np.testing.assert_allclose(table[name].update, p.detach().numpy() - before,
                                   rtol=1e-12, atol=1e-15)


def test_sorting_and_lookup():
    model, loss = _model_and_loss()
    loss().backward()
    table = blame(model, lr=0.5)
    by_share = table.sort_by("share")
    shares = [r.share for r in by_share]
    assert shares == sorted(shares, reverse=True)
    assert [r.name for r in by_share.sort_by("model")] == table.names()
    assert by_share.sort_by("name").names() == sorted(table.names())
    assert blame(model, lr=0.5, sort_by="grad_norm")[0].grad_norm == max(
        r.grad_norm for r in table)
    assert table["2.bias"].shape == (2,)
    with pytest.raises(KeyError, match="no parameter named"):
        table["nope"]
    with pytest.raises(ValueError, match="unknown key"):
        table.sort_by("size")
    d = by_share.to_dict()
    assert [r["name"] for r in d["rows"]] == by_share.names()
    assert "grad" not in d["rows"][0]
    assert len(by_share.to_dict(arrays=True)["rows"][0]["grad"]) > 0


def test_per_element_rows_and_missing_gradients():
    w = backprop.tensor([[1.0, -2.0]], dtype=F64, requires_grad=True)
    b = backprop.tensor([0.5], dtype=F64, requires_grad=True)
    unused = backprop.tensor([3.0], dtype=F64, requires_grad=True)
    (w.sum() * 2 + b * 4).sum().backward()
    table = blame([("w", w), ("b", b), ("unused", unused)], lr=0.25, per_element=True)
    assert table.names() == ["w[0, 0]", "w[0, 1]", "b[0]", "unused[0]"]
    assert [r.share for r in table] == pytest.approx([0.25, 0.25, 0.5, 0.0])
    assert table["unused[0]"].grad_norm is None and table["unused[0]"].update is None
    assert float(table["b[0]"].update) == -1.0
    text = str(table)
    assert "no grad" in text and "-1" in text   # single elements print signed values


def test_errors():
    model, loss = _model_and_loss()
    with pytest.raises(ValueError, match="call loss.backward"):
        blame(model, lr=0.1)
    loss().backward()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not both"):
        blame(model, lr=0.1, optimizer=opt)
    with pytest.raises(ValueError, match="lr must be"):
        blame(model, lr=-1.0)
    with pytest.raises(TypeError, match="single Tensor"):
        blame(next(model.parameters()))
    assert blame(model).mode is None and blame(model)[0].update is None
