"""What every subcommand shares: the one-line error it prints before exiting."""
from __future__ import annotations

import sys

__all__ = ["fail", "one_line"]


def one_line(message: object) -> str:
    """``message`` on one line: line breaks (a folder named with a newline, an error that
    quotes a file's text) are shown as ``\\n`` and ``\\r``, so the error stays one line."""
    return str(message).replace("\r", "\\r").replace("\n", "\\n")


def fail(command: str, message: str, status: int = 2) -> int:
    """Print ``backprop COMMAND: error: MESSAGE`` on stderr and return ``status``.

    Usage and input errors are one line, never a traceback (status 2 by default).

    Example::

        return fail("doctor", f"{path} is not a run folder")
    """
    print(f"backprop {command}: error: {one_line(message)}", file=sys.stderr)
    return status
