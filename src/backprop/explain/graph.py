"""The autograd graph behind a tensor, as data, Graphviz DOT, Mermaid, or an SVG/PNG picture.

:func:`graph` walks ``grad_fn.next_functions`` from a tensor back to the leaves (a
breadth-first loop, no recursion, so graphs of any depth work) and records every op
node, every leaf and every edge. It also attaches one-shot hooks, so that after the
next ``backward()`` each node knows the norm of the gradient that reached it::

    loss = loss_fn(model(x), y)
    g = graph(loss, params=dict(model.named_parameters()))   # before backward: it frees links
    loss.backward()                                          # the hooks fire once and go
    print(g.to_mermaid())          # edges labelled with gradient norms
    g.render("graph.svg")          # needs Graphviz's `dot`

Edges point the way the data flowed (from an op's input to the op); gradients flow
against them.
"""
from __future__ import annotations

import collections
import os
import shutil
import subprocess

import numpy as np

from backprop.errors import BackpropError
from backprop.explain import _torch
from backprop.nn.parameter import Parameter
from backprop.serialization import atomic_write
from backprop.tensor import Tensor

__all__ = ["graph", "Graph", "GraphvizNotFound", "default_graph"]

#: Formats :meth:`Graph.render` can write.
FORMATS = ("svg", "png")

_INSTALL_HINT = ("Install Graphviz (Debian/Ubuntu: sudo apt install graphviz; Fedora: sudo dnf "
                 "install graphviz; macOS: brew install graphviz; Windows: winget install "
                 "graphviz, or https://graphviz.org/download/) and make sure `dot` is on PATH; "
                 "or use Graph.to_dot() / Graph.to_mermaid(), which need nothing installed")


class GraphvizNotFound(BackpropError, RuntimeError):
    """Graphviz's ``dot`` program is not installed (or not on PATH)."""


class Graph:
    """An autograd graph as plain data (see :func:`graph`).

    Attributes (read-only views, rebuilt on access so gradient norms are current):
        nodes: dicts ``{"id", "kind", "op", "label", "shape", "name", "grad_norm"}``;
            ``kind`` is ``"op"`` (a ``grad_fn`` node; ``op`` is its Function's name, such
            as ``"MatMul"``), ``"parameter"`` (an ``nn.Parameter`` or a tensor named in
            ``params``), ``"leaf"`` (another tensor that requires grad) or ``"input"`` (a
            tensor that needs no gradient). ``shape`` is the node's output shape (a
            tuple). ``nodes[0]`` is the tensor the graph was built from.
        edges: dicts ``{"src", "dst", "index", "grad_norm"}``: ``src`` fed input number
            ``index`` of op node ``dst``.

    ``grad_norm`` is ``None`` until backward has run. On a node it is the L2 norm of the
    gradient of the loss with respect to that node's output (its total, summed over all
    the node's consumers); on an edge it is that of the edge's ``src``, the gradient that
    flows back along it (the total again where ``src`` feeds several ops).

    Example::

        g = graph(loss, params=dict(model.named_parameters()))
        loss.backward()
        print(g.to_mermaid())                   # or g.to_dot(), g.render("graph.svg")
        [e["grad_norm"] for e in g.edges][:3]
    """

    def __init__(self, nodes: list, edges: list):
        self._nodes = nodes
        self._edges = edges
        self._norms: dict = {}
        self._handles: list = []

    # -- data ------------------------------------------------------------------------
    @property
    def nodes(self) -> list:
        return [dict(n, grad_norm=self._norms.get(n["id"])) for n in self._nodes]

    @property
    def edges(self) -> list:
        return [dict(e, grad_norm=self._norms.get(e["src"])) for e in self._edges]

    @property
    def grad_norms(self) -> dict:
        """Node id -> gradient norm, for the nodes whose gradient has been seen."""
        return dict(self._norms)

    @property
    def hooks_pending(self) -> int:
        """How many of the graph's hooks have not fired (nor been detached) yet."""
        return sum(1 for h in self._handles if h._hooks is not None)

    def detach_hooks(self) -> None:
        """Remove every hook that has not fired yet (they also remove themselves on firing)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def to_dict(self) -> dict:
        """``{"nodes": [...], "edges": [...]}`` as plain data (shapes as lists)."""
        return {"nodes": [dict(n, shape=None if n["shape"] is None else list(n["shape"]))
                          for n in self.nodes],
                "edges": self.edges}

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        ops = sum(1 for n in self._nodes if n["kind"] == "op")
        return f"<Graph: {len(self._nodes)} nodes ({ops} ops), {len(self._edges)} edges>"

    # -- text formats ----------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT text: ops as boxes, parameters and leaves as ellipses, inputs dashed."""
        styles = {
            "op": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
            "parameter": 'shape=ellipse, style=filled, fillcolor="#fde68a"',
            "leaf": 'shape=ellipse, style=filled, fillcolor="#e5e7eb"',
            "input": 'shape=ellipse, style=dashed',
        }
        lines = ["digraph autograd {", "  rankdir=TB;",
                 '  node [fontname="Helvetica", fontsize=11];',
                 '  edge [fontname="Helvetica", fontsize=9];']
        for i, n in enumerate(self.nodes):
            extra = ", penwidth=2" if i == 0 else ""
            lines.append(f'  {n["id"]} [label="{_dot_escape(_label(n))}", '
                         f'{styles[n["kind"]]}{extra}];')
        for e in self.edges:
            label = "" if e["grad_norm"] is None else \
                f' [label="{_dot_escape(_norm_text(e["grad_norm"]))}"]'
            lines.append(f'  {e["src"]} -> {e["dst"]}{label};')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """Mermaid flowchart text (renders on GitHub and in many Markdown viewers)."""
        shapes = {"op": ('["', '"]'), "parameter": ('(["', '"])'), "leaf": ('(["', '"])'),
                  "input": ('>"', '"]')}
        lines = ["flowchart TB"]
        for n in self.nodes:
            open_, close = shapes[n["kind"]]
            text = _mermaid_escape(_label(n)).replace("\n", "<br/>")
            lines.append(f"  {n['id']}{open_}{text}{close}")
        for e in self.edges:
            if e["grad_norm"] is None:
                lines.append(f"  {e['src']} --> {e['dst']}")
            else:
                lines.append(f"  {e['src']} -->|\"{_mermaid_escape(_norm_text(e['grad_norm']))}\"| "
                             f"{e['dst']}")
        lines += ["  classDef op fill:#dbeafe,stroke:#1e3a8a",
                  "  classDef parameter fill:#fde68a,stroke:#92400e",
                  "  classDef leaf fill:#e5e7eb,stroke:#374151",
                  "  classDef input fill:#ffffff,stroke:#6b7280,stroke-dasharray:4"]
        by_kind: dict = collections.defaultdict(list)
        for n in self._nodes:
            by_kind[n["kind"]].append(n["id"])
        for kind, ids in by_kind.items():
            lines.append(f"  class {','.join(ids)} {kind}")
        return "\n".join(lines) + "\n"

    # -- pictures --------------------------------------------------------------------
    def render(self, path, format: str | None = None) -> str:
        """Draw the graph with Graphviz's ``dot`` into ``path`` (SVG or PNG); returns the path.

        Args:
            path: the file to write (replaced atomically: a failure leaves no partial file).
            format: ``"svg"`` or ``"png"``; by default taken from ``path``'s suffix (SVG
                when it has none).

        Raises GraphvizNotFound, saying how to install Graphviz, when ``dot`` is missing,
        and ValueError for a format (or a suffix, when no format is given) other than
        SVG or PNG.

        Example::

            g.render("graph.png")               # PNG, from the suffix
            g.render("graph", format="svg")
        """
        path = os.fspath(path)
        if format is None:
            suffix = os.path.splitext(path)[1].lstrip(".").lower()
            if suffix and suffix not in FORMATS:
                # Writing SVG into "graph.pdf" would give a file no viewer opens as a PDF.
                raise ValueError(f"Graph.render: cannot draw {path!r}: the suffix .{suffix} is "
                                 f"not one of {', '.join('.' + f for f in FORMATS)}; rename "
                                 f"the file or pass format=")
            format = suffix or "svg"
        if format not in FORMATS:
            raise ValueError(f"Graph.render: format must be one of {', '.join(FORMATS)}, got "
                             f"{format!r}")
        exe = shutil.which("dot")
        if exe is None:
            raise GraphvizNotFound(f"Graph.render: Graphviz's `dot` program was not found. "
                                   f"{_INSTALL_HINT}.")
        try:
            done = subprocess.run([exe, f"-T{format}"], input=self.to_dot().encode("utf-8"),
                                  capture_output=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError("Graph.render: `dot` did not finish within 120 s; the graph "
                               "may be too large to draw (to_dot() still works)") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()
            raise RuntimeError(f"Graph.render: `dot -T{format}` failed with status "
                               f"{done.returncode}: {err}")
        atomic_write(path, lambda fh: fh.write(done.stdout), fn="Graph.render")
        return path


def graph(tensor: Tensor, params: dict | None = None, *, hooks: bool = True,
          inputs: bool = True) -> Graph:
    """Capture the autograd graph behind ``tensor``, before ``backward()`` frees it.

    Args:
        tensor: the output (usually the loss).
        params: names for leaf tensors, e.g. ``dict(model.named_parameters())``; a named
            tensor that requires grad is drawn as a parameter, one that does not (the data,
            ``{"x": x, "y": y}``) as a named input.
        hooks: attach one-shot hooks so the next backward records gradient norms on every
            node and edge; each hook removes itself when it fires
            (:meth:`Graph.detach_hooks` removes those that never fire).
        inputs: include tensors that need no gradient (the data) as ``"input"`` nodes.

    The walk is breadth-first from ``tensor``, iterative (no recursion limit), and
    deterministic: node ids ``n0, n1, ...`` are given in the order nodes are found.

    A ``torch.Tensor`` works too: the walk follows PyTorch's ``grad_fn.next_functions``,
    op nodes carry PyTorch's names (``"AddmmBackward0"``), each ``AccumulateGrad`` is
    drawn as its leaf (``op`` is ``"AccumulateGrad"``, the name comes from ``params``),
    and the norms come from PyTorch hooks, reduced on the tensor's device. PyTorch's
    graph does not hold tensors that need no gradient, so there are no ``"input"`` nodes
    (``inputs`` has no effect).

    Example::

        x = backprop.tensor([0.5, 0.8])
        W = backprop.tensor([[0.15, 0.25], [0.2, 0.3]], requires_grad=True)
        loss = backprop.sigmoid(W @ x).sum()
        g = graph(loss, params={"W": W})
        loss.backward()
        [n["op"] for n in g.nodes if n["kind"] == "op"]   # ['Sum', 'Sigmoid', 'MatMul']
    """
    if _torch.is_torch_object(tensor) and not isinstance(tensor, Tensor):
        return _torch_graph(tensor, params, hooks)
    if not isinstance(tensor, Tensor):
        raise TypeError(f"graph: expected a Tensor, got {type(tensor).__name__}")
    if not tensor.requires_grad:
        raise ValueError("graph: this tensor does not require grad, so there is no autograd "
                         "graph behind it (was it computed under no_grad, or from tensors "
                         "without requires_grad=True?)")
    names = {}
    for key, p in (params or {}).items():
        if not isinstance(p, Tensor):
            raise TypeError(f"graph: params[{key!r}] is a {type(p).__name__}, not a Tensor")
        names[id(p)] = str(key)

    nodes: list = []
    edges: list = []
    ids: dict = {}      # id(node or leaf) -> node id; the objects stay alive during the walk
    objects: list = []  # node id index -> the node or leaf, for attaching hooks afterwards

    def add(obj, shape) -> str:
        nid = f"n{len(nodes)}"
        ids[id(obj)] = nid
        objects.append(obj)
        if isinstance(obj, Tensor):
            # A named tensor that needs no gradient is still data (an input or a target).
            kind = "input" if not obj.requires_grad else \
                ("parameter" if isinstance(obj, Parameter) or id(obj) in names else "leaf")
            nodes.append({"id": nid, "kind": kind, "op": None, "shape": shape,
                          "name": names.get(id(obj)), "requires_grad": obj.requires_grad})
        else:
            nodes.append({"id": nid, "kind": "op", "op": obj.op.__name__, "shape": shape,
                          "name": None, "requires_grad": True})
        return nid

    root = tensor.grad_fn if tensor.grad_fn is not None else tensor
    add(root, tuple(tensor.shape))
    queue = collections.deque([root])
    while queue:
        fn = queue.popleft()
        if isinstance(fn, Tensor):
            continue  # a leaf: nothing behind it
        links = getattr(fn, "inputs", None)
        if links is None:
            raise ValueError(f"graph: the graph behind this tensor was freed by backward() (at "
                             f"{fn.name()}); call graph(loss) before loss.backward(), or pass "
                             f"retain_graph=True to backward")
        dst = ids[id(fn)]
        for index, t in enumerate(links):
            if t is None:
                continue  # a plain number, not a tensor
            child = t.grad_fn if t.grad_fn is not None else t
            if child is t and not t.requires_grad and not inputs:
                continue
            if id(child) not in ids:
                add(child, tuple(t.shape))
                queue.append(child)
            edges.append({"src": ids[id(child)], "dst": dst, "index": index})

    g = Graph(nodes, edges)
    if hooks:
        for obj, node in zip(objects, nodes, strict=True):
            if node["requires_grad"]:
                g._handles.append(_attach(obj, node["id"], g._norms))
    return g


def _torch_graph(tensor, params, hooks: bool) -> Graph:
    """:func:`graph` for a ``torch.Tensor``: the walk and the hooks are in ``_torch``."""
    nodes, edges, objects = _torch.walk_graph(tensor, params, hooks)
    g = Graph(nodes, edges)
    if hooks:
        g._handles = [_torch.attach(obj, n["id"], g._norms)
                      for obj, n in zip(objects, nodes, strict=True)]
    return g


def default_graph() -> Graph:
    """The graph of the tutorials' 2-2-1 example loss, after backward (norms on the edges).

    Example::

        print(default_graph().to_mermaid())
    """
    from backprop.explain.trace import default_example

    model, x, y, loss_fn, _ = default_example()
    loss = loss_fn(model(x), y)
    g = graph(loss, params={**dict(model.named_parameters()), "x": x, "y (target)": y})
    loss.backward()
    return g


# -- helpers -----------------------------------------------------------------------------
def _attach(obj, nid: str, norms: dict):
    """A hook on a node or leaf that records the incoming gradient's norm, then removes itself."""
    holder: list = []

    def hook(grad):
        norms[nid] = float(np.sqrt(np.sum(np.square(grad._data, dtype=np.float64))))
        if holder:
            holder[0].remove()

    handle = obj.register_hook(hook)
    holder.append(handle)
    return handle


def _label(n: dict) -> str:
    shape = "scalar" if n["shape"] == () else \
        ("?" if n["shape"] is None else "×".join(str(s) for s in n["shape"]))
    if n["kind"] == "op":
        return f"{n['op']}\n{shape}"
    title = n["name"] or {"parameter": "parameter", "leaf": "leaf (requires grad)",
                          "input": "input"}[n["kind"]]
    return f"{title}\n{shape}"


def _norm_text(v: float) -> str:
    return f"grad {v:.3g}"


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid_escape(s: str) -> str:
    return (s.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))
