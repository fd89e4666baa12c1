"""The graph nodes behind ``Module``'s full backward hooks (PyTorch's ``BackwardHook``).

``Module.__call__`` hands a call's tensor inputs and outputs to a ``BackwardHook``,
which passes each group through one graph node (``_route``). In backward the output
node fires first and runs the backward pre-hooks; the input node fires once every
gradient inside the module has been computed and runs the hooks with
``(grad_input, grad_output)``. Nothing here knows about layers: the module is only
what the hooks receive as their first argument.
"""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.tensor import Tensor, _make

__all__ = ["BackwardHook"]


class _HookIdentity(Function):
    """out = x;  dx = g. The graph node a module's backward hook watches."""

    backward_name = "BackwardHookFunctionBackward"  # PyTorch's name for this node

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class _HookPack(Function):
    """out = concat(flatten(xᵢ));  dxᵢ = the matching slice of g.

    Several tensors become one node, so a hook sees all their gradients at once.
    """

    backward_name = "BackwardHookFunctionBackward"  # PyTorch's name for this node

    @staticmethod
    def forward(ctx, *arrays):
        ctx.layout = [(a.shape, a.dtype, a.size) for a in arrays]
        return np.concatenate([a.reshape(-1) for a in arrays]).astype(
            np.result_type(*arrays), copy=False)

    @staticmethod
    def backward(ctx, grad_output):
        grads, start = [], 0
        for shape, dtype, size in ctx.layout:
            grads.append(grad_output[start:start + size].reshape(shape).astype(dtype, copy=False))
            start += size
        return tuple(grads)


class _HookUnpack(Function):
    """out = p[start:stop] reshaped;  dp = g placed at [start:stop], zeros elsewhere."""

    backward_name = "BackwardHookFunctionBackward"  # PyTorch's name for this node

    @staticmethod
    def forward(ctx, packed, *, start, shape, dtype, received, index):
        ctx.span = (start, packed.size, received, index)
        stop = start + int(np.prod(shape, dtype=np.int64))
        return packed[start:stop].reshape(shape).astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_output):
        start, total, received, index = ctx.span
        received[index] = True
        grad = np.zeros(total, dtype=grad_output.dtype)
        grad[start:start + grad_output.size] = grad_output.reshape(-1)
        return grad


def _route(tensors: list, on_grad) -> list:
    """Pass ``tensors`` through one graph node whose gradient goes to ``on_grad``.

    ``on_grad(grads)`` receives a list aligned with ``tensors`` (a Tensor, or None
    where no gradient arrived or the tensor needs none) and may return a list of
    replacements. Returns the tensors to use in place of ``tensors``.
    """
    req = [i for i, t in enumerate(tensors) if t._requires_grad]
    out = list(tensors)
    if len(req) == 1:
        i = req[0]
        new = _HookIdentity.apply(tensors[i])

        def single(g):
            grads = [None] * len(tensors)
            grads[i] = g
            result = on_grad(grads)
            if result is None:
                return None
            r = result[i]
            return _make(np.zeros_like(g._data)) if r is None else r
        new.grad_fn.register_hook(single)
        out[i] = new
        return out

    packed = _HookPack.apply(*[tensors[i] for i in req])
    received = [False] * len(req)
    start = 0
    for k, i in enumerate(req):
        t = tensors[i]
        out[i] = _HookUnpack.apply(packed, start=start, shape=t._data.shape, dtype=t._data.dtype,
                                   received=received, index=k)
        start += t._data.size

    def several(g):
        grads = [None] * len(tensors)
        offset = 0
        for k, i in enumerate(req):
            size = tensors[i]._data.size
            if received[k]:
                grads[i] = _make(g._data[offset:offset + size].reshape(tensors[i]._data.shape))
            offset += size
        received[:] = [False] * len(req)
        result = on_grad(grads)
        if result is None:
            return None
        pieces = []
        for i in req:
            r = result[i]
            arr = np.zeros(tensors[i]._data.shape) if r is None else np.asarray(
                r._data if isinstance(r, Tensor) else r)
            pieces.append(arr.reshape(-1).astype(g._data.dtype, copy=False))
        return _make(np.concatenate(pieces))
    packed.grad_fn.register_hook(several)
    return out


def _tensors_among(items) -> tuple:
    """(the positions of the Tensors among ``items``, those Tensors)."""
    index = [i for i, item in enumerate(items) if isinstance(item, Tensor)]
    return index, [items[i] for i in index]


def _put(items, index: list, values) -> list:
    """A list of ``items`` with ``values`` at the positions ``index``."""
    items = list(items)
    for i, value in zip(index, values, strict=True):
        items[i] = value
    return items


def _replacement(result, current: tuple, hook_kind: str, what: str):
    """What a module backward hook returned, as a tuple to use instead of ``current``;
    None when the hook returned None (keep ``current``). A wrong count is an error."""
    if result is None:
        return None
    result = (result,) if isinstance(result, Tensor) else tuple(result)
    if len(result) != len(current):
        raise RuntimeError(f"{hook_kind} returned an invalid number of {what}, "
                           f"got {len(result)}, but expected {len(current)}")
    return result


class BackwardHook:
    """Links one call of a module to its full backward (pre-)hooks.

    The module's tensor inputs go through one graph node and its outputs through
    another. In backward the output node fires first (grad_output is recorded and
    the pre-hooks run), then, once every gradient inside the module has been
    computed, the input node fires and the hooks get ``(grad_input, grad_output)``.
    """

    def __init__(self, module, hooks, pre_hooks):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.n_inputs = self.n_outputs = 0
        self.input_index = None   # positions of the tensor arguments; None: none needs grad
        self.output_index = None

    def setup_input_hook(self, args: tuple) -> tuple:
        self.n_inputs = len(args)
        index, tensors = _tensors_among(args)
        if not any(t._requires_grad for t in tensors):
            return args
        self.input_index = index
        self.input_like = [(t._data.shape, t._data.dtype) for t in tensors]
        return tuple(_put(args, index, _route(tensors, self._on_input_grads)))

    def setup_output_hook(self, output):
        if isinstance(output, Tensor):
            outs = (output,)
        elif isinstance(output, (tuple, list)):
            outs = tuple(output)
        else:
            return output  # dicts and other containers are not hooked (nor in PyTorch)
        self.n_outputs = len(outs)
        index, tensors = _tensors_among(outs)
        if not any(t._requires_grad for t in tensors):
            return output
        self.output_index = index
        new = _route(tensors, self._on_output_grads)
        if isinstance(output, Tensor):
            return new[0]
        items = _put(outs, index, new)
        if isinstance(output, list):
            return items
        if type(output) is tuple:
            return tuple(items)
        return type(output)(*items)  # a namedtuple

    def _on_output_grads(self, grads: list):
        grad_outputs = tuple(_put([None] * self.n_outputs, self.output_index, grads))
        changed = False
        for hook in self.pre_hooks:
            result = _replacement(hook(self.module, grad_outputs), grad_outputs,
                                  "Backward pre hook", "grad_output")
            if result is not None:
                grad_outputs, changed = result, True
        self.grad_outputs = grad_outputs
        if self.input_index is None:
            # No input needs a gradient, so the input node never fires: call the hooks now.
            grad_inputs = (None,) * self.n_inputs
            for hook in self.hooks:
                result = hook(self.module, grad_inputs, grad_outputs)
                if result is not None and not (isinstance(result, tuple)
                                               and all(r is None for r in result)):
                    raise RuntimeError("Backward hook for Modules where no input requires "
                                       "gradient should always return None or None for all "
                                       "gradients.")
            self.grad_outputs = None
        return [grad_outputs[i] for i in self.output_index] if changed else None

    def _on_input_grads(self, grads: list):
        if self.grad_outputs is None:  # the gradient reached the inputs by another path
            return None
        full = [None] * self.n_inputs
        for i, g, (shape, dtype) in zip(self.input_index, grads, self.input_like, strict=True):
            # As PyTorch: every tensor argument gets a gradient, zeros where none arrived.
            full[i] = _make(np.zeros(shape, dtype)) if g is None else g
        grad_inputs = tuple(full)
        changed = False
        for hook in self.hooks:
            result = _replacement(hook(self.module, grad_inputs, self.grad_outputs),
                                  grad_inputs, "Backward hook", "grad_input")
            if result is not None:
                grad_inputs, changed = result, True
        self.grad_outputs = None
        return [grad_inputs[i] for i in self.input_index] if changed else None
