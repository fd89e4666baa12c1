"""The packaged self-check: every built-in primitive and every nn layer has a case, all pass
quickly, and a broken backward is caught."""
from __future__ import annotations

import inspect

import numpy as np

import backprop
from backprop import nn
from backprop.autograd import Function
from backprop.diagnostics import selfcheck
from backprop.diagnostics.selfcheck import CASES, run_selfcheck


def test_every_builtin_primitive_has_a_case():
    missing = selfcheck.uncovered_primitives()
    assert not missing, (f"built-in Function subclasses without a self-check case (add one to "
                         f"backprop/diagnostics/selfcheck.py): {missing}")


def test_functions_defined_outside_backprop_are_not_required():
    class LocalOp(Function):  # registered, but it lives in tests: not a built-in
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g
    try:
        assert not any("LocalOp" in k for k in selfcheck.builtin_primitives())
        assert selfcheck.uncovered_primitives() == []
    finally:
        Function.registry.pop(f"{LocalOp.__module__}.{LocalOp.__qualname__}", None)


def test_every_nn_layer_has_a_case():
    layer_types = set()
    for case in CASES:
        if case.kind == "layer":
            backprop.manual_seed(0)
            layer_types.add(type(case.build()))
    not_layers = {nn.Module, nn.ModuleList, nn.ModuleDict,  # no forward of their own
                  nn.ParameterList, nn.ParameterDict}
    classes = {getattr(nn, name) for name in nn.__all__
               if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)}
    missing = sorted(c.__name__ for c in classes - not_layers - layer_types)
    assert not missing, f"nn layers without a self-check case: {missing}"


def test_the_whole_catalogue_passes():
    state = backprop.random.get_rng_state()
    report = run_selfcheck()
    assert report.passed, str(report)
    assert report.uncovered == []
    assert len(report) == len(CASES)
    assert {r.kind for r in report} == {"op", "layer"}
    assert all(r.max_error < 1e-6 for r in report if r.name != "cast")
    assert backprop.random.get_rng_state() == state
    assert str(report).splitlines()[-1].startswith(f"{len(CASES)} passed, 0 failed in ")


def test_selecting_cases():
    ops = run_selfcheck(layers=False, pattern="pool")
    assert [r.name for r in ops] == ["max_pool2d", "avg_pool2d"]
    assert ops.uncovered is None  # partial runs do not judge coverage
    layers = run_selfcheck(ops=False, pattern="BatchNorm*")
    assert [r.name for r in layers] == ["BatchNorm1d/train", "BatchNorm1d/eval", "BatchNorm2d/train"]
    assert len(run_selfcheck(pattern="no such case")) == 0


def test_a_broken_backward_fails_its_cases(monkeypatch):
    from backprop.ops.activation import Sigmoid

    real = Sigmoid.backward

    def wrong(ctx, grad_output):
        return real(ctx, grad_output) * 1.1  # 10% off
    monkeypatch.setattr(Sigmoid, "backward", staticmethod(wrong))
    report = run_selfcheck(pattern="[s]igmoid")  # a glob: exactly "sigmoid", not logsigmoid
    assert [r.name for r in report] == ["sigmoid", "Sigmoid"]
    assert not report.passed and report.failed == ["sigmoid", "Sigmoid"]
    for r in report:
        assert "gradient mismatch" in r.message and r.max_error > 1e-3
    assert "FAIL" in str(report) and "2 failed" in report.summary()


def test_a_case_that_crashes_is_a_failure_not_a_crash(monkeypatch):
    from backprop.ops.activation import Tanh

    def boom(ctx, x):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(Tanh, "forward", staticmethod(boom))
    report = run_selfcheck(ops=False, pattern="Tanh")
    assert not report.passed
    assert "RuntimeError: kaboom" in report[0].message
    assert np.isnan(report[0].max_error)
    assert report.to_dict()["results"][0]["passed"] is False
