"""``skip_init``: build a module without spending time initialising its parameters."""
from __future__ import annotations

import inspect

from backprop.nn.module import Module

__all__ = ["skip_init"]


def skip_init(module_cls, *args, **kwargs):
    """Build ``module_cls(*args, **kwargs)`` whose parameters are to be overwritten anyway
    (e.g. by ``load_state_dict``), as ``torch.nn.utils.skip_init``.

    The values of the parameters are unspecified: backprop builds the module normally
    (initialisation is cheap on the CPU), which satisfies that contract. As in PyTorch
    the class must accept a ``device`` argument.

    Example::

        layer = nn.utils.skip_init(nn.Linear, 4, 2)
        layer.load_state_dict(saved)
    """
    if not (isinstance(module_cls, type) and issubclass(module_cls, Module)):
        raise RuntimeError(f"skip_init: expected a Module class, got {module_cls!r}")
    if "device" not in inspect.signature(module_cls).parameters:
        raise RuntimeError(f"skip_init: {module_cls.__name__} must accept a 'device' argument "
                           f"to be used with skip_init")
    return module_cls(*args, **kwargs)
