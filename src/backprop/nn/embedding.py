"""``Embedding``: a learned lookup table from integer ids to vectors."""
from __future__ import annotations

from backprop.autograd.grad_mode import no_grad
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.linear import _check_size, _factory
from backprop.nn.module import Module, _options_repr
from backprop.nn.parameter import Parameter
from backprop.tensor import Tensor


class Embedding(Module):
    """Row ``i`` of a (num_embeddings, embedding_dim) weight for each integer id ``i``.

    Args:
        num_embeddings: the number of ids (rows).
        embedding_dim: the size of each vector.
        padding_idx: an id whose row is zero at initialisation and never receives a
            gradient (e.g. padding in variable-length sequences). Negative values
            count from the end.
        max_norm: rescale looked-up rows whose ``norm_type``-norm exceeds this, in place.
        scale_grad_by_freq: divide each row's gradient by its frequency in the batch.
        sparse: not supported (sparse gradients); must be False.

    The weight is initialised from N(0, 1), as PyTorch.

    Example::

        emb = nn.Embedding(10, 3, padding_idx=0)
        emb(backprop.tensor([[0, 2], [4, 9]])).shape   # (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None,
                 dtype=None):
        super().__init__()
        cls = "Embedding"
        self.num_embeddings = _check_size(num_embeddings, "num_embeddings", cls)
        self.embedding_dim = _check_size(embedding_dim, "embedding_dim", cls)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"{cls}: padding_idx must be within num_embeddings "
                                 f"({num_embeddings}), got {padding_idx}")
            padding_idx = padding_idx % num_embeddings
        if sparse:
            raise ValueError(f"{cls}: sparse gradients are not supported by backprop")
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = _factory((self.num_embeddings, self.embedding_dim), device, dtype)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"{cls}: shape of weight {tuple(_weight.shape)} does not match "
                                 f"num_embeddings and embedding_dim "
                                 f"({self.num_embeddings}, {self.embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """N(0, 1) weights, with the padding row zeroed."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight._data[self.padding_idx] = 0
                self.weight._bump_version()

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + _options_repr(self, {
            "padding_idx": None, "max_norm": None, "norm_type": 2, "scale_grad_by_freq": False,
            "sparse": False})

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding whose weight is ``embeddings`` (2-D), frozen unless ``freeze=False``.

        Example::

            emb = nn.Embedding.from_pretrained(backprop.eye(4))
            emb(backprop.tensor([2]))   # tensor([[0., 0., 1., 0.]])
        """
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            raise ValueError("Embedding.from_pretrained: embeddings must be a 2-D tensor")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings,
                   _freeze=freeze)
