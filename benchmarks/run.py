"""Training-speed benchmark: xpnet on each backend against a hand-written NumPy loop, PyTorch, scikit-learn
and the book's own code, on MNIST's 60000 training images.

Usage (from the repository root):

    python benchmarks/run.py                                  # cases A-D, every framework, 5 repeats
    python benchmarks/run.py --quick --cases A,C --frameworks xpnet-numpy,numpy-loop,torch,sklearn
    python benchmarks/run.py --cases B --repeats 3 --epochs 2 --json b.json --markdown b.md
    python benchmarks/run.py --device cuda --cases E          # GPU: xpnet-cupy/torch/jax and torch
    python benchmarks/run.py --baseline-ref 9973ecb --cases A,B,C,D --frameworks xpnet-numpy --repeats 9
    python benchmarks/run.py --cases A,B,C --frameworks xpnet-jax,xpnet-jax-jit,jax-jit --repeats 7 --epochs 3

Options: --data-dir DIR (MNIST IDX files, default ../shared/data/mnist from the repository root),
--cases A,B,C,D,E, --frameworks (xpnet-numpy, xpnet-torch, xpnet-jax, xpnet-array_api_strict, xpnet-cupy,
xpnet-jax-jit, xpnet-torch-compile, jax-jit, numpy-loop, torch, sklearn, book-transcription), --dtypes
float32,float64 (default: each case's), --repeats N (default 5), --epochs N timed per repeat (default 1),
--quick (1 repeat, 1 epoch), --device cpu|cuda, --timeout S (per worker), --json PATH, --markdown PATH,
--baseline-ref COMMIT (below), --torch-compile-mode MODE (xpnet-torch-compile's torch.compile mode, e.g.
reduce-overhead on a GPU; default the backend's, "default").

Outputs are written as the run goes, so a run cut short leaves readable files: --json PATH is JSON lines
(read with `[json.loads(line) for line in open(PATH)]`), one object per line with a "record" key: "meta"
(header, cases, jobs, commits) first, then "run" for every worker as it finishes (case, dtype, framework,
repeat, checkout new/old, seconds, median_s, ... or skipped), "pair" for every old/new pair, and at the
end "row" (the table rows below), "comparison" (old against new) and "end". --markdown PATH is rewritten
after every measurement with the tables so far and a status line (complete, or how many runs were done).

Cases (cases.py): A 784-50-10 sigmoid/logistic (sum), SGD 0.001, batch 1200, float32 and float64;
B 784-512-512-10 ReLU, softmax CE, SGD 0.1 momentum 0.9, batch 128; C 784-50-10, batch 32 (overhead-bound);
D the book's NeuralNetMLP (book2015 settings, raw pixels, float64): xpnet, tests/book_transcription.py's
BookMLP and the NumPy loop; E 4096-4096-4096-10, batch 4096 (GPU only: skipped on the CPU unless named);
F LeNet-5 on (N, 1, 28, 28), SGD 0.05 momentum 0.9, batch 128, float32 (when named: --cases F): xpnet's backends,
native PyTorch (torch.nn.Conv2d/MaxPool2d, xpnet's initial weights and batch order) and the GEMM floor of the
column layout (benchmarks/cnn_profile.py splits an xpnet step into im2col, matmul, col2im, pooling).

Method: every (repeat, case, dtype, framework) runs in its own fresh process, one at a time (a second
busy process slows BLAS down), interleaved: repeat 1 of everything, then repeat 2, ... A worker loads the
data, builds the model, trains a few untimed warm-up minibatches (the epoch's shapes), then times
`--epochs` full epochs (shuffle + gather + forward + backward + update; device work finished) and reports
its median seconds per epoch and its peak RSS. Every xpnet worker runs with this checkout's root first on
PYTHONPATH and checks that the xpnet it imported comes from there (an editable install elsewhere would
otherwise be timed instead): a mismatch stops the run with an error. The table gives the median over repeats (min-max),
samples/s, GFLOP/s of the layer matrix products (2*m*n*k for x@W.T, dW = dy.T@x and dx = dy@W, no dx for
the first layer) and the ratio to the NumPy loop of the same case and dtype. The `gemm-floor` row times
only those matrix products for one epoch's minibatch shapes with NumPy (preallocated outputs): the
floor any CPU framework on this BLAS can reach (CPU runs only: with --device cuda there is no floor, and
the CPU frameworks, e.g. xpnet-numpy on the GPU machine's host, skip case E). A worker that fails is reported as skipped with the reason.
"peak RSS MB (+training)": the worker's ru_maxrss, and how far RSS rose above its level after imports and
data loading while training (VmHWM reset after loading). JSON rows add repeats_s (each repeat's median
s/epoch), epoch_seconds (every timed epoch) and the note. With JAX, each distinct minibatch offset compiles
its own slice once, so the first timed epoch is slower than later ones: use --epochs 3 for its steady state.

Compiled rows: xpnet-jax-jit and xpnet-torch-compile are xpnet with compile=True on JAX and torch (one compiled
call per minibatch: gather, forward, loss, backward, update, argmax); jax-jit is the same model written as a
JAX user would (run_jax_jit: one jax.jit call per minibatch doing the same jnp.take gather with the step's index
slice passed in, jax.value_and_grad of the same loss and penalty, the case's update; xpnet's initial weights
and batch order; A-D). They skip the warm-up (a compiled step traces again for a new data shape) and train
--epochs + 1 epochs: the first compiles (and, on JAX, compiles each offset's index slice) and is not timed;
"compile s" (JSON compile_s; first_epoch_s, compile_traces beside it) is its extra time over the timed epochs'
median. Their rows also record last_epoch_loss and last_epoch_accuracy (xpnet rows too), so xpnet-jax-jit and
jax-jit can be seen to train the same way (case A float64: the same loss to every digit after 2 epochs).

--baseline-ref COMMIT times another checkout side by side with this one: a detached git worktree of COMMIT
in .bench-baseline/<sha> (ignored by git through its own .gitignore; reused when present; remove it with
`git worktree remove .bench-baseline/<sha>`) and, for every xpnet row, its worker run a second time with
that worktree's root first on PYTHONPATH. The worker code, the cases and the data loading are this
checkout's (benchmarks/), only `import xpnet` differs, and it uses only the public API (Sequential, Dense,
Sigmoid, ReLU, LogisticCost, SoftmaxCrossEntropy, SGD, NeuralNetMLP, backend, parameters(), history_).
Only the eager xpnet rows are paired (an older checkout may have no compile=True; the compiled rows are
timed for this checkout only). Each (repeat, case, dtype, framework) gets an old and a new measurement back to back, old first in odd
repeats and new first in even ones (so drift cancels). Reported per case, dtype and framework: the median
old and new s/epoch, the median of the paired ratios new/old and a 95 % bootstrap interval of that median
(10,000 resamples of the pairs, seed 0; with fewer than about 6 pairs the interval is coarse).
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from cases import CASES, N_TRAIN, load_data, onehot

BASELINE_DIR = ROOT / ".bench-baseline"

FRAMEWORKS = ("xpnet-numpy", "xpnet-torch", "xpnet-jax", "xpnet-array_api_strict", "xpnet-jax-jit",
              "xpnet-torch-compile", "jax-jit", "numpy-loop", "torch", "sklearn", "book-transcription")
GPU_FRAMEWORKS = ("xpnet-cupy", "xpnet-torch", "xpnet-jax", "xpnet-jax-jit", "xpnet-torch-compile", "jax-jit", "torch")
# the xpnet rows: framework -> (backend, compile=True). Only the eager ones are timed against --baseline-ref (an
# older checkout may have no compile=True).
XPNET = {"xpnet-numpy": ("numpy", False), "xpnet-torch": ("torch", False), "xpnet-jax": ("jax", False),
         "xpnet-array_api_strict": ("array_api_strict", False), "xpnet-cupy": ("cupy", False),
         "xpnet-jax-jit": ("jax", True), "xpnet-torch-compile": ("torch", True)}
# rows whose first epoch compiles: it is run but not timed, and its extra time over the timed epochs' median is
# reported as compile_s
COMPILED = ("xpnet-jax-jit", "xpnet-torch-compile", "jax-jit")
NOTES = {
    "numpy-loop": "hand-written loop (numpy_loop.py): no loss value or accuracy computed",
    "sklearn": "MLPClassifier(solver='sgd', alpha=0), one partial_fit per epoch; softmax output (its multiclass "
               "output), mean loss, lr scaled by the batch size where the case sums",
    "book-transcription": "tests/book_transcription.py BookMLP: bias columns, samples as columns, composed shuffles",
    "gemm-floor": "NumPy matrix products only, one epoch's shapes, preallocated outputs",
    "xpnet-jax-jit": "compile=True on JAX: one jax.jit call per minibatch (xpnet's own step traced)",
    "xpnet-torch-compile": "compile=True on torch: one torch.compile'd call per minibatch (xpnet's own step)",
    "jax-jit": "native JAX (run.py run_jax_jit): one jax.jit step per minibatch (jnp.take gather, value_and_grad, "
               "the case's update, loss and argmax out), xpnet's initial weights and batch order",
}


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_mb(key: str) -> float | None:
    """VmRSS (now) or VmHWM (peak since start or since reset_peak()) from /proc/self/status, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Make VmHWM the current RSS (Linux >= 4.0), so the training peak excludes the data loading's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- workers
# Each runner trains `epochs` timed epochs after a warm-up and returns the list of seconds per epoch.

def run_xpnet(case, backend, dtype, X, y, epochs, device, compile=False, compile_mode=None):
    """xpnet eager: a warm-up fit of three minibatches (the epoch's shapes), then `epochs` timed epochs.
    compile=True: no warm-up (a compiled step traces again for the full data's shape); epochs + 1 epochs, the
    first one (compiling) untimed and reported as compile_s, its time over the timed epochs' median."""
    import xpnet
    n = X.shape[0]
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
        if case.conv:  # LeNet-5 as the lenet5 preset builds it (xpnet.models.presets; Conv2D and MaxPool2D since 0.2)
            try:
                from xpnet.models.presets import lenet5_layers
            except ImportError:  # a baseline checkout from before xpnet/models/ (--baseline-ref)
                from xpnet.cnn import lenet5_layers
            layers, shape = [xpnet.deserialize(s, "layer") for s in lenet5_layers(10)], {"input_shape": (1, 28, 28)}
        for i, (k, o) in enumerate([] if case.conv else case.layers):
            layers += [xpnet.Dense(k, o, init=case.init)] + ([act()] if i < len(case.layers) - 1 else [])
        loss = (xpnet.LogisticCost if case.loss == "logistic" else xpnet.SoftmaxCrossEntropy)(reduction=case.reduction)
        model = xpnet.Sequential(layers, loss=loss, optimizer=xpnet.SGD(case.lr, momentum=case.momentum),
                                 backend=backend, device=device, dtype=dtype, seed=0, **shape, **kw)
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
    last = {f"last_epoch_{k}": history[k][-1] for k in ("loss", "accuracy") if history.get(k)}
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


def run_jax_jit(case, dtype, X, y, epochs, device):
    """_run_jax_jit with full float32 products, as xpnet's JAX backend pins while it works
    (JaxBackend.matmul_precision) and as the torch rows run: JAX's default uses TF32 on GPUs that have it.
    A context, not jax.config.update: the setting must not outlive the run (the tests call this in-process)."""
    import jax
    with jax.default_matmul_precision("highest"):
        return _run_jax_jit(case, dtype, X, y, epochs, device)


def _run_jax_jit(case, dtype, X, y, epochs, device):
    """The case written as a JAX user would: one jax.jit call per minibatch that gathers the minibatch's rows
    from device-resident data (jnp.take with the step's index slice passed in), takes jax.value_and_grad of
    the loss (+ the case's L2 penalty), applies the case's update (SGD, classical momentum or the book's
    look-back) and returns the loss and the argmax. The same initial weights and batch order as xpnet (the
    permutations drawn from the generator the weights came from; composed for the book's case D, whose
    learning rate decays per epoch as the book's does). Losses and predictions stay on the device until the
    epoch ends (one transfer per epoch, as xpnet's fit). epochs + 1 epochs: the first compiles, untimed."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    kind, _, index = device.partition(":")
    dev = jax.devices("cpu" if kind == "cpu" else "gpu")[int(index or 0)]
    book = case.book_args
    if book.get("l1"):
        raise NotImplementedError("an L1 penalty (the book's cost and gradient differ)")
    l2, mu, alpha, decay = book.get("l2", 0.0), case.momentum, book.get("alpha", 0.0), book.get("decrease_const", 0.0)
    rng = case.host_rng()
    params = [tuple(jax.device_put(np.asarray(a, dtype=dtype), dev) for a in wb) for wb in case.initial_params(rng)]
    bufs = jax.tree_util.tree_map(jnp.zeros_like, params)  # momentum / the book's previous delta
    act = jax.nn.sigmoid if case.hidden == "sigmoid" else jax.nn.relu
    traces = []

    def objective(ps, xb, yb):
        z = xb
        for i, (w, b) in enumerate(ps):
            z = z @ w.T + b
            if i < len(ps) - 1:
                z = act(z)
        if case.loss == "logistic":  # sigmoid + binary cross-entropy, from the logits
            value = jnp.sum(jax.nn.softplus(z) - yb * z)
        else:
            value = -jnp.sum(yb * jax.nn.log_softmax(z, axis=1))
        if case.reduction == "mean":
            value = value / z.shape[0]
        if l2:
            value = value + 0.5 * l2 * sum(jnp.sum(w * w) for w, _ in ps)
        return value, z

    @jax.jit
    def step(ps, bufs, X, Y, idx, lr):
        traces.append(1)
        xb, yb = jnp.take(X, idx, axis=0), jnp.take(Y, idx, axis=0)
        (value, z), g = jax.value_and_grad(objective, has_aux=True)(ps, xb, yb)
        if mu:  # classical momentum (PyTorch's form)
            bufs = jax.tree_util.tree_map(lambda v, gi: mu * v + gi, bufs, g)
            ps = jax.tree_util.tree_map(lambda p, v: p - lr * v, ps, bufs)
        elif alpha:  # the book's look-back: w -= lr * g + alpha * previous (lr * g)
            delta = jax.tree_util.tree_map(lambda gi: lr * gi, g)
            ps = jax.tree_util.tree_map(lambda p, d, prev: p - (d + alpha * prev), ps, delta, bufs)
            bufs = delta
        else:
            ps = jax.tree_util.tree_map(lambda p, gi: p - lr * gi, ps, g)
        return ps, bufs, value, jnp.argmax(z, axis=1)

    n = X.shape[0]
    with jax.default_device(dev):
        Xd, Yd = jax.device_put(X, dev), jax.device_put(onehot(y, case.sizes[-1], dtype), dev)
        labels = jax.device_put(y.astype(np.int32), dev)
        bounds, order, lr, seconds = case.bounds(n), None, case.lr, []
        for epoch in range(epochs + 1):
            t0 = time.perf_counter()
            lr = lr / (1 + decay * epoch) if decay else lr
            perm = rng.permutation(n)
            order = perm if order is None or not case.book else order[perm]
            order_d = jax.device_put(order, dev)
            losses, preds = [], []
            for s, e in bounds:
                params, bufs, value, pred = step(params, bufs, Xd, Yd, order_d[s:e], lr)
                losses.append(value)
                preds.append(pred)
            correct = jnp.sum(jnp.concatenate(preds) == jnp.take(labels, order_d, axis=0))
            host, correct = np.asarray(jnp.stack(losses)), int(correct)
            jax.block_until_ready(params)
            seconds.append(time.perf_counter() - t0)
            if not np.isfinite(host).all():
                raise FloatingPointError(f"the loss became {host[~np.isfinite(host)][0]} in epoch {epoch + 1}")
    weights = np.array([e - s for s, e in bounds] if case.reduction == "mean" else [1] * len(bounds))
    last = {"last_epoch_loss": float(host @ weights) / n, "last_epoch_accuracy": correct / n}  # as xpnet's history
    return seconds[1:], f"jax {jax.__version__} on {dev.platform}", compiled_extra(seconds, len(traces)) | last


def run_numpy_loop(case, dtype, X, y, epochs, device):
    from numpy_loop import NumpyMLP
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


def run_torch(case, dtype, X, y, epochs, device):
    import torch
    dev = torch.device(device)
    # full-precision float32 matrix products, as CuPy's default (CUPY_TF32 unset): no TF32 on either side
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    mods = []
    rng = case.host_rng()
    params = case.initial_params(rng)  # the same initial values as xpnet (and, for F, its shuffles from rng)
    if case.conv:  # native LeNet-5: torch.nn.Conv2d and MaxPool2d (oneDNN/ATen kernels)
        nn = torch.nn
        convs = [nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)]
        for m, (w, b) in zip(convs, params[:2]):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(b))
        mods = [convs[0], nn.ReLU(), nn.MaxPool2d(2), convs[1], nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
        params = params[2:]
    for i, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods += [lin] + ([torch.nn.Sigmoid() if case.hidden == "sigmoid" else torch.nn.ReLU()]
                         if i < len(case.layers) - 1 else [])
    net = torch.nn.Sequential(*mods).to(device=dev, dtype=getattr(torch, dtype))
    Xt = torch.from_numpy(X).to(dev)
    if case.loss == "logistic":
        T, loss_fn = torch.from_numpy(onehot(y, case.sizes[-1], dtype)).to(dev), torch.nn.BCEWithLogitsLoss(
            reduction=case.reduction)
    else:
        T, loss_fn = torch.from_numpy(y.astype("int64")).to(dev), torch.nn.CrossEntropyLoss(reduction=case.reduction)
    opt = torch.optim.SGD(net.parameters(), lr=case.lr, momentum=case.momentum)
    gen = torch.Generator().manual_seed(0)

    def epoch(order, bounds):
        for s, e in bounds:
            idx = order[s:e]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(Xt.index_select(0, idx)), T.index_select(0, idx)).backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    warm = case.warm_bounds(X.shape[0])
    epoch(torch.arange(warm[-1][1], device=dev), warm)
    bounds, seconds = case.bounds(X.shape[0]), []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(X.shape[0])) if case.conv else \
            torch.randperm(X.shape[0], generator=gen)
        epoch(order.to(dev), bounds)
        seconds.append(time.perf_counter() - t0)
    return seconds, f"torch {torch.__version__}, {torch.get_num_threads()} threads, {dev}"


def run_sklearn(case, dtype, X, y, epochs, device):
    import sklearn
    from sklearn.neural_network import MLPClassifier
    bs = case.batch_size
    clf = MLPClassifier(hidden_layer_sizes=case.sizes[1:-1], activation="logistic" if case.hidden == "sigmoid" else "relu",
                        solver="sgd", alpha=0.0, batch_size=bs, learning_rate="constant",
                        learning_rate_init=case.lr * (bs if case.reduction == "sum" else 1), momentum=case.momentum,
                        nesterovs_momentum=False, shuffle=True, random_state=0, max_iter=1)
    nwarm = case.warm_bounds(X.shape[0])[-1][1]
    clf.partial_fit(X[:nwarm], y[:nwarm], classes=list(range(case.sizes[-1])))
    seconds = []
    for _ in range(epochs):  # partial_fit with solver='sgd' is one shuffled pass over the data
        t0 = time.perf_counter()
        clf.partial_fit(X, y)
        seconds.append(time.perf_counter() - t0)
    return seconds, f"scikit-learn {sklearn.__version__}, computes in {clf.coefs_[0].dtype}"


def run_book(case, dtype, X, y, epochs, device):
    import importlib.util
    spec = importlib.util.spec_from_file_location("book_transcription", ROOT / "tests" / "book_transcription.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Timed(mod.BookMLP):
        """BookMLP unchanged; its fit sets self.eta once at the start of every epoch: note the time."""
        @property
        def eta(self):
            return self._eta

        @eta.setter
        def eta(self, value):
            self._eta = value
            self.__dict__.setdefault("marks", []).append(time.perf_counter())

    nwarm = case.warm_bounds(X.shape[0])[-1][1]
    Timed(**dict(case.book_args, epochs=1, minibatches=3)).fit(X[:nwarm], y[:nwarm])
    nn = Timed(**dict(case.book_args, epochs=epochs))
    nn.marks.clear()  # the constructor's assignment
    nn.fit(X, y)
    marks = nn.marks + [time.perf_counter()]
    return [b - a for a, b in itertools.pairwise(marks)], "epoch = shuffle + minibatches (label encoding excluded)"


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


class WrongCheckout(RuntimeError):
    """The worker imported xpnet from somewhere other than the checkout it was meant to time."""


def import_xpnet(root: str | None):
    """Import xpnet and check that it comes from `root`/xpnet; returns (module, its resolved __file__).
    Where it would come from is checked before it runs (a wrong xpnet may not even import), then again."""
    import importlib.util
    want = Path(root).resolve() / "xpnet" if root else None

    def check(where):
        if want and not (where and Path(where).resolve().is_relative_to(want)):
            raise WrongCheckout(f"the worker meant to time {root} finds xpnet at {where} (an installed or editable "
                                f"xpnet shadows PYTHONPATH?)")
    spec = importlib.util.find_spec("xpnet")
    check(spec.origin if spec else None)
    import xpnet
    check(xpnet.__file__)
    return xpnet, str(Path(xpnet.__file__).resolve())


def worker(case_name: str, framework: str, dtype: str, args) -> dict:
    """Runs in a child process; returns what the parent reads back (one JSON line)."""
    case = CASES[case_name]
    backend, compiled = XPNET.get(framework, (None, False))
    device = args.device if framework in GPU_FRAMEWORKS else "cpu"
    xpnet_file = None
    if backend:
        xpnet, xpnet_file = import_xpnet(args.xpnet_root)
        if hasattr(xpnet, "backend"):
            xpnet.backend(backend, device)  # imports the array library; fails here if it is not installed
        mode = args.torch_compile_mode if backend == "torch" else None

        def runner(*a):
            return run_xpnet(case, backend, *a, **({"compile": True, "compile_mode": mode} if compiled else {}))
    else:
        run = {"numpy-loop": run_numpy_loop, "torch": run_torch, "sklearn": run_sklearn, "jax-jit": run_jax_jit,
               "book-transcription": run_book, "gemm-floor": run_gemm_floor}[framework]

        def runner(*a):
            return run(case, *a)
        if framework == "torch":
            import torch
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count()))  # as BLAS gets
        elif framework == "sklearn":
            import sklearn.neural_network  # noqa: F401 (imported before the RSS after load)
        elif framework == "jax-jit":
            import jax  # noqa: F401 (imported before the RSS after load)
    X, y = (None, None) if framework == "gemm-floor" else load_data(case, dtype, args.data_dir)
    rss_load = proc_status_mb("VmRSS") or maxrss_mb()
    exact = reset_peak()
    seconds, note, *extra = runner(dtype, X, y, args.epochs, device)  # extra: a dict of other figures, or none
    peak = maxrss_mb()
    train_peak = (proc_status_mb("VmHWM") if exact else None) or peak
    return {"seconds": seconds, "median_s": statistics.median(seconds), "peak_rss_mb": peak,
            "rss_after_load_mb": rss_load, "train_rss_increase_mb": max(0.0, train_peak - rss_load),
            "note": note, "device": device, "xpnet_file": xpnet_file, **(extra[0] if extra else {})}


def worker_main(args) -> None:
    import warnings
    warnings.simplefilter("ignore")
    try:
        out = worker(*args.worker, args)
    except WrongCheckout as exc:
        out = {"fatal": str(exc)}
    except Exception as exc:  # noqa: BLE001 (any failure is a skipped row, not a crash)
        out = {"skipped": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    print(json.dumps(out), flush=True)
    if "fatal" in out:
        sys.exit(3)


# ----------------------------------------------------------------------------------------------- parent

def spawn(case: str, framework: str, dtype: str, args, root: Path = ROOT) -> dict:
    """One worker process timing the xpnet of checkout `root` (first on its PYTHONPATH)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, framework, dtype,
           "--epochs", str(args.epochs), "--data-dir", str(args.data_dir), "--device", args.device,
           "--xpnet-root", str(root)] + (["--torch-compile-mode", args.torch_compile_mode]
                                         if args.torch_compile_mode else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH")))))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT, check=False, env=env)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {args.timeout} s"}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"skipped": f"worker exited with {p.returncode}: {tail[:300]}"}


def paired_with_baseline(framework: str) -> bool:
    """Whether --baseline-ref times `framework` on the old checkout too: the eager xpnet rows only."""
    return framework in XPNET and not XPNET[framework][1]


def applicable(case, framework: str, device: str = "cpu") -> str | None:
    """None, or why `framework` does not run `case` on `device`."""
    on_gpu_run = device.startswith("cuda")
    if on_gpu_run and case.gpu_only and framework not in GPU_FRAMEWORKS:
        return (f"a CPU row on the GPU case: about {case.flops(N_TRAIN):.0e} FLOP per epoch, minutes on the host CPU; "
                f"run it without --device cuda to time it")
    if framework == "gemm-floor" and on_gpu_run:
        return "the GEMM floor is NumPy on the CPU: no floor for the GPU rows"
    if framework == "book-transcription" and not case.book:
        return "the book's code is case D only"
    if case.conv and framework in ("numpy-loop", "sklearn", "jax-jit"):
        return "case F is convolutional: no such row (xpnet's backends, native torch.nn.Conv2d and the GEMM floor)"
    if framework in ("torch", "sklearn") and case.book:
        return "no equivalent of the book's look-back momentum and composed shuffles"
    return None


def summarize(case, framework: str, dtype: str, runs: list[dict], baseline: str | None = None) -> dict:
    """One table row from a job's runs; `baseline`: the sha when these are the baseline checkout's runs."""
    backend = framework[len("xpnet-"):] if framework in XPNET else None  # "jax-jit" for xpnet-jax-jit
    name = ("xpnet" if not baseline else f"xpnet@{baseline[:7]}") if backend else framework
    row = {"case": case.name, "framework": name, "backend": backend, "dtype": dtype,
           "median_s": None, "min_s": None, "max_s": None, "samples_per_s": None, "gflops": None,
           "peak_rss_mb": None, "rss_after_load_mb": None, "ratio_to_numpy_loop": None, "compile_s": None}
    ok = [r for r in runs if "skipped" not in r]
    if not ok:
        row["skipped"] = runs[0]["skipped"] if runs else "not run yet"
        return row
    per_repeat = [r["median_s"] for r in ok]
    med = statistics.median(per_repeat)
    row.update(median_s=med, min_s=min(per_repeat), max_s=max(per_repeat), samples_per_s=N_TRAIN / med,
               gflops=case.flops(N_TRAIN) / med / 1e9, peak_rss_mb=max(r["peak_rss_mb"] for r in ok),
               rss_after_load_mb=max(r["rss_after_load_mb"] for r in ok),
               train_rss_increase_mb=max(r["train_rss_increase_mb"] for r in ok), repeats_s=per_repeat,
               epoch_seconds=[r["seconds"] for r in ok],
               device=ok[0]["device"], note=ok[0]["note"], xpnet_file=ok[0].get("xpnet_file"))
    if any("compile_s" in r for r in ok):  # compiled rows: their first (untimed) epoch, per repeat
        row.update(compile_s=statistics.median(r["compile_s"] for r in ok),
                   compile_s_repeats=[r["compile_s"] for r in ok], compile_traces=ok[0].get("compile_traces"))
    if len(ok) < len(runs):
        failed = next(r["skipped"] for r in runs if "skipped" in r)
        row["note"] = "; ".join(filter(None, (row["note"], f"{len(runs) - len(ok)} repeat(s) failed: {failed}")))
    return row


def git(*argv, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=False)


def checkout_id(root: Path) -> str:
    """The commit a checkout is at, with '+uncommitted changes' when its tracked files differ from it."""
    head = git("rev-parse", "HEAD", cwd=root).stdout.strip() or "unknown commit"
    dirty = git("status", "--porcelain", "--untracked-files=no", cwd=root).stdout.strip()
    return head + (" + uncommitted changes" if dirty else "")


def baseline_worktree(ref: str) -> tuple[Path, str]:
    """A clean detached worktree of `ref` in .bench-baseline/<sha>, made or reused -> (its root, the sha)."""
    r = git("rev-parse", "--verify", "--quiet", ref + "^{commit}")
    if r.returncode:
        sys.exit(f"run.py: error: --baseline-ref {ref!r} is not a commit of {ROOT}")
    sha = r.stdout.strip()
    path = BASELINE_DIR / sha[:12]
    BASELINE_DIR.mkdir(exist_ok=True)
    ignore = BASELINE_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# baseline checkouts made by benchmarks/run.py --baseline-ref\n*\n")
    if path.exists():
        head = git("rev-parse", "HEAD", cwd=path).stdout.strip()
        if head != sha or git("status", "--porcelain", "--untracked-files=no", cwd=path).stdout.strip():
            sys.exit(f"run.py: error: {path} exists but is not a clean checkout of {sha}; remove it "
                     f"(git worktree remove --force {path}) and run again")
        print(f"baseline: reusing {path} ({sha[:12]})", flush=True)
    else:
        r = git("worktree", "add", "--detach", str(path), sha)
        if r.returncode:
            sys.exit(f"run.py: error: git worktree add {path} {sha[:12]} failed: "
                     f"{(r.stderr.strip().splitlines() or ['no message'])[-1]}")
        print(f"baseline: made worktree {path} ({sha[:12]}); remove it with git worktree remove {path}", flush=True)
    return path, sha


def paired_ratio(pairs: list[dict], resamples: int = 10000, seed: int = 0) -> dict:
    """Median of the paired ratios new/old and its 95 % percentile-bootstrap interval (pairs resampled)."""
    import numpy as np
    ratios = np.array([p["new_s"] / p["old_s"] for p in pairs if p["old_s"] and p["new_s"]])
    if not ratios.size:
        return {"pairs": 0, "ratio_median": None, "ratio_ci95": None, "ratios": []}
    idx = np.random.default_rng(seed).integers(0, ratios.size, size=(resamples, ratios.size))
    lo, hi = np.percentile(np.median(ratios[idx], axis=1), [2.5, 97.5])
    return {"pairs": int(ratios.size), "ratio_median": float(np.median(ratios)), "ratio_ci95": [float(lo), float(hi)],
            "ratios": ratios.tolist()}


def comparison(key: tuple, old: dict, new: dict, pairs: list[dict], sha: str) -> dict:
    """Old against new for one (case, dtype, framework): their medians over repeats and the paired ratios."""
    case, dtype, framework = key
    return {"case": case, "dtype": dtype, "framework": framework, "baseline": sha, "old_median_s": old["median_s"],
            "new_median_s": new["median_s"], **paired_ratio(pairs), "measurements": pairs}


def comparison_table(comps: list[dict]) -> list[list[str]]:
    out = [["case", "framework", "dtype", "old s/epoch (median)", "new s/epoch (median)", "new/old (median of pairs)",
            "95 % CI (bootstrap)", "pairs"]]
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for c in comps:
        ci = c["ratio_ci95"]
        out.append([c["case"], c["framework"], c["dtype"], f(c["old_median_s"]), f(c["new_median_s"]),
                    f(c["ratio_median"]), "–" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}", str(c["pairs"])])
    return out


def table(rows: list[dict]) -> list[list[str]]:
    head = ["case", "framework", "backend", "dtype", "s/epoch median (min-max)", "samples/s", "GFLOP/s",
            "peak RSS MB (+training)", "x numpy-loop", "compile s"]
    out = [head]
    for r in rows:
        if r["median_s"] is None:
            out.append([r["case"], r["framework"], r["backend"] or "", r["dtype"], "skipped: " + r["skipped"],
                        "", "", "", "", ""])
            continue
        ratio, comp = r["ratio_to_numpy_loop"], r.get("compile_s")
        out.append([r["case"], r["framework"], r["backend"] or "", r["dtype"],
                    f"{r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f})", f"{r['samples_per_s']:,.0f}",
                    f"{r['gflops']:.1f}", f"{r['peak_rss_mb']:.0f} (+{r['train_rss_increase_mb']:.0f})",
                    "" if ratio is None else f"{ratio:.2f}", "" if comp is None else f"{comp:.2f}"])
    return out


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "torch", "jax", "jaxlib", "array-api-strict", "array-api-compat", "scikit-learn",
                "cupy-cuda12x", "cupy-cuda13x"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        import numpy as np
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        out["numpy BLAS"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001, S110 (an older NumPy: no BLAS entry)
        pass
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(args, load_before, baseline=None) -> list[str]:
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {cpu_model()}" + (f", {threads}" if threads else ""),
        f"- load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        (f"- {args.repeats} repeat(s) x {args.epochs} epoch(s), 60000 MNIST training images, one worker process "
         f"at a time, device {args.device}"),
        f"- xpnet timed: {ROOT} at {checkout_id(ROOT)}"
        + (f"; baseline (old): {baseline[0]} at {baseline[1]} (--baseline-ref {args.baseline_ref})" if baseline else ""),
        f"- command: `cd {ROOT} && {shlex.join([sys.executable] + sys.argv)}`",
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    ap.add_argument("--cases", default=None, help="comma-separated from A,B,C,D,E,F (default A,B,C,D; E on cuda; F "
                    "when named)")
    ap.add_argument("--frameworks", default=None, help=f"comma-separated from {','.join(FRAMEWORKS)},xpnet-cupy")
    ap.add_argument("--dtypes", default=None, help="only these of each case's dtypes, e.g. float32 (default: all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="one repeat of one epoch, to see that it works")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i] for xpnet-torch/jax/cupy and torch")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a worker is given up as skipped")
    ap.add_argument("--torch-compile-mode", default=None, metavar="MODE",
                    help="torch.compile mode of xpnet-torch-compile (default: the backend's, 'default'); "
                         "'reduce-overhead' (CUDA graphs) on a GPU")
    ap.add_argument("--baseline-ref", metavar="COMMIT",
                    help="also time this commit's xpnet (a worktree in .bench-baseline/), paired with this checkout's")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "FRAMEWORK", "DTYPE"), help=argparse.SUPPRESS)
    ap.add_argument("--xpnet-root", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()] if args.dtypes else None
    if args.quick:
        args.repeats, args.epochs = 1, 1
    gpu = args.device.startswith("cuda")
    cases = [c.strip().upper() for c in (args.cases or ("A,B,C,D,E" if gpu else "A,B,C,D")).split(",") if c.strip()]
    frameworks = [f.strip() for f in (args.frameworks or ",".join(GPU_FRAMEWORKS if gpu else FRAMEWORKS)).split(",")
                  if f.strip()]
    bad = [c for c in cases if c not in CASES] + [f for f in frameworks if f not in FRAMEWORKS + GPU_FRAMEWORKS]
    if bad:
        ap.error(f"unknown case or framework: {', '.join(bad)}")
    if args.cases is None and not gpu:
        print("case E skipped: 4096-4096-4096-10 at batch 4096 is a GPU case (about 10 TFLOP per epoch, minutes per "
              "epoch on this CPU); name it with --cases E to run it anyway, or use --device cuda", flush=True)
    base_root, base_sha = baseline_worktree(args.baseline_ref) if args.baseline_ref else (None, None)

    jobs = []  # (case, dtype, framework) in run order; the NumPy-only GEMM floor once per case and dtype on the CPU
    for c in cases:
        for dtype in CASES[c].dtypes:
            if args.dtypes and dtype not in args.dtypes:
                continue
            for f in frameworks + ["gemm-floor"]:
                why = applicable(CASES[c], f, args.device)
                if why:
                    print(f"not run: {c} {dtype} {f}: {why}", flush=True)
                else:
                    jobs.append((c, dtype, f))
    load_before = os.getloadavg()
    results = {job: [] for job in jobs}
    old_results = {job: [] for job in jobs if base_root and paired_with_baseline(job[2])}
    pairs = {job: [] for job in old_results}
    baseline = (base_root, base_sha) if base_sha else None
    total = args.repeats * (len(jobs) + len(old_results))
    out = Output(args, load_before, baseline, cases)
    out.record(record="meta", header=header(args, load_before, baseline), cases={c: CASES[c].title for c in cases},
               jobs=[list(j) for j in jobs], repeats=args.repeats, epochs=args.epochs, device=args.device,
               checkout=str(ROOT), commit=checkout_id(ROOT), baseline_ref=args.baseline_ref, baseline_commit=base_sha,
               baseline_checkout=str(base_root) if base_root else None)
    out.markdown(*summaries(results, old_results, pairs, base_sha), done=0, total=total)
    done = 0

    def measure(r: int, job: tuple, which: str) -> dict:
        nonlocal done
        c, dtype, f = job
        res = spawn(c, f, dtype, args, base_root if which == "old" else ROOT)
        if "fatal" in res:
            out.record(record="fatal", error=res["fatal"])
            sys.exit(f"run.py: error: {res['fatal']}")
        (old_results if which == "old" else results)[job].append(res)
        done += 1
        out.record(record="run", repeat=r + 1, case=c, dtype=dtype, framework=f,
                   checkout=(which if job in old_results else "new"), **res)
        msg = res["skipped"] if "skipped" in res else f"{res['median_s']:.3f} s/epoch, peak RSS {res['peak_rss_mb']:.0f} MB"
        if "compile_s" in res:
            msg += f", first epoch {res['first_epoch_s']:.2f} s ({res['compile_traces']} traces) untimed"
        tag = f" {which} ({base_sha[:7] if which == 'old' else 'this checkout'})" if job in old_results else ""
        print(f"[repeat {r + 1}/{args.repeats}] {c} {dtype} {f}{tag}: {msg}", flush=True)
        return res

    def stop(signum, frame):  # SIGTERM (timeout, a job runner): end like Ctrl-C, so the worker is killed too
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, stop)
    try:
        for r in range(args.repeats):
            for job in jobs:
                if job not in old_results:
                    measure(r, job, "new")
                else:
                    order = ("old", "new") if r % 2 == 0 else ("new", "old")  # alternate the first: drift cancels
                    got = {which: measure(r, job, which) for which in order}
                    pair = {"repeat": r + 1, "order": "-".join(order),
                            "old_s": got["old"].get("median_s"), "new_s": got["new"].get("median_s")}
                    pairs[job].append(pair)
                    out.record(record="pair", case=job[0], dtype=job[1], framework=job[2], baseline=base_sha, **pair)
                out.markdown(*summaries(results, old_results, pairs, base_sha), done=done, total=total)
    except KeyboardInterrupt as exc:
        name = str(exc) or "SIGINT"
        out.record(record="interrupted", signal=name, done=done, total=total)
        print(f"run.py: interrupted ({name}) after {done} of {total} worker runs; "
              f"{args.markdown or args.json or 'the lines above'} holds what was done", file=sys.stderr)
        sys.exit(128 + signal.Signals[name].value)

    rows, comps = summaries(results, old_results, pairs, base_sha)
    for row in rows:
        out.record(record="row", **row)
    for comp in comps:
        out.record(record="comparison", **comp)
    out.record(record="end", load_after=os.getloadavg()[0])
    out.markdown(rows, comps, done=done, total=total)
    out.show(rows, comps)


def summaries(results: dict, old_results: dict, pairs: dict, base_sha: str | None) -> tuple[list[dict], list[dict]]:
    """The table rows (baseline rows before this checkout's) and the old/new comparisons from the runs so far."""
    rows = []
    for job, runs in results.items():
        c, dtype, f = job
        if job in old_results:
            rows.append(summarize(CASES[c], f, dtype, old_results[job], baseline=base_sha))
        rows.append(summarize(CASES[c], f, dtype, runs))
    for row in rows:
        ref = next((x for x in rows if x["case"] == row["case"] and x["dtype"] == row["dtype"]
                    and x["framework"] == "numpy-loop" and x["median_s"]), None)
        if ref and row["median_s"]:
            row["ratio_to_numpy_loop"] = row["median_s"] / ref["median_s"]
    comps = []
    for job in old_results:
        old, new = (next(x for x in rows if (x["case"], x["dtype"]) == job[:2] and x["backend"] == job[2][6:]
                         and x["framework"] == name) for name in (f"xpnet@{base_sha[:7]}", "xpnet"))
        comps.append(comparison(job, old, new, pairs[job], base_sha))
    return rows, comps


def notes_of(rows: list[dict]) -> list[tuple[str, str]]:
    """(framework, what it is and the distinct notes its workers gave)."""
    notes = {}
    for r in rows:
        name = r["framework"] if r["backend"] is None else f"{r['framework']}-{r['backend']}"
        seen = notes.setdefault(name, [NOTES[name]] if name in NOTES else [])
        if r.get("note") and r["note"] not in seen:
            seen.append(r["note"])
    return [(name, "; ".join(texts)) for name, texts in sorted(notes.items()) if texts]


class Output:
    """--json as JSON lines appended as they happen (one write and fsync per line, so a run killed at any
    moment leaves whole lines); --markdown rewritten after every measurement (a temporary file renamed over
    it), with the tables of what is done so far and a status line saying whether the run finished."""

    def __init__(self, args, load_before, baseline, cases):
        self.args, self.load_before, self.baseline, self.cases = args, load_before, baseline, cases
        self.fd = None
        if args.json:
            self.fd = os.open(args.json, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def record(self, **rec) -> None:
        if self.fd is not None:
            os.write(self.fd, (json.dumps(rec) + "\n").encode())
            os.fsync(self.fd)

    def markdown(self, rows, comps, done: int, total: int) -> None:
        if not self.args.markdown:
            return
        base_sha = self.baseline[1] if self.baseline else None
        status = ("complete" if done == total else
                  f"PARTIAL: {done} of {total} worker runs done (a run cut short leaves this; medians are over "
                  f"the repeats done)")
        grid = table(rows)
        md = ["# xpnet training benchmark", ""] + header(self.args, self.load_before, self.baseline)
        md += [f"- status: {status}", ""]
        md += ["| " + " | ".join(grid[0]) + " |", "|" + " --- |" * len(grid[0])]
        md += ["| " + " | ".join(line) + " |" for line in grid[1:]] + [""]
        md += [f"- {c}: {CASES[c].title}" for c in self.cases] + [f"- {n}: {t}" for n, t in notes_of(rows)]
        if comps:
            cgrid = comparison_table(comps)
            md += ["", f"## This checkout (new) against {base_sha[:12]} (old)", "",
                   "Each repeat times old and new back to back (order alternating); new/old is the median of the "
                   "paired ratios, with a 95 % bootstrap interval (10,000 resamples of the pairs, seed 0).", ""]
            md += ["| " + " | ".join(cgrid[0]) + " |", "|" + " --- |" * len(cgrid[0])]
            md += ["| " + " | ".join(line) + " |" for line in cgrid[1:]]
        tmp = self.args.markdown.with_name(self.args.markdown.name + ".tmp")
        tmp.write_text("\n".join(md) + "\n")
        os.replace(tmp, self.args.markdown)

    def show(self, rows, comps) -> None:
        def show(grid):
            widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
            print()
            for line in grid:
                print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        show(table(rows))
        for name, note in notes_of(rows):
            print(f"  {name}: {note}")
        for c in self.cases:
            print(f"  {c}: {CASES[c].title}")
        if comps:
            print(f"\nthis checkout (new) against {self.baseline[1][:12]} (old), paired measurements:")
            show(comparison_table(comps))


if __name__ == "__main__":
    main()
