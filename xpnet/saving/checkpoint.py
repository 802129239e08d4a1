"""Checkpoints: one safetensors file holding a model's TrainState: parameters, optimizer buffers, layer
state and data order as tensors; the model's registry config (architecture and hyperparameters) and the
rest of the state (epoch, step, RNG state, decayed learning rate, update count, history) as JSON metadata
in its header, with preprocessing, classes, data fingerprint, dtype and xpnet version. A model is rebuilt
only through the registry (`deserialize(meta["model"], "model")`), so user-registered layers load too.

Never pickle. Written atomically: a temporary file in the same folder, fsync, rename, so a crash at
any moment leaves the previous checkpoint whole.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import CheckpointError, InputError  # CheckpointError: also xpnet.saving.checkpoint's
from .files import atomic_write as _atomic_write
from .files import looks_pickled, refuse_pickle
from ..registry import deserialize, serialize

FORMAT = "xpnet-checkpoint"
FORMAT_VERSION = 3  # 3: layer configs may nest (Residual, Chain, ...) and share ({"shared": path}); 2: the model
#                     as a registry config, the TrainState; 1 (release 0.1.0). All three are read.


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


def _native_rng_state(model):
    """The backend generator's state (Dropout(host_rng=False)), or None when not used yet; {"generator": kind,
    "state": None} when used but the library cannot export it (CuPy's curand), so a resume knows."""
    rng = model.state.native_rng
    if rng is None:
        return None
    if not model.bk.native_rng_restorable:
        return {"generator": model.bk._generator_kind(), "state": None}
    return rng.state()


def _restore_rng(rng, state: dict) -> None:
    """Put the saved state into `rng` in place (layers such as Dropout hold a reference to it)."""
    if state["type"] == "RandomState":
        rng.set_state({"bit_generator": "MT19937", "state": {"key": np.asarray(state["key"], dtype=np.uint32),
                                                             "pos": state["pos"]},
                       "has_gauss": state["has_gauss"], "gauss": state["gauss"]})
    else:
        rng.bit_generator.state = state["state"]


def save(model, path, extra: dict | None = None, arrays: dict | None = None) -> Path:
    """Write a model and its training state to `path`, atomically.
    `extra`: more JSON metadata (e.g. preprocessing); `arrays`: more host arrays to store."""
    from safetensors.numpy import save as st_save

    st = model.state
    if st.settle is not None:  # written inside an epoch (ModelCheckpoint(every_steps=)): its accuracy so far
        st.settle()
    to_np = model.bk.to_numpy
    tensors = {f"param/{k}": to_np(v) for k, v in st.params.items()}
    for k, v in tensors.items():
        if not np.isfinite(v).all():
            raise CheckpointError(f"refusing to write {path}: parameter {k[6:]} holds NaN or infinity "
                                  f"(training diverged); the previous checkpoint is kept")
    for name, bufs in st.opt_state.items():
        for b, v in bufs.items():
            tensors[f"opt/{name}/{b}"] = to_np(v)
    for name, v in st.layer_state.items():
        tensors[f"layer_state/{name}"] = to_np(v)
    if st.order is not None:
        tensors["train/order"] = np.asarray(st.order, dtype=np.int64)
    for name, v in (st.loss_scale or {}).items():  # float16 mixed precision: the dynamic loss scale (float32)
        tensors[f"train/loss_scale/{name}"] = to_np(v)
    extra = dict(extra or {})
    pre = getattr(model, "preprocessing", None)
    if pre is not None and pre.fitted:  # the model's own input scaling (xpnet train's --scale)
        pre_meta, pre_arrays = pre.to_meta()
        extra["preprocessing"] = pre_meta
        arrays = dict(arrays or {}, **pre_arrays)
    for k, v in (arrays or {}).items():
        tensors[f"extra/{k}"] = np.ascontiguousarray(v)
    state = {"lr": st.lr, "step": st.step, "epoch": st.epoch, "batch": st.batch, "settings": st.settings,
             "history": st.history, "step_history": st.step_history, "batch_losses": list(st.batch_losses),
             "partial_losses": [float(to_np(v)) for v in st.partial_losses],
             **({"partial_grad_norms": [float(to_np(v)) for v in st.partial_grad_norms]}
                if st.partial_grad_norms else {}),
             "partial_correct": st.partial_correct if isinstance(st.partial_correct, float)
             else float(to_np(st.partial_correct)),
             "rng": _rng_state(st.rng), "native_rng": _native_rng_state(model)}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": __version__,
        "model": serialize(model), "dtype": model.dtype_name, "backend": model.bk.name, "device": model.bk.device,
        "input_shape": list(model.input_shape), "n_outputs": model.n_outputs,
        "classes": [c.item() for c in model.classes_], "state": state, **extra,
    }
    if model.given_class_names is not None:
        meta["class_names"] = model.given_class_names
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
    # a safetensors file is an 8-byte header length, then the JSON header: b"{" at byte 8. (Its first byte is
    # the length's low byte, which may well be 0x80, so that alone says nothing.)
    if raw[8:9] != b"{" and looks_pickled(raw, zip_too=True):
        raise refuse_pickle(path, "a pickle or a zip archive (torch.save's format), not an xpnet safetensors "
                                  "checkpoint", "write checkpoints with model.save(path) or xpnet train --checkpoint",
                            CheckpointError)
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
    if version == 1:
        meta = _upgrade_v1(meta)
    return meta, tensors


def _spec(cfg: dict) -> dict:
    """A format-1 {"type": name, **args} config -> a registry spec {"class", "config"}."""
    cfg = dict(cfg)
    return {"class": cfg.pop("type"), "config": cfg}


def _upgrade_v1(meta: dict) -> dict:
    """Format 1 (release 0.1.0: "architecture", "loss", "optimizer", ... and "training") -> format 2."""
    meta = dict(meta)
    if meta.get("kind") == "NeuralNetMLP" and meta.get("init_args"):
        model = {"class": "NeuralNetMLP", "config": dict(meta["init_args"], dtype=meta["dtype"])}
    else:
        model = {"class": "Sequential", "config": {
            "layers": [_spec(c) for c in meta["architecture"]], "loss": _spec(meta["loss"]),
            "optimizer": _spec(meta["optimizer"]), "penalty": {"class": "Penalty", "config": meta["penalty"]},
            "schedule": _spec(meta["schedule"]), "dtype": meta["dtype"],
            "rng": meta["rng"]["type"] if meta["rng"]["type"] in ("RandomState", "Generator") else "Generator"}}
    training = meta.get("training") or {}
    state = {"lr": meta["optimizer"]["lr"], "step": int(meta.get("optimizer_t", 0)),
             "epoch": training.get("epoch", 0), "batch": training.get("step", 0),
             "settings": training.get("settings"), "history": training.get("history"),
             "batch_losses": training.get("batch_losses", []), "partial_losses": training.get("partial_losses", []),
             "partial_correct": training.get("partial_correct", 0.0), "rng": meta["rng"]}
    meta["model"], meta["state"] = model, state
    meta.setdefault("input_shape", [meta.get("n_features")] if meta.get("n_features") else None)
    return meta


def load(path, backend=None, device=None, dtype: str | None = None, compile: bool = False,
         native_kernels: bool | None = None):
    """Rebuild the model saved at `path` on `backend`/`device` (default: the default backend) with its
    training state, ready to predict or to continue with `fit(..., resume=True)` (compile=True: compiled
    training steps, where the backend compiles; native_kernels: as the model's constructor takes it, None:
    XPNET_NATIVE_KERNELS decides; a checkpoint does not say how it was trained). The model also gets
    `checkpoint_meta_` (the file's metadata) and `checkpoint_arrays_` (its extra arrays)."""
    from ..backend import BackendError
    from ..training.state import empty_history, empty_step_history

    meta, tensors = read(path)
    if dtype is None and meta.get("dtype") not in ("float32", "float64"):
        raise CheckpointError(f"{path}: unknown dtype {meta.get('dtype')!r} in its metadata")
    saved = meta["state"]
    try:
        model = deserialize(meta["model"], "model", backend=backend, device=device, dtype=dtype or meta["dtype"],
                            **({"compile": True} if compile else {}),
                            **({} if native_kernels is None else {"native_kernels": native_kernels}))
    except BackendError:
        raise
    except InputError as exc:
        raise CheckpointError(f"{path}: its model cannot be rebuilt by this xpnet: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: its architecture or hyperparameters cannot be rebuilt by this xpnet "
                              f"({type(exc).__name__}: {exc})") from None
    st = model.state
    expected = set(st.params)
    stored = {k[6:] for k in tensors if k.startswith("param/")}
    if stored != expected:
        raise CheckpointError(f"{path}: its parameters {sorted(stored)} do not fit the architecture it describes "
                              f"{sorted(expected)}")
    for k in expected:
        want = tuple(st.params[k].shape)
        if tuple(tensors[f"param/{k}"].shape) != want:
            raise CheckpointError(f"{path}: parameter {k} has shape {tensors[f'param/{k}'].shape}, expected {want}")
    model.set_parameters({k: tensors[f"param/{k}"] for k in expected})
    put = lambda v: model.bk.asarray(v, dtype=model.dtype, copy=True)  # noqa: E731
    for key, v in tensors.items():
        if key.startswith("opt/"):
            name, buf = key[4:].rsplit("/", 1)
            if name not in st.opt_state:
                raise CheckpointError(f"{path}: optimizer buffer {key[4:]} belongs to no parameter of the model")
            st.opt_state[name][buf] = put(v)
        elif key.startswith("layer_state/"):
            st.layer_state[key[len("layer_state/"):]] = put(v)
        elif key.startswith("train/loss_scale/") and st.loss_scale is not None:
            scalar = model.bk.asarray(np.reshape(v, ()), dtype=model.bk.xp.float32, copy=True)
            st.loss_scale[key[len("train/loss_scale/"):]] = scalar
    native = saved.get("native_rng")
    if isinstance(native, dict) and native.get("state") is None:  # used, but its library could not save it
        # a new stream, seeded from the seed and the update count: reseeding from the seed alone would replay the
        # masks of step 0 onwards
        with model.bk:
            st.native_rng = model.bk.make_native_rng([model.seed if isinstance(model.seed, int) else 0,
                                                      int(saved["step"])])
        warnings.warn(f"{path}: the run drew Dropout(host_rng=False) masks from {native.get('generator')}'s own "
                      f"generator, whose state cannot be saved; resumed, they come from a new stream (seeded from the "
                      f"seed and the update count {int(saved['step'])}), so the run is not the same bit for bit; use "
                      f"Dropout(host_rng=True) for runs that resume exactly", stacklevel=2)
    elif native is not None:  # (made before the host RNG is restored: making it may draw a seed from it)
        try:
            model.native_rng().set_state(native)  # continue the backend generator's stream exactly
        except BackendError:
            warnings.warn(f"{path} holds the state of another library's generator (Dropout(host_rng=False)); it "
                          f"continues with a fresh stream here, so the run is not the same bit for bit", stacklevel=2)
    _restore_rng(st.rng, saved["rng"])  # after the build, whose initial draws it must not count
    st.lr, st.step = float(saved["lr"]), int(saved["step"])
    st.epoch, st.batch, st.settings = int(saved["epoch"]), int(saved["batch"]), saved["settings"]
    st.history = saved["history"] or empty_history()
    st.step_history = saved.get("step_history") or empty_step_history()  # absent before fit(eval_every=)
    st.batch_losses = list(saved["batch_losses"])
    st.partial_losses = [model.bk.asarray(v, dtype=model.dtype) for v in saved["partial_losses"]]
    st.partial_correct = float(saved["partial_correct"])
    st.partial_grad_norms = [model.bk.asarray(v, dtype=model.dtype) for v in saved.get("partial_grad_norms", [])]
    st.order = tensors.get("train/order")
    model.checkpoint_meta_ = meta
    model.checkpoint_arrays_ = {k[6:]: v for k, v in tensors.items() if k.startswith("extra/")}
    _restore_labels_and_preprocessing(model, meta, path)
    return model


def _restore_labels_and_preprocessing(model, meta: dict, path) -> None:
    """classes_, class_names_ and the fitted input scaling, as saved (checkpoints of every earlier version
    that recorded preprocessing get it applied by predict too)."""
    from ..data.preprocessing import Scaler
    classes = meta.get("classes")
    try:
        if classes is not None and classes != list(range(model.n_outputs)):
            model.classes_ = classes
        model.class_names_ = meta.get("class_names")
    except InputError as exc:
        raise CheckpointError(f"{path}: its class labels do not fit the model: {exc}") from None
    if meta.get("preprocessing"):
        model.preprocessing = Scaler.from_meta(meta["preprocessing"], model.checkpoint_arrays_)
