"""``backprop gradcheck``: check backprop's own gradients against finite differences.

    backprop gradcheck                 # every op and layer case
    backprop gradcheck --ops -k pool   # op cases whose name contains "pool"
    backprop gradcheck --layers        # the nn layers only

Prints a pass/fail table and a summary line; the exit status is 0 when every case
passes and 1 otherwise. Parsing and printing only: the checks are
:func:`backprop.diagnostics.selfcheck.run_selfcheck`.
"""
from __future__ import annotations

import argparse

from backprop.cli._common import fail
from backprop.diagnostics.selfcheck import run_selfcheck

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``gradcheck`` with its options."""
    p = subparsers.add_parser(
        "gradcheck", help="check backprop's op and layer gradients against finite differences",
        description="Gradient-check every built-in primitive and nn layer in float64: autograd "
                    "against central finite differences. Exit status 0 when all pass, 1 when "
                    "any fails.")
    p.add_argument("--ops", action="store_true", help="check the primitives (ops)")
    p.add_argument("--layers", action="store_true",
                   help="check the nn layers (input and parameter gradients)")
    p.add_argument("-k", dest="pattern", metavar="PATTERN",
                   help="only cases whose name contains PATTERN (case-insensitive; a glob "
                        "when it has *, ? or [)")
    p.add_argument("--failed-only", dest="failed_only", action="store_true",
                   help="list only the failing cases in the table")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Run ``backprop gradcheck`` with parsed arguments; returns the exit status."""
    if args.pattern is not None and not args.pattern.strip():
        # An empty pattern would match every case: a slip, not a way to ask for all of them.
        return fail("gradcheck", f"-k needs a name or pattern, got {args.pattern!r}; leave "
                                 f"-k out to check every case")
    both = not (args.ops or args.layers)  # neither flag: both kinds
    report = run_selfcheck(ops=args.ops or both, layers=args.layers or both,
                           pattern=args.pattern)
    if not len(report):
        return fail("gradcheck", f"no check matches -k {args.pattern!r}")
    print(report.table(failed_only=args.failed_only))
    return 0 if report.passed else 1
