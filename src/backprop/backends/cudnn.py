"""``torch.backends.cudnn``: flags a script may set; with no cuDNN here they change nothing.

backprop's results are deterministic for a given seed whatever these say.
"""

enabled = True
deterministic = False
benchmark = False
allow_tf32 = True


def is_available() -> bool:
    """False: backprop has no cuDNN."""
    return False


def version():
    """None: no cuDNN is present."""
    return None
