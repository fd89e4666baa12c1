"""Layers built from one shared base look, from outside, as PyTorch's do: the zero pads
are constant pads, the adaptive pools keep their output size, and the norm layers
register the same parameters (or None) under the same names, in the same order."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop import nn


@pytest.mark.parametrize("n", [1, 2, 3])
def test_zero_pads_are_constant_pads_of_zero(oracle, n):
    padding = tuple(range(1, 2 * n + 1))
    ours = getattr(nn, f"ZeroPad{n}d")(padding)
    theirs = getattr(oracle.nn, f"ZeroPad{n}d")(padding)
    assert isinstance(ours, getattr(nn, f"ConstantPad{n}d"))
    assert isinstance(theirs, getattr(oracle.nn, f"ConstantPad{n}d"))
    assert repr(ours) == repr(theirs)
    assert ours.value == theirs.value == 0.0
    x = np.arange(2.0 * 3 ** n).reshape((2,) + (3,) * n) + 1.0
    np.testing.assert_array_equal(ours(backprop.tensor(x)).numpy(),
                                  theirs(oracle.tensor(x)).numpy())
    with pytest.raises(TypeError):
        getattr(nn, f"ZeroPad{n}d")(1, 0.0)   # no value: torch's takes padding only too


@pytest.mark.parametrize("make", [
    lambda m: m.AdaptiveAvgPool1d(3), lambda m: m.AdaptiveAvgPool2d((2, None)),
    lambda m: m.AdaptiveMaxPool1d(4), lambda m: m.AdaptiveMaxPool2d(2, return_indices=True),
])
def test_adaptive_pools_keep_their_options_as_torch(oracle, make):
    ours, theirs = make(nn), make(oracle.nn)
    assert repr(ours) == repr(theirs)
    assert ours.output_size == theirs.output_size
    assert getattr(ours, "return_indices", False) == getattr(theirs, "return_indices", False)


NORMS = [
    lambda m: m.BatchNorm1d(3), lambda m: m.BatchNorm2d(3, affine=False),
    lambda m: m.BatchNorm1d(3, bias=False),
    lambda m: m.LayerNorm((2, 3)), lambda m: m.LayerNorm(3, bias=False),
    lambda m: m.LayerNorm(3, elementwise_affine=False),
    lambda m: m.GroupNorm(2, 4), lambda m: m.GroupNorm(2, 4, affine=False),
    lambda m: m.GroupNorm(2, 4, bias=False),
    lambda m: m.InstanceNorm1d(3, affine=True), lambda m: m.InstanceNorm2d(3),
]


@pytest.mark.parametrize("make", NORMS)
def test_norm_layers_register_torchs_parameters(oracle, make):
    ours, theirs = make(nn), make(oracle.nn)
    assert [name for name, _ in ours.named_parameters()] == \
        [name for name, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name in ("weight", "bias"):
        assert (getattr(ours, name) is None) == (getattr(theirs, name) is None), name
    for name, p in theirs.named_parameters():   # γ = 1, β = 0
        np.testing.assert_array_equal(ours.get_parameter(name).detach().numpy(),
                                      p.detach().numpy())
    assert repr(ours) == repr(theirs)
