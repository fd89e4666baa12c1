# The tensor basics a first tutorial walks through, written as a PyTorch user writes them.
import numpy as np
import torch

data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
np_array = np.array(data)
x_np = torch.from_numpy(np_array)

x_ones = torch.ones_like(x_data)
x_rand = torch.rand_like(x_data, dtype=torch.float)
print(f"Ones Tensor: \n {x_ones} \n")

shape = (2, 3,)
rand_tensor = torch.rand(shape)
ones_tensor = torch.ones(shape)
zeros_tensor = torch.zeros(shape)

tensor = torch.rand(3, 4)
print(f"Shape of tensor: {tensor.shape}")
print(f"Datatype of tensor: {tensor.dtype}")
print(f"Device tensor is stored on: {tensor.device}")

if torch.accelerator.is_available():
    tensor = tensor.to(torch.accelerator.current_accelerator())

tensor = torch.ones(4, 4)
print(f"First row: {tensor[0]}")
print(f"First column: {tensor[:, 0]}")
print(f"Last column: {tensor[..., -1]}")
tensor[:, 1] = 0
t1 = torch.cat([tensor, tensor, tensor], dim=1)

y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
y3 = torch.rand_like(y1)
torch.matmul(tensor, tensor.T, out=y3)

z1 = tensor * tensor
z2 = tensor.mul(tensor)
z3 = torch.rand_like(tensor)
torch.mul(tensor, tensor, out=z3)

agg = tensor.sum()
agg_item = agg.item()

tensor.add_(5)

t = torch.ones(5)
n = t.numpy()
t.add_(1)
n_after_add = n.copy()
np.add(n, 1, out=n)

device = "cuda" if torch.cuda.is_available() else "cpu"
w = torch.randn(3, 5, device=device, requires_grad=True)
idx = w[:, range(0, 4, 2)]

RESULT = {
    "x_ones": x_ones.tolist(), "x_np": x_np.tolist(), "rand_dtype": str(x_rand.dtype).split(".")[-1],
    "shape": list(tensor.shape), "t1": list(t1.shape), "y1": y1.tolist(), "y3": y3.tolist(),
    "z3": z3.tolist(), "agg": agg_item, "tensor": tensor.tolist(), "t": t.tolist(),
    "n_after_add": n_after_add.tolist(), "idx_shape": list(idx.shape),
    "shape_text": str(torch.zeros(10, 512).shape), "device": str(w.device),
}
