"""PyTorch's ``torch.cuda`` queries, answered for a CPU-only library.

So that the first lines of most PyTorch scripts run unchanged::

    device = backprop.device("cuda" if backprop.cuda.is_available() else "cpu")
    backprop.cuda.manual_seed_all(0)   # accepted, nothing to seed
"""
from backprop.tensor import DeviceError


def is_available() -> bool:
    """False: backprop computes on the CPU (its arrays are NumPy arrays)."""
    return False


def device_count() -> int:
    """0: no CUDA devices."""
    return 0


def is_initialized() -> bool:
    """False: there is no CUDA to initialise."""
    return False


def manual_seed(seed: int) -> None:
    """Accepted for compatibility; there is no CUDA generator to seed."""


def manual_seed_all(seed: int) -> None:
    """Accepted for compatibility; there is no CUDA generator to seed."""


def synchronize(device=None) -> None:
    """Nothing to wait for: every backprop op has finished when it returns.

    (PyTorch built without CUDA raises here; a no-op lets timing code run unchanged.)
    """


def empty_cache() -> None:
    """Nothing to free: backprop keeps no CUDA memory cache."""


def current_device() -> int:
    """Refused: there is no CUDA device (backprop computes on the CPU only)."""
    raise DeviceError("cuda.current_device: CUDA is not available: backprop computes on the "
                      "CPU only")


def get_device_name(device=None) -> str:
    """Refused: there is no CUDA device (backprop computes on the CPU only)."""
    raise DeviceError("cuda.get_device_name: CUDA is not available: backprop computes on the "
                      "CPU only")
