"""Datasets: MNIST / Fashion-MNIST IDX files (found locally or downloaded and checksummed), the bundled
8x8 digits, and user arrays from .npz or .csv. NumPy and the standard library only; never unpickles.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import io
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np

from .labels import as_label_array, distinct, is_names, shown
from .validation import first_nonfinite
from ..errors import DataError, InputError  # DataError: also xpnet.data.datasets'
from ..saving.files import fsync_dir, looks_pickled, no_unpickling, refuse_pickle


# Display names of the classes of the datasets that have them (labels stay 0..9).
CLASS_NAMES = {"fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                 "Sneaker", "Bag", "Ankle boot"]}


FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
# torchvision's MNIST mirrors; Zalando Research's Fashion-MNIST bucket.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
              0x0E: "float64"}
_CHUNK = 1 << 20


# ----------------------------------------------------------------------------------------------- IDX files

def _open_idx(path: Path):
    """Binary stream over the IDX bytes of `path`, decompressing when it starts with the gzip magic 1f 8b."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open it ({exc.strerror or exc})") from None
    try:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
    except OSError as exc:
        f.close()
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return (gzip.GzipFile(fileobj=f, mode="rb"), f) if gz else (f, f)


def _read_at_most(stream, n: int) -> bytearray:
    """Up to n bytes from stream, in chunks, so memory is bounded by what the file really holds."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _count_rest(stream) -> int:
    n = 0
    while chunk := stream.read(_CHUNK):
        n += len(chunk)
    return n


def read_idx(path) -> np.ndarray:
    """IDX file (gzipped or raw) -> uint8 array of its declared shape: images (count, rows, cols), labels (count,)."""
    path = Path(path)
    stream, raw = _open_idx(path)
    try:
        with raw, stream:
            magic = _read_at_most(stream, 4)
            if len(magic) < 4:
                raise DataError(f"{path}: truncated IDX file: expected a 4-byte header, found {len(magic)} bytes")
            if magic[0] or magic[1]:
                raise DataError(f"{path}: not an IDX file (magic number 0x{bytes(magic).hex()}, expected 0x00000803 "
                                f"for images or 0x00000801 for labels); it may be an HTML error page or another "
                                f"format: delete it and download it again")
            dtype, ndim = magic[2], magic[3]
            if dtype != 0x08:
                name = _IDX_TYPES.get(dtype, "unknown")
                raise DataError(f"{path}: IDX element type 0x{dtype:02x} ({name}) is not supported; "
                                f"only unsigned bytes (0x08), as in MNIST and Fashion-MNIST, can be read")
            if ndim == 0:
                raise DataError(f"{path}: IDX header declares 0 dimensions; expected 3 (images) or 1 (labels)")
            header = _read_at_most(stream, 4 * ndim)
            if len(header) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX file: expected {4 * ndim} bytes of dimensions, "
                                f"found {len(header)}")
            shape = tuple(int.from_bytes(header[4 * i:4 * i + 4], "big") for i in range(ndim))
            expected = 1
            for d in shape:
                expected *= d
            data = _read_at_most(stream, expected)  # never more than the file holds
            if len(data) < expected:
                raise DataError(f"{path}: truncated IDX file: shape {shape} needs {expected} data bytes, "
                                f"found {len(data)}; delete it and download it again")
            extra = _count_rest(stream)
            if extra:
                raise DataError(f"{path}: IDX file has {extra} bytes after the data: shape {shape} needs "
                                f"{expected} data bytes, found {expected + extra}; the file is corrupt or "
                                f"not an IDX file")
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or unreadable gzip data ({type(exc).__name__}: {exc}); "
                        f"delete it and download it again") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def load_idx_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """IDX images + labels -> X uint8 (n, rows*cols), y uint8 (n,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        hint = "; did you swap the images and labels files?" if images.ndim == 1 else ""
        raise DataError(f"{images_path}: expected IDX images with 3 dimensions (count, rows, cols), "
                        f"got shape {images.shape}{hint}")
    if labels.ndim != 1:
        hint = "; did you swap the images and labels files?" if labels.ndim == 3 else ""
        raise DataError(f"{labels_path}: expected IDX labels with 1 dimension (count,), "
                        f"got shape {labels.shape}{hint}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                        f"{labels.shape[0]} labels; they must match (are the files from the same set?)")
    return images.reshape(images.shape[0], -1), labels


# ------------------------------------------------------------------------------------ finding and fetching

def default_data_dir(environ=None) -> Path:
    """$XPNET_DATA if set, else $XDG_CACHE_HOME/xpnet, else ~/.cache/xpnet (read now, at call time)."""
    env = os.environ if environ is None else environ
    if env.get("XPNET_DATA"):
        return Path(env["XPNET_DATA"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "xpnet"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".cache" / "xpnet"


def _check_dataset(dataset) -> str:
    if dataset not in SHA256:
        raise DataError(f"unknown dataset {dataset!r}; choose one of: {', '.join(SHA256)}")
    return dataset


def find_files(dataset: str, data_dir) -> dict[str, Path] | None:
    """The four IDX files (gzipped or not) in data_dir, else in data_dir/<dataset>; None if not all in one place."""
    _check_dataset(dataset)
    data_dir = Path(data_dir).expanduser()
    for folder in (data_dir, data_dir / dataset):
        found = {}
        for name in FILES:
            for candidate in (folder / name, folder / name[:-3]):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _missing_message(dataset: str, data_dir: Path, why: str) -> str:
    mirrors = " or ".join(MIRRORS[dataset])
    return (f"{why}. Get the four {dataset} files {', '.join(FILES)} (from {mirrors}) and put them in "
            f"{data_dir / dataset} (or in any folder, then pass --data-dir FOLDER or set XPNET_DATA=FOLDER)")


class _NetworkError(Exception):
    pass


_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, EOFError, ValueError)


def _fetch(url: str, folder: Path, name: str, timeout: float) -> tuple[str, str]:
    """Download url into a temporary file in folder -> (temporary path, sha256); the caller owns the file."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise DataError(f"cannot write to {folder} ({exc.strerror or exc}); pass --data-dir or set XPNET_DATA "
                        f"to a writable folder") from None
    h, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "xpnet"}),
                                                  timeout=timeout)
            except _NETWORK_ERRORS as exc:
                why = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", None) or exc
                raise _NetworkError(f"{url}: {why}") from None
            with response:
                length = response.headers.get("Content-Length")
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except _NETWORK_ERRORS as exc:
                        raise _NetworkError(f"{url}: {type(exc).__name__} after {size} bytes: {exc}") from None
                    if not chunk:
                        break
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise DataError(f"cannot write to {tmp} ({exc.strerror or exc})") from None
                    h.update(chunk)
                    size += len(chunk)
            if length is not None and length.strip().isdigit() and int(length) != size:
                raise _NetworkError(f"{url}: connection closed after {size} of {length.strip()} bytes")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp, h.hexdigest()


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def download(dataset: str, data_dir, mirrors=None, timeout: float = 30) -> dict[str, Path]:
    """Fetch the four IDX files into data_dir/<dataset>/, trying mirrors in order; each is SHA-256 checked,
    fsync'd and atomically renamed into place, so a final name only ever holds a verified file."""
    _check_dataset(dataset)
    data_dir = Path(data_dir).expanduser()
    folder = data_dir / dataset
    mirrors = list(MIRRORS[dataset] if mirrors is None else mirrors)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder} ({exc.strerror or exc}); pass --data-dir or set XPNET_DATA "
                        f"to a writable folder") from None
    paths = {}
    for name in FILES:
        final, expected = folder / name, SHA256[dataset][name]
        if final.is_file() and _sha256(final) == expected:
            paths[name] = final  # left by an earlier, partly failed, download
            continue
        network, bad = [], []
        for mirror in mirrors:
            url = mirror if mirror.endswith("/") else mirror + "/"
            url += name
            try:
                tmp, actual = _fetch(url, folder, name, timeout)
            except _NetworkError as exc:
                network.append(str(exc))
                continue
            if actual != expected:
                _unlink(tmp)
                bad.append((url, actual))
                continue
            try:
                os.replace(tmp, final)
            except OSError as exc:
                _unlink(tmp)
                raise DataError(f"cannot move the download into {final} ({exc.strerror or exc})") from None
            fsync_dir(folder)
            paths[name] = final
            break
        else:
            tried = "; ".join([f"{u}: wrong SHA-256 {a}" for u, a in bad] + network) or "no mirrors given"
            if bad:
                raise DataError(f"{name}: downloaded file has the wrong checksum: expected SHA-256 {expected}, "
                                f"got {bad[0][1]} from {bad[0][0]} (all tried: {tried}); nothing was saved "
                                f"under {final}")
            raise DataError(_missing_message(dataset, data_dir, f"could not download {name} from any mirror "
                                                                f"({tried})"))
    return paths


_download = download


def load_mnist(dataset: str = "mnist", data_dir=None, download: bool = True, mirrors=None, images: bool = False):
    """MNIST or Fashion-MNIST -> X_train uint8 (60000, 784), y_train uint8 (60000,), X_test (10000, 784), y_test;
    images=True: X_train (60000, 1, 28, 28) and X_test (10000, 1, 28, 28), for convolutional models.

    Files are looked for in data_dir (default: default_data_dir()) and data_dir/<dataset>; if absent they are
    downloaded (when `download`) into data_dir/<dataset>. Only downloads are checksummed, not local files."""
    _check_dataset(dataset)
    data_dir = Path(default_data_dir() if data_dir is None else data_dir).expanduser()
    files = find_files(dataset, data_dir)
    if files is None:
        if not download:
            raise DataError(_missing_message(dataset, data_dir, f"{dataset} files not found in {data_dir} "
                                                                f"or {data_dir / dataset}"))
        files = _download(dataset, data_dir, mirrors)
    X_train, y_train = load_idx_pair(files[FILES[0]], files[FILES[1]])
    X_test, y_test = load_idx_pair(files[FILES[2]], files[FILES[3]])
    if X_train.shape[1] != X_test.shape[1]:
        raise DataError(f"{files[FILES[0]]} has {X_train.shape[1]} pixels per image but {files[FILES[2]]} has "
                        f"{X_test.shape[1]}; the files come from different datasets")
    for path, y in ((files[FILES[1]], y_train), (files[FILES[3]], y_test)):
        if y.size and y.max() > 9:
            raise DataError(f"{path}: labels must be 0..9, found {int(y.max())}; the file is corrupt")
    if images:
        side = int(round(X_train.shape[1] ** 0.5))
        X_train, X_test = (a.reshape(len(a), 1, side, side) for a in (X_train, X_test))
    return X_train, y_train, X_test, y_test


# ------------------------------------------------------------------------------------------- small datasets

def load_digits(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's bundled 8x8 digits (1797 images, offline) -> X_train float64 (n, 64) in 0..16,
    y_train int64, X_test, y_test.

    Split: perm = numpy.random.default_rng(seed).permutation(1797); the first round(test_fraction * 1797)
    indices (359 for the default 0.2) are the test set, the rest the training set, both in permuted order.
    Not stratified. The same seed always gives the same split."""
    if not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise DataError(f"the 8x8 digits come with scikit-learn, which is not installed ({exc}); "
                        f"install it with: pip install scikit-learn") from None
    bunch = sk_load_digits()
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
    n = X.shape[0]
    n_test = int(round(test_fraction * n))
    if not 0 < n_test < n:
        raise DataError.for_argument("test_fraction", f"{test_fraction} leaves {n_test} of {n} samples for testing; "
                                                      f"choose a fraction that leaves at least one sample on each side")
    perm = np.random.default_rng(seed).permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return X[train], y[train], X[test], y[test]


def _numeric(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "biuf" and not (key in ("y", "y_test") and a.dtype.kind == "U"):
        raise DataError(f"{path}: array {key!r} has dtype {a.dtype}; expected numbers "
                        f"(save it with e.g. {key}.astype('float32'))")
    return a


def _load_npz(path: Path):
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: holds a single .npy array, not an .npz archive; save X and y with "
                        f"numpy.savez(path, X=X, y=y)")
    if looks_pickled(magic):
        raise refuse_pickle(path, "a pickle, not an .npz archive", "save plain numeric arrays with "
                                  "numpy.savez(path, X=X, y=y)", DataError)
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise DataError(f"{path}: not an .npz archive (it does not start with the zip signature); save plain "
                        f"numeric arrays with numpy.savez(path, X=X, y=y)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError, ...
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    with archive:
        keys = list(archive.files)
        missing = [k for k in ("X", "y") if k not in keys]
        if missing:
            raise DataError(f"{path}: missing array(s) {', '.join(missing)}; found {keys or 'none'}; expected X, y "
                            f"and optionally X_test, y_test, as written by numpy.savez(path, X=X, y=y)")
        if ("X_test" in keys) != ("y_test" in keys):
            raise DataError(f"{path}: has {'X_test' if 'X_test' in keys else 'y_test'} without "
                            f"{'y_test' if 'X_test' in keys else 'X_test'}; save both or neither")
        out = {}
        for key in ("X", "y", "X_test", "y_test"):
            if key not in keys:
                out[key] = None
                continue
            try:
                with no_unpickling(path, f"array {key!r} is a pickled object array", "save plain numeric arrays "
                                   "instead", DataError):
                    out[key] = _numeric(path, key, archive[key])  # labels may be names (str)
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"{path}: array {key!r} is corrupt ({type(exc).__name__}: {exc})") from None
    for X, y, xk, yk in ((out["X"], out["y"], "X", "y"), (out["X_test"], out["y_test"], "X_test", "y_test")):
        if X is not None and (X.ndim == 0 or y.ndim == 0):
            key, a = (xk, X) if X.ndim == 0 else (yk, y)
            raise DataError(f"{path}: {key} is a single number (shape {a.shape}); expected an array with one "
                            f"{'row' if key == xk else 'label'} per sample, as numpy.savez(path, X=X, y=y) writes")
        if X is not None and len(X) != len(y):
            raise DataError(f"{path}: {xk} has shape {X.shape} but {yk} has shape {y.shape}; "
                            f"they need the same number of samples")
    return out["X"], out["y"], out["X_test"], out["y_test"]


def _csv_error(path: Path, header: list[str], text: str, first_line: int,
               skip: int | None = None) -> DataError:
    """Find the first bad row of a CSV body that numpy could not parse (or that holds a NaN or infinite
    cell), and describe it. first_line: the file's line number of the body's first line (the line after the
    header); a row is named by the line it starts on, counting blank lines and lines inside quoted cells.
    skip: a column not to check (the label column, when it holds names)."""
    reader = csv.reader(io.StringIO(text))
    end = 0  # the body lines read so far
    for row in reader:
        lineno, end = first_line + end, reader.line_num
        if not row:  # numpy skips empty lines only: a line of spaces or commas is a row
            continue
        if len(row) != len(header):
            return DataError(f"{path}, line {lineno}: {len(row)} fields but the header has {len(header)}; "
                             f"each row needs one value per column (quote a cell that holds a comma)")
        for j, (col, value) in enumerate(zip(header, row)):
            if j == skip:
                continue
            try:
                number = float(value)
            except ValueError:
                return DataError(f"{path}, line {lineno}, column {col!r}: {value!r} is not a number")
            if not np.isfinite(number):
                return DataError(f"{path}, line {lineno}, column {col!r}: {value.strip()!r} is not a finite number; "
                                 f"remove or impute that value")
    return DataError(f"{path}: could not parse it as numeric CSV")


def _no_header_hint(header: list[str]) -> str:
    try:
        [float(h) for h in header]
    except ValueError:
        return ""
    return "; the first line holds numbers: is the header row missing? Add one that names the columns"


def _csv_header(fh, path: Path, label_column: str) -> tuple[list[str], int]:
    """Read an open CSV up to its header row, the first line that is not blank (a quoted name may span lines):
    (the column names, the file's line number of the line after it). `fh` is left at the first data line."""
    reader = csv.reader(fh)
    row = []
    try:
        for row in reader:
            if len(row) > 1 or (row and row[0].strip()):
                break
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    header = [h.strip() for h in row]
    if not any(header):
        where = f", line {reader.line_num}: the header row names no columns" if len(row) > 1 else ": empty CSV file"
        raise DataError(f"{path}{where}; expected a header row naming the columns, one of them {label_column!r}")
    return header, reader.line_num + 1


def _not_utf8(path: Path, exc) -> DataError:
    return DataError(f"{path}: not UTF-8 text ({exc}); is it really a CSV file?")


def _csv_body(path: Path, label_column: str) -> str:
    """The text after a CSV's header row, read again: what the error paths look through."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        _csv_header(fh, path, label_column)
        try:
            return fh.read()
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None


def _load_csv(path: Path, label_column: str):
    """The file is read once, as NumPy parses it (never held whole as text); the error paths read it again."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header, first_line = _csv_header(fh, path, label_column)
            if header.count(label_column) != 1:
                how = "appears more than once" if header.count(label_column) > 1 else "is not in the header"
                raise DataError(f"{path}: label column {label_column!r} {how}; columns are {header}; "
                                f"pass label_column=NAME (--label-column NAME) to pick the label column"
                                f"{_no_header_hint(header)}")
            if len(header) < 2:
                raise DataError(f"{path}: only the label column {label_column!r}; expected feature columns too")
            j = header.index(label_column)
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*input contained no data")
                    data = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2, comments=None, quotechar='"')
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, exc) from None
            except ValueError:
                data = None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if data is None or not data.size:
        body = _csv_body(path, label_column)
        if not body.strip():
            raise DataError(f"{path}: has a header but no data rows")
        if data is None:
            return _load_csv_named_labels(path, header, body, j, first_line)
    if data.shape[1] != len(header) or not np.isfinite(data).all():
        raise _csv_error(path, header, _csv_body(path, label_column), first_line)
    y = data[:, j]
    X = np.delete(data, j, axis=1)
    if (y == np.round(y)).all() and (np.abs(y) < 2**53).all():
        y = y.astype(np.int64)  # exactly; larger whole floats stay float64 (astype would wrap them around)
    return X, y, None, None


def _load_csv_named_labels(path: Path, header: list[str], body: str, j: int, first_line: int):
    """A CSV whose label column (index j) holds names ("setosa", ...): numeric features, str labels.
    Or numpy could not read a numeric CSV: then _csv_error names the first bad row."""
    rows = [row for row in csv.reader(io.StringIO(body)) if row]
    y = np.asarray([row[j].strip() for row in rows if len(row) > j])
    try:
        y.astype(np.float64)
    except ValueError:
        pass
    else:  # the labels are numbers: the bad cell is a feature, or a row is ragged
        raise _csv_error(path, header, body, first_line)
    if any(len(row) != len(header) for row in rows):  # names: not checked as numbers (skip=j)
        raise _csv_error(path, header, body, first_line, skip=j)
    width = len(header)
    try:
        X = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2, comments=None, quotechar='"',
                       usecols=[k for k in range(width) if k != j])
    except ValueError:
        raise _csv_error(path, header, body, first_line, skip=j) from None
    if len(X) != len(y) or not np.isfinite(X).all():
        raise _csv_error(path, header, body, first_line, skip=j)
    return X, y, None, None


def load_array_file(path, label_column: str | None = None):
    """.npz (arrays X, y, optional X_test, y_test) or .csv (header row, numeric columns, labels in
    `label_column`, default "label") -> X, y, X_test or None, y_test or None. Never unpickles.

    CSV feature cells must be finite numbers; features come back float64; labels int64 when all are whole
    numbers below 2**53, float64 for other numbers, str when the label column holds names.
    The arrays are not checked for training here: `check_dataset` does that.
    `label_column` is for CSV only; an .npz names its arrays itself."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".csv":
        return _load_csv(path, "label" if label_column is None else label_column)
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .npz (arrays X, y, optional "
                    f"X_test, y_test) or .csv (header row, a 'label' column, numeric feature columns)")


# ----------------------------------------------------------------------------------- checks before training

MAX_CLASSES = 2**31 - 1  # a label is an output's index; more outputs than this cannot be built


def _features(source: str, name: str, X, width: int | None = None) -> None:
    """X: 2-D (samples, features) of real numbers, at least one of each, finite; `width` features if given."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{source}: {name} has dtype {X.dtype}; expected real numbers (bool, integer or float); "
                        f"convert it, e.g. {name}.astype('float32')")
    if X.ndim != 2:
        if X.ndim == 0:
            got = "a single number (shape ())"
        else:
            got = f"{X.ndim}-D, shape {X.shape}"
        fix = (f"save one row per sample, e.g. {name}.reshape(-1, 1) for one feature per sample" if X.ndim < 2 else
               f"flatten each sample with {name}.reshape(len({name}), -1)")
        raise DataError(f"{source}: {name} is {got}; expected a 2-D array (samples, features); {fix}")
    if X.shape[0] == 0:
        more = " or leave X_test and y_test out" if name == "X_test" else ""
        raise DataError(f"{source}: {name} has no samples (shape {X.shape}); save at least one sample{more}")
    if X.shape[1] == 0:
        raise DataError(f"{source}: {name} has no features (shape {X.shape}); each sample needs at least one "
                        f"feature")
    if width is not None and X.shape[1] != width:
        raise DataError(f"{source}: {name} has {X.shape[1]} features per sample but X has {width}; the test set "
                        f"needs the same feature columns as the training set")
    bad = first_nonfinite(X)
    if bad is not None:
        r, c = bad
        raise DataError(f"{source}: {name} holds NaN or infinity (first at row {r}, column {c}); remove or impute "
                        f"those values")


def _labels(source: str, name: str, y, n: int, relabel: str) -> np.ndarray:
    """Class labels -> 1-D array ((n, 1) is taken as (n,)): names (text), or finite whole numbers."""
    y = np.asarray(y)
    if y.dtype.kind in "OS":
        try:
            y = as_label_array(y, name)
        except InputError as exc:
            raise DataError(f"{source}: {exc}") from None
    if y.dtype.kind not in "biufU":
        raise DataError(f"{source}: {name} has dtype {y.dtype}; expected class labels: names or whole numbers")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        got = "a single number (shape ())" if y.ndim == 0 else f"{y.ndim}-D, shape {y.shape}"
        hint = f"; for one-hot rows save {name}.argmax(axis=1)" if y.ndim == 2 else ""
        raise DataError(f"{source}: {name} is {got}; expected one class label per sample, shape ({n},){hint}")
    if len(y) != n:
        raise DataError(f"{source}: {name} has {len(y)} labels for {n} samples; they must match")
    if y.dtype.kind == "U":
        empty = np.char.str_len(np.char.strip(y)) == 0
        if empty.any():
            raise DataError(f"{source}: {name} has an empty label (first at index {int(np.argmax(empty))}); every "
                            f"sample needs a class label")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            i = int(np.argwhere(~np.isfinite(y))[0, 0])
            raise DataError(f"{source}: {name} holds NaN or infinity (first at index {i}); every sample needs a "
                            f"class label")
        frac = y != np.floor(y)
        if frac.any():
            raise DataError(f"{source}: {name} holds labels that are not whole numbers, such as "
                            f"{float(y[frac][0])!r}; class labels are names or whole numbers (for a numeric "
                            f"target to predict, xpnet has no regression yet); {relabel}")
    return y


def _int(v) -> int | float:
    """A label as a Python int (exact for every integer dtype); a float too large for int64 stays a float."""
    v = v.item() if hasattr(v, "item") else v
    return int(v) if float(v) < 2**63 else v


def check_dataset(X, y, X_test=None, y_test=None, source: str = "the dataset", classes: int | None = None,
                  label_column: str = "label", known=None) -> tuple[int, np.ndarray | None]:
    """Check a dataset before any training step and return (outputs, classes_): the number of outputs and the
    label of each (one rule, xpnet.data.labels; README "The label rule"); classes_ None means 0..outputs-1 (not
    materialized: --classes may be 2**31 - 1).

    X, X_test: 2-D (samples, features) of bool, integer or float numbers, at least one sample and one
    feature, finite, X_test as wide as X. y, y_test: one label per sample, names or whole numbers. Whole
    numbers >= 0 that leave at most half of 0..max with no training sample map to themselves (classes_ =
    0..max over y and y_test); other labels map to their sorted distinct values. `classes` (--classes N)
    gives classes_ = 0..N-1 for whole-number labels below N. `known`: the classes_ of a model being resumed
    (every label must be one of them). A single class is refused. Raises DataError naming `source`."""
    csv_file = str(source).lower().endswith(".csv")
    xname, yname = ("X (the feature columns)", f"label column {label_column!r}") if csv_file else ("X", "y")
    relabel = "fix the label column" if csv_file else "fix the labels"
    _features(source, xname, X)
    y = _labels(source, yname, y, len(X), relabel)
    if X_test is not None:
        _features(source, "X_test", X_test, width=np.shape(X)[1])
        y_test = _labels(source, "y_test", y_test, len(X_test), relabel)
        if is_names(y) != is_names(y_test):
            raise DataError(f"{source}: {yname} holds {'names' if is_names(y) else 'numbers'} but y_test holds "
                            f"{'names' if is_names(y_test) else 'numbers'}; use the same kind of labels in both")
    every = distinct(y, y_test)
    if known is not None:
        known = np.asarray(known)
        missing = every[~np.isin(every, known)] if is_names(known) == is_names(every) else every
        if missing.size:
            raise DataError(f"{source}: label {missing[0].item()!r} is not one of the checkpoint's classes "
                            f"{shown(known)}; resume with the data it was trained on")
        return len(known), known
    names = is_names(y)
    if classes is not None:
        if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or not 1 <= classes <= MAX_CLASSES:
            raise DataError(f"classes (--classes) must be a whole number from 1 to {MAX_CLASSES}, got {classes!r}")
        if names:
            raise DataError(f"{source}: --classes {classes} numbers the outputs 0..{classes - 1}, but the labels are "
                            f"names {shown(every)}; leave --classes out (names map to outputs by themselves)")
        low, top = _int(every[0]), _int(every[-1])
        if low < 0 or top >= classes:
            raise DataError(f"{source}: --classes {classes} takes labels 0..{classes - 1}, but they go from {low} to "
                            f"{top}; pass --classes {top + 1} or more, or leave --classes out to map the labels "
                            f"by their sorted values")
        return int(classes), None
    if every.size < 2:
        only = every[0].item() if every.size else None
        raise DataError(f"{source}: every label is {only!r}, a single class: nothing to tell apart; check the "
                        f"labels ({'--label-column' if csv_file else 'y'})"
                        f"{'' if names else ', or pass --classes 2 to train anyway'}")
    if not names and _int(every[0]) >= 0:
        top = _int(every[-1])
        present = np.unique(y).size
        if top < MAX_CLASSES and 2 * (top + 1 - present) <= top + 1:
            return int(top) + 1, None  # labels 0..top index the outputs, as in earlier releases
    every = every.astype(np.int64) if every.dtype.kind == "f" and np.abs(every).max() < 2**53 else every
    return every.size, every


def class_mapping_note(classes_: np.ndarray | None, limit: int = 4) -> str | None:
    """One line saying how labels map to outputs, when they do not index them directly (None then)."""
    if classes_ is None:
        return None
    pairs = ", ".join(f"{c.item()!r}->{i}" for i, c in enumerate(classes_[:limit]))
    more = f", ... ({classes_.size} classes)" if classes_.size > limit else ""
    return f"labels map to outputs by sorted value: {pairs}{more}; predictions give the labels back"
