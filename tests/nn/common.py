"""Helpers shared by the nn tests: build the same layer in backprop and torch, compare."""
from __future__ import annotations

import numpy as np

import backprop


def copy_to_torch(module, torch_module, torch):
    """Load backprop ``module``'s state into ``torch_module`` (the same architecture)."""
    state = {k: torch.tensor(np.array(v.numpy())) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module


def pair_inputs(torch, shape, rng, dtype=np.float64, requires_grad=True):
    """The same random array as a backprop and a torch tensor."""
    arr = rng.standard_normal(shape).astype(dtype)
    a = backprop.tensor(arr, requires_grad=requires_grad)
    b = torch.tensor(arr, requires_grad=requires_grad)
    return a, b


def assert_close(a, b, atol=1e-10, rtol=1e-7, msg=""):
    """Compare a backprop tensor (or array) with a torch tensor (or array)."""
    a = a.detach().numpy() if isinstance(a, backprop.Tensor) else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=msg)


def compare_layer(module, torch_module, torch, x_shape, rng, input_grad=True, atol=1e-10,
                  rtol=1e-7, x=None):
    """Forward, input gradient and parameter gradients of two equal layers agree (float64)."""
    module.double()
    torch_module.double()
    copy_to_torch(module, torch_module, torch)
    if x is None:
        a, b = pair_inputs(torch, x_shape, rng, requires_grad=input_grad)
    else:
        a = backprop.tensor(x, requires_grad=input_grad)
        b = torch.tensor(x, requires_grad=input_grad)
    out_a, out_b = module(a), torch_module(b)
    assert_close(out_a, out_b, atol, rtol, "forward")
    g = rng.standard_normal(tuple(out_a.shape))
    out_a.backward(backprop.tensor(g))
    out_b.backward(torch.tensor(g))
    if input_grad:
        assert_close(a.grad, b.grad, atol, rtol, "input gradient")
    torch_params = dict(torch_module.named_parameters())
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert_close(p.grad, torch_params[name].grad, atol, rtol, f"gradient of {name}")
    return out_a, out_b
