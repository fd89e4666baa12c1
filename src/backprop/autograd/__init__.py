"""Automatic differentiation: ``Function`` for custom ops, ``grad``, ``gradcheck``, anomaly checks."""
from backprop.autograd.anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from backprop.autograd.engine import grad
from backprop.autograd.function import Function
from backprop.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from backprop.autograd.gradcheck import gradcheck
from backprop.autograd.hooks import RemovableHandle


def backward(tensors, grad_tensors=None, retain_graph: bool = False) -> None:
    """Accumulate gradients of several tensors at once (``backprop.autograd.backward([a, b])``)."""
    from backprop.autograd.engine import _as_array, run_backward
    from backprop.errors import GradError
    from backprop.tensor import Tensor

    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors)
    grad_tensors = list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise GradError(f"backward: got {len(tensors)} tensors and {len(grad_tensors)} "
                        f"gradients")
    seeds = []
    for t, g in zip(tensors, grad_tensors, strict=True):
        if not t.requires_grad:
            raise GradError("backward: a tensor does not require grad and has no grad_fn")
        if g is None:
            if t.numel() != 1:
                raise GradError(f"backward: grad can be implicitly created only for scalar "
                                f"outputs, got shape {tuple(t.shape)}")
            seeds.append(__import__("numpy").ones(t.shape, dtype=t._data.dtype))
        else:
            seeds.append(_as_array(g, t, "backward").copy())
    run_backward(tensors, seeds, retain_graph=retain_graph)


__all__ = ["Function", "backward", "grad", "gradcheck", "detect_anomaly", "set_detect_anomaly",
           "is_anomaly_enabled", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "RemovableHandle"]
