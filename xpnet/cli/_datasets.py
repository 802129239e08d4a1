"""`xpnet train` and `xpnet evaluate` on datasets read batch by batch (issue 34): memory-mapped .npy files
(`--dataset x.npy --labels y.npy`, or folders of .npy shards) and image folders (`--dataset root/`, one
subfolder per class; `--image-size`, `--color`, `--skip-bad-images`). They are xpnet.data's map-style datasets
(NpyDataset, ImageFolder): nothing reads all of x into memory; the model's preprocessing is fitted in a
streaming pass and applied per batch (Sequential.prepare_dataset).

A run records its dataset's settings (the absolute paths, labels, image size and color) with its `cli`
settings, so a resumed run and `xpnet evaluate` open the same data again."""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError

#: the settings of a file dataset a run records (and a resumed run or evaluate reads back)
DATASET_KEYS = ("labels", "image_size", "color", "skip_bad_images")


def add_flags(sp, train: bool = True) -> None:
    """--labels, --image-size, --color (and for train --skip-bad-images)."""
    sp.add_argument("--labels", default=None, metavar="PATH",
                    help="the labels of a --dataset .npy file or folder of .npy shards: a .npy of integer class "
                         "indices 0..K-1 (or a folder of shards), one per row")
    sp.add_argument("--image-size", default=None, metavar="HxW",
                    help="an image folder's images resized to HEIGHTxWIDTH, e.g. 28x28 (default: the first image's)")
    sp.add_argument("--color", choices=["gray", "rgb"], default=None,
                    help="an image folder's images as gray (1 channel, default) or rgb (3)")
    sp.add_argument("--skip-bad-images", action="store_true", default=None,
                    help="skip an image folder's unreadable files (counted) instead of refusing them")


def is_file_dataset(name) -> bool:
    """Whether --dataset names data read batch by batch: a .npy file or a folder (of class folders or shards)."""
    return name is not None and (str(name).lower().endswith(".npy") or Path(str(name)).expanduser().is_dir())


def settings(args, saved: dict) -> dict:
    """DATASET_KEYS from the flags, else a resumed run's (saved: its `cli` settings), else None."""
    out = {}
    for key in DATASET_KEYS:
        value = getattr(args, key, None)
        out[key] = value if value is not None else saved.get(key)
    if out["labels"] is not None and getattr(args, "labels", None) is not None:
        out["labels"] = str(Path(out["labels"]).expanduser().resolve())
    return out


def open_dataset(source, opts: dict):
    """The dataset --dataset names: an ImageFolder for a folder of class folders, an NpyDataset for a .npy file
    or a folder of .npy shards (with --labels); refused in one line when a flag does not fit it."""
    path = Path(str(source)).expanduser()
    images = path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
    if images:
        from ..data.images import ImageFolder
        if opts.get("labels"):
            raise InputError(f"--labels {opts['labels']}: {path} is a folder of class folders, whose names are "
                             f"the labels; drop --labels")
        ds = ImageFolder(path, size=opts.get("image_size"), color=opts.get("color") or "gray",
                         skip_bad=bool(opts.get("skip_bad_images")))
        if ds.skipped:
            print(f"skipped {len(ds.skipped)} unreadable image file(s) (--skip-bad-images), e.g. {ds.skipped[0]}",
                  flush=True)
        return ds
    given = [f"--{k.replace('_', '-')}" for k in ("image_size", "color", "skip_bad_images") if opts.get(k)]
    if given:
        raise InputError(f"{', '.join(given)} describe an image folder's images; {path} holds arrays: drop "
                         f"{'it' if len(given) == 1 else 'them'}")
    if not opts.get("labels"):
        raise InputError(f"--dataset {path} holds the inputs only; name their labels with --labels y.npy (a .npy "
                         f"of class indices, or a folder of .npy shards)")
    from ..data.arrays import NpyDataset
    return NpyDataset(path, opts["labels"])


def input_shape(ds, image_shape):
    """The model's input shape for ds's rows: image_shape (C, H, W) for an image model (() or None: from the
    data: (1, H, W) for (H, W) rows), else the flat (features,)."""
    shape = tuple(ds.sample_shape)
    if image_shape is None:
        return (math.prod(shape),)
    want = tuple(image_shape) or (shape if len(shape) == 3 else (1, *shape) if len(shape) == 2 else None)
    if want is None or math.prod(want) != math.prod(shape):
        raise InputError(f"{ds.name}: rows of shape {shape}, but the model takes images "
                         f"{want or '(channels, height, width)'}; give images of that size (--image-size, --color)")
    return want


def classes(ds, n_classes=None, saved_model=None) -> int:
    """The number of outputs for ds's labels (integer class indices): a resumed model's, --classes, an image
    folder's folders, else max label + 1; labels outside 0..outputs-1 refused in one line."""
    y = ds.labels()
    if saved_model is not None:
        k = saved_model.n_outputs
    elif getattr(ds, "class_names", None) is not None:
        k = len(ds.class_names)
    else:
        k = n_classes or int(y.max()) + 1
    low, top = int(y.min()), int(y.max())
    if low < 0 or top >= k:
        raise InputError(f"{ds.name}: labels go from {low} to {top}, but the model has {k} outputs (labels "
                         f"0..{k - 1}); fix the labels{'' if saved_model else ' or pass --classes'}")
    if saved_model is None and k < 2:
        raise InputError(f"{ds.name}: every label is {low}, a single class: nothing to tell apart")
    return k


def evaluate(model, ds, prefetch: int = 0) -> tuple:
    """(mean loss, accuracy, confusion counts) of the model on every row of ds, batch by batch (prefetch: the
    next batches read ahead by as many threads)."""
    from ..training.loop import evaluate as run
    return run(model, model.prepare_dataset(ds), None, confusion=True, prefetch=prefetch)



def image_shape(cli: dict):
    """The (channels, height, width) a run's image folder was read as (its recorded --image-size and --color),
    or None: how `xpnet predict` reads an image for a model trained on one, flat rows included."""
    size = cli.get("image_size")
    if not size:
        return None
    from ..data.images import parse_size
    return (3 if cli.get("color") == "rgb" else 1, *parse_size(size))
