"""Diagnostics: see what a network does while it trains, and what is wrong with it.

- :class:`Monitor` measures gradients, weights, updates, activations and gradient
  noise through hooks (a training callback, or in a loop of your own);
- :class:`Readings` is what it measured, as plain data with a JSON-lines file form;
- :func:`check_gradients` compares autograd with finite differences on your model, and
  :func:`run_selfcheck` does the same for backprop's own ops and layers;
- :mod:`backprop.diagnostics.plots` draws the readings (with matplotlib).

Example::

    from backprop.diagnostics import Monitor

    monitor = Monitor(model)
    fit(model, loss_fn, optimizer, loader, epochs=5, callbacks=[monitor])
    monitor.readings.last()["grad_norm"]
"""
from backprop.diagnostics.doctor import Finding, Report, diagnose
from backprop.diagnostics.gradients import GradientReport, ParameterCheck, check_gradients
from backprop.diagnostics.monitor import Monitor
from backprop.diagnostics.readings import Readings
from backprop.diagnostics.selfcheck import SelfCheckReport, run_selfcheck

__all__ = ["Finding", "Monitor", "Readings", "Report", "diagnose",
           "GradientReport", "ParameterCheck", "check_gradients", "SelfCheckReport",
           "run_selfcheck"]
