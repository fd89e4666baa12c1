"""Normalisation layers: ``BatchNorm1d/2d``, ``LayerNorm``, ``GroupNorm``, ``InstanceNorm1d/2d``.

Normalising activations to zero mean and unit variance (then letting the layer
learn a scale γ and shift β) keeps their distribution steady as earlier layers
change, which lets deep networks train with larger learning rates.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from backprop import dtypes as _dt
from backprop._checks import is_real
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.linear import _check_size, _factory
from backprop.nn.module import Module
from backprop.nn.parameter import Parameter
from backprop.tensor import Tensor, _make


def _affine_parameters(module: _BatchNorm | LayerNorm | GroupNorm, shape: tuple, affine: bool, bias: bool, device,
                       dtype) -> None:
    """Register a norm layer's scale γ (``weight``) and shift β (``bias``) of ``shape``,
    each None where the layer learns none; :func:`_reset_affine` gives their values."""
    if affine:
        module.weight = _factory(shape, device, dtype)
        if bias:
            module.bias = _factory(shape, device, dtype)
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module: _BatchNorm | LayerNorm | GroupNorm) -> None:
    """γ to 1 and β to 0: the layer starts as a plain normalisation."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d: per-channel statistics over batch and space."""

    _dims: tuple = ()  # accepted input dims
    _dims_text = ""
    weight: Parameter | None
    bias: Parameter | None
    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None,
                 *, bias: bool = True):
        super().__init__()
        cls = type(self).__name__
        self.num_features = _check_size(num_features, "num_features", cls, allow_zero=False)
        if not is_real(eps) or eps < 0:
            raise ValueError(f"{cls}: eps must be a non-negative number, got {eps!r}")
        if momentum is not None and not is_real(momentum):
            raise ValueError(f"{cls}: momentum must be a number or None, got {momentum!r}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine_parameters(self, (self.num_features,), affine, bias, device, dtype)
        if track_running_stats:
            np_dtype = _dt.default_float if dtype is None else _dt.to_numpy_dtype(dtype)
            self.register_buffer("running_mean", _make(np.zeros(self.num_features, np_dtype)))
            self.register_buffer("running_var", _make(np.ones(self.num_features, np_dtype)))
            self.register_buffer("num_batches_tracked", _make(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            for buf, value in ((self.running_mean, 0), (self.running_var, 1),
                               (self.num_batches_tracked, 0)):
                buf._data[...] = value  # type: ignore[union-attr]  # (tracked: not None)
                buf._bump_version()  # type: ignore[union-attr]

    def reset_parameters(self) -> None:
        """Reset the running statistics, and γ to 1 and β to 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def forward(self, input):
        if input.ndim not in self._dims:
            raise ValueError(f"{type(self).__name__}: expected {self._dims_text} input (got "
                             f"{input.ndim}D input of shape {tuple(input.shape)})")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            count = self.num_batches_tracked
            count._data[...] += 1
            count._bump_version()
            if self.momentum is None:  # a cumulative moving average
                factor = 1.0 / float(count._data)
        # Batch statistics in training, and also in eval when there are no running ones.
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C.

    In training each channel is normalised by the batch's mean and (biased)
    variance, and the running statistics are updated with
    ``running = (1 - momentum)·running + momentum·batch`` (the unbiased variance,
    as PyTorch; ``momentum=None`` gives a cumulative average). In eval the running
    statistics are used. Then y = γ·x̂ + β.

    Args:
        num_features: C.
        eps: added to the variance for stability.
        momentum: weight of the new batch in the running statistics, or None.
        affine: learn γ and β.
        track_running_stats: keep running statistics (else batch statistics always).
        bias: learn β (with ``affine``).

    Example::

        bn = nn.BatchNorm1d(16)
        bn(backprop.randn(32, 16)).shape   # (32, 16); bn.running_mean has moved
    """

    _dims = (2, 3)
    _dims_text = "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C (see BatchNorm1d).

    Example::

        bn = nn.BatchNorm2d(16)
        bn(backprop.randn(8, 16, 5, 5)).shape   # (8, 16, 5, 5)
    """

    _dims = (4,)
    _dims_text = "4D"


class LayerNorm(Module):
    """Normalise each sample over its last dims (``normalized_shape``), then y = γ·x̂ + β.

    Unlike BatchNorm, the statistics come from each sample alone, so it behaves
    the same in training and eval and for any batch size.

    Args:
        normalized_shape: int or tuple: the trailing shape normalised over.
        eps: added to the variance for stability.
        elementwise_affine: learn γ (and β) of shape ``normalized_shape``.
        bias: learn β (with ``elementwise_affine``).

    Example::

        ln = nn.LayerNorm(10)
        ln(backprop.randn(4, 10)).shape   # (4, 10)
    """

    weight: Parameter | None
    bias: Parameter | None

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, (numbers.Integral, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(_check_size(s, "normalized_shape", "LayerNorm",
                                                  allow_zero=False) for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """γ to 1 and β to 0."""
        _reset_affine(self)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalise each sample's channels in groups, then y = γ·x̂ + β per channel.

    The C channels are split into ``num_groups`` groups; each (sample, group) is
    normalised by its own mean and biased variance. Like LayerNorm it needs no
    batch statistics, so it works the same for any batch size and in eval
    (``num_groups=1`` normalises over all channels, ``num_groups=C`` per channel).

    Args:
        num_groups: G, dividing num_channels.
        num_channels: C of the (N, C, *) input.
        eps: added to the variance for stability.
        affine: learn per-channel γ (ones) and β (zeros).
        bias: learn β (with ``affine``).

    Example::

        gn = nn.GroupNorm(2, 6)
        gn(backprop.randn(4, 6, 5, 5)).shape   # (4, 6, 5, 5)
    """

    weight: Parameter | None
    bias: Parameter | None

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        num_groups = _check_size(num_groups, "num_groups", "GroupNorm", allow_zero=False)
        num_channels = _check_size(num_channels, "num_channels", "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine_parameters(self, (num_channels,), affine, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """γ to 1 and β to 0."""
        _reset_affine(self)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _InstanceNorm(_BatchNorm):
    """Shared by InstanceNorm1d/2d: per-(sample, channel) statistics over the positions."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias=bias)

    def forward(self, input):
        cls = type(self).__name__
        unbatched = self._dims[0]
        if input.ndim not in self._dims:
            raise ValueError(f"{cls}: expected {self._dims_text} input (got {input.ndim}D input "
                             f"of shape {tuple(input.shape)})")
        dim = input.ndim - unbatched
        if input.shape[dim] != self.num_features:
            if self.affine:
                raise ValueError(f"{cls}: expected input's size at dim={dim} to match "
                                 f"num_features ({self.num_features}), but got: "
                                 f"{input.shape[dim]}.")
            warnings.warn(f"input's size at dim={dim} does not match num_features. You can "
                          f"silence this warning by not passing in num_features, which is not "
                          f"used because affine=False", stacklevel=2)
        x = input.unsqueeze(0) if input.ndim == unbatched else input
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if input.ndim == unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or unbatched (C, L) inputs: each (sample,
    channel) is normalised over its positions (as PyTorch: no affine and no running
    statistics by default; with ``track_running_stats`` eval uses running ones).

    Example::

        nn.InstanceNorm1d(3)(backprop.randn(2, 3, 10)).shape   # (2, 3, 10)
    """

    _dims = (2, 3)
    _dims_text = "2D or 3D"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or unbatched (C, H, W) images (see
    InstanceNorm1d): the usual normaliser of style transfer.

    Example::

        nn.InstanceNorm2d(3, affine=True)(backprop.randn(2, 3, 8, 8)).shape   # (2, 3, 8, 8)
    """

    _dims = (3, 4)
    _dims_text = "3D or 4D"
