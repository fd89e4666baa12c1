"""``torch.backends.mps``: Apple's Metal backend, which backprop does not have."""


def is_available() -> bool:
    """False: backprop computes on the CPU only."""
    return False


def is_built() -> bool:
    """False: backprop has no MPS backend."""
    return False
