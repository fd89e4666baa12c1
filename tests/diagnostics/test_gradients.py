"""check_gradients on users' models: a correct MLP passes, a wrong custom backward is named."""
from __future__ import annotations

import math

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.autograd import Function
from backprop.diagnostics import GradientReport, check_gradients


def _data(n=12, d=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (backprop.tensor(rng.standard_normal((n, d)).astype(np.float32)),
            backprop.tensor(rng.integers(0, classes, n)))


def _mlp():
    backprop.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, 3))


class WrongScale(Function):
    """y = x * w, with dw deliberately doubled."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad_output):
        x, w = ctx.saved_tensors
        return grad_output * w, 2.0 * (grad_output * x).sum(0)


class Scale(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.gain = nn.Parameter(backprop.ones(n) * 1.5)

    def forward(self, x):
        return WrongScale.apply(x, self.gain)


def test_a_correct_mlp_passes_and_the_model_is_untouched():
    model = _mlp()
    x, y = _data()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    report = check_gradients(model, x, y, nn.CrossEntropyLoss())
    assert isinstance(report, GradientReport)
    assert report.passed and report.failed == []
    assert [c.name for c in report] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                        "4.weight", "4.bias"]
    for c in report:
        assert c.checked == c.numel == math.prod(c.shape)
        assert c.max_abs_error < 1e-7 and c.rel_error < 1e-6
    # the user's model: still float32, same values, no gradients left behind
    assert model[0].weight.dtype == backprop.float32
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    text = str(report)
    assert "4.weight" in text and "all 6 parameter tensors passed" in text
    d = report.to_dict()
    assert d["passed"] is True and len(d["parameters"]) == 6
    assert d["parameters"][0]["shape"] == [8, 3]


def test_a_wrong_custom_backward_is_named():
    backprop.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), Scale(4), nn.Tanh(), nn.Linear(4, 3))
    x, y = _data()
    report = check_gradients(model, x, y, nn.CrossEntropyLoss())
    assert not report.passed
    assert report.failed == ["1.gain"]
    bad = report["1.gain"]
    # autograd's gradient is exactly twice the true one: relative error 1/2
    assert bad.rel_error == pytest.approx(0.5, abs=1e-6)
    assert bad.autograd == pytest.approx(2 * bad.numerical, rel=1e-5)
    assert report["3.weight"].passed  # the layers after it are still right
    text = str(report)
    assert "FAIL" in text and "1 of 5 parameter tensors FAILED: 1.gain" in text
    assert f"1.gain[{bad.worst[0]}]" in text


def test_sampling_big_tensors_is_seeded():
    backprop.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.Sigmoid(), nn.Linear(30, 2))
    x = backprop.randn(5, 20)
    y = backprop.randn(5, 2)
    a = check_gradients(model, x, y, nn.MSELoss(), max_elements=25, seed=3)
    b = check_gradients(model, x, y, nn.MSELoss(), max_elements=25, seed=3)
    assert a.passed
    assert [(c.checked, c.numel) for c in a] == [(25, 600), (25, 30), (25, 60), (2, 2)]
    assert [c.max_abs_error for c in a] == [c.max_abs_error for c in b]
    assert "25/600" in str(a)


def test_dropout_eval_by_default_and_fixed_masks_in_train_mode():
    backprop.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    x, y = _data()
    state = backprop.random.get_rng_state()
    ev = check_gradients(model, x, y, nn.CrossEntropyLoss())
    tr = check_gradients(model, x, y, nn.CrossEntropyLoss(), train=True)
    assert ev.passed and tr.passed
    assert ev.mode == "eval" and tr.mode == "train"
    assert ev.loss != tr.loss  # dropout was really on in train mode
    assert backprop.random.get_rng_state() == state  # the user's random stream is untouched
    assert model.training  # and so is the model's mode


def test_batchnorm_and_a_float64_weighted_loss():
    backprop.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    x, y = _data()
    loss = nn.CrossEntropyLoss(weight=backprop.tensor([1.0, 2.0, 0.5]))
    assert check_gradients(model, x, y, loss, train=True).passed
    assert check_gradients(model, x, y, loss).passed


def test_an_unused_parameter_has_zero_gradient_and_passes():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.unused = nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)
    x = backprop.randn(4, 3)
    report = check_gradients(TwoHeads(), x, backprop.randn(4, 2), nn.MSELoss())
    assert report.passed
    assert report["unused.weight"].max_abs_error == 0.0
    assert report["unused.weight"].rel_error == 0.0


def test_bad_arguments_are_named():
    model = _mlp()
    x, y = _data()
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        check_gradients(lambda t: t, x, y, nn.MSELoss())
    with pytest.raises(ValueError, match="eps must be a positive number, got 0"):
        check_gradients(model, x, y, nn.CrossEntropyLoss(), eps=0)
    with pytest.raises(ValueError, match="max_elements"):
        check_gradients(model, x, y, nn.CrossEntropyLoss(), max_elements=0)
    with pytest.raises(ValueError, match="must return a scalar"):
        check_gradients(model, x, y, lambda out, t: out)
    with pytest.raises(KeyError, match="no parameter named 'nope'"):
        check_gradients(model, x, y, nn.CrossEntropyLoss())["nope"]
