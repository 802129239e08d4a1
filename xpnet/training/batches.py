"""Which rows make each minibatch: the one numpy.array_split arithmetic (`shard`), for `minibatches=` chunks and
for each rank's rows of a minibatch in data-parallel training (xpnet.distributed.data_parallel)."""
from __future__ import annotations

from ..errors import InputError
from ..checks import POSITIVE_INT, Interval, check


def shard(n: int, part: int, parts: int) -> tuple[int, int]:
    """(start, stop) of part `part` of n rows split into `parts`, as numpy.array_split does (the first n % parts
    one row longer): minibatches= chunks here, and each rank's rows of a minibatch in data-parallel training."""
    q, r = divmod(n, parts)
    start = part * q + min(part, r)
    return start, start + q + (1 if part < r else 0)


def batch_bounds(n: int, batch_size: int | None = None, minibatches: int | None = None) -> list[tuple[int, int]]:
    """(start, stop) of each minibatch: fixed `batch_size` (last one shorter), or `minibatches` chunks as
    numpy.array_split makes them (the first n % k chunks one sample longer)."""
    if minibatches is not None:
        if batch_size is not None:
            raise InputError("give batch_size or minibatches, not both")
        check("minibatches", minibatches, Interval(int, 1, n), hint=f"the training data has {n} samples")
        return [shard(n, i, minibatches) for i in range(minibatches)]
    if batch_size is None:
        batch_size = min(32, n)
    check("batch_size", batch_size, POSITIVE_INT)
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
