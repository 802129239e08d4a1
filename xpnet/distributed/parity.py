"""Distributed parity: N ranks against one process, on `xpnet parity`'s default well-conditioned model.

Run under a launcher (`mpiexec -n 2 xpnet parity --distributed`). On every rank, for each backend and
dtype, the one-process run (value_and_grads + apply_gradients on the whole minibatch) is the reference,
and the same backend and dtype trained by all ranks together (xpnet.distributed.data_parallel) is compared with it,
with parity's metric max|a - b| / max|b| per tensor:
- lockstep: the reference's state in, one distributed step; loss, gradients (summed, penalty added) and
  updated parameters compared;
- free-running: the distributed run on its own for `steps` steps; its parameters after the last step.
The worst figure over the ranks is reported. Minibatches whose size the number of ranks does not divide
give ranks unequal shards (e.g. --batch-size 61 on 2 ranks: 31 and 30 rows).
"""
from __future__ import annotations

import numpy as np

from ..backend import GPU_CAPABLE
from ..backend import backend as select_backend
from .data_parallel import DataParallel, shard
from ..checks import POSITIVE_INT, check
from ..tools.parity import default_model, default_problem, parity_batches, rel_diff

# the bounds: float64 lockstep and free-running after 100 steps, float32 lockstep (free-running float32 is
# reported, not judged)
TOLERANCES = {"float64": {"lockstep": 1e-12, "free": 1e-10}, "float32": {"lockstep": 1e-5, "free": None}}


def distributed_parity(comm, backends=("numpy",), dtypes=("float64", "float32"), steps: int = 100,
                       batch_size: int = 64, optimizer: str = "sgd", seed: int = 0, device: str | None = None) -> dict:
    """{'ranks', 'steps', 'batch_size', 'shards', 'results': [row per backend and dtype], 'passed'}, the same on
    every rank. comm: an xpnet.distributed.Communicator; device: for the GPU-capable backends ('cuda': each
    rank its own GPU while there are enough, Communicator.device_for)."""
    check("steps", steps, POSITIVE_INT)
    check("batch_size", batch_size, POSITIVE_INT)
    X, y = default_problem(seed=seed)
    batches = parity_batches(X.shape[0], batch_size, steps, seed)
    rows = []
    for name in backends:
        for dtype in dtypes:
            gpu = name in GPU_CAPABLE and device is not None
            bk = select_backend(name, comm.device_for(name, device) if gpu else None)
            with bk:
                rows.append(_row(comm, bk, dtype, optimizer, X, y, batches))
    everyone = comm.allgather(rows)
    results = []
    for i, row in enumerate(rows):  # the worst over the ranks
        worst = dict(row)
        for key in ("lockstep_rel", "lockstep_abs", "free_rel"):
            worst[key] = max(r[i][key] for r in everyone)
        tol = TOLERANCES[row["dtype"]]
        worst["passed"] = worst["lockstep_rel"] <= tol["lockstep"] and (tol["free"] is None or
                                                                        worst["free_rel"] <= tol["free"])
        worst["tolerances"] = tol
        results.append(worst)
    n = len(batches[0])
    return {"ranks": comm.size, "steps": steps, "batch_size": n,
            "shards": [b - a for a, b in (shard(n, r, comm.size) for r in range(comm.size))],
            "results": results, "passed": all(r["passed"] for r in results)}


def _row(comm, bk, dtype, optimizer, X, y, batches) -> dict:
    ref, lock, free = (default_model(bk, dtype, optimizer) for _ in range(3))
    xp, to_np = ref.xp, bk.to_numpy
    Xd = ref.as_input(X)
    Yd, Ld = ref.as_targets(y, X.shape[0])
    dp_lock, dp_free = DataParallel(lock, comm), DataParallel(free, comm)
    worst_abs = worst_rel = free_rel = 0.0
    per_param = {k: 0.0 for k in ref.state.params}
    for idx in batches:
        idx_d = bk.asarray(idx)
        before = ref.get_state()
        # one process: the whole minibatch
        value, _, grads = ref.value_and_grads(xp.take(Xd, idx_d, axis=0), xp.take(Yd, idx_d, axis=0))
        want = {"loss": np.asarray(float(value)), **{f"grad {k}": to_np(g, copy=True) for k, g in grads.items()}}
        ref.apply_gradients(grads)
        want.update({f"param {k}": to_np(v, copy=True) for k, v in ref.state.params.items()})
        # all ranks, from the same state
        lock.set_state(before)
        value, _, _, grads = dp_lock.step(Xd, Yd, Ld, idx_d)
        got = {"loss": np.asarray(float(value)), **{f"grad {k}": to_np(g, copy=True) for k, g in grads.items()},
               **{f"param {k}": to_np(v, copy=True) for k, v in lock.state.params.items()}}
        for key, w in want.items():
            a, r = rel_diff(got[key], w)
            worst_abs, worst_rel = max(worst_abs, a), max(worst_rel, r)
            name = key.split(" ", 1)[-1]
            if name in per_param:
                per_param[name] = max(per_param[name], r)
        dp_free.step(Xd, Yd, Ld, idx_d)
    final = ref.state.params
    free_rel = max(rel_diff(to_np(free.state.params[k]), to_np(final[k]))[1] for k in final)
    path = comm.path(bk, xp.zeros((4,), dtype=ref.dtype, device=bk.native_device))  # on the device the run used
    return {"backend": bk.name, "device": bk.device, "dtype": dtype, "path": path, "lockstep_abs": worst_abs,
            "lockstep_rel": worst_rel, "free_rel": free_rel, "lockstep_rel_per_parameter": per_param}
