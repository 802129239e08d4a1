"""Run under mpiexec by tests/test_precision.py: fp16-mixed data-parallel training on every rank. Prints one JSON
line from rank 0:

- "fit": fit(distributed=) against fit on one process (3 epochs, 18 steps of momentum SGD on a small MLP): the
  largest relative difference of the parameters, whether every rank ended bit-identical, and the final loss scales;
- "overflow": one DataParallel step whose global minibatch has rank 1's rows scaled by 1000, so that only rank 1's
  scaled float16 gradient overflows: each rank's local flag, and after the step on every rank whether parameters and
  the momentum buffers are unchanged, the loss scale, and whether the ranks agree bit for bit.
argv: backend."""
import hashlib
import json
import sys

import numpy as np

import xpnet
from xpnet.distributed import Communicator
from xpnet.distributed.data_parallel import DataParallel, shard
from xpnet.parity import default_problem
from xpnet.precision import LossScale, Policy
from mpi_common import fit_one_and_many

backend = sys.argv[1]
X, y = default_problem(n=240)
X = X.astype(np.float32)


def model(growth_interval=1000):
    return xpnet.Sequential([xpnet.Dense(16, 32), xpnet.Tanh(), xpnet.Dense(32, 4)],
                            optimizer=xpnet.SGD(0.1, momentum=0.9),
                            backend=backend, seed=0, precision=Policy("fp16-mixed", growth_interval=growth_interval))


def digest(d):
    return hashlib.sha256(b"".join(np.ascontiguousarray(d[k]).tobytes() for k in sorted(d))).hexdigest()


comm, one, many, facts = fit_one_and_many(model, X, y, epochs=3, batch_size=40)
scale = lambda m: float(m.bk.to_numpy(m.state.loss_scale["scale"]))  # noqa: E731
out = {"fit": dict(facts, scale_one=scale(one), scale_many=scale(many),
                   scales_agree=len(set(comm.allgather(scale(many)))) == 1)}

# the forced overflow on one rank's shard only
m = model()
dp = DataParallel(m, comm)
bk = m.bk
n = 32
Xs = X[:n].copy()
a, b = shard(n, 1, comm.size)
Xs[a:b] *= 1000.0  # rank 1's rows: the forward stays finite in float16, the scaled weight gradient does not
Xd, Yd = bk.asarray(Xs), bk.asarray(y[:n])
idx = bk.asarray(np.arange(n))
dp.step(bk.asarray(X[:n]), Yd, Yd, idx)  # a clean step first: the momentum buffers are non-zero
lo, hi = shard(n, comm.rank, comm.size)
local = m.value_and_grads(m.cast(Xd[lo:hi]), Yd[lo:hi], denom=n, penalty=False, indices=True)[2]
before = m.get_state()
scale_before = scale(m)
value, _, _, _ = dp.step(Xd, Yd, Yd, idx)
after = m.get_state()
unchanged = all(np.array_equal(after["params"][k], before["params"][k]) for k in before["params"]) and all(
    np.array_equal(after["opt_state"][k][s], before["opt_state"][k][s]) for k in before["opt_state"]
    for s in before["opt_state"][k])
state = {**after["params"], **{f"{k}/{s}": v for k, d in after["opt_state"].items() for s, v in d.items()}}
out["overflow"] = {"local_finite": comm.allgather(bool(bk.to_numpy(LossScale.all_finite(m.xp, local)))),
                   "unchanged": comm.allgather(unchanged), "scale_before": scale_before,
                   "scales_after": comm.allgather(scale(m)), "loss_finite": bool(np.isfinite(float(value))),
                   "ranks_identical": len(set(comm.allgather(digest(state)))) == 1}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
