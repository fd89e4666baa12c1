# Every way a PyTorch tutorial makes a tensor, with the device/dtype boilerplate scripts
# start with. Written as a PyTorch user writes it; run unchanged on backprop.
import numpy as np
import torch

torch.manual_seed(0)
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if torch.accelerator.is_available():
    device = torch.accelerator.current_accelerator()
elif torch.backends.mps.is_available():
    device = torch.device("mps")
dtype = torch.float32
print(f"Using {device} device, default dtype {torch.get_default_dtype()}")

# From data
a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=dtype, device=device, requires_grad=True)
b = torch.as_tensor(np.arange(6).reshape(2, 3), dtype=torch.float64, device=device)
c = torch.from_numpy(np.ones(3, dtype=np.float32)).to(device)

# Constants
z = torch.zeros(2, 3, dtype=dtype, device=device, requires_grad=True)
o = torch.ones((3, 2), dtype=torch.int64, device=device)
e = torch.empty(4, dtype=torch.float64, device=device).fill_(2.5)
f = torch.full((2, 2), 7.0, dtype=dtype, device=device, requires_grad=True)
i = torch.eye(3, dtype=dtype, device=device)

# Ranges
r = torch.arange(0, 10, 2, device=device)
rf = torch.arange(0.0, 1.0, 0.25, dtype=torch.float64, device=device, requires_grad=True)
ls = torch.linspace(-1, 1, steps=5, dtype=dtype, device=device)
lg = torch.logspace(0, 3, steps=4, base=10.0, dtype=torch.float64, device=device)

# Random (shapes and dtypes compared; values depend on each library's stream)
x = torch.rand(2, 3, dtype=dtype, device=device, requires_grad=True)
w = torch.randn(3, 5, dtype=dtype, device=device, requires_grad=True)
k = torch.randint(0, 10, (4,), device=device)
p = torch.randperm(6, device=device)
nrm = torch.normal(0.0, 1.0, size=(2, 2), device=device)
g = torch.Generator(device="cpu").manual_seed(42)
gx = torch.randn(3, generator=g, device=device)

# *_like keep the input's dtype
zl = torch.zeros_like(o, device=device)
ol = torch.ones_like(a, device=device, requires_grad=True)
fl = torch.full_like(o, 5, device=device)
el = torch.empty_like(b, device=device)
rl = torch.rand_like(w, device=device)
nl = torch.randn_like(b, device=device)
il = torch.randint_like(o, 3, device=device)

# Writing into an existing tensor, then computing on the device
buf = torch.empty(5, device=device)
torch.linspace(0, 1, 5, out=buf)
y = (x @ w).sum()
y.backward()
with torch.no_grad():
    total = torch.add(a, 1, out=torch.empty(2, 2, device=device))

tensors = {"a": a, "b": b, "c": c, "z": z, "o": o, "e": e, "f": f, "i": i, "r": r, "rf": rf,
           "ls": ls, "lg": lg, "x": x, "w": w, "k": k, "p": p, "nrm": nrm, "gx": gx, "zl": zl,
           "ol": ol, "fl": fl, "el": el, "rl": rl, "nl": nl, "il": il, "buf": buf,
           "total": total}
deterministic = ["a", "b", "c", "z", "o", "e", "f", "i", "r", "rf", "ls", "lg", "zl", "ol",
                 "fl", "buf", "total"]
RESULT = {
    "device": str(device),
    "meta": {name: (list(t.shape), str(t.dtype).split(".")[-1], t.requires_grad,
                    str(t.device)) for name, t in tensors.items()},
    "values": {name: tensors[name].tolist() for name in deterministic},
    "perm": sorted(p.tolist()), "in_range": bool(((k >= 0) & (k < 10)).all()),
    "int_like": bool(((il >= 0) & (il < 3)).all()), "w_grad": list(w.grad.shape),
    "gx_repeats": torch.randn(3, generator=torch.Generator().manual_seed(42)).tolist()
    == gx.tolist(),
}
