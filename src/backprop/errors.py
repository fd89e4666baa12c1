"""Exception classes raised by backprop.

Each subclasses the Python exception a user would naturally catch, so
``except ValueError`` still works, while ``except backprop.ShapeError`` can be
precise. Messages name the op and the shapes or values involved.
"""


class BackpropError(Exception):
    """Base class of every error raised by backprop itself."""


class ShapeError(BackpropError, ValueError):
    """Shapes that cannot be combined: matmul, broadcasting, reshape, cat, ..."""


class DTypeError(BackpropError, TypeError):
    """A dtype the op cannot take, e.g. float indices or grad on integers."""


class GradError(BackpropError, RuntimeError):
    """Misuse of autograd: backward on a non-scalar without ``gradient``,
    backward through a freed graph, gradient of a tensor that needs none."""


class InplaceError(BackpropError, RuntimeError):
    """An in-place change to a tensor that the autograd graph still needs."""


class AnomalyError(BackpropError, RuntimeError):
    """A NaN or Inf produced inside ``detect_anomaly()``."""


class GradcheckError(BackpropError, AssertionError):
    """Analytic and finite-difference gradients disagree."""


class IndexOutOfRange(BackpropError, IndexError):
    """An index beyond the size of the dimension it indexes."""


class DeviceError(BackpropError, ValueError, RuntimeError):
    """A tensor or module asked to live on a device other than the CPU (backprop computes
    on the CPU only).

    A ValueError (as backprop always raised) and a RuntimeError (what PyTorch raises when a
    device is missing), so either ``except`` catches it.
    """


def shorten(value, most: int = 60) -> str:
    """``repr(value)`` cut to about ``most`` characters, to quote a bad value in an error."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit on str()
        return f"an integer of {value.bit_length():,} bits"
    return text if len(text) <= most else f"{text[:most - 5]}...{text[-2:]}"
