"""The `xpnet` command: backends, gradcheck, parity, train, evaluate, predict, generate, export, summary. `build_parser`
assembles the parser from each command module's `add_parser`; `main` runs the command and maps its errors
to one line. Configuration is read here, at run time."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from .._version import __version__
from ..backend import BackendError
from . import backends, evaluate, export, generate, gradcheck, parity, predict, summary, train

# one module per command, each with add_parser(sub) (its subparser and flags) and cmd_<name>(args) -> exit code
COMMANDS = (backends, gradcheck, parity, train, evaluate, predict, generate, export, summary)
EPILOG = "Environment: XPNET_BACKEND, XPNET_DEVICE (defaults for --backend/--device), XPNET_DATA (data directory)."


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: 'xpnet train: error: ... (see xpnet train --help)', exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports flags its command does not know from the top parser ('see xpnet --help'):
        # report them from the command's own parser, whose help lists the flags it takes
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = getattr(self, "commands", {})
            commands.get(getattr(parsed, "command", None), self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The `xpnet` parser: the top-level flags, then each command's subparser, built by its own module's
    `add_parser(sub)` (cli/<command>.py), in the order `xpnet --help` lists them."""
    p = _Parser(prog="xpnet", description="Train neural networks on NumPy, CuPy, PyTorch or JAX "
                                "from one Array API implementation.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"xpnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p.commands = sub.choices  # name -> its parser, filled in below
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("XPNET_DEBUG") == "1"
    if not debug:
        # One line per warning; floating-point warnings are noise here: xpnet checks every loss itself
        # and stops a diverging run with an error that names the epoch and step.
        warnings.formatwarning = lambda msg, cat, *a, **k: f"xpnet: warning: {msg}\n"
        warnings.filterwarnings("ignore", message=".*encountered in", category=RuntimeWarning)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, no traceback unless --debug
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            return 141  # the reader of the output left (xpnet predict ... | head): stop quietly, as `cat` does
        if debug or not _is_user_error(exc):
            if _abort_others(exc, 1, traceback=True):
                return 1
            raise
        print(f"xpnet {args.command}: error: {as_flags(exc, args)}", file=sys.stderr)
        _abort_others(exc, 2)
        return 2


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has closed it (poll: an error on its write end); if so,
    it is pointed at /dev/null, so that Python's flush at exit does not print the same error again."""
    import select
    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poll.poll(0)):
            return False
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
        return True
    except (AttributeError, OSError, ValueError):  # no file descriptor (output captured), no poll
        return False


def _abort_others(exc, code: int, traceback: bool = False) -> bool:
    """In a run of several ranks (--distributed), an error on this rank alone ends the whole job (the others
    would wait for it in the next all-reduce); see xpnet.distributed.abort_others. False when not distributed."""
    dist = sys.modules.get("xpnet.distributed.communicator")
    comm = None if dist is None else dist.Communicator.current
    if comm is None or comm.size == 1:
        return False
    if traceback:
        import traceback as tb
        tb.print_exc()
    dist.abort_others(exc, code)
    return True


def as_flags(exc: BaseException, args) -> str:
    """The one line to print for `exc`: its message, except that an error about one keyword argument
    (InputError's fields `argument` and `detail`: "batch_size" and "0: must be a positive integer" of
    'batch_size=0: must be a positive integer', written by `InputError.for_argument`) names the flag
    instead when that keyword is one of this command's options ('--batch-size 0: must be a positive
    integer'), so the message names what the user typed. The fields decide; the message is not read."""
    name, detail = getattr(exc, "argument", None), getattr(exc, "detail", None)
    if not name or detail is None or name in ("command", "func", "file") or name not in vars(args):
        return str(exc)
    return f"--{name.replace('_', '-')} {detail}"


def _is_user_error(exc: BaseException) -> bool:
    from ..errors import DistributedError, InputError, OutOfMemory, PrefetchError, TrainingDiverged
    # (DataError and CheckpointError are InputErrors; DistributedError: a rank gone, one line, then the job ends)
    user = (BackendError, InputError, TrainingDiverged, OutOfMemory, DistributedError, FileNotFoundError,
            PermissionError, IsADirectoryError)
    if isinstance(exc, PrefetchError):  # a prefetch thread's read failed: a user error if its cause is one
        return exc.__cause__ is not None and _is_user_error(exc.__cause__)
    return isinstance(exc, user)


if __name__ == "__main__":
    sys.exit(main())
