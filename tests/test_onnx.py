"""ONNX export (xpnet.export.onnx, `xpnet export`, model.to_onnx) verified in ONNX Runtime (CPU) against xpnet
on NumPy: probabilities within 1e-5 (max|a-b|/max|b|) of float32 xpnet with the same weights and 1e-4 of
float64 xpnet, labels identical except where the top two probabilities are within 1e-5, every file passing
onnx.checker.check_model(full_check=True)."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.cli import main
from xpnet.errors import InputError
from xpnet.layers import Identity
from xpnet.layers.activations import ACTIVATION_NAMES
from xpnet.data.preprocessing import SCALES, Scaler

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ndonnx")

from xpnet.export.onnx import OPSETS, build, export, export_checkpoint  # noqa: E402

TOL32, TOL64, TIE = 1e-5, 1e-4, 1e-5
LOSSES = ("softmax_cross_entropy", "logistic", "mse")


def run(path_or_proto, X):
    """{output name: array} of the model in ONNX Runtime on CPU."""
    model = path_or_proto if isinstance(path_or_proto, str) else path_or_proto.SerializeToString()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": np.asarray(X, dtype=np.float32)})))


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def assert_matches(out, model, Xs, tol):
    """ONNX Runtime's outputs against the model's predict_proba / predict on already scaled Xs (the model's own
    preprocessing set aside for it)."""
    pre, model.preprocessing = model.preprocessing, None
    try:
        proba, labels = model.predict_proba(Xs), model.predict(Xs)
    finally:
        model.preprocessing = pre
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == proba.shape
    assert rel(out["probabilities"], proba) <= tol
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > TIE
    assert np.array_equal(out["label"][clear], labels[clear])
    return proba


def data(n=40, features=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, features)).astype(np.float64)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_every_activation_and_loss_float32(activation, loss, tmp_path):
    X = data()
    model = xpnet.Sequential(xpnet.mlp_layers([12, 9, 7, 4], activation, dropout=0.25), loss=loss,
                             dtype="float32", seed=3)
    model.preprocessing = Scaler("symmetric").fit(X)
    path = tmp_path / "m.onnx"
    info = model.to_onnx(path, logits=True)
    onnx.checker.check_model(str(path), full_check=True)
    assert info["bytes"] == path.stat().st_size and info["outputs"] == ["probabilities", "label", "logits"]
    out = run(str(path), X)
    Xs = model.preprocessing.transform(X, "float32")
    assert_matches(out, model, Xs, TOL32)
    z, _ = model.forward(model.as_input(Xs))
    assert rel(out["logits"], np.asarray(z)) <= TOL32


def test_traced_and_native_graphs_agree():
    """strategy='trace' traces every layer's own forward (Dense as x @ W.T + b, softmax as written); the
    default swaps in native nodes (Gemm, LeakyRelu, Softmax): the same numbers, fewer nodes."""
    X = data()
    model = xpnet.Sequential(xpnet.mlp_layers([12, 8, 6, 3], ["leaky_relu", "softmax"]), dtype="float32", seed=1)
    native, traced = build(model, logits=True), build(model, logits=True, strategy="trace")
    ops, traced_ops = ([n.op_type for n in p.graph.node] for p in (native, traced))
    assert ops.count("Gemm") == 3 and ops.count("Softmax") == 2 and ops.count("LeakyRelu") == 1 and "If" not in ops
    assert "Gemm" not in traced_ops and "If" in traced_ops and len(ops) < len(traced_ops)
    a, b = run(native, X), run(traced, X)
    assert rel(a["probabilities"], b["probabilities"]) <= TOL32 and rel(a["logits"], b["logits"]) <= TOL32


@pytest.mark.parametrize("kind", SCALES)
def test_scaling_inside_the_graph(kind, tmp_path):
    """Raw inputs go in, as `xpnet predict` takes them; every Scaler kind is in the graph, and
    preprocessing=False leaves it out (the input is then scaled data)."""
    X = data(features=6) + np.arange(6) * 40.0  # per-feature offsets, so standardize has a vector shift
    model = xpnet.Sequential(xpnet.mlp_layers([6, 5, 3], "tanh"), dtype="float32", seed=2)
    model.preprocessing = Scaler(kind).fit(X)
    Xs = model.preprocessing.transform(X, "float32")
    assert_matches(run(build(model), X), model, Xs, TOL32)
    bare = build(model, preprocessing=False)
    assert_matches(run(bare, Xs), model, Xs, TOL32)
    meta = {p.key: p.value for p in bare.metadata_props}
    assert json.loads(meta["preprocessing"]) == {"in_graph": False, "kind": kind}  # the scaling to apply yourself


def test_image_shaped_input_with_per_pixel_scaling():
    """Input (batch, *input_shape) with more than one axis (as the CNN layers will take): Flatten traces
    (a reshape to (-1, features)) and a per-feature Scaler is laid out as the input."""
    X = data(n=20, features=12, seed=9)
    model = xpnet.Sequential([xpnet.Flatten(), xpnet.Dense(12, 5), xpnet.ReLU(), xpnet.Dense(5, 3)],
                             input_shape=(1, 3, 4), dtype="float32", seed=4)
    model.preprocessing = Scaler("standardize").fit(X)
    Xs = model.preprocessing.transform(X, "float32").reshape(20, 1, 3, 4)
    proto = build(model)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [1, 3, 4]
    assert_matches(run(proto, X.reshape(20, 1, 3, 4)), model, Xs, TOL32)


def cnn(dtype, seed=0, **kw):
    """Every CNN layer: Conv2D with "same" on an even kernel (asymmetric padding) and with strides and (h, w) padding, BatchNorm over channels and over
    features, max-, average- and global average pooling; on (1, 12, 10) images."""
    L = xpnet.layers
    return xpnet.Sequential([L.Conv2D(1, 4, (2, 3), padding="same"), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2),
                             L.Conv2D(4, 6, (3, 2), stride=(1, 2), padding=(1, 0)), L.Tanh(), L.AvgPool2D(2, stride=1),
                             L.Conv2D(6, 5, 1), L.GlobalAvgPool2D(), L.BatchNorm(), L.Dense(5, 3)],
                            input_shape=(1, 12, 10), optimizer="adam", dtype=dtype, seed=seed, **kw)


@pytest.mark.parametrize("dtype, tol", [("float32", TOL32), ("float64", TOL64)])
def test_cnn_layers_with_running_statistics(dtype, tol, tmp_path):
    """Conv2D, pooling and BatchNorm (its running statistics after training, not the initial ones) as native
    ONNX against xpnet on NumPy; the raw-pixel scaling inside the graph; through a checkpoint as `xpnet export`
    reads it."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (64, 1, 12, 10)).astype(np.float64)
    y = (X.reshape(64, -1)[:, :40].mean(axis=1) > 127).astype(int) + (X[:, 0, 0, 0] > 200)
    model = cnn(dtype, preprocessing="unit").fit(X, y, epochs=3, batch_size=16)
    stats = model.state.layer_state
    assert stats and not np.allclose(model.bk.to_numpy(stats["layers.1.running_var"]), 1.0)
    ckpt = model.save(tmp_path / "cnn.safetensors")
    export_checkpoint(str(ckpt), str(tmp_path / "cnn.onnx"))
    out = run(str(tmp_path / "cnn.onnx"), X)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "cnn.onnx")).graph.node}
    assert {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool"} <= ops
    assert_matches(out, xpnet.load(ckpt), model.preprocessing.transform(X, dtype), tol)


def test_without_the_onnx_extra_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ndonnx", None)  # import ndonnx raises ImportError
    model = xpnet.Sequential([xpnet.Dense(3, 2)], dtype="float32", seed=0)
    with pytest.raises(InputError, match=r'needs ndonnx, spox and onnx: pip install "xpnet\[onnx\]"'):
        model.to_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_float64_checkpoint_and_metadata(tmp_path):
    X = data(n=60, features=10, seed=4)
    y = np.arange(60) % 3
    model = xpnet.Sequential(xpnet.mlp_layers([10, 16, 3], "sigmoid"), dtype="float64", seed=5, optimizer="adam")
    scaler = Scaler("standardize").fit(X)
    Xs = scaler.transform(X, "float64")
    model.fit(Xs, y, epochs=3, batch_size=20, verbose=False)
    meta, arrays = scaler.to_meta()
    from xpnet.saving.checkpoint import save
    ckpt = save(model, tmp_path / "m.safetensors", extra={"preprocessing": meta}, arrays=arrays)
    info = export_checkpoint(ckpt, tmp_path / "m.onnx")
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    proto = onnx.load(str(tmp_path / "m.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert info["checkpoint_sha256"] == props["checkpoint_sha256"] == digest
    assert props["xpnet_version"] == xpnet.__version__ and json.loads(props["classes"]) == [0, 1, 2]
    assert props["trained_dtype"] == "float64" and json.loads(props["preprocessing"])["kind"] == "standardize"
    inp = proto.graph.input[0].type.tensor_type
    assert inp.elem_type == onnx.TensorProto.FLOAT and inp.shape.dim[0].dim_param == "batch"
    assert_matches(run(str(tmp_path / "m.onnx"), X), model, Xs, TOL64)


def test_neuralnetmlp_checkpoint(tmp_path):
    """The book's model (float64, logistic output, sigmoid hidden layer)."""
    X = data(n=30, features=8, seed=6)
    y = np.arange(30) % 4
    nn = xpnet.NeuralNetMLP(n_output=4, n_features=8, n_hidden=6, epochs=2, eta=0.001, minibatches=3, random_state=1)
    nn.fit(X / 255.0, y)
    ckpt = nn.save(tmp_path / "nn.safetensors")
    export_checkpoint(ckpt, tmp_path / "nn.onnx")
    assert_matches(run(str(tmp_path / "nn.onnx"), X / 255.0), nn, X / 255.0, TOL64)


def test_checkpoint_from_any_backend(xpnet_backend, tmp_path):
    X = data(n=24, features=5, seed=7)
    y = np.arange(24) % 3
    model = xpnet.Sequential(xpnet.mlp_layers([5, 6, 3], "relu"), dtype="float32", seed=8, backend=xpnet_backend)
    model.fit(X / 255.0, y, epochs=1, batch_size=8, verbose=False)
    ckpt = model.save(tmp_path / "m.safetensors")
    export_checkpoint(ckpt, tmp_path / "m.onnx")
    on_numpy = xpnet.load(ckpt, backend="numpy")
    assert_matches(run(str(tmp_path / "m.onnx"), X / 255.0), on_numpy, (X / 255.0).astype(np.float32), TOL32)


def test_class_labels_in_the_label_output():
    X = data(features=4)
    model = xpnet.Sequential(xpnet.mlp_layers([4, 3]), dtype="float32", seed=0)
    index = model.predict(X)
    model.classes_ = np.array([3, 7, 11])
    assert np.array_equal(run(build(model), X)["label"], np.array([3, 7, 11])[index])
    model.classes_ = np.array(["cat", "dog", "emu"])
    model.class_names_ = ["cat", "dog", "emu"]
    proto = build(model)
    assert list(run(proto, X)["label"]) == list(np.array(["cat", "dog", "emu"])[index])
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == json.loads(props["class_names"]) == ["cat", "dog", "emu"]


def test_opsets_and_fixed_batch():
    X = data(n=5, features=4)
    model = xpnet.Sequential(xpnet.mlp_layers([4, 5, 3], "leaky_relu"), dtype="float32", seed=0)
    want = run(build(model), X)["probabilities"]
    for opset in OPSETS:
        proto = build(model, opset=opset)
        assert {o.domain: o.version for o in proto.opset_import}[""] == opset
        assert rel(run(proto, X)["probabilities"], want) == 0.0
    fixed = build(model, batch=5)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 5
    assert fixed.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 5
    assert rel(run(fixed, X)["probabilities"], want) == 0.0
    with pytest.raises(Exception):
        run(fixed, X[:3])


class Doubler(Identity):
    """A layer the exporter has never heard of."""


def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, capsys):
    model = xpnet.Sequential([xpnet.Dense(3, 4), Doubler(), xpnet.Dense(4, 2)], dtype="float32", seed=0)
    target = tmp_path / "keep.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(InputError, match=r"^layers.1 Doubler has no ONNX form in this xpnet \(layers that export: "):
        model.to_onnx(target)
    assert target.read_bytes() == b"previous" and list(tmp_path.iterdir()) == [target]
    good = xpnet.Sequential([xpnet.Dense(3, 2)], dtype="float32", seed=0)
    for opset in (15, 99, "21"):
        with pytest.raises(InputError, match="xpnet exports ONNX opsets 16 to 24"):
            good.to_onnx(target, opset=opset)
    with pytest.raises(InputError, match="batch=0: must be a positive integer"):
        good.to_onnx(target, batch=0)
    ckpt = good.save(tmp_path / "good.safetensors")
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    for argv, says in ((["--checkpoint", str(tmp_path / "missing.safetensors")], "does not exist; check the path"),
                       (["--checkpoint", str(ckpt), "--opset", "12"], "--opset 12: xpnet exports ONNX opsets"),
                       (["--checkpoint", str(ckpt), "--output", str(blocked / "m.onnx")], "cannot write"),
                       (["--checkpoint", str(ckpt), "--output", str(tmp_path)], "is a folder")):
        if "--output" not in argv:
            argv = argv + ["--output", str(target)]
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("xpnet export: error: ") and says in err, err
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "good.safetensors", "keep.onnx"]


def test_cli_export_of_a_train_checkpoint_matches_predict(tmp_path, capsys):
    """`xpnet export` on what `xpnet train` writes: the ONNX file on raw inputs gives `xpnet predict`'s
    probabilities and labels for the same .npy file."""
    ckpt, onnx_path, inputs = tmp_path / "d.safetensors", tmp_path / "d.onnx", tmp_path / "x.npy"
    assert main(["train", "--epochs", "2", "--quiet", "--hidden", "16", "--checkpoint", str(ckpt)]) == 0
    from xpnet.cli.train import load_dataset
    X = load_dataset("digits")[2][:50]
    np.save(inputs, X)
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ckpt), "--output", str(onnx_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["opset"] == 21 and info["bytes"] == onnx_path.stat().st_size
    assert main(["predict", "--checkpoint", str(ckpt), str(inputs), "--json", "--quiet"]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = run(str(onnx_path), X)
    proba = np.asarray(predicted["probabilities"])
    assert rel(out["probabilities"], proba) <= TOL32
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > TIE
    assert np.array_equal(out["label"][clear], np.asarray(predicted["predictions"])[clear])


def test_cli_checkpoint_with_named_labels_exports_them(tmp_path, capsys):
    """A CSV whose labels are names (issue 15): the exported graph's `label` output gives the names, as
    `xpnet predict` does, and its metadata lists them; the standardization is inside the graph."""
    rng = np.random.default_rng(0)
    X = rng.normal(50, 10, (60, 3))
    names = np.array(["setosa", "versicolor", "virginica"])[np.argmax((X - 50) @ rng.normal(size=(3, 3)), axis=1)]
    data, ckpt, onnx_path = tmp_path / "iris.csv", tmp_path / "i.safetensors", tmp_path / "i.onnx"
    data.write_text("a,b,c,species\n" + "".join(f"{a},{b},{c},{n}\n" for (a, b, c), n in zip(X, names)))
    assert main(["train", "--dataset", str(data), "--label-column", "species", "--scale", "standardize",
                 "--epochs", "5", "--quiet", "--checkpoint", str(ckpt)]) == 0
    assert main(["export", "--checkpoint", str(ckpt), "--output", str(onnx_path)]) == 0
    assert main(["predict", "--checkpoint", str(ckpt), str(data), "--label-column", "species", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = run(str(onnx_path), X)
    assert rel(out["probabilities"], np.asarray(predicted["probabilities"])) <= TOL32
    assert [str(v) for v in out["label"]] == predicted["predictions"]
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["classes"]) == ["setosa", "versicolor", "virginica"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4), features=st.integers(1, 7),
       acts=st.data(), loss=st.sampled_from(LOSSES), dropout=st.sampled_from([0.0, 0.3]),
       kind=st.sampled_from(SCALES), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2 ** 16))
def test_random_architectures(sizes, features, acts, loss, dropout, kind, dtype, seed):
    activations = acts.draw(st.lists(st.sampled_from(ACTIVATION_NAMES), min_size=len(sizes) - 1,
                                     max_size=len(sizes) - 1))
    sizes[-1] = max(sizes[-1], 2)
    X = data(n=17, features=features, seed=seed)
    model = xpnet.Sequential(xpnet.mlp_layers([features, *sizes], activations, dropout=dropout), loss=loss,
                             dtype=dtype, seed=seed)
    model.preprocessing = Scaler(kind).fit(X)
    proto = build(model)
    onnx.checker.check_model(proto, full_check=True)
    assert_matches(run(proto, X), model, model.preprocessing.transform(X, dtype), TOL32 if dtype == "float32" else TOL64)


def test_import_xpnet_loads_no_onnx_library():
    code = ("import sys, xpnet, xpnet.cli; "
            "print(sorted(m for m in ('ndonnx', 'spox', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
