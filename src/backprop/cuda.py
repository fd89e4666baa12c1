"""PyTorch's ``torch.cuda`` queries, answered for a CPU-only library.

So that the first lines of most PyTorch scripts run unchanged::

    device = backprop.device("cuda" if backprop.cuda.is_available() else "cpu")
"""


def is_available() -> bool:
    """False: backprop computes on the CPU (its arrays are NumPy arrays)."""
    return False


def device_count() -> int:
    return 0


def manual_seed(seed: int) -> None:
    """Accepted for compatibility; there is no CUDA generator to seed."""


def manual_seed_all(seed: int) -> None:
    """Accepted for compatibility; there is no CUDA generator to seed."""
