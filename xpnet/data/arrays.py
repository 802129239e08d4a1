"""Datasets larger than memory: memory-mapped .npy files (xpnet.training.sources' map-style dataset protocol),
and the per-batch preprocessing that makes any dataset train as its arrays would.

    ds = NpyDataset("x.npy", "y.npy")            # np.load(mmap_mode="r"): nothing read until a batch asks
    ds = NpyDataset("x_shards/", "y_shards/")    # a folder of .npy shards (sorted by name) as one dataset
    len(ds), ds.sample_shape                      # rows, one row's shape (e.g. (28, 28))
    x, y = ds.__getitems__(np.array([5, 0, 7]))   # host arrays: x (3, 28, 28) in the file's dtype, y int64
    model.fit(ds, None, epochs=2)                 # the model's preprocessing applied per batch (Sequential.fit)

Shards are concatenated by index: row i of the dataset is row i - offset[k] of shard k (offsets from the shards'
lengths, read from their headers). Labels are class indices 0..K-1 of an integer dtype, one per row, as a
.npy file, a folder of shards, or an array. Reading a batch gathers its rows from the mapped files (page cache:
the process's file-backed memory, RssFile, not its own, RssAnon).

`Prepared(ds, scaler, dtype, input_shape)` is a dataset whose batches are ds's viewed as the model's input shape
and scaled by the model's fitted Scaler with `Scaler.transform`, the function `fit` applies to arrays, so each
element is computed exactly as the in-memory path computes it. `row_chunks(ds, ...)` reads a dataset's x in
chunks of consecutive rows (for `Scaler.fit_chunks`'s streaming statistics).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..saving.files import no_unpickling, refuse_pickle

#: the bytes of float64 one chunk of a streaming pass holds (Scaler.fit_chunks over a dataset)
CHUNK_BYTES = 64 << 20


def _npy_files(path: Path, what: str) -> list[Path]:
    """The .npy files of `path`: itself, or a folder's .npy files sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".npy" and p.is_file())
        if not files:
            raise InputError(f"{path}: a folder without .npy files; {what} takes a .npy file or a folder of .npy "
                             f"shards (concatenated in name order)")
        return files
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder; {what} takes a .npy file or a folder of .npy shards")
    if path.suffix.lower() != ".npy":
        raise InputError(f"{path}: not a .npy file; {what} takes a .npy file (numpy.save) or a folder of them")
    return [path]


def mapped(path: Path) -> np.ndarray:
    """np.load(path, mmap_mode="r"): the array's header read, its data mapped, not read."""
    with no_unpickling(path, "holds pickled data", "save a plain numeric array with numpy.save(path, X)"):
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            if "allow_pickle" in str(exc):
                raise
            if "Python objects" in str(exc):  # an object array: its data is a pickle
                raise refuse_pickle(path, "holds Python objects (pickled data)",
                                    "save a plain numeric array with numpy.save(path, X)") from None
            raise InputError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc}); write it with "
                             f"numpy.save") from None
    if not isinstance(a, np.ndarray):
        raise InputError(f"{path}: not a single array; write it with numpy.save(path, X)")
    return a


def gather(arrays, offsets, idx: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """Rows idx (int64, in [0, offsets[-1])) of the arrays laid end to end (arrays[k] holds rows offsets[k] to
    offsets[k+1]-1), as one (len(idx), *shape) array of dtype. An array may also be an object whose
    `take_rows(idx)` reads those rows (xpnet.data.predict_inputs.ImageRows: image files decoded then)."""
    if len(arrays) == 1:
        return _take(arrays[0], idx).astype(dtype, copy=False)
    shard = np.searchsorted(offsets, idx, side="right") - 1
    out = np.empty((len(idx), *shape), dtype=dtype)
    for k in np.unique(shard):
        mask = shard == k
        out[mask] = _take(arrays[k], idx[mask] - offsets[k])
    return out


def _take(a, idx: np.ndarray) -> np.ndarray:
    return a.take_rows(idx) if hasattr(a, "take_rows") else np.take(a, idx, axis=0)


class NpyDataset:
    """A map-style dataset (len, __getitems__) of memory-mapped .npy files: x (samples, *sample_shape) of real
    numbers (bool, integer or float) and y (samples,) integer class indices >= 0.

    x, y: a .npy path or a folder of .npy shards (sorted by name, concatenated by index; their shapes past the
    first axis and their dtypes must agree); y may also be a host array. Wrong shapes, dtypes, or a length
    mismatch between x and y are refused in one line naming the file."""

    def __init__(self, x, y):
        xpath = Path(x).expanduser()
        self.x_files = _npy_files(xpath, "the dataset (x)")
        self.maps = [mapped(p) for p in self.x_files]  # np.memmap: the files' pages, read when touched
        self.xs = [np.asarray(a) for a in self.maps]  # plain ndarray views of them: cheaper to index
        first = self.xs[0]
        for p, a in zip(self.x_files, self.xs):
            if a.dtype.kind not in "biuf" or a.dtype.byteorder not in "=|" + ("<" if np.little_endian else ">"):
                raise InputError(f"{p}: holds {a.dtype} values; expected real numbers in the machine's byte order "
                                 f"(bool, integer or float), e.g. x.astype('float32')")
            if a.ndim < 2 or 0 in a.shape[1:]:
                raise InputError(f"{p}: shape {a.shape}; expected (samples, features) or (samples, *sample_shape) "
                                 f"with at least one feature (one feature per sample: x.reshape(-1, 1))")
            if a.shape[1:] != first.shape[1:] or a.dtype != first.dtype:
                raise InputError(f"{p}: shards must agree: it holds {a.dtype} rows of shape {a.shape[1:]}, but "
                                 f"{self.x_files[0].name} holds {first.dtype} rows of shape {first.shape[1:]}")
        self.sample_shape, self.dtype = tuple(first.shape[1:]), first.dtype
        self.offsets = np.cumsum([0] + [len(a) for a in self.xs])
        self.n = int(self.offsets[-1])
        if self.n < 1:
            raise InputError(f"{xpath}: no rows (shape {first.shape}); give at least one sample")
        self.name = str(xpath)
        self.y_files, self.ys = self._labels(y)
        self.y_offsets = np.cumsum([0] + [len(a) for a in self.ys])  # label shards need not split where x's do

    def _labels(self, y):
        if isinstance(y, (str, Path)):
            files = _npy_files(Path(y).expanduser(), "--labels")
            ys = [np.asarray(mapped(p)) for p in files]
        else:
            files, ys = [Path("y")], [np.asarray(y)]
        where = files[0] if len(files) == 1 else files[0].parent
        for p, a in zip(files, ys):
            if a.ndim == 2 and a.shape[1] == 1:
                continue
            if a.ndim != 1:
                raise InputError(f"{p}: labels of shape {a.shape}; expected one class index per sample, shape "
                                 f"(samples,){' (one-hot rows? save y.argmax(axis=1))' if a.ndim == 2 else ''}")
        if any(a.dtype.kind not in "iu" for a in ys):
            bad = next(a for a in ys if a.dtype.kind not in "iu")
            raise InputError(f"{where}: labels of dtype {bad.dtype}; expected integer class indices 0..K-1 "
                             f"(relabel names or other numbers, e.g. numpy.unique(y, return_inverse=True)[1])")
        total = sum(len(a) for a in ys)
        if total != self.n:
            raise InputError(f"{where}: {total} labels for {self.n} samples in {self.name}; give one label per row")
        return files, [a.reshape(len(a)) for a in ys]

    def __len__(self) -> int:
        return self.n

    def labels(self) -> np.ndarray:
        """All labels (samples,) int64, in memory (8 bytes a row: a small part of x)."""
        return np.concatenate([np.asarray(a, dtype=np.int64) for a in self.ys])

    def __getitems__(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(x (len(indices), *sample_shape) in the file's dtype, y (len(indices),) int64) of the rows `indices`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise InputError(f"{self.name}: row {int(idx.max() if idx.max() >= self.n else idx.min())} asked of "
                             f"{self.n} rows")
        return (gather(self.xs, self.offsets, idx, self.sample_shape, self.dtype),
                gather(self.ys, self.y_offsets, idx, (), self.ys[0].dtype).astype(np.int64, copy=False))

    def rows(self, start: int, stop: int) -> np.ndarray:
        """x of rows start..stop-1, read as consecutive slices of the shards (a streaming pass's chunk)."""
        parts = []
        for k, a in enumerate(self.xs):
            lo, hi = max(start, int(self.offsets[k])), min(stop, int(self.offsets[k + 1]))
            if lo < hi:
                parts.append(np.asarray(a[lo - self.offsets[k]:hi - self.offsets[k]]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def fingerprint(self) -> str:
        """A SHA-256 of what identifies the data without reading it all: the shapes and dtypes, 64 rows spread
        over x (first and last included) and every label; what a resumed run checks it trains on the same data."""
        h = hashlib.sha256(f"{self.n}{self.sample_shape}{self.dtype}".encode())
        picks = np.unique(np.linspace(0, self.n - 1, num=min(self.n, 64)).round().astype(np.int64))
        h.update(np.ascontiguousarray(self.__getitems__(picks)[0]).tobytes())
        h.update(self.labels().tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"NpyDataset({self.name!r}, {len(self.x_files)} file(s), {self.n} rows of {self.sample_shape} "
                f"{self.dtype})")


def row_chunks(ds, input_shape=None, chunk_bytes: int = CHUNK_BYTES):
    """A function returning a fresh iterator over ds's x in chunks of consecutive rows (as float64 at most
    chunk_bytes each), viewed as (rows, *input_shape) when given: `ds.rows(s, e)` where the dataset has it,
    else `ds.__getitems__(range(s, e))[0]`."""
    n = len(ds)

    def chunks():
        step, s = None, 0
        while s < n:
            if step is None:
                first = read(0, 1)
                step = max(1, chunk_bytes // (8 * max(1, first[0].size)))
            e = min(n, s + step)
            c = read(s, e)
            yield c if input_shape is None else c.reshape(len(c), *input_shape)
            s = e

    def read(s, e):
        if hasattr(ds, "rows"):
            return np.asarray(ds.rows(s, e))
        return np.asarray(ds.__getitems__(np.arange(s, e))[0])
    return chunks


class Prepared:
    """The dataset `ds` as a model takes it: each batch's x viewed as (rows, *input_shape) (the sizes must
    agree) and scaled by `scaler` (a fitted xpnet.data.preprocessing.Scaler, None for none) with its
    `transform` to `dtype`, exactly as fit scales arrays; y as they come. `base` is ds."""

    def __init__(self, ds, scaler, dtype: str, input_shape):
        self.base, self.scaler, self.dtype, self.input_shape = ds, scaler, dtype, tuple(input_shape)
        self.name = getattr(ds, "name", type(ds).__name__)
        if scaler is not None:  # the statistics cast once, as transform casts them on every call
            self._shift, self._scale = (np.asarray(a).astype(dtype) for a in (scaler.shift, scaler.scale))

    def __len__(self) -> int:
        return len(self.base)

    def __getitems__(self, indices):
        x, y = self.base.__getitems__(indices)
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            if math.prod(x.shape[1:]) != math.prod(self.input_shape):
                raise InputError(f"{self.name}: rows of shape {tuple(x.shape[1:])}, but the model takes "
                                 f"{self.input_shape}; give data of the model's input size")
            x = x.reshape(len(x), *self.input_shape)
        if self.scaler is not None:
            x = self._scaled(x)
        return x, y

    def _scaled(self, x):
        """Scaler.transform(x, dtype): for integer rows (pixels) its arithmetic with the statistics cast once,
        in place (the same operations on the same values: the same bits), which scaled integers cannot make
        infinite; float rows by transform itself, with its checks."""
        if x.dtype.kind not in "biu":
            return self.scaler.transform(x, self.dtype, self.name)
        out = x.astype(self.dtype)
        out -= self._shift
        out /= self._scale
        if self.scaler.kind == "symmetric":
            out = out * 2 - 1
        return out

    def __repr__(self) -> str:
        return f"Prepared({self.base!r}, {self.scaler!r}, {self.dtype})"
