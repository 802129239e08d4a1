"""Every array the library creates lands on the model's device, checked on a CPU (issue 24).

torch puts an array made without device= on its *default* device, which is the CPU whatever device the model is on
(`torch.cuda.device(i)` does not change it), so on a GPU such an array is on the wrong device. On a CPU-only torch,
`torch.set_default_device("meta")` makes the same mistake fail loudly: a meta tensor has no data, so mixing it with
the model's CPU tensors or copying it to the host raises. JAX with two CPU devices stands in for a second GPU
(tests/jax_second_cpu_worker.py, in a subprocess because XLA_FLAGS must be set before jax is imported)."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.distributed.data_parallel import DataParallel
from xpnet.data.datasets import load_digits
from fakes import OneOfTwo
from xpnet.training import evaluate

HERE = Path(__file__).resolve().parent


@pytest.fixture
def torch_default_meta():
    """torch's default device set to "meta" for the test: a tensor made without device= has no data."""
    torch = pytest.importorskip("torch")
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    assert torch.zeros(1).device.type == "meta"
    yield torch
    torch.set_default_device(None if previous.type == "cpu" else previous)


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X[:96] / 16.0, y[:96], Xt[:16] / 16.0, yt[:16]


def _model(dtype="float32", batchnorm=True):
    layers = [xpnet.Dense(64, 16), *([xpnet.BatchNorm()] if batchnorm else []), xpnet.ReLU(), xpnet.Dropout(0.2),
              xpnet.Dropout(0.1, host_rng=False), xpnet.Dense(16, 10)]
    return xpnet.Sequential(layers, optimizer=xpnet.SGD(0.01, momentum=0.9), l1=1e-4, l2=1e-3, backend="torch",
                            dtype=dtype, seed=0, preprocessing="standardize")


def test_torch_arrays_are_made_on_the_models_device_not_the_default_one(torch_default_meta, digits, tmp_path):
    """fit (input scaling, validation, early stopping, accumulation, both Dropout generators, BatchNorm), predict,
    evaluate, a checkpoint's resume,
    parity, data-parallel fit and steps with an empty shard, and distributed parity, on torch CPU under a "meta"
    default device: any array made without device= is a meta tensor and fails."""
    X, y, Xt, yt = digits
    options = dict(epochs=2, batch_size=32, validation_split=0.25, accumulate=2,
                   early_stopping=xpnet.EarlyStopping(patience=1, min_delta=10.0))  # stops, restores the best
    m = _model()
    m.fit(X, y, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a native generator state restored onto the meta device warned here)
        again = xpnet.load(m.save(tmp_path / "m.safetensors"), backend="torch")
    again.fit(X, y, **dict(options, epochs=3), resume=True)
    m.predict(Xt)
    m.score(Xt, yt)
    with m.bk:
        evaluate(m, m.as_input(Xt), m.as_targets(yt, 16)[0])
    arrays = [*m.state.params.values(), *m.state.layer_state.values(), *m.draw_noise(4)[3:5],
              *(b for bufs in m.state.opt_state.values() for b in bufs.values())]
    assert all(m.bk.owns(a) for a in arrays)

    for model in ("mlp", "cnn"):
        report = xpnet.parity(backends=["torch"], dtypes=("float32",), steps=2, model=model)
        assert report["passed"], report["results"]

    dp_model = _model(batchnorm=False)
    dp_model.fit(X[:65], y[:65], epochs=1, batch_size=32, distributed=OneOfTwo())  # last minibatch: 1 row, none here
    with dp_model.bk:
        dp = DataParallel(dp_model, OneOfTwo())
        Yd, Ld = dp_model.as_targets(y[:4], 4)
        value, correct, _, grads = dp.step(dp_model.as_input(X[:4]), Yd, Ld, dp_model.bk.asarray(np.array([0])))
    assert all(dp_model.bk.owns(a) for a in (value, correct, *grads.values()))

    from xpnet.distributed.parity import distributed_parity
    report = distributed_parity(OneOfTwo(), backends=("torch",), dtypes=("float32",), steps=2, batch_size=3)
    assert report["results"][0]["path"] == "mpi"  # the probe of the path was a meta (on CUDA: a CPU) tensor


def test_torch_host_staging_buffer_is_on_the_cpu(torch_default_meta):
    """to_device_async's staging buffer (pinned on CUDA) is a CPU tensor whatever torch's default device."""
    bk = xpnet.backend("torch")
    staged = bk._staged(np.arange(6.0).reshape(2, 3), torch_default_meta.float32, pin=False)
    assert staged.device.type == "cpu" and staged.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_jax_on_a_second_cpu_device_keeps_everything_there():
    """JAX with two CPU devices, the backend on the second (as on cuda:1): the model's parameters, optimizer and
    layer state, gradients, noise, generator key and outputs on it; `with bk:` makes it JAX's default device;
    parity and data-parallel steps (an empty shard included) run there."""
    pytest.importorskip("jax")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(HERE.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, str(HERE / "jax_second_cpu_worker.py")], capture_output=True, text=True,
                          timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], out["misplaced"]
