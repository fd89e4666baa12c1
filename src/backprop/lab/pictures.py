"""What the page draws of a session: the decision boundary, each hidden neuron's picture,
the data points and the network's weights and gradients.

Each function reads a :class:`~backprop.lab.session.LabSession` (its model, data and view
box) and returns JSON-able dicts of short numbers; the session caches them by version.
"""
from __future__ import annotations

import numpy as np

import backprop
from backprop import nn
from backprop.lab.data import feature_columns
from backprop.lab.rounding import as_bytes, rounded
from backprop.lab.training import activation_names

__all__ = ["boundary", "grid", "network", "neurons", "points"]

NEURON_RES = 16             # cells per side of each hidden neuron's picture (2-D data)
NEURON_RES_UNTIL = 64       # hidden neurons up to which they get NEURON_RES ...
NEURON_RES_MANY = 10        # ... and beyond which this (a frame stays small)
NEURON_RES_1D = 32          # points of a neuron's picture on 1-D data


def grid(session, res: int) -> np.ndarray:
    """The input features at the centres of a ``res`` x ``res`` grid over the view (row
    by row from the bottom: row i is y = ymin + (i + .5) dy), or ``res`` points in 1-D."""
    (x0, x1) = session._view["x"]
    xs = x0 + (np.arange(res) + 0.5) * (x1 - x0) / res       # cell centres
    if session.dims == 2:
        (y0, y1) = session._view["y"]
        ys = y0 + (np.arange(res) + 0.5) * (y1 - y0) / res
        gx, gy = np.meshgrid(xs, ys)                          # row i: y = ys[i]
        raw = np.stack([gx.ravel(), gy.ravel()], axis=1)
    else:
        raw = xs[:, None]
    return feature_columns(raw, session.inputs)


def neurons(session) -> dict | None:
    """Each hidden neuron's picture: its output, and the gradient of the prediction with
    respect to it, over a coarse grid of the input plane (the lab's ``neurons``).

    The gradient is that of the predicted class's log-probability (regression: of the
    prediction) with respect to the neuron's output, point by point: the loss needs a
    target, which a point of the plane has not. Weights are detached, so the
    parameters' gradients (the training step's) are untouched, and the modules are
    called without their hooks (the Monitor sees only training).
    """
    if session._view is None:
        return None
    hidden = sum(session.sizes[1:-1])
    res = (NEURON_RES if hidden <= NEURON_RES_UNTIL else NEURON_RES_MANY) \
        if session.dims == 2 else NEURON_RES_1D
    x = backprop.from_numpy(grid(session, res)).requires_grad_()
    outs, h = [], x
    with backprop.enable_grad(), np.errstate(over="ignore", invalid="ignore",
                                             divide="ignore"):
        for i, module in enumerate(session.model):
            if isinstance(module, nn.Linear):
                h = h @ module.weight.detach().T + module.bias.detach()
            elif i in session._dropout_at:
                continue                  # dropout is off outside training
            else:
                h = module.forward(h)
                h.retain_grad()
                outs.append(h)
        if session.task == "classification":
            logp = backprop.log_softmax(h, dim=1)
            pick = logp.detach().numpy().argmax(axis=1)
            chosen = (logp * backprop.from_numpy(
                np.eye(h.shape[1], dtype=np.float32)[pick])).sum()
        else:
            chosen = h.sum()
        if outs:
            chosen.backward()
    layers = []
    for a in outs:
        values, scale = as_bytes(a.detach().numpy().T)
        grads, grad_scale = as_bytes(a.grad.numpy().T if a.grad is not None
                                     else np.zeros(a.shape[::-1], np.float32))
        layers.append({"values": values, "scale": scale, "grads": grads,
                       "grad_scale": grad_scale})
    picture = {"dims": session.dims, "res": res, "x": session._view["x"], "layers": layers}
    if session.dims == 2:
        picture["y"] = session._view["y"]
    return picture


def boundary(session) -> dict | None:
    """The network's prediction over a grid of the view (the lab's ``boundary``): class
    probabilities, or the regression output, at ``boundary_res`` cells per side."""
    if session._view is None:
        return None
    res = session.boundary_res if session.dims == 2 else max(session.boundary_res * 2, 50)
    X = grid(session, res)
    was_training = session.model.training
    session.model.eval()
    try:
        with backprop.no_grad(), np.errstate(over="ignore", invalid="ignore",
                                             divide="ignore"):
            out = session.model(backprop.from_numpy(X)).numpy().astype(np.float64)
    finally:
        session.model.train(was_training)
    if session.task == "classification":
        with np.errstate(all="ignore"):
            e = np.exp(out - out.max(axis=1, keepdims=True))
            values = e / e.sum(axis=1, keepdims=True)
        grids = values.T                                      # (classes, cells)
    else:
        grids = out.T                                         # (1, cells)
    shape = (res, res) if session.dims == 2 else (res,)
    boundary = {"dims": session.dims, "res": res, "x": session._view["x"],
                "kind": session.task, "classes": session.n_classes,
                "values": [rounded(g.reshape(shape), 3) for g in grids]}
    if session.dims == 2:
        boundary["y"] = session._view["y"]
    if session.task == "regression":
        ys = np.concatenate([session._y_train.ravel(), session._y_test.ravel()])
        boundary["range"] = rounded([float(ys.min()), float(ys.max())], 4)
    return boundary


def points(session) -> dict | None:
    """The raw training and test samples with their labels (None for the digits)."""
    if session._raw_train is None:
        return None

    def rows(raw, y):
        if session.task == "classification":
            labels = y.astype(np.float64)[:, None]
        else:
            labels = y.astype(np.float64).reshape(-1, 1)
        return rounded(np.concatenate([raw.astype(np.float64), labels], axis=1), 4)

    return {"dims": session.dims, "train": rows(session._raw_train, session._y_train),
            "test": rows(session._raw_test, session._y_test)}


def network(session) -> tuple:
    """(the network's weights and gradients for drawing, per-layer gradient norms)."""
    weights, biases, wgrads, bgrads, norms = [], [], [], [], []
    for n_layer, i in enumerate(session._linear_at):
        layer = session.model[i]
        w = layer.weight.detach().numpy()
        weights.append(rounded(w, 4))
        biases.append(rounded(layer.bias.detach().numpy(), 4))
        gw, gb = layer.weight.grad, layer.bias.grad
        wgrads.append(None if gw is None else rounded(gw.numpy(), 3))
        bgrads.append(None if gb is None else rounded(gb.numpy(), 3))
        norms.append({
            "layer": str(i),
            "label": f"layer {n_layer + 1}" if n_layer < len(session._linear_at) - 1
            else "output",
            "norm": None if gw is None else rounded(float(np.linalg.norm(gw.numpy())), 4),
            "weight_norm": rounded(float(np.linalg.norm(w)), 4)})
    network = {"sizes": list(session.sizes), "inputs": list(session.inputs),
               "activations": activation_names(session.settings),
               "output": "softmax" if session.task == "classification" else "linear",
               "weights": weights, "biases": biases, "weight_grads": wgrads,
               "bias_grads": bgrads}
    return network, norms
