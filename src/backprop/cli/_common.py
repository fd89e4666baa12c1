"""What every subcommand shares: the one-line error it prints before exiting."""
from __future__ import annotations

import sys

__all__ = ["fail"]


def fail(command: str, message: str, status: int = 2) -> int:
    """Print ``backprop COMMAND: error: MESSAGE`` on stderr and return ``status``.

    Usage and input errors are one line, never a traceback (status 2 by default).

    Example::

        return fail("doctor", f"{path} is not a run folder")
    """
    print(f"backprop {command}: error: {message}", file=sys.stderr)
    return status
