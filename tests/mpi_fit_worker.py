"""Run under mpiexec by tests/test_distributed.py: fit(distributed=True) against fit on one process, on every
rank. Prints one JSON line from rank 0: the largest relative differences, and whether every rank ended with
bit-identical parameters. argv: backend dtype."""
import hashlib
import json
import sys

import numpy as np

import xpnet
from xpnet.distributed import Communicator
from xpnet.parity import default_problem, rel_diff

backend, dtype = sys.argv[1], sys.argv[2]
X, y = default_problem(n=500)


def model():
    """parity's model with Dropout: the masks of the global minibatch are drawn on every rank and sliced."""
    layers = [xpnet.Dense(16, 32), xpnet.Tanh(), xpnet.Dropout(0.2), xpnet.Dense(32, 16), xpnet.ReLU(),
              xpnet.Dense(16, 4)]
    return xpnet.Sequential(layers, optimizer=xpnet.SGD(0.01, momentum=0.9), l1=1e-4, l2=1e-3, backend=backend,
                            dtype=dtype, seed=0)


# batch 48 of 450 training rows: a last short minibatch of 18; accumulate 2 micro-batches per shard
options = dict(epochs=3, batch_size=48, validation_split=0.1, accumulate=2)
comm = Communicator()
one, many = model(), model()
one.fit(X, y, **options)
many.fit(X, y, distributed=comm, **options)
a, b = one.get_state()["params"], many.get_state()["params"]
digest = hashlib.sha256(b"".join(np.ascontiguousarray(b[k]).tobytes() for k in sorted(b))).hexdigest()
same = len(set(comm.allgather(digest))) == 1
h1, h2 = one.history_, many.history_
out = {"params": max(rel_diff(b[k], a[k])[1] for k in a),
       "loss": rel_diff(np.asarray(h2["loss"]), np.asarray(h1["loss"]))[1],
       "batch_losses": rel_diff(np.asarray(many.batch_losses_), np.asarray(one.batch_losses_))[1],
       "val_loss": rel_diff(np.asarray(h2["val_loss"]), np.asarray(h1["val_loss"]))[1],
       "accuracy_equal": h1["accuracy"] == h2["accuracy"], "ranks_identical": same, "steps": len(many.batch_losses_),
       "world_size": many.state.settings["world_size"], "ranks": comm.size}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
