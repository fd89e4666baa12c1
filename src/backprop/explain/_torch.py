"""The blame table and the graph export for PyTorch models: the torch-specific walking.

:func:`backprop.explain.blame` and :func:`backprop.explain.graph` call into this module
when they are handed a PyTorch object (a ``torch.nn.Module``, ``torch.optim.Optimizer``
or ``torch.Tensor``). It imports ``torch`` only then, so ``import backprop`` (and
``import backprop.explain``) never does.

- :func:`blame_arrays`: each parameter's values, gradient and next change as NumPy
  arrays, for the framework-free table in ``blame.py``. An optimizer's next change is
  measured by running its ``step()`` and putting the parameters, gradients, state and
  step hooks back afterwards.
- :func:`walk_graph`: nodes and edges of the autograd graph behind a tensor, walking
  ``grad_fn.next_functions``; ``AccumulateGrad`` leaves become parameter nodes named
  from ``params``. Gradient norms come from one-shot hooks (``Node.register_hook`` on op
  nodes, ``Tensor.register_hook`` on leaves), reduced on the tensor's device.

What PyTorch's graph does not hold, and so the export cannot show: tensors that need no
gradient (the data) are not in ``next_functions``, so a PyTorch graph has no ``"input"``
nodes. A ``torch.compile``-d model's compiled region is one opaque node
(``CompiledFunctionBackward``) with the parameters behind it; its blame rows carry the
names PyTorch gives them there (``_orig_mod.0.weight``). On CUDA the graph's norms are
reduced on the device (one number copied back per node); the blame table copies each
parameter and gradient to the CPU, since its rows hold them as arrays.

Example::

    import torch
    from backprop.explain import blame, graph

    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model(torch.randn(8, 2)).pow(2).mean()
    g = graph(loss, params=dict(model.named_parameters()))
    loss.backward()
    print(blame(model, optimizer=opt))
    print(g.to_mermaid())
"""
from __future__ import annotations

import collections
import copy
import math

import numpy as np

__all__ = ["is_torch_object", "blame_arrays", "walk_graph"]


def is_torch_object(obj) -> bool:
    """Whether ``obj``'s class is, or derives from, a class defined in ``torch``.

    Reads class names only, so it never imports torch.
    """
    try:
        mro = type(obj).__mro__
    except AttributeError:
        return False
    return any((getattr(c, "__module__", "") or "").split(".")[0] == "torch" for c in mro)


def _torch():
    import torch  # only reached with a torch object in hand, so torch is installed

    return torch


def _to_numpy(t) -> np.ndarray:
    """A CPU NumPy copy of a tensor (bfloat16 and friends widened to float32 first)."""
    torch = _torch()
    t = t.detach()
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.float()
    return t.cpu().numpy().copy()


# -- blame -------------------------------------------------------------------------------
def named_parameters(model) -> list:
    """``(name, tensor)`` pairs of a ``torch.nn.Module`` or an iterable of such pairs."""
    from backprop.explain.blame import named_pairs  # (blame imports this module lazily too)

    torch = _torch()
    return named_pairs(model, torch.nn.Module, torch.Tensor, prefix="torch.")


def blame_arrays(model, lr, optimizer) -> tuple[list, list]:
    """``([(name, weight, grad | None)], [update | None])`` as NumPy arrays, for ``blame``.

    ``update`` is ``-lr·grad`` with ``lr``, the change measured by running ``optimizer``'s
    step with an optimizer, and ``None`` with neither.
    """
    torch = _torch()
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"blame: a PyTorch model needs a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    named = named_parameters(model)
    if all(p.grad is None for _, p in named):
        raise ValueError("blame: no parameter has a gradient; call loss.backward() first")
    arrays = [(n, _to_numpy(p), None if p.grad is None else _to_numpy(p.grad))
              for n, p in named]
    if optimizer is not None:
        updates = _measure_step(optimizer, [p for _, p in named])
    elif lr is not None:
        updates = [None if g is None else -lr * g for _, _, g in arrays]
    else:
        updates = [None] * len(arrays)
    return arrays, updates


def _measure_step(optimizer, params: list) -> list:
    """Run ``optimizer.step()`` once, return each param's change, and undo everything.

    Saved and restored: the values and gradients of every parameter the optimizer holds
    (copied back in place, so the tensors are the same objects), and the optimizer's
    state and group options (through ``state_dict``/``load_state_dict``). Its step hooks
    (a Monitor's, say) are set aside while the measuring step runs, so they never see a
    step that did not happen.
    """
    torch = _torch()
    opt_params = [p for group in optimizer.param_groups for p in group["params"]]
    with torch.no_grad():
        saved = [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
                 for p in opt_params]
    state = copy.deepcopy(optimizer.state_dict())
    hook_attrs = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks")
    hooks = {a: getattr(optimizer, a) for a in hook_attrs if hasattr(optimizer, a)}
    for a in hooks:
        setattr(optimizer, a, collections.OrderedDict())
    after = {}
    try:
        optimizer.step()
        for p in opt_params:
            after[id(p)] = _to_numpy(p)
    finally:
        for a, h in hooks.items():
            setattr(optimizer, a, h)
        with torch.no_grad():
            for p, value, grad in saved:
                p.copy_(value)
                if grad is None:
                    p.grad = None
                elif p.grad is None:
                    p.grad = grad
                else:
                    p.grad.copy_(grad)
        # load_state_dict rebuilds the state from the copy, dropping state the measuring
        # step created lazily (Adam's moments on its first step).
        optimizer.load_state_dict(state)
    # An optimizer skips parameters without a gradient (their change is zero);
    # parameters it does not hold get None.
    return [after[id(p)] - _to_numpy(p) if id(p) in after else None for p in params]


# -- graph -------------------------------------------------------------------------------
class _Handle:
    """A torch hook handle with the interface :class:`~backprop.explain.graph.Graph` uses:
    ``remove()``, and ``_hooks`` that is ``None`` once the hook fired or was removed."""

    def __init__(self):
        self._torch_handle = None
        self._hooks = True

    def remove(self) -> None:
        if self._torch_handle is not None:
            self._torch_handle.remove()
            self._torch_handle = None
        self._hooks = None


def _grad_norm(grads) -> float | None:
    """L2 norm of all the given gradients together, reduced on their device."""
    torch = _torch()
    total = None
    for g in grads:
        if g is None:
            continue
        s = torch.sum(torch.square(g.detach().to(torch.float64)))
        total = s if total is None else total + s
    return None if total is None else math.sqrt(float(total))


def walk_graph(tensor, params: dict | None, hooks: bool) -> tuple[list, list, list]:
    """``(nodes, edges, objects)`` of the autograd graph behind a torch tensor, in the
    node schema of :class:`~backprop.explain.graph.Graph`; ``objects[i]`` is the Node or
    leaf tensor of ``nodes[i]``, for :func:`attach`. With ``hooks`` false nothing differs
    here (the caller attaches the hooks).
    """
    torch = _torch()
    if not tensor.requires_grad:
        raise ValueError("graph: this tensor does not require grad, so there is no autograd "
                         "graph behind it (was it computed under torch.no_grad(), or from "
                         "tensors without requires_grad=True?)")
    names = {}
    for key, p in (params or {}).items():
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"graph: params[{key!r}] is a {type(p).__name__}, not a "
                            f"torch.Tensor")
        names[id(p)] = str(key)

    nodes: list = []
    edges: list = []
    ids: dict = {}      # id(node or leaf tensor) -> node id; all stay alive during the walk
    objects: list = []  # node id index -> the Node or leaf tensor, for the hooks

    def add(obj, shape) -> str:
        nid = f"n{len(nodes)}"
        ids[id(obj)] = nid
        objects.append(obj)
        if isinstance(obj, torch.Tensor):
            # PyTorch's AccumulateGrad node stands for the leaf; it is drawn as the leaf.
            kind = "parameter" if isinstance(obj, torch.nn.Parameter) or id(obj) in names \
                else "leaf"
            nodes.append({"id": nid, "kind": kind, "op": "AccumulateGrad", "shape": shape,
                          "name": names.get(id(obj)), "requires_grad": True})
        else:
            nodes.append({"id": nid, "kind": "op", "op": type(obj).__name__, "shape": shape,
                          "name": None, "requires_grad": True})
        return nid

    def node_shape(fn):
        meta = getattr(fn, "_input_metadata", None)  # the shapes of the node's outputs
        try:
            return tuple(meta[0].shape) if meta else None
        except (AttributeError, IndexError, TypeError):
            return None

    def leaf_or_node(fn):
        var = getattr(fn, "variable", None)  # AccumulateGrad holds its leaf tensor
        return var if isinstance(var, torch.Tensor) else fn

    root = tensor.grad_fn if tensor.grad_fn is not None else tensor
    add(root, tuple(tensor.shape))
    queue = collections.deque([root])
    while queue:
        fn = queue.popleft()
        if isinstance(fn, torch.Tensor):
            continue  # a leaf: nothing behind it
        dst = ids[id(fn)]
        for index, (child_fn, _) in enumerate(fn.next_functions):
            if child_fn is None:
                continue  # an input that needs no gradient
            child = leaf_or_node(child_fn)
            if id(child) not in ids:
                add(child, tuple(child.shape) if isinstance(child, torch.Tensor)
                    else node_shape(child))
                queue.append(child)
            edges.append({"src": ids[id(child)], "dst": dst, "index": index})
    return nodes, edges, objects


def attach(obj, nid: str, norms: dict) -> _Handle:
    """A one-shot hook on a torch Node or leaf tensor recording the norm of the gradient
    with respect to its output; it removes itself when it fires."""
    torch = _torch()
    handle = _Handle()

    def fired(value):
        if handle._hooks is None:
            return
        if value is not None:
            norms[nid] = value
        handle.remove()

    if isinstance(obj, torch.Tensor):
        def tensor_hook(grad):
            fired(_grad_norm([grad]))
        handle._torch_handle = obj.register_hook(tensor_hook)
    else:
        def node_hook(grad_inputs, grad_outputs):
            fired(_grad_norm(grad_outputs))
        handle._torch_handle = obj.register_hook(node_hook)
    return handle
