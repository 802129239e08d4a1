"""What `xpnet predict` reads: every format `xpnet train` reads, several files at once.

.npy (samples, ...) or one sample; .npz (array X, or its only array; y too if present); .csv with a header
row, with or without the label column (the other columns are the features; a label column's values are
compared with the predictions); images (png, jpg, ...: gray levels, or RGB for a 3-channel model, resized to
the model's input); a folder: its image files at any depth, sorted by path (an image dataset's class folders).
Every input becomes (samples, *input_shape) host data, raw (the model applies its own preprocessing), and
all of them one `InputRows` dataset that the model reads batch by batch: a .npy file is memory-mapped and
images are decoded per batch, so predicting on inputs larger than memory holds a batch of them (and the
outputs).
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np

from .arrays import gather, mapped
from .datasets import DataError, load_array_file
from ..errors import InputError
from ..saving.files import no_unpickling
from .images import IMAGE_SUFFIXES, image_files, pil
from .validation import check_X, first_nonfinite, host_samples



class InputRows:
    """Inputs to predict on, as a map-style dataset (len, __getitems__; `model.predict_proba` reads it batch by
    batch): what `xpnet predict` read, the files' samples (samples, *input_shape) one after another, and where
    each row came from; or one host array, as `Sequential.predict` reads one (blocks [("X", X)]). A
    .npy is memory-mapped and images are decoded when a batch asks for them (`ImageRows`), so inputs larger
    than memory are never held whole.

    blocks: [(names, rows)]: rows an array (n, *input_shape) or an ImageRows; names the file its rows come
    from (a str: rows named by their index in it), or one file per row (a list: images, each one sample)."""

    def __init__(self, blocks):
        self.names = [names for names, _ in blocks]
        self.arrays = [rows for _, rows in blocks]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])
        self.dtype = np.result_type(*(a.dtype for a in self.arrays))
        self.sample_shape = tuple(self.arrays[0].shape[1:])
        files = [n for names in self.names for n in ([names] if isinstance(names, str) else names)]
        self.one_file = len(files) == 1  # rows named by their index alone
        self.name = files[0] if self.one_file else f"{len(files)} files"

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitems__(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(x (len(indices), *input_shape) in the files' common dtype, zeros: the rows carry no targets here)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return gather(self.arrays, self.offsets, idx, self.sample_shape, self.dtype), np.zeros(len(idx), np.int64)

    def sources(self):
        """(file, row index in it, or None for a file that is one sample) of every row, in order (made as read)."""
        for names, a in zip(self.names, self.arrays):
            if isinstance(names, str):
                yield from ((names, i) for i in range(len(a)))
            else:
                yield from ((n, None) for n in names)

    def __repr__(self) -> str:
        return f"InputRows({self.name!r}, {len(self)} rows of {self.sample_shape} {self.dtype})"


class ImageRows:
    """Image files as rows (len(paths), *input_shape) float64 gray levels (or RGB channels), each decoded when a
    batch asks for it (`take_rows`): converted to `mode` ("L" or "RGB"), resized to (h, w) with Lanczos
    filtering, inverted per `invert` ("yes", "no", "auto": when its mean is above 127, a light background)."""

    dtype = np.dtype(np.float64)

    def __init__(self, paths, input_shape, mode: str, h: int, w: int, invert: str):
        self.paths, self.input_shape, self.mode, self.hw = list(paths), tuple(input_shape), mode, (h, w)
        self.invert = invert
        self.shape = (len(self.paths), *self.input_shape)

    def __len__(self) -> int:
        return len(self.paths)

    def take_rows(self, idx) -> np.ndarray:
        out = np.empty((len(idx), *self.input_shape), dtype=np.float64)
        for j, i in enumerate(idx):
            out[j] = _decode_image(self.paths[int(i)], self.mode, *self.hw, self.invert).reshape(self.input_shape)
        return out


def read_inputs(paths, input_shape, invert: str = "auto", label_column: str = "label", trained_on=(None, None),
                wide_targets: bool = False, image_shape=None):
    """(InputRows over all `paths`, labels or None). Labels come back only when every file has them (a .csv
    label column, an .npz y). wide_targets: an .npz's (samples, outputs) y counts too (a regression model's
    targets); otherwise only a (samples,) y does.

    trained_on: (kind, dataset) of the model's training data, kind "images", "table" or None (unknown). An
    image for a model trained on a table is refused (it was resized into the table's features), and so is an
    unknown model's whose input is no square of at least 8x8 values; a file of the wrong width for a model
    trained on images says so. image_shape: (channels, height, width) an image is read as for a model trained on
    an image folder (its recorded size and color; flat models too), else the model's input says."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    paths = [q for p in paths for q in _expand(Path(p))]
    if not paths:
        raise InputError("name at least one input file (.npy, .npz, .csv or an image)")
    blocks, labels, images = [], [], []
    for path in paths:
        if Path(path).suffix.lower() in IMAGE_SUFFIXES:  # checked now, decoded when a batch needs it
            plan = _image_plan(Path(path), tuple(input_shape), trained_on, image_shape)
            if images and plan != images[-1][1]:
                _image_block(blocks, images, input_shape, invert)
            images.append((str(path), plan))
            labels.append(None)
            continue
        _image_block(blocks, images, input_shape, invert)
        try:
            X, y = _read_one(Path(path), tuple(input_shape), label_column, wide_targets)
        except InputError as exc:
            kind, dataset = trained_on
            if kind != "images" or not re.search(r"must be \d-D|model expects", str(exc)):  # check_X's refusals
                raise
            side = "x".join(map(str, input_shape[-2:])) if len(input_shape) == 3 else _square(input_shape)
            raise InputError(f"{exc}; the model was trained on images{f' ({dataset})' if dataset else ''}: pass "
                             f"images, or their pixels ({math.prod(input_shape)} values{f', {side}' if side else ''} per "
                             f"sample) as rows") from None
        blocks.append((str(path), X))
        labels.append(y)
    _image_block(blocks, images, input_shape, invert)
    if wide_targets and len(labels) > 1 and all(v is not None for v in labels) and len({v.ndim for v in labels}) > 1:
        labels = [v.reshape(len(v), -1) for v in labels]  # (samples,) and (samples, 1) targets of one output
    if len(labels) > 1 and all(v is not None for v in labels) and len({v.shape[1:] for v in labels}) > 1:
        labels = [None]  # targets of different widths: predict only
    y = None if any(v is None for v in labels) else np.concatenate(labels) if len(labels) > 1 else labels[0]
    return InputRows(blocks), y


def _image_block(blocks: list, images: list, input_shape, invert: str) -> None:
    """The images gathered so far ([(path, (mode, h, w))], one plan) as one block of ImageRows; emptied."""
    if images:
        mode, h, w = images[0][1]
        paths = [p for p, _ in images]
        blocks.append((paths, ImageRows(paths, input_shape, mode, h, w, invert)))
        images.clear()


def _expand(path: Path) -> list:
    """A folder -> its image files (any depth, e.g. an image dataset's class folders), sorted by path (one line
    when it has none); a file stays itself."""
    if not path.is_dir():
        return [path]
    found = image_files(path)
    if not found:
        raise InputError(f"{path}: a folder without image files ({', '.join(IMAGE_SUFFIXES)}); name files, or a "
                         f"folder of images")
    return found


def _fit_shape(path: Path, X: np.ndarray, input_shape: tuple, one: bool):
    """X -> (samples, *input_shape) by the rule `model.predict` follows (xpnet.data.validation.sample_shape: flat
    rows, (n, H, W) for one channel, one sample); other shapes are refused with model.predict's message."""
    if X.dtype.kind not in "biuf":
        raise InputError(f"{path}: holds {X.dtype} values; expected numbers")
    if one and X.ndim == len(input_shape):
        X = X.reshape(1, *X.shape)
    return check_X(host_samples(X, input_shape), input_shape, str(path))


def _square(input_shape) -> str:
    size = math.prod(input_shape)
    side = math.isqrt(size)
    return f"{side}x{side}" if side * side == size else ""


def _read_one(path: Path, input_shape: tuple, label_column: str, wide_targets: bool = False):
    """(X, y or None) of one file that is not an image."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".npy":  # memory-mapped: rows read when a batch needs them
        return _fit_shape(path, np.asarray(mapped(path)), input_shape, False), None
    if suffix == ".npz":
        return _read_npz(path, input_shape, wide_targets)
    if suffix == ".csv":
        return _read_csv(path, input_shape, label_column)
    raise InputError(f"{path}: unsupported file type {suffix or '(none)'!r}; pass .npy, .npz, .csv or an image "
                     f"({', '.join(IMAGE_SUFFIXES)})")


def _read_npz(path: Path, input_shape: tuple, wide_targets: bool = False):
    try:
        with no_unpickling(path, "holds pickled data", "save plain numeric arrays with numpy.savez(path, X=X)"):
            with np.load(path, allow_pickle=False) as data:
                keys = list(data.keys())
                key = "X" if "X" in keys else keys[0] if len(keys) == 1 else None
                if key is None:
                    raise InputError(f"{path}: holds {keys}; name the inputs 'X'")
                X = np.asarray(data[key])
                y = np.asarray(data["y"]) if key == "X" and "y" in keys else None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    X = _fit_shape(path, X, input_shape, False)
    if y is not None and (y.ndim not in ((1, 2) if wide_targets else (1,)) or len(y) != len(X)):
        y = None  # not one label per row: predict only
    return X, y


def _read_csv(path: Path, input_shape: tuple, label_column: str):
    """With the label column: xpnet train's reader (features and labels). Without it: every column is a
    feature; a header row is optional (a first row of numbers is data)."""
    try:
        X, y, _, _ = load_array_file(path, label_column=label_column)
        return _fit_shape(path, X, input_shape, False), y
    except DataError as exc:
        if "is not in the header" not in str(exc):
            raise
    with open(path, encoding="utf-8-sig", newline="") as fh:  # parsed as NumPy reads it, never held whole
        first = fh.readline()
        try:
            [float(c) for c in first.split(",")]
            fh.seek(0)  # no header row: the first line is data
        except ValueError:
            pass
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*input contained no data")
                X = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
        except ValueError as exc:
            raise InputError(f"{path}: not numeric CSV ({exc}); without a {label_column!r} column every column "
                             f"must be a feature number") from None
    if not X.size:
        raise InputError(f"{path}: no data rows")
    bad = first_nonfinite(X)
    if bad is not None:
        raise InputError(f"{path}: NaN or infinity at data row {bad[0] + 1}, column {bad[1] + 1}; remove or impute it")
    return _fit_shape(path, X, input_shape, False), None


def _image_plan(path: Path, input_shape: tuple, trained_on=(None, None), image_shape=None) -> tuple:
    """(mode, height, width) an image file is read as for the model, its header checked (Pillow's open and
    verify, no pixels decoded): an image for a model trained on a table, or for one whose input is no image,
    and an unreadable file are refused in one line."""
    size = math.prod(input_shape)
    kind, dataset = trained_on
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if kind == "table" or (kind is None and len(input_shape) != 3 and math.isqrt(size) < 8):
        why = f"was trained on a table ({dataset})" if kind == "table" else "takes a table"
        raise InputError(f"{path}: an image, but the model {why} of {size} features per sample, not on images; pass "
                         f"its features as .csv, .npy or .npz rows")
    Image = pil()
    side = int(round(size ** 0.5))
    if image_shape is not None and math.prod(image_shape) == size:
        mode, (h, w) = ("L" if image_shape[0] == 1 else "RGB"), image_shape[1:]
    elif len(input_shape) == 3 and input_shape[0] in (1, 3):
        mode, (h, w) = ("L" if input_shape[0] == 1 else "RGB"), input_shape[1:]
    elif side * side != size:
        raise InputError(f"the model takes {size} features per sample, not a square gray image; pass a .npy or "
                         f".csv file")
    else:
        mode, h, w = "L", side, side
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return mode, int(h), int(w)


def _decode_image(path, mode: str, h: int, w: int, invert: str) -> np.ndarray:
    """An image's pixels, float64 (h, w) or (3, h, w): converted, resized, inverted per `invert`."""
    Image = pil()
    try:
        with Image.open(path) as im:
            x = np.asarray(im.convert(mode).resize((w, h), Image.LANCZOS), dtype=np.float64)
    except Exception as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    x = x.transpose(2, 0, 1) if x.ndim == 3 else x
    if invert == "yes" or (invert == "auto" and x.mean() > 127):  # dark digit on light paper -> MNIST's light on dark
        x = 255.0 - x
    return x
