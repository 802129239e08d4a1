"""Prefetch: the next minibatches of a map-style dataset read and staged on the device by background threads
while the current step runs (fit(prefetch=N), `xpnet train --prefetch N`).

Without prefetch (N = 0, the default) each step reads its rows on the host (`__getitems__`) and moves them to
the device, then trains (xpnet.training.steps.DatasetStep): the step waits for its data. With N > 0 a
Prefetcher keeps the next N minibatches of the epoch in flight, each read by one of N threads, which also
start its host-to-device copy (`Backend.stage`: pinned memory and a copy stream of their own on PyTorch CUDA
and CuPy, `asarray` elsewhere); the step takes the oldest (`Backend.ready`), so the batches come strictly in
the source's order whatever the threads' read times, and at most N + 1 minibatches are held (N read ahead,
one in use).

What it changes, and what it does not:

    the batches         the same rows in the same order as N = 0 (the plan is the source's, drawn on the
                        main thread at the epoch's start): the parameters are bit-identical
    the state           untouched by the threads: a read ahead is not a step, so TrainState (and a checkpoint
                        written by a callback, or after a stop) is that of the last step taken; the batches
                        read ahead are dropped when the epoch or the run ends
    errors              a reader's exception is raised in the training loop as PrefetchError naming the epoch
                        and step, raised from it (its cause, with its traceback)
    the end of a fit    `close()`: the reads not started are cancelled, the running ones finished, the
                        threads joined, however the fit ends (its last step, TrainingInterrupted after a stop
                        request such as Ctrl-C under `xpnet train`, an error, a KeyboardInterrupt)

The dataset's `__getitems__` is then called from several threads at once: it must be safe to call so and a
function of the indices alone (as memory-mapped arrays, TextBlocks and image files are), since the read of
step i+N happens before step i. Each epoch starts its reads after its plan is drawn: an epoch's first
minibatch is not hidden behind the previous epoch's last step.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

from ..errors import PrefetchError
from .sources import read_rows

#: the name every prefetch thread's name starts with (tests look for leaked ones by it)
THREAD_PREFIX = "xpnet-prefetch"


def stage_rows(model, ds, idx) -> tuple:
    """In a prefetch thread: the rows `idx` of the map-style dataset `ds` read on the host and their copy to the
    model's device started: (staged x, staged y), each for `model.bk.ready` (the values and dtypes of
    sources.read_rows)."""
    xh, yh = ds.__getitems__(idx)
    bk = model.bk
    return bk.stage(xh, None if model.integer_input else model.dtype), bk.stage(yh)


@contextmanager
def batches_in_order(model, ds, order, bounds, depth: int = 0, what: str = "the evaluation"):
    """The minibatches (x, y) on the model's device of the map-style dataset `ds`, rows order[s:e] for each (s, e)
    of `bounds` in turn, as an iterator: read on the calling thread (depth 0: `sources.read_rows`) or read ahead
    by a Prefetcher of `depth` threads, joined when the block ends however it ends. Evaluation and prediction
    on a dataset read their batches so; the values are the same either way. what: names the reads in a
    PrefetchError ("batch 3 of the evaluation", "batch 3 of predict(dataset)")."""
    if not depth:
        yield (read_rows(model, ds, order[s:e]) for s, e in bounds)
        return
    pf = Prefetcher(partial(stage_rows, model, ds), model.bk.ready, depth, what)
    try:
        pf.start(0, order, [(i, s, e) for i, (s, e) in enumerate(bounds)])
        yield (pf.get(s, e) for s, e in bounds)
    finally:
        pf.close()


class Prefetcher:
    """Reads ahead, in order: `read(indices)` (called in the threads; returns staged arrays) of each minibatch an
    epoch will take, `depth` minibatches in flight on `depth` threads; `ready(staged)` (called on the training
    thread) makes one usable there.

        p.start(epoch, order, steps)   the epoch's host order and the steps still to run, [(i, s, e), ...]
        p.get(s, e)                    the next minibatch (rows order[s:e]) as ready arrays; refuses another one
        p.close()                      cancel, finish the running reads, join the threads (idempotent)
    """

    def __init__(self, read, ready, depth: int, what: str | None = None):
        self.read, self.ready, self.depth, self.what = read, ready, int(depth), what
        self.pool = None
        self.pending = deque()  # (i, s, e, future), in the source's order
        self.plan, self.order, self.epoch = iter(()), None, 0

    def start(self, epoch: int, order, steps) -> None:
        self.cancel()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.depth, thread_name_prefix=THREAD_PREFIX)
        self.epoch, self.order, self.plan = epoch, order, iter(steps)
        self._fill()

    def _fill(self) -> None:
        while len(self.pending) < self.depth:
            nxt = next(self.plan, None)
            if nxt is None:
                return
            i, s, e = nxt
            self.pending.append((i, s, e, self.pool.submit(self.read, self.order[s:e])))

    def get(self, s: int, e: int) -> tuple:
        if not self.pending or self.pending[0][1:3] != (s, e):
            planned = f"rows {self.pending[0][1]}:{self.pending[0][2]}" if self.pending else "none"
            raise RuntimeError(f"prefetch: the step asked for rows {s}:{e} of the order, the next planned is "
                               f"{planned}; steps must follow the plan given to start()")
        i, _, _, future = self.pending.popleft()
        self._fill()  # the next read starts before this one is waited for
        error = future.exception()  # waits; a KeyboardInterrupt while waiting is the training thread's own
        if error is not None:
            where = f"step {i + 1} of epoch {self.epoch + 1}" if self.what is None else f"batch {i + 1} of {self.what}"
            raise PrefetchError(f"reading the rows of {where} in a prefetch thread failed: {type(error).__name__}: "
                                f"{error}") from error
        return tuple(self.ready(a) for a in future.result())

    def cancel(self) -> None:
        """Drop the reads ahead (those not started are cancelled; the running ones finish in their thread)."""
        while self.pending:
            self.pending.popleft()[3].cancel()
        self.plan = iter(())

    def close(self) -> None:
        self.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
