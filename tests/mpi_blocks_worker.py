"""Run under mpiexec by tests/test_blocks.py: fit(distributed=True) of a residual network without BatchNorm
(nested blocks, a strided shortcut, Concatenate, a tied Dense, Dropout inside a block) against fit on one
process, on every rank. Prints one JSON line from rank 0: the largest relative differences, and whether every
rank ended with bit-identical parameters. argv: backend dtype."""
import json
import sys

import numpy as np

import xpnet
from xpnet import Chain, Concatenate, Conv2D, Dense, Residual
from xpnet.parity import rel_diff
from mpi_common import fit_one_and_many

backend, dtype = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
X = rng.standard_normal((90, 1, 6, 6))
y = (X[:, 0, :3].sum(axis=(1, 2)) > 0).astype(int) + (X[:, 0, 3:].sum(axis=(1, 2)) > 0)


def model():
    tied = Dense(6, 6)
    layers = [Conv2D(1, 3, 3, padding=1), xpnet.ReLU(),
              Residual(Chain([Conv2D(3, 3, 3, padding=1), xpnet.Tanh(), xpnet.Dropout(0.2)])),
              Residual(Chain([Conv2D(3, 4, 3, stride=2, padding=1), xpnet.Tanh()]), shortcut=Conv2D(3, 4, 1, stride=2)),
              Concatenate([xpnet.GlobalAvgPool2D(), Chain([xpnet.MaxPool2D(3), xpnet.Flatten()])]),
              Dense(8, 6), xpnet.Tanh(), tied, xpnet.Tanh(), tied, Dense(6, 3)]
    return xpnet.Sequential(layers, optimizer=xpnet.SGD(0.02, momentum=0.9), l2=1e-3, backend=backend, dtype=dtype,
                            seed=0, input_shape=(1, 6, 6))


# batch 20 of 90 rows: a last short minibatch of 10, shards of 10 and 5 on two ranks
options = dict(epochs=2, batch_size=20)
comm, one, many, facts = fit_one_and_many(model, X, y, **options)
out = {**facts, "batch_losses": rel_diff(np.asarray(many.batch_losses_), np.asarray(one.batch_losses_))[1],
       "accuracy_equal": one.history_["accuracy"] == many.history_["accuracy"],
       "steps": len(many.batch_losses_), "names": list(one.get_state()["params"])}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
