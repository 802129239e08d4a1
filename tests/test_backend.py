"""The backend selector: names, devices, environment variables, clear errors, host transfers."""
import sys

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
    u = bk.to_numpy(bk.make_native_rng(0).uniform((1000,), bk.dtype("float32")))
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
    ("numpy", "cpu:1", r"^device 'cpu:1' does not exist: numpy sees 1 CPU device\(s\); use --device cpu$"),
])
def test_clear_errors(name, device, message):
    with pytest.raises(BackendError, match=message):
        xpnet.backend(name, device)


def test_cpu_devices_by_number():
    """'cpu:0' is 'cpu'; 'cpu:N' names JAX's N-th CPU device (several only with XLA's forced host device
    count, tests/jax_second_cpu_worker.py), refused in one line where there is no such device."""
    assert xpnet.backend("numpy", "cpu:0").device == "cpu"
    pytest.importorskip("jax")
    import jax
    n = len(jax.devices("cpu"))
    with pytest.raises(BackendError, match=rf"^device 'cpu:{n}' does not exist: jax sees {n} CPU device\(s\); "
                                           r"use --device cpu \(JAX shows more with XLA_FLAGS="):
        xpnet.backend("jax", f"cpu:{n}")


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
        assert set(row) == {"name", "available", "version", "devices", "kernels", "reason"}
        assert row["available"] == bool(row["devices"])
        assert (row["reason"] is None) == row["available"]
    assert describe("numpy")["devices"] == ["cpu"]


def test_dtype_names():
    bk = Backend("numpy")
    assert bk.dtype("float32") == np.float32
    with pytest.raises(BackendError, match="float32' or 'float64"):
        bk.dtype("float16")


@pytest.fixture
def stray_default_device(xpnet_backend):
    """For torch: its default device set to "meta" for the test, so that an array made without device= (which
    torch puts on the default device, the CPU even for a model on a GPU) is not the backend's."""
    if xpnet_backend.name != "torch":
        yield
        return
    import torch
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    yield
    torch.set_default_device(None if previous.type == "cpu" else previous)


def test_with_backend_nests_and_leaves_nothing_behind(xpnet_backend, stray_default_device):
    """Arrays made inside the block as the core makes them: device= for torch and JAX (`with bk:` does not move
    torch's default device: `torch.cuda.device(i)` leaves it on the CPU) and the current device for CuPy (whose
    array-api-compat zeros does not pass device= on)."""
    bk = xpnet_backend
    with bk as entered:
        assert entered is bk
        with bk:
            a = bk.xp.zeros(3, device=bk.native_device)
        b = bk.xp.ones(2, device=bk.native_device)
    assert bk.owns(a) and bk.owns(b)
    with pytest.raises(KeyError), bk:
        raise KeyError("an error inside the block propagates")
    assert bk._entered() == []


class FakeCupy:
    """Just enough of CuPy for the backend, as a module in sys.modules: two GPUs, a current device, and a
    log of (operation, device it ran on)."""

    def __init__(self, count: int = 2):
        import types
        self.current, self.log = 0, []
        fake = self

        class Device:
            def __init__(self, device=None):
                self.id = fake.current if device is None else int(device)
                self._replaced = []

            def __enter__(self):
                self._replaced.append(fake.current)
                fake.current = self.id
                return self

            def __exit__(self, *exc_info):
                fake.current = self._replaced.pop()

            def synchronize(self):
                fake.log.append(("synchronize", self.id))

        class RandomState:
            def __init__(self, seed):
                fake.log.append(("RandomState", fake.current))
                self._rng = np.random.default_rng(seed)

            def random_sample(self, shape, dtype):
                fake.log.append(("random_sample", fake.current))
                return self._rng.random(shape).astype(dtype)

        self.module = types.ModuleType("cupy")
        self.module.__version__ = "14.2.0 (fake)"
        self.module.is_available = lambda: True
        self.module.cuda = types.SimpleNamespace(Device=Device, runtime=types.SimpleNamespace(
            getDeviceCount=lambda: count, getDeviceProperties=lambda i: {"name": b"Fake GPU"}))
        self.module.random = types.SimpleNamespace(RandomState=RandomState)
        self.module.empty = self.empty

    def empty(self, shape):
        self.log.append(("empty", self.current))
        return np.empty(shape)

    def asarray(self, host, dtype=None, copy=None):  # stands in for array_api_compat.cupy.asarray
        self.log.append(("asarray", self.current))
        return np.asarray(host, dtype=dtype)


@pytest.fixture
def fake_cupy(monkeypatch):
    fake = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake.module)
    return fake


def test_cupy_on_cuda1_works_on_gpu1(fake_cupy):
    """CuPy runs kernels and creates arrays on its *current* device: a backend on cuda:1 must make GPU 1
    current for its own calls and for the core's code inside `with bk:`, and restore GPU 0 after."""
    bk = Backend("cupy", "cuda:1")
    assert type(bk).__name__ == "CupyBackend" and bk.device == "cuda:1" and describe("cupy")["devices"] == [
        "cuda:0 (Fake GPU)", "cuda:1 (Fake GPU)"]
    bk.xp = fake_cupy  # the fake's asarray records the current device
    fake_cupy.log.clear()
    bk.asarray([1.0, 2.0])
    rng = bk.make_native_rng(0)
    rng.uniform((3,), np.float32)
    rng.uniform((3,), np.float32)
    bk.synchronize()
    assert fake_cupy.log == [("asarray", 1), ("RandomState", 1), ("random_sample", 1), ("random_sample", 1),
                             ("synchronize", 1)]
    assert fake_cupy.current == 0
    with bk:
        assert fake_cupy.current == 1
        with bk:
            fake_cupy.module.empty(2)  # a kernel the core launches inside the block
        assert fake_cupy.current == 1
    assert fake_cupy.current == 0 and fake_cupy.log[-1] == ("empty", 1)


def test_cupy_device_errors_with_the_fake(fake_cupy):
    with pytest.raises(BackendError, match=r"device 'cuda:2' does not exist: cupy sees 2 GPU\(s\), cuda:0..cuda:1"):
        Backend("cupy", "cuda:2")
    with pytest.raises(BackendError, match="runs on CUDA GPUs only"):
        Backend("cupy", "cpu")


def test_to_device_async_is_asarray(xpnet_backend):
    bk = xpnet_backend
    host = np.random.default_rng(0).random((4, 3))
    for dtype in (None, bk.dtype("float32")):
        a, b = bk.to_device_async(host, dtype), bk.asarray(host, dtype=dtype)
        assert bk.owns(a) and a.dtype == b.dtype and np.array_equal(bk.to_numpy(a), bk.to_numpy(b))
    assert bk.to_numpy(bk.to_device_async([0.5, 1.5])).tolist() == [0.5, 1.5]


def test_torch_staging_copies_and_casts_any_host_array():
    """The host half of torch's CUDA transfer, run on the CPU: a new buffer in the target dtype, whatever
    the strides or writeability of the host array, that later writes to the host array do not change."""
    torch = pytest.importorskip("torch")
    bk = Backend("torch", "cpu")
    host = np.arange(24.0).reshape(4, 6)[::-1, ::2]  # float64, negative and non-unit strides
    host.flags.writeable = False
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps a read-only NumPy array
        staged = bk._staged(host, torch.float32, pin=False)
        kept = bk._staged(host, None, pin=False)
        listed = bk._staged([[1, 2], [3, 4]], None, pin=False)
    assert staged.dtype == torch.float32 and staged.is_contiguous() and np.array_equal(staged.numpy(), host)
    assert kept.dtype == torch.float64 and listed.dtype == torch.asarray([[1, 2], [3, 4]]).dtype
    writable = host.copy()
    copied = bk._staged(writable, torch.float32, pin=False)
    writable[:] = -1
    assert np.array_equal(copied.numpy(), host)


def test_torch_cuda_transfer_pins_and_does_not_block(monkeypatch):
    """The CUDA branch with the CPU standing in for the GPU: it must stage in pinned memory and copy with
    non_blocking=True, and the result must not change when the caller reuses its host buffer."""
    import contextlib
    torch = pytest.importorskip("torch")
    bk = Backend("torch", "cpu")
    calls = []
    empty, to = torch.empty, torch.Tensor.to

    def fake_empty(*args, pin_memory=False, **kwargs):
        calls.append(("pin_memory", pin_memory))
        return empty(*args, **kwargs)

    def fake_to(self, *args, **kwargs):
        calls.append(("non_blocking", kwargs.get("non_blocking", False)))
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch, "empty", fake_empty)
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    monkeypatch.setattr(bk, "device", "cuda:0")
    monkeypatch.setattr(bk, "activate", contextlib.nullcontext)
    host = np.random.default_rng(1).random((3, 5))
    expected = host.astype(np.float32)
    out = bk.to_device_async(host, torch.float32)
    host[:] = 7.0  # the caller reuses its buffer at once
    assert calls == [("pin_memory", True), ("non_blocking", True)]
    assert out.dtype == torch.float32 and np.array_equal(out.numpy(), expected)


def test_native_rng_is_seeded_and_its_state_round_trips(xpnet_backend):
    _check_native_rng(xpnet_backend)


def test_native_rng_check_on_cupy_with_the_fake(fake_cupy):
    """CuPy's generator (curand) cannot export its state: the check stops at the documented refusal."""
    _check_native_rng(Backend("cupy", "cuda:0"))


def _check_native_rng(bk):
    """Same seed, same draws; a state saved (through JSON, as a checkpoint would) and restored into a
    generator seeded otherwise continues the same stream. A backend whose generator cannot be saved
    (native_rng_restorable False: CuPy) refuses to give its state, by design."""
    import json
    f32 = bk.dtype("float32")
    draw = lambda rng: bk.to_numpy(rng.uniform((64,), f32))  # noqa: E731
    assert np.array_equal(draw(bk.make_native_rng(7)), draw(bk.make_native_rng(7)))
    assert not np.array_equal(draw(bk.make_native_rng(7)), draw(bk.make_native_rng(8)))
    rng = bk.make_native_rng(7)
    draw(rng)
    if not bk.native_rng_restorable:
        with pytest.raises(BackendError, match="cannot export it"):
            rng.state()
        return
    saved = json.loads(json.dumps(rng.state()))
    expected = [draw(rng), draw(rng)]
    other = bk.make_native_rng(123)
    other.set_state(saved)
    assert all(np.array_equal(draw(other), e) for e in expected)


def test_native_rng_state_of_another_generator_is_refused():
    pytest.importorskip("torch")
    numpy_state = Backend("numpy").make_native_rng(0).state()
    with pytest.raises(BackendError, match=r"expected a native RNG state of generator 'torch-cpu'.*got 'numpy'"):
        Backend("torch").make_native_rng(0).set_state(numpy_state)
    with pytest.raises(BackendError, match="got 'list'"):
        Backend("numpy").make_native_rng(0).set_state([1, 2])
    with pytest.raises(BackendError, match="'numpy' is malformed"):
        Backend("numpy").make_native_rng(0).set_state({"generator": "numpy", "state": {"bit_generator": "PCG64"}})


def test_cupy_native_rng_says_it_cannot_be_saved(fake_cupy):
    bk = Backend("cupy", "cuda:0")
    assert not bk.native_rng_restorable and Backend("numpy").native_rng_restorable
    with pytest.raises(BackendError, match="CuPy's native one .* cannot export it"):
        bk.make_native_rng(0).state()
    with pytest.raises(BackendError, match=r"start a new stream with make_native_rng\(seed\)"):
        bk.make_native_rng(0).set_state({"generator": "cupy", "state": None})


def test_take_equals_xp_take(xpnet_backend):
    bk = xpnet_backend
    rng = np.random.default_rng(0)
    x = bk.asarray(rng.random((50, 7)), dtype=bk.dtype("float32"))
    order = bk.asarray(rng.permutation(50))  # int64, as the training loop's device order
    for idx in (order[10:30], bk.asarray(np.array([3, 3, 0, 49]))):
        assert np.array_equal(bk.to_numpy(bk.take(x, idx)), bk.to_numpy(bk.xp.take(x, idx, axis=0)))
    idx = bk.asarray(np.array([6, 0, 2]))
    assert np.array_equal(bk.to_numpy(bk.take(x, idx, axis=1)), bk.to_numpy(x)[:, [6, 0, 2]])


def test_out_of_memory_raised_after_the_except_block_frees_the_failed_step():
    """The pattern in out_of_memory_message's docstring drops the failed step's frames (and the arrays in
    them) before the new error propagates; `raise ... from None` inside the except block keeps them."""
    import weakref

    from xpnet.backend import out_of_memory_message
    bk, refs = Backend("numpy"), []

    def step():
        activations = np.ones(1000)  # stands for the device arrays of the failed step
        refs.append(weakref.ref(activations))
        raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def fit(pattern):
        error = None
        try:
            step()
        except Exception as exc:
            message = out_of_memory_message(exc, bk, "training")
            if message is None:
                raise
            if pattern == "from None inside":
                raise RuntimeError(message) from None
            error = RuntimeError(message)
        raise error

    with pytest.raises(RuntimeError) as kept:
        fit("from None inside")
    assert refs[-1]() is not None and kept.value.__context__ is not None
    with pytest.raises(RuntimeError, match=r"^numpy on cpu ran out of memory training \(MemoryError: CUDA out") as freed:
        fit("after the block")
    assert refs[-1]() is None and freed.value.__context__ is None and freed.value.__cause__ is None
    assert out_of_memory_message(ValueError("bad shape"), bk, "training") is None


def test_backend_for_names_an_arrays_library_and_device(xpnet_backend):
    """backend_for(a): the backend `a` lives on (what xpnet.sklearn trains an input on); host data is numpy's."""
    from xpnet.backend import backend_for
    bk = xpnet_backend
    a = bk.asarray(np.ones(3))
    got = backend_for(a)
    assert (got.name, got.device) == (("numpy", "cpu") if bk.name == "numpy" else (bk.name, bk.device))
    assert got.owns(a) or bk.name == "numpy"
    assert backend_for([1.0, 2.0]).name == "numpy"
    with pytest.raises(BackendError, match="is not an array of a backend xpnet runs on"):
        backend_for(object())


def test_array_api_strict_has_three_devices_that_do_not_mix():
    """array-api-strict's CPU_DEVICE, device1 and device2 are xpnet's cpu, cpu:1 and cpu:2; a model on cpu:1
    makes every array on its device (array_api_strict refuses to mix devices)."""
    strict = pytest.importorskip("array_api_strict")
    from xpnet.backend import backend_for
    bk = Backend("array_api_strict", "cpu:1")
    assert bk.native_device == strict.Device("device1") and bk.device == "cpu:1"
    a = strict.ones(3, device=strict.Device("device2"))
    assert backend_for(a).device == "cpu:2" and not bk.owns(a)
    with pytest.raises(BackendError, match=r"device 'cpu:3' does not exist: array_api_strict sees 3 CPU"):
        Backend("array_api_strict", "cpu:3")
    X = np.random.default_rng(0).normal(size=(40, 4))
    model = xpnet.Sequential([xpnet.Dense(4, 8), "relu", xpnet.Dense(8, 3)], optimizer="adam", backend=bk, seed=0)
    Xd = bk.asarray(X, dtype=bk.dtype("float32"))
    model.fit(Xd, np.arange(40) % 3, epochs=2, validation_split=0.25)
    assert model.predict(Xd).device == strict.Device("device1")
