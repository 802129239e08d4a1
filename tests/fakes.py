"""Stand-ins shared by tests (importable as `fakes`: pytest.ini puts tests/ on the path, and a worker script
run from tests/ has its own folder on sys.path)."""
import contextlib
import io

from xpnet.distributed import Communicator


class OneOfTwo(Communicator):
    """Rank 1 of 2 in one process, no MPI: the other rank's share is taken equal to this one's (the sums are
    wrong, the placement is what is checked); with 1-row minibatches this rank's shard is empty."""

    def __init__(self):
        self.rank, self.size, self.local_rank, self.local_size = 1, 2, 1, 2
        self.nccl, self._nccl, self.peers = False, {}, [(0, "here"), (1, "here")]

    def allgather(self, obj):
        return [obj, obj]

    def check_same(self, digest, what):
        pass

    def _sum(self, host):
        host *= 2


def run_cli(*argv) -> tuple[int, str, str]:
    """xpnet's command line in this process: (exit code, stdout, stderr)."""
    from xpnet.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def installed(name: str) -> bool:
    """Whether the backend `name` can be made on this machine (its library imports)."""
    import xpnet
    try:
        xpnet.backend(name)
        return True
    except xpnet.BackendError:
        return False
