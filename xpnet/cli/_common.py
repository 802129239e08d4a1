"""What several commands share: the flags most commands take (`common_flags`), flag parsing of comma lists
(`layer_sizes`), JSON output, loading a dataset or a checkpoint for inference, the data settings a checkpoint
recorded, what a model takes, label names and progress bars."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

import numpy as np

from ..backend import NAMES
from ..errors import InputError
from ..models.presets import as_images


def csv_values(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def layer_sizes(text: str) -> list[int]:
    """argparse type of --hidden: "100,50" -> [100, 50], positive integers."""
    try:
        values = [int(t) for t in csv_values(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 100,50, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return values


def whole_number(what: str = "a whole number from 1"):
    """An argparse type: a whole number from 1, refused with `what` it counts ("a number of updates, ...")."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return n
    return parse


def common_flags(sp, device_help: str = "cpu, cuda or cuda:N") -> None:
    """The flags of every command that runs a model: --backend, --device, --json, --debug."""
    sp.add_argument("--backend", default=None, help=f"{', '.join(NAMES)} or auto (default: $XPNET_BACKEND or auto)")
    sp.add_argument("--device", default=None, help=f"{device_help} (default: $XPNET_DEVICE or the backend's)")
    sp.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    sp.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def print_json(obj) -> None:
    print(json.dumps(obj, default=float), flush=True)


def load_dataset(name: str, data_dir=None, label_column: str = "label", download: bool = True):
    """(X_train, y_train, X_test | None, y_test | None) as host arrays."""
    from ..data import datasets
    if name == "digits":
        return datasets.load_digits()
    if name in ("mnist", "fashion-mnist"):
        return datasets.load_mnist(name, data_dir, download=download)
    if name.endswith((".npz", ".csv")):
        return datasets.load_array_file(name, label_column=label_column)
    raise InputError(f"unknown dataset {name!r}; choose digits, mnist, fashion-mnist, or a path to a .npz or .csv file")


@contextlib.contextmanager
def progress_bar(total: int, desc: str, bar: bool):
    """A long inference pass's progress, as training shows its epochs: on a terminal (bar) a tqdm bar
    counting samples, whose `update` the model's predict/score/evaluate call after each batch (yielded;
    None without a bar). The bar is cleared when done: the figures follow on stdout."""
    if not bar or total <= 0:
        yield None
        return
    from tqdm import tqdm
    with tqdm(total=total, desc=desc, unit="sample", unit_scale=True, file=sys.stderr, dynamic_ncols=True,
              leave=False) as t:
        yield t.update


def data_settings(args, saved: dict) -> tuple:
    """(data_dir, label_column) of a command: its flags, else what the checkpoint's run recorded (saved: the
    checkpoint's `cli` settings, {} for a new run), else the defaults (None: $XPNET_DATA or the cache; "label")."""
    data_dir = getattr(args, "data_dir", None) or saved.get("data_dir")
    return data_dir, getattr(args, "label_column", None) or saved.get("label_column") or "label"


def input_kind(dataset: str, X=None):
    """What a dataset's samples are: "images" (digits, MNIST, Fashion-MNIST, an .npz of (N, H, W) or
    (N, C, H, W) arrays), "table" (a .csv, a 2-D .npz) or None (unknown)."""
    if dataset in ("digits", "mnist", "fashion-mnist"):
        return "images"
    if str(dataset).endswith(".csv"):
        return "table"
    if str(dataset).endswith(".npz") and X is not None:
        return "images" if np.ndim(X) >= 3 else "table"
    return None


def model_inputs(model):
    """(kind, dataset) of what a checkpoint's model was trained on: kind "images", "table" or None (unknown:
    a model saved from Python, or a checkpoint that recorded nothing)."""
    cli = (getattr(model, "checkpoint_meta_", None) or {}).get("cli") or {}
    if len(model.input_shape) == 3:
        return "images", cli.get("dataset")
    if "inputs" in cli:
        return cli["inputs"], cli.get("dataset")
    dataset = cli.get("dataset")
    return (None if dataset is None or str(dataset).endswith(".npz") else input_kind(dataset)), dataset


def model_input(model, X, source: str, name: str = "X"):
    """Host data in the shape the model takes: images (N, C, H, W) for a convolutional model."""
    return as_images(X, model.input_shape, source, name) if len(model.input_shape) == 3 else X


def load_for_inference(args):
    """The checkpoint's model; it applies its own preprocessing (model.preprocessing) to raw inputs."""
    from ..saving.checkpoint import load
    return load(args.checkpoint, backend=args.backend, device=args.device)


def label_names(model, by_label: bool = False):
    """The outputs' display names when they say more than the labels (Fashion-MNIST's, say), else None;
    by_label: as a dict {str(label): name}."""
    names = model.class_names_
    labels = [str(c.item()) for c in model.classes_]
    if names == labels:
        return None
    return dict(zip(labels, names)) if by_label else names
