"""Run under mpiexec by tests/test_distributed.py: fit(distributed=True) against fit on one process, on every
rank. Prints one JSON line from rank 0: the largest relative differences, and whether every rank ended with
bit-identical parameters. argv: backend dtype."""
import json
import sys

import numpy as np

import xpnet
from xpnet.parity import default_problem, rel_diff
from mpi_common import fit_one_and_many

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
comm, one, many, facts = fit_one_and_many(model, X, y, **options)
h1, h2 = one.history_, many.history_
out = {**facts, "loss": rel_diff(np.asarray(h2["loss"]), np.asarray(h1["loss"]))[1],
       "batch_losses": rel_diff(np.asarray(many.batch_losses_), np.asarray(one.batch_losses_))[1],
       "val_loss": rel_diff(np.asarray(h2["val_loss"]), np.asarray(h1["val_loss"]))[1],
       "accuracy_equal": h1["accuracy"] == h2["accuracy"], "steps": len(many.batch_losses_),
       "world_size": many.state.settings["world_size"]}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
