"""CuPy's native scatter-add (issue 37's row for the embedding's gradient), run on a stand-in for CuPy (NumPy
arrays behind a fake `cupy` and `cupyx`, tests/test_backend.py's FakeCupy): the kernel is listed by `xpnet
backends`, sums in float32 or wider, and gives the embedding the reference's gradient."""
import sys
import types

import numpy as np
import pytest

from test_backend import FakeCupy
from xpnet.backend import Backend, describe
from xpnet.layers.attention_ops import embedding, scatter_add_rows


@pytest.fixture
def cupy_kernels(monkeypatch):
    fake = FakeCupy()
    fake.module.zeros = np.zeros
    fake.module.float32 = np.float32
    calls = []

    def scatter_add(a, slices, value):  # cupyx.scatter_add: a[slices] += value, repeats summed
        calls.append(value.dtype)
        np.add.at(a, slices, value)

    monkeypatch.setitem(sys.modules, "cupy", fake.module)
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(scatter_add=scatter_add))
    return Backend("cupy", "cuda:0").kernels, calls


def test_cupy_lists_and_runs_its_scatter_add(cupy_kernels):
    kernels, calls = cupy_kernels
    assert describe("cupy")["kernels"] == ["scatter_add_rows"] == list(kernels.names())
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, 40)
    idx[:3] = 2  # repeats
    values = rng.standard_normal((40, 3))
    got = scatter_add_rows(idx, values, 5, kernels=kernels)
    assert calls == [np.float64]
    want = np.zeros((5, 3))
    np.add.at(want, idx, values)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, scatter_add_rows(idx, values, 5), rtol=1e-12, atol=1e-14)
    low = scatter_add_rows(idx, values.astype(np.float16), 5, kernels=kernels)  # summed in float32, cast back
    assert calls[-1] == np.float32 and low.dtype == np.float16
    # the embedding's table gradient by the kernel equals the one-hot reference's
    weight, ids = rng.standard_normal((7, 4)), rng.integers(0, 7, (3, 5))
    dout = rng.standard_normal((3, 5, 4))
    (_, native), (_, reference) = embedding(weight, ids, kernels=kernels), embedding(weight, ids)
    np.testing.assert_allclose(native(dout), reference(dout), rtol=1e-12, atol=1e-14)


def test_the_scatter_add_benchmark_runs(tmp_path):
    """benchmarks/scatter_add.py on a tiny shape (no timing asserted): one row per shape, native (np.add.at on
    NumPy) against the one-hot reference, the same sums, JSON lines and a Markdown table written."""
    import json
    import subprocess
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "scatter_add.py"
    out = tmp_path / "sa.jsonl"
    done = subprocess.run([sys.executable, str(script), "--backends", "numpy", "--shapes", "40x5x3,8x7x2",
                           "--repeats", "1", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["tokens"], r["vocab"], r["dim"]) for r in rows] == [(40, 5, 3), (8, 7, 2)]
    assert all(r["max_rel_diff"] <= 1e-6 and r["ratio"] > 0 for r in rows)
    assert "| numpy | float32 | 40 | 5 | 3 |" in out.with_suffix(".md").read_text()
