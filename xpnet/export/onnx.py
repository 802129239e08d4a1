"""A trained model as an ONNX file: `export(model, path)`, `export_checkpoint(checkpoint, path)` (what
`xpnet export` and `model.to_onnx` run) and `build(model) -> onnx.ModelProto`.

The graph takes what `xpnet predict` takes, raw inputs `input`: (batch, *input_shape) float32, applies the
model's input scaling (its Scaler, unless preprocessing=False), runs the layers (each as
`onnx_layers.emitter` says: its traced forward or a native node) and gives `probabilities` (the fused loss's
activation, (batch, outputs)), `label` (the argmax of the logits, as `predict` takes it, mapped to the
class labels when they are not 0..outputs-1) and, with logits=True, `logits`. Everything in float32, the
batch dimension dynamic ("batch") unless `batch` fixes it. The model's metadata (metadata_props) holds the
xpnet version, the classes, the class names, the scaling, and the SHA-256 of the checkpoint file when
exported from one.

Needs the `xpnet[onnx]` extra (ndonnx, spox, onnx; onnxruntime to run the file), imported only here.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import InputError
from ..data.preprocessing import Scaler
from ..layers.base import layer_path, local_name
from . import onnx_layers

BUILD_OPSET = 21            # ndonnx 0.23 and the native emitters write opset-21 operators
OPSETS = range(16, 25)      # others via onnx.version_converter (which has no adapter below 16 for Identity);
                            # each one is checked and run in ONNX Runtime by tests/test_onnx.py
INPUT, BATCH, TIME = "input", "batch", "time"
MISSING_EXTRA = 'ONNX export needs ndonnx, spox and onnx: pip install "xpnet[onnx]"'


def _require():
    try:
        import ndonnx  # noqa: F401
        import onnx  # noqa: F401
        import spox  # noqa: F401
    except ImportError as exc:
        raise InputError(f"{MISSING_EXTRA} ({exc})") from None


def _preprocessing_of(model) -> Scaler | None:
    """The model's fitted input Scaler (`model.preprocessing`; a checkpoint restores it), or None."""
    scaler = getattr(model, "preprocessing", None)
    return scaler if scaler is not None and scaler.fitted else None


def _classes_of(model) -> np.ndarray | None:
    """The original class labels (host array, one per output), or None for 0..outputs-1."""
    return getattr(model, "_classes", None)


def _class_names_of(model) -> list | None:
    """Display names of the outputs when they were set (Fashion-MNIST's), else None."""
    names = getattr(model, "_class_names", None)
    return None if names is None else [str(n) for n in names]


def _check_options(opset, batch) -> tuple[int, int | None]:
    opset = BUILD_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise InputError.for_argument("opset", f"{opset!r}: xpnet exports ONNX opsets {OPSETS.start} to "
                                               f"{OPSETS.stop - 1} (default {BUILD_OPSET}); choose one of those")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise InputError.for_argument("batch", f"{batch!r}: must be a positive integer (a fixed batch size), or "
                                               f"None for a dynamic batch dimension")
    return opset, batch


def _scaled(x, scaler: Scaler | None, input_shape: tuple, dtype=np.float32):
    """Scaler.transform's arithmetic on the graph's float input: (x - shift) / scale, then 2 y - 1 for
    symmetric (raw: nothing)."""
    import ndonnx as ndx
    if scaler is None or scaler.kind == "raw":
        return x
    shift, scale = (np.asarray(a, dtype=np.float64).astype(dtype) for a in (scaler.shift, scaler.scale))
    if shift.size > 1:  # standardize: one (shift, scale) per feature, in the input's layout
        shift, scale = shift.reshape(input_shape), scale.reshape(input_shape)
    y = (x - ndx.asarray(shift)) / ndx.asarray(scale)
    return y * 2.0 - 1.0 if scaler.kind == "symmetric" else y


def _host_params(model, dtype=np.float32) -> dict:
    to_np = model.bk.to_numpy
    return {k: np.asarray(to_np(v), dtype=dtype) for k, v in model.state.params.items()}


def _layer_inputs(model, params: dict, i: int, dtype=np.float32) -> dict:
    """Layer i's parameters and its state (BatchNorm's running statistics), as host arrays (float32, or `dtype`)
    by local name."""
    state = {local_name(k, i): np.asarray(model.bk.to_numpy(v), dtype=dtype)
             for k, v in model.state.layer_state.items() if local_name(k, i) is not None}
    return dict(model.layer_params(params, i), **state)


def _sequence(model) -> bool:
    """Whether the model takes integer token ids (`integer_input`: an Embedding first): an int64 input."""
    return bool(getattr(model, "integer_input", False))


def _check_layers_opset(model, opset: int) -> None:
    """Refuse, in one line, an opset below what a layer's native form needs (LayerNorm: 17)."""
    from ..layers.combinators import walk
    for i, top in enumerate(model.layers):
        for path, layer in walk(top):
            need = onnx_layers.MIN_OPSET.get(type(layer), 0)
            if opset < need:
                where = ".".join((layer_path(i), *path))
                raise InputError.for_argument("opset", f"{opset}: {where} {type(layer).__name__} needs ONNX opset "
                                                       f"{need} or later; choose --opset {need} to {OPSETS.stop - 1}")


def build(model, opset: int | None = None, batch: int | None = None, preprocessing: bool = True,
          logits: bool = False, checkpoint_sha256: str | None = None, strategy: str = "native",
          dtype: str = "float32"):
    """The model as a checked onnx.ModelProto (see the module's docstring). strategy: 'native' (native ONNX
    nodes where onnx_layers has them, the default) or 'trace' (every layer that traces, traced: for
    comparing the two graphs). dtype: the graph's floating type, "float32" (the default) or "float64" (the
    weights kept in float64, for checking a float64 model to rounding)."""
    _require()
    import ndonnx as ndx
    import onnx

    opset, batch = _check_options(opset, batch)
    if strategy not in onnx_layers.STRATEGIES:
        raise InputError.for_argument("strategy", f"{strategy!r}: choose one of {', '.join(onnx_layers.STRATEGIES)}")
    if dtype not in ("float32", "float64"):
        raise InputError.for_argument("dtype", f"{dtype!r}: choose 'float32' or 'float64'")
    _check_layers_opset(model, opset)
    emitters = [onnx_layers.emitter(layer, strategy, where=f"{layer_path(i)} ") for i, layer in enumerate(model.layers)]
    sequence = _sequence(model)
    known = _preprocessing_of(model)
    scaler = known if preprocessing and not sequence else None  # token ids are not scaled
    classes = _classes_of(model)
    host = np.dtype(dtype)

    if sequence:  # (batch, time) int64 ids, the time dynamic where the input is 1-D per sample
        dims = (TIME,) if len(model.input_shape) == 1 else tuple(model.input_shape)
        x = ndx.argument(shape=(batch or BATCH, *dims), dtype=ndx.int64)
    else:
        x = ndx.argument(shape=(batch or BATCH, *model.input_shape), dtype=getattr(ndx, dtype))
    h = _scaled(x, scaler, tuple(model.input_shape), host)
    params = _host_params(model, host)
    for i, (layer, emit) in enumerate(zip(model.layers, emitters)):
        h = emit(layer, _layer_inputs(model, params, i, host), h)
    z = h
    index = ndx.argmax(z, axis=-1)
    outputs = {"probabilities": onnx_layers.probabilities(model.loss, z, strategy),
               "label": index if classes is None else ndx.take(ndx.asarray(_label_array(classes)), index)}
    if logits:
        outputs["logits"] = z
    proto = ndx.build({INPUT: x}, outputs)
    _name_batch_dims(proto, batch, sequence and len(model.input_shape) == 1)
    _describe(proto, model, known, scaler is not None, classes, checkpoint_sha256, "int64" if sequence else dtype)
    if opset != BUILD_OPSET:
        from onnx import version_converter
        proto = version_converter.convert_version(proto, opset)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _label_array(classes: np.ndarray) -> np.ndarray:
    """Integer labels as int64, anything else as strings (an ONNX string tensor)."""
    return classes.astype(np.int64) if classes.dtype.kind in "iub" else classes.astype(str)


def _name_batch_dims(proto, batch, time: bool = False) -> None:
    """Every output's first dimension is the input's batch (ndonnx's shape inference leaves it unnamed), and
    with `time` its second the input's time."""
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        if batch is None:
            dims[0].dim_param = BATCH
        else:
            dims[0].dim_value = batch
        if time and len(dims) > 1:
            dims[1].dim_param = TIME


def _describe(proto, model, scaler, in_graph: bool, classes, checkpoint_sha256, input_dtype: str = "float32") -> None:
    """Metadata added to ndonnx's (onnx.helper.set_model_props would replace its schema entry)."""
    classes_list = list(range(model.n_outputs)) if classes is None else _label_array(classes).tolist()
    props = {
        "xpnet_version": __version__,
        "classes": json.dumps(classes_list),
        "class_names": json.dumps(_class_names_of(model)),
        "preprocessing": json.dumps({"in_graph": in_graph,
                                     "kind": None if scaler is None else scaler.kind}),
        "input_shape": json.dumps(list(model.input_shape)),
        "input_dtype": input_dtype,
        "trained_dtype": model.dtype_name,
        "loss": type(model.loss).__name__,
    }
    if checkpoint_sha256:
        props["checkpoint_sha256"] = checkpoint_sha256
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "xpnet", __version__
    proto.doc_string = (f"xpnet {type(model).__name__}: raw input -> {'scaled input -> ' if in_graph else ''}"
                        f"{' -> '.join(type(layer).__name__ for layer in model.layers)} -> probabilities, label")


def _write(path: Path, data: bytes) -> None:
    from ..saving.files import atomic_write as _atomic_write
    try:
        _atomic_write(path, data)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; choose a path in a folder you can write "
                         f"to") from None


def export(model, path, opset: int | None = None, batch: int | None = None, preprocessing: bool = True,
           logits: bool = False, checkpoint_sha256: str | None = None, dtype: str = "float32") -> dict:
    """Write the model as ONNX to `path`, atomically (a temporary file, fsync, rename): nothing is written
    when anything fails. Returns {"path", "bytes", "seconds", "opset", "outputs"}."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the path of the .onnx file to write")
    start = time.perf_counter()
    proto = build(model, opset=opset, batch=batch, preprocessing=preprocessing, logits=logits,
                  checkpoint_sha256=checkpoint_sha256, dtype=dtype)
    data = proto.SerializeToString()
    _write(path, data)
    return {"path": str(path), "bytes": len(data), "seconds": time.perf_counter() - start,
            "opset": opset or BUILD_OPSET, "outputs": [o.name for o in proto.graph.output]}


def export_checkpoint(checkpoint, path, **options) -> dict:
    """Export the model in checkpoint file `checkpoint` (any backend's: it is rebuilt on NumPy), with the
    file's SHA-256 in the ONNX metadata. Options as for `export`."""
    from ..saving.checkpoint import CheckpointError, load
    _require()
    try:
        digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {checkpoint} does not exist; check the path") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {checkpoint}: {exc.strerror or exc}") from None
    model = load(checkpoint, backend="numpy")
    return dict(export(model, path, checkpoint_sha256=digest, **options), checkpoint_sha256=digest)
