"""Sequential, ModuleList and ModuleDict: indexing, mutation, naming and printing as PyTorch."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import backprop
from backprop import nn


def _seq(m):
    return m.Sequential(m.Linear(2, 3), m.ReLU(), m.Linear(3, 1))


def test_sequential_runs_in_order(rng):
    seq = _seq(nn).double()
    x = backprop.tensor(rng.standard_normal((4, 2)))
    expected = seq[2](seq[1](seq[0](x)))
    np.testing.assert_array_equal(seq(x).detach().numpy(), expected.detach().numpy())


def test_sequential_indexing_and_slicing_match_torch(oracle):
    seq, tseq = _seq(nn), _seq(oracle.nn)
    assert seq[0] is list(seq.children())[0] and seq[-1] is seq[2]
    assert len(seq) == 3 and [type(m) for m in seq] == [nn.Linear, nn.ReLU, nn.Linear]
    sub, tsub = seq[1:], tseq[1:]
    assert isinstance(sub, nn.Sequential) and sub[1] is seq[2]
    assert repr(sub) == repr(tsub)
    assert list(sub.state_dict()) == list(tsub.state_dict()) == ["2.weight", "2.bias"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    with pytest.raises(TypeError):
        seq["0"]


def test_sequential_mutation_matches_torch(oracle):
    seq, tseq = _seq(nn), _seq(oracle.nn)
    for s, m in ((seq, nn), (tseq, oracle.nn)):
        s.append(m.Tanh())
        s.insert(1, m.Sigmoid())
        s.extend([m.Identity()])
        del s[0]
        s[0] = m.GELU()
        s.pop(-2)
    assert repr(seq) == repr(tseq)
    assert [n for n, _ in seq.named_children()] == [n for n, _ in tseq.named_children()]
    assert seq.__dict__["0"] is seq[0]    # the attribute view follows renumbering
    assert "4" not in seq.__dict__


def test_sequential_from_ordered_dict_and_add(oracle):
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(1, 2)), ("act", nn.ReLU())]))
    tseq = oracle.nn.Sequential(OrderedDict([("fc", oracle.nn.Linear(1, 2)),
                                             ("act", oracle.nn.ReLU())]))
    assert repr(seq) == repr(tseq)
    assert seq.fc is seq[0] and list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    both = seq + nn.Sequential(nn.Tanh())
    assert len(both) == 3 and isinstance(both[2], nn.Tanh)
    with pytest.raises(TypeError):
        seq + nn.ReLU()


def test_empty_containers_print_like_torch(oracle):
    for name in ("Sequential", "ModuleList", "ModuleDict"):
        assert repr(getattr(nn, name)()) == repr(getattr(oracle.nn, name)())
    assert nn.Sequential()(backprop.ones(1)).item() == 1


def test_module_list_operations(oracle):
    def build(m):
        layers = m.ModuleList([m.Linear(2, 2) for _ in range(2)])
        layers.append(m.ReLU())
        layers.extend([m.Linear(2, 2), m.Linear(2, 2)])
        layers.insert(0, m.Tanh())
        layers += [m.ReLU()]
        del layers[1]
        return layers

    layers, tlayers = build(nn), build(oracle.nn)
    assert repr(layers) == repr(tlayers)  # runs of equal layers print as "(a-b): n x ..."
    assert [n for n, _ in layers.named_parameters()] == \
        [n for n, _ in tlayers.named_parameters()]
    assert len(layers) == 6 and isinstance(layers[-1], nn.ReLU)
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    popped = layers.pop(0)
    assert isinstance(popped, nn.Tanh) and len(layers) == 5
    layers[0] = nn.Sigmoid()
    assert isinstance(layers[0], nn.Sigmoid) and layers.__dict__["0"] is layers[0]
    assert len(layers + nn.ModuleList([nn.ReLU()])) == 6
    with pytest.raises(TypeError, match="iterable"):
        nn.ModuleList(nn.ReLU())
    with pytest.raises(NotImplementedError, match="forward"):
        layers(backprop.ones(1))


def test_module_dict_operations(oracle):
    heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})
    theads = oracle.nn.ModuleDict({"cls": oracle.nn.Linear(4, 3), "box": oracle.nn.Linear(4, 2)})
    assert repr(heads) == repr(theads)
    assert list(heads) == ["cls", "box"] and "cls" in heads and len(heads) == 2
    assert list(heads.state_dict()) == list(theads.state_dict())
    heads["act"] = nn.ReLU()
    heads.update([("extra", nn.Tanh())])
    assert list(heads.keys()) == ["cls", "box", "act", "extra"]
    assert isinstance(heads.pop("act"), nn.ReLU) and "act" not in heads.__dict__
    del heads["extra"]
    assert [k for k, _ in heads.items()] == ["cls", "box"]
    assert all(isinstance(v, nn.Linear) for v in heads.values())
    with pytest.raises(KeyError, match="already exists"):
        heads["keys"] = nn.ReLU()     # would shadow a method (torch refuses too)
    with pytest.raises(ValueError, match="pair"):
        heads.update([nn.ReLU()])
    heads.clear()
    assert len(heads) == 0 and list(heads.parameters()) == []


def test_nested_repr_matches_torch(oracle):
    def build(m):
        return m.Sequential(
            m.Conv2d(1, 8, 3, padding=1), m.BatchNorm2d(8), m.ReLU(), m.MaxPool2d(2),
            m.Sequential(m.Conv2d(8, 8, 3, padding="same", bias=False), m.GELU()),
            m.AdaptiveAvgPool2d((1, 1)), m.Flatten(),
            m.ModuleList([m.Linear(8, 8), m.Linear(8, 8), m.Linear(8, 8)]),
            m.ModuleDict({"head": m.Linear(8, 10), "drop": m.Dropout(0.1)}),
            m.LayerNorm(8), m.Embedding(5, 8, padding_idx=0))

    assert repr(build(nn)) == repr(build(oracle.nn))
    assert list(build(nn).state_dict()) == list(build(oracle.nn).state_dict())
