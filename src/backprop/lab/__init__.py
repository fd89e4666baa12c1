"""The lab: a local web page where the real backprop engine trains while you drag the knobs.

``backprop lab`` starts it (it needs the ``lab`` extra: ``pip install 'backprop[lab]'``).
The engine side works without any web package::

    from backprop.lab import LabSession
    session = LabSession({"dataset": "spiral", "lr": 0.1})
    session.step(200)
    session.snapshot()["metrics"]["train_loss"]

Modules: :mod:`~backprop.lab.settings` (every control, its range and checks),
:mod:`~backprop.lab.session` (one training session), :mod:`~backprop.lab.pool` (the
worker processes of stability maps), :mod:`~backprop.lab.protocol` (the WebSocket messages)
and :mod:`~backprop.lab.server` (the FastAPI app; imported only when used, so the rest
works without FastAPI).
"""
from backprop.lab.session import LIMITS, LabSession
from backprop.lab.settings import SETTINGS, LabError, defaults, from_query, to_query, validate

__all__ = ["LIMITS", "SETTINGS", "LabError", "LabSession", "create_app", "defaults",
           "from_query", "to_query", "validate"]


def create_app(**kwargs):
    """The lab's ASGI app (see :func:`backprop.lab.server.create_app`); needs FastAPI."""
    from backprop.lab.server import create_app as _create_app

    return _create_app(**kwargs)
