"""Batch sources: which rows of the training data make each step's minibatch, epoch by epoch.

fit asks its source once per epoch for a plan, `(order, bounds)`: `order` a host integer vector of row
indices (or None: the rows 0..n-1 as they are, which the eager step reads as slices), `bounds` a list
of (start, stop) into it; step i trains on rows `order[start:stop]`. A plan is plain host data, so the
loop pays nothing per step for it, and the position in a run is what TrainState already holds: the
epoch, the minibatch within it (`state.batch`) and `state.order` (saved in checkpoints), which is
how a run that stopped inside an epoch continues with the same order.

    ShuffledEpochs(n, batch_size=32)                     today's epochs: a new shuffle of all rows each epoch
    IndexBatches([[0, 1, 2], [3, 4, 5]])                 a fixed list of index batches, the same every epoch

A new source (random blocks of a text, rows of memory-mapped files) subclasses BatchSource, defines
`bind` (check it fits n rows) and `plan` (an epoch's order and bounds; new=False asks for the order of an
epoch a resumed run continues in its middle: `state.order`) and passes as `fit(source=...)`.
"""
from __future__ import annotations

from ..errors import InputError
from .batches import batch_bounds


class BatchSource:
    """The protocol of fit(source=). `bind(n)` is called once before training with the number of training rows
    and refuses, in one line, a source that does not fit them; `plan(state, new)` returns an epoch's
    (order, bounds) (see the module's docstring); `settings()` is what the run records of it
    (`state.settings`); `batch_rows()` the largest minibatch (what accumulate= may split)."""

    def bind(self, n: int) -> None:
        raise NotImplementedError

    def plan(self, state, new: bool) -> tuple:
        raise NotImplementedError

    def settings(self) -> dict:
        return {"source": type(self).__name__}

    def batch_rows(self) -> int:
        raise NotImplementedError


class ShuffledEpochs(BatchSource):
    """Every epoch all n rows in minibatches of `batch_size` (default 32; the last one shorter, skipped with
    drop_last when shorter than the others) or `minibatches` chunks (numpy.array_split's). shuffle: a new
    permutation of the rows from the model's host RNG (`state.rng`) each epoch, one draw per epoch;
    compose_shuffles applies it to the previous epoch's order (the 2015 book's X_data[perm]) instead of to
    0..n-1. shuffle=False: the rows in order (order None)."""

    def __init__(self, batch_size: int | None = None, minibatches: int | None = None, shuffle: bool = True,
                 compose_shuffles: bool = False, drop_last: bool = False):
        self.batch_size, self.minibatches = batch_size, minibatches
        self.shuffle, self.compose_shuffles, self.drop_last = shuffle, compose_shuffles, drop_last
        self.n, self.bounds = None, None

    def bind(self, n: int) -> None:
        bounds = batch_bounds(n, self.batch_size, self.minibatches)
        if self.drop_last and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < bounds[0][1] - bounds[0][0]:
            bounds = bounds[:-1]
        self.n, self.bounds = n, bounds

    def plan(self, state, new: bool) -> tuple:
        order = state.order
        if new and self.shuffle:
            perm = state.rng.permutation(self.n)
            order = perm if order is None or not self.compose_shuffles else order[perm]
        return order, self.bounds

    def settings(self) -> dict:
        return {"batch_size": self.batch_size, "minibatches": self.minibatches, "shuffle": self.shuffle,
                "compose_shuffles": self.compose_shuffles, "drop_last": self.drop_last}

    def batch_rows(self) -> int:
        return self.bounds[0][1] - self.bounds[0][0]


class IndexBatches(BatchSource):
    """A fixed list of index batches (each a sequence of row indices), the same every epoch: e.g. a curriculum,
    or a test's exact minibatches. IndexBatches([range(0, 32), range(32, 64)]) trains as shuffle=False,
    batch_size=32 on 64 rows does, bit for bit."""

    def __init__(self, batches):
        self.batches = [[int(i) for i in b] for b in batches]
        if not self.batches or any(not b for b in self.batches):
            raise InputError("IndexBatches takes a non-empty list of non-empty index batches (sequences of row "
                             "indices), got an empty one")
        self.order = [i for b in self.batches for i in b]
        self.bounds, s = [], 0
        for b in self.batches:
            self.bounds.append((s, s + len(b)))
            s += len(b)

    def bind(self, n: int) -> None:
        bad = next((i for i in self.order if not 0 <= i < n), None)
        if bad is not None:
            raise InputError(f"IndexBatches holds row {bad}, but the training data has {n} rows (0..{n - 1}); "
                             f"index the rows fit trains on (after validation_split's hold-out)")

    def plan(self, state, new: bool) -> tuple:
        return self.order, self.bounds

    def settings(self) -> dict:
        return {"source": "IndexBatches", "batches": len(self.batches)}

    def batch_rows(self) -> int:
        return max(len(b) for b in self.batches)


def check_source(source) -> BatchSource:
    """fit's source= as a BatchSource; anything else refused in one line."""
    if not isinstance(source, BatchSource):
        raise InputError(f"source= takes an xpnet.training.BatchSource (e.g. IndexBatches([[0, 1], [2, 3]])), "
                         f"got {type(source).__name__} {source!r:.40}; subclass BatchSource with bind and plan, "
                         f"or use batch_size=/shuffle=")
    return source
