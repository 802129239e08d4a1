"""Run by tests/test_placement.py in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=2: JAX
then has two CPU devices, the closest CPU stand-in for cuda:1. A JAX backend on the *second* CPU device trains,
predicts, runs parity and data-parallel steps; every array the model holds or returns must be on that device,
and `with bk:` must make it JAX's default device (distributed parity is checked on torch, in test_placement.py).
Prints one JSON line: {"ok": bool, "misplaced": [...]}."""
import json
import os
import sys

import numpy as np

if "--xla_force_host_platform_device_count=2" not in os.environ.get("XLA_FLAGS", ""):
    sys.exit("run me with XLA_FLAGS=--xla_force_host_platform_device_count=2 (before jax is imported)")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import xpnet  # noqa: E402
from xpnet.distributed.data_parallel import DataParallel  # noqa: E402
from xpnet.data.datasets import load_digits  # noqa: E402
from fakes import OneOfTwo  # noqa: E402


assert len(jax.devices("cpu")) == 2, jax.devices("cpu")
bk = xpnet.Backend("jax", "cpu:1")  # what Backend("jax", "cuda:1") is on a machine with two GPUs
second, first = jax.devices("cpu")[1], jax.devices("cpu")[0]
assert bk.native_device == second and bk.device == "cpu:1" and jax.config.jax_default_device is None
misplaced = []


def check(what, arrays):
    for i, a in enumerate(arrays):
        if a is None or not hasattr(a, "devices"):
            continue
        if a.devices() != {second}:
            misplaced.append(f"{what}[{i}] on {sorted(map(str, a.devices()))}")


with bk:  # the context makes device 1 JAX's default for arrays made without device=
    check("made inside `with bk:`", [jnp.zeros(3)])
check("made outside `with bk:` (must be device 0)", [] if jnp.zeros(3).devices() == {first} else [jnp.zeros(3)])

X, y, Xt, yt = load_digits()
X, Xt = X[:64] / 16.0, Xt[:32] / 16.0
y, yt = y[:64], yt[:32]


def model(dtype="float32", batchnorm=False, backend=bk):
    layers = [xpnet.Dense(64, 16), *([xpnet.BatchNorm()] if batchnorm else []), xpnet.ReLU(), xpnet.Dropout(0.2),
              xpnet.Dropout(0.1, host_rng=False), xpnet.Dense(16, 10)]
    return xpnet.Sequential(layers, optimizer=xpnet.Adam(), l2=1e-3, backend=backend, dtype=dtype, seed=0)


# (the same few shapes throughout: eager JAX compiles each operation once per shape, most of this run's time)
m = model(batchnorm=True)
m.fit(X, y, epochs=1, batch_size=32, validation_data=(Xt, yt))
st = m.state
check("params", st.params.values())
check("optimizer state", [b for bufs in st.opt_state.values() for b in bufs.values()])
check("layer state", st.layer_state.values())
check("grads", st.grads.values())
check("noise", m.draw_noise(32))
check("native rng key", [st.native_rng._g])
check("predict_proba", [m.predict_proba(Xt)])
m.predict(Xt)
m.score(Xt, yt)

report = xpnet.parity(lambda b, dtype: model(dtype, backend=b), X, y, backends=[bk], dtypes=("float32",), steps=2,
                      batch_size=32)
if not report["passed"]:  # a committed array on another device raises in JAX: an error row
    misplaced.append(f"parity failed: {report['results']}")

dp_model = model()
with bk:
    dp = DataParallel(dp_model, OneOfTwo())
    Xd = dp_model.as_input(X)
    Yd, Ld = dp_model.as_targets(y, 64)
    value, correct, _, grads = dp.step(Xd, Yd, Ld, bk.asarray(np.arange(32)))
    check("data-parallel step", [value, correct, *grads.values()])
    value, correct, _, grads = dp.step(Xd, Yd, Ld, bk.asarray(np.array([0])))  # 1 row: rank 1's shard is empty
    check("data-parallel step (empty shard)", [value, correct, *grads.values()])
check("data-parallel params", dp_model.state.params.values())

print(json.dumps({"ok": not misplaced, "misplaced": misplaced}), flush=True)
