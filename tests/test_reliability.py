"""Faults lose nothing: out-of-memory is explained, divergence keeps the last finite checkpoint,
dtype mismatches convert as documented, and a broken install cannot pass by skipping."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.backend import is_out_of_memory
from xpnet.data.datasets import load_digits


class FakeCupyOOM(Exception):
    pass


FakeCupyOOM.__name__ = "OutOfMemoryError"


@pytest.mark.parametrize("exc", [
    FakeCupyOOM("Out of memory allocating 1,073,741,824 bytes"),
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4294967296 bytes."),
    MemoryError("Unable to allocate 8.0 GiB"),
])
def test_out_of_memory_names_what_to_lower(monkeypatch, exc):
    assert is_out_of_memory(exc)
    model = xpnet.Sequential([xpnet.Dense(64, 10)], seed=0)

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(model, "train_step", boom)
    X, y = load_digits()[:2]
    with pytest.raises(xpnet.OutOfMemory, match=r"ran out of memory .* 650 parameters .* minibatches of 256: "
                                                r"lower --batch-size"):
        model.fit(X, y, epochs=1, batch_size=256)


def test_other_errors_pass_through(monkeypatch):
    model = xpnet.Sequential([xpnet.Dense(64, 10)], seed=0)
    monkeypatch.setattr(model, "train_step", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        model.fit(*load_digits()[:2], epochs=1)


def test_divergence_keeps_the_last_finite_checkpoint(tmp_path):
    X, y = load_digits()[:2]
    model = xpnet.Sequential([xpnet.Dense(64, 10)], loss="mse", optimizer=xpnet.SGD(1e-4), dtype="float64", seed=0)
    ck = xpnet.ModelCheckpoint(tmp_path / "m.safetensors")
    model.fit(X, y, epochs=2, callbacks=[ck])
    good = (tmp_path / "m.safetensors").read_bytes()
    model.state.lr = 1e3  # now it explodes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(xpnet.TrainingDiverged, match=r"epoch 1, step \d+"):
            model.fit(X, y, epochs=5, callbacks=[ck])
    assert (tmp_path / "m.safetensors").read_bytes() == good
    assert np.isfinite(xpnet.load(tmp_path / "m.safetensors").predict_proba(X)).all()


def test_dtype_is_converted_to_the_models():
    """Documented: input of another dtype (ints, float64 for a float32 model) is converted, never refused."""
    X, y = load_digits()[:2]
    model = xpnet.Sequential([xpnet.Dense(64, 10)], dtype="float32", seed=0)
    model.fit(X.astype(np.int64), y, epochs=1)
    assert model.predict_proba(X.astype(np.float64)).dtype == np.float32


def test_fewer_classes_is_a_warning():
    X = np.random.default_rng(0).standard_normal((5, 4))
    model = xpnet.Sequential([xpnet.Dense(4, 10)], seed=0)
    with pytest.warns(UserWarning, match="holds 2 of the model's 10 classes"):
        model.fit(X, [0, 1, 0, 1, 0], epochs=1)


def test_required_backend_with_no_passing_test_fails_the_session(tmp_path):
    """.ci/run sets XPNET_REQUIRE_BACKENDS: a backend whose tests were all skipped fails the run."""
    (tmp_path / "test_x.py").write_text("import pytest\n@pytest.mark.parametrize('b', ['numpy', 'torch'])\n"
                                        "def test_a(b):\n    if b == 'torch':\n        pytest.skip('absent')\n")
    (tmp_path / "conftest.py").write_text(open(__file__.replace("test_reliability.py", "conftest.py")).read())
    env_ok = {"XPNET_REQUIRE_BACKENDS": "numpy"}
    env_bad = {"XPNET_REQUIRE_BACKENDS": "numpy,torch"}
    import os
    for env, code in ((env_ok, 0), (env_bad, 1)):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                              capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path)
        assert proc.returncode == code, proc.stdout
    assert "no test passed on required backend(s) torch" in proc.stdout


def test_untrained_classes_warning_comes_from_training_only():
    """fit warns once about classes its labels lack; score, evaluate and validation data are not training,
    so they do not repeat it (`xpnet train` printed it two or three times: fit, then train and test scores)."""
    X = np.random.default_rng(0).standard_normal((6, 4))
    y = [0, 1, 0, 1, 0, 1]
    model = xpnet.Sequential([xpnet.Dense(4, 10)], seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, epochs=1, validation_data=(X[:2], y[:2]))
        model.score(X, y)
    assert [str(w.message) for w in caught] == ["y holds 2 of the model's 10 classes; the others are never trained"]
