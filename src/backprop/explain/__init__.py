"""Seeing backpropagation: the step-by-step trace, the blame table, vanishing gradients, the graph.

- :func:`trace` runs one forward/backward pass and one gradient-descent step of a small
  network and prints every value in the textbook's notation (``backprop explain``).
- :func:`blame`: each parameter's gradient, its share of the total, and the next change.
- :func:`vanishing`: per-layer gradient norms of a deep network, one bar per layer.
- :func:`graph`: the autograd graph behind a tensor as data, DOT, Mermaid or SVG/PNG.

Example::

    from backprop.explain import default_example, trace
    print(trace(*default_example()))
"""
from backprop.explain.blame import BlameRow, BlameTable, blame
from backprop.explain.graph import Graph, GraphvizNotFound, default_graph, graph
from backprop.explain.trace import (
    Example,
    HalfSquaredError,
    LayerTrace,
    Trace,
    default_example,
    trace,
)
from backprop.explain.vanishing import VanishingResult, vanishing

__all__ = [
    "trace", "Trace", "LayerTrace", "default_example", "Example", "HalfSquaredError",
    "blame", "BlameTable", "BlameRow",
    "vanishing", "VanishingResult",
    "graph", "Graph", "GraphvizNotFound", "default_graph",
]
