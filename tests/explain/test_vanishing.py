"""vanishing(): per-layer gradient norms of a real deep MLP, one bar per layer."""
import json
import math
import re

import pytest

import backprop
from backprop.explain import vanishing


def _bars(text):
    rows = [line for line in text.splitlines() if re.match(r"^\s+\d+\s+\d\.\d+e[+-]", line)]
    return [line.count("#") for line in rows]


def test_sigmoid_gradients_vanish_toward_the_input():
    r = vanishing(depth=8, activation="sigmoid")
    assert len(r.norms) == 8 and r.names[0] == "0.weight"
    assert r.verdict == "vanishing" and r.ratio < 1e-3
    assert all(a < b for a, b in zip(r.norms[:-1], r.norms[1:]))  # shrinking down the depth
    text = str(r)
    bars = _bars(text)
    assert len(bars) == 8 and bars == sorted(bars) and bars[0] < bars[-1]
    assert "verdict: vanishing" in text and "orders of magnitude smaller" in r.message
    assert r.ratio == pytest.approx(r.norms[0] / r.norms[-2])


def test_he_init_relu_and_skips_are_healthy():
    relu = vanishing(depth=8, activation="relu", init="he")
    assert relu.verdict == "healthy" and 1e-1 < relu.ratio < 10
    skip = vanishing(depth=8, activation="sigmoid", residual=True)
    assert skip.verdict == "healthy"
    assert skip.ratio > 1e3 * vanishing(depth=8, activation="sigmoid").ratio
    assert "skip connections" in str(skip) and "verdict: healthy" in str(skip)


def test_tiny_init_is_vanishing_everywhere():
    r = vanishing(depth=6, activation="relu", init="small")
    assert r.verdict == "vanishing" and max(r.norms) < 1e-6
    assert "vanishing everywhere" in r.message


def test_seeded_and_side_effect_free():
    state = backprop.get_rng_state()
    a = vanishing(depth=4, activation="tanh", init="xavier", width=8, batch=16, seed=3)
    assert backprop.get_rng_state() == state
    b = vanishing(depth=4, activation="tanh", init="xavier", width=8, batch=16, seed=3)
    c = vanishing(depth=4, activation="tanh", init="xavier", width=8, batch=16, seed=4)
    assert a.norms == b.norms and a.norms != c.norms
    d = json.loads(json.dumps(a.to_dict()))
    assert [layer["grad_norm"] for layer in d["layers"]] == a.norms
    assert d["config"]["init"] == "xavier" and d["verdict"] == a.verdict
    assert all(math.isfinite(g) and g > 0 for g in a.norms)


@pytest.mark.parametrize("kwargs, match", [
    ({"depth": 1}, "depth must be an int >= 2"),
    ({"activation": "swish"}, "unknown activation"),
    ({"init": "orthogonal"}, "unknown init"),
    ({"width": 0}, "width must be"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vanishing(**kwargs)
