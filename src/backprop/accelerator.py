"""PyTorch's ``torch.accelerator`` queries, answered for a CPU-only library.

So that the device line of current PyTorch tutorials runs unchanged::

    device = (backprop.accelerator.current_accelerator().type
              if backprop.accelerator.is_available() else "cpu")
"""
from __future__ import annotations

from backprop.tensor import DeviceError


def is_available() -> bool:
    """False: backprop computes on the CPU, which is not an accelerator."""
    return False


def current_accelerator(check_available: bool = False):
    """None: there is no accelerator (PyTorch answers None too when it has none)."""
    return None


def device_count() -> int:
    """0: no accelerator devices."""
    return 0


def current_device_index() -> int:
    """Refused, as in PyTorch without an accelerator: there is no device to have an index."""
    raise DeviceError("accelerator.current_device_index: cannot access an accelerator device "
                      "when none is available (backprop computes on the CPU only)")


current_device_idx = current_device_index


def synchronize(device=None) -> None:
    """Nothing to wait for: every backprop op has finished when it returns."""


def empty_cache() -> None:
    """Nothing to free: backprop keeps no device memory cache."""
