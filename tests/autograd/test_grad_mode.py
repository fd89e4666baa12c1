"""no_grad, enable_grad, set_grad_enabled: context managers, decorators, nesting, threads."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import backprop
from backprop import enable_grad, is_grad_enabled, no_grad, set_grad_enabled


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    assert is_grad_enabled()
    yield
    enabled = is_grad_enabled()
    set_grad_enabled(True)
    assert enabled, "a test left grad mode switched off"


def leaf():
    return backprop.tensor([1.0, 2.0], dtype=backprop.float64, requires_grad=True)


def test_no_grad_context_manager():
    x = leaf()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    z = x * 2.0
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_restores_on_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled()


def test_no_grad_decorator():
    x = leaf()

    @no_grad()
    def double(t):
        """Docs survive."""
        assert not is_grad_enabled()
        return t * 2.0

    y = double(x)
    assert not y.requires_grad
    assert is_grad_enabled()
    assert double.__name__ == "double" and double.__doc__ == "Docs survive."


def test_no_grad_bare_decorator(oracle):
    @oracle.no_grad
    def f_torch(t):
        return t * 2

    assert not f_torch(oracle.ones(1, requires_grad=True)).requires_grad

    @no_grad
    def f(t):
        return t * 2.0

    assert not f(leaf()).requires_grad


def test_decorated_function_can_be_called_repeatedly_and_recursively():
    @no_grad()
    def depth(n):
        assert not is_grad_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert depth(2) == 2
    assert is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = leaf()
    with no_grad():
        with enable_grad():
            assert is_grad_enabled()
            y = x * 2.0
        assert not is_grad_enabled()
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_enable_grad_decorator():
    @enable_grad()
    def f():
        return is_grad_enabled()

    with no_grad():
        assert f() is True
        assert not is_grad_enabled()


def test_nesting_restores_each_level():
    states = []
    with no_grad():
        states.append(is_grad_enabled())
        with enable_grad():
            states.append(is_grad_enabled())
            with no_grad():
                states.append(is_grad_enabled())
                with set_grad_enabled(True):
                    states.append(is_grad_enabled())
                states.append(is_grad_enabled())
            states.append(is_grad_enabled())
        states.append(is_grad_enabled())
    states.append(is_grad_enabled())
    assert states == [False, True, False, True, False, True, False, True]


def test_set_grad_enabled_plain_call():
    x = leaf()
    set_grad_enabled(False)
    try:
        assert not is_grad_enabled()
        assert not (x * 2.0).requires_grad
    finally:
        set_grad_enabled(True)
    assert is_grad_enabled()
    assert (x * 2.0).requires_grad


@pytest.mark.parametrize("mode", [True, False])
def test_set_grad_enabled_context_manager(mode):
    x = leaf()
    with no_grad():
        with set_grad_enabled(mode):
            assert is_grad_enabled() is mode
            y = x * 2.0
        assert not is_grad_enabled()
    assert y.requires_grad is mode
    with set_grad_enabled(mode):
        assert is_grad_enabled() is mode
    assert is_grad_enabled()


def test_set_grad_enabled_decorator_has_no_effect_until_called():
    @set_grad_enabled(False)
    def f():
        return is_grad_enabled()

    assert is_grad_enabled()  # decorating did not switch recording off
    assert f() is False
    assert is_grad_enabled()
    assert f() is False


def test_set_grad_enabled_rejects_non_bool(oracle):
    with pytest.raises(TypeError):
        oracle.set_grad_enabled(1)
    with pytest.raises(TypeError):
        set_grad_enabled(1)
    assert is_grad_enabled()


def test_creation_with_requires_grad_under_no_grad():
    with no_grad():
        w = backprop.zeros(3, requires_grad=True)
    assert w.requires_grad and w.is_leaf  # as in PyTorch: only op results stop recording


def test_public_aliases():
    assert backprop.autograd.no_grad is no_grad
    assert backprop.autograd.enable_grad is enable_grad
    assert backprop.autograd.set_grad_enabled is set_grad_enabled
    assert backprop.autograd.is_grad_enabled is is_grad_enabled


def test_no_grad_in_one_thread_does_not_affect_another():
    entered, done = threading.Event(), threading.Event()
    seen = {}

    def evaluator():
        with no_grad():
            entered.set()
            done.wait(60)
            seen["evaluator"] = is_grad_enabled()

    t = threading.Thread(target=evaluator)
    t.start()
    assert entered.wait(60)
    try:
        x = leaf()
        assert is_grad_enabled()
        y = (x * x).sum()
        assert y.requires_grad
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    finally:
        done.set()
        t.join(60)
    assert not t.is_alive() and seen["evaluator"] is False


def test_new_thread_starts_with_grad_enabled():
    seen = {}

    def worker():
        x = leaf()
        seen["enabled"] = is_grad_enabled()
        seen["requires_grad"] = (x * 2.0).requires_grad

    with no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join(60)
    assert not t.is_alive() and seen == {"enabled": True, "requires_grad": True}


def test_set_grad_enabled_false_in_thread_stays_in_thread():
    def worker():
        set_grad_enabled(False)

    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert not t.is_alive() and is_grad_enabled()
