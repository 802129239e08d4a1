"""What the mpiexec workers share (tests/mpi_*_worker.py, run by path, so this folder is on sys.path): the
same model fitted on one process and data-parallel over every rank, compared."""
import hashlib

import numpy as np

from xpnet.distributed import Communicator
from xpnet.parity import rel_diff


def fit_one_and_many(model, X, y, **options):
    """Fit model() on this process alone and a second model() with distributed= over all ranks, with the same
    options -> (comm, one, many, facts): facts["params"] is the largest relative difference of the parameters,
    facts["ranks_identical"] whether every rank ended with bit-identical parameters."""
    comm = Communicator()
    one, many = model(), model()
    one.fit(X, y, **options)
    many.fit(X, y, distributed=comm, **options)
    a, b = one.get_state()["params"], many.get_state()["params"]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(b[k]).tobytes() for k in sorted(b))).hexdigest()
    facts = {"params": max(rel_diff(b[k], a[k])[1] for k in a),
             "ranks_identical": len(set(comm.allgather(digest))) == 1, "ranks": comm.size}
    return comm, one, many, facts
