"""PyTorch's ``torch.backends`` flags, for scripts that set or query them.

backprop computes with NumPy on the CPU, so none of these backends exists here: the
queries say so, and the flags scripts commonly set (``cudnn.deterministic = True``,
``cudnn.benchmark = False``) are accepted and change nothing.

Example::

    backprop.backends.cudnn.deterministic = True
    backprop.backends.mps.is_available()   # False
"""
from backprop.backends import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
