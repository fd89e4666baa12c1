"""Removable handles: what every ``register_*hook`` returns."""
from __future__ import annotations


class RemovableHandle:
    """Call ``remove()`` to detach the hook; also a context manager that removes on exit.

    Example::

        handle = x.register_hook(print)
        ...
        handle.remove()
    """

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks, hook):
        self._hooks = hooks  # a list, or a dict keyed by hook id
        self._hook = hook

    def remove(self) -> None:
        hooks, self._hooks = self._hooks, None
        if hooks is None:
            return
        if isinstance(hooks, dict):
            hooks.pop(id(self._hook), None)
        else:
            for i, h in enumerate(hooks):
                if h is self._hook:
                    del hooks[i]
                    break

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
