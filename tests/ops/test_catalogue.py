"""Sweep every op in the catalogue: gradcheck in float64, and agreement with PyTorch."""
from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import backprop
from backprop.autograd import Function, gradcheck

from tests.ops import catalogue

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _all_cases():
    cases = []
    pkg_path = [str(p) for p in __import__("tests.ops", fromlist=["_"]).__path__]
    for mod in sorted(pkgutil.iter_modules(pkg_path), key=lambda m: m.name):
        if mod.name.startswith("cases_"):
            cases.extend(importlib.import_module(f"tests.ops.{mod.name}").CASES)
    return cases


CASES = _all_cases()


def _to_backprop(args):
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(backprop.tensor(a, requires_grad=a.dtype == np.float64))
        else:
            out.append(a)
    return out


def _to_torch(args):
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            t = torch.tensor(a)
            if a.dtype == np.float64:
                t.requires_grad_(True)
            out.append(t)
        else:
            out.append(a)
    return out


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradcheck(case):
    if not case.grad:
        pytest.skip("op has no gradient")
    args = _to_backprop(case.inputs(np.random.default_rng(0)))
    tensors = [a for a in args if isinstance(a, backprop.Tensor)]
    idx = [i for i, a in enumerate(args) if isinstance(a, backprop.Tensor)]

    def f(*ts):
        full = list(args)
        for i, t in zip(idx, ts):
            full[i] = t
        return _first(case.fn(*full))

    assert gradcheck(f, tuple(tensors), **case.gradcheck_kw)


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_fn is not None],
                         ids=[c.name for c in CASES if c.torch_fn is not None])
def test_matches_torch(case):
    if torch is None:
        pytest.skip("PyTorch (the oracle) is not installed")
    raw = case.inputs(np.random.default_rng(1))
    ours_in, theirs_in = _to_backprop(raw), _to_torch(raw)
    ours, theirs = _first(case.fn(*ours_in)), _first(case.torch_fn(*theirs_in))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(),
                               atol=case.atol, rtol=case.rtol, err_msg=f"{case.name}: forward")
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), case.name
    if not case.grad or not ours.requires_grad:
        return
    v = np.random.default_rng(2).standard_normal(ours.shape)
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    for a, b in zip(ours_in, theirs_in):
        if isinstance(a, backprop.Tensor) and a.requires_grad:
            assert a.grad is not None, f"{case.name}: no gradient"
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=case.atol,
                                       rtol=case.rtol, err_msg=f"{case.name}: gradient")


def test_every_op_has_a_case():
    covered = {name for c in CASES for name in c.covers}
    ops = {cls.__name__ for key, cls in Function.registry.items()
           if key.startswith("backprop.ops.")}
    missing = sorted(ops - covered)
    assert not missing, f"ops without a catalogue case (add one to tests/ops/cases_*.py): {missing}"
