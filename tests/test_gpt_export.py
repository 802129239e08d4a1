"""ONNX export of the character-level GPT (issue 32): its LayerNorm(bias=False) and TiedOutput (the Embedding's
table as the output projection) export; ONNX Runtime's logits equal model.forward's within 1e-5 in float32."""
import numpy as np
import pytest

from xpnet.data.text import TextBlocks
from xpnet.models.gpt import gpt
from xpnet.training.sources import RandomBatches

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ndonnx")

from xpnet.export.onnx import build  # noqa: E402


def test_a_tiny_gpt_exports_and_matches_in_onnx_runtime():
    ids = np.random.default_rng(0).integers(0, 7, size=300)
    model = gpt(7, 6, layers=2, heads=2, dim=8, backend="numpy", dtype="float32", warmup_steps=1, decay_steps=10)
    model.fit(TextBlocks(ids, 6), None, steps=3, source=RandomBatches(4, seed=1))
    proto = build(model, logits=True, dtype="float32")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for time in (6, 3):  # the context, and a shorter prompt
        x = TextBlocks(ids, time).__getitems__(np.arange(5))[0]
        out = dict(zip(names, session.run(None, {"input": x})))
        z, _ = model.forward(model.bk.asarray(x))
        assert out["logits"].shape == (5, time, 7)
        assert np.max(np.abs(out["logits"] - np.asarray(z))) <= 1e-5
    ops = [n.op_type for n in proto.graph.node]
    assert "LayerNormalization" in ops and "Gather" in ops
