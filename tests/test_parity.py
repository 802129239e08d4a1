"""Backend parity against NumPy float64: lockstep (implementation error) and free-running (sensitivity)."""
import numpy as np
import pytest

import xpnet
from xpnet.parity import TOLERANCES, default_model, default_problem, rel_diff
from xpnet.tools.testing import CASES, _skip_reason, assert_parity

CPU = [name for name, device, version in CASES if device == "cpu" and version is None]


def _cpu_params():
    return [pytest.param(n, id=n, marks=[pytest.mark.skip(reason=r)] if (r := _skip_reason(n, "cpu")) else [])
            for n in CPU]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", _cpu_params())
def test_three_hidden_layers_100_steps(name, optimizer):
    report = xpnet.parity(backends=[name], dtypes=["float64", "float32"], steps=100, optimizer=optimizer)
    r64, r32 = report["results"]
    assert r64["max_rel_diff"] <= 1e-10 and r64["free_max_rel_diff"] <= 1e-10, r64
    assert r32["max_rel_diff"] <= 1e-4, r32
    assert report["passed"] and set(r64["parameters"]) == {
        f"layers.{i}.{k}" for i in (0, 2, 4, 6) for k in ("weight", "bias")}


def test_lockstep_catches_a_backend_bug(monkeypatch):
    """Parity must be able to fail: a 1e-6 error in one optimizer step on the torch side is flagged."""
    from xpnet.optimizers import SGD
    original = SGD.update

    def skewed(self, w, g, bufs, h, inplace):
        out, bufs = original(self, w, g, bufs, h, inplace)
        return (out * (1 + 1e-6) if type(w).__module__.startswith("torch") else out), bufs

    pytest.importorskip("torch")
    monkeypatch.setattr(SGD, "update", skewed)
    report = xpnet.parity(backends=["numpy", "torch"], steps=5)
    numpy_row, torch_row = report["results"]
    assert numpy_row["passed"] and not torch_row["passed"] and not report["passed"]
    assert torch_row["max_rel_diff"] > TOLERANCES["float64"]


def test_growth_is_reported_for_a_chaotic_run():
    """A large learning rate makes the free-running difference grow step after step; lockstep stays tight."""
    X, y = default_problem()

    def hot(bk, dtype):
        m = default_model(bk, dtype)
        m.optimizer.lr = 2.0
        return m

    report = xpnet.parity(hot, X * 5, y, backends=["numpy"], dtypes=["float32"], steps=60, free_tol=1e-3)
    row = report["results"][0]
    assert row["max_rel_diff"] <= TOLERANCES["float32"]
    assert row["growth_per_step"] is not None and row["growth_per_step"] > 1.0
    assert row["passed"] == (row["free_max_rel_diff"] <= 1e-3)


def test_assert_parity_helper_on_a_user_model():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((64, 6)), rng.integers(0, 2, 64)

    def model_fn(bk, dtype):
        return xpnet.Sequential([xpnet.Dense(6, 8), xpnet.LeakyReLU(), xpnet.Dense(8, 2)], loss="logistic",
                                optimizer=xpnet.SGD(0.05, momentum=0.5, nesterov=True), backend=bk, dtype=dtype,
                                seed=3)

    report = assert_parity(model_fn, X, y, steps=10, batch_size=16)
    assert {r["backend"] for r in report["results"]} >= {"numpy"}


def test_rel_diff_definition():
    a, b = np.array([1.0, 2.0]), np.array([1.0, 4.0])
    assert rel_diff(a, b) == (2.0, 0.5)
    assert rel_diff(np.zeros(2), np.zeros(2)) == (0.0, 0.0)


@xpnet.register("tests.NumpyConstantLayer.v1")
class NumpyConstantLayer(xpnet.Layer):
    """A deliberately non-portable user layer: it mixes a NumPy constant into its forward."""

    elementwise = True

    def __init__(self):
        pass

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        scale = np.full(tuple(x.shape[1:]), 2.0)  # a host NumPy array, whatever the backend
        return x * scale, lambda dy: (dy * scale, {})


def test_a_failing_backend_is_a_row_of_the_report_naming_the_layer():
    pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)

    def model_fn(bk, dtype):
        return xpnet.Sequential([xpnet.Dense(4, 5), NumpyConstantLayer(), xpnet.Dense(5, 3)], backend=bk,
                                dtype=dtype, seed=0)

    with pytest.raises(AssertionError) as info:
        assert_parity(model_fn, X, y, backends=["numpy", "array_api_strict"], steps=3)
    text = str(info.value)
    assert "numpy  float64  lockstep 0.00e+00" in text and "ok" in text
    assert "array_api_strict  float64  ERROR in layers.1 NumpyConstantLayer.forward: TypeError" in text, text


def test_xpnet_testing_is_a_pytest_plugin(tmp_path):
    """In a user's suite with no conftest.py: the fixture is there and the gpu mark is known."""
    import subprocess
    import sys
    (tmp_path / "test_user.py").write_text(
        "import pytest\n"
        "@pytest.mark.gpu\n"
        "def test_marked():\n    pass\n"
        "def test_fixture(xpnet_backend):\n    assert xpnet_backend.name\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-W", "error::pytest.PytestUnknownMarkWarning",
                          "-p", "no:cacheprovider", str(tmp_path / "test_user.py")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout and "PytestUnknownMarkWarning" not in out.stdout + out.stderr


# compiled steps (compile=True) ---------------------------------------------------------------------------

def test_compiled_rows_against_the_reference_and_the_eager_step():
    pytest.importorskip("jax")
    report = xpnet.parity(backends=["numpy", "jax"], dtypes=["float64", "float32"], steps=8, compile=True)
    rows = {(r["label"], r["dtype"]): r for r in report["results"]}
    assert list(rows) == [(label, dt) for name in ("numpy", "jax") for dt in ("float64", "float32")
                          for label in ((name, f"{name} (compiled)") if name == "numpy" else
                                        (name, f"{name} (compiled)", f"{name} (compiled) vs {name} eager"))]
    for dt in ("float64", "float32"):
        skipped = rows[("numpy (compiled)", dt)]
        assert skipped["passed"] is None and skipped["skipped"].startswith("no compiler: numpy has none")
        for label in ("jax (compiled)", "jax (compiled) vs jax eager"):
            r = rows[(label, dt)]
            assert r["passed"] and r["compiled"] and r["max_rel_diff"] <= TOLERANCES[dt], r
            assert r["free_max_rel_diff"] <= TOLERANCES[dt] and r["compile_traces"] == 1  # one minibatch shape
        assert rows[("jax (compiled)", dt)]["against"] == "numpy float64"
        assert rows[("jax (compiled) vs jax eager", dt)]["against"] == "jax eager"
    assert report["passed"] and report["compile"]


def test_compiled_lockstep_runs_the_compiled_step(monkeypatch):
    """A 1e-6 error in the optimizer only while JAX traces it (so only in the compiled step) fails the compiled
    rows, against the reference and against eager JAX, and leaves the eager row passing."""
    pytest.importorskip("jax")
    from xpnet.optimizers import SGD
    original = SGD.update

    def skewed(self, w, g, bufs, h, inplace):
        out, bufs = original(self, w, g, bufs, h, inplace)
        return (out * (1 + 1e-6) if "Tracer" in type(w).__name__ else out), bufs

    monkeypatch.setattr(SGD, "update", skewed)
    report = xpnet.parity(backends=["jax"], steps=3, compile=True)
    eager, compiled, vs_eager = report["results"]
    assert eager["passed"] and not compiled["passed"] and not vs_eager["passed"] and not report["passed"]
    assert compiled["max_rel_diff"] > TOLERANCES["float64"] and vs_eager["max_rel_diff"] > TOLERANCES["float64"]


@xpnet.register("tests.ParityHostWork.v1")
class ParityHostWork(xpnet.Layer):
    """Host work on an array (float(x)): runs eagerly, cannot be traced."""

    elementwise = True

    def __init__(self):
        pass

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        scale = 1.0 + 0.0 * float(x[0, 0])
        return x * scale, lambda dy: (dy * scale, {})


def test_an_untraceable_layer_is_a_compiled_row_naming_it():
    pytest.importorskip("jax")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)

    def model_fn(bk, dtype):
        return xpnet.Sequential([xpnet.Dense(4, 5), ParityHostWork(), xpnet.Dense(5, 3)], backend=bk, dtype=dtype,
                                seed=0)

    eager, compiled, vs_eager = xpnet.parity(model_fn, X, y, backends=["jax"], steps=2, compile=True)["results"]
    assert eager["passed"] and not compiled["passed"] and compiled["error"]["where"].startswith("layers.1 ParityHostWork")
    assert vs_eager["label"] == "jax (compiled) vs jax eager" and vs_eager["passed"] is None
    assert vs_eager["skipped"] == "the compiled step failed (its row says why)"


def test_cli_parity_compile():
    pytest.importorskip("jax")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "xpnet", "parity", "--backends", "numpy,jax", "--steps", "3",
                          "--compile"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("numpy (compiled)") and "skipped: no compiler" in line for line in lines), out.stdout
    assert any(line.startswith("jax (compiled) vs jax eager") and line.endswith("pass") for line in lines), out.stdout
