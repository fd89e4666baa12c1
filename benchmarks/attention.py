"""Fused scaled_dot_product_attention vs the same maths as a composite of primitives.

    python benchmarks/attention.py [--threads N] [--repeats R]

Prints the median forward + backward time of each on a (32, 4, 64, 32) float32 case
(batch, heads, seq, features) with a causal float mask, and PyTorch's CPU time for the
same call when torch is installed. The runs are interleaved (see ``_timing``), so the
ratios hold even when the shared machine's speed wanders.
"""
from __future__ import annotations

import argparse
import os

from _timing import interleaved, set_threads

SHAPE = (32, 4, 64, 32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    set_threads(args.threads)

    import math

    import numpy as np

    import backprop
    from backprop.nn import functional as F

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(3)]
    mask = np.triu(np.full((SHAPE[2], SHAPE[2]), -np.inf, np.float32), 1)
    q, k, v = [backprop.tensor(a, requires_grad=True) for a in arrays]
    m = backprop.tensor(mask)

    def fused():
        F.scaled_dot_product_attention(q, k, v, attn_mask=m).sum().backward()

    def composite():
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(SHAPE[-1])) + m
        (backprop.softmax(scores, -1) @ v).sum().backward()

    fns = {"fused primitive": fused, "composite": composite}
    try:
        import torch
        torch.set_num_threads(args.threads)
        tq, tk, tv = [torch.tensor(a, requires_grad=True) for a in arrays]
        tm = torch.tensor(mask)

        def torch_sdpa():
            torch.nn.functional.scaled_dot_product_attention(tq, tk, tv,
                                                             attn_mask=tm).sum().backward()
        fns["torch (CPU)"] = torch_sdpa
    except ImportError:
        pass
    times = interleaved(fns, args.repeats, warmup=2)
    base = times["fused primitive"]
    print(f"sdpa {SHAPE} float32 + causal mask, forward + backward, {args.threads} thread(s), "
          f"median of {args.repeats}:")
    for name, t in times.items():
        print(f"  {name:16s} {t * 1e3:7.2f} ms   ({t / base:.2f}x the fused time)")


if __name__ == "__main__":
    main()
