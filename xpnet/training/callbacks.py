"""Callbacks: `Callback`, the base class with Keras' hooks, and the library's own: `EarlyStopping`,
`ProgressBar` (a tqdm bar or one line per epoch) and `ModelCheckpoint` (a checkpoint every epoch and, if
asked, every N steps).

fit calls a Callback's hooks in this order, with `self.model` set (by `set_model`) and `self.params` (by
`set_params`: {"epochs": the run's epochs (None: by steps only), "steps": the current epoch's number of
minibatches, "samples": training rows, "verbose"}) before the first:

    on_train_begin(logs)              logs: {}
      on_epoch_begin(epoch, logs)     logs: {"lr": the epoch's learning rate}, after the schedule set it
                                      (also for an epoch that resume= continues in its middle)
        on_batch_begin(batch, logs)   before each update; logs: {"size": rows}
        on_batch_end(batch, logs)     after each update; logs: {"size": rows, "loss": the step's loss, "step": the
                                      run's update count (1 after its first update; it goes on across resume)},
                                      with clip_norm "grad_norm": the update's global gradient norm before
                                      clipping (a 0-d device array, like the loss),
                                      and at a periodic evaluation (fit(eval_every=N)) "evaluation": that row of
                                      state.step_history ({"step", "loss", "val_loss", "val_accuracy", "lr"})
      on_epoch_end(epoch, logs)       logs: the epoch's figures (epoch, loss, accuracy, val_loss, val_accuracy,
                                      lr, seconds; with clip_norm grad_norm, the mean of the epoch's pre-clip
                                      norms), what history_ records
    on_train_end(logs)                logs: the last epoch's figures ({} when none ran)

`epoch` and `batch` are indices from 0, as in Keras (logs["epoch"] is the epoch's number from 1, the one
printed). The step's loss in on_batch_end is a 0-d array on the model's device, not a float: fit reads
losses from the device once per epoch, and `float(logs["loss"])` waits for the device at every step.
The per-step hooks run only for callbacks that override them (`implements`), so a callback without them
costs the loop nothing per step. Set `self.model.stop_training = True` in any hook to end training after
the current epoch (its on_epoch_end hooks all run; then on_train_end); `model.stop_requested = True`
stops after the current step instead, with TrainingInterrupted, ready to resume.

Objects with the duck-typed hooks of earlier versions (`on_train_begin(model)`, `on_batch_end(model, step,
steps)` with step from 1, `on_epoch_end(model, logs)` whose true result stops training, `on_train_end(model)`)
and plain functions `f(model, logs)`, called after every epoch (as is such an object without on_epoch_end
that is callable), still work: `check_callbacks` wraps each once in an adapter Callback (`LegacyCallback`,
`FunctionCallback`), so fit only ever calls Callback hooks.
"""
from __future__ import annotations

import math
import sys

from ..errors import InputError
from ..checks import POSITIVE_INT, check
from ..metrics import monitor_mode


class Callback:
    """Subclass it and override any of the hooks (each does nothing here); pass instances to
    `fit(callbacks=[...])`. `self.model` is the model being trained."""

    model = None
    params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def implements(self, hook: str) -> bool:
        """Whether fit calls `hook`: by default, whether this class overrides it (per-step hooks cost time on
        every step, so fit calls only the ones a callback has)."""
        return getattr(type(self), hook) is not getattr(Callback, hook)

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


def monitored(monitor: str, sign: float, logs: dict, owner: str):
    """The monitored figure of an epoch's logs times sign (+1 to minimize, -1 to maximize). val_loss falls back
    to the training loss when there is no validation data (as it always did); any other figure missing is
    refused in one line."""
    value = logs.get(monitor)
    if value is None:
        if monitor == "val_loss":
            return sign * logs["loss"]
        have = ", ".join(k for k, v in logs.items() if isinstance(v, float))
        raise InputError(f"{owner}(monitor={monitor!r}): this fit's epochs report no {monitor} (they report {have}); "
                         f"validation figures need validation_split or validation_data (--val-split)")
    return sign * value


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs; restore the best parameters.

    monitor: any figure of the epoch's logs: val_loss (default), val_accuracy, val_f1_macro, ... (see
    xpnet.metrics.VALIDATION_METRICS). mode: 'min', 'max', or 'auto' (from the name: losses fall, the rest
    rise). min_delta: the least change that counts as an improvement."""

    def __init__(self, patience: int = 5, monitor: str = "val_loss", min_delta: float = 0.0, restore_best: bool = True,
                 mode: str = "auto"):
        check("patience", patience, POSITIVE_INT, owner="EarlyStopping")
        self.patience, self.monitor, self.min_delta, self.restore_best = patience, monitor, min_delta, restore_best
        self.mode = monitor_mode(monitor, mode)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best, self.wait, self.best_params, self.stopped_epoch = math.inf, 0, None, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        model = self.model
        value = monitored(self.monitor, 1.0 if self.mode == "min" else -1.0, logs, "EarlyStopping")
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


class ProgressBar(Callback):
    """Training progress: with `bar` (default: when stderr is a terminal) a tqdm bar per epoch on stderr counting
    samples (its rate is samples/s) that ends with the epoch's loss and accuracy; otherwise one line per epoch on
    stdout with the same figures and the rate (`epoch_line`). epochs: the total shown (default the run's)."""

    def __init__(self, epochs: int | None = None, bar: bool | None = None):
        self.epochs, self.bar, self.tqdm, self.done = epochs, bar, None, 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.bar is None:
            self.bar = sys.stderr.isatty()

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self.bar:
            return
        n, total, step = self.model.state.settings["n"], self.params["steps"], batch + 1
        if self.tqdm is None:
            from tqdm import tqdm
            self.done = (step - 1) * (n // total)
            self.tqdm = tqdm(total=n, initial=self.done, desc=f"epoch {self.model.state.epoch + 1}/{self._epochs()}",
                             unit="sample", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
        now = n if step == total else step * (n // total)
        self.tqdm.update(now - self.done)
        self.done = now

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.tqdm is not None:
            self.tqdm.set_postfix_str(epoch_figures(logs), refresh=True)
            self.tqdm.close()
            self.tqdm = None
            return
        print(epoch_line(logs, self._epochs(), self.model.state.settings["n"]), flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.tqdm is not None:  # a run by steps that ended inside an epoch
            self.tqdm.close()
            self.tqdm = None

    def _epochs(self):
        return self.epochs if self.epochs is not None else self.params.get("epochs")


class ModelCheckpoint(Callback):
    """Writes `path` (a safetensors checkpoint: xpnet.load reads it, fit(resume=True) continues it) after every
    epoch, atomically (a diverged epoch raises before this runs, so the last good file stays), and with
    every_steps=N also after every N updates of the run (inside an epoch too: such a file resumes exactly).
    extra: more JSON metadata, arrays: more host arrays stored with it. writer: whether this process writes (in a
    distributed run rank 0 only: every rank holds the same state). path None writes nothing.

    monitor (e.g. "val_f1_macro"; mode 'auto' infers 'max' or 'min' from the name, as EarlyStopping does): write
    at an epoch's end only when that figure improved on the best so far (the file holds the best epoch's
    model; every_steps writes are then left out). `best` is the best value seen since this fit began (a resumed
    fit starts afresh)."""

    def __init__(self, path, extra: dict | None = None, arrays: dict | None = None, writer: bool = True,
                 every_steps: int | None = None, monitor: str | None = None, mode: str = "auto"):
        if every_steps is not None:
            check("every_steps", every_steps, POSITIVE_INT, owner="ModelCheckpoint")
        if monitor is not None and every_steps is not None:
            raise InputError("ModelCheckpoint: monitor= keeps the best epoch's model, every_steps= the latest "
                             "state; give one of them (two callbacks for both)")
        self.path, self.extra, self.arrays, self.writer = path, extra or {}, arrays or {}, writer
        self.every_steps, self.monitor, self.best = every_steps, monitor, None
        if monitor is not None:
            self.mode = monitor_mode(monitor, mode)

    def implements(self, hook: str) -> bool:
        if hook == "on_batch_end":
            return self.every_steps is not None
        return super().implements(hook)

    def save(self, path=None, model=None):
        """Write the checkpoint now (to `path`, default this callback's), of `model` (default the one trained)."""
        from ..saving.checkpoint import save
        return save(model or self.model, path or self.path, extra=self.extra, arrays=self.arrays)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.path and self.writer and logs["step"] % self.every_steps == 0:
            self.save()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.monitor is not None:
            sign = 1.0 if self.mode == "min" else -1.0
            value = monitored(self.monitor, sign, logs, "ModelCheckpoint")
            if self.best is not None and not value < sign * self.best:
                return
            self.best = sign * value
        if self.path and self.writer:
            self.save()


class LegacyCallback(Callback):
    """An object with the duck-typed hooks of earlier versions (on_train_begin(model), on_batch_end(model, step,
    steps) with step from 1, on_epoch_end(model, logs) whose true result stops training, on_train_end(model)),
    as a Callback. An object without on_epoch_end that is itself callable is called as obj(model, logs) after
    every epoch instead, as earlier versions did."""

    def __init__(self, obj):
        self.obj = obj

    def implements(self, hook: str) -> bool:
        if hook == "on_epoch_end":
            return self._epoch_hook() is not None
        return hook in ("on_train_begin", "on_batch_end", "on_train_end") and hasattr(self.obj, hook)

    def _epoch_hook(self):
        """obj.on_epoch_end, else obj itself when callable, else None."""
        return getattr(self.obj, "on_epoch_end", None) or (self.obj if callable(self.obj) else None)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if hasattr(self.obj, "on_train_begin"):
            self.obj.on_train_begin(self.model)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.obj.on_batch_end(self.model, batch + 1, self.params["steps"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        hook = self._epoch_hook()
        if hook is not None and hook(self.model, logs):
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if hasattr(self.obj, "on_train_end"):
            self.obj.on_train_end(self.model)


class FunctionCallback(Callback):
    """A function f(model, logs), called after every epoch (a true result stops training), as a Callback."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.fn(self.model, logs):
            self.model.stop_training = True


CALLBACK_HOOKS = ("on_train_begin", "on_batch_end", "on_epoch_end", "on_train_end")


def check_callbacks(callbacks) -> list:
    """fit's callbacks as a list of Callbacks: each an xpnet.Callback, an object with at least one of CALLBACK_HOOKS
    (called as before Callback: on_epoch_end(model, logs), ...; wrapped in a LegacyCallback), or a function
    called as on_epoch_end(model, logs) (wrapped in a FunctionCallback). Anything else (a name such as
    "tensorboard", an object with no hook) would be ignored silently, so it is refused in one line."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__") \
            or any(hasattr(callbacks, h) for h in CALLBACK_HOOKS):
        callbacks = [callbacks]  # one callback given alone: checked below like any other
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if isinstance(cb, Callback):
            continue
        if any(hasattr(cb, h) for h in CALLBACK_HOOKS) and not isinstance(cb, (str, bytes)):
            callbacks[i] = LegacyCallback(cb)
        elif callable(cb):
            callbacks[i] = FunctionCallback(cb)
        else:
            what = f"the name {cb!r} (xpnet has no callbacks by name)" if isinstance(cb, (str, bytes)) else \
                f"{type(cb).__name__} {cb!r:.40}, which has none of the hooks"
            raise InputError(f"callbacks[{i}] is {what}; pass objects with any of "
                             f"{', '.join(CALLBACK_HOOKS)}(model, ...) methods, or a function f(model, logs) called "
                             f"after every epoch, or an xpnet.Callback (xpnet.EarlyStopping is one)")
    return callbacks


def epoch_figures(logs: dict) -> str:
    """An epoch's loss and accuracy, and with validation its val_loss and val_acc: 'loss 0.1234 acc 0.9612'."""
    val = "" if logs["val_loss"] is None else f" val_loss {logs['val_loss']:.4f} val_acc {logs['val_accuracy']:.4f}"
    norm = "" if logs.get("grad_norm") is None else f" grad_norm {logs['grad_norm']:.4g}"  # with clip_norm
    return f"loss {logs['loss']:.4f} acc {logs['accuracy']:.4f}{val}{norm}"


def epoch_line(logs: dict, epochs: int | None, samples: int | None = None) -> str:
    """The one line an epoch prints (`fit(verbose=True)`, and `xpnet train` off a terminal): its figures,
    learning rate and time, and given the number of samples it trained on, their rate:
    'epoch 3/30 loss 0.1234 acc 0.9612 lr 0.1 0.42s 25,811 samples/s' (epochs None, a run by steps: 'epoch 3 ...')."""
    rate = "" if not samples else f" {samples / max(logs['seconds'], 1e-9):,.0f} samples/s"
    total = "" if epochs is None else f"/{epochs}"
    return f"epoch {logs['epoch']}{total} {epoch_figures(logs)} lr {logs['lr']:.3g} {logs['seconds']:.2f}s{rate}"
