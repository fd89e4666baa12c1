"""Training: the loop (``fit`` / ``Trainer``), its history, callbacks and checkpoints.

Example::

    from backprop import nn, optim
    from backprop.train import EarlyStopping, ModelCheckpoint, fit

    history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3),
                  train_loader, epochs=50, val_data=val_loader, clip_grad_norm=1.0,
                  callbacks=[EarlyStopping(patience=5), ModelCheckpoint("runs/mnist")])
    fit(..., resume_from="runs/mnist/last.safetensors")   # continue exactly where it stopped
"""
from backprop.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLinesLogger,
    LambdaCallback,
    ModelCheckpoint,
)
from backprop.train.history import History
from backprop.train.loop import CheckpointError, Trainer, TrainingDiverged, fit, load_checkpoint
from backprop.train.progress import ProgressBar

__all__ = [
    "CSVLogger", "Callback", "CheckpointError", "EarlyStopping", "History", "JSONLinesLogger",
    "LambdaCallback", "ModelCheckpoint", "ProgressBar", "Trainer", "TrainingDiverged", "fit",
    "load_checkpoint",
]
