"""nn.init: distributions, fans, gains, errors and seeding."""
from __future__ import annotations

import math

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.nn import init


def _big(*shape):
    return backprop.empty(*shape, dtype=backprop.float64)


@pytest.mark.parametrize("name,param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
    ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", 1), ("selu", None),
])
def test_calculate_gain_matches_torch(oracle, name, param):
    assert init.calculate_gain(name, param) == pytest.approx(
        oracle.nn.init.calculate_gain(name, param), rel=1e-15)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(3, 5), (4, 2, 3, 3), (6, 1, 2)])
def test_fans_match_torch(oracle, shape):
    ours = init._calculate_fan_in_and_fan_out(backprop.empty(*shape))
    theirs = oracle.nn.init._calculate_fan_in_and_fan_out(oracle.empty(*shape))
    assert ours == theirs


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(backprop.empty(5))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_normal_(backprop.empty(5))


def test_kaiming_uniform_bounds_and_std():
    w = init.kaiming_uniform_(_big(400, 500), nonlinearity="relu")
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 500)
    arr = w.numpy()
    assert np.abs(arr).max() <= bound and np.abs(arr).max() > 0.999 * bound
    assert arr.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(arr.mean()) < 0.01 * bound
    fan_out = init.kaiming_uniform_(_big(400, 500), mode="fan_out", nonlinearity="relu")
    assert np.abs(fan_out.numpy()).max() <= math.sqrt(6.0 / 400)
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(_big(4, 4), mode="fan_avg")


def test_kaiming_normal_std():
    w = init.kaiming_normal_(_big(300, 600), a=0.1)
    gain = math.sqrt(2.0 / (1 + 0.01))
    assert w.numpy().std() == pytest.approx(gain / math.sqrt(600), rel=0.01)


def test_xavier_uniform_and_normal():
    w = init.xavier_uniform_(_big(300, 500), gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / 800)
    assert np.abs(w.numpy()).max() <= bound
    assert w.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    n = init.xavier_normal_(_big(40, 60, 3, 3))
    assert n.numpy().std() == pytest.approx(math.sqrt(2.0 / (540 + 360)), rel=0.02)


def test_uniform_normal_constant_ones_zeros_eye():
    u = init.uniform_(_big(100_000), -2, 3).numpy()
    assert u.min() >= -2 and u.max() < 3 and u.mean() == pytest.approx(0.5, abs=0.02)
    n = init.normal_(_big(100_000), 1.5, 0.5).numpy()
    assert n.mean() == pytest.approx(1.5, abs=0.01) and n.std() == pytest.approx(0.5, rel=0.01)
    assert (init.constant_(_big(3), 0.25).numpy() == 0.25).all()
    assert (init.ones_(_big(3)).numpy() == 1).all() and (init.zeros_(_big(3)).numpy() == 0).all()
    np.testing.assert_array_equal(init.eye_(_big(2, 3)).numpy(), np.eye(2, 3))


def test_trunc_normal_stays_in_bounds():
    t = init.trunc_normal_(_big(50_000), mean=0.5, std=1.0, a=0.0, b=1.0).numpy()
    assert t.min() >= 0.0 and t.max() <= 1.0
    assert t.mean() == pytest.approx(0.5, abs=0.01)
    far = init.trunc_normal_(_big(100), mean=0.0, std=1.0, a=10.0, b=11.0).numpy()
    assert far.min() >= 10.0 and far.max() <= 11.0
    with pytest.raises(ValueError):
        init.trunc_normal_(_big(3), a=1.0, b=0.0)


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (4, 2, 3)])
def test_orthogonal(shape):
    w = init.orthogonal_(_big(*shape), gain=2.0).numpy().reshape(shape[0], -1)
    if w.shape[0] <= w.shape[1]:
        np.testing.assert_allclose(w @ w.T, 4 * np.eye(w.shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(w.T @ w, 4 * np.eye(w.shape[1]), atol=1e-12)


def test_init_works_on_parameters_and_returns_them():
    layer = nn.Linear(3, 4)
    assert init.zeros_(layer.weight) is layer.weight
    assert layer.weight.requires_grad and not layer.weight.detach().numpy().any()
    version = layer.bias._version
    init.normal_(layer.bias)
    assert layer.bias._version > version


def test_init_is_seeded_and_takes_a_generator():
    backprop.manual_seed(5)
    a = init.kaiming_uniform_(_big(4, 4)).numpy().copy()
    backprop.manual_seed(5)
    b = init.kaiming_uniform_(_big(4, 4)).numpy().copy()
    np.testing.assert_array_equal(a, b)
    g1, g2 = backprop.Generator(1), backprop.Generator(1)
    np.testing.assert_array_equal(init.normal_(_big(3), generator=g1).numpy(),
                                  init.normal_(_big(3), generator=g2).numpy())


def test_zero_element_tensor_warns_and_integer_tensor_refused():
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(backprop.empty(0, 3))
    with pytest.raises(TypeError, match="floating-point"):
        init.normal_(backprop.zeros(3, dtype=backprop.int64))
    with pytest.raises(TypeError, match="Tensor"):
        init.normal_(np.zeros(3))
