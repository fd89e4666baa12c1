"""Switching gradient recording on and off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

The flag is per thread (as in PyTorch), so a lab session evaluating under
``no_grad`` in one thread never stops another thread's training from recording.
"""
from __future__ import annotations

import functools
import inspect
import threading


class _State(threading.local):
    def __init__(self):
        self.enabled = True  # record graphs? (per thread)


class _AnomalyState:
    """Anomaly detection is process-wide, as in PyTorch."""

    __slots__ = ("enabled",)

    def __init__(self):
        self.enabled = False  # check every op for NaN/Inf?


state = _State()
anomaly_state = _AnomalyState()


def is_grad_enabled() -> bool:
    """True when new operations are being recorded for backward."""
    return state.enabled


class _GradModeContext:
    """Shared machinery: context manager and decorator that sets the flag and restores it."""

    _target: bool

    def __enter__(self):
        self._prev = state.enabled
        state.enabled = self._target
        return self

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            # The mode must hold while the generator's body runs, at every resume,
            # not just while the generator object is created.
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                gen = fn(*args, **kwargs)
                value = None
                while True:
                    try:
                        with self.__class__._clone(self):
                            item = gen.send(value)
                    except StopIteration as stop:
                        return stop.value
                    value = yield item

            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__._clone(self):
                return fn(*args, **kwargs)

        return wrapper

    def _clone(self):
        return self.__class__()


class _BareDecoratorMixin:
    """Allow ``@no_grad`` as well as ``@no_grad()``, as PyTorch 2 does."""

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        if not callable(func):
            raise TypeError(f"{cls.__name__}() takes no arguments, got {func!r}")
        return self(func)


class no_grad(_BareDecoratorMixin, _GradModeContext):
    """Context manager and decorator: operations inside record no graph.

    Example::

        with backprop.no_grad():
            y = model(x)        # y.requires_grad is False

        @backprop.no_grad
        def evaluate(model, x): ...
    """

    _target = False

    def __init__(self, func=None):
        pass


class enable_grad(_BareDecoratorMixin, _GradModeContext):
    """Context manager and decorator: turn recording back on inside ``no_grad``."""

    _target = True

    def __init__(self, func=None):
        pass


class set_grad_enabled(_GradModeContext):
    """Set recording on or off. Works as a plain call, a context manager or a decorator.

    Example::

        set_grad_enabled(False)   # off from here on
        with set_grad_enabled(is_train):
            ...
    """

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
        self._target = mode
        self._prev = state.enabled
        state.enabled = mode  # a plain call takes effect at once, as in PyTorch

    def __enter__(self):
        # The flag was set in __init__; remember the value from before that call.
        return self

    def __call__(self, fn):
        state.enabled = self._prev  # used as a decorator: undo the immediate effect of __init__
        return super().__call__(fn)

    def _clone(self):
        clone = object.__new__(set_grad_enabled)
        clone._target = self._target
        clone._prev = state.enabled
        state.enabled = clone._target
        return clone


class inference_mode(_GradModeContext):
    """PyTorch's ``inference_mode``: here the same as ``no_grad`` (when ``mode`` is True).

    Example::

        with backprop.inference_mode():
            y = model(x)
    """

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode):  # used bare, as @inference_mode
            self._target = False
            return self(mode)
        return self

    def __init__(self, mode=True):
        if not callable(mode):
            self._target = not bool(mode)

    def _clone(self):
        clone = object.__new__(inference_mode)
        clone._target = self._target
        return clone
