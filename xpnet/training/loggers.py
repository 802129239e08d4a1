"""Loggers, as callbacks: `HistoryLogger` (CSV or JSON Lines, no dependency), `TensorBoard` (event files through a
tensorboardX SummaryWriter) and `MLflowLogger` (an MLflow client and run). Each is given the object it writes
with (skorch's pattern): this module imports neither tensorboardX nor mlflow, the caller makes the writer or
client (`xpnet train --tensorboard/--mlflow` does: xpnet/cli/_loggers.py).

What they log: after every epoch its figures (fit's on_epoch_end logs: loss, accuracy, val_loss, val_accuracy,
lr, seconds, and grad_norm with clip_norm); with every_steps=N also every N updates the step's loss, learning
rate and, when known, its gradient norm (the pre-clip norm clip_norm records; with grad_norm=True computed
from the update's gradients where the step keeps them, eager steps). Reading a step's loss waits for the device
once per logged step, so every_steps=1 on a GPU costs a synchronisation per step; logging only epochs costs
none beyond fit's own.

Only the first process logs: in a data-parallel run (fit(distributed=...)) the loggers of ranks other than 0
write nothing (every rank holds the same state).
"""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from ..checks import POSITIVE_INT, check
from .callbacks import Callback
from .state import GRAD_NORM, HISTORY_KEYS


def epoch_metrics(logs: dict) -> dict:
    """The figures of an epoch a logger writes as metrics: every number of fit's on_epoch_end logs but the epoch's
    number (loss, accuracy, val_loss, val_accuracy with validation, lr, seconds, grad_norm with clip_norm, and any
    figure a later fit adds); None and non-finite values left out."""
    return {k: float(v) for k, v in logs.items() if k != "epoch" and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def process_rank() -> int:
    """This process's rank in the data-parallel run it is part of (0 when it is not distributed)."""
    dist = sys.modules.get("xpnet.distributed.communicator")
    comm = None if dist is None else dist.Communicator.current
    return 0 if comm is None else comm.rank


class _StepLogger(Callback):
    """What the loggers share: every_steps (None: epochs only), grad_norm, rank 0 only, and a step's figures."""

    def __init__(self, every_steps: int | None = None, grad_norm: bool = False):
        if every_steps is not None:
            check("every_steps", every_steps, POSITIVE_INT, owner=type(self).__name__)
        self.every_steps, self.grad_norm, self.active = every_steps, bool(grad_norm), True

    def implements(self, hook: str) -> bool:
        if hook == "on_batch_end":
            return self.every_steps is not None
        return super().implements(hook)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.active = process_rank() == 0

    def step_figures(self, logs: dict) -> dict | None:
        """{"step", "loss", "lr"[, "grad_norm"]} of the update that on_batch_end reports, every every_steps-th
        update (else None): the loss read from the device here."""
        step = logs["step"]
        if not self.active or step % self.every_steps:
            return None
        row = {"step": step, "epoch": self.model.state.epoch + 1, "loss": float(logs["loss"]),
               "lr": float(self.model.state.lr)}
        norm = logs.get(GRAD_NORM)
        if norm is None and self.grad_norm:
            norm = gradient_norm(self.model)
        if norm is not None:
            row[GRAD_NORM] = float(norm)
        evaluation = logs.get("evaluation")
        if evaluation is not None:
            row.update(val_loss=evaluation["val_loss"], val_accuracy=evaluation["val_accuracy"])
        return row

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Every every_steps-th update: each of the step's figures to `log_step` (a metric logger's one method)."""
        row = self.step_figures(logs)
        if row is None:
            return
        step = row.pop("step")
        row.pop("epoch")
        for key, value in row.items():
            self.log_step(key, value, step)

    def log_step(self, key: str, value: float, step: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} logs no steps")


def gradient_norm(model):
    """The global L2 norm of the last update's gradients (model.state.grads), a 0-d device array; None where
    the step does not keep them (the compiled step)."""
    grads = model.state.grads
    if not grads:
        return None
    xp = model.xp
    total = None
    for g in grads.values():
        s = xp.sum(g * g)
        total = s if total is None else total + s
    return xp.sqrt(total)


class HistoryLogger(_StepLogger):
    """The history of a run, written as it trains: `path` ending in .jsonl is JSON Lines, one object per
    epoch ({"kind": "epoch", "epoch", "loss", ...}) and with every_steps=N per N updates ({"kind": "step",
    "step", "epoch", "loss", "lr"[, "grad_norm"]}); any other path is CSV, the format `xpnet train --history`
    always wrote (a header of HISTORY_KEYS, grad_norm added with clip_norm; one row per epoch, empty cells for
    None), steps then going to a second CSV beside it (`steps_path`: h.csv -> h.steps.csv). The file is
    rewritten from the run's history at its first epoch (a resumed run's earlier epochs included) and then
    appended to, flushed after every epoch, so an interrupted run leaves its epochs so far (a resumed run's
    earlier step rows are not kept)."""

    def __init__(self, path, every_steps: int | None = None, grad_norm: bool = False):
        super().__init__(every_steps, grad_norm)
        self.path = Path(path)
        self.jsonl = self.path.suffix.lower() == ".jsonl"
        self.file = self.steps_file = self.writer = self.steps_writer = None

    @property
    def steps_path(self) -> Path:
        """Where a CSV history's step rows go (JSON Lines keeps them in `path`)."""
        return self.path if self.jsonl else self.path.with_suffix(".steps" + (self.path.suffix or ".csv"))

    def _open(self) -> None:
        """Open `path` and write the run's history so far: a resumed run's earlier epochs (and, at an epoch's
        end, that epoch)."""
        history = self.model.state.history
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", newline="")
        # HISTORY_KEYS first (the CSV `--history` always wrote), then any other column every epoch has (grad_norm
        # with clip_norm, the validation precision/recall/F1 with validation data)
        n = len(history["epoch"])
        self.keys = HISTORY_KEYS + tuple(k for k in history if k not in HISTORY_KEYS and len(history[k]) == n)
        if not self.jsonl:
            self.writer = csv.writer(self.file)
            self.writer.writerow(self.keys)
        for row in zip(*(history[k] for k in self.keys)):
            self._write(row)

    def _write(self, row: tuple) -> None:
        if self.jsonl:
            self.file.write(json.dumps({"kind": "epoch", **dict(zip(self.keys, row))}) + "\n")
        else:
            self.writer.writerow(["" if v is None else v for v in row])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.active:
            return
        if self.file is None:
            self._open()  # this epoch included
        else:
            self._write(tuple(logs.get(k) for k in self.keys))
        self.file.flush()
        if self.steps_file is not None:
            self.steps_file.flush()

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        row = self.step_figures(logs)
        if row is None:
            return
        if self.jsonl:
            if self.file is None:
                self._open()
            self.file.write(json.dumps({"kind": "step", **row}) + "\n")
            return
        if self.steps_file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.steps_file = open(self.steps_path, "w", newline="")
            self.steps_writer = csv.DictWriter(self.steps_file, ["step", "epoch", "loss", "lr", GRAD_NORM, "val_loss",
                                                                 "val_accuracy"], restval="")
            self.steps_writer.writeheader()
        self.steps_writer.writerow(row)

    def on_train_end(self, logs: dict | None = None) -> None:
        for f in (self.file, self.steps_file):
            if f is not None:
                f.close()
        self.file = self.steps_file = None


class TensorBoard(_StepLogger):
    """TensorBoard event files through `writer`, a tensorboardX SummaryWriter (or anything with its add_scalar,
    add_histogram, add_text, flush and close): per epoch the scalars "epoch/<figure>" (loss, accuracy,
    val_loss, val_accuracy, lr, seconds, grad_norm) at the epoch's number and, with histograms, one histogram
    "weights/<parameter>" per parameter (its values copied to the host once per epoch); with every_steps=N
    every N updates "step/loss", "step/lr" and "step/grad_norm" (when known) at the update's number. At the
    start the model's summary goes in as text ("model/summary"). close: close the writer when training ends
    (skorch's close_after_train)."""

    def __init__(self, writer, every_steps: int | None = None, histograms: bool = True, grad_norm: bool = False,
                 close: bool = True):
        super().__init__(every_steps, grad_norm)
        self.writer, self.histograms, self.close = writer, histograms, close

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self.active:
            self.writer.add_text("model/summary", "    " + self.model.summary(show=False).text().replace(
                "\n", "\n    "))  # indented: Markdown shows it as a fixed-width block

    def log_step(self, key: str, value: float, step: int) -> None:
        self.writer.add_scalar(f"step/{key}", value, step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.active:
            return
        n = logs["epoch"]
        for key, value in epoch_metrics(logs).items():
            self.writer.add_scalar(f"epoch/{key}", value, n)
        if self.histograms:
            model = self.model
            for name, value in model.parameters().items():
                self.writer.add_histogram(f"weights/{name}", model.bk.to_numpy(value), n)
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if not self.active:
            return
        self.writer.flush()
        if self.close:
            self.writer.close()


class MLflowLogger(_StepLogger):
    """An MLflow run through `client` (an mlflow.tracking.MlflowClient) and `run_id` (of a run it created, e.g.
    client.create_run(experiment_id).info.run_id): `params` (a dict) logged as the run's parameters when
    training begins; per epoch its figures as metrics at step = the epoch's number (with every_steps=N also
    "step_loss", "step_lr", "step_grad_norm" at the update's number); when training ends the final checkpoint
    as an artifact and the run marked finished (terminate). checkpoint: the path of a checkpoint file to log
    (e.g. ModelCheckpoint's), or a function dir -> path that writes one there; None writes the model with
    xpnet.saving.checkpoint.save."""

    def __init__(self, client, run_id: str, params: dict | None = None, every_steps: int | None = None,
                 checkpoint=None, grad_norm: bool = False, terminate: bool = True):
        super().__init__(every_steps, grad_norm)
        self.client, self.run_id, self.run_params = client, run_id, dict(params or {})
        self.checkpoint, self.terminate = checkpoint, terminate

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self.active:
            for key, value in self.run_params.items():
                self.client.log_param(self.run_id, key, "none" if value is None else str(value)[:6000])

    def log_step(self, key: str, value: float, step: int) -> None:
        self.client.log_metric(self.run_id, f"step_{key}", value, step=step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.active:
            return
        for key, value in epoch_metrics(logs).items():
            self.client.log_metric(self.run_id, key, value, step=logs["epoch"])

    def on_train_end(self, logs: dict | None = None) -> None:
        if not self.active:
            return
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = self.checkpoint
            if path is None:
                from ..saving.checkpoint import save
                path = save(self.model, Path(tmp) / "model.safetensors")
            elif callable(path):
                path = path(tmp)
            if Path(path).is_file():
                self.client.log_artifact(self.run_id, str(path))
        if self.terminate:
            self.client.set_terminated(self.run_id)
