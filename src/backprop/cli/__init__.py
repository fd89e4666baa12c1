"""The ``backprop`` command line: parsing and printing only; the work is in the library.

Subcommands register themselves in :data:`COMMANDS` (a module with ``add_parser`` and
``run``); ``backprop --help`` lists them::

    backprop train --dataset spiral --layers 2-16-16-3 --epochs 200 --out runs/spiral

Usage errors print one line on stderr and exit with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from backprop.cli import doctor as _doctor
from backprop.cli import explain as _explain
from backprop.cli import gradcheck as _gradcheck
from backprop.cli import lab as _lab
from backprop.cli import sweep as _sweep
from backprop.cli import train as _train
from backprop.cli._common import one_line

__all__ = ["main"]

COMMANDS = {"train": _train, "gradcheck": _gradcheck, "explain": _explain, "doctor": _doctor,
            "lab": _lab, "sweep": _sweep}
"""Subcommand name -> module with ``add_parser(subparsers)`` and ``run(args) -> int``."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``backprop train: error: ...`` and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def _get_values(self, action, arg_strings):
        # argparse drops a "--" value, so "--port=--" would give the option [] instead of
        # an error (and a TypeError later): it is a missing value.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def build_parser() -> ArgumentParser:
    """The ``backprop`` parser with every subcommand."""
    parser = ArgumentParser(
        prog="backprop",
        description="backprop: backpropagation made fast, correct and visible.")
    from backprop import __version__
    from backprop.autograd.engine import ENGINE
    from backprop.ops._kernels import KERNELS_IN

    parser.add_argument("--version", action="version",
                        version=f"backprop {__version__} (engine: {ENGINE}; "
                                f"array kernels: {KERNELS_IN})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=ArgumentParser)
    for module in COMMANDS.values():
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Run ``backprop`` with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Example::

        main(["train", "--dataset", "moons", "--epochs", "20", "--out", "runs/moons"])
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        print(f"backprop: error: choose a command: {', '.join(COMMANDS)} "
              f"(backprop --help describes them)", file=sys.stderr)
        return 2
    return args.run(args)
