"""Run under mpiexec by tests/test_regimes.py: a fit with clip_norm, parameter groups and a per-step warmup and
cosine decay, distributed against one process, on every rank. Prints one JSON line from rank 0."""
import json

import numpy as np

import xpnet
from xpnet.parity import default_problem, rel_diff
from mpi_common import fit_one_and_many

X, y = default_problem(n=200)


def model():
    opt = xpnet.AdamW(1e-2, weight_decay=0.1, clip_norm=0.3, param_groups="nanogpt")
    return xpnet.Sequential([xpnet.Dense(16, 24), xpnet.Tanh(), xpnet.Dense(24, 4)], optimizer=opt, l2=1e-3,
                            schedule=xpnet.WarmupCosine(8, 20, 1e-3), backend="numpy", dtype="float64", seed=0)


options = dict(epochs=2, batch_size=24, accumulate=2)  # 9 updates per epoch, the last of 8 rows
comm, one, many, facts = fit_one_and_many(model, X, y, **options)
out = {**facts, "grad_norm": rel_diff(np.asarray(many.history_["grad_norm"]), np.asarray(one.history_["grad_norm"]))[1],
       "lr_equal": many.history_["lr"] == one.history_["lr"]}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
