# Automatic differentiation as the autograd tutorial teaches it.
import torch

x = torch.ones(5)
y = torch.zeros(3)
w = torch.randn(5, 3, requires_grad=True)
b = torch.randn(3, requires_grad=True)
z = torch.matmul(x, w) + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
print(f"Gradient function for z = {z.grad_fn}")
print(f"Gradient function for loss = {loss.grad_fn}")
loss.backward()
wgrad_shape = list(w.grad.shape)

z = torch.matmul(x, w) + b
req_before = z.requires_grad
with torch.no_grad():
    z = torch.matmul(x, w) + b
req_no_grad = z.requires_grad
z_det = (torch.matmul(x, w) + b).detach()

inp = torch.eye(4, 5, requires_grad=True)
out = (inp + 1).pow(2).t()
out.backward(torch.ones_like(out), retain_graph=True)
first = inp.grad.clone()
out.backward(torch.ones_like(out), retain_graph=True)
second = inp.grad.clone()
inp.grad.zero_()
out.backward(torch.ones_like(out), retain_graph=True)
third = inp.grad.clone()

a = torch.tensor([2.0, 3.0], requires_grad=True)
c = a * a + 3 * a
nf = c.grad_fn.next_functions

RESULT = {
    "wgrad_shape": wgrad_shape, "req": [req_before, req_no_grad, z_det.requires_grad],
    "first": first.tolist(), "second": second.tolist(), "third": third.tolist(),
    "grad_fn": c.grad_fn.name(), "n_next": len(nf), "pair": [len(p) for p in nf],
    "next_names": sorted(p[0].name() for p in nf if p[0] is not None),
}
