"""File safety shared by every reader and writer: fsync a folder after a rename (so the rename survives a
crash), and the one pickle guard (xpnet never unpickles: loading a pickle can run any code in it).
The standard library only."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError

NEVER_UNPICKLES = "xpnet never unpickles files (loading a pickle can run any code)"


def fsync_dir(folder) -> None:
    """Make a rename (or a new file) in `folder` durable. Not possible on every platform (Windows cannot
    open a folder); there the file itself is already fsync'd, so this does nothing."""
    try:
        fd = os.open(Path(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def looks_pickled(head: bytes, zip_too: bool = False) -> bool:
    """Whether a file's first bytes start a pickle (protocol 2 and later begin with 0x80) or, with
    `zip_too`, a zip archive (torch.save's format, a pickle inside)."""
    return head[:1] == b"\x80" or (zip_too and head[:2] == b"PK")


def refuse_pickle(path, what: str, fix: str, error=InputError):
    """The error (not raised) for a pickle found in `path`: '{path}: {what}; xpnet never unpickles files
    (...); {fix}'."""
    return error(f"{path}: {what}; {NEVER_UNPICKLES}; {fix}")


@contextmanager
def no_unpickling(path, what: str, fix: str, error=InputError):
    """Around `numpy.load(..., allow_pickle=False)` and the reading of its arrays: NumPy's refusal to
    unpickle (a pickle file, or an object array inside a .npy or .npz) becomes `refuse_pickle`'s one line."""
    try:
        yield
    except ValueError as exc:
        if "allow_pickle" not in str(exc) or isinstance(exc, InputError):
            raise
        raise refuse_pickle(path, what, fix, error) from None


def atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never a part (`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


@contextmanager
def atomic_open(path, mode: str = "wb", **kwargs):
    """A file to write `path` through, so that a reader sees the old file or the new one, never a part: a
    temporary file in the same folder, written as the block runs (so a long output streams, never held whole),
    fsync'd, renamed over `path` when the block ends, the folder fsync'd; an error in the block leaves `path`
    as it was. Stale temporaries of a writer killed mid-write are removed. The file gets the usual mode for
    new files (0666 less the umask). mode: "wb", or "w" with open()'s text arguments (encoding, newline)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # the mode open() would give, not mkstemp's private 0600
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for stale in folder.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write
            try:
                stale.unlink()
            except OSError:
                pass
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def atomic_write_text(path, text: str) -> None:
    """atomic_write of UTF-8 text."""
    atomic_write(path, text.encode("utf-8"))
