"""The C array kernels of ``_ckernels.c``, or None: then the ops run their NumPy code.

The kernels are optional, as the engine's accelerator is: ``KERNELS`` is None when they
were not built (no C compiler at install time), when BACKPROP_PURE_PYTHON=1 asks for the
reference code, or when the build is stale. The NumPy code beside each use is the
reference, and each kernel gives its bits (``tests/ops/test_ckernels.py``). Ops call a
kernel only for C-contiguous float32/float64 NumPy arrays; anything else (another dtype,
a strided view, another array library) takes the NumPy code. The optimizers' steps
(``optim/sgd.py``, ``optim/adam.py``) and the Monitor's passes over gradients, weights and
layer outputs (``diagnostics/_layout.py``) use them the same way.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from backprop.autograd.engine import _same_source, pure_python_requested

#: the interface of _ckernels.c this file was written for
_API = 5

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _load() -> tuple:
    """(the kernels' module or None, which code the array kernels run, in words)."""
    if pure_python_requested():
        return None, "NumPy (BACKPROP_PURE_PYTHON is set)"
    try:
        from backprop.ops import _ckernels  # type: ignore[attr-defined]  # optional build
    except ImportError:
        return None, "NumPy (the C kernels are not built)"
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ckernels.c")
    if getattr(_ckernels, "API_VERSION", None) != _API or not _same_source(_ckernels, source):
        warnings.warn(f"backprop: ignoring a stale build of the C array kernels "
                      f"({_ckernels.__file__}); reinstall backprop (pip install -e .) to "
                      f"rebuild them", RuntimeWarning, stacklevel=2)
        return None, "NumPy (a stale build of the C kernels is ignored)"
    return _ckernels, "C"


# KERNELS_IN says which code runs the array kernels: "C", or "NumPy (why)"; backprop
# --version prints it beside the engine.
KERNELS, KERNELS_IN = _load()


def usable(*arrays) -> bool:
    """Whether the kernels can take these arrays as they are: all NumPy, C-contiguous, of
    one float dtype (float32 or float64)."""
    if KERNELS is None:
        return False
    dtype = arrays[0].dtype if type(arrays[0]) is np.ndarray else None
    if dtype not in FLOATS:
        return False
    for a in arrays:  # a loop, not all() over a generator: this runs for every op call
        if type(a) is not np.ndarray or a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return True
