"""Communication between the processes of a data-parallel run: MPI through mpi4py, and NCCL for CUDA arrays
bootstrapped over MPI (ChainerMN's pure_nccl pattern: rank 0 makes a unique id, MPI broadcasts it, each rank
joins one NCCL communicator on its own GPU).

The one module of xpnet that names mpi4py and the NCCL binding (tests/test_imports.py). What a training step
does with it (sharding, one flat buffer, the penalty after the sum) is in data_parallel.py, written with xp.

Paths of `Communicator.allreduce_` (a sum over ranks of one flat array, the result on every rank):
- "mpi": a CPU array whose host view is writeable (NumPy, torch CPU, array-api-strict where it shares
  memory): MPI all-reduces that memory in place; packing the gradients into the flat array was the one copy.
- "mpi-staged": any other array (JAX, whose arrays are immutable; CUDA arrays without NCCL): copied to a
  host buffer, all-reduced, copied back.
- "nccl": a CUDA array of CuPy or torch when cupy.cuda.nccl imports with NCCL in it (a CuPy built without NCCL
  still imports the module, with available = False) and every rank has its own GPU:
  NCCL all-reduces it in place on the library's current stream. NCCL refuses two ranks on one GPU, so
  ranks sharing a GPU use "mpi-staged" (and XPNET_NCCL=0 forces it).
"""
from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np

from ..errors import DistributedError, InputError  # DistributedError: also this module's

# environment variables a launcher sets in each process it starts (MPICH/Hydra and Intel MPI: PMI_*,
# Open MPI: OMPI_*, PMIx launchers: PMIX_RANK, SLURM's srun: SLURM_PROCID with SLURM_STEP_ID)
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_STEP_ID")
HOW_TO_LAUNCH = ('start one process per rank with a launcher: mpiexec -n 2 xpnet train --distributed ... (MPICH '
                 'or Open MPI), or srun -n 2 xpnet train --distributed ... under SLURM; MPI comes with '
                 'pip install "xpnet[mpi]"')


def abort_others(exc: BaseException, code: int) -> None:
    """After an error on this rank in a run of several: unless every rank raised it together (an error marked
    `collective`, such as check_same's), abort the job, so that the other ranks, waiting in a collective for
    this one, end too instead of hanging. Nothing without a multi-rank communicator."""
    comm = Communicator.current
    if comm is None or comm.size == 1 or getattr(exc, "collective", False):
        return
    print(f"xpnet: rank {comm.rank} of {comm.size} stopped on the error above; ending every rank (MPI_Abort)",
          file=sys.stderr, flush=True)
    time.sleep(0.5)  # MPI_Abort tears the job down at once: let the launcher forward these lines first
    comm.comm.Abort(code)


def launched() -> bool:
    """Whether this process was started by an MPI launcher (its environment says so)."""
    return any(v in os.environ for v in LAUNCHER_VARIABLES)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise InputError(f'--distributed / distributed=True needs mpi4py and an MPI library ({exc}); install them '
                         f'with pip install "xpnet[mpi]" (mpi4py and MPICH wheels, no system MPI needed)') from None
    except RuntimeError as exc:  # mpi4py is there but dlopen found no libmpi (mpi4py/_mpiabi.py _dlopen_libmpi)
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        tried = f": {lines[1][:160]}" if len(lines) > 1 else ""
        raise InputError(f"--distributed / distributed=True: mpi4py is installed but {lines[0]}{tried}; install MPICH "
                         f'into the same environment (pip install "xpnet[mpi]"; not pip install --target, which '
                         f"drops the wheel's lib/libmpi.so.12), or point the loader at your MPI: "
                         f"MPI4PY_LIBMPI=/path/to/libmpi.so or LD_LIBRARY_PATH=/path/to/mpi/lib") from None
    return MPI


def communicator(distributed) -> "Communicator":
    """`fit(..., distributed=)`'s value as a Communicator: True (MPI's world), a Communicator, or an mpi4py
    communicator (e.g. a split of COMM_WORLD)."""
    if isinstance(distributed, Communicator):
        return distributed
    if distributed is True:
        return Communicator()
    if hasattr(distributed, "Allreduce") and hasattr(distributed, "Get_size"):
        return Communicator(distributed)
    raise InputError(f"distributed= takes True, an xpnet.distributed.Communicator or an mpi4py communicator, got "
                     f"{type(distributed).__name__}")


class Communicator:
    """The ranks of a data-parallel run. comm: an mpi4py communicator (default MPI.COMM_WORLD); nccl: use NCCL
    for CUDA arrays (None: when available and every rank has its own GPU; False: host-staged MPI always).

    Refuses a world of one process started without a launcher: `--distributed` then says how to launch."""

    current = None  # the last one made in this process (what abort_others ends)

    def __init__(self, comm=None, nccl: bool | None = None):
        if comm is None and not launched():
            raise InputError(f"--distributed runs one process per rank, but this process was not started by an MPI "
                             f"launcher (world size 1); {HOW_TO_LAUNCH}")
        MPI = _mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        if nccl is None and os.environ.get("XPNET_NCCL") == "0":
            nccl = False
        self.nccl = nccl
        self._nccl = {}  # device -> NCCL communicator, or the reason it is not used
        Communicator.current = self
        self.peers = self.comm.allgather((os.getpid(), socket.gethostname()))  # rank -> (pid, host)

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    def device_for(self, backend: str | None, device: str | None) -> str | None:
        """The device this rank uses when asked for `device`: 'cuda' (or 'gpu') on a GPU backend becomes
        cuda:{local rank modulo the GPUs the backend sees}, so each rank of a machine takes its own GPU
        while there are enough; anything else is kept."""
        if device not in ("cuda", "gpu") or backend in (None, "auto"):
            return device
        from ..backend import _cuda_count
        count = _cuda_count(backend)
        return f"cuda:{self.local_rank % count}" if count else device

    # ---- collectives on Python objects (set-up, checks, reports; not per step) ----------------------
    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def bcast(self, obj, root: int = 0):
        return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def max(self, value: float) -> float:
        return self.comm.allreduce(value, op=self._MPI.MAX)

    def describe(self) -> str:
        """'rank 0 pid 1234 on host-a, rank 1 pid 1240 on host-a': the process behind each rank, so that a
        launcher's report of a failed PID names its rank."""
        return ", ".join(f"rank {r} pid {pid} on {host}" for r, (pid, host) in enumerate(self.peers))

    def lost(self, exc: BaseException) -> DistributedError:
        """The error to raise when a collective failed (MPI noticed a peer is gone): names the ranks of this
        machine whose process no longer exists (those elsewhere cannot be checked from here)."""
        host = socket.gethostname()
        gone = []
        for _ in range(20):  # a killed process may take a moment to be marked dead
            gone = [f"rank {r} (pid {pid} on {host})" for r, (pid, where) in enumerate(self.peers)
                    if r != self.rank and where == host and not _alive(pid)]
            if gone:
                break
            time.sleep(0.05)
        who = (", ".join(gone) + (" is" if len(gone) == 1 else " are") + " gone") if gone else \
            "another rank died or stopped answering (none of this machine's processes is gone)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DistributedError(f"the all-reduce failed on rank {self.rank}: {who} ({first[:160]}); the run cannot "
                                f"continue: resume from the last checkpoint")

    def check_same(self, digest: str, what: str) -> None:
        """Raise InputError on every rank unless every rank passed the same `digest` (a hash of `what`)."""
        digests = self.allgather(digest)
        if len(set(digests)) == 1:
            return
        groups = {}
        for r, d in enumerate(digests):
            groups.setdefault(d, []).append(r)
        named = " vs ".join("rank" + ("s " if len(rs) > 1 else " ") + ",".join(map(str, rs)) for rs in groups.values())
        error = InputError(f"the ranks were started with different {what} ({named}); start every rank with the same "
                           f"command, data and checkpoint")
        error.collective = True  # every rank raises it: no abort needed
        raise error

    # ---- the per-step sum -----------------------------------------------------------------------------
    def path(self, bk, sample) -> str:
        """Which path allreduce_ takes for arrays like `sample` of backend bk: 'nccl', 'mpi' or 'mpi-staged'."""
        if bk.cuda_pointers(sample) is not None:
            return "nccl" if self._nccl_comm(bk) is not None else "mpi-staged"
        host = bk.to_numpy(sample)
        return "mpi" if host.flags.writeable and _shares(host, sample, bk) else "mpi-staged"

    def allreduce_(self, flat, bk):
        """The sum over ranks of the 1-D array `flat` (float32 or float64, backend bk), on every rank: in place
        where the path allows, and returned (use the result)."""
        ptrs = bk.cuda_pointers(flat)
        if ptrs is not None:
            nccl = self._nccl_comm(bk)
            if nccl is not None:
                self._nccl_allreduce(nccl, flat, ptrs)
                return flat
        if self.size == 1:
            return flat
        host = bk.to_numpy(flat)
        if ptrs is None and host.flags.writeable and _shares(host, flat, bk):
            self._sum(host)
            return flat
        buf = np.array(host, copy=True)
        self._sum(buf)
        return bk.asarray(buf, dtype=flat.dtype)

    def _sum(self, host: np.ndarray) -> None:
        try:
            self.comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
        except self._MPI.Exception as exc:
            error = self.lost(exc)
            # said at once: the launcher may end this process any moment now that a rank is gone
            print(f"xpnet: {error}", file=sys.stderr, flush=True)
            error.reported = True
            raise error from None

    def allreduce_host(self, values: np.ndarray) -> np.ndarray:
        """The sum over ranks of a host NumPy array (a new array)."""
        out = np.array(values, copy=True)
        self._sum(out)
        return out

    # ---- NCCL (not yet run on a GPU: see docs/distributed.md) ------------------------------------------
    def _nccl_comm(self, bk):
        """The NCCL communicator for bk's GPU, made at the first use (a collective: every rank calls it at
        the same step), or None when NCCL is not used (the reason kept in self._nccl[device])."""
        if bk.device in self._nccl:
            got = self._nccl[bk.device]
            return None if isinstance(got, str) else got
        reason = None
        if self.nccl is False:
            reason = "NCCL turned off (nccl=False or XPNET_NCCL=0)"
        try:
            from cupy.cuda import nccl
        except Exception as exc:  # noqa: BLE001 (no CuPy, or a broken one)
            nccl, reason = None, reason or f"cupy.cuda.nccl is not available ({type(exc).__name__})"
        else:
            if not getattr(nccl, "available", True) or not hasattr(nccl, "get_unique_id"):
                # a CuPy without NCCL: cupy/cuda/nccl.py still imports, sets available = False, defines nothing else
                nccl, reason = None, reason or "this CuPy has no NCCL (cupy.cuda.nccl.available is False)"
        places = self.allgather((socket.gethostname(), bk.device))
        if reason is None and len(set(places)) < len(places):
            reason = "two ranks share a GPU, which NCCL refuses"
        reasons = self.allgather(reason)  # every rank takes the same path
        if any(r is not None for r in reasons):
            if self.nccl:
                raise DistributedError(f"nccl=True but NCCL cannot be used: {next(r for r in reasons if r)}")
            self._nccl[bk.device] = next(r for r in reasons if r)
            return None
        uid, failed = None, None
        if self.rank == 0:  # an error here must reach the other ranks, which wait in the broadcast
            try:
                uid = nccl.get_unique_id()
            except Exception as exc:  # noqa: BLE001
                failed = f"rank 0 could not make NCCL's unique id ({type(exc).__name__}: {exc})"
        uid, failed = self.bcast((uid, failed))
        if failed is not None:
            if self.nccl:
                raise DistributedError(f"nccl=True but NCCL cannot be used: {failed}")
            self._nccl[bk.device] = failed
            return None
        with bk:
            self._nccl[bk.device] = (nccl, nccl.NcclCommunicator(self.size, uid, self.rank))
        return self._nccl[bk.device]

    def nccl_reason(self, bk) -> str | None:
        """Why NCCL is not used for bk's arrays (None: it is, or it was not tried yet)."""
        got = self._nccl.get(bk.device)
        return got if isinstance(got, str) else None

    @staticmethod
    def _nccl_allreduce(nccl_pair, flat, ptrs) -> None:
        nccl, comm = nccl_pair
        kind = {4: nccl.NCCL_FLOAT32, 8: nccl.NCCL_FLOAT64}[np.dtype(str(flat.dtype).split(".")[-1]).itemsize]
        ptr, stream = ptrs
        comm.allReduce(ptr, ptr, int(flat.shape[0]), kind, nccl.NCCL_SUM, stream)


def _alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shares(host: np.ndarray, flat, bk) -> bool:
    """Whether the host view `host` is `flat`'s own memory (so an in-place all-reduce of it updates flat)."""
    if isinstance(flat, np.ndarray):
        return np.shares_memory(host, flat)
    again = bk.to_numpy(flat)
    return again.__array_interface__["data"][0] == host.__array_interface__["data"][0]
