"""Run under mpiexec by tests/test_regimes.py: a fit with clip_norm, parameter groups and a per-step warmup and
cosine decay, distributed against one process, on every rank. Prints one JSON line from rank 0."""
import hashlib
import json

import numpy as np

import xpnet
from xpnet.distributed import Communicator
from xpnet.parity import default_problem, rel_diff

X, y = default_problem(n=200)


def model():
    opt = xpnet.AdamW(1e-2, weight_decay=0.1, clip_norm=0.3, param_groups="nanogpt")
    return xpnet.Sequential([xpnet.Dense(16, 24), xpnet.Tanh(), xpnet.Dense(24, 4)], optimizer=opt, l2=1e-3,
                            schedule=xpnet.WarmupCosine(8, 20, 1e-3), backend="numpy", dtype="float64", seed=0)


options = dict(epochs=2, batch_size=24, accumulate=2)  # 9 updates per epoch, the last of 8 rows
comm = Communicator()
one, many = model(), model()
one.fit(X, y, **options)
many.fit(X, y, distributed=comm, **options)
a, b = one.get_state()["params"], many.get_state()["params"]
digest = hashlib.sha256(b"".join(np.ascontiguousarray(b[k]).tobytes() for k in sorted(b))).hexdigest()
out = {"params": max(rel_diff(b[k], a[k])[1] for k in a),
       "grad_norm": rel_diff(np.asarray(many.history_["grad_norm"]), np.asarray(one.history_["grad_norm"]))[1],
       "lr_equal": many.history_["lr"] == one.history_["lr"],
       "ranks_identical": len(set(comm.allgather(digest))) == 1}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
