"""The lab: a local web page where the real backprop engine trains while you drag the knobs.

``backprop lab`` starts it (it needs the ``lab`` extra: ``pip install 'backprop[lab]'``).
The engine side works without any web package::

    from backprop.lab import LabSession
    session = LabSession({"dataset": "spiral", "lr": 0.1})
    session.step(200)
    session.snapshot()["metrics"]["train_loss"]

Modules: :mod:`~backprop.lab.settings` (every control, its range and checks),
:mod:`~backprop.lab.session` (one training session), :mod:`~backprop.lab.training` (how
the lab trains: network, optimizer, schedule and the Trainer's step, shared with the
exported script), :mod:`~backprop.lab.data` (data sets and uploaded CSV files),
:mod:`~backprop.lab.export` (the exported script), :mod:`~backprop.lab.cells` (stability
map cells) and :mod:`~backprop.lab.pool` (their worker processes),
:mod:`~backprop.lab.rounding` (numbers for the page), :mod:`~backprop.lab.protocol` (the
WebSocket messages) and :mod:`~backprop.lab.server` (the FastAPI app; imported only when
used, so the rest works without FastAPI).
"""
from backprop.lab.session import LIMITS, LabSession
from backprop.lab.settings import SETTINGS, LabError, defaults, from_query, to_query, validate

__all__ = ["LIMITS", "SETTINGS", "LabError", "LabSession", "create_app", "defaults",
           "from_query", "to_query", "validate"]


def create_app(**kwargs):
    """The lab's ASGI app (see :func:`backprop.lab.server.create_app`); needs FastAPI."""
    from backprop.lab.server import create_app as _create_app

    return _create_app(**kwargs)
