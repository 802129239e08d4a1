"""Step strategies: how one training update runs, chosen once before the loop (as Keras' make_train_function).

Each is called the same way by fit's loop:

    step.begin_epoch(order, correct, r0)   the epoch's host order (None: rows in order), the correct count so far,
                                           the first row of the epoch this fit runs
    value = step(s, e)                     one update on rows order[s:e]; the loss, a device scalar
    step.stopping()                        whether to stop after this update (a data-parallel run: every rank agrees)
    step.settle(r1)                        the epoch's correct predictions up to row r1 (a device scalar or float)
    step.plan_reads(epoch, steps)          the steps [(i, s, e), ...] this epoch will run, in order, after
                                           begin_epoch (a DatasetStep with prefetch reads them ahead; else nothing)
    step.close()                           when the fit ends, however it ends (prefetch threads joined)

EagerStep is `model.train_step` on a gathered (or sliced) minibatch; CompiledStep the model's one compiled
call (gather, forward, backward, update, argmax; compile=True); DataParallelStep a rank's shard of the global
minibatch and one all-reduce (xpnet.distributed.data_parallel). Predictions stay on the device: the eager and
compiled steps keep each step's argmax and compare them with the labels once per epoch (or when settled).
"""
from __future__ import annotations

from ..errors import InputError
from ..layers.base import where_raised


class EagerStep:
    """model.train_step on rows of the device-resident data X (n, ...), targets Y (class indices (n,), as fit
    gives them, or one-hot rows (n, outputs)), labels L (n,), per-sample weights W (n,) or None."""

    def __init__(self, model, X, Y, L, accumulate: int, W=None):
        self.model, self.st, self.X, self.Y, self.L, self.accumulate = model, model.state, X, Y, L, accumulate
        self.W, self.indices = W, model.xp.isdtype(Y.dtype, "integral")
        self.order_d, self.preds, self.correct, self.r0 = None, [], 0.0, 0
        # bound once: the loop runs ~100 us steps, where each attribute lookup shows
        self.take, self.argmax, self.cast, self.train_step = model.bk.take, model.xp.argmax, model.cast, \
            model.train_step

    def device_order(self, order):
        return None if order is None else self.model.bk.asarray(order)

    def begin_epoch(self, order, correct, r0: int) -> None:
        self.order_d, self.preds, self.correct, self.r0 = self.device_order(order), [], correct, r0

    def __call__(self, s: int, e: int):
        order_d = self.order_d
        W = self.W
        if order_d is not None:
            idx = order_d[s:e]
            xb, yb = self.take(self.X, idx), self.take(self.Y, idx)
            wb = None if W is None else self.take(W, idx)
        else:
            xb, yb = self.X[s:e, ...], self.Y[s:e, ...]
            wb = None if W is None else W[s:e]
        value, z = self.train_step(self.cast(xb), yb, None, self.accumulate, wb, self.indices)
        self.preds.append(self.argmax(z, axis=-1))
        return value

    def stopping(self) -> bool:
        return self.st.stop_requested

    def plan_reads(self, epoch: int, steps) -> None:
        """The steps the epoch will run (device-resident rows: nothing to read ahead)."""

    def close(self) -> None:
        """The fit has ended (nothing held here)."""

    def settle(self, r1: int):
        """The correct count so far plus that of the predictions kept since (rows r0:r1 of the order); one
        comparison for all of them (one op per step would be five)."""
        if self.preds:
            model, xp, preds, order_d = self.model, self.model.xp, self.preds, self.order_d
            pred = preds[0] if len(preds) == 1 else xp.concat(preds)
            lab = self.L[self.r0:r1, ...] if order_d is None else xp.take(self.L, order_d[self.r0:r1], axis=0)
            self.correct = self.correct + model.count_correct(pred, lab)
            self.preds, self.r0 = [], r1
        return self.correct


class CompiledStep(EagerStep):
    """The model's compiled step (model.compiled_step(): one traced call) on rows of the device-resident data."""

    def __init__(self, model, X, Y, L, accumulate: int, W=None):
        super().__init__(model, X, Y, L, accumulate, W)
        self.compiled = model.compiled_step()
        self.identity = None
        self.norm_out = getattr(model.optimizer, "clip_norm", None) is not None  # the step returns the norm last
        # float16 mixed precision: the loss-scale state goes in after W and comes back after everything else
        self.scaled = model.precision is not None and model.precision.scaling

    def device_order(self, order):
        if order is None:  # the compiled step gathers by index: the rows in order as an index vector, made once
            if self.identity is None:
                self.identity = self.model.bk.asarray(list(range(self.X.shape[0])))
            return self.identity
        return self.model.bk.asarray(order)

    def __call__(self, s: int, e: int):
        model, st = self.model, self.st
        idx = self.order_d[s:e]
        noise = model.draw_noise(idx.shape[0])
        st.lr, hyper = model.update_hyper(st.lr, st.step + 1)
        hyper = model.bk.scalar_args(hyper)
        if self.W is None:
            Xs, Ys, idx = model.step_inputs(self.X, self.Y, idx)
            weights = ()
        else:
            Xs, Ys, idx, Ws = model.step_inputs(self.X, self.Y, idx, self.W)
            weights = (Ws,)
        if self.scaled:
            weights = (weights[0] if weights else None, st.loss_scale)
        try:
            if model.has_layer_state:
                out = self.compiled(st.params, st.opt_state, Xs, Ys, idx, noise, hyper, self.accumulate,
                                    st.layer_state, *weights)
                st.layer_state = out[4]
            else:
                out = self.compiled(st.params, st.opt_state, Xs, Ys, idx, noise, hyper, self.accumulate,
                                    None, *weights)
            value, pred = _take_outputs(st, out, self.scaled, self.norm_out)
        except Exception as exc:
            if not model.bk.is_trace_error(exc):
                raise
            error = _trace_error(model, exc)  # raised outside the handler: the failed trace's frames are freed
        else:
            st.step += 1
            self.preds.append(pred)
            return value
        raise error


def _take_outputs(st, out, scaled: bool, norm_out: bool):
    """The compiled step's outputs into the training state st: (params, opt_state, value, pred[, layer_state]
    [, grad_norm][, loss_scale]); the new parameters and optimizer state, the gradients' norm (norm_out: clipping
    by norm) and the loss-scale state (scaled: float16 loss scaling) go to st (layer_state is the caller's).
    Returns (value, pred): the step's loss (a scalar) and its predictions (a row per sample)."""
    if scaled:
        st.loss_scale, out = out[-1], out[:-1]
    st.params, st.opt_state, value, pred = out[:4]
    if norm_out:
        st.grad_norm = out[-1]
    return value, pred


def _trace_error(model, exc) -> InputError:
    where = where_raised(exc) or "a layer, loss or optimizer"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return InputError.for_argument("compile", f"True: {where} cannot be traced by the {model.bk.name} compiler: "
                                              f"it does host work on an array ({type(exc).__name__}: "
                                              f"{first[:160]}); write it with xp array operations only, or "
                                              f"train without compile")


class DataParallelStep(CompiledStep):
    """`dp.step` (an xpnet.distributed.data_parallel.DataParallel): this rank's shard of the global minibatch, one
    all-reduce of gradients, loss, correct count and stop flag; every rank stops after the same update."""

    def __init__(self, model, X, Y, L, accumulate: int, dp, W=None):
        EagerStep.__init__(self, model, X, Y, L, accumulate, W)
        self.dp, self.identity, self.agreed = dp, None, False

    def __call__(self, s: int, e: int):
        value, counted, self.agreed, _ = self.dp.step(self.X, self.Y, self.L, self.order_d[s:e], self.accumulate,
                                                      stop=self.st.stop_requested, W=self.W)
        self.correct = self.correct + counted
        return value

    def stopping(self) -> bool:
        return self.agreed

    def settle(self, r1: int):
        return self.correct


class DatasetStep(EagerStep):
    """Steps on a map-style dataset X (xpnet.training.sources): each reads its minibatch's rows order[s:e] on the
    host (`__getitems__`), moves x and y to the device (one transfer each) and trains on them, eagerly or by the
    model's compiled step (compile=True: the gathered minibatch itself, idx None). The labels of the steps are
    kept beside their predictions for the epoch's accuracy. prefetch=N > 0: the next N minibatches are read and
    staged by N threads while the step runs (xpnet.training.prefetch), the same rows in the same order."""

    def __init__(self, model, X, accumulate: int, prefetch: int = 0):
        self.model, self.st, self.X, self.accumulate = model, model.state, X, accumulate
        self.W, self.order, self.preds, self.labels, self.correct, self.r0 = None, None, [], [], 0.0, 0
        self.compiled = model.compiled_step() if getattr(model, "compile", False) else None
        self.norm_out = getattr(model.optimizer, "clip_norm", None) is not None
        # float16 mixed precision: the loss-scale state goes in after W (None here) and comes back last
        self.scaled = model.precision is not None and model.precision.scaling
        from .sources import read_rows
        self.read, self.prefetcher = read_rows, None
        if prefetch:
            from functools import partial

            from .prefetch import Prefetcher, stage_rows
            self.prefetcher = Prefetcher(partial(stage_rows, model, X), model.bk.ready, prefetch)

    def begin_epoch(self, order, correct, r0: int) -> None:
        if order is None:
            order = range(len(self.X))
        self.order, self.preds, self.labels, self.correct, self.r0 = order, [], [], correct, r0

    def plan_reads(self, epoch: int, steps) -> None:
        if self.prefetcher is not None:
            self.prefetcher.start(epoch, self.order, steps)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()

    def __call__(self, s: int, e: int):
        model = self.model
        if self.prefetcher is None:
            xb, yb = self.read(model, self.X, self.order[s:e])
        else:
            xb, yb = self.prefetcher.get(s, e)
        if self.compiled is None:
            value, z = model.train_step(model.cast(xb), yb, None, self.accumulate, None, True)
            pred = model.xp.argmax(z, axis=-1)
        else:
            value, pred = self._compiled(xb, yb)
        self.preds.append(pred)
        self.labels.append(yb)
        return value

    def _compiled(self, xb, yb):
        model, st = self.model, self.st
        noise = model.draw_noise(xb.shape[0])
        st.lr, hyper = model.update_hyper(st.lr, st.step + 1)
        hyper = model.bk.scalar_args(hyper)
        try:
            scale = (None, st.loss_scale) if self.scaled else ()
            out = self.compiled(st.params, st.opt_state, xb, yb, None, noise, hyper, self.accumulate, None, *scale)
            value, pred = _take_outputs(st, out, self.scaled, self.norm_out)
        except Exception as exc:
            if not model.bk.is_trace_error(exc):
                raise
            error = _trace_error(model, exc)
        else:
            st.step += 1
            return value, pred
        raise error

    def settle(self, r1: int):
        if self.preds:
            xp = self.model.xp
            pred = self.preds[0] if len(self.preds) == 1 else xp.concat(self.preds)
            lab = self.labels[0] if len(self.labels) == 1 else xp.concat(self.labels)
            self.correct = self.correct + self.model.count_correct(pred, lab)
            self.preds, self.labels, self.r0 = [], [], r1
        return self.correct


def make_step(model, X, Y, L, accumulate: int, dp=None, W=None, prefetch: int = 0):
    """The step strategy of this fit: data-parallel (dp given), compiled (model.compile) or eager; DatasetStep
    where X is a map-style dataset, reading `prefetch` minibatches ahead (arrays: device-resident already,
    prefetch does nothing). W: per-sample weights (n,) or None."""
    from .sources import is_dataset
    if is_dataset(X):
        if dp is not None:
            raise InputError("distributed training shards device-resident arrays; a dataset trains on one "
                             "process (drop distributed=, or pass arrays)")
        return DatasetStep(model, X, accumulate, prefetch)
    if dp is not None:
        return DataParallelStep(model, X, Y, L, accumulate, dp, W)
    if getattr(model, "compile", False):
        return CompiledStep(model, X, Y, L, accumulate, W)
    return EagerStep(model, X, Y, L, accumulate, W)
