"""Compiled training steps (compile=True, jax.jit): one compiled call per minibatch, the same results as the
eager step, no retrace when the learning rate or step count changes, clear refusals."""
import json
import subprocess
import sys

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.parity import rel_diff

pytest.importorskip("jax")


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X / 16.0, y, Xt / 16.0, yt


def make(compile, dtype="float64", optimizer=None, extra=(), **kw):
    return xpnet.Sequential([xpnet.Dense(64, 32), xpnet.Tanh(), *extra, xpnet.Dense(32, 10)],
                            optimizer=optimizer or xpnet.Adam(3e-3), l1=1e-5, l2=1e-4, backend="jax", dtype=dtype,
                            seed=0, compile=compile, **kw)


def worst(a, b):
    return max(rel_diff(xpnet.to_numpy(a.parameters()[k]), xpnet.to_numpy(v))[1] for k, v in b.parameters().items())


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-4)])
def test_compiled_equals_eager(digits, dtype, tol):
    X, y = digits[0][:500], digits[1][:500]
    kw = dict(extra=[xpnet.Dropout(0.2)], schedule=xpnet.SCHEDULES["step"](1, 0.5))
    eager = make(False, dtype, **kw).fit(X, y, epochs=3, batch_size=64)
    compiled = make(True, dtype, **kw).fit(X, y, epochs=3, batch_size=64)
    assert worst(compiled, eager) <= tol
    np.testing.assert_allclose(compiled.history_["loss"], eager.history_["loss"], rtol=tol)
    assert compiled.state.step == eager.state.step == 3 * 8
    assert compiled.history_["lr"] == [0.003, 0.0015, 0.00075]


def test_no_retrace_per_step_or_epoch(digits):
    """3 epochs of 8 steps with a learning rate that changes every epoch: one trace for the full minibatch,
    one for the last short one (500 = 7 x 64 + 52), none after."""
    X, y = digits[0][:500], digits[1][:500]
    model = make(True, optimizer=xpnet.SGD(0.1, momentum=0.9), schedule=xpnet.SCHEDULES["step"](1, 0.5))
    model.fit(X, y, epochs=3, batch_size=64)
    assert model.compile_traces_ == 2
    model.fit(X, y, epochs=2, batch_size=64)
    assert model.compile_traces_ == 2
    model.fit(X, y, epochs=1, batch_size=100, accumulate=2)  # a new shape and accumulation: traced once more
    assert model.compile_traces_ == 3


def test_compiled_checkpoint_loads_eagerly_and_resumes(digits, tmp_path):
    X, y, Xt, _ = digits
    X, y = X[:300], y[:300]
    full = make(True).fit(X, y, epochs=3, batch_size=50)
    part = make(True).fit(X, y, epochs=1, batch_size=50)
    path = part.save(tmp_path / "c.safetensors")
    eager = xpnet.load(path, backend="numpy")
    np.testing.assert_array_equal(eager.predict(Xt), xpnet.to_numpy(part.predict(Xt)))
    again = xpnet.load(path, backend="jax", compile=True)
    again.fit(X, y, epochs=3, batch_size=50, resume=True)
    assert worst(again, full) == 0.0  # compiled -> compiled: bit for bit
    on_eager = xpnet.load(path, backend="jax")
    on_eager.fit(X, y, epochs=3, batch_size=50, resume=True)
    assert worst(on_eager, full) <= 1e-10  # compiled -> eager: within the lockstep tolerance


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_backends_without_a_compiler_refuse(backend):
    if backend == "array_api_strict":
        pytest.importorskip("array_api_strict")
    with pytest.raises(xpnet.BackendError, match=r"has no compiler, so compile=True cannot be used with it; "
                                                 r"compiled training runs on: jax, torch"):
        xpnet.Sequential([xpnet.Dense(4, 2)], backend=backend, compile=True)


@xpnet.register("tests.HostWork.v1")
class HostWork(xpnet.Layer):
    """A user layer that does host work on its input (float() of an array): fine eagerly, not traceable."""

    elementwise = True

    def __init__(self):
        pass

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        scale = 1.0 / (1.0 + float(x[0, 0] * 0.0))
        return x * scale, lambda dy: (dy * scale, {})


def test_host_work_in_a_layer_is_named(digits):
    X, y = digits[0][:100], digits[1][:100]
    model = xpnet.Sequential([xpnet.Dense(64, 8), HostWork(), xpnet.Dense(8, 10)], backend="jax", seed=0,
                             compile=True)
    with pytest.raises(xpnet.InputError, match=r"compile=True: layers.1 HostWork.forward cannot be traced by the "
                                               r"jax compiler: it does host work on an array"):
        model.fit(X, y, epochs=1)
    eager = xpnet.Sequential([xpnet.Dense(64, 8), HostWork(), xpnet.Dense(8, 10)], backend="jax", seed=0)
    eager.fit(X, y, epochs=1)  # eagerly it trains


def test_cli_compile(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "xpnet", "train", "--epochs", "2", "--quiet", "--json",
                                     *a], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    out = run("--backend", "jax", "--compile")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["test_accuracy"] > 0.9
    out = run("--backend", "numpy", "--compile")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "has no compiler, so compile=True cannot be used with it; compiled training runs on: jax, torch" in out.stderr


def test_torch_compile_equals_eager_and_does_not_recompile(digits):
    pytest.importorskip("torch")
    X, y = digits[0][:300], digits[1][:300]

    def tmake(compile):
        return xpnet.Sequential([xpnet.Dense(64, 16), xpnet.ReLU(), xpnet.Dense(16, 16), xpnet.Tanh(),
                                 xpnet.Dense(16, 10)], optimizer=xpnet.Adam(3e-3),
                                l2=1e-4, schedule=xpnet.SCHEDULES["step"](1, 0.5), backend="torch", dtype="float64",
                                seed=0, compile=compile)

    from torch._dynamo.utils import counters
    eager = tmake(False).fit(X, y, epochs=2, batch_size=64)
    counters.clear()
    compiled = tmake(True).fit(X, y, epochs=2, batch_size=64)
    assert worst(compiled, eager) <= 1e-10
    # the whole step is one graph: ReLU's maximum(x, 0.0) broke it in every ReLU (array-api-compat promotes a
    # Python scalar through torch.result_type, which dynamo cannot put in a graph): 38 graphs for LeNet-5
    assert not counters["graph_break"], dict(counters["graph_break"])
    traces = compiled.compile_traces_
    assert traces >= 2  # the full minibatch and the short last one (a fresh inductor cache may compile one twice)
    compiled.fit(X, y, epochs=2, batch_size=64)  # new learning rates and step counts: nothing recompiles
    assert compiled.compile_traces_ == traces


def test_gradcheck_works_on_a_compiled_model(digits):
    X, y = digits[0][:12], np.arange(12) % 10
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = xpnet.gradcheck(make(True), X, y)
    assert report["passed"] and report["overall_relative_error"] <= 1e-7


def test_torch_scalar_args_are_filled_on_the_device_without_a_host_copy(monkeypatch):
    """The compiled step's host floats (learning rate, Adam's bias corrections) become 0-d float64 tensors made
    with torch.full, a fill kernel; torch.tensor(v, device='cuda') copies from pageable host memory and waits for
    the GPU (pytorch#120996), a sync per scalar per step. On the CPU the call itself is what can be checked."""
    torch = pytest.importorskip("torch")
    from xpnet.backend import backend
    bk = backend("torch")
    made = []
    real_full = torch.full

    def full(*args, **kw):
        made.append(kw.get("device"))
        return real_full(*args, **kw)

    def tensor(*args, **kw):
        raise AssertionError(f"torch.tensor{args} {kw} in scalar_args: a blocking host-to-device copy on CUDA")

    monkeypatch.setattr(torch, "full", full)
    monkeypatch.setattr(torch, "tensor", tensor)
    hyper = xpnet.Adam(1e-3).hyper(1e-3, 3)
    got = bk.scalar_args(hyper)
    assert set(got) == set(hyper) and made == [bk.native_device] * len(hyper)
    for k, v in got.items():
        assert v.shape == () and v.dtype == torch.float64 and v.device == bk.native_device and float(v) == hyper[k]


def test_torch_compiled_step_takes_the_minibatch_not_the_data(digits, monkeypatch):
    """Under CUDA graphs (torch.compile mode reduce-overhead) every input that is not static is copied into the
    graph's buffers on each replay (torch/_inductor/cudagraph_trees.py: torch._foreach_copy_ over
    non_static_input_idx): the torch step must be given the gathered minibatch, not the device-resident data
    set. What the step is called with is checked here with the step run uncompiled."""
    pytest.importorskip("torch")
    from xpnet.backend._torch import TorchBackend
    calls = []

    def spy_compile(self, fn, donate_argnums=(), static_argnums=(), on_trace=None):
        def step(*args):
            calls.append([tuple(a.shape) if hasattr(a, "shape") else a for a in args[2:5]])
            return fn(*args)
        return step

    monkeypatch.setattr(TorchBackend, "compile", spy_compile)
    X, y = digits[0][:200], digits[1][:200]

    def tmake(compile):
        return xpnet.Sequential([xpnet.Dense(64, 16), xpnet.Tanh(), xpnet.Dense(16, 10)], optimizer=xpnet.Adam(3e-3),
                                backend="torch", dtype="float64", seed=0, compile=compile)

    model = tmake(True).fit(X, y, epochs=1, batch_size=64)
    # fit's targets are the minibatch's class indices (issue 28: no one-hot rows of the data set on the device)
    assert calls == [[(64, 64), (64,), None]] * 3 + [[(8, 64), (8,), None]], calls
    assert worst(model, tmake(False).fit(X, y, epochs=1, batch_size=64)) <= 1e-12
    calls.clear()
    xpnet.parity(lambda bk, dtype: tmake(False), X[:40], y[:40], backends=["torch"], steps=2, batch_size=16,
                 compile=True)
    assert calls and all(c == [(16, 64), (16, 10), None] for c in calls), calls
