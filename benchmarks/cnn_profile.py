"""Where a LeNet-5 training step's time goes (case F: MNIST-shaped input, minibatch 128, float32), per backend.

    python benchmarks/cnn_profile.py                      # numpy, 60 timed steps after 5 warm-up steps
    python benchmarks/cnn_profile.py --backends numpy,torch --steps 30

Every layer's forward and backward is wrapped with a timer (device work finished before each clock read
where the backend needs it), and inside Conv2D the im2col (`Conv2D._columns`) and col2im (`_patches.col2im`
called from Conv2D._input_grad) are timed apart, so a step splits into: im2col, conv matmul (the rest of
Conv2D: the GEMMs, bias, reshapes), col2im, pooling (MaxPool2D forward and backward, its col2im included),
ReLU, dense, and the rest (loss, optimizer update, framework overhead: the step's time minus the layers').
The split adds a clock read per call, so its total is a little above an untimed step. Per step, ms: the median
and, on a shared machine, the minimum (the least disturbed step).
The GEMM floor: the same step's matrix products alone (NumPy, preallocated outputs, the column layout).

    python benchmarks/cnn_profile.py --memory             # what one NumPy step holds (tracemalloc)

--memory: NumPy memory of one training step beyond the model and the minibatch: what is held after the
forward (the backward closures' arrays: activations, the im2col columns) and the peak during the backward.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xpnet  # noqa: E402
from xpnet.models.presets import lenet5_layers  # noqa: E402
from xpnet.layers import _patches, conv  # noqa: E402


def lenet(backend: str, batch: int):
    layers = [xpnet.deserialize(s, "layer") for s in lenet5_layers(10)]
    return xpnet.Sequential(layers, optimizer=xpnet.SGD(0.05, momentum=0.9), backend=backend, seed=0,
                            input_shape=(1, 28, 28))


def gemm_floor_ms(batch: int, steps: int) -> tuple[float, float]:
    """LeNet-5's matrix products in the column layout, one step, NumPy float32, outputs preallocated."""
    rng = np.random.default_rng(0)
    f = np.float32
    shapes = []  # (a, b) operand shapes of a @ b
    p1, p2 = batch * 28 * 28, batch * 10 * 10
    shapes += [((6, 25), (25, p1)), ((6, p1), (p1, 25))]                        # conv1: y, dW (no dx)
    shapes += [((16, 150), (150, p2)), ((16, p2), (p2, 150)), ((150, 16), (16, p2))]  # conv2: y, dW, dcols
    for k, o in ((400, 120), (120, 84), (84, 10)):                               # dense: y, dW, dx
        shapes += [((batch, k), (k, o)), ((o, batch), (batch, k)), ((batch, o), (o, k))]
    ops = [(rng.random(a, dtype=f), rng.random(b, dtype=f), np.empty((a[0], b[1]), f)) for a, b in shapes]
    for a, b, out in ops:
        np.matmul(a, b, out=out)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        for a, b, out in ops:
            np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * min(times)


def profile(backend: str, batch: int, steps: int, warmup: int) -> dict:
    model = lenet(backend, batch)
    bk = model.bk
    sync = (lambda a: bk.block(a)) if hasattr(bk, "block") else (lambda a: None)
    spent = defaultdict(float)
    clock = time.perf_counter

    def category(layer) -> str:
        return {"Conv2D": "conv matmul", "MaxPool2D": "pooling", "ReLU": "relu", "Dense": "dense"}.get(
            type(layer).__name__, "other layers")

    def timed(fn, what, sync_result=True):
        def wrapper(*a, **k):
            t0 = clock()
            out = fn(*a, **k)
            sync(out[0] if isinstance(out, tuple) else out) if sync_result else None
            spent[what] += clock() - t0
            return out
        return wrapper

    for layer in model.layers:
        what = category(layer)
        forward = layer.forward

        def fwd(*a, _forward=forward, _what=what, **k):
            t0 = clock()
            y, back = _forward(*a, **k)
            sync(y)
            spent[_what] += clock() - t0

            def back_timed(dy):
                t1 = clock()
                dx, grads = back(dy)
                for g in list(grads.values()) + ([dx] if dx is not None else []):
                    sync(g)
                spent[_what] += clock() - t1
                return dx, grads
            return y, back_timed
        layer.forward = fwd
    # inside Conv2D: im2col and col2im, taken out of "conv matmul" below
    columns, input_grad = conv.Conv2D._columns, conv.Conv2D._input_grad
    conv.Conv2D._columns = timed(columns, "im2col")
    col2im = _patches.col2im

    def timed_input_grad(self, xp, w2, dy2, n, out):
        conv.col2im = timed(col2im, "col2im")
        try:
            return input_grad(self, xp, w2, dy2, n, out)
        finally:
            conv.col2im = col2im
    conv.Conv2D._input_grad = timed_input_grad

    rng = np.random.default_rng(0)
    X = model.as_input(rng.random((batch, 1, 28, 28), dtype=np.float32))
    Y, _ = model.as_targets(rng.integers(0, 10, batch), batch)
    rows = []
    try:
        with bk:
            for i in range(warmup + steps):
                spent.clear()
                t0 = clock()
                value, _ = model.train_step(X, Y)
                for p in model.parameters().values():
                    sync(p)
                float(value)
                total = clock() - t0
                if i >= warmup:
                    split = dict(spent)
                    split["conv matmul"] = split.get("conv matmul", 0.0) - split.get("im2col", 0.0) - \
                        split.get("col2im", 0.0)
                    split["rest (loss, update, overhead)"] = total - sum(split.values())
                    split["step"] = total
                    rows.append(split)
    finally:
        conv.Conv2D._columns, conv.Conv2D._input_grad = columns, input_grad
    keys = ["step", "im2col", "conv matmul", "col2im", "pooling", "relu", "dense", "rest (loss, update, overhead)"]
    return {k: (1000 * statistics.median(r.get(k, 0.0) for r in rows), 1000 * min(r.get(k, 0.0) for r in rows))
            for k in keys}


def memory_mib(batch: int) -> dict:
    """tracemalloc over one NumPy forward and backward of LeNet-5 (float32), the model and inputs excluded."""
    import tracemalloc
    model = lenet("numpy", batch)
    rng = np.random.default_rng(0)
    X = model.as_input(rng.random((batch, 1, 28, 28), dtype=np.float32))
    model.forward(X, training=True)  # warm-up: caches, lazily built helpers
    columns, sizes = conv.Conv2D._columns, []

    def sized(self, *a, **k):
        cols = columns(self, *a, **k)
        sizes.append(cols.nbytes)
        return cols
    conv.Conv2D._columns = sized
    try:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        z, backward = model.forward(X, training=True)
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        backward(np.ones_like(z) / batch)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    finally:
        conv.Conv2D._columns = columns
    params = sum(p.nbytes for p in model.parameters().values())
    mib = 2 ** 20
    return {"held after forward": held / mib, "columns per Conv2D": [c / mib for c in sizes],
            "peak in backward": peak / mib, "parameters": params / mib}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="numpy")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--memory", action="store_true", help="report one NumPy step's memory instead of its time")
    args = p.parse_args(argv)
    if args.memory:
        m = memory_mib(args.batch)
        print(f"LeNet-5, batch {args.batch}, float32, NumPy (MiB): held after forward {m['held after forward']:.1f} "
              f"(columns: {', '.join('%.1f' % c for c in m['columns per Conv2D'])}), peak in backward "
              f"{m['peak in backward']:.1f}, parameters {m['parameters']:.2f}")
        return 0
    results = {b: profile(b, args.batch, args.steps, args.warmup) for b in args.backends.split(",")}
    keys = list(next(iter(results.values())))
    print("| ms per step: median (min) | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join("%.2f (%.2f)" % results[b][k] for b in results) + " |")
    print("| GEMM floor (NumPy, same products) | %.2f (%.2f) |" % gemm_floor_ms(args.batch, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
