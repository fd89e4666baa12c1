"""``torch.backends.cuda``: CUDA flags a script may set; with no CUDA here they change nothing."""


class _Matmul:
    """``backends.cuda.matmul``: ``allow_tf32`` and friends, settable, without effect."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _Matmul()


def is_built() -> bool:
    """False: backprop has no CUDA backend."""
    return False
