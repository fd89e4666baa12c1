"""The optional C accelerator (``_cengine.c``): built where a compiler is, and never
changing a result.

The whole engine suite also runs with ``BACKPROP_PURE_PYTHON=1`` (``make test`` does
both), so each behaviour is tested on both paths; this file checks what only the
pairing can show: that the accelerator is in use where it should be, and that the two
engines agree to the last bit on the same graph.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import backprop
from backprop.autograd import engine, function

PURE = engine.pure_python_requested()


def _compiler_present() -> bool:
    """A C compiler and the Python headers: what setup.py needs to build _cengine."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    return shutil.which(cc) is not None and os.path.exists(headers)


def test_accelerator_is_used_where_it_can_be_built():
    if PURE:
        assert engine._accel is None and function._capply is None
        assert engine.ENGINE == "pure Python (BACKPROP_PURE_PYTHON is set)"
        return
    if not _compiler_present():
        pytest.skip("no C compiler: backprop runs its pure-Python engine")
    assert engine._accel is not None, f"a C compiler is present, but {engine.ENGINE}"
    assert function._capply is not None
    assert engine._accel.API_VERSION == engine._CENGINE_API
    assert engine.ENGINE == "C accelerator"
    # the operators call the C apply directly
    y = backprop.ones(2, requires_grad=True) * 2
    assert y.grad_fn.name() == "MulBackward0"


# A graph that takes every branch of the backward walk: broadcasting reduced by the
# engine, a dtype cast, a leaf used many times (its running sum), an interior node
# receiving several gradients, an op returning a Python float gradient, a node hook,
# leaf hooks, a tensor subclass (Parameter), and ops of one, two and three inputs.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import backprop as bp
    from backprop.autograd import Function, engine

    class Scale(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3.0
        @staticmethod
        def backward(ctx, g):
            return [g * 3.0]          # a list, not a tuple

    class Total(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.shape = x.shape
            return np.asarray(x.sum())
        @staticmethod
        def backward(ctx, g):
            return bp.tensor(np.broadcast_to(g, ctx.shape).copy())   # a Tensor

    bp.manual_seed(0)
    w = bp.nn.Parameter(bp.randn(4, 3, dtype=bp.float64))
    b = bp.randn(3, requires_grad=True, dtype=bp.float64)
    x = bp.randn(5, 4, dtype=bp.float64)
    s = bp.randn(1, requires_grad=True)           # float32, meets float64: cast back
    seen = []
    h = x @ w + b                                 # b broadcast over rows
    h.register_hook(lambda g: seen.append(float(g.sum())))
    b.register_hook(lambda g: g * 2)
    acc = h
    for _ in range(6):
        acc = acc * bp.sigmoid(h) + b             # h and b reused: running sums
    z = bp.where(acc > 0, acc, acc * s) + Scale.apply(h)
    loss = Total.apply(z) + (h ** 2).mean()
    loss.backward(retain_graph=True)
    first = {n: t.grad.numpy().tolist() for n, t in (("w", w), ("b", b), ("s", s))}
    loss.backward()                               # again, through the retained graph
    out = {"first": first, "second": {n: t.grad.numpy().tolist() for n, t in
           (("w", w), ("b", b), ("s", s))}, "hook": seen, "dtype": str(s.grad.dtype),
           "accel": engine._accel is not None}
    json.dump(out, sys.stdout)
""")


def _run(pure: bool) -> dict:
    env = dict(os.environ, BACKPROP_PURE_PYTHON="1" if pure else "0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_both_engines_give_identical_gradients():
    accelerated, pure = _run(False), _run(True)
    assert pure["accel"] is False
    if not accelerated["accel"]:
        pytest.skip("the C accelerator is not built here")
    for key in ("first", "second", "hook", "dtype"):
        assert accelerated[key] == pure[key], key  # bit for bit: the same arithmetic
    # and the second backward accumulated onto the first
    assert np.allclose(np.array(pure["second"]["w"]), 2 * np.array(pure["first"]["w"]))
    assert pure["dtype"] == "backprop.float32"


def test_build_of_another_source_is_refused(monkeypatch):
    """An in-place build of an older _cengine.c (another SHA-256) is never used."""
    if engine._accel is None:
        pytest.skip("the C accelerator is not built here")
    assert engine._same_source(engine._accel)
    monkeypatch.setattr(engine._accel, "SOURCE_SHA256", "0" * 64)
    with pytest.warns(RuntimeWarning, match="stale build"):
        module, line = engine._load_accelerator()
    assert module is None and "stale" in line


def test_stale_build_is_refused(monkeypatch):
    """A build of an older _cengine.c (another API_VERSION) is never used."""
    if engine._accel is None:
        pytest.skip("the C accelerator is not built here")
    monkeypatch.setattr(engine._accel, "API_VERSION", engine._CENGINE_API + 1)
    with pytest.warns(RuntimeWarning, match="stale build"):
        module, line = engine._load_accelerator()
    assert module is None and "stale" in line


def test_a_node_read_as_python_reads_it():
    """What the Python loop accepts, the C walk accepts: needs_input_grad as a list, and an
    uninitialised tensor fails with Python's own AttributeError on both paths."""
    from backprop.autograd import Function

    class Twice(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.needs_input_grad = list(ctx.needs_input_grad)
            return a * 2.0

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 2.0

    x = backprop.ones(2, requires_grad=True)
    Twice.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    blank = backprop.Tensor.__new__(backprop.Tensor)
    with pytest.raises(AttributeError, match="_data|_requires_grad"):
        Twice.apply(blank)
