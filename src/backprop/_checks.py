"""Argument checks that type checkers read as plain bools.

NOTE: Python registers int, float and NumPy's scalars with the ``numbers`` ABCs at run
time, but the type stubs do not: to mypy, ``isinstance(p, numbers.Real)`` is never true
of a ``p: float``, so a check such as ``if not isinstance(p, numbers.Real): raise ...``
makes the rest of the function unreachable and unchecked. Asked through these functions,
the same question gives the same answer without narrowing the argument's type.
"""
from __future__ import annotations

import numbers


def is_real(value: object) -> bool:
    """``isinstance(value, numbers.Real)``: int, float, bool, NumPy's real scalars."""
    return isinstance(value, numbers.Real)


def is_integral(value: object) -> bool:
    """``isinstance(value, numbers.Integral)``: int, bool, NumPy's integer scalars."""
    return isinstance(value, numbers.Integral)
