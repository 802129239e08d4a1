"""The backend selector: names, devices, environment variables, clear errors, host transfers."""
import numpy as np
import pytest

import xpnet
from xpnet.backend import NAMES, Backend, BackendError, describe


def test_every_backend_round_trips_host_data(xpnet_backend):
    bk = xpnet_backend
    x = np.arange(6.0).reshape(2, 3)
    a = bk.asarray(x, dtype=bk.dtype("float64"))
    assert bk.owns(a) and not bk.owns(x if bk.name != "numpy" else [1.0])
    back = bk.to_numpy(a)
    assert isinstance(back, np.ndarray) and np.array_equal(back, x)
    assert bk.to_numpy(bk.xp.sum(a)) == 15.0
    bk.synchronize()


def test_native_uniform(xpnet_backend):
    bk = xpnet_backend
    u = bk.to_numpy(bk.random_uniform((1000,), bk.dtype("float32"), seed=0))
    assert u.shape == (1000,) and 0.0 <= u.min() and u.max() < 1.0 and 0.4 < u.mean() < 0.6


def test_auto_is_numpy_without_gpu(monkeypatch):
    monkeypatch.delenv("XPNET_BACKEND", raising=False)
    monkeypatch.delenv("XPNET_DEVICE", raising=False)
    if describe("cupy")["available"]:
        pytest.skip("a CUDA GPU is usable here")
    bk = xpnet.backend()
    assert (bk.name, bk.device) == ("numpy", "cpu")


def test_environment_is_read_at_the_call(monkeypatch):
    monkeypatch.setenv("XPNET_BACKEND", "array_api_strict")
    assert xpnet.backend().name == "array_api_strict"
    assert xpnet.backend("numpy").name == "numpy"  # an argument wins
    monkeypatch.setenv("XPNET_BACKEND", "numpy")
    monkeypatch.setenv("XPNET_DEVICE", "cuda:0")
    with pytest.raises(BackendError, match="CPU only"):
        xpnet.backend()


@pytest.mark.parametrize("name, device, message", [
    ("tensorflow", None, "choose one of: numpy, array_api_strict, torch, jax, cupy, auto"),
    ("numpy", "cuda", "runs on the CPU only"),
    ("numpy", "tpu:0", "expected 'cpu', 'cuda' or 'cuda:N'"),
    ("array_api_strict", "cuda:1", "runs on the CPU only"),
])
def test_clear_errors(name, device, message):
    with pytest.raises(BackendError, match=message):
        xpnet.backend(name, device)


def test_missing_gpu_names_the_fix():
    if describe("cupy")["available"]:
        pytest.skip("a CUDA GPU is usable here")
    with pytest.raises(BackendError, match=r"pip install|no usable CUDA GPU"):
        xpnet.backend("cupy")
    if describe("torch")["version"]:
        with pytest.raises(BackendError, match="no usable CUDA GPU"):
            xpnet.backend("torch", "cuda:0")


def test_describe_rows():
    for name in NAMES:
        row = describe(name)
        assert set(row) == {"name", "available", "version", "devices", "reason"}
        assert row["available"] == bool(row["devices"])
        assert (row["reason"] is None) == row["available"]
    assert describe("numpy")["devices"] == ["cpu"]


def test_dtype_names():
    bk = Backend("numpy")
    assert bk.dtype("float32") == np.float32
    with pytest.raises(BackendError, match="float32' or 'float64"):
        bk.dtype("float16")
