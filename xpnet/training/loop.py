"""The training loop: epochs of shuffled minibatches, history, validation, early stopping, callbacks.

Everything it reads and writes is the model's TrainState (`model.state`): position (epoch, minibatch,
data order), learning rate, parameters and optimizer state (through `model.train_step`), history.
The data moves to the device once; each epoch moves one index vector (the host RNG's shuffle) and
each minibatch is a `take` of rows on the device. Losses stay on the device until the epoch ends,
so a GPU is synchronised once per epoch, not once per step.
"""
from __future__ import annotations

import math
import time

from ..backend import is_host, is_out_of_memory, out_of_memory_message
# the training errors, also this module's (and xpnet.training's) names
from ..errors import InputError, OutOfMemory, TrainingDiverged, TrainingInterrupted
from ..layers.base import where_raised
from ..params import FRACTION, POSITIVE_INT, Interval, check
from .batches import batch_bounds, shard  # noqa: F401  (also this module's names)
from .callbacks import Callback, EarlyStopping  # also this module's (and xpnet.training's) names
from .state import HISTORY_KEYS, empty_history


def _scalar(model, v):
    """A device scalar of the model's dtype on the model's device (from a float or a device array)."""
    if is_host(v):
        return model.bk.asarray(v, dtype=model.dtype)
    return model.xp.astype(v, model.dtype)


def evaluate(model, X, Y, batch_size: int | None = None, progress=None) -> tuple[float, float]:
    """(mean data loss per sample, accuracy) of device arrays X: (n, features), Y: one-hot (n, outputs).
    batch_size: default the model's `inference_batch_size()`. progress: called with the number of samples
    after each batch."""
    batch_size = model.inference_batch_size() if batch_size is None else batch_size
    with model.bk:
        return _evaluate(model, X, Y, batch_size, progress)


def _evaluate(model, X, Y, batch_size: int, progress=None) -> tuple[float, float]:
    xp, n = model.xp, X.shape[0]
    total, correct = 0.0, 0.0
    for s in range(0, n, batch_size):
        e = min(s + batch_size, n)
        xb, yb = model.cast(X[s:e, ...]), Y[s:e, ...]
        z, _ = model.forward(xb)
        value = model.loss(z, yb)[0]
        total = total + (value * xb.shape[0] if model.loss.reduction == "mean" else value)
        correct = correct + xp.sum(xp.astype(xp.argmax(z, axis=1) == xp.argmax(yb, axis=1), model.dtype))
        if progress is not None:
            progress(e - s)
    vals = model.bk.to_numpy(xp.stack([_scalar(model, total), _scalar(model, correct)]))
    return float(vals[0]) / n, float(vals[1]) / n


def _count_correct(model, preds: list, labels, order_d, r0: int, r1: int):
    """How many of the per-step argmax predictions `preds` (covering rows r0:r1 of the epoch's order, or
    of the data when order_d is None) equal their labels, as a device scalar."""
    xp = model.xp
    pred = preds[0] if len(preds) == 1 else xp.concat(preds)
    lab = labels[r0:r1] if order_d is None else xp.take(labels, order_d[r0:r1], axis=0)
    return xp.sum(xp.astype(pred == lab, model.dtype))


def fit(model, X, y, **kwargs) -> dict:
    """Train `model` in place (see _fit for the options); an out-of-memory error from any backend becomes
    OutOfMemory, naming the batch size and model size to lower. It is raised after the failed attempt's
    exception is gone, so the failed step's frames and device arrays are not kept alive by it."""
    error = None
    try:
        return _fit(model, X, y, **kwargs)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        n_params = sum(math.prod(p.shape) for p in model.parameters().values())
        batch = kwargs.get("batch_size") or (f"1/{kwargs['minibatches']} of the data" if kwargs.get("minibatches")
                                             else "32")
        f32 = ", or use --dtype float32" if model.dtype_name == "float64" else ""
        error = OutOfMemory(out_of_memory_message(
            exc, model.bk, f"training a model of {n_params:,} parameters ({model.dtype_name}) with minibatches of "
                           f"{batch}: lower --batch-size (e.g. halve it), accumulate gradients over micro-batches "
                           f"(--accumulate 2, the same updates) or lower the hidden sizes{f32}"))
    raise error


def _fit(model, X, y, epochs: int = 10, batch_size: int | None = None, minibatches: int | None = None,
         shuffle: bool = True, compose_shuffles: bool = False, drop_last: bool = False, validation_split: float = 0.0,
         validation_data=None, early_stopping=None, callbacks=(), verbose: bool = False, resume=None,
         accumulate: int = 1, distributed=None) -> dict:
    """Train `model` in place; returns the history (per-epoch lists of HISTORY_KEYS, also `model.state.history`).

    shuffle: a new permutation from the model's host RNG every epoch; compose_shuffles applies it to the
    previous epoch's order (the 2015 book's X_data[perm]) instead of to 0..n-1. drop_last skips a last
    short minibatch. accumulate=k: each minibatch (batch_size stays the effective batch) is computed as k
    micro-batches whose gradients are summed before one update; the step count counts updates.
    resume: True (or the model's TrainState) continues an interrupted fit exactly where its state stopped,
    e.g. after xpnet.load. Set `model.state.stop_requested = True` (e.g. from a signal handler) to stop
    after the current step with TrainingInterrupted.
    distributed: True (MPI's world; start the processes with mpiexec or srun), an
    xpnet.distributed.Communicator or an mpi4py communicator: data-parallel training, batch_size being the
    global minibatch, the same run as one process up to summation order (xpnet.distributed.data_parallel). Every rank
    calls fit with the same model, data and options; a stop requested on any rank stops all after the same
    step. Write checkpoints from rank 0 only.
    """
    check("epochs", epochs, POSITIVE_INT)
    check("accumulate", accumulate, POSITIVE_INT)
    check("validation_split", validation_split, FRACTION)
    if early_stopping is not None and early_stopping is not False and not isinstance(early_stopping, EarlyStopping):
        check("early_stopping", early_stopping, POSITIVE_INT, hint="the patience in epochs")
    if validation_split and validation_data is not None:
        raise InputError("give validation_split or validation_data, not both")
    callbacks = check_callbacks(callbacks)
    st = model.state
    if resume is not None and resume is not False and resume is not True and resume is not st:
        raise InputError("resume= takes True (continue this model's own state, e.g. after xpnet.load); "
                         "another model's state cannot be continued here")
    resume = resume is not None and resume is not False
    if resume and st.settings is None:
        raise InputError("nothing to resume: this model's state holds no interrupted fit; call fit without resume")
    xp, bk = model.xp, model.bk
    dp = None
    if distributed is not None and distributed is not False:
        from ..distributed.data_parallel import DataParallel, refuse_layer_state
        from ..distributed.communicator import communicator
        if getattr(model, "compile", False):
            raise InputError.for_argument("compile", "True cannot be combined with distributed training: the "
                                          "compiled step fuses backward and update, leaving no place for the "
                                          "all-reduce between them; train eagerly (drop --compile) or on one process")
        refuse_layer_state(model)
        dp = DataParallel(model, communicator(distributed))
    Xd = model.as_input(X, keep_integers=True)  # raw pixels stay uint8 until a minibatch is gathered
    n_all = Xd.shape[0]
    Yd, Ld = model.as_targets(y, n_all)
    val = None
    if validation_split:
        n_val = int(round(n_all * validation_split))
        if n_val < 1 or n_val >= n_all:
            raise InputError.for_argument("validation_split", f"{validation_split} of {n_all} samples leaves an empty "
                                                             f"training or validation set")
        # the last part, deterministically (as the book's later editions hold out the last 5,000)
        val = (Xd[n_all - n_val:, ...], Yd[n_all - n_val:, ...])
        Xd, Yd, Ld = Xd[:n_all - n_val, ...], Yd[:n_all - n_val, ...], Ld[:n_all - n_val]
    elif validation_data is not None:
        Xv = model.as_input(validation_data[0], "validation X", keep_integers=True)
        val = (Xv, model.as_targets(validation_data[1], Xv.shape[0], "validation y", warn=False)[0])
    n = Xd.shape[0]
    bounds = batch_bounds(n, batch_size, minibatches)
    if drop_last and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < bounds[0][1] - bounds[0][0]:
        bounds = bounds[:-1]
    _check_accumulate(accumulate, bounds[0][1] - bounds[0][0], 1 if dp is None else dp.size)

    if early_stopping:
        callbacks.append(early_stopping if isinstance(early_stopping, EarlyStopping) else EarlyStopping(early_stopping))
    model.stop_training = False  # a Callback sets it to end training after the current epoch
    for cb in callbacks:
        if isinstance(cb, Callback):
            cb.set_model(model)
            cb.on_train_begin({})
        else:
            getattr(cb, "on_train_begin", lambda m: None)(model)
    batch_hooks = [_batch_hook(cb) for cb in callbacks if _has_batch_hook(cb)]

    if resume:
        if st.settings["n"] != n:
            raise InputError(f"the checkpoint was trained on {st.settings['n']} samples but this data has "
                             f"{n}; resume with the same data and validation split")
        st.settings = dict(st.settings, epochs=max(epochs, st.settings["epochs"]))
        _note_world_size(st.settings, dp)
        first_epoch, first_step, order = st.epoch, st.batch, st.order
        st.partial_losses = [_scalar(model, v) for v in st.partial_losses]
    else:
        st.settings = {"epochs": epochs, "batch_size": batch_size, "minibatches": minibatches, "shuffle": shuffle,
                       "compose_shuffles": compose_shuffles, "drop_last": drop_last,
                       "validation_split": validation_split, "lr0": st.lr, "n": n, "accumulate": accumulate}
        if dp is not None:
            st.settings["world_size"] = dp.size
        st.history, st.batch_losses = empty_history(), []
        first_epoch, first_step, order = 0, 0, None
        st.epoch, st.batch, st.order, st.partial_losses, st.partial_correct = 0, 0, None, [], 0.0
    settings = st.settings
    epochs, lr0 = settings["epochs"], settings["lr0"]
    accumulate = settings.get("accumulate", accumulate) if resume else accumulate
    history = st.history
    st.stop_requested = False
    take = bk.take
    compiled = model.compiled_step() if getattr(model, "compile", False) else None
    identity = bk.asarray(list(range(n))) if (compiled is not None or dp is not None) and not shuffle else None
    mean = model.loss.reduction == "mean"
    if dp is not None:  # refused on every rank before the first step unless every rank runs the same
        from ..distributed.data_parallel import run_digest
        dp.comm.check_same(run_digest(model, Xd, Yd, {k: v for k, v in settings.items() if k != "world_size"}),
                           "configurations, data or states")
    logs = {}
    for epoch in range(first_epoch, epochs):
        t0 = time.perf_counter()
        start = first_step if epoch == first_epoch else 0
        if start == 0:  # a new epoch: decay the rate, draw the shuffle
            st.lr = model.schedule(epoch, st.lr, lr0)
            if shuffle:
                perm = st.rng.permutation(n)
                order = perm if order is None or not compose_shuffles else order[perm]
            losses, correct = [], 0.0
        else:  # resuming inside an epoch: its rate and order were saved
            losses, correct = st.partial_losses, st.partial_correct
        st.order = order
        order_d = bk.asarray(order) if shuffle else identity
        st.epoch, st.batch, st.partial_losses, st.partial_correct = epoch, start, losses, correct
        for cb in callbacks:
            if isinstance(cb, Callback):
                cb.on_epoch_begin(epoch, {"lr": st.lr})
        preds = []  # argmax per step; compared with the labels once per epoch (one op per step, not five)
        for i in range(start, len(bounds)):
            s, e = bounds[i]
            if dp is not None:  # the global minibatch, this rank's shard of it, one all-reduce
                value, counted, stop, _ = dp.step(Xd, Yd, Ld, order_d[s:e], accumulate, stop=st.stop_requested)
                correct = correct + counted
                losses.append(value)
                st.batch = i + 1
                for hook in batch_hooks:
                    hook(model, i + 1, len(bounds), e - s, value)
                if stop:  # every rank saw the same flag: all stop after this step
                    st.stop_requested, st.partial_correct = True, correct
                    raise TrainingInterrupted(epoch + 1, i + 1, len(bounds))
                continue
            if compiled is not None:  # one compiled call: gather, forward, backward, update, argmax
                value, pred = _compiled_step(model, compiled, Xd, Yd, order_d[s:e], accumulate)
            else:
                if shuffle:
                    idx = order_d[s:e]
                    xb, yb = take(Xd, idx), take(Yd, idx)
                else:
                    xb, yb = Xd[s:e, ...], Yd[s:e, ...]
                value, z = model.train_step(model.cast(xb), yb, None, accumulate)
                pred = xp.argmax(z, axis=1)
            losses.append(value)
            preds.append(pred)
            st.batch = i + 1
            for hook in batch_hooks:
                hook(model, i + 1, len(bounds), e - s, value)
            if st.stop_requested:
                st.partial_correct = correct + _count_correct(model, preds, Ld, order_d, bounds[start][0],
                                                              bounds[i][1])
                raise TrainingInterrupted(epoch + 1, i + 1, len(bounds))
        if preds:
            correct = correct + _count_correct(model, preds, Ld, order_d, bounds[start][0], bounds[-1][1])
        host = bk.to_numpy(xp.stack(losses + [_scalar(model, correct)]))
        batch_losses = [float(v) for v in host[:-1]]
        bad = [i for i, v in enumerate(batch_losses) if not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"the loss became {batch_losses[bad[0]]} at epoch {epoch + 1}, step {bad[0] + 1} "
                                   f"(learning rate {st.lr:g}); lower the learning rate, e.g. --lr {st.lr / 10:g}")
        st.batch_losses.extend(batch_losses)
        used = sum(e - s for s, e in bounds)
        weights = [e - s for s, e in bounds] if mean else [1] * len(bounds)
        logs = {"epoch": epoch + 1, "loss": sum(v * w for v, w in zip(batch_losses, weights)) / used,
                "accuracy": float(host[-1]) / used, "val_loss": None, "val_accuracy": None, "lr": st.lr}
        if val is not None:
            logs["val_loss"], logs["val_accuracy"] = evaluate(model, *val)
        logs["seconds"] = time.perf_counter() - t0
        for k in HISTORY_KEYS:
            history[k].append(logs[k])
        st.epoch, st.batch, st.partial_losses, st.partial_correct = epoch + 1, 0, [], 0.0
        if verbose:
            print(epoch_line(logs, epochs), flush=True)
        stop = False
        for cb in callbacks:
            if isinstance(cb, Callback):
                cb.on_epoch_end(epoch, logs)
                continue
            hook = getattr(cb, "on_epoch_end", None) or (cb if callable(cb) else None)
            if hook is not None:
                stop = bool(hook(model, logs)) or stop
        if stop or model.stop_training:
            break
    for cb in callbacks:
        if isinstance(cb, Callback):
            cb.on_train_end(logs)
        else:
            getattr(cb, "on_train_end", lambda m: None)(model)
    return history


def _has_batch_hook(cb) -> bool:
    """Whether fit calls `cb` after every step: a Callback that overrides on_batch_end, or an object with one."""
    if isinstance(cb, Callback):
        return type(cb).on_batch_end is not Callback.on_batch_end
    return hasattr(cb, "on_batch_end")


def _batch_hook(cb):
    """cb's on_batch_end as hook(model, step, steps, rows, loss), step from 1: a Callback's gets (step - 1,
    {"size": rows, "loss": loss}) (Keras' hook), any other object's (model, step, steps) as before."""
    if isinstance(cb, Callback):
        return lambda model, step, steps, rows, loss: cb.on_batch_end(step - 1, {"size": rows, "loss": loss})
    return lambda model, step, steps, rows, loss: cb.on_batch_end(model, step, steps)


def _check_accumulate(accumulate: int, batch: int, ranks: int) -> None:
    """accumulate=k splits the rows one process computes of a minibatch (all `batch` of them, or with
    `ranks` data-parallel ranks its shard, at most ceil(batch / ranks)) into k micro-batches: refused when
    that leaves a micro-batch without a sample (the split would quietly make one-sample micro-batches)."""
    rows = -(-batch // ranks)
    what = (f"a minibatch of {batch} samples is split" if ranks == 1 else
            f"each of {ranks} ranks splits its {rows} of a minibatch's {batch} samples")
    check("accumulate", accumulate, Interval(int, 1, rows),
          hint=f"{what} into micro-batches of one sample or more: lower it, or raise the batch size")


CALLBACK_HOOKS = ("on_train_begin", "on_batch_end", "on_epoch_end", "on_train_end")


def check_callbacks(callbacks) -> list:
    """fit's callbacks as a list: each an xpnet.Callback, an object with at least one of CALLBACK_HOOKS (called
    as before Callback: on_epoch_end(model, logs), ...), or a function called as on_epoch_end(model, logs). Anything else (a name such as "tensorboard", an object with no hook) would be
    ignored silently, so it is refused in one line."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__") \
            or any(hasattr(callbacks, h) for h in CALLBACK_HOOKS):
        callbacks = [callbacks]  # one callback given alone: checked below like any other
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if isinstance(cb, (str, bytes)) or not (callable(cb) or any(hasattr(cb, h) for h in CALLBACK_HOOKS)):
            what = f"the name {cb!r} (xpnet has no callbacks by name)" if isinstance(cb, (str, bytes)) else \
                f"{type(cb).__name__} {cb!r:.40}, which has none of the hooks"
            raise InputError(f"callbacks[{i}] is {what}; pass objects with any of "
                             f"{', '.join(CALLBACK_HOOKS)}(model, ...) methods, or a function f(model, logs) called "
                             f"after every epoch, or an xpnet.Callback (xpnet.EarlyStopping is one)")
    return callbacks


def _note_world_size(settings: dict, dp) -> None:
    """Resuming on another number of ranks than the run had: the same run up to summation order, not bit
    for bit (warned once; the settings then record the new number)."""
    import warnings
    before, now = settings.get("world_size", 1), 1 if dp is None else dp.size
    if before != now:
        warnings.warn(f"resuming a run trained on {before} rank(s) on {now}: gradients are summed in another order, "
                      f"so the run continues the same up to rounding, not bit for bit", stacklevel=3)
        if dp is not None or "world_size" in settings:
            settings["world_size"] = now


def _compiled_step(model, compiled, Xd, Yd, idx, accumulate):
    """One compiled training step on the rows `idx` of the device-resident data; updates the TrainState.
    Returns (loss, predictions) as device arrays."""
    st = model.state
    noise = model.draw_noise(idx.shape[0])
    hyper = model.bk.scalar_args(model.optimizer.hyper(st.lr, st.step + 1))
    Xs, Ys, idx = model.step_inputs(Xd, Yd, idx)
    try:
        if model.has_layer_state:
            st.params, st.opt_state, value, pred, st.layer_state = compiled(st.params, st.opt_state, Xs, Ys, idx, noise,
                                                                            hyper, accumulate, st.layer_state)
        else:
            st.params, st.opt_state, value, pred = compiled(st.params, st.opt_state, Xs, Ys, idx, noise, hyper,
                                                            accumulate)
    except Exception as exc:
        if not model.bk.is_trace_error(exc):
            raise
        where = where_raised(exc) or "a layer, loss or optimizer"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error = InputError.for_argument("compile", f"True: {where} cannot be traced by the {model.bk.name} compiler: "
                                                   f"it does host work on an array ({type(exc).__name__}: "
                                                   f"{first[:160]}); write it with xp array operations only, or "
                                                   f"train without compile")
    else:
        st.step += 1
        return value, pred
    raise error


def epoch_figures(logs: dict) -> str:
    """An epoch's loss and accuracy, and with validation its val_loss and val_acc: 'loss 0.1234 acc 0.9612'."""
    val = "" if logs["val_loss"] is None else f" val_loss {logs['val_loss']:.4f} val_acc {logs['val_accuracy']:.4f}"
    return f"loss {logs['loss']:.4f} acc {logs['accuracy']:.4f}{val}"


def epoch_line(logs: dict, epochs: int, samples: int | None = None) -> str:
    """The one line an epoch prints (`fit(verbose=True)`, and `xpnet train` off a terminal): its figures,
    learning rate and time, and given the number of samples it trained on, their rate:
    'epoch 3/30 loss 0.1234 acc 0.9612 lr 0.1 0.42s 25,811 samples/s'."""
    rate = "" if not samples else f" {samples / max(logs['seconds'], 1e-9):,.0f} samples/s"
    return f"epoch {logs['epoch']}/{epochs} {epoch_figures(logs)} lr {logs['lr']:.3g} {logs['seconds']:.2f}s{rate}"
