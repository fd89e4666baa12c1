"""Each hidden neuron's picture (the ``neurons`` of a state frame) and the L1 / L2 settings."""
import base64
import contextlib
import io

import numpy as np
import pytest

from backprop.lab.session import LabSession


def _decode(layer, key, scale_key, res, dims):
    raw = np.frombuffer(base64.b64decode(layer[key]), dtype=np.uint8).astype(np.float64)
    scale = np.asarray(layer[scale_key], dtype=np.float64)
    per = res * res if dims == 2 else res
    pictures = raw.reshape(len(scale), per)
    return (pictures - 127) / 127 * scale[:, None]


def _grid(session, res):
    (x0, x1), (y0, y1) = session._view["x"], session._view["y"]
    xs = x0 + (np.arange(res) + 0.5) * (x1 - x0) / res
    ys = y0 + (np.arange(res) + 0.5) * (y1 - y0) / res
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def test_neuron_pictures_are_each_hidden_output_over_the_plane():
    s = LabSession({"dataset": "moons", "hidden": [5, 3], "activations": ["tanh", "relu"]},
                   diagnostics=False)
    s.step(30)
    frame = s.snapshot()
    n = frame["neurons"]
    assert n["dims"] == 2 and n["x"] == frame["boundary"]["x"] and len(n["layers"]) == 2
    res = n["res"]
    X = _grid(s, res).astype(np.float32)          # features x1, x2 are the coordinates
    W1, b1 = (t.detach().numpy().astype(np.float64) for t in (s.model[0].weight, s.model[0].bias))
    W2, b2 = (t.detach().numpy().astype(np.float64) for t in (s.model[3].weight, s.model[3].bias))
    h1 = np.tanh(X @ W1.T + b1)
    h2 = np.maximum(h1 @ W2.T + b2, 0)
    for got, want in zip((_decode(n["layers"][0], "values", "scale", res, 2),
                          _decode(n["layers"][1], "values", "scale", res, 2)), (h1.T, h2.T)):
        step = np.abs(want).max(axis=1, keepdims=True) / 127   # one byte
        assert got.shape == want.shape
        assert np.all(np.abs(got - want) <= 0.51 * step + 1e-3 * np.abs(want).max())


def test_neuron_gradient_is_that_of_the_predicted_class_log_probability():
    s = LabSession({"dataset": "spiral", "hidden": [6]}, diagnostics=False)
    s.step(40)
    before = [p.grad.numpy().copy() for p in s.model.parameters()]
    n = s._neurons()
    # the training step's gradients are untouched by the pictures
    for b, p in zip(before, s.model.parameters()):
        np.testing.assert_array_equal(b, p.grad.numpy())
    res = n["res"]
    X = _grid(s, res)
    W1, b1 = (t.detach().numpy().astype(np.float64) for t in (s.model[0].weight, s.model[0].bias))
    W2, b2 = (t.detach().numpy().astype(np.float64) for t in (s.model[3].weight, s.model[3].bias))
    h = np.tanh(X @ W1.T + b1)
    z = h @ W2.T + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    c = z.argmax(axis=1)
    want = W2[c] - p @ W2                 # d log p_c / d h, point by point
    got = _decode(n["layers"][0], "grads", "grad_scale", res, 2)
    step = np.abs(want).max(axis=0) / 127
    assert np.all(np.abs(got - want.T) <= 0.51 * step[:, None] + 1e-3 * np.abs(want).max())


def test_neuron_pictures_change_while_training_and_are_small():
    s = LabSession({"hidden": [8, 8]}, diagnostics=False)
    first = s.snapshot()["neurons"]
    s.step(50)
    later = s.snapshot()["neurons"]
    assert first["layers"][0]["values"] != later["layers"][0]["values"]
    assert len(base64.b64decode(later["layers"][0]["values"])) == 8 * 16 * 16
    big = LabSession({"hidden": [32, 32, 32]}, diagnostics=False)._neurons()
    assert big["res"] == 10
    assert LabSession({"hidden": []}, diagnostics=False)._neurons()["layers"] == []
    sine = LabSession({"dataset": "sine", "features": ["x1"]}, diagnostics=False)._neurons()
    assert sine["dims"] == 1 and len(base64.b64decode(sine["layers"][0]["values"])) == 8 * 32


# -- L1 and L2 ------------------------------------------------------------------------------------
def _sgd(**extra):
    return LabSession({"optimizer": "sgd", "lr": 0.1, "dropout": 0.0, **extra}, diagnostics=False)


@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.02), (0.003, 0.05)])
def test_l1_l2_are_in_the_loss_and_the_gradient(l1, l2):
    plain, reg = _sgd(), _sgd(l1=l1, l2=l2)
    weights = [reg.model[i].weight.detach().numpy().astype(np.float64) for i in reg._linear_at]
    want_penalty = sum(l1 * np.abs(w).sum() + l2 * (w * w).sum() for w in weights)
    assert float(reg._penalty().item()) == pytest.approx(want_penalty, rel=1e-5)
    assert plain._penalty() is None
    plain.step(1)
    reg.step(1)
    for n, i in enumerate(reg._linear_at):
        w = weights[n]
        got = reg.model[i].weight.grad.numpy()
        want = plain.model[i].weight.grad.numpy() + l1 * np.sign(w) + 2 * l2 * w
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # biases are not regularised
        np.testing.assert_array_equal(reg.model[i].bias.grad.numpy(),
                                      plain.model[i].bias.grad.numpy())
    # the curves show the data loss, the same for both after the same first batch
    assert reg._history[0]["loss"] == plain._history[0]["loss"]


def test_l1_l2_are_live_settings():
    s = _sgd()
    s.step(5)
    w = s.model[0].weight.detach().numpy().copy()
    s.apply({"l1": 0.05})
    assert s.step_count == 5
    np.testing.assert_array_equal(s.model[0].weight.detach().numpy(), w)
    assert s._penalty() is not None


def test_exported_script_has_the_same_penalty_and_trains_as_the_lab_does():
    settings = {"l1": 0.004, "l2": 0.03, "hidden": [6], "batch_size": 8}
    s = _sgd(**settings)
    text = s.export_script()
    assert "'l1': 0.004" in text and "'l2': 0.03" in text and "build_trainer" in text
    namespace = {"__name__": "lab_script"}
    exec(compile(text, "lab_script.py", "exec"), namespace)
    trainer = namespace["build_trainer"](namespace["SETTINGS"], s.model, "classification")
    assert trainer.regularizer(s.model).item() == s._penalty().item()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert namespace["main"](["--steps", "20"]) == 0
    s.step(20)
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("step 20:")
    assert f"train loss {s.metrics()['train_loss']:.4f}" in last
    # without L1 and L2 the script has no penalty
    assert "penalty" not in _sgd().export_script()
    assert "SETTINGS['l2']" not in _sgd(l1=0.01).export_script()


def test_l1_l2_checked():
    from backprop.lab.settings import LabError
    with pytest.raises(LabError, match="l1 must be between 0 and 0.1, got 5"):
        _sgd().apply({"l1": 5})
    with pytest.raises(LabError, match="l2 must be a number"):
        _sgd().apply({"l2": "x"})
