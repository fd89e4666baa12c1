"""PyTorch's ``torch.utils`` names: ``backprop.utils.data`` is ``backprop.data``."""
from backprop.utils import data

__all__ = ["data"]
