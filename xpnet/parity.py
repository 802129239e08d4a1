"""Backend parity: the same model from the same seed, trained on the same batches on each backend,
compared with a reference (NumPy float64 on the host).

Two figures, because training can amplify a rounding difference at every step (README, "Backend parity",
gives measured rates):
- lockstep: at every step each backend starts from the reference's current state (parameters,
  optimizer buffers, learning rate) and batch; its loss, gradients and updated parameters are
  compared with the reference's. This is pure implementation error and is judged against TOLERANCES.
- free-running: each backend trains on its own for `steps` steps; the difference after the last
  step, and its growth per step (geometric mean of successive ratios), say how sensitive the run is.
  Judged only against `free_tol` when one is given.
Relative difference of a tensor: max|a - b| / max|b|; the worst over tensors is reported.
"""
from __future__ import annotations

import math

import numpy as np

from ._callable import make_callable
from .backend import Backend
from .backend import backend as select_backend
from .layers import Dense, ReLU, Sigmoid, Tanh
from .errors import InputError
from .layers.base import where_raised
from .params import POSITIVE_INT, check
from .model import Sequential
from .optimizers import SGD, Adam

# Lockstep tolerance per dtype: float64 is ~1e5 ulps of headroom for reordered sums; float32 is
# compared with the float64 reference, so it carries float32 rounding (~6e-8) times the same headroom.
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}


def rel_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max|a - b|, max|a - b| / max|b|) in float64; relative is 0 when both are zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    abs_diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    rel = abs_diff / scale if scale else (0.0 if abs_diff == 0.0 else math.inf)
    return abs_diff, rel


def default_problem(n: int = 512, features: int = 16, classes: int = 4, seed: int = 0):
    """Well-scaled data: standard-normal features, labels from a random linear teacher. X: (n, features)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features))
    y = np.argmax(X @ rng.standard_normal((features, classes)), axis=1)
    return X, y


def default_model(bk, dtype: str, optimizer: str = "sgd", features: int = 16, classes: int = 4, seed: int = 0):
    """The parity model: 3 hidden layers (tanh, relu, sigmoid), L1 + L2, momentum SGD or Adam.

    Well conditioned: unit-scale inputs, Glorot init, a small learning rate and smooth saturating
    activations keep each step close to the identity map, so rounding differences stay at rounding level.
    """
    opt = SGD(0.01, momentum=0.9) if optimizer == "sgd" else Adam(0.001)
    return Sequential([Dense(features, 32), Tanh(), Dense(32, 32), ReLU(), Dense(32, 16), Sigmoid(),
                       Dense(16, classes)], loss="softmax_cross_entropy", optimizer=opt, l1=1e-4, l2=1e-3,
                      backend=bk, dtype=dtype, seed=seed)


def parity(model_fn=None, X=None, y=None, backends=("numpy",), dtypes=("float64",), steps: int = 100,
           batch_size: int = 64, device: str | None = None, reference=("numpy", "float64"), seed: int = 0,
           free_tol: float | None = None, optimizer: str = "sgd") -> dict:
    """Run the parity check. `model_fn(backend, dtype)` builds the model (same seed every call);
    X, y: host data. Returns {'reference', 'steps', 'results': [...], 'passed'}."""
    if model_fn is None:
        model_fn = lambda bk, dtype: default_model(bk, dtype, optimizer)  # noqa: E731
        if X is None:
            X, y = default_problem()
    if X is None or y is None:
        raise InputError("parity with your own model_fn needs host data X and y")
    check("steps", steps, POSITIVE_INT)
    ref = model_fn(Backend(reference[0], "cpu"), reference[1])
    Xh = np.asarray(X)
    n = Xh.shape[0]
    batch_size = min(batch_size, n)
    rng = np.random.default_rng(seed)
    batches, order = [], np.empty(0, dtype=np.int64)
    while len(batches) < steps:
        if order.size < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        batches.append(order[:batch_size])
        order = order[batch_size:]

    # the reference run, with its state before and its results after every step (and the random inputs of
    # layers such as Dropout, drawn once on the host and given to every backend)
    with ref.bk:
        init = ref.get_state()
        Xr, (Yr, _) = ref.as_input(Xh), ref.as_targets(y, n)
        before, after, noises = [], [], []
        for idx in batches:
            before.append(ref.get_state())
            drawn = ref.draw_noise(len(idx))
            noise = None if drawn is None else [None if a is None else ref.bk.to_numpy(a, copy=True) for a in drawn]
            noises.append(noise)
            idx_r = ref.bk.asarray(idx)
            value, _, grads = ref.value_and_grads(ref.xp.take(Xr, idx_r, axis=0), ref.xp.take(Yr, idx_r, axis=0),
                                                  noise=_put(ref, noise))
            host_grads = {k: ref.bk.to_numpy(v, copy=True) for k, v in grads.items()}
            ref.apply_gradients(grads)
            after.append({"loss": float(value), "grads": host_grads,
                          "params": {k: np.array(v) for k, v in ref.parameters().items()}})

    results = []
    for name in backends:
        for dtype in dtypes:
            bk = select_backend(name, device if name in ("cupy", "torch", "jax") else None)
            try:
                with bk:
                    results.append(_compare(model_fn, bk, dtype, Xh, y, batches, noises, init, before, after,
                                            free_tol))
            except Exception as exc:  # a backend that fails is a parity result too: say where and why
                results.append(_failed_row(bk, dtype, exc))
    return {"reference": {"backend": reference[0], "device": "cpu", "dtype": reference[1]}, "steps": steps,
            "results": results, "passed": all(r["passed"] for r in results)}


def _put(model, noise):
    """Host random inputs -> the model's backend and dtype."""
    return None if noise is None else [None if a is None else model.bk.asarray(a, dtype=model.dtype) for a in noise]


def _failed_row(bk, dtype, exc) -> dict:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"backend": bk.name, "device": bk.device, "dtype": dtype, "max_abs_diff": math.inf,
            "max_rel_diff": math.inf, "free_max_rel_diff": math.inf, "growth_per_step": None,
            "tolerance": TOLERANCES[dtype], "passed": False, "parameters": {},
            "error": {"type": type(exc).__name__, "message": message[:300], "where": where_raised(exc)}}


def _compare(model_fn, bk, dtype, Xh, y, batches, noises, init, before, after, free_tol) -> dict:
    free, lock = model_fn(bk, dtype), model_fn(bk, dtype)
    free.set_state(init)
    xp, to_np = free.xp, bk.to_numpy
    Xd = free.as_input(Xh)
    Yd, _ = free.as_targets(y, Xh.shape[0])
    per_param = {k: [0.0, 0.0] for k in init["params"]}
    worst_abs = worst_rel = 0.0
    free_diffs = []
    for step, idx in enumerate(batches):
        idx_d = bk.asarray(idx)
        xb, yb = xp.take(Xd, idx_d, axis=0), xp.take(Yd, idx_d, axis=0)
        ref = after[step]
        # lockstep: the reference's state in, one step, everything out compared
        lock.set_state(before[step])
        value, _, grads = lock.value_and_grads(xb, yb, noise=_put(lock, noises[step]))
        host_grads = {k: to_np(v, copy=True) for k, v in grads.items()}
        lock.apply_gradients(grads)
        a, r = rel_diff(np.asarray(float(value)), np.asarray(ref["loss"]))
        worst_abs, worst_rel = max(worst_abs, a), max(worst_rel, r)
        params = lock.parameters()
        for k in per_param:
            for got, want in ((host_grads[k], ref["grads"][k]), (to_np(params[k]), ref["params"][k])):
                a, r = rel_diff(got, want)
                per_param[k][0], per_param[k][1] = max(per_param[k][0], a), max(per_param[k][1], r)
        # free-running: its own state, the same batch and random inputs
        free.train_step(xb, yb, noise=_put(free, noises[step]))
        fp = free.parameters()
        free_diffs.append(max(rel_diff(to_np(fp[k]), ref["params"][k])[1] for k in per_param))
    worst_abs = max([worst_abs] + [v[0] for v in per_param.values()])
    worst_rel = max([worst_rel] + [v[1] for v in per_param.values()])
    ratios = [b / a for a, b in zip(free_diffs, free_diffs[1:]) if a > 0 and b > 0]
    growth = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
    passed = worst_rel <= TOLERANCES[dtype] and (free_tol is None or free_diffs[-1] <= free_tol)
    return {"backend": bk.name, "device": bk.device, "dtype": dtype, "max_abs_diff": worst_abs,
            "max_rel_diff": worst_rel, "free_max_rel_diff": free_diffs[-1], "growth_per_step": growth,
            "tolerance": TOLERANCES[dtype], "passed": passed,
            "parameters": {k: {"max_abs_diff": v[0], "max_rel_diff": v[1]} for k, v in per_param.items()}}


make_callable(__name__)  # xpnet.parity(...) calls parity() above; `import xpnet.parity` gives this module
