"""The NumPy rows: the hand-written loop (numpy_loop.py) every ratio is taken against, and the GEMM floor (only
the layer matrix products of one epoch's minibatch shapes, preallocated outputs)."""
from __future__ import annotations

import time

from .cases import N_TRAIN, onehot


def run_numpy_loop(case, dtype, X, y, epochs, device):
    from .numpy_loop import NumpyMLP
    book = case.book_args
    net = NumpyMLP(case.initial_params(), case.hidden, case.loss, case.reduction, case.lr, case.momentum,
                   alpha=book.get("alpha", 0.0), l2=book.get("l2", 0.0), dtype=dtype)
    Y = onehot(y, case.sizes[-1], dtype)
    warm = case.warm_bounds(X.shape[0])
    net.epoch(X[:warm[-1][1]], Y[:warm[-1][1]], warm)
    bounds, seconds = case.bounds(X.shape[0]), []
    for _ in range(epochs):
        t0 = time.perf_counter()
        net.epoch(X, Y, bounds)
        seconds.append(time.perf_counter() - t0)
    return seconds, None


def run_gemm_floor(case, dtype, X, y, epochs, device):
    import numpy as np
    rng = np.random.default_rng(0)
    bounds = case.bounds(N_TRAIN)
    m = max(e - s for s, e in bounds)
    L = [(rng.random((m, k), dtype), rng.random((o, k), dtype), rng.random((m, o), dtype),
          np.empty((m, o), dtype), np.empty((o, k), dtype), np.empty((m, k), dtype)) for k, o in case.layers]
    # case F's convolutions as xpnet computes them: columns (C·k·k, OH·OW·N); W @ cols, dy @ cols.T, W.T @ dy
    C = [(rng.random((o, ckk), dtype), rng.random((ckk, m * p), dtype), rng.random((o, m * p), dtype),
          np.empty((o, m * p), dtype), np.empty((o, ckk), dtype), np.empty((ckk, m * p), dtype), p, dx)
         for o, ckk, p, dx in ((6, 25, 784, False), (16, 150, 100, True))] if case.conv else []

    def epoch(bounds):
        for s, e in bounds:
            b = e - s
            for w, cols, dy, y_out, dw_out, dcols_out, p, dx in C:
                np.matmul(w, cols[:, :b * p], out=y_out[:, :b * p])
                np.matmul(dy[:, :b * p], cols[:, :b * p].T, out=dw_out)
                if dx:
                    np.matmul(w.T, dy[:, :b * p], out=dcols_out[:, :b * p])
            for i, (x, w, dy, y_out, dw_out, dx_out) in enumerate(L):
                np.matmul(x[:b], w.T, out=y_out[:b])
                np.matmul(dy[:b].T, x[:b], out=dw_out)
                if i or case.conv:
                    np.matmul(dy[:b], w, out=dx_out[:b])

    epoch(case.warm_bounds(N_TRAIN))
    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch(bounds)
        seconds.append(time.perf_counter() - t0)
    return seconds, None
