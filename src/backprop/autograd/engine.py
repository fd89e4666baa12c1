"""The backward pass: walk the graph in reverse topological order, applying the chain rule.

No recursion anywhere: nodes are numbered as they are recorded, and a node's
inputs always have smaller numbers than the node. Backward pops nodes from a heap
in descending number, so a node runs only after every node that feeds it a
gradient has run: once, with the sum of everything flowing into it, in an order
that is deterministic. (HIPS autograd counts parents instead; PyTorch, like us,
orders by sequence number.)
"""
from __future__ import annotations

import os
from heapq import heappop, heappush

import numpy as np

from backprop.autograd.grad_mode import anomaly_state
from backprop.errors import AnomalyError, GradError, InplaceError, ShapeError
from backprop.tensor import Tensor, _make, inplace_log, last_inplace, last_write, touches


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, to get ``shape``.

    The one place where broadcasting is undone: ops return gradients in the
    broadcast shape and the engine reduces them here.
    """
    gshape = grad.shape
    if gshape == shape:
        return grad
    axes = _UNBROADCAST_AXES.get((gshape, shape))
    if axes is None:
        lead = len(gshape) - len(shape)
        if lead < 0 or any(s != 1 and s != g for s, g in zip(shape, gshape[lead:], strict=True)):
            raise ShapeError(f"unbroadcast: a gradient of shape {gshape} can't be summed to "
                             f"shape {shape}")
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                          if s == 1 and gshape[lead + i] != 1)
        if len(_UNBROADCAST_AXES) < 4096:  # a training loop sees the same few shapes
            _UNBROADCAST_AXES[(gshape, shape)] = axes
    if axes:
        if axes[-1] < len(gshape) - len(shape):
            # Only the leading axes that broadcasting added (a bias): the sum already has
            # the input's shape, and is a new array the engine can keep without a copy.
            out = np.add.reduce(grad, axis=axes)
            return out if type(out) is np.ndarray else np.asarray(out)
        grad = np.add.reduce(grad, axis=axes, keepdims=True)
    return grad.reshape(shape)


_UNBROADCAST_AXES: dict = {}


def _check_versions(fn) -> None:
    """Raise if an array that backward needs was changed in place after the op ran.

    Checked through the tensors themselves (``_version``) and through the log of
    arrays changed in place, which also catches changes made through an alias
    such as ``x.detach().add_(1)``.
    """
    stamp = fn.seq
    saved = [s for s in fn.saved_tensors if isinstance(s, np.ndarray)]
    if not saved:
        return
    for i, t in enumerate(fn.inputs):
        if t is None or t._version <= stamp:
            continue
        if any(s is t._data for s in saved):  # (older than the log reaches, say)
            raise _inplace_error(fn, f"input {i} of shape {tuple(t.shape)}")
    owners = None
    for v, ref, bounds, region, _ in reversed(tuple(inplace_log)):  # (a snapshot)
        if v <= stamp:
            break
        owner = None if ref is None else ref()
        if owner is None and ref is not None:
            continue  # the owner is gone, so no saved array (which would keep it) shares it
        if owner is not None:
            if owners is None:
                owners = _owners(saved)
            if owners and id(owner) not in owners:
                continue
        for s in saved:
            if touches(s, owner, bounds, region):
                for i, t in enumerate(fn.inputs):
                    if t is not None and (s is t._data or np.may_share_memory(s, t._data)):
                        raise _inplace_error(fn, f"input {i} of shape {tuple(t.shape)}")
                raise _inplace_error(fn, f"an array of shape {s.shape} it saved")


def _owners(arrays) -> set:
    """The ids of the ndarrays that own the memory of ``arrays`` (the ends of their
    ``.base`` chains); empty when some array's memory is owned by no ndarray (a buffer
    another ndarray may also show), so that nothing is ruled out by owner."""
    owners = set()
    for a in arrays:
        while isinstance(a.base, np.ndarray):
            a = a.base
        if a.base is not None:
            return set()
        owners.add(id(a))
    return owners


def _parent(fn, t):
    """The node that made the value ``fn`` read from its input ``t`` (None for a leaf).

    Usually ``t.grad_fn``. But a recorded in-place write (``t[0] = 5``) gives t a new
    ``grad_fn`` whose ``_prev`` is the old one: an op recorded before the write (a
    smaller ``seq``) read the old value, so its gradient goes to the old history.
    Also refuses an input that a recorded write changed through another tensor sharing
    its memory (a view, or the view's base) after the input was made and before ``fn``
    read it: t's history does not include that write.
    """
    parent = t.grad_fn
    seq = fn.seq
    while parent is not None and parent.seq >= seq:  # (>=: y.mul_(y) reads y itself)
        parent = parent._prev
    if parent is None or t._data.base is None:
        return parent  # (an array of its own: only a write into t itself changes it)
    until = getattr(fn, "_written", seq)  # a write's own node read its inputs before it
    if written_between(t._data, parent.seq, until):
        index = next(k for k, x in enumerate(fn.inputs) if x is t)
        raise stale_error(f"{fn.name()}: input {index}", t)
    return parent


def written_between(data: np.ndarray, since: int, until: int) -> bool:
    """Whether a recorded in-place write stamped in ``(since, until)`` reached ``data``."""
    for v, ref, bounds, region, recorded in reversed(tuple(inplace_log)):
        if v <= since:
            return False
        if not recorded or v >= until:
            continue
        owner = None if ref is None else ref()
        if (owner is not None or ref is None) and touches(data, owner, bounds, region):
            return True
    return False


def stale_error(what: str, t: Tensor) -> InplaceError:
    return InplaceError(
        f"{what} of shape {tuple(t.shape)} was changed by an in-place write into another "
        f"tensor that shares its memory (a view of it, or its base) after it was made, so "
        f"its history misses that write (PyTorch replays it; backprop can't). Write through "
        f"the tensor you go on using, or take the view again after the write.")


def _inplace_error(fn, what: str) -> InplaceError:
    return InplaceError(
        f"{fn.name()}: {what} was modified by an in-place operation after it was used, "
        f"and backward needs its old value. Use an out-of-place op (x = x + 1 rather "
        f"than x.add_(1)) or clone() it first.")


def _freed_error(fn) -> GradError:
    return GradError(
        f"{fn.name()}: trying to backward through the graph a second time (or to use "
        f"its saved values after they were freed). Pass retain_graph=True to the first "
        f"backward() if you need to run backward twice.")


def _count_error(fn, n_grads: int) -> GradError:
    return GradError(f"{fn.name()}: backward returned {n_grads} gradients but forward took "
                     f"{len(fn.inputs)} positional inputs")


def _fix_grad(fn, inputs, t: Tensor, ig) -> np.ndarray:
    """``fn``'s gradient ``ig`` for input ``t`` as an array of t's shape and dtype."""
    data = t._data
    if type(ig) is not np.ndarray:
        ig = ig._data if isinstance(ig, Tensor) else np.asarray(ig)
    if ig.shape != data.shape:
        try:
            ig = unbroadcast(ig, data.shape)
        except ShapeError:
            index = next(k for k, x in enumerate(inputs) if x is t)
            raise ShapeError(f"{fn.name()}: backward returned a gradient of shape {ig.shape} "
                             f"for input {index} of shape {data.shape}") from None
    if ig.dtype != data.dtype:
        ig = ig.astype(data.dtype)
    return ig


def _anomaly_backward(fn, grads) -> None:
    from backprop.autograd.function import _user_frame

    for i, g in enumerate(grads):
        if isinstance(g, np.ndarray) and g.dtype.kind == "f" and not np.isfinite(g).all():
            bad = "NaN" if np.isnan(g).any() else "Inf"
            where = getattr(fn, "_trace", None)
            origin = (f"\nThe forward op was called at:\n{_user_frame(where)}" if where else
                      "\n(the op was recorded outside detect_anomaly, so its origin is unknown)")
            raise AnomalyError(f"detect_anomaly: {fn.name()} returned {bad} in the gradient of "
                               f"input {i} (shape {g.shape}).{origin}")


def _as_array(value, like: Tensor, what: str) -> np.ndarray:
    arr = value._data if isinstance(value, Tensor) else np.asarray(value, dtype=like._data.dtype)
    if arr.shape != like._data.shape:
        raise ShapeError(f"{what}: gradient of shape {arr.shape} does not match the output's "
                         f"shape {like._data.shape}")
    return arr


def run_backward(roots, grad_roots, retain_graph: bool = False, capture=None,
                 accumulate: bool = True):
    """Propagate ``grad_roots`` from ``roots`` back through the graph.

    roots: tensors; grad_roots: arrays of the same shapes. With ``accumulate``,
    leaf gradients are added into ``.grad``. ``capture`` (a list of tensors) asks
    for the total gradient arriving at each; they are returned in that order.

    Nodes wait in a heap of their (negated) creation numbers ``seq``. Every consumer of
    a node was recorded after it, so when the node with the largest ``seq`` is
    popped, every node that could still send it a gradient has already run: it
    runs exactly once, with the sum of all its incoming gradients.
    """
    want_nodes: dict = {}   # node -> the capture positions of the tensors it made
    want_leaves: dict = {}  # id(leaf) -> its capture positions
    captured: dict = {}
    if capture is not None:
        for i, t in enumerate(capture):
            if t.grad_fn is not None:
                want_nodes.setdefault(t.grad_fn, []).append(i)
            else:
                want_leaves.setdefault(id(t), []).append(i)

    grads: dict = {}   # node -> sum of the gradients delivered to its output so far
    sums: dict = {}    # id -> array, for the sums the engine allocated itself
    nodes: dict = {}   # -seq -> node, for the nodes waiting in the heap
    # leaf -> [leaf, gradient, owned]; owned: safe to keep without a copy. (Tensors hash
    # by identity, so they can be dict keys even though == is element-wise.)
    leaves: dict = {}
    heap: list = []
    for t, g in zip(roots, grad_roots, strict=True):
        fn = t.grad_fn
        if fn is None:
            _to_leaf(leaves, t, g, False)
        elif fn in grads:
            grads[fn] = _plus(grads[fn], g)
        else:
            grads[fn] = g
            nodes[-fn.seq] = fn
            heappush(heap, -fn.seq)

    anomaly = anomaly_state.enabled
    written = last_write[0]  # the newest recorded in-place write: older history to find?
    if _accel is not None and capture is None and not anomaly:
        # The same loop in C (_cengine.c), which hands every rare case back to the
        # helpers in this file. Capturing and anomaly mode stay on the Python path.
        _accel.walk([nodes[k] for k in heap], grads, leaves, retain_graph)
        if accumulate:
            _accel.settle(leaves)  # the leaves' loop below, in C
            return None
        heap = []
    while heap:
        fn = nodes.pop(heappop(heap))
        g = grads.pop(fn)
        if sums:
            sums.pop(id(g), None)  # from here on g may be passed on, so never add into it
        if fn._hooks:
            g = _run_hooks(fn._hooks, g)
        if want_nodes and fn in want_nodes:
            for i in want_nodes[fn]:
                captured[i] = g
        saved = fn.saved_tensors
        inputs = fn.inputs
        if saved is None or inputs is None:
            raise _freed_error(fn)
        if last_inplace[0] > fn.seq:  # something changed in place after this op ran
            _check_versions(fn)
        in_grads = fn.op.backward(fn, g)
        if type(in_grads) is not tuple:
            in_grads = tuple(in_grads) if isinstance(in_grads, list) else (in_grads,)
        if len(in_grads) != len(inputs):
            raise _count_error(fn, len(in_grads))
        if anomaly:
            _anomaly_backward(fn, in_grads)
        # The counts were checked just above; strict= would cost every node of every backward.
        for t, need, ig in zip(inputs, fn.needs_input_grad, in_grads):  # noqa: B905
            if not need or ig is None:
                continue
            data = t._data
            if type(ig) is not np.ndarray or ig.shape != data.shape or ig.dtype is not data.dtype:
                ig = _fix_grad(fn, inputs, t, ig)
            parent = t.grad_fn
            if written and parent is not None and (parent.seq >= fn.seq or
                                                   parent.seq < written):
                parent = _parent(fn, t)  # t written since fn read it, or a stale view?
            if parent is None:
                entry = leaves.get(t)
                if entry is None:
                    # NOTE: a gradient may be shared (Add passes grad_output to both
                    # inputs) or be a view; such a leaf gradient is copied at the end so
                    # no two .grad tensors ever share memory.
                    owned = ig is not g and ig.base is None
                    if owned:
                        n_same = 0
                        for other in in_grads:  # the same array returned for two inputs?
                            if other is ig:
                                n_same += 1
                        for s in saved:
                            if s is ig:
                                owned = False
                        owned = owned and n_same == 1
                    leaves[t] = [t, ig, owned]
                elif entry[2]:  # the engine owns the running sum: add into it
                    np.add(entry[1], ig, out=entry[1])
                else:
                    entry[1] = _plus(entry[1], ig)
                    entry[2] = True
            else:
                prev = grads.get(parent)
                if prev is None:
                    grads[parent] = ig
                    key = -parent.seq
                    nodes[key] = parent
                    heappush(heap, key)
                elif id(prev) in sums:  # a sum the engine made: safe to add into in place
                    np.add(prev, ig, out=prev)
                else:
                    total = _plus(prev, ig)
                    sums[id(total)] = total  # (kept alive while listed, so its id is unique)
                    grads[parent] = total
        if not retain_graph:
            # Free what backward used: saved arrays, and the links to input tensors, so
            # activations die even if the user keeps the output (``losses.append(loss)``).
            fn.saved_tensors = None
            fn.inputs = None

    # Leaves: hooks, then accumulate into .grad (or hand back to autograd.grad).
    for t, g, owned in leaves.values():
        if t._hooks:
            g = _run_hooks(t._hooks, g)
            owned = False
        if want_leaves and id(t) in want_leaves:
            for i in want_leaves[id(t)]:
                captured[i] = g
        if accumulate:
            if t.grad is None:
                t.grad = _make(g if owned else g.copy())
            else:
                t.grad._data = _plus(t.grad._data, g)
    if capture is not None:
        return [captured.get(i) for i in range(len(capture))]
    return None


def _plus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b as a new array (NumPy returns a scalar, not an array, for 0-d inputs)."""
    out = a + b
    return out if type(out) is np.ndarray else np.asarray(out)


def _to_leaf(leaves, t, g, owned) -> None:
    entry = leaves.get(t)
    if entry is None:
        leaves[t] = [t, g, owned]
    else:
        entry[1] = _plus(entry[1], g)
        entry[2] = True


def _run_hooks(hooks, g):
    hooks = sorted(hooks, key=lambda h: getattr(h, "runs_last", False))  # stable
    for hook in hooks:
        out = hook(_make(g))
        if out is not None:
            g = out._data if isinstance(out, Tensor) else np.asarray(out)
    return g


def _no_create_graph(create_graph, op: str) -> None:
    if create_graph:
        raise NotImplementedError(
            f"{op}: create_graph=True (higher-order gradients) is not supported: backward "
            f"functions work on NumPy arrays, so a backward pass records no graph")


def backward(tensor: Tensor, gradient=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:
    """``tensor.backward()``: accumulate d(tensor)/d(leaf) into every leaf's ``.grad``.

    With ``inputs`` (tensors), only those accumulate gradients.
    """
    _no_create_graph(create_graph, "backward")
    retain_graph = bool(retain_graph)
    if not tensor._requires_grad:
        raise GradError("backward: the tensor does not require grad and has no grad_fn; "
                        "did you forget requires_grad=True on an input, or run under no_grad?")
    if gradient is None:
        data = tensor._data
        if data.size != 1:
            raise GradError(f"backward: grad can be implicitly created only for scalar outputs, "
                            f"but the output has shape {tuple(data.shape)}; pass "
                            f"gradient= (a tensor of that shape)")
        # (np.array for the usual 0-d loss: np.ones is a Python function, 3x slower)
        g = np.array(1, dtype=data.dtype) if data.ndim == 0 else np.ones(data.shape, data.dtype)
    else:
        g = _as_array(gradient, tensor, "backward").copy()
    if inputs is None:
        run_backward([tensor], [g], retain_graph=retain_graph)
        return
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise GradError(f"backward: inputs[{i}] is not a tensor that requires grad")
    for t, gi in zip(inputs, run_backward([tensor], [g], retain_graph=retain_graph,
                                           capture=inputs, accumulate=False), strict=True):
        if gi is None:
            continue
        if t.grad is None:
            t.grad = _make(gi.copy())
        else:
            t.grad._data = _plus(t.grad._data, gi)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused: bool = False, materialize_grads: bool = False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned, not stored in ``.grad``.

    Args:
        outputs: a tensor or sequence of tensors.
        inputs: a tensor or sequence of tensors that require grad.
        grad_outputs: the vector in the vector-Jacobian product, one per output
            (``None`` for scalar outputs means 1).
        retain_graph: keep saved values so backward can run again.
        allow_unused: return ``None`` for an input the outputs do not depend on,
            instead of raising.
        materialize_grads: return zeros instead of ``None`` for unused inputs.
        create_graph: must be False (no higher-order gradients).

    Example::

        x = backprop.tensor([3.0], requires_grad=True)
        (dx,) = backprop.autograd.grad((x ** 2).sum(), x)   # tensor([6.])
    """
    _no_create_graph(create_graph, "grad")
    retain_graph = bool(retain_graph)
    allow_unused = allow_unused or materialize_grads
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise GradError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs[{i}] is a {type(t).__name__}, not a Tensor")
        if not t._requires_grad:
            raise GradError(f"grad: inputs[{i}] (shape {tuple(t.shape)}) does not require grad")
    roots, seeds = [], []
    for i, (out, go) in enumerate(zip(outputs, grad_outputs, strict=True)):
        if not out._requires_grad:
            raise GradError(f"grad: outputs[{i}] does not require grad and has no grad_fn")
        if go is None:
            if out._data.size != 1:
                raise GradError(f"grad: grad can be implicitly created only for scalar outputs; "
                                f"outputs[{i}] has shape {tuple(out.shape)}")
            seeds.append(np.ones(out._data.shape, dtype=out._data.dtype))
        else:
            seeds.append(_as_array(go, out, "grad").copy())
        roots.append(out)
    result = run_backward(roots, seeds, retain_graph=retain_graph, capture=inputs,
                          accumulate=False)
    out = []
    for i, (t, g) in enumerate(zip(inputs, result, strict=True)):
        if g is None:
            if not allow_unused:
                raise GradError(f"grad: inputs[{i}] (shape {tuple(t.shape)}) was not used to "
                                f"compute the outputs; pass allow_unused=True to get None")
            out.append(_make(np.zeros_like(t._data)) if materialize_grads else None)
        else:
            out.append(_make(g.copy()))
    return tuple(out)


#: the interface of _cengine.c this file was written for
_CENGINE_API = 4


def pure_python_requested() -> bool:
    """True when BACKPROP_PURE_PYTHON asks for the pure-Python engine (1, true, yes, on)."""
    return os.environ.get("BACKPROP_PURE_PYTHON", "").lower() not in ("", "0", "false", "no",
                                                                      "off")


def _load_accelerator():
    """The C accelerator (``_cengine.c``) and a line saying which engine runs.

    The module is None when it was not built (no C compiler at install time), when
    BACKPROP_PURE_PYTHON=1, or when the build is stale. Without it backprop runs the
    same loops in Python (this file and ``function.py``), which are the reference: the
    accelerator changes speed, never results.
    """
    if pure_python_requested():
        return None, "pure Python (BACKPROP_PURE_PYTHON is set)"
    try:
        from backprop.autograd import _cengine
    except ImportError:
        return None, "pure Python (the C accelerator is not built)"
    if getattr(_cengine, "API_VERSION", None) != _CENGINE_API or not _same_source(_cengine):
        import warnings

        warnings.warn(f"backprop: ignoring a stale build of the C accelerator "
                      f"({_cengine.__file__}); reinstall backprop (pip install -e .) to "
                      f"rebuild it", RuntimeWarning, stacklevel=2)
        return None, "pure Python (the C accelerator's build is stale: reinstall backprop)"
    _cengine.setup(np.ndarray, last_inplace, last_write, _run_hooks, _freed_error,
                   _check_versions, _count_error, _fix_grad, np.asarray, np.add.reduce, _parent)
    return _cengine, "C accelerator"


def _same_source(module, source: str | None = None) -> bool:
    """False when the module was built from another version of its C ``source`` (by
    default the _cengine.c beside this file) than the one there now. The build compiles
    the source's SHA-256 in as ``SOURCE_SHA256`` (setup.py)."""
    if source is None:
        source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cengine.c")
    if not os.path.exists(source):  # an installed wheel: no source to compare with
        return True
    import hashlib

    with open(source, "rb") as f:
        return getattr(module, "SOURCE_SHA256", "") == hashlib.sha256(f.read()).hexdigest()


# ENGINE says which engine runs: "C accelerator", or "pure Python (why)"; backprop
# --version and the benchmarks print it.
_accel, ENGINE = _load_accelerator()
