"""Batch sources: which rows of the training data make each step's minibatch, epoch by epoch.

fit asks its source once per epoch for a plan, `(order, bounds)`: `order` a host integer vector of row
indices (or None: the rows 0..n-1 as they are, which the eager step reads as slices), `bounds` a list
of (start, stop) into it; step i trains on rows `order[start:stop]`. A plan is plain host data, so the
loop pays nothing per step for it, and the position in a run is what TrainState already holds: the
epoch, the minibatch within it (`state.batch`) and `state.order` (saved in checkpoints), which is
how a run that stopped inside an epoch continues with the same order.

    ShuffledEpochs(n, batch_size=32)                     today's epochs: a new shuffle of all rows each epoch
    IndexBatches([[0, 1, 2], [3, 4, 5]])                 a fixed list of index batches, the same every epoch

    RandomBatches(12, seed=1)                            each step `batch` rows drawn with replacement (nanoGPT's
                                                         get_batch), from a generator of (seed, epoch) alone

A new source (random blocks of a text, rows of memory-mapped files) subclasses BatchSource, defines
`bind` (check it fits n rows) and `plan` (an epoch's order and bounds; new=False asks for the order of an
epoch a resumed run continues in its middle: `state.order`) and passes as `fit(source=...)`.

Datasets in place of X. fit (and Sequential.fit, evaluate) also take, in place of the arrays X and y, a
map-style dataset: any object with

    len(ds)                      the number of rows
    ds.__getitems__(indices)     (x, y): host arrays of the rows at a host integer vector `indices`, x
                                 (len(indices), *input_shape) and y their targets (class indices)

(torch.utils.data.Dataset's `__getitems__`), e.g. xpnet.data.text.TextBlocks: row i a context-length block of a
text and its next tokens, none of the ~1M overlapping blocks materialized. Each step reads its minibatch's rows
on the host and moves them to the device (one transfer of x and y); the source's plan is the same as for
arrays. fit(prefetch=N) reads and stages the next N minibatches in N threads while the step runs, the same rows
in the same order (xpnet.training.prefetch: `__getitems__` must then be thread-safe and depend on the indices
alone); validation reads are not prefetched. `is_dataset` tells one from arrays; validation_data= may be one too. The rows are used as they come (no
input scaling: a model's `preprocessing` applies to arrays), x cast to the model's dtype unless its first layer
takes integer ids; y are output indices 0..outputs-1.
"""
from __future__ import annotations

from ..errors import InputError
from ..checks import Interval
from ..init import host_rng
from .batches import batch_bounds

#: the stream tags of the generators made from a seed (the training and evaluation draws never share one)
TRAIN_STREAM, EVAL_STREAM = 0x7A11, 0xE7A1


def is_dataset(X) -> bool:
    """Whether X is a map-style dataset (len and __getitems__; see the module's docstring), not arrays."""
    return hasattr(X, "__getitems__") and hasattr(X, "__len__") and not hasattr(X, "shape")


def read_rows(model, ds, idx) -> tuple:
    """(x, y) on the model's device of the rows `idx` (host integers) of a map-style dataset: one transfer each."""
    xh, yh = ds.__getitems__(idx)
    return model.bk.asarray(xh) if model.integer_input else model.bk.asarray(xh, dtype=model.dtype), \
        model.bk.asarray(yh)


def epoch_rows(epoch: int, *, seed: int, n: int, batch: int, steps_per_epoch: int):
    """The rows of one epoch of RandomBatches: (steps_per_epoch·batch,) int64 in [0, n), with replacement,
    from numpy.random.default_rng((seed, TRAIN_STREAM, epoch))."""
    rng = host_rng((int(seed), TRAIN_STREAM, int(epoch)))
    return rng.integers(0, n, size=steps_per_epoch * batch)


def step_rows(step: int, *, seed: int, n: int, batch: int, steps_per_epoch: int | None = None):
    """The rows (batch,) of training step `step` (0-based, counted over the run) of RandomBatches(batch, seed,
    steps_per_epoch) on n rows: what fit trains on at that step."""
    spe = -(-n // batch) if steps_per_epoch is None else steps_per_epoch
    epoch, i = divmod(int(step), spe)
    return epoch_rows(epoch, seed=seed, n=n, batch=batch, steps_per_epoch=spe)[i * batch:(i + 1) * batch]


def eval_rows(step: int, *, seed: int, n: int, rows: int):
    """The validation rows (rows,) of the periodic evaluation after update `step` (fit(eval_batches=)), with
    replacement in [0, n), from numpy.random.default_rng((seed, EVAL_STREAM, step)): a stream of its own, so
    evaluating never moves the training batches, and the same rows however the run was stopped and resumed."""
    rng = host_rng((int(seed), EVAL_STREAM, int(step)))
    return rng.integers(0, n, size=rows)


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


class RandomBatches(BatchSource):
    """Each step `batch_size` rows drawn with replacement from the n training rows (nanoGPT's get_batch: random
    blocks of a text, TextBlocks' offsets), an epoch being `steps_per_epoch` steps (default ceil(n / batch):
    as many rows as the data has). The rows come from numpy.random.default_rng((seed, TRAIN_STREAM, epoch)), a
    generator of the seed and the epoch alone: the same stream on every backend, whatever the model, the
    evaluations or a resume do (`step_rows` gives step i's rows; a run stopped inside an epoch continues
    with the epoch's saved order)."""

    def __init__(self, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None):
        from ..checks import POSITIVE_INT, check
        check("batch_size", batch_size, POSITIVE_INT, owner="RandomBatches")
        if steps_per_epoch is not None:
            check("steps_per_epoch", steps_per_epoch, POSITIVE_INT, owner="RandomBatches")
        check("seed", seed, Interval(int, 0, None), owner="RandomBatches")
        self.batch_size, self.seed, self.steps_per_epoch = batch_size, seed, steps_per_epoch
        self.n, self.bounds = None, None

    def bind(self, n: int) -> None:
        if n < 1:
            raise InputError("RandomBatches draws rows of the training data, and it has none; give data")
        self.n = n
        spe = -(-n // self.batch_size) if self.steps_per_epoch is None else self.steps_per_epoch
        self.bounds = [(i * self.batch_size, (i + 1) * self.batch_size) for i in range(spe)]

    def plan(self, state, new: bool) -> tuple:
        if not new and state.order is not None:
            return state.order, self.bounds
        return epoch_rows(state.epoch, seed=self.seed, n=self.n, batch=self.batch_size,
                          steps_per_epoch=len(self.bounds)), self.bounds

    def settings(self) -> dict:
        return {"source": "RandomBatches", "batch_size": self.batch_size, "seed": self.seed,
                "steps_per_epoch": self.steps_per_epoch}

    def batch_rows(self) -> int:
        return self.batch_size


def check_source(source) -> BatchSource:
    """fit's source= as a BatchSource; anything else refused in one line."""
    if not isinstance(source, BatchSource):
        raise InputError(f"source= takes an xpnet.training.BatchSource (e.g. IndexBatches([[0, 1], [2, 3]])), "
                         f"got {type(source).__name__} {source!r:.40}; subclass BatchSource with bind and plan, "
                         f"or use batch_size=/shuffle=")
    return source
