"""Run under mpiexec by tests/test_sequence_training.py: fit(distributed=True) of the tiny transformer parity model
(token ids in, (time, vocab) logits, integer targets per position) against fit on one process, on every rank.
Prints one JSON line from rank 0: the largest relative differences, and whether every rank ended with
bit-identical parameters. argv: backend dtype."""
import json
import sys

import numpy as np

from xpnet.parity import rel_diff
from xpnet.tools.parity import sequence_problem, transformer_model
from mpi_common import fit_one_and_many

backend, dtype = sys.argv[1], sys.argv[2]
X, y = sequence_problem(n=30)

# batch 8 of 30 rows: a last short minibatch of 6, shards of 4 and 3 on two ranks
options = dict(epochs=2, batch_size=8)
comm, one, many, facts = fit_one_and_many(lambda: transformer_model(backend, dtype), X, y, **options)
out = {**facts, "batch_losses": rel_diff(np.asarray(many.batch_losses_), np.asarray(one.batch_losses_))[1],
       "accuracy": [one.history_["accuracy"], many.history_["accuracy"]], "steps": len(many.batch_losses_)}
if comm.rank == 0:
    print(json.dumps(out), flush=True)
