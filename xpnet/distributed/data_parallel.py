"""One data-parallel training step, written with xp: the same update as one process, computed by N ranks.

Every rank holds the same state and draws the same host permutation, so every rank knows the global
minibatch. Rank r takes its shard (the rows numpy.array_split gives it; a shard may be empty when the
minibatch has fewer rows than there are ranks) and computes its data loss and gradients with the loss's
mean divided by the *global* batch size, without the penalty. One flat buffer per dtype carries the
gradients, the loss, the count of correct predictions and the stop flag; one all-reduce sums it. The
L1/L2 penalty is then added once, and every rank applies the same update. Dropout uniforms are drawn for the
global minibatch from the shared host RNG and sliced, so the masks are those of one process.

Mixed precision (model.precision, xpnet.precision): each rank's forward and backward run in the compute dtype,
and `value_and_grads` hands back gradients in the master dtype (float32), already divided by the loss scale
(float16), so the all-reduce sums float32 gradients. The non-finite flag of dynamic loss scaling is then decided
by `apply_gradients` on the *summed* gradients, which every rank holds bit for bit: that is the same as combining
the ranks' flags, because an inf or nan in one rank's gradient stays non-finite in the sum (inf + finite = inf,
inf + -inf = nan, nan + anything = nan), so no separate all-reduce of the flag is needed, and every rank skips
or applies the same update and halves or grows the same scale (tests/test_precision.py, mpiexec -n 2).

    dp = DataParallel(model, communicator)
    value, correct, stop, grads = dp.step(X, Y, labels, idx, accumulate=1, stop=model.state.stop_requested)
"""
from __future__ import annotations

import hashlib
import json
import time

from ..errors import InputError
from ..layers.base import local_name
from ..training.batches import shard  # also this module's name: rank r's rows of a minibatch


def refuse_layer_state(model) -> None:
    """Raise InputError when a layer keeps non-trained state computed from each batch (BatchNorm's running
    statistics: `state_shapes()`): per rank it would see only its shard's statistics, not the global
    minibatch's, so data-parallel training refuses such a model instead of training a different one."""
    for i, layer in enumerate(model.layers):
        shapes = layer.state_shapes() if hasattr(layer, "state_shapes") else {}
        if shapes or any(local_name(k, i) is not None for k in model.state.layer_state):
            what = ", ".join(shapes) or "layer state"
            raise InputError(f"layer {i} ({type(layer).__name__}) keeps batch statistics ({what}), which each rank "
                             f"would compute over its own shard, not the global minibatch; distributed training "
                             f"does not support it: train on one process, or without that layer")


class DataParallel:
    """Training steps of `model` summed over the ranks of `comm` (an xpnet.distributed.Communicator)."""

    def __init__(self, model, comm):
        self.model, self.comm = model, comm
        self.rank, self.size = comm.rank, comm.size
        names = list(model.state.params)
        self._groups = {}  # dtype -> parameter names packed in that buffer, in the state's order
        for k in names:
            self._groups.setdefault(str(model.state.params[k].dtype), []).append(k)
        self._scalars_in = str(model.dtype)  # loss, correct count and stop flag travel in the model's dtype
        self._groups.setdefault(self._scalars_in, [])
        self.timer = None  # a list to get (compute, communicate, update) seconds of each step (benchmarks)

    def bytes_per_step(self) -> int:
        """Bytes one rank's all-reduce buffers hold per step (gradients plus three scalars)."""
        params = self.model.state.params
        return sum(_itemsize(p) * _numel(p) for p in params.values()) + 3 * _itemsize(next(iter(params.values())))

    def step(self, X, Y, labels, idx, accumulate: int = 1, noise=None, stop: bool = False, apply: bool = True,
             W=None):
        """One update from the global minibatch `idx` (device index vector into X, Y, labels: its n rows).

        Y: class indices (n_all,) or one-hot rows. W: per-sample weights (n_all,) or None: a mean loss then
        divides by the sum of the global minibatch's weights, which every rank computes from the rows it knows
        (every rank holds the data and the global idx: the sum an all-reduce of the shards' sums would give).

        noise: the global minibatch's random inputs (default: model.draw_noise(n), from the shared host RNG).
        stop: this rank's stop request; the returned stop is True on every rank when any rank asked.
        Returns (loss + penalty, correct predictions, stop, grads) with loss and correct as device scalars
        over the global minibatch, identical on every rank."""
        model = self.model
        xp, bk = model.xp, model.bk
        n = idx.shape[0]
        if noise is None and model.has_noise:
            noise = model.draw_noise(n)
        a, b = shard(n, self.rank, self.size)
        params = model.state.params
        t0 = self._now(params)
        denom = n * model.positions  # a mean loss divides by every position of the global minibatch
        if W is not None and model.loss.reduction == "mean":
            denom = xp.sum(bk.take(W, idx))
        if b > a:
            local = idx[a:b]
            xb, yb = model.cast(bk.take(X, local)), bk.take(Y, local)
            part = None if noise is None else [None if u is None else u[a:b, ...] for u in noise]
            value, z, grads = model.value_and_grads(xb, yb, noise=part, accumulate=accumulate, denom=denom,
                                                    penalty=False, weight=None if W is None else bk.take(W, local),
                                                    indices=xp.isdtype(Y.dtype, "integral"))
            correct = model.count_correct(xp.argmax(z, axis=-1), bk.take(labels, local))
        else:  # more ranks than rows: this rank adds nothing (made on the model's device: without device=, torch
            # would put it on its default device, the CPU, and the all-reduce's concat would mix devices)
            value = correct = xp.zeros((), dtype=model.dtype, device=bk.native_device)
            grads = {k: xp.zeros_like(p) for k, p in params.items()}
        flag = bk.asarray([1.0 if stop else 0.0], dtype=model.dtype)
        t1 = self._now(value, correct, grads, flag)
        value, correct, flag, grads = self._allreduce(grads, value, correct, flag)
        t2 = self._now(value, correct, grads, flag)
        value, grads = model.add_penalty(value, grads)
        if apply:  # under float16 loss scaling: skipped on every rank alike when the summed gradient is not finite
            model.apply_gradients(grads)
        stop = bool(bk.to_numpy(flag)[0] > 0)
        if self.timer is not None:
            self.timer.append((t1 - t0, t2 - t1, self._now(value, grads, model.state.params) - t2))
        return value, correct, stop, grads

    def _now(self, *outputs) -> float:
        """perf_counter once `outputs` (arrays, or dicts of them: what the step has computed so far) are computed
        (only while timing: it waits). bk.block: a GPU library synchronises its device; JAX, whose synchronize() has
        nothing to wait on (no device-wide barrier), blocks until these arrays are ready."""
        if self.timer is None:
            return 0.0
        self.model.bk.block(outputs)
        return time.perf_counter()

    def _allreduce(self, grads, value, correct, flag):
        """grads, loss, correct count and stop flag summed over ranks: one flat buffer per dtype, one
        all-reduce each."""
        model = self.model
        xp, bk = model.xp, model.bk
        out = {}
        for dtype, names in self._groups.items():
            parts = [xp.reshape(grads[k], (-1,)) for k in names]
            if dtype == self._scalars_in:
                parts += [xp.reshape(xp.astype(value, model.dtype), (1,)), xp.reshape(correct, (1,)), flag]
            flat = self.comm.allreduce_(parts[0] if len(parts) == 1 else xp.concat(parts), bk)
            o = 0
            for k in names:
                size = _numel(grads[k])
                out[k] = xp.reshape(flat[o:o + size], tuple(grads[k].shape))
                o += size
            if dtype == self._scalars_in:
                value, correct, flag = flat[o], flat[o + 1], flat[o + 2:o + 3]
        return value, correct, flag, {k: out[k] for k in grads}


def _numel(a) -> int:
    n = 1
    for s in a.shape:
        n *= int(s)
    return n


def _itemsize(a) -> int:
    return 8 if "64" in str(a.dtype) else 4 if "32" in str(a.dtype) else 2


def run_digest(model, X, Y, settings: dict, W=None) -> str:
    """A hash of what must be the same on every rank before the first step: the model's configuration and
    parameters, the fit's settings and position, and the training data (host bytes of X and Y, and of the
    per-sample weights W when given)."""
    bk = model.bk
    h = hashlib.sha256()
    st = model.state
    meta = {"config": model.get_config(), "settings": settings, "position": [st.epoch, st.batch, st.step, st.lr],
            "backend": bk.name, "dtype": model.dtype_name}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for a in [X, Y, *([] if W is None else [W]), *st.params.values()]:
        host = bk.to_numpy(a)
        h.update(f"{host.shape}{host.dtype}".encode())
        h.update(host.tobytes() if not host.flags.c_contiguous else memoryview(host).cast("B"))
    return h.hexdigest()
