"""Callbacks: `Callback`, the base class with Keras' hooks, and `EarlyStopping`, one of them.

fit calls a Callback's hooks in this order, with `self.model` set (by `set_model`) before the first:

    on_train_begin(logs)              logs: {}
      on_epoch_begin(epoch, logs)     logs: {"lr": the epoch's learning rate}, after the schedule set it
                                      (also for an epoch that resume= continues in its middle)
        on_batch_end(batch, logs)     after each update; logs: {"size": rows, "loss": the step's loss}
      on_epoch_end(epoch, logs)       logs: the epoch's figures (epoch, loss, accuracy, val_loss, val_accuracy,
                                      lr, seconds), what history_ records
    on_train_end(logs)                logs: the last epoch's figures ({} when none ran)

`epoch` and `batch` are indices from 0, as in Keras (logs["epoch"] is the epoch's number from 1, the one
printed). The step's loss in on_batch_end is a 0-d array on the model's device, not a float: fit reads
losses from the device once per epoch, and `float(logs["loss"])` waits for the device at every step.
Set `self.model.stop_training = True` in any hook to end training after the current epoch (its
on_epoch_end hooks all run; then on_train_end); `model.stop_requested = True` stops after the current
step instead, with TrainingInterrupted, ready to resume.

Objects with today's duck-typed hooks (`on_train_begin(model)`, `on_batch_end(model, step, steps)` with
step from 1, `on_epoch_end(model, logs)` whose true result stops training, `on_train_end(model)`) and plain
functions `f(model, logs)`, called after every epoch, still work: fit tells them apart from a Callback by
isinstance.
"""
from __future__ import annotations

import math

from ..params import POSITIVE_INT, check


class Callback:
    """Subclass it and override any of the hooks (each does nothing here); pass instances to
    `fit(callbacks=[...])`. `self.model` is the model being trained."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs; restore the best parameters."""

    def __init__(self, patience: int = 5, monitor: str = "val_loss", min_delta: float = 0.0, restore_best: bool = True):
        check("patience", patience, POSITIVE_INT, owner="EarlyStopping")
        self.patience, self.monitor, self.min_delta, self.restore_best = patience, monitor, min_delta, restore_best

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best, self.wait, self.best_params, self.stopped_epoch = math.inf, 0, None, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        model = self.model
        value = logs.get(self.monitor)
        if value is None:
            value = logs["loss"]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            if self.restore_best:  # copies: training updates parameters in place where it can
                self.best_params = {k: model.xp.asarray(v, copy=True) for k, v in model.parameters().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = logs["epoch"]
            model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best and self.best_params is not None and self.stopped_epoch is not None:
            self.model.set_parameters(self.best_params)
