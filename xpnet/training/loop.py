"""The training loop: `fit` (epochs or steps of minibatches, history, validation, periodic evaluation, early
stopping, callbacks) and `evaluate`.

fit is made of pieces: check the options, prepare the data (`_prepare_data`), make the batch source
(`_make_source`: xpnet.training.sources), begin or resume the run (`_begin_run`), choose the step strategy once
(`make_step`: xpnet.training.steps), then `_Run` runs epochs: per step `step(s, e)`, then the bookkeeping written
once for every strategy (losses, position, per-step callbacks, periodic evaluation, the stop check).

Everything it reads and writes is the model's TrainState (`model.state`): position (epoch, minibatch,
data order), learning rate, parameters and optimizer state (through the step), history.
The data moves to the device once; each epoch moves one index vector (the source's order) and
each minibatch is a `take` of rows on the device. Losses stay on the device until the epoch ends,
so a GPU is synchronised once per epoch, not once per step (and once per periodic evaluation).
"""
from __future__ import annotations

import math
import time

from array_api_compat import device

from ..backend import is_host, is_out_of_memory, out_of_memory_message
# the training errors, also this module's (and xpnet.training's) names
from ..errors import InputError, OutOfMemory, PrefetchError, TrainingDiverged, TrainingInterrupted
from ..checks import FRACTION, POSITIVE_INT, Interval, check
from ..losses import for_loss
from ..metrics import VALIDATION_METRICS, metrics_from_confusion
from .batches import batch_bounds, shard  # noqa: F401  (also this module's names)
# also this module's (and xpnet.training's) names
from .callbacks import CALLBACK_HOOKS, Callback, EarlyStopping, check_callbacks, epoch_figures, epoch_line  # noqa: F401
from .prefetch import batches_in_order
from .sources import BatchSource, ShuffledEpochs, check_source, eval_rows, is_dataset
from .state import GRAD_NORM, HISTORY_KEYS, STEP_HISTORY_KEYS, empty_history, empty_step_history
from .steps import make_step


def _scalar(model, v):
    """A device scalar of the model's dtype on the model's device (from a float or a device array)."""
    if is_host(v):
        return model.bk.asarray(v, dtype=model.dtype)
    return model.xp.astype(v, model.dtype)


def evaluate(model, X, Y, batch_size: int | None = None, progress=None, confusion: bool = False, rows=None,
             prefetch: int = 0):
    """(mean data loss per sample, accuracy) of device arrays X: (n, features), Y: integer class indices (n,) or
    one-hot rows (n, outputs); for a sequence model ((time, outputs) logits) Y (n, time) or (n, time, outputs),
    the accuracy then the fraction of every position right (argmax over the last axis) and the confusion
    counts over every position. X may be a map-style dataset (Y None; xpnet.training.sources), its rows read
    batch by batch. rows: a host integer vector, the rows to evaluate (repeats allowed; default all).
    batch_size: default the model's `inference_batch_size()`. progress: called with
    the number of samples after each batch. confusion=True: (loss, accuracy, confusion counts) with the counts
    a host int64 (outputs, outputs) array, rows true and columns predicted (xpnet.metrics reads them).
    prefetch=N (X a dataset): its next N batches read and staged by N threads while one is scored
    (xpnet.training.prefetch.batches_in_order; the same figures); arrays: nothing to do."""
    batch_size = model.inference_batch_size() if batch_size is None else batch_size
    check("prefetch", prefetch, Interval(int, 0, None), owner="evaluate",
          hint="a dataset's batches read ahead by as many threads (0: none)")
    with model.bk:
        if not is_dataset(X):
            return _evaluate(model, X, Y, batch_size, progress, confusion, rows)
        n = len(X) if rows is None else len(rows)
        bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        with batches_in_order(model, X, range(n) if rows is None else rows, bounds, prefetch) as batches:
            return _evaluate(model, batches, None, batch_size, progress, confusion, rows, n)


def _evaluate(model, X, Y, batch_size: int, progress=None, confusion: bool = False, rows=None, n=None):
    """X: device arrays, or an iterator of a dataset's (x, y) batches on the device, n rows in all."""
    xp, k = model.xp, model.n_outputs
    dataset = n is not None
    n = n if dataset else len(rows) if rows is not None else X.shape[0]
    total, correct, counts = 0.0, 0.0, None
    cm, counted, exact = None, 0, count_limit(xp, model.dtype)  # host int64 counts, rows in `counts` since
    indices = True if dataset else xp.isdtype(Y.dtype, "integral")
    if rows is not None and not dataset:
        rows_d = model.bk.asarray(rows)
    for s in range(0, n, batch_size):
        e = min(s + batch_size, n)
        if dataset:
            xb, yb = next(X)
            xb = model.cast(xb)
        elif rows is not None:
            xb, yb = model.cast(model.bk.take(X, rows_d[s:e])), model.bk.take(Y, rows_d[s:e])
        else:
            xb, yb = model.cast(X[s:e, ...]), Y[s:e, ...]
        z, _ = model.forward(xb)
        value = model.loss(z, for_loss(model.loss, z, yb))[0]
        total = total + (value * xb.shape[0] if model.loss.reduction == "mean" else value)
        labels, pred = yb if indices else xp.argmax(yb, axis=-1), xp.argmax(z, axis=-1)
        correct = correct + model.count_correct(pred, labels)
        if confusion:  # one-hot(true)^T one-hot(pred): the counts of this batch, on the device
            classes = xp.reshape(xp.arange(k, dtype=labels.dtype, device=device(z)), (1, k))
            t = xp.astype(xp.reshape(labels, (-1, 1)) == classes, model.dtype)
            p = xp.astype(xp.reshape(xp.astype(pred, labels.dtype), (-1, 1)) == classes, model.dtype)
            if counts is not None and counted + t.shape[0] > exact:  # past what the float counts hold exactly
                cm, counts, counted = _host_counts(model, cm, counts), None, 0
            batch_counts = xp.matmul(xp.matrix_transpose(t), p)
            counts = batch_counts if counts is None else counts + batch_counts
            counted += t.shape[0]
        if progress is not None:
            progress(e - s)
    vals = model.bk.to_numpy(xp.stack([_scalar(model, total), _scalar(model, correct)]))
    if not confusion:
        return float(vals[0]) / n, float(vals[1]) / n
    return float(vals[0]) / n, float(vals[1]) / n, _host_counts(model, cm, counts)


def count_limit(xp, dtype) -> int:
    """The largest count a float of `dtype` holds exactly, and every whole number below it (float32: 2**24)."""
    return int(2 / xp.finfo(dtype).eps)


def _host_counts(model, cm, counts):
    """Host int64 counts cm (or None) plus the device float counts `counts` (or None)."""
    if counts is None:
        return cm
    add = model.bk.to_numpy(counts).round().astype("int64")
    return add if cm is None else cm + add


DEFAULT_EPOCHS = 10  # what fit trains without epochs= and steps=


def fit(model, X, y, *, epochs: int | None = None, steps: int | None = None, batch_size: int | None = None,
        minibatches: int | None = None, shuffle: bool = True, compose_shuffles: bool = False, drop_last: bool = False,
        source=None, validation_split: float = 0.0, validation_data=None, eval_every: int | None = None,
        eval_batches: int | None = None, early_stopping=None, callbacks=(), verbose: bool = False, resume=None,
        accumulate: int = 1, distributed=None, class_weight=None, sample_weight=None, prefetch: int = 0) -> dict:
    """Train `model` in place on device-ready X and labels y; returns the history (per-epoch lists of HISTORY_KEYS,
    also `model.state.history`).

    epochs: the run's epochs (default 10; None with steps=: as many as the steps take). steps: the run's total
    number of updates; with both, training ends at whichever comes first. A run by steps may end inside an epoch:
    its state is then that of an interrupted run, and fit(resume=True, steps=M) continues it to M updates
    (resumed, the limits given replace the saved ones, epochs never below the saved epochs; none given: the
    saved ones).
    batch_size (default 32) or minibatches (a count), shuffle, compose_shuffles, drop_last: the epochs'
    minibatches (xpnet.training.sources.ShuffledEpochs); source: a BatchSource in their place (e.g.
    IndexBatches([...])). accumulate=k: each minibatch (batch_size stays the effective batch) is computed as k
    micro-batches whose gradients are summed before one update; the step count counts updates.
    validation_split (the last part of the data) or validation_data=(X, y): figures after every epoch;
    eval_every=N also evaluates on it every N updates, rows of `model.state.step_history` (step, the mean loss
    of those N minibatches, val_loss, val_accuracy, lr) also given to callbacks (on_batch_end's
    logs["evaluation"]). eval_batches=K: each evaluation (periodic and after each epoch) on K minibatches of
    validation rows drawn with replacement from a stream of its own (`sources.eval_rows`: seeded by the model's
    seed and the update count, so it never moves the training batches), not on all of them (nanoGPT's
    estimate_loss). X may be a map-style dataset (y None; see xpnet.training.sources), validation_data= too;
    early_stopping: a patience in epochs or an EarlyStopping. callbacks: xpnet.Callback
    objects (xpnet.ProgressBar, xpnet.ModelCheckpoint, ...), older duck-typed objects or functions
    f(model, logs) (see xpnet.training.callbacks). verbose: one line per epoch.
    resume: True (or the model's TrainState) continues an interrupted fit exactly where its state stopped,
    e.g. after xpnet.load. Set `model.state.stop_requested = True` (e.g. from a signal handler) to stop
    after the current step with TrainingInterrupted.
    distributed: True (MPI's world; start the processes with mpiexec or srun), an
    xpnet.distributed.Communicator or an mpi4py communicator: data-parallel training, batch_size being the
    global minibatch, the same run as one process up to summation order (xpnet.distributed.data_parallel). Every
    rank calls fit with the same model, data and options; a stop requested on any rank stops all after the same
    step. Write checkpoints from rank 0 only (ModelCheckpoint(writer=)).
    class_weight ({label: weight} or "balanced") and sample_weight ((n,) numbers): each minibatch's loss is
    the weighted mean, divided by the sum of the minibatch's weights (over its micro-batches and ranks too).
    prefetch=N (X a dataset): N threads read and stage the next N minibatches while the step runs, the same
    batches in the same order, the state that of the last step taken (xpnet.training.prefetch); validation
    data that is a dataset is read ahead so too; 0 (default): each step reads its own. With arrays (already on
    the device) it does nothing.

    The targets stay class indices (integers) on the device; each step's loss makes its minibatch's one-hot
    rows (xpnet.losses). Validation figures include precision, recall and F1 (val_f1_macro, ...:
    xpnet.metrics.VALIDATION_METRICS), which EarlyStopping and ModelCheckpoint can monitor.

    An out-of-memory error from any backend becomes OutOfMemory, naming the batch size and model size to lower.
    It is raised after the failed attempt's exception is gone, so the failed step's frames and device arrays
    are not kept alive by it."""
    options = _Options(epochs=epochs, steps=steps, batch_size=batch_size, minibatches=minibatches, shuffle=shuffle,
                       compose_shuffles=compose_shuffles, drop_last=drop_last, source=source,
                       validation_split=validation_split, validation_data=validation_data, eval_every=eval_every,
                       eval_batches=eval_batches, early_stopping=early_stopping, callbacks=callbacks,
                       verbose=verbose, resume=resume, accumulate=accumulate, distributed=distributed,
                       class_weight=class_weight, sample_weight=sample_weight, prefetch=prefetch)
    error = None
    try:
        return _fit(model, X, y, options)
    except Exception as exc:
        if isinstance(exc, PrefetchError) and is_out_of_memory(exc.__cause__):
            exc = exc.__cause__  # a prefetch thread's allocation failed: the same error as in the step
        if not is_out_of_memory(exc):
            raise
        n_params = sum(math.prod(p.shape) for p in model.parameters().values())
        batch = batch_size or (f"1/{minibatches} of the data" if minibatches else "32")
        f32 = ", or use --dtype float32" if model.dtype_name == "float64" else ""
        error = OutOfMemory(out_of_memory_message(
            exc, model.bk, f"training a model of {n_params:,} parameters ({model.dtype_name}) with minibatches of "
                           f"{batch}: lower --batch-size (e.g. halve it), accumulate gradients over micro-batches "
                           f"(--accumulate 2, the same updates) or lower the hidden sizes{f32}"))
    raise error


class _Options:
    """fit's keyword arguments, as attributes (what the pieces of _fit read)."""

    def __init__(self, **options):
        self.__dict__.update(options)


class _Data:
    """The training rows on the device: X (n, ...), targets Y (n,): the class indices, the same array as the
    labels L (n,), per-sample weights W (n,) or None, and val: (X, labels) of the validation data or None."""

    def __init__(self, X, Y, L, val, W=None, n=None):
        self.X, self.Y, self.L, self.val, self.W = X, Y, L, val, W
        self.n = X.shape[0] if n is None else n


def _fit(model, X, y, o: _Options) -> dict:
    _check_options(o)
    callbacks = check_callbacks(o.callbacks)
    st = model.state
    resume = _resume_flag(st, o.resume)
    dp = _data_parallel(model, o.distributed)
    data = _prepare_data(model, X, y, o.validation_split, o.validation_data, o.class_weight, o.sample_weight)
    if o.eval_every is not None and data.val is None:
        raise InputError.for_argument("eval_every", f"{o.eval_every} evaluates on validation data, and this fit has "
                                                    f"none: give validation_split or validation_data too")
    source = _make_source(o, data.n, st.settings if resume else None)
    _check_accumulate(o.accumulate, source.batch_rows(), 1 if dp is None else dp.size)
    if o.early_stopping:
        callbacks.append(o.early_stopping if isinstance(o.early_stopping, EarlyStopping)
                         else EarlyStopping(o.early_stopping))
    model.stop_training = False  # a Callback sets it to end training after the current epoch
    params = {"epochs": None, "steps": None, "samples": data.n, "verbose": bool(o.verbose)}
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params(params)
        cb.on_train_begin({})
    weights = _weights_digest(model, data.W, st.settings if resume else None)  # a resumed run: its own weights
    settings = _begin_run(model, o, source.settings(), data.n, dp, resume)
    if weights is not None and not resume:
        settings["weights"] = weights
    params["epochs"] = settings["epochs"]
    step = make_step(model, data.X, data.Y, data.L, settings.get("accumulate", o.accumulate) if resume
                     else o.accumulate, dp, data.W, o.prefetch)
    if dp is not None:  # refused on every rank before the first step unless every rank runs the same
        from ..distributed.data_parallel import run_digest
        dp.comm.check_same(run_digest(model, data.X, data.Y, {k: v for k, v in settings.items() if k != "world_size"},
                                      data.W), "configurations, data or states")
    try:
        logs = _Run(model, data, source, step, callbacks, params, o).run()
    finally:
        st.settle = None
        step.close()  # prefetch threads joined, whatever ended the run
    for cb in callbacks:
        cb.on_train_end(logs)
    return st.history


def _check_options(o: _Options) -> None:
    """Each argument alone, in one line each (those that need the data are checked where it is known)."""
    if o.epochs is not None:
        check("epochs", o.epochs, POSITIVE_INT)
    if o.steps is not None:
        check("steps", o.steps, POSITIVE_INT, hint="the run's total number of updates")
    if o.eval_every is not None:
        check("eval_every", o.eval_every, POSITIVE_INT, hint="evaluate every this many updates")
    if o.eval_batches is not None:
        check("eval_batches", o.eval_batches, POSITIVE_INT, hint="the minibatches of validation rows each "
                                                                 "evaluation draws")
    check("accumulate", o.accumulate, POSITIVE_INT)
    check("prefetch", o.prefetch, Interval(int, 0, None), hint="the minibatches of a dataset read ahead (0: none)")
    check("validation_split", o.validation_split, FRACTION)
    if o.early_stopping is not None and o.early_stopping is not False \
            and not isinstance(o.early_stopping, EarlyStopping):
        check("early_stopping", o.early_stopping, POSITIVE_INT, hint="the patience in epochs")
    if o.validation_split and o.validation_data is not None:
        raise InputError("give validation_split or validation_data, not both")
    if o.source is not None:
        check_source(o.source)
        given = [f"{k}={v!r}" for k, v in (("batch_size", o.batch_size), ("minibatches", o.minibatches),
                                           ("shuffle", o.shuffle), ("compose_shuffles", o.compose_shuffles),
                                           ("drop_last", o.drop_last))
                 if (v is False if k == "shuffle" else v is not None and v is not False)]
        if given:
            raise InputError(f"source= gives the minibatches, so {', '.join(given)} cannot apply; drop "
                             f"{'it' if len(given) == 1 else 'them'} or the source")


def _resume_flag(st, resume) -> bool:
    if resume is not None and resume is not False and resume is not True and resume is not st:
        raise InputError("resume= takes True (continue this model's own state, e.g. after xpnet.load); "
                         "another model's state cannot be continued here")
    resume = resume is not None and resume is not False
    if resume and st.settings is None:
        raise InputError("nothing to resume: this model's state holds no interrupted fit; call fit without resume")
    return resume


def _data_parallel(model, distributed):
    """The DataParallel of a distributed fit, or None."""
    if distributed is None or distributed is False:
        return None
    from ..distributed.data_parallel import DataParallel, refuse_layer_state
    from ..distributed.communicator import communicator
    if getattr(model, "compile", False):
        raise InputError.for_argument("compile", "True cannot be combined with distributed training: the "
                                      "compiled step fuses backward and update, leaving no place for the "
                                      "all-reduce between them; train eagerly (drop --compile) or on one process")
    refuse_layer_state(model)
    return DataParallel(model, communicator(distributed))


def _prepare_data(model, X, y, validation_split: float, validation_data, class_weight=None,
                  sample_weight=None) -> _Data:
    """The training data on the device, raw pixels kept uint8 until a minibatch is gathered, the labels as
    integer class indices (no one-hot rows: the loss makes each minibatch's), the per-sample weights, and the
    validation data: validation_split's last part of X (as the book's later editions hold out the last 5,000),
    or validation_data. A map-style dataset stays where it is (each step reads its rows)."""
    if is_dataset(X):
        return _dataset_data(model, X, y, validation_split, validation_data, class_weight, sample_weight)
    Xd = model.as_input(X, keep_integers=True)
    n_all = Xd.shape[0]
    host = model.encode_labels(y, n_all, warn=True)
    Ld = model.bk.asarray(host)
    Wd = model.sample_weights(host, class_weight, sample_weight)
    val = None
    if validation_split:
        n_val = int(round(n_all * validation_split))
        if n_val < 1 or n_val >= n_all:
            raise InputError.for_argument("validation_split", f"{validation_split} of {n_all} samples leaves an empty "
                                                             f"training or validation set")
        val = (Xd[n_all - n_val:, ...], Ld[n_all - n_val:, ...])
        Xd, Ld = Xd[:n_all - n_val, ...], Ld[:n_all - n_val, ...]
        Wd = None if Wd is None else Wd[:n_all - n_val]
    elif validation_data is not None:
        Xv = model.as_input(validation_data[0], "validation X", keep_integers=True)
        val = (Xv, model.as_labels(validation_data[1], Xv.shape[0], "validation y"))
    return _Data(Xd, Ld, Ld, val, Wd)


def _dataset_data(model, ds, y, validation_split, validation_data, class_weight, sample_weight) -> _Data:
    """_Data of a map-style dataset: X the dataset, no device targets (each step reads them with its rows), the
    validation data a dataset too or arrays (X, y) moved to the device; what cannot apply is refused in one line."""
    if y is not None:
        raise InputError("a dataset gives its own targets (its __getitems__ returns (x, y)); pass y=None")
    if validation_split:
        raise InputError.for_argument("validation_split", f"{validation_split} splits arrays; a dataset's "
                                      f"validation part is a dataset of its own: pass validation_data=dataset")
    if class_weight is not None or sample_weight is not None:
        raise InputError("class_weight and sample_weight weigh the rows of arrays; a dataset trains unweighted")
    if len(ds) < 1:
        raise InputError("the training dataset has no rows (len 0); give a longer one")
    val = None
    if validation_data is not None and is_dataset(validation_data):
        val = (validation_data, None)
    elif validation_data is not None:
        Xv = model.as_input(validation_data[0], "validation X", keep_integers=True)
        val = (Xv, model.as_labels(validation_data[1], Xv.shape[0], "validation y"))
    return _Data(ds, None, None, val, None, n=len(ds))


# ShuffledEpochs' options as fit takes them, with fit's defaults (a value equal to its default was not given)
EPOCH_OPTIONS = {"batch_size": None, "minibatches": None, "shuffle": True, "compose_shuffles": False,
                 "drop_last": False}


def _make_source(o: _Options, n: int, saved: dict | None = None) -> BatchSource:
    """The batch source of this fit, bound to the n training rows: the given one, or the shuffled epochs that
    batch_size/minibatches/shuffle/compose_shuffles/drop_last describe. Resuming (saved: the run's settings),
    the shuffled epochs are the saved run's: an option left at its default takes the saved value, and one given
    that differs from it is refused (the resumed run would silently be another one)."""
    if o.source is None and saved is not None:
        if saved.get("source") not in (None, "ShuffledEpochs"):
            raise InputError(f"the run being resumed drew its minibatches from its own source ({saved['source']}); "
                             f"pass the same source= again to continue it")
        options = {}
        for key, default in EPOCH_OPTIONS.items():
            given, was = getattr(o, key), saved.get(key, default)
            if given != default and given != was:
                raise InputError.for_argument(key, f"{given!r} differs from the run being resumed, which trained "
                                                   f"with {key}={was!r}; drop it (resume continues the saved run) "
                                                   f"or start a new fit without resume")
            options[key] = was
        source = ShuffledEpochs(**options)
    else:
        source = o.source or ShuffledEpochs(o.batch_size, o.minibatches, o.shuffle, o.compose_shuffles, o.drop_last)
    source.bind(n)
    return source


def _begin_run(model, o: _Options, source_settings: dict, n: int, dp, resume: bool) -> dict:
    """The TrainState at the start of this fit: a new run's settings and position, or a resumed run's, its limits
    (epochs, steps) extended by the ones given. Returns the settings."""
    st = model.state
    if resume:
        saved = st.settings
        if saved["n"] != n:
            raise InputError(f"the checkpoint was trained on {saved['n']} samples but this data has "
                             f"{n}; resume with the same data and validation split")
        done = len(st.batch_losses) + st.batch
        if o.steps is not None and o.steps <= done:
            raise InputError.for_argument("steps", f"{o.steps}: the run being resumed has made {done} updates "
                                                   f"already; give a larger total, or resume by epochs")
        epochs, steps = _resumed_limits(o.epochs, o.steps, saved.get("epochs"), saved.get("steps"))
        st.settings = {k: v for k, v in dict(saved, epochs=epochs).items() if k != "steps"}
        if steps is not None:
            st.settings["steps"] = steps
        _note_world_size(st.settings, dp)
        st.partial_losses = [_scalar(model, v) for v in st.partial_losses]
        st.partial_grad_norms = [_scalar(model, v) for v in st.partial_grad_norms]
    else:
        epochs = DEFAULT_EPOCHS if o.epochs is None and o.steps is None else o.epochs
        st.settings = {"epochs": epochs, **source_settings, "validation_split": o.validation_split, "lr0": st.lr,
                       "n": n, "accumulate": o.accumulate}
        if o.steps is not None:
            st.settings["steps"] = o.steps
        if dp is not None:
            st.settings["world_size"] = dp.size
        st.history, st.step_history, st.batch_losses = empty_history(), empty_step_history(), []
        st.epoch, st.batch, st.order, st.partial_losses, st.partial_correct = 0, 0, None, [], 0.0
        st.partial_grad_norms = []
        if _clips_by_norm(model):
            st.history[GRAD_NORM] = []
    st.stop_requested = False
    return st.settings


def _weights_digest(model, W, saved: dict | None) -> str | None:
    """A digest of the per-sample weights (class_weight times sample_weight; None without), which a new run
    records in its settings; resuming (saved: the run's settings), refused when it differs from the run's (it
    would silently continue as another run)."""
    import hashlib
    digest = None if W is None else hashlib.sha256(model.bk.to_numpy(W).tobytes()).hexdigest()[:16]
    if saved is not None and saved.get("weights") != digest:
        was = saved.get("weights")
        what = ("with class or sample weights, and this fit gives none" if digest is None else
                "without weights, and this fit gives some" if was is None else "with other weights than this fit's")
        raise InputError(f"the run being resumed trained {what}; pass the same class_weight/sample_weight "
                         f"(--class-weight) to continue it")
    return digest


def _resumed_limits(epochs, steps, saved_epochs, saved_steps) -> tuple:
    """(epochs, steps) of a resumed run. Neither given: the saved ones, epochs at least DEFAULT_EPOCHS (as fit
    always resumed). Given: these, epochs at least the saved epochs; steps alone keeps the saved epochs (whichever
    ends first), epochs alone drops a saved steps limit."""
    if epochs is None and steps is None:
        return (None if saved_epochs is None else max(DEFAULT_EPOCHS, saved_epochs)), saved_steps
    if epochs is None:
        return saved_epochs, steps
    return (epochs if saved_epochs is None else max(epochs, saved_epochs)), steps


class _Run:
    """One fit's epochs: the source's plan, the step strategy, the bookkeeping and the callbacks (the per-step
    ones listed once, so a step without them pays nothing for them)."""

    def __init__(self, model, data: _Data, source: BatchSource, step, callbacks: list, params: dict, o: _Options):
        self.model, self.st, self.data, self.source, self.step = model, model.state, data, source, step
        self.callbacks, self.params, self.verbose, self.eval_every = callbacks, params, o.verbose, o.eval_every
        self.eval_batches, self.prefetch = o.eval_batches, o.prefetch
        self.begin_hooks = [cb.on_batch_begin for cb in callbacks if cb.implements("on_batch_begin")]
        self.end_hooks = [cb.on_batch_end for cb in callbacks if cb.implements("on_batch_end")]
        self.bounds, self.r0 = [], 0
        self.norms = _clips_by_norm(model)  # clip_norm: each update's pre-clip norm kept, like its loss

    def run(self) -> dict:
        """Epochs until the run's epochs or steps are done or a callback stops it; the last epoch's logs."""
        st, settings = self.st, self.st.settings
        epochs, steps = settings["epochs"], settings.get("steps")
        epoch, start, logs = st.epoch, st.batch, {}
        while epochs is None or epoch < epochs:
            if steps is not None and len(st.batch_losses) + start >= steps:
                break
            epoch_logs = self.run_epoch(epoch, start, steps)
            if epoch_logs is None:  # the run's steps ended inside this epoch
                break
            logs = epoch_logs
            if self.model.stop_training:
                break
            epoch, start = epoch + 1, 0
        return logs

    def begin_epoch(self, epoch: int, start: int) -> list:
        """The epoch's rate and plan (a new epoch: the schedule, then the source's draw; a resumed one: as saved),
        the step told its order; returns the epoch's list of losses."""
        model, st = self.model, self.st
        if start == 0:  # a new epoch: decay the rate, draw the shuffle
            st.lr = model.schedule(epoch, st.lr, st.settings["lr0"])
            losses, correct, st.partial_grad_norms = [], 0.0, []
        else:  # resuming inside an epoch: its rate and order were saved
            losses, correct = st.partial_losses, st.partial_correct
        if getattr(model.schedule, "per_step", False):  # the rate the epoch's first update will use
            st.lr = model.update_plan().rate(st.lr, st.step + 1)
        order, self.bounds = self.source.plan(st, start == 0)
        st.order = order
        self.r0 = self.bounds[start][0] if start < len(self.bounds) else 0
        self.step.begin_epoch(order, correct, self.r0)
        st.epoch, st.batch, st.partial_losses, st.partial_correct = epoch, start, losses, correct
        st.settle = self.settle
        self.params["steps"] = len(self.bounds)
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {"lr": st.lr})
        return losses

    def settle(self) -> None:
        """state.partial_correct brought up to the last finished step (for a checkpoint written inside an epoch)."""
        st = self.st
        st.partial_correct = self.step.settle(self.bounds[st.batch - 1][1] if st.batch else 0)

    def run_epoch(self, epoch: int, start: int, steps: int | None):
        """One epoch from minibatch `start`; its logs, or None when the run's steps end inside it (the state then
        that of an interrupted run, resumable)."""
        t0 = time.perf_counter()
        st = self.st
        losses = self.begin_epoch(epoch, start)
        bounds, step, stopping = self.bounds, self.step, self.step.stopping
        base = len(st.batch_losses)  # the run's updates before this epoch
        stop = len(bounds) if steps is None else min(len(bounds), steps - base)
        begin, end, every = self.begin_hooks, self.end_hooks, self.eval_every
        norms = st.partial_grad_norms if self.norms else None
        ev = -1 if every is None else every * ((base + start) // every + 1) - base - 1  # the step to evaluate after
        step.plan_reads(epoch, ((i, *bounds[i]) for i in range(start, stop)))  # lazy: arrays pay nothing
        for i in range(start, stop):
            s, e = bounds[i]
            if begin:
                for hook in begin:
                    hook(i, {"size": e - s})
            value = step(s, e)
            losses.append(value)
            if norms is not None:
                norms.append(st.grad_norm)
            st.batch = i + 1
            if end or i == ev:
                logs = {"size": e - s, "loss": value, "step": base + i + 1}
                if norms is not None:
                    logs[GRAD_NORM] = st.grad_norm
                if i == ev:
                    logs["evaluation"], ev = self.evaluate(base + i + 1, losses), ev + every
                for hook in end:
                    hook(i, logs)
            if stopping():
                st.stop_requested, st.partial_correct = True, step.settle(e)
                raise TrainingInterrupted(epoch + 1, i + 1, len(bounds))
        if stop < len(bounds):
            self.settle()
            return None
        return self.end_epoch(epoch, losses, step.settle(bounds[-1][1]), t0)

    def evaluate(self, step_no: int, losses: list) -> dict:
        """A periodic evaluation after update `step_no`: a row of state.step_history (one device sync)."""
        model, st, every = self.model, self.st, self.eval_every
        k = min(every, len(losses))
        window = [float(v) for v in model.bk.to_numpy(model.xp.stack(losses[len(losses) - k:]))]
        if k < every:  # the window reaches into earlier epochs
            window = st.batch_losses[max(0, len(st.batch_losses) - (every - k)):] + window
        val_loss, val_accuracy = self.evaluate_val(step_no)
        row = {"step": step_no, "loss": sum(window) / len(window), "val_loss": val_loss, "val_accuracy": val_accuracy,
               "lr": st.lr}
        for key in STEP_HISTORY_KEYS:
            st.step_history[key].append(row[key])
        return row

    def evaluate_val(self, step_no: int, confusion: bool = False):
        """evaluate on the validation data: all of it, or with eval_batches K minibatches of rows drawn for
        update `step_no` (`sources.eval_rows`)."""
        model, (X, Y) = self.model, self.data.val
        rows = None
        if self.eval_batches is not None:
            n = len(X) if is_dataset(X) else X.shape[0]
            seed = model.seed if isinstance(model.seed, int) and not isinstance(model.seed, bool) else 0
            per = self.source.batch_rows()
            rows = eval_rows(step_no, seed=seed, n=n, rows=self.eval_batches * per)
            return evaluate(model, X, Y, batch_size=per, confusion=confusion, rows=rows, prefetch=self.prefetch)
        return evaluate(model, X, Y, confusion=confusion, prefetch=self.prefetch)

    def end_epoch(self, epoch: int, losses: list, correct, t0: float) -> dict:
        """The epoch's figures from one host transfer (divergence refused), history, state, callbacks."""
        model, st, bounds = self.model, self.st, self.bounds
        norms = st.partial_grad_norms if self.norms else []
        host = model.bk.to_numpy(model.xp.stack(losses + [_scalar(model, v) for v in norms] +
                                                [_scalar(model, correct)]))
        batch_losses = [float(v) for v in host[:len(losses)]]
        bad = [i for i, v in enumerate(batch_losses) if not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"the loss became {batch_losses[bad[0]]} at epoch {epoch + 1}, step {bad[0] + 1} "
                                   f"(learning rate {st.lr:g}); lower the learning rate, e.g. --lr {st.lr / 10:g}")
        st.batch_losses.extend(batch_losses)
        used = sum(e - s for s, e in bounds)
        weights = [e - s for s, e in bounds] if model.loss.reduction == "mean" else [1] * len(bounds)
        logs = {"epoch": epoch + 1, "loss": sum(v * w for v, w in zip(batch_losses, weights)) / used,
                "accuracy": float(host[-1]) / used, "val_loss": None, "val_accuracy": None, "lr": st.lr}
        if self.data.val is not None:  # and precision/recall/F1 from the validation confusion counts
            logs["val_loss"], logs["val_accuracy"], cm = self.evaluate_val(len(st.batch_losses), confusion=True)
            logs.update(metrics_from_confusion(cm, "val_"))
        logs["seconds"] = time.perf_counter() - t0
        for k in HISTORY_KEYS:
            st.history[k].append(logs[k])
        if self.data.val is not None:
            for k in VALIDATION_METRICS:
                st.history.setdefault(k, []).append(logs[k])
        if self.norms:  # the epoch's mean pre-clip norm
            values = [float(v) for v in host[len(losses):-1]]
            logs[GRAD_NORM] = sum(values) / len(values) if values else None
            st.history.setdefault(GRAD_NORM, []).append(logs[GRAD_NORM])
        st.epoch, st.batch, st.partial_losses, st.partial_correct, st.settle = epoch + 1, 0, [], 0.0, None
        st.partial_grad_norms = []
        if self.verbose:
            print(epoch_line(logs, st.settings["epochs"]), flush=True)
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        return logs


def _clips_by_norm(model) -> bool:
    """Whether the model's updates clip by global norm (whose pre-clip norm fit records)."""
    return getattr(model.optimizer, "clip_norm", None) is not None


def _check_accumulate(accumulate: int, batch: int, ranks: int) -> None:
    """accumulate=k splits the rows one process computes of a minibatch (all `batch` of them, or with
    `ranks` data-parallel ranks its shard, at most ceil(batch / ranks)) into k micro-batches: refused when
    that leaves a micro-batch without a sample (the split would quietly make one-sample micro-batches)."""
    rows = -(-batch // ranks)
    what = (f"a minibatch of {batch} samples is split" if ranks == 1 else
            f"each of {ranks} ranks splits its {rows} of a minibatch's {batch} samples")
    check("accumulate", accumulate, Interval(int, 1, rows),
          hint=f"{what} into micro-batches of one sample or more: lower it, or raise the batch size")


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


