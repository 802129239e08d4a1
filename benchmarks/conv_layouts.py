"""Why Conv2D keeps its activations as (C, H, W, N) memory: im2col and col2im in two memory orders, NumPy.

    python benchmarks/conv_layouts.py            # LeNet-5's and fashion-cnn's convolutions, batch 128, float32

The same operations as `xpnet.layers.conv` (padding by one slice assignment, the kh·kw strided window views
stacked into columns; col2im as kh·kw slice-adds into a zero image), on two memory orders of the activation:

- (C, N, H, W): a window slice is runs of OW adjacent values (10 for LeNet-5's second convolution);
- (C, H, W, N), the one Conv2D uses: a window slice is runs of OW·N values.

NumPy's elementwise loops and copies pay a fixed cost per run, so the short runs dominate. Prints ms per call
(median of --calls after one warm-up), one row per convolution.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

# name: (in channels, image side, kernel, padding) at batch --batch
CONVS = {"lenet5 conv1": (1, 28, 5, 2), "lenet5 conv2": (6, 14, 5, 0),
         "fashion-cnn conv1": (1, 28, 3, 0), "fashion-cnn conv2": (32, 26, 3, 0)}


def _ms(fn, calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def im2col(x, k: int, pad: int, axes: tuple[int, int]):
    """x: 4-D with spatial axes `axes` -> the stacked (k·k) window views, as conv.Conv2D._columns does."""
    ah, aw = axes
    shape = list(x.shape)
    shape[ah] += 2 * pad
    shape[aw] += 2 * pad
    buf = np.zeros(shape, x.dtype)
    index = [slice(None)] * 4
    index[ah] = slice(pad, pad + x.shape[ah])
    index[aw] = slice(pad, pad + x.shape[aw])
    buf[tuple(index)] = x
    o = shape[ah] - k + 1
    views = []
    for i in range(k):
        for j in range(k):
            index = [slice(None)] * 4
            index[ah], index[aw] = slice(i, i + o), slice(j, j + o)
            views.append(buf[tuple(index)])
    return np.stack(views, axis=1)


def col2im(parts, shape, k: int, axes: tuple[int, int]):
    """The k·k parts added back at their offsets, as _patches.col2im's in-place form does."""
    ah, aw = axes
    out = np.zeros(shape, parts[0].dtype)
    o = parts[0].shape[ah]
    for q, part in enumerate(parts):
        i, j = divmod(q, k)
        index = [slice(None)] * 4
        index[ah], index[aw] = slice(i, i + o), slice(j, j + o)
        out[tuple(index)] += part
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--calls", type=int, default=30)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.batch
    print("| ms per call (median) | im2col (C, N, H, W) | im2col (C, H, W, N) | col2im (C, N, H, W) | "
          "col2im (C, H, W, N) |")
    print("|---|---:|---:|---:|---:|")
    for name, (c, side, k, pad) in CONVS.items():
        o = side + 2 * pad - k + 1
        full = side + 2 * pad
        x_cnhw = rng.standard_normal((c, n, side, side)).astype(np.float32)
        x_chwn = np.ascontiguousarray(x_cnhw.transpose(0, 2, 3, 1))
        parts_cnhw = list(rng.standard_normal((k * k, c, n, o, o)).astype(np.float32))
        parts_chwn = list(rng.standard_normal((k * k, c, o, o, n)).astype(np.float32))
        row = [_ms(lambda: im2col(x_cnhw, k, pad, (2, 3)), args.calls),
               _ms(lambda: im2col(x_chwn, k, pad, (1, 2)), args.calls),
               _ms(lambda: col2im(parts_cnhw, (c, n, full, full), k, (2, 3)), args.calls),
               _ms(lambda: col2im(parts_chwn, (c, full, full, n), k, (1, 2)), args.calls)]
        print(f"| {name} | " + " | ".join("%.2f" % v for v in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
