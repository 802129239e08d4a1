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
    # the case's convolutions as xpnet computes them: columns (C·k·k, OH·OW·N); W @ cols, dy @ cols.T, and for
    # the input gradient W.T @ dy, or Wflip (C, O·k·k) @ columns of dy (O·k·k, H·W·N) where stride 1 keeps the size
    C = []
    for o, c, kk, p, dx, same in conv_gemm_shapes(case):
        ckk = c * kk
        dx_gemm = (rng.random((c, o * kk), dtype), rng.random((o * kk, m * p), dtype), np.empty((c, m * p), dtype)) \
            if same else (None, None, np.empty((ckk, m * p), dtype))
        C.append((rng.random((o, ckk), dtype), rng.random((ckk, m * p), dtype), rng.random((o, m * p), dtype),
                  np.empty((o, m * p), dtype), np.empty((o, ckk), dtype), dx_gemm, p, dx))

    def epoch(bounds):
        for s, e in bounds:
            b = e - s
            for w, cols, dy, y_out, dw_out, (wf, dycols, dx_out), p, dx in C:
                np.matmul(w, cols[:, :b * p], out=y_out[:, :b * p])
                np.matmul(dy[:, :b * p], cols[:, :b * p].T, out=dw_out)
                if dx and wf is not None:
                    np.matmul(wf, dycols[:, :b * p], out=dx_out[:, :b * p])
                elif dx:
                    np.matmul(w.T, dy[:, :b * p], out=dx_out[:, :b * p])
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


def conv_gemm_shapes(case) -> list[tuple]:
    """(O, C, kh·kw, OH·OW, input gradient, same size) of every Conv2D of a convolutional case's network, nested
    ones included, in order (the first takes no input gradient): built with xpnet's public API, as the xpnet
    rows build it. Empty for a case without convolutions."""
    if not case.conv:
        return []
    import xpnet
    if case.resnet:
        from xpnet.models.presets import resnet_fashion_layers as layers
    else:
        from xpnet.models.presets import lenet5_layers as layers
    from xpnet.layers.combinators import walk
    model = xpnet.Sequential([xpnet.deserialize(s, "layer") for s in layers(10)], input_shape=(1, 28, 28))
    convs = []
    for leaf in (leaf for layer in model.layers for _, leaf in walk(layer) if isinstance(leaf, xpnet.Conv2D)):
        (kh, kw), (c, h, w), (o, oh, ow) = leaf.kernel, leaf.input_shape, leaf.output_shape
        convs.append((o, c, kh * kw, oh * ow, bool(convs), leaf.strides == (1, 1) and (oh, ow) == (h, w)))
    return convs
