"""Data-parallel training over several processes: `communicator` (the ranks, MPI and NCCL: the only module of
xpnet that names mpi4py and cupy.cuda.nccl), `data_parallel` (the steps summed over the ranks, sharding) and
`parity` (N ranks against one process). `xpnet.distributed.Communicator` and the other names of the former
xpnet/distributed.py stay here."""
from .communicator import (HOW_TO_LAUNCH, LAUNCHER_VARIABLES, Communicator, DistributedError, abort_others,
                           communicator, launched)

__all__ = ["HOW_TO_LAUNCH", "LAUNCHER_VARIABLES", "Communicator", "DistributedError", "abort_others", "communicator",
           "launched"]
