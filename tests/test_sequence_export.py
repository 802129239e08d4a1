"""ONNX export of the sequence layers (issue 31): Embedding (Gather on int64 ids), PositionalEmbedding (a Slice of
the table to the input's time), LayerNorm (LayerNormalization, opset 17), GELU (traced, tanh form), Dense on
(batch, time, features) (MatMul) and MultiHeadAttention (torch's parameter layout, the causal mask by Range and
LessOrEqual, dropout the identity). The transformer parity model exports and ONNX Runtime's logits equal
`model.forward`'s within 1e-5 in float32 and 1e-10 in float64, batch and time dynamic."""
import numpy as np
import pytest

import xpnet
from xpnet import Dense, Embedding, GELU, LayerNorm, MultiHeadAttention, PositionalEmbedding
from xpnet.errors import InputError
from xpnet.tools.parity import sequence_problem, transformer_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ndonnx")

from xpnet.export.onnx import build, export_checkpoint  # noqa: E402

X, Y = sequence_problem(n=16)  # (16, 6) token ids in [0, 11)
TOL = {"float32": 1e-5, "float64": 1e-10}


def run(proto_or_path, ids):
    model = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": ids})))


def rel(a, b) -> float:
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def logits_of(model, ids):
    z, _ = model.forward(model.bk.asarray(ids))
    return np.asarray(model.bk.to_numpy(z), np.float64)


@pytest.fixture(scope="module")
def trained():
    """The transformer parity model after a few steps, in both dtypes (the same seed and data)."""
    return {dt: transformer_model("numpy", dt).fit(X, Y, epochs=2, batch_size=8, shuffle=False)
            for dt in ("float32", "float64")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_transformer_exports_and_matches_in_onnx_runtime(trained, dtype):
    """int64 ids (batch, time) in, logits (batch, time, vocab), probabilities and labels out; ONNX Runtime's
    logits within 1e-5 (float32) / 1e-10 (float64) of model.forward's, for the built time and a shorter one."""
    model = trained[dtype]
    proto = build(model, logits=True, dtype=dtype)
    (inp,) = proto.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "time"]
    shapes = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
    assert shapes == {"probabilities": ["batch", "time", 11], "label": ["batch", "time"],
                      "logits": ["batch", "time", 11]}
    ops = {n.op_type for n in proto.graph.node}
    norm = "LayerNormalization" if dtype == "float32" else "ReduceMean"  # float64: xpnet's arithmetic written out
    assert {"Gather", norm, "Softmax", "Where", "Range"} <= ops and "Gemm" not in ops
    for ids in (X, X[:5, :3]):  # the built length and a shorter one: time is dynamic
        out = run(proto, ids.astype(np.int64))
        z = logits_of(model, ids)
        assert out["logits"].dtype == np.dtype(dtype) and out["logits"].shape == z.shape
        assert rel(out["logits"], z) <= TOL[dtype], rel(out["logits"], z)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        assert rel(out["probabilities"], e / e.sum(axis=-1, keepdims=True)) <= TOL[dtype]
        top2 = np.sort(z, axis=-1)[..., -2:]
        clear = (top2[..., 1] - top2[..., 0]) > 1e-5
        assert np.array_equal(out["label"][clear], z.argmax(axis=-1)[clear])
    assert np.array_equal(run(proto, X.astype(np.int64))["label"], model.predict(X))


def test_every_sequence_layer_alone_in_float64():
    """A non-causal attention without biases, LayerNorm with its own eps, GELU and Dense on 3-D input: ONNX
    Runtime within 1e-10 of xpnet in float64 (random, not trained, parameters)."""
    model = xpnet.Sequential([Embedding(7, 6, std=1.0), PositionalEmbedding(5, 6, std=1.0),
                              MultiHeadAttention(6, 3, causal=False, bias=False), LayerNorm(6, eps=1e-3), GELU(),
                              Dense(6, 4)], backend="numpy", dtype="float64", seed=3, input_shape=(5,))
    ids = np.random.default_rng(0).integers(0, 7, (4, 5))
    proto = build(model, logits=True, dtype="float64")
    for t in (5, 2):
        assert rel(run(proto, ids[:, :t])["logits"], logits_of(model, ids[:, :t])) <= 1e-10


def test_from_a_checkpoint_and_other_opsets(trained, tmp_path):
    """A checkpoint exports (as `xpnet export` does) and runs; opsets 17 and 24 convert and match; opset 16 is
    refused in one line (LayerNormalization is opset 17)."""
    model = trained["float32"]
    path = tmp_path / "lm.safetensors"
    model.save(path)
    info = export_checkpoint(path, tmp_path / "lm.onnx", logits=True)
    z = logits_of(model, X)
    assert rel(run(info["path"], X.astype(np.int64))["logits"], z) <= 1e-5
    for opset in (17, 24):
        assert rel(run(build(model, opset=opset, logits=True), X.astype(np.int64))["logits"], z) <= 1e-5
    with pytest.raises(InputError, match=r"opset.*16: layers\.2\.block\.0 LayerNorm needs ONNX opset 17") as info:
        build(model, opset=16)
    assert "\n" not in str(info.value)
