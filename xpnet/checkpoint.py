"""Checkpoints: one safetensors file holding the parameters, optimizer buffers and training position,
with JSON metadata in its header (architecture, hyperparameters, preprocessing, classes, data
fingerprint, epoch, step, data order, RNG state, decayed learning rate, dtype, xpnet version).

Never pickle. Written atomically: a temporary file in the same folder, fsync, rename, so a crash at
any moment leaves the previous checkpoint whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import __version__
from .validation import InputError

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(InputError):
    """A checkpoint that cannot be read or used; the message names the file."""


def fingerprint(X, y) -> str:
    """SHA-256 over the host training data's shape, dtype and bytes (X and labels)."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(X), np.ascontiguousarray(y)):
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _rng_state(rng) -> dict:
    if isinstance(rng, np.random.RandomState):
        st = rng.get_state(legacy=False)
        return {"type": "RandomState", "key": st["state"]["key"].tolist(), "pos": int(st["state"]["pos"]),
                "has_gauss": int(st["has_gauss"]), "gauss": float(st["gauss"])}
    return {"type": "Generator", "state": rng.bit_generator.state}


def _make_rng(state: dict):
    """A generator of the saved kind; its state is set by _restore_rng once the model is built."""
    if state["type"] == "RandomState":
        return np.random.RandomState()
    return np.random.Generator(getattr(np.random, state["state"]["bit_generator"])())


def _restore_rng(rng, state: dict) -> None:
    """Put the saved state into `rng` in place (layers such as Dropout hold a reference to it)."""
    if state["type"] == "RandomState":
        rng.set_state({"bit_generator": "MT19937", "state": {"key": np.asarray(state["key"], dtype=np.uint32),
                                                             "pos": state["pos"]},
                       "has_gauss": state["has_gauss"], "gauss": state["gauss"]})
    else:
        rng.bit_generator.state = state["state"]


def _atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save(model, path, extra: dict | None = None, arrays: dict | None = None) -> Path:
    """Write a Sequential (or NeuralNetMLP) and its training position to `path`, atomically.
    `extra`: more JSON metadata (e.g. preprocessing); `arrays`: more host arrays to store."""
    from safetensors.numpy import save as st_save

    outer = model
    model = getattr(model, "model", model)
    to_np = model.bk.to_numpy
    tensors = {f"param/{k}": to_np(v) for k, v in model.parameters().items()}
    for k, v in tensors.items():
        if not np.isfinite(v).all():
            raise CheckpointError(f"refusing to write {path}: parameter {k[6:]} holds NaN or infinity "
                                  f"(training diverged); the previous checkpoint is kept")
    for name, bufs in model.optimizer.state.items():
        for b, v in bufs.items():
            tensors[f"opt/{name}/{b}"] = to_np(v)
    progress = getattr(model, "progress_", None)
    training = None
    if progress is not None:
        training = {k: progress[k] for k in ("settings", "history", "epoch", "step")}
        training["partial_losses"] = [float(to_np(v)) for v in progress["partial_losses"]]
        training["partial_correct"] = float(to_np(progress["partial_correct"])) if not isinstance(
            progress["partial_correct"], float) else progress["partial_correct"]
        training["batch_losses"] = list(progress.get("batch_losses", []))
        if progress["order"] is not None:
            tensors["train/order"] = np.asarray(progress["order"], dtype=np.int64)
    for k, v in (arrays or {}).items():
        tensors[f"extra/{k}"] = np.ascontiguousarray(v)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": __version__,
        "kind": type(outer).__name__,
        "init_args": getattr(outer, "init_args", None),
        "architecture": [layer.config() for layer in model.layers],
        "loss": model.loss.config(), "optimizer": model.optimizer.config(), "optimizer_t": model.optimizer.t,
        "penalty": model.penalty.config(), "schedule": model.schedule.config(),
        "dtype": model.dtype_name, "backend": model.bk.name, "device": model.bk.device,
        "n_features": model.n_features, "n_outputs": model.n_outputs,
        "classes": list(range(model.n_outputs)),
        "rng": _rng_state(model.rng), "training": training, **(extra or {}),
    }
    data = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                   metadata={"xpnet": json.dumps(meta, allow_nan=False)})
    _atomic_write(Path(path), data)
    return Path(path)


def read(path) -> tuple[dict, dict]:
    """(metadata, host arrays) of a checkpoint, validated; clear CheckpointError otherwise."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist; check the path") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if raw[:2] == b"\x80\x04" or raw[:1] == b"\x80" or raw[:2] == b"PK":
        raise CheckpointError(f"{path} is a pickle or a zip archive, not an xpnet safetensors checkpoint; "
                              f"xpnet never unpickles files")
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + header_len])
        meta = json.loads(header["__metadata__"]["xpnet"])
    except (SafetensorError, ValueError, KeyError, TypeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path} is not a readable xpnet checkpoint (truncated or corrupt?): "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an xpnet checkpoint (no xpnet metadata)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version!r}, newer than this xpnet "
                              f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade xpnet")
    return meta, tensors


def load(path, backend=None, device=None, dtype: str | None = None):
    """Rebuild the model saved at `path` on `backend`/`device` (default: where it was trained, else the
    default backend). Returns a Sequential or NeuralNetMLP with `checkpoint_meta_` and `checkpoint_arrays_`."""
    from .backend import BackendError
    from .layers import LAYERS
    from .losses import LOSS_TYPES
    from .model import Sequential
    from .optimizers import OPTIMIZER_TYPES
    from .penalties import Penalty
    from .schedules import SCHEDULE_TYPES

    meta, tensors = read(path)
    if dtype is None and meta.get("dtype") not in ("float32", "float64"):
        raise CheckpointError(f"{path}: unknown dtype {meta.get('dtype')!r} in its metadata")
    try:
        layers = [LAYERS[c["type"]](**{k: v for k, v in c.items() if k != "type"}) for c in meta["architecture"]]
        loss = LOSS_TYPES[meta["loss"]["type"]](reduction=meta["loss"]["reduction"])
        opt_cfg = dict(meta["optimizer"])
        optimizer = OPTIMIZER_TYPES[opt_cfg.pop("type")](**opt_cfg)
        sched_cfg = dict(meta["schedule"])
        schedule = SCHEDULE_TYPES[sched_cfg.pop("type")](**sched_cfg)
        penalty = Penalty(**meta["penalty"])
        rng = _make_rng(meta["rng"])
        model = Sequential(layers, loss=loss, optimizer=optimizer, penalty=penalty, schedule=schedule,
                           backend=backend, device=device, dtype=dtype or meta["dtype"], rng=rng)
    except BackendError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: its architecture or hyperparameters cannot be rebuilt by this xpnet "
                              f"({type(exc).__name__}: {exc})") from None
    expected = set(model.parameters())
    stored = {k[6:] for k in tensors if k.startswith("param/")}
    if stored != expected:
        raise CheckpointError(f"{path}: its parameters {sorted(stored)} do not fit the architecture it describes "
                              f"{sorted(expected)}")
    for k in expected:
        want = tuple(model.parameters()[k].shape)
        if tuple(tensors[f"param/{k}"].shape) != want:
            raise CheckpointError(f"{path}: parameter {k} has shape {tensors[f'param/{k}'].shape}, expected {want}")
    model.set_parameters({k: tensors[f"param/{k}"] for k in expected})
    _restore_rng(rng, meta["rng"])  # after the build, whose initial draws it must not count
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith("opt/"):
            name, buf = key[4:].rsplit("/", 1)
            state.setdefault(name, {})[buf] = model.bk.asarray(v, dtype=model.dtype, copy=True)
    model.optimizer.state, model.optimizer.t = state, int(meta.get("optimizer_t", 0))
    training = meta.get("training")
    if training is not None:
        training = dict(training)
        training["order"] = tensors.get("train/order")
    model.progress_ = training
    model.checkpoint_meta_ = meta
    model.checkpoint_arrays_ = {k[6:]: v for k, v in tensors.items() if k.startswith("extra/")}
    if meta.get("kind") == "NeuralNetMLP" and meta.get("init_args"):
        from .mlp import NeuralNetMLP
        return NeuralNetMLP.from_model(model, meta["init_args"])
    return model
