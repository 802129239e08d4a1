"""Run under mpiexec by tests/test_losses_metrics.py: a weighted, label-smoothed fit(distributed=True) monitored by
EarlyStopping(monitor="val_f1_macro") against the same fit on one process, on every rank. Prints one JSON line
from rank 0. argv: backend dtype."""
import hashlib
import json
import sys

import numpy as np

import xpnet
from xpnet.distributed import Communicator
from xpnet.parity import default_problem, rel_diff

backend, dtype = sys.argv[1], sys.argv[2]
X, y = default_problem(n=300, features=10, classes=4, seed=1)
keep = (y != 0) | (np.arange(300) % 4 == 0)  # class 0 made rare: "balanced" weights differ
X, y = X[keep], y[keep]
sw = np.random.default_rng(0).uniform(0.2, 2.0, len(y))


def model():
    return xpnet.Sequential([xpnet.Dense(10, 16), xpnet.Tanh(), xpnet.Dense(16, 4)],
                            loss=xpnet.SoftmaxCrossEntropy(label_smoothing=0.1), optimizer=xpnet.SGD(0.2, momentum=0.9),
                            backend=backend, dtype=dtype, seed=0)


# batch 25 split over the ranks, 2 micro-batches per shard, a last short minibatch
options = dict(epochs=6, batch_size=25, validation_split=0.25, accumulate=2, class_weight="balanced",
               sample_weight=sw)
comm = Communicator()
one, many = model(), model()
stop_one, stop_many = (xpnet.EarlyStopping(patience=2, monitor="val_f1_macro") for _ in range(2))
one.fit(X, y, early_stopping=stop_one, **options)
many.fit(X, y, distributed=comm, early_stopping=stop_many, **options)
a, b = one.get_state()["params"], many.get_state()["params"]
digest = hashlib.sha256(b"".join(np.ascontiguousarray(b[k]).tobytes() for k in sorted(b))).hexdigest()
f1s = comm.allgather(many.history_["val_f1_macro"])
out = {"params": max(rel_diff(b[k], a[k])[1] for k in a),
       "batch_losses": (rel_diff(np.asarray(many.batch_losses_), np.asarray(one.batch_losses_))[1]
                        if len(many.batch_losses_) == len(one.batch_losses_) else float("inf")),
       "val_f1_macro": many.history_["val_f1_macro"], "one_val_f1_macro": one.history_["val_f1_macro"],
       "stopped": [stop_one.stopped_epoch, stop_many.stopped_epoch],
       "ranks_identical": len(set(comm.allgather(digest))) == 1, "ranks_agree_on_f1": all(f == f1s[0] for f in f1s),
       "ranks": comm.size}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
