"""Native kernels (issue 37): a backend's own convolution and pooling (Backend.kernels) against the layers'
array-API code, which stays their definition. The oracle against PyTorch autograd on both paths and the tie rule
are in tests/test_conv.py; here: the layer contract (gradients in float64, purity) on the native path, lockstep
parity native against reference, compiled steps tracing the kernels, the switch (native_kernels=,
XPNET_NATIVE_KERNELS, --no-native-kernels), `xpnet backends`, and checkpoints."""
import copy
import json

import numpy as np
import pytest

import xpnet
from xpnet import registry
from xpnet.backend import KERNEL_NAMES, Kernels, describe
from xpnet.gradcheck import check_layer
from xpnet.tools.parity import cnn_model, cnn_problem


def _backend(name):
    try:
        return xpnet.backend(name)
    except xpnet.BackendError:
        return None


NATIVE = [name for name in ("torch", "jax") if _backend(name) is not None]
KERNEL_LAYERS = [(name, i) for name in registry.names("layer") if registry.get("layer", name).kernel_names
                 for i in range(len(registry.get("layer", name).examples()))]


def test_which_backends_have_kernels():
    """torch and JAX have conv2d and both poolings; the reference backends none (their layers run the array-API
    code). A Kernels object names exactly the kernels it has."""
    assert {"Conv2D.v1", "MaxPool2D.v1", "AvgPool2D.v1"} <= {n for n, _ in KERNEL_LAYERS}
    for name in ("numpy", "array_api_strict"):
        assert xpnet.backend(name).kernels is None
        assert describe(name)["kernels"] == []
    for name in NATIVE:
        bk = xpnet.backend(name)
        assert isinstance(bk.kernels, Kernels) and bk.kernels is bk.kernels
        assert {"conv2d", "max_pool2d", "avg_pool2d"} <= set(bk.kernels.names())
        assert describe(name)["kernels"] == list(bk.kernels.names())
        assert set(bk.kernels.names()) <= set(KERNEL_NAMES)


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("name, i", KERNEL_LAYERS)
def test_layer_contract_on_native_kernels(backend, name, i):
    """tests/test_layers_api.py's contract with the backend's kernels: shapes, a float64 gradient check of input
    and parameters, nothing stored on the layer; and the same values as the layer's array-API code."""
    bk = xpnet.backend(backend)
    cls = registry.get("layer", name)
    kwargs, input_shape = cls.examples()[i]
    layer = cls(**kwargs)
    output_shape = tuple(layer.build(input_shape))
    f64 = bk.dtype("float64")
    rng = np.random.default_rng(0)
    params = layer.init_params(rng, lambda a: bk.asarray(a, dtype=f64))
    before = copy.deepcopy({k: v for k, v in vars(layer).items()})
    integer = layer.integer_input  # token ids (Embedding): valid integers, no input gradient
    x = bk.asarray(layer.sample_input(rng, (3, *input_shape)), dtype=bk.xp.int64 if integer else f64)
    shape = layer.noise_shape(3)  # MultiHeadAttention's dropout draws, as the model would give them
    noise = None if shape is None else bk.asarray(rng.random(shape), dtype=f64)
    y, back = layer.forward(params, x, training=True, noise=noise, kernels=bk.kernels)
    assert tuple(y.shape) == (3, *output_shape)
    dy = bk.asarray(rng.standard_normal(tuple(y.shape)), dtype=f64)
    dx, grads = back(dy)
    y_ref, back_ref = layer.forward(params, x, training=True, noise=noise)
    dx_ref, grads_ref = back_ref(dy)
    assert (dx is None and dx_ref is None) if integer else True
    for got, want in [(y, y_ref)] + ([] if integer else [(dx, dx_ref)]) + [(grads[k], grads_ref[k]) for k in params]:
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_allclose(bk.to_numpy(got), bk.to_numpy(want), rtol=1e-12, atol=1e-12)
    assert set(grads) == set(params)
    _, back = layer.forward(params, x, training=True, need_dx=False, noise=noise, kernels=bk.kernels)
    assert back(dy)[0] is None
    assert vars(layer).keys() == before.keys()  # forward/backward store nothing on the layer
    if backend != "torch" and i > 0:
        return  # the values above equal the reference's, which is gradchecked; JAX's eager finite differences are slow
    report = check_layer(layer, bk, input_shape, kernels=bk.kernels)
    assert report["input"] is None if integer else report["input"] <= 1e-7, report
    assert all(e <= 1e-7 for e in report["params"].values()), report


@pytest.mark.skipif(not NATIVE, reason="neither torch nor jax is installed")
def test_lockstep_parity_native_against_reference():
    """`xpnet parity --model cnn --kernels both`: each backend with native kernels and with the array-API code,
    both in lockstep with NumPy float64 (float64 within 1e-10, float32 within its tolerance)."""
    report = xpnet.parity(model="cnn", backends=NATIVE, dtypes=["float64", "float32"], steps=2, batch_size=32,
                          kernels="both")
    assert report["passed"], report
    rows = {(r["label"], r["dtype"]): r for r in report["results"]}
    for name in NATIVE:
        for dtype in ("float64", "float32"):
            assert rows[(name, dtype)]["kernels"] == ["avg_pool2d", "conv2d", "max_pool2d"]
            assert rows[(f"{name} (reference kernels)", dtype)]["kernels"] == []
        assert rows[(name, "float64")]["max_rel_diff"] <= 1e-10


def test_lockstep_parity_of_the_transformer_native_against_reference():
    """`xpnet parity --model transformer --kernels both` on every CPU backend: torch and JAX on their attention
    and scatter-add kernels and on the array-API code, NumPy and array-api-strict on the code (one row each),
    float64 within 1e-10 and float32 within its tolerance of NumPy float64."""
    backends = ["numpy", "array_api_strict"] + NATIVE
    report = xpnet.parity(model="transformer", backends=backends, dtypes=["float64", "float32"], steps=2,
                          kernels="both")
    assert report["passed"], [(r["label"], r["dtype"], r["max_rel_diff"]) for r in report["results"]]
    rows = {(r["label"], r["dtype"]): r for r in report["results"]}
    assert len(rows) == 2 * (2 + 2 * len(NATIVE))
    for name in NATIVE:
        for dtype in ("float64", "float32"):
            assert rows[(name, dtype)]["kernels"] == ["attention", "scatter_add_rows"]
            assert rows[(f"{name} (reference kernels)", dtype)]["kernels"] == []
    for (label, dtype), row in rows.items():
        assert row["max_rel_diff"] <= (1e-10 if dtype == "float64" else 1e-4), (label, dtype, row["max_rel_diff"])


def test_compiled_jax_step_traces_the_native_kernels():
    """jax.jit traces the kernels (they are called while tracing), and the compiled step equals the eager one."""
    bk = _backend("jax")
    if bk is None:
        pytest.skip("jax is not installed")
    calls = []
    kernels = bk.kernels
    original = type(kernels).conv2d

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    X, y = cnn_problem(32)
    eager, compiled = cnn_model(bk, "float64"), cnn_model(bk, "float64")
    compiled.compile = True
    type(kernels).conv2d = counting
    try:
        compiled.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    finally:
        type(kernels).conv2d = original
    assert calls and compiled.compile_traces_ >= 1
    eager.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    for k, v in eager.parameters().items():
        np.testing.assert_allclose(np.asarray(compiled.parameters()[k]), np.asarray(v), rtol=1e-10, atol=1e-13)


def test_compiled_torch_step_equals_eager_with_native_kernels():
    """torch.compile traces F.conv2d, aten.convolution_backward and the pooling ops: lockstep and free-running
    against the eager step (and NumPy float64) within parity's tolerance."""
    if _backend("torch") is None:
        pytest.skip("torch is not installed")
    report = xpnet.parity(model="cnn", backends=["torch"], dtypes=["float64"], steps=2, compile=True, batch_size=16)
    assert report["passed"], report
    assert [r["label"] for r in report["results"]] == ["torch", "torch (compiled)", "torch (compiled) vs torch eager"]
    assert all(r["kernels"] == ["avg_pool2d", "conv2d", "max_pool2d"] for r in report["results"])


def test_the_switch(monkeypatch):
    """native_kernels=False, XPNET_NATIVE_KERNELS=0 and assigning model.native_kernels run the array-API code; a
    bad value is one clear error."""
    name = NATIVE[0] if NATIVE else "numpy"
    bk = xpnet.backend(name)
    on = cnn_model(bk, "float32")
    assert on.native_kernels is True and (on.kernels is bk.kernels)
    assert bool(on.kernels_used()) == bool(NATIVE)
    off = xpnet.Sequential(on.layers, backend=bk, input_shape=(1, 8, 8), native_kernels=False)
    assert off.native_kernels is False and off.kernels is None and off.kernels_used() == {}
    monkeypatch.setenv("XPNET_NATIVE_KERNELS", "0")
    assert cnn_model(bk, "float32").kernels is None
    monkeypatch.setenv("XPNET_NATIVE_KERNELS", "maybe")
    with pytest.raises(xpnet.BackendError, match="XPNET_NATIVE_KERNELS='maybe'"):
        cnn_model(bk, "float32")
    monkeypatch.delenv("XPNET_NATIVE_KERNELS")
    on.native_kernels = False
    assert on.kernels is None
    with pytest.raises(xpnet.InputError, match="native_kernels must be True, False or None"):
        on.native_kernels = "no"


@pytest.mark.skipif(not NATIVE, reason="neither torch nor jax is installed")
def test_checkpoints_do_not_depend_on_the_kernels(tmp_path):
    """A model trained on native kernels saves and loads as any other; loaded with native_kernels=False it
    predicts the same to rounding."""
    X, y = cnn_problem(32)
    model = cnn_model(xpnet.backend(NATIVE[0]), "float64")
    model.fit(X, y, epochs=1, batch_size=16)
    path = tmp_path / "cnn.safetensors"
    model.save(path)
    native = xpnet.load(path, backend=NATIVE[0])
    reference = xpnet.load(path, backend=NATIVE[0], native_kernels=False)
    assert native.kernels_used() and not reference.kernels_used()
    np.testing.assert_allclose(native.predict_proba(X), reference.predict_proba(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(native.predict_proba(X), model.predict_proba(X), rtol=0, atol=0)


def test_cli_backends_lists_kernels_and_train_turns_them_off(capsys, tmp_path):
    from xpnet.cli import main
    assert main(["backends", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["numpy"]["kernels"] == []
    for name in NATIVE:
        assert rows[name]["kernels"] == ["conv2d", "max_pool2d", "avg_pool2d", "attention", "scatter_add_rows"]
    if not NATIVE:
        return
    spec = {"class": "Sequential", "config": {"layers": [
        {"class": "Conv2D", "config": {"in_channels": 1, "out_channels": 2, "kernel_size": 3}},
        {"class": "MaxPool2D", "config": {"kernel_size": 2}}, {"class": "Flatten", "config": {}},
        {"class": "Dense", "config": {"in_features": 18, "out_features": 10}}], "input_shape": [1, 8, 8]}}
    (tmp_path / "m.json").write_text(json.dumps(spec))
    args = ["train", "--backend", NATIVE[0], "--model", str(tmp_path / "m.json"), "--epochs", "1", "--quiet",
            "--batch-size", "600",
            "--checkpoint", str(tmp_path / "c.safetensors")]
    assert main(args + ["--no-native-kernels"]) == 0
    assert xpnet.load(tmp_path / "c.safetensors", backend=NATIVE[0]).kernels_used()  # a run option, not saved
