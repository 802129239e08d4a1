"""What a jitted training step would buy on JAX: case C (784-50-10 sigmoid, softmax CE, SGD lr 0.1,
batch 32, float32) and case B, written as one pure function and compiled with jax.jit, against xpnet's
eager JAX backend on the same data, in one process.

    python benchmarks/jax_jit_estimate.py [--data-dir DIR] [--case C|B]

xpnet's training loop is eager by design (one implementation for every backend); this measures the
ceiling a jit-compiled step on the JAX backend could reach, to size that option.
"""
import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--case", default="C", choices=["B", "C"])
    a = ap.parse_args()
    import jax
    import jax.numpy as jnp

    import xpnet
    from xpnet.data.datasets import load_mnist
    X, y, _, _ = load_mnist("mnist", a.data_dir, download=False)
    X = (X / np.float32(255)).astype(np.float32)
    y = y.astype(np.int64)
    sizes, act, batch, lr, mom = ((784, 50, 10), "sigmoid", 32, 0.1, 0.0) if a.case == "C" else \
        ((784, 512, 512, 10), "relu", 128, 0.1, 0.9)
    layers = xpnet.mlp_layers(sizes, act, init="glorot_uniform")
    model = xpnet.Sequential(layers, optimizer=xpnet.SGD(lr, momentum=mom), backend="jax", dtype="float32", seed=0)
    params0 = [np.asarray(v) for v in model.parameters().values()]

    model.fit(X[:batch * 20], y[:batch * 20], epochs=1, batch_size=batch)  # warm-up
    model.fit(X, y, epochs=1, batch_size=batch)
    eager = model.history_["seconds"][0]

    def forward(ps, x):
        for i in range(0, len(ps), 2):
            x = x @ ps[i].T + ps[i + 1]
            if i < len(ps) - 2:
                x = jax.nn.sigmoid(x) if act == "sigmoid" else jnp.maximum(x, 0)
        return x

    def loss(ps, x, yb):
        z = forward(ps, x)
        return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(z), axis=1))

    @jax.jit
    def step(ps, bufs, Xd, Yd, idx):
        xb, yb = jnp.take(Xd, idx, axis=0), jnp.take(Yd, idx, axis=0)
        g = jax.grad(loss)(ps, xb, yb)
        bufs = [mom * b + gi for b, gi in zip(bufs, g)] if mom else g
        return [p - lr * b for p, b in zip(ps, bufs)], bufs

    Xd, Yd = jnp.asarray(X), jnp.asarray(np.eye(10, dtype=np.float32)[y])
    ps = [jnp.asarray(p) for p in params0]
    bufs = [jnp.zeros_like(p) for p in ps]
    n = X.shape[0] // batch * batch
    order = np.random.default_rng(0).permutation(X.shape[0])[:n].reshape(-1, batch)
    ps, bufs = step(ps, bufs, Xd, Yd, jnp.asarray(order[0]))  # compile
    jax.block_until_ready(ps)
    idx_all = jnp.asarray(order)
    t0 = time.perf_counter()
    for i in range(order.shape[0]):
        ps, bufs = step(ps, bufs, Xd, Yd, idx_all[i])
    jax.block_until_ready(ps)
    jitted = time.perf_counter() - t0
    print(f"case {a.case} on JAX {jax.__version__} ({jax.devices()[0].platform}): xpnet eager {eager:.3f} s/epoch, "
          f"one jitted step per minibatch {jitted:.3f} s/epoch ({eager / jitted:.1f}x faster)")


if __name__ == "__main__":
    main()
