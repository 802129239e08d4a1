"""The xpnet rows: one model built from a case with the public API only (so that --baseline-ref can time an
older checkout with this code), trained `epochs` timed epochs after an untimed warm-up."""
from __future__ import annotations

import statistics
import time


def run_xpnet(case, backend, dtype, X, y, epochs, device, compile=False, compile_mode=None):
    """xpnet eager: a warm-up fit of three minibatches (the epoch's shapes), then `epochs` timed epochs.
    compile=True: no warm-up (a compiled step traces again for the full data's shape); epochs + 1 epochs, the
    first one (compiling) untimed and reported as compile_s, its time over the timed epochs' median."""
    import xpnet
    from .cases import MIXED
    n = X.shape[0]
    if dtype in MIXED:  # float32 master weights, 16-bit compute (issue 33)
        if case.book:
            raise RuntimeError(f"{dtype}: the book's NeuralNetMLP (case D) has no precision policy")
        dtype, kw_mixed = "float32", {"precision": dtype}
    else:
        kw_mixed = {}
    t_fit = time.perf_counter()
    nwarm = case.warm_bounds(n)[-1][1]
    kw, extra_epochs = {}, 0
    if compile:  # only then: an older checkout (--baseline-ref) has no compile= argument
        bk = xpnet.backend(backend, device)
        if compile_mode and hasattr(bk, "compile_mode"):
            bk.compile_mode = compile_mode
        backend, kw, extra_epochs = bk, {"compile": True}, 1
    if case.book:
        def build(**k):
            return xpnet.NeuralNetMLP(**dict(case.book_args, **k), backend=backend, device=device, dtype=dtype, **kw)
        if not compile:
            build(epochs=1, minibatches=3).fit(X[:nwarm], y[:nwarm])  # three 1200-row minibatches, as the epoch's
        nn = build(epochs=epochs + extra_epochs)
        t_fit = time.perf_counter()
        nn.fit(X, y)
        model = nn if isinstance(nn, xpnet.Sequential) else nn.model  # 0.1.0 wrapped one
    else:
        act = xpnet.Sigmoid if case.hidden == "sigmoid" else xpnet.ReLU
        layers, shape = [], {}
        if case.resnet:  # the resnet-fashion preset's ResNet (Residual, Chain and BatchNorm: since issue 30)
            from xpnet.models.presets import resnet_fashion_layers
            layers, shape = [xpnet.deserialize(s, "layer") for s in resnet_fashion_layers(10)], {"input_shape": (1, 28, 28)}
        elif case.conv:  # LeNet-5 as the lenet5 preset builds it (xpnet.models.presets; Conv2D and MaxPool2D since 0.2)
            try:
                from xpnet.models.presets import lenet5_layers
            except ImportError:  # a baseline checkout from before xpnet/models/ (--baseline-ref)
                from xpnet.cnn import lenet5_layers
            layers, shape = [xpnet.deserialize(s, "layer") for s in lenet5_layers(10)], {"input_shape": (1, 28, 28)}
        for i, (k, o) in enumerate([] if case.conv else case.layers):
            layers += [xpnet.Dense(k, o, init=case.init)] + ([act()] if i < len(case.layers) - 1 else [])
        loss = (xpnet.LogisticCost if case.loss == "logistic" else xpnet.SoftmaxCrossEntropy)(reduction=case.reduction)
        model = xpnet.Sequential(layers, loss=loss, optimizer=xpnet.SGD(case.lr, momentum=case.momentum),
                                 backend=backend, device=device, dtype=dtype, seed=0, **shape, **kw, **kw_mixed)
        if not compile:
            model.fit(X[:nwarm], y[:nwarm], epochs=1, batch_size=case.batch_size)
        t_fit = time.perf_counter()
        model.fit(X, y, epochs=epochs + extra_epochs, batch_size=case.batch_size)
    # an epoch ends by fetching its losses; the last update may still be queued (JAX, GPUs): wait for it
    t0 = time.perf_counter()
    bk = getattr(model, "bk", None)
    for p in model.parameters().values():
        bk.block(p) if hasattr(bk, "block") else xpnet.to_numpy(p)
    t1 = time.perf_counter()
    history = getattr(model, "history_", None) or {}
    total = epochs + extra_epochs
    if len(history.get("seconds", ())) == total:
        seconds = list(history["seconds"])
        seconds[-1] += t1 - t0
    else:  # no per-epoch times: the whole fit (including its set-up) divided evenly
        seconds = [(t1 - t_fit) / total] * total
    what = " ".join(str(getattr(bk, k, "?")) for k in ("name", "version")) + f" on {getattr(bk, 'device', device)}"
    what += f", {kw_mixed['precision']}" if kw_mixed else ""
    last = {f"last_epoch_{k}": history[k][-1] for k in ("loss", "accuracy") if history.get(k)}
    if hasattr(model, "kernels_used"):  # which native kernels the layers ran (absent in checkouts before issue 37)
        used = sorted(set(model.kernels_used().values()))
        last["native_kernels"] = used
        what += f", native kernels {','.join(used)}" if used else ", no native kernels"
    if not compile:
        return seconds, what, last
    mode = getattr(bk, "compile_mode", None)
    what += f", torch.compile mode {mode}" if mode else ""
    return seconds[1:], what, compiled_extra(seconds, getattr(model, "compile_traces_", None)) | last


def compiled_extra(seconds: list[float], traces) -> dict:
    """What a compiled row reports beside its timed epochs: the first (compiling, untimed) epoch's seconds, its
    extra time over the timed epochs' median (compile_s), and how many traces were compiled."""
    timed = seconds[1:]
    return {"first_epoch_s": seconds[0], "compile_s": max(0.0, seconds[0] - statistics.median(timed)),
            "compile_traces": traces}
