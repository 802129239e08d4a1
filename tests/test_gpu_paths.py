"""GPU-path fixes checked on the CPU (issue: "GPU paths: fix what a careful reading finds"): the model's device
is current whenever the model makes or computes arrays, a resume after an epoch's last step, host dropout
draws moved asynchronously, the backend generator seeded and checkpointed, out-of-memory that frees the
failed step. What needs a GPU itself is in benchmarks/gpu_check.sh."""
import contextlib
import gc
import weakref

import numpy as np
import pytest

import xpnet
from xpnet.backend import BackendError
from xpnet.data.datasets import load_digits
from xpnet.namespace import namespace


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X / 16.0, y, Xt / 16.0, yt


ACTIVE = []  # the backend contexts currently entered (by the spy below)


@xpnet.register("tests.DeviceSpy.v1")
class DeviceSpy(xpnet.Layer):
    """Identity that records whether a backend's device context was active when it made or computed arrays."""

    elementwise = True
    seen: list = []

    def __init__(self):
        pass

    def param_shapes(self):
        return {"gain": self.input_shape}

    def init_params(self, rng, asarray):
        DeviceSpy.seen.append(("init", bool(ACTIVE)))
        return {"gain": asarray(np.ones(self.input_shape))}

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        DeviceSpy.seen.append(("forward", bool(ACTIVE)))
        g = params["gain"]
        return x * g, lambda dy: (dy * g, {"gain": namespace(dy).sum(dy * x, axis=0)})


def test_the_models_device_is_current_for_everything_it_does(monkeypatch, digits):
    """CuPy runs kernels on the current device, whatever array-api-compat is told: building, fit, predict,
    score, evaluate and parity must run inside the backend's context (a fake one records it here)."""
    from xpnet.backend._numpy import NumpyBackend

    @contextlib.contextmanager
    def activate(self):
        ACTIVE.append(self)
        try:
            yield
        finally:
            ACTIVE.pop()

    monkeypatch.setattr(NumpyBackend, "activate", activate)
    DeviceSpy.seen = []
    X, y, Xt, yt = digits

    def make(bk="numpy", dtype="float64"):
        return xpnet.Sequential([xpnet.Dense(64, 8), DeviceSpy(), xpnet.Dense(8, 10)], backend=bk, dtype=dtype, seed=0)

    model = make()
    model.fit(X[:64], y[:64], epochs=1, batch_size=32, validation_split=0.25)
    model.predict(Xt[:5])
    model.predict_proba(Xt[:5])
    model.score(Xt[:5], yt[:5])
    from xpnet.training import evaluate
    evaluate(model, model.as_input(Xt[:5]), model.as_targets(yt[:5], 5)[0])
    xpnet.parity(lambda bk, dtype: make(bk, dtype), X[:40], y[:40], backends=["numpy"], steps=2)
    kinds = {k for k, _ in DeviceSpy.seen}
    assert kinds == {"init", "forward"} and len(DeviceSpy.seen) > 10
    assert all(active for _, active in DeviceSpy.seen), DeviceSpy.seen
    assert not ACTIVE


def test_every_array_a_model_makes_is_on_its_device(xpnet_backend, digits):
    X, y = digits[0][:64], digits[1][:64]
    model = xpnet.Sequential([xpnet.Dense(64, 8), xpnet.ReLU(), xpnet.Dropout(0.2), xpnet.Dense(8, 10)],
                             optimizer=xpnet.Adam(), backend=xpnet_backend, dtype="float32", seed=0)
    model.fit(X, y, epochs=1, batch_size=32)
    st = model.state
    arrays = [*st.params.values(), *(b for bufs in st.opt_state.values() for b in bufs.values()),
              *st.grads.values(), *(a for a in model.draw_noise(4) if a is not None)]
    assert all(xpnet_backend.owns(a) for a in arrays)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_resume_after_an_epochs_last_step(xpnet_backend, digits, tmp_path, dtype):
    """Stopped right after the last step of an epoch, the resumed epoch has no step left: its accuracy count
    is a host float that must become an array on the model's device (torch CUDA failed there)."""
    X, y = digits[0][:96], digits[1][:96]

    def make():
        return xpnet.Sequential([xpnet.Dense(64, 16), xpnet.Tanh(), xpnet.Dense(16, 10)], backend=xpnet_backend,
                                dtype=dtype, seed=0)

    class StopAtEpochEnd:
        def on_batch_end(self, model, step, total):
            model.stop_requested = step == total

    full = make().fit(X, y, epochs=2, batch_size=32)
    part = make()
    with pytest.raises(xpnet.TrainingInterrupted):
        part.fit(X, y, epochs=2, batch_size=32, callbacks=[StopAtEpochEnd()])
    assert (part.state.epoch, part.state.batch) == (0, 3)
    again = xpnet.load(part.save(tmp_path / "m.safetensors"), backend=xpnet_backend)
    again.fit(X, y, epochs=2, batch_size=32, resume=True)
    assert again.history_["loss"] == full.history_["loss"] and again.history_["accuracy"] == full.history_["accuracy"]
    for k, v in full.parameters().items():
        assert np.array_equal(xpnet.to_numpy(again.parameters()[k]), xpnet.to_numpy(v))


def test_host_dropout_draws_go_through_the_asynchronous_transfer(monkeypatch, digits):
    calls = []
    model = xpnet.Sequential([xpnet.Dense(64, 8), xpnet.Dropout(0.5), xpnet.Dense(8, 10)], seed=0)
    original = type(model.bk).to_device_async

    def spy(self, host, dtype=None):
        calls.append(tuple(np.shape(host)))
        return original(self, host, dtype)

    monkeypatch.setattr(type(model.bk), "to_device_async", spy)
    model.fit(digits[0][:64], digits[1][:64], epochs=1, batch_size=32)
    assert calls == [(32, 8), (32, 8)]


def _native_dropout_model(bk, seed):
    return xpnet.Sequential([xpnet.Dense(64, 16), xpnet.ReLU(), xpnet.Dropout(0.5, host_rng=False),
                             xpnet.Dense(16, 10)], backend=bk, dtype="float64", seed=seed)


def test_backend_generator_follows_the_models_seed(xpnet_backend, digits):
    X, y = digits[0][:64], digits[1][:64]
    a, b, c = (_native_dropout_model(xpnet_backend, s).fit(X, y, epochs=1, batch_size=32) for s in (5, 5, 6))
    pa, pb, pc = (xpnet.to_numpy(m.parameters()["layers.0.weight"]) for m in (a, b, c))
    assert np.array_equal(pa, pb)
    c_same_init = _native_dropout_model(xpnet_backend, 6)
    assert not np.array_equal(xpnet.to_numpy(c.draw_noise(8)[2]), xpnet.to_numpy(a.draw_noise(8)[2]))
    assert c_same_init.state.native_rng is None  # made at the first draw, not before


def test_backend_generator_state_is_checkpointed(xpnet_backend, digits, tmp_path):
    if not xpnet_backend.native_rng_restorable:
        pytest.skip(f"{xpnet_backend.name}'s generator state cannot be saved (documented)")
    X, y = digits[0][:128], digits[1][:128]
    full = _native_dropout_model(xpnet_backend, 3).fit(X, y, epochs=3, batch_size=32)
    part = _native_dropout_model(xpnet_backend, 3).fit(X, y, epochs=1, batch_size=32)
    again = xpnet.load(part.save(tmp_path / "m.safetensors"), backend=xpnet_backend)
    assert again.checkpoint_meta_["state"]["native_rng"] is not None
    again.state.settings["epochs"] = 3
    again.fit(X, y, epochs=3, batch_size=32, resume=True)
    for k, v in full.parameters().items():
        assert np.array_equal(xpnet.to_numpy(again.parameters()[k]), xpnet.to_numpy(v)), k


def test_a_generator_that_cannot_be_saved_does_not_replay_its_masks_after_a_resume(monkeypatch, digits, tmp_path):
    """CuPy's generator (curand) cannot export its state (native_rng_restorable False, imitated here on NumPy): a
    resumed run reseeded it from the model's seed and silently drew the masks of step 0 again. Now the checkpoint
    says a generator was in use, the load warns, and the new stream is seeded from the seed and the update count."""
    from xpnet.backend._numpy import NumpyBackend
    monkeypatch.setattr(NumpyBackend, "native_rng_restorable", False)
    X, y = digits[0][:64], digits[1][:64]
    first_masks = xpnet.to_numpy(_native_dropout_model("numpy", 3).draw_noise(32)[2])
    part = _native_dropout_model("numpy", 3).fit(X, y, epochs=1, batch_size=32)
    with pytest.warns(UserWarning, match=r"state cannot be saved; resumed, .* update count 2"):
        again = xpnet.load(part.save(tmp_path / "m.safetensors"))
    assert not np.array_equal(xpnet.to_numpy(again.draw_noise(32)[2]), first_masks)
    again.fit(X, y, epochs=2, batch_size=32, resume=True)


def test_another_libraries_generator_state_is_a_warning_not_an_error(digits, tmp_path):
    pytest.importorskip("torch")
    X, y = digits[0][:64], digits[1][:64]
    path = _native_dropout_model("torch", 3).fit(X, y, epochs=1, batch_size=32).save(tmp_path / "t.safetensors")
    with pytest.warns(UserWarning, match="another library's generator"):
        model = xpnet.load(path, backend="numpy")
    model.fit(X, y, epochs=2, batch_size=32, resume=True)


class _Payload:
    pass


def test_out_of_memory_frees_the_failed_step(monkeypatch, digits):
    model = xpnet.Sequential([xpnet.Dense(64, 10)], seed=0)
    refs = []

    def boom(*args, **kwargs):
        payload = _Payload()  # stands for the failed step's device arrays
        refs.append(weakref.ref(payload))
        raise MemoryError("Unable to allocate 8.0 GiB")

    monkeypatch.setattr(model, "train_step", boom)
    with pytest.raises(xpnet.OutOfMemory) as info:
        model.fit(*digits[:2], epochs=1)
    assert info.value.__context__ is None and info.value.__cause__ is None
    gc.collect()
    assert refs[0]() is None  # nothing keeps the failed attempt's frames alive


def test_a_state_of_the_wrong_kind_is_refused_clearly():
    bk = xpnet.backend("numpy")
    rng = bk.make_native_rng(1)
    with pytest.raises(BackendError, match="expected a native RNG state"):
        rng.set_state({"generator": "something-else", "state": 1})


@xpnet.register("tests.PrecisionSpy.v1")
class PrecisionSpy(xpnet.Layer):
    """Identity that records JAX's default matmul precision whenever it runs on JAX arrays (or is traced into a
    compiled step)."""

    elementwise = True
    seen: list = []

    def __init__(self):
        pass

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        import jax
        if isinstance(x, jax.Array):  # not parity's NumPy reference
            PrecisionSpy.seen.append(jax.config.jax_default_matmul_precision)
        return x, lambda dy: (dy, {})


def test_jax_float32_products_are_pinned_to_full_precision(digits):
    """JAX's default precision computes float32 products in TF32 on GPUs that have it (A100, H100), unlike
    torch and CuPy as xpnet runs them: the JAX backend pins 'highest' for the model's work (fit eager and
    compiled, predict, parity), where it promises the same results as the other backends."""
    jax = pytest.importorskip("jax")
    X, y, Xt, _ = digits

    def make(bk="jax", dtype="float32", compile=False):
        return xpnet.Sequential([xpnet.Dense(64, 8), PrecisionSpy(), xpnet.Dense(8, 10)], backend=bk, dtype=dtype,
                                seed=0, compile=compile)

    PrecisionSpy.seen = []
    make().fit(X[:64], y[:64], epochs=1, batch_size=32).predict(Xt[:5])
    make(compile=True).fit(X[:64], y[:64], epochs=1, batch_size=32)
    xpnet.parity(make, X[:40], y[:40], backends=["jax"], dtypes=["float32"], steps=2, compile=True)
    assert len(PrecisionSpy.seen) >= 8 and set(PrecisionSpy.seen) == {"highest"}, PrecisionSpy.seen
    bk = make().bk
    a = bk.xp.ones((2, 2), dtype=bk.xp.float32)
    with bk:
        assert "Precision.HIGHEST" in str(jax.make_jaxpr(bk.xp.matmul)(a, a))
    assert jax.config.jax_default_matmul_precision is None  # only while the backend is active
