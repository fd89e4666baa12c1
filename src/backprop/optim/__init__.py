"""Optimizers and learning-rate schedules, with PyTorch's names: ``backprop.optim``.

Example::

    from backprop import optim
    opt = optim.Adam(model.parameters(), lr=1e-3)
    sched = optim.lr_scheduler.warmup_cosine(opt, warmup_steps=100, total_steps=1000)
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()

Each algorithm is also a plain function over lists of NumPy arrays, beside its class
(``backprop.optim.sgd.sgd``, ``backprop.optim.adam.adam``, ...), with the algorithm
written out in its docstring.
"""
from backprop.optim import lr_scheduler
from backprop.optim.adadelta import Adadelta
from backprop.optim.adagrad import Adagrad
from backprop.optim.adam import Adam, AdamW
from backprop.optim.adamax import Adamax
from backprop.optim.lbfgs import LBFGS
from backprop.optim.nadam import NAdam
from backprop.optim.optimizer import Optimizer
from backprop.optim.radam import RAdam
from backprop.optim.rmsprop import RMSprop
from backprop.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax",
           "NAdam", "RAdam", "LBFGS", "lr_scheduler"]
