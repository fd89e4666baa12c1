"""``backprop explain``: backpropagation step by step, vanishing gradients, the autograd graph.

    backprop explain                       # one step of the tutorials' 2-2-1 network, every value
    backprop explain --lr 0.1 --json       # the same as JSON
    backprop explain vanishing --depth 8 --activation sigmoid
    backprop explain vanishing --depth 8 --activation relu --init he
    backprop explain vanishing --depth 8 --activation sigmoid --residual
    backprop explain graph                 # the example's autograd graph as Mermaid text
    backprop explain graph --format dot
    backprop explain graph --out graph.svg # drawn by Graphviz

Parsing and printing only: :mod:`backprop.explain` does the work.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial

from backprop.cli._common import fail
from backprop.explain import GraphvizNotFound, default_example, default_graph, trace, vanishing
from backprop.explain.trace import MAX_LR
from backprop.explain.vanishing import (
    INITS,
    MAX_ACTIVATIONS,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_PARAMETERS,
    MAX_WIDTH,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``explain`` and its sub-commands ``vanishing`` and ``graph``."""
    p = subparsers.add_parser(
        "explain", help="see backpropagation: one step in full, vanishing gradients, the graph",
        description="With no sub-command: run one forward pass, one backward pass and one "
                    "gradient-descent step of the tutorials' 2-2-1 sigmoid network and print "
                    "every value in the textbook's notation, each computed by the engine.")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate of the step, 0 to {MAX_LR:,.0f} (default 0.5, the "
                        f"tutorials')")
    p.add_argument("--json", action="store_true", help="print the trace as JSON")
    p.set_defaults(run=run, what=None)
    sub = p.add_subparsers(dest="what", metavar="WHAT", parser_class=type(p))

    v = sub.add_parser(
        "vanishing", help="gradient norm of every layer of a deep MLP, one bar per layer",
        description=f"Build a deep MLP, run one backward pass on random data and print each "
                    f"layer's weight-gradient norm with a log-scale bar, and a verdict. Limits: "
                    f"depth x width^2 at most {MAX_PARAMETERS:,} weights and batch x width x "
                    f"depth at most {MAX_ACTIVATIONS:,} activation values.")
    v.add_argument("--depth", type=int, default=8, help=f"Linear layers, output included, "
                   f"2 to {MAX_DEPTH:,} (default 8)")
    v.add_argument("--activation", default="sigmoid", metavar="NAME",
                   help="sigmoid, tanh, relu, leaky_relu, gelu, elu, softplus or silu "
                        "(default sigmoid)")
    v.add_argument("--init", choices=INITS, default=None,
                   help="weight initialisation (default: nn.Linear's own)")
    v.add_argument("--residual", action="store_true", help="skip connections: x + f(W·x + b)")
    v.add_argument("--width", type=int, default=32,
                   help=f"units per layer, 1 to {MAX_WIDTH:,} (default 32)")
    v.add_argument("--batch", type=int, default=64,
                   help=f"random samples, 1 to {MAX_BATCH:,} (default 64)")
    v.add_argument("--seed", type=int, default=0, help="seed of weights and data, >= 0 "
                   "(default 0)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    g = sub.add_parser(
        "graph", help="the autograd graph of the 2-2-1 example, with gradient norms",
        description="Print the autograd graph of the tutorials' 2-2-1 example loss as "
                    "Mermaid or Graphviz DOT text, each edge labelled with the norm of the "
                    "gradient flowing back along it; or draw it with Graphviz (--out).")
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                   help="text format to print (default mermaid)")
    g.add_argument("--out", metavar="FILE",
                   help="draw the graph into FILE (.svg or .png) with Graphviz's dot")
    return p


_fail = partial(fail, "explain")
"""Print a one-line ``backprop explain: error: ...`` and return the exit status (2 by default)."""


def _print(text: str) -> None:
    """Print, degrading the notation's symbols (σ, ⊙, ᵀ) where the terminal can't show them."""
    try:
        try:
            print(text)
        except UnicodeEncodeError:
            enc = sys.stdout.encoding or "ascii"
            print(text.encode(enc, "replace").decode(enc))
        sys.stdout.flush()
    except BrokenPipeError:  # `backprop explain | head`: the reader has gone; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run(args) -> int:
    """Run ``backprop explain`` with parsed arguments; returns the exit status."""
    try:
        if args.what == "vanishing":
            result = vanishing(depth=args.depth, activation=args.activation, init=args.init,
                               residual=args.residual, width=args.width, batch=args.batch,
                               seed=args.seed)
            _print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json
                   else str(result))
            return 0
        if args.what == "graph":
            if args.out is not None and not args.out.strip():
                return _fail(f"graph --out needs a file name ending in .svg or .png, got "
                             f"{args.out!r}")
            g = default_graph()
            if args.out:
                path = g.render(args.out)
                print(f"wrote {path}")
                return 0
            _print(g.to_dot() if args.format == "dot" else g.to_mermaid())
            return 0
        model, x, y, loss_fn, lr = default_example()
        t = trace(model, x, y, loss_fn, lr=lr if args.lr is None else args.lr)
        _print(json.dumps(t.to_dict(), indent=2, ensure_ascii=False) if args.json else str(t))
        return 0
    except GraphvizNotFound as e:
        return _fail(str(e), status=1)
    except (ValueError, TypeError) as e:
        return _fail(str(e))
    except OSError as e:  # the --out file could not be written
        return _fail(str(e), status=1)
