"""Neural-network building blocks with PyTorch's names: ``from backprop import nn``.

Modules (layers, containers, activations, losses), ``Parameter``, and the
``functional`` (``F``), ``init`` and ``utils`` submodules.

Example::

    from backprop import nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    print(model)
"""
from backprop.nn import functional, init, utils
from backprop.nn.activation import (
    ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh,
)
from backprop.nn.container import ModuleDict, ModuleList, Residual, Sequential
from backprop.nn.conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from backprop.nn.dropout import Dropout
from backprop.nn.embedding import Embedding
from backprop.nn.linear import Flatten, Identity, Linear, Unflatten
from backprop.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss,
    SmoothL1Loss,
)
from backprop.nn.module import Module, StateDictError
from backprop.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from backprop.nn.parameter import Parameter

__all__ = [
    "Module", "Parameter", "StateDictError",
    "Linear", "Identity", "Flatten", "Unflatten",
    "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "Embedding",
    "Sequential", "ModuleList", "ModuleDict", "Residual",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "Softplus", "SiLU", "Softmax",
    "LogSoftmax",
    "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss",
    "CrossEntropyLoss", "NLLLoss",
    "functional", "init", "utils",
]
