"""Forward and full backward hooks on modules, checked against PyTorch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.autograd import gradcheck
from backprop.nn import module as module_mod

from tests.nn.common import assert_close, copy_to_torch


def _arrays(values):
    return [None if v is None else np.array(v.detach().numpy()) for v in values]


# -- forward hooks --------------------------------------------------------------------------------
def test_forward_pre_hook_replaces_input():
    layer = nn.Identity()
    handle = layer.register_forward_pre_hook(lambda m, args: args[0] * 2)
    np.testing.assert_array_equal(layer(backprop.ones(2)).numpy(), [2, 2])
    handle.remove()
    np.testing.assert_array_equal(layer(backprop.ones(2)).numpy(), [1, 1])


def test_forward_hook_sees_args_and_replaces_output():
    layer = nn.Linear(2, 3)
    seen = []

    def hook(module, args, output):
        seen.append((module, args, output))
        return output * 0

    handle = layer.register_forward_hook(hook)
    x = backprop.ones(1, 2)
    out = layer(x)
    assert not out.detach().numpy().any()
    module, args, output = seen[0]
    assert module is layer and args[0] is x and output.shape == (1, 3)
    assert output.detach().numpy().any()
    handle.remove()
    assert layer(x).detach().numpy().any()


def test_hook_order_prepend_and_kwargs():
    calls = []
    layer = nn.Identity()
    layer.register_forward_hook(lambda m, a, o: calls.append("second"))
    layer.register_forward_hook(lambda m, a, o: calls.append("first"), prepend=True)
    layer.register_forward_pre_hook(lambda m, a, kw: calls.append(("pre", kw)) or None,
                                    with_kwargs=True)
    layer.register_forward_hook(lambda m, a, kw, o: calls.append(("kw", kw)), with_kwargs=True)

    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    s = Scale()
    s.register_forward_pre_hook(lambda m, args, kwargs: (args, {"factor": 3.0}),
                                with_kwargs=True)
    np.testing.assert_array_equal(s(backprop.ones(1), factor=2.0).numpy(), [3.0])
    layer(backprop.ones(1))
    assert calls == [("pre", {}), "first", "second", ("kw", {})]


def test_handles_work_as_context_managers():
    layer = nn.Identity()
    with layer.register_forward_hook(lambda m, a, o: o + 1):
        assert layer(backprop.zeros(1)).item() == 1
    assert layer(backprop.zeros(1)).item() == 0
    assert not layer._forward_hooks


def test_global_forward_hooks_see_every_module():
    names = []
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    handle = module_mod.register_module_forward_hook(
        lambda m, a, o: names.append(type(m).__name__))
    pre = module_mod.register_module_forward_pre_hook(lambda m, a: None)
    try:
        model(backprop.ones(1, 2))
    finally:
        handle.remove()
        pre.remove()
    assert names == ["Linear", "ReLU", "Sequential"]
    model(backprop.ones(1, 2))
    assert len(names) == 3


# -- full backward hooks: the same numbers as torch ---------------------------------------------
def _mlp(m):
    return m.Sequential(m.Linear(3, 4), m.Tanh(), m.Linear(4, 2))


def _record(model, store):
    handles = []
    for name, mod in model.named_children():
        def hook(module, grad_input, grad_output, name=name):
            store.append((name, _arrays(grad_input), _arrays(grad_output)))
        handles.append(mod.register_full_backward_hook(hook))
    return handles


@pytest.mark.parametrize("input_grad", [True, False])
def test_full_backward_hooks_match_torch(oracle, rng, input_grad):
    model = _mlp(nn).double()
    tmodel = copy_to_torch(model, _mlp(oracle.nn).double(), oracle)
    ours, theirs = [], []
    _record(model, ours)
    _record(tmodel, theirs)
    x = rng.standard_normal((5, 3))
    a = backprop.tensor(x, requires_grad=input_grad)
    b = oracle.tensor(x, requires_grad=input_grad)
    (model(a) ** 2).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns when the first layer's input needs no grad
        (tmodel(b) ** 2).sum().backward()
    assert [r[0] for r in ours] == [r[0] for r in theirs] == ["2", "1", "0"]
    for (name, gin, gout), (_, tgin, tgout) in zip(ours, theirs):
        assert len(gin) == len(tgin) and len(gout) == len(tgout)
        for g, tg in zip(gin + gout, tgin + tgout):
            assert (g is None) == (tg is None), name
            if g is not None:
                np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-12, err_msg=name)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p.grad, tp.grad)


def test_full_backward_hook_can_replace_grad_input(oracle, rng):
    model = _mlp(nn).double()
    tmodel = copy_to_torch(model, _mlp(oracle.nn).double(), oracle)
    for m in (model, tmodel):
        m[1].register_full_backward_hook(lambda mod, gin, gout: (gin[0] * 3,))
    x = rng.standard_normal((5, 3))
    a, b = backprop.tensor(x, requires_grad=True), oracle.tensor(x, requires_grad=True)
    model(a).sum().backward()
    tmodel(b).sum().backward()
    assert_close(a.grad, b.grad)
    assert_close(model[0].weight.grad, tmodel[0].weight.grad)
    assert_close(model[2].weight.grad, tmodel[2].weight.grad)  # downstream is unchanged


def test_full_backward_pre_hook_can_replace_grad_output(oracle, rng):
    model = _mlp(nn).double()
    tmodel = copy_to_torch(model, _mlp(oracle.nn).double(), oracle)
    seen, tseen = [], []
    for m, store in ((model, seen), (tmodel, tseen)):
        m[2].register_full_backward_pre_hook(lambda mod, gout: (gout[0] * -2,))
        m[2].register_full_backward_hook(
            lambda mod, gin, gout, store=store: store.append(_arrays(gout)))
    x = rng.standard_normal((4, 3))
    a, b = backprop.tensor(x, requires_grad=True), oracle.tensor(x, requires_grad=True)
    model(a).sum().backward()
    tmodel(b).sum().backward()
    np.testing.assert_allclose(seen[0][0], tseen[0][0])
    assert_close(a.grad, b.grad)
    assert_close(model[2].weight.grad, tmodel[2].weight.grad)


class _TwoIn:
    """forward(a, b, k) -> (a * b + k, a.sum()), in both libraries."""

    @staticmethod
    def build(m):
        class TwoIn(m.Module):
            def forward(self, a, b, k):
                return a * b + k, a.sum() * 1.0

        return TwoIn()


def test_full_backward_hook_with_several_inputs_and_outputs(oracle, rng):
    ours, theirs = [], []
    mod, tmod = _TwoIn.build(nn), _TwoIn.build(oracle.nn)

    def record(store):
        def hook(module, gin, gout):
            store.append((_arrays(gin[:2]) + [gin[2]], _arrays(gout)))
            return (gin[0] * 2, gin[1], None)
        return hook

    mod.register_full_backward_hook(record(ours))
    tmod.register_full_backward_hook(record(theirs))
    xa, xb = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    a, b = backprop.tensor(xa, requires_grad=True), backprop.tensor(xb, requires_grad=True)
    ta, tb = oracle.tensor(xa, requires_grad=True), oracle.tensor(xb, requires_grad=True)
    out, s = mod(a, b, 0.5)
    tout, ts = tmod(ta, tb, 0.5)
    ((out ** 2).sum() + 3 * s).backward()
    ((tout ** 2).sum() + 3 * ts).backward()
    (gin, gout), (tgin, tgout) = ours[0], theirs[0]
    assert gin[2] is None and tgin[2] is None
    for g, tg in zip(gin[:2] + gout, tgin[:2] + tgout):
        np.testing.assert_allclose(g, tg, rtol=1e-12)
    assert_close(a.grad, ta.grad)
    assert_close(b.grad, tb.grad)


def test_full_backward_hook_when_one_input_needs_no_grad(oracle, rng):
    ours, theirs = [], []
    mod, tmod = _TwoIn.build(nn), _TwoIn.build(oracle.nn)
    mod.register_full_backward_hook(lambda m, gin, gout: ours.append(gin))
    tmod.register_full_backward_hook(lambda m, gin, gout: theirs.append(gin))
    xa, xb = rng.standard_normal(3), rng.standard_normal(3)
    out, _ = mod(backprop.tensor(xa), backprop.tensor(xb, requires_grad=True), 0.0)
    tout, _ = tmod(oracle.tensor(xa), oracle.tensor(xb, requires_grad=True), 0.0)
    out.sum().backward()
    tout.sum().backward()
    # as torch: a tensor argument that needs no grad gets zeros, a float gets None
    for g, tg in zip(ours[0], theirs[0]):
        assert (g is None) == (tg is None)
        if g is not None:
            np.testing.assert_allclose(g.numpy(), tg.numpy())
    assert not ours[0][0].numpy().any() and ours[0][2] is None


def test_full_backward_hook_unused_input_and_output_match_torch(oracle):
    def build(m):
        class Partial(m.Module):
            def forward(self, a, b, c):
                return a * 2, b * 1

        return Partial()

    ours, theirs = [], []
    for lib, store, t in ((nn, ours, backprop), (oracle.nn, theirs, oracle)):
        mod = build(lib)
        mod.register_full_backward_hook(lambda m, gin, gout, store=store: store.append((gin, gout)))
        a, b, c = t.ones(2, requires_grad=True), t.ones(2, requires_grad=True), t.ones(2)
        x, _ = mod(a, b, c)
        x.sum().backward()
    (gin, gout), (tgin, tgout) = ours[0], theirs[0]
    assert [g.numpy().tolist() for g in gin] == [g.numpy().tolist() for g in tgin]
    assert gout[1] is None and tgout[1] is None
    assert gout[0].numpy().tolist() == tgout[0].numpy().tolist()


def test_backward_hook_fires_on_every_backward_and_is_removable():
    calls = []
    layer = nn.Linear(2, 2)
    handle = layer.register_full_backward_hook(lambda m, gin, gout: calls.append(1))
    out = layer(backprop.randn(3, 2, requires_grad=True)).sum()
    out.backward(retain_graph=True)
    out.backward()
    assert len(calls) == 2
    handle.remove()
    layer(backprop.randn(3, 2, requires_grad=True)).sum().backward()
    assert len(calls) == 2


def test_backward_hooks_are_not_set_up_under_no_grad():
    layer = nn.Linear(2, 2)
    layer.register_full_backward_hook(lambda m, gin, gout: None)
    with backprop.no_grad():
        out = layer(backprop.randn(3, 2))
    assert out.grad_fn is None and not out.requires_grad


def test_global_full_backward_hook():
    seen = []
    handle = module_mod.register_module_full_backward_hook(
        lambda m, gin, gout: seen.append(type(m).__name__))
    try:
        nn.Sequential(nn.Linear(2, 2), nn.ReLU())(backprop.randn(1, 2)).sum().backward()
    finally:
        handle.remove()
    assert seen == ["Sequential", "ReLU", "Linear"]


def test_bad_hook_return_values():
    layer = nn.Linear(2, 2)
    layer.register_full_backward_hook(lambda m, gin, gout: (gin[0], gin[0]))
    with pytest.raises(RuntimeError, match="invalid number of grad_input"):
        layer(backprop.randn(1, 2, requires_grad=True)).sum().backward()
    other = nn.Linear(2, 2)
    other.register_full_backward_hook(lambda m, gin, gout: (backprop.zeros(1, 2),))
    with pytest.raises(RuntimeError, match="no input requires gradient"):
        other(backprop.randn(1, 2)).sum().backward()
    with pytest.raises(TypeError, match="callable"):
        layer.register_forward_hook(3)


def test_gradients_pass_unchanged_through_hook_nodes(rng):
    # The identity / pack / unpack nodes that carry backward hooks are primitives too.
    mod = _TwoIn.build(nn)
    mod.register_full_backward_hook(lambda m, gin, gout: None)
    mod.register_full_backward_pre_hook(lambda m, gout: None)
    a = backprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = backprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert gradcheck(lambda a, b: mod(a, b, 0.5)[0] * mod(a, b, 0.0)[1], (a, b))
    layer = nn.Linear(3, 2).double()
    layer.register_full_backward_hook(lambda m, gin, gout: None)
    assert gradcheck(lambda x, w: layer(x), (a, layer.weight))
