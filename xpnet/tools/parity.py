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

compile=True adds, after each backend's eager row, two rows for its compiled training step
(`model.compiled_step()`, the one call `fit` makes per minibatch with compile=True):
- "<backend> (compiled)": lockstep and free-running against the reference as above, except that the
  compiled step returns no gradients: its loss, updated parameters and updated optimizer buffers are
  compared (the buffers carry the gradient for momentum SGD and Adam).
- "<backend> (compiled) vs <backend> eager": the same figures against that backend's own eager step in the
  same dtype (lockstep from the same reference states; free-running eager against free-running compiled).
Both are judged against the same TOLERANCES. A backend without a compiler (numpy, array_api_strict, cupy)
gets one row that says so ("skipped", passed None), which does not fail the report.
"""
from __future__ import annotations

import math

import numpy as np

from .._callable import make_callable
from ..backend import COMPILERS, GPU_CAPABLE, Backend
from ..backend import backend as select_backend
from ..layers import (GELU, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Embedding, Flatten, LayerNorm, MaxPool2D,
                      MultiHeadAttention, PositionalEmbedding, ReLU, Sigmoid, Tanh)
from ..layers.combinators import Chain, Concatenate, Residual
from ..errors import InputError
from ..layers.base import where_raised
from ..checks import POSITIVE_INT, check
from ..models.sequential import Sequential
from ..optimizers import SGD, Adam

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


def default_problem(n: int = 512, features: int = 16, classes: int = 4, seed: int = 0, input_shape=None):
    """Well-scaled data: standard-normal features, labels from a random linear teacher. X: (n, features), or
    (n, *input_shape) when given."""
    rng = np.random.default_rng(seed)
    shape = (features,) if input_shape is None else tuple(input_shape)
    X = rng.standard_normal((n, *shape))
    y = np.argmax(X.reshape(n, -1) @ rng.standard_normal((math.prod(shape), classes)), axis=1)
    return X, y


def config_model(spec, seed: int = 0):
    """(model_fn, X, y) for parity on a model config (a registry spec: dict, JSON text or .json path, as
    `xpnet parity --model model.json` takes): the data is `default_problem` in the model's input shape and
    output count; a config without a seed gets `seed`, so every backend starts from the same parameters."""
    from ..registry import model_from_config
    probe = model_from_config(spec, "numpy", dtype="float64")
    options = {}
    if isinstance(probe, Sequential) and type(probe).get_config is Sequential.get_config and probe.seed is None:
        options["seed"] = seed
    model_fn = lambda bk, dtype: model_from_config(probe_spec, bk, None, dtype, **options)  # noqa: E731
    from ..registry import serialize
    probe_spec = serialize(probe)
    X, y = default_problem(classes=probe.n_outputs, seed=seed, input_shape=probe.input_shape)
    return model_fn, X, y


def default_model(bk, dtype: str, optimizer: str = "sgd", features: int = 16, classes: int = 4, seed: int = 0):
    """The parity model: 3 hidden layers (tanh, relu, sigmoid), L1 + L2, momentum SGD or Adam.

    Well conditioned: unit-scale inputs, Glorot init, a small learning rate and smooth saturating
    activations keep each step close to the identity map, so rounding differences stay at rounding level.
    """
    opt = SGD(0.01, momentum=0.9) if optimizer == "sgd" else Adam(0.001)
    return Sequential([Dense(features, 32), Tanh(), Dense(32, 32), ReLU(), Dense(32, 16), Sigmoid(),
                       Dense(16, classes)], loss="softmax_cross_entropy", optimizer=opt, l1=1e-4, l2=1e-3,
                      backend=bk, dtype=dtype, seed=seed)


def cnn_problem(n: int = 256, classes: int = 4, seed: int = 0):
    """Small images for the CNN parity model: X (n, 1, 8, 8) standard normal, labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, 8, 8))
    y = np.argmax(X.reshape(n, -1) @ rng.standard_normal((64, classes)), axis=1)
    return X, y


def cnn_model(bk, dtype: str, optimizer: str = "sgd", classes: int = 4, seed: int = 0):
    """The CNN parity model on (1, 8, 8) images: Conv2D 4@3x3 padding 1, tanh, max-pool 2, Conv2D 6@3x3 padding 1,
    ReLU, average-pool 2, dense; L1 + L2, momentum SGD or Adam (Glorot init, small steps, as default_model)."""
    opt = SGD(0.01, momentum=0.9) if optimizer == "sgd" else Adam(0.001)
    return Sequential([Conv2D(1, 4, 3, padding=1, init="glorot_uniform"), Tanh(), MaxPool2D(2),
                       Conv2D(4, 6, 3, stride=1, padding=1, init="glorot_uniform"), ReLU(), AvgPool2D(2), Flatten(),
                       Dense(24, classes)], loss="softmax_cross_entropy", optimizer=opt, l1=1e-4, l2=1e-3,
                      backend=bk, dtype=dtype, seed=seed, input_shape=(1, 8, 8))


def resnet_model(bk, dtype: str, optimizer: str = "sgd", classes: int = 4, seed: int = 0):
    """The residual parity model on (1, 8, 8) images: a stem Conv2D, a residual block with BatchNorm (identity
    shortcut; its convolution without bias, whose gradient BatchNorm makes zero), a strided block with Dropout and a 1x1 strided Conv2D shortcut, average- and max-pooling
    concatenated over channels, and one Dense used twice (one parameter, its gradients summed)."""
    opt = SGD(0.01, momentum=0.9) if optimizer == "sgd" else Adam(0.001)
    conv = lambda i, o, k=3, s=1, bias=True: Conv2D(i, o, k, stride=s, padding=k // 2, bias=bias,  # noqa: E731
                                                   init="glorot_uniform")
    tied = Dense(8, 8)
    return Sequential([conv(1, 4), Tanh(),
                       Residual(Chain([conv(4, 4, bias=False), BatchNorm(), Tanh(), conv(4, 4)])),
                       Residual(Chain([conv(4, 6, s=2), Tanh(), Dropout(0.2)]), shortcut=conv(4, 6, k=1, s=2)),
                       Concatenate([AvgPool2D(2), MaxPool2D(2)], axis=1), Flatten(), Dense(48, 8), Tanh(), tied,
                       Tanh(), tied, Dense(8, classes)], loss="softmax_cross_entropy", optimizer=opt, l1=1e-4,
                      l2=1e-3, backend=bk, dtype=dtype, seed=seed, input_shape=(1, 8, 8))


def sequence_problem(n: int = 64, vocab: int = 11, time: int = 6, seed: int = 0):
    """Token sequences for the transformer parity model: X (n, time) integer ids in [0, vocab), y (n, time) the
    next token of each position (X shifted left, its last target the first token: a cyclic copy task)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, vocab, (n, time))
    return X, np.roll(X, -1, axis=1)


def transformer_model(bk, dtype: str, optimizer: str = "sgd", vocab: int = 11, time: int = 6, dim: int = 8,
                      heads: int = 2, seed: int = 0):
    """The tiny transformer parity model on (time,) token ids: Embedding, PositionalEmbedding, a pre-norm
    residual attention block [LayerNorm, causal MultiHeadAttention] and an MLP block [LayerNorm, Dense, GELU,
    Dense], LayerNorm and Dense(vocab): logits (time, vocab) per sample, trained on every position."""
    opt = SGD(0.05, momentum=0.9) if optimizer == "sgd" else Adam(0.001)
    return Sequential([Embedding(vocab, dim, std=0.5), PositionalEmbedding(time, dim, std=0.5),
                       Residual(Chain([LayerNorm(dim), MultiHeadAttention(dim, heads, causal=True)])),
                       Residual(Chain([LayerNorm(dim), Dense(dim, 2 * dim), GELU(), Dense(2 * dim, dim)])),
                       LayerNorm(dim), Dense(dim, vocab)], loss="softmax_cross_entropy", optimizer=opt, l2=1e-3,
                      backend=bk, dtype=dtype, seed=seed, input_shape=(time,))


MODELS = {"mlp": (default_model, default_problem), "cnn": (cnn_model, cnn_problem),
          "resnet": (resnet_model, cnn_problem), "transformer": (transformer_model, sequence_problem)}


def _model_and_data(model_fn, X, y, model: str, optimizer: str, steps: int):
    """(model_fn, X, y) of a parity run: without model_fn, `model` of MODELS built with `optimizer` (and its problem's
    host data where X is None); an unknown model, your own model_fn without X and y, or steps not a positive integer
    are refused in one line."""
    if model_fn is None:
        if model not in MODELS:
            raise InputError(f"unknown parity model {model!r}; choose one of: {', '.join(MODELS)}")
        build, problem = MODELS[model]
        model_fn = lambda bk, dtype: build(bk, dtype, optimizer)  # noqa: E731
        if X is None:
            X, y = problem()
    if X is None or y is None:
        raise InputError("parity with your own model_fn needs host data X and y")
    check("steps", steps, POSITIVE_INT)
    return model_fn, X, y


def parity(model_fn=None, X=None, y=None, backends=("numpy",), dtypes=("float64",), steps: int = 100,
           batch_size: int = 64, device: str | None = None, reference=("numpy", "float64"), seed: int = 0,
           free_tol: float | None = None, optimizer: str = "sgd", compile: bool = False, model: str = "mlp",
           kernels: str = "default") -> dict:
    """Run the parity check. `model_fn(backend, dtype)` builds the model (same seed every call);
    X, y: host data. compile: also compare each backend's compiled step (see the module's docstring). model: without
    model_fn, "mlp" (default_model on default_problem), "cnn" (cnn_model on cnn_problem's 8x8 images), "resnet" or
    "transformer" (transformer_model on sequence_problem's token ids, integer targets per position).
    Returns {'reference', 'steps', 'results': [...], 'passed'} (and 'compile': True); a row has a 'label' (e.g. 'jax',
    'jax (compiled)', 'jax (compiled) vs jax eager'), and 'skipped' with passed None where it could not run.
    kernels: which path the backends' layers take (the reference model always runs the array-API reference):
    "default" (the models' own: native kernels unless XPNET_NATIVE_KERNELS=0), "native", "reference" (rows
    labelled "<backend> (reference kernels)" where the backend has native kernels), or "both" (each such backend
    twice, so its native kernels and the reference code are both held to the tolerance). Every row says which
    native kernels ran ('kernels': names, empty for none)."""
    model_fn, X, y = _model_and_data(model_fn, X, y, model, optimizer, steps)
    if kernels not in KERNEL_MODES:
        raise InputError(f"kernels={kernels!r}: choose one of {', '.join(KERNEL_MODES)}")
    ref = model_fn(Backend(reference[0], "cpu"), reference[1])
    if hasattr(ref, "native_kernels"):
        ref.native_kernels = False  # the reference is the array-API code
    Xh = np.asarray(X)
    n = Xh.shape[0]
    batches = parity_batches(n, batch_size, steps, seed)

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
            state = ref.get_state()
            after.append({"loss": float(value), "grads": host_grads, "params": state["params"],
                          "opt_state": state["opt_state"]})

    results = []
    against = f"{reference[0]} {reference[1]}"
    for name in backends:
        for dtype in dtypes:
            bk = select_backend(name, device if name in GPU_CAPABLE else None)
            modes = {"default": [None], "native": [True], "reference": [False], "both": [True, False]}[kernels]
            if bk.kernels is None:
                modes = modes[:1]  # the reference code either way
            for native in modes:
                suffix = " (reference kernels)" if native is False and bk.kernels is not None else ""
                make = _with_kernels(model_fn, native)
                eager = {} if compile else None  # the eager run, step by step, for the compiled-vs-eager row
                try:
                    with bk:
                        results.append(_compare(make, bk, dtype, Xh, y, batches, noises, init, before, after,
                                                free_tol, eager))
                except Exception as exc:  # a backend that fails is a parity result too: say where and why
                    results.append(_failed_row(bk, dtype, exc))
                    eager = None
                used = _kernels_of(make, bk, dtype)
                results[-1].update(label=bk.name + suffix, compiled=False, against=against, kernels=used)
                if compile:
                    rows = _compiled_rows(make, bk, dtype, Xh, y, batches, noises, init, before, after, free_tol,
                                          eager, against, suffix)
                    results.extend(dict(row, kernels=used) for row in rows)
    report = {"reference": {"backend": reference[0], "device": "cpu", "dtype": reference[1]}, "steps": steps,
              "results": results, "passed": all(r["passed"] is not False for r in results)}
    return dict(report, compile=True) if compile else report


KERNEL_MODES = ("default", "native", "reference", "both")


def _with_kernels(model_fn, native):
    """model_fn whose models run native kernels (True), the reference code (False), or their own default (None)."""
    if native is None:
        return model_fn

    def build(bk, dtype):
        model = model_fn(bk, dtype)
        if hasattr(model, "native_kernels"):
            model.native_kernels = native
        return model

    return build


def _kernels_of(build, bk, dtype) -> list:
    """The names of the native kernels a model from `build` runs on bk (sorted; empty for none)."""
    try:
        with bk:
            model = build(bk, dtype)
        return sorted(set(model.kernels_used().values())) if hasattr(model, "kernels_used") else []
    except Exception:
        return []


def parity_batches(n: int, batch_size: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """The host index vectors of `steps` minibatches of min(batch_size, n) rows: permutations of 0..n-1 from
    default_rng(seed), joined and cut."""
    batch_size = min(batch_size, n)
    rng = np.random.default_rng(seed)
    batches, order = [], np.empty(0, dtype=np.int64)
    while len(batches) < steps:
        if order.size < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        batches.append(order[:batch_size])
        order = order[batch_size:]
    return batches


def _put(model, noise):
    """Host random inputs -> the model's backend and dtype."""
    return None if noise is None else [None if a is None else model.bk.asarray(a, dtype=model.dtype) for a in noise]


def _failed_row(bk, dtype, exc, **label) -> dict:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"backend": bk.name, "device": bk.device, "dtype": dtype, "max_abs_diff": math.inf,
            "max_rel_diff": math.inf, "free_max_rel_diff": math.inf, "growth_per_step": None,
            "tolerance": TOLERANCES[dtype], "passed": False, "parameters": {},
            "error": {"type": type(exc).__name__, "message": message[:300], "where": where_raised(exc)}, **label}


def _skipped_row(bk, dtype, why: str, **label) -> dict:
    return {"backend": bk.name, "device": bk.device, "dtype": dtype, "max_abs_diff": None, "max_rel_diff": None,
            "free_max_rel_diff": None, "growth_per_step": None, "tolerance": TOLERANCES[dtype], "passed": None,
            "parameters": {}, "skipped": why, **label}


class _Worst:
    """The worst absolute and relative difference seen, overall and per parameter (its buffers included)."""

    def __init__(self, names):
        self.abs = self.rel = 0.0
        self.per_param = {k: [0.0, 0.0] for k in names}

    def add(self, got, want, name=None):
        a, r = rel_diff(got, want)
        self.abs, self.rel = max(self.abs, a), max(self.rel, r)
        if name is not None:
            entry = self.per_param[name]
            entry[0], entry[1] = max(entry[0], a), max(entry[1], r)

    def row(self, bk, dtype, free_diffs, free_tol, **extra) -> dict:
        ratios = [b / a for a, b in zip(free_diffs, free_diffs[1:]) if a > 0 and b > 0]
        growth = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
        passed = self.rel <= TOLERANCES[dtype] and (free_tol is None or free_diffs[-1] <= free_tol)
        return {"backend": bk.name, "device": bk.device, "dtype": dtype, "max_abs_diff": self.abs,
                "max_rel_diff": self.rel, "free_max_rel_diff": free_diffs[-1], "growth_per_step": growth,
                "tolerance": TOLERANCES[dtype], "passed": passed,
                "parameters": {k: {"max_abs_diff": v[0], "max_rel_diff": v[1]} for k, v in self.per_param.items()},
                **extra}


def _compiled_rows(model_fn, bk, dtype, Xh, y, batches, noises, init, before, after, free_tol, eager,
                   against, suffix: str = "") -> list[dict]:
    """The compiled step against the reference, and against the same backend's eager step (`eager`: what
    _compare recorded, None when the eager run failed). suffix: the eager row's label tail (" (reference kernels)")."""
    label = f"{bk.name} (compiled){suffix}"
    vs_label = {"label": f"{label} vs {bk.name}{suffix} eager", "compiled": True,
                "against": f"{bk.name}{suffix} eager"}
    if not bk.compiles:
        return [_skipped_row(bk, dtype, f"no compiler: {bk.name} has none (compiled steps run on "
                                        f"{', '.join(COMPILERS)})", label=label, compiled=True, against=against)]
    vs_ref = _Worst(init["params"])
    vs_eager = _Worst(init["params"]) if eager else None
    free_ref, free_eager = [], []
    try:
        with bk:
            model = model_fn(bk, dtype)
            step = model.compiled_step()
            to_np = bk.to_numpy
            model.set_state(init)
            Xd = model.as_input(Xh)
            Yd, _ = model.as_targets(y, Xh.shape[0])
            # the free-running state lives here; the model's state is set to the reference's before every lockstep
            free_params = dict(model.state.params)
            free_opt = {k: dict(bufs) for k, bufs in model.state.opt_state.items()}
            free_lr, free_t = init["lr"], init["step"]
            for i, idx in enumerate(batches):
                idx_d, noise = bk.asarray(idx), _put(model, noises[i])
                Xs, Ys, idx_s = model.step_inputs(Xd, Yd, idx_d)
                # lockstep: the reference's state in, one compiled step, loss, parameters and buffers out
                model.set_state(before[i])
                hyper = bk.scalar_args(model.update_hyper(before[i]["lr"], before[i]["step"] + 1)[1])
                # a model with layer state (BatchNorm) passes it: the training forward normalizes with the
                # batch's statistics, so the running ones (not compared here) change no parameter
                state_in = (model.state.layer_state,) if model.has_layer_state else ()
                params, opt_state, value = step(model.state.params, model.state.opt_state, Xs, Ys, idx_s, noise,
                                                hyper, 1, *state_in)[:3]
                got = {"loss": float(value), "params": {k: to_np(v, copy=True) for k, v in params.items()},
                       "opt_state": {k: {b: to_np(v, copy=True) for b, v in bufs.items()}
                                     for k, bufs in opt_state.items()}}
                for worst, want in ((vs_ref, after[i]), (vs_eager, eager["lock"][i] if eager else None)):
                    if worst is None:
                        continue
                    worst.add(np.asarray(got["loss"]), np.asarray(want["loss"]))
                    for k in worst.per_param:
                        worst.add(got["params"][k], want["params"][k], k)
                        for b, v in got["opt_state"].get(k, {}).items():
                            worst.add(v, want["opt_state"][k][b], k)
                # free-running: its own state, the same batch and random inputs
                free_t += 1
                free_lr, hyper = model.update_hyper(free_lr, free_t)
                free_params, free_opt = step(free_params, free_opt, Xs, Ys, idx_s, noise, bk.scalar_args(hyper), 1,
                                             *state_in)[:2]
                fp = {k: to_np(v) for k, v in free_params.items()}
                free_ref.append(max(rel_diff(fp[k], after[i]["params"][k])[1] for k in fp))
                if eager:
                    free_eager.append(max(rel_diff(fp[k], eager["free"][i][k])[1] for k in fp))
            traces = model.compile_traces_
    except Exception as exc:  # e.g. a layer that does host work cannot be traced: a row that says where
        return [_failed_row(bk, dtype, exc, label=label, compiled=True, against=against),
                _skipped_row(bk, dtype, "the compiled step failed (its row says why)", **vs_label)]
    rows = [vs_ref.row(bk, dtype, free_ref, free_tol, label=label, compiled=True, against=against,
                       compile_traces=traces)]
    if eager:
        rows.append(vs_eager.row(bk, dtype, free_eager, free_tol, compile_traces=traces, **vs_label))
    else:
        rows.append(_skipped_row(bk, dtype, f"the eager {bk.name} run failed (its row says why)", **vs_label))
    return rows


def _compare(model_fn, bk, dtype, Xh, y, batches, noises, init, before, after, free_tol, record=None) -> dict:
    """The eager rows: lockstep and free-running against the reference. record: a dict that gets the eager
    run's step results ("lock": loss, parameters and buffers per lockstep; "free": parameters per step)."""
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
        if record is not None:
            state = lock.get_state()
            record.setdefault("lock", []).append({"loss": float(value), "params": state["params"],
                                                  "opt_state": state["opt_state"]})
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
        if record is not None:
            record.setdefault("free", []).append({k: to_np(v, copy=True) for k, v in fp.items()})
    worst_abs = max([worst_abs] + [v[0] for v in per_param.values()])
    worst_rel = max([worst_rel] + [v[1] for v in per_param.values()])
    ratios = [b / a for a, b in zip(free_diffs, free_diffs[1:]) if a > 0 and b > 0]
    growth = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
    passed = worst_rel <= TOLERANCES[dtype] and (free_tol is None or free_diffs[-1] <= free_tol)
    return {"backend": bk.name, "device": bk.device, "dtype": dtype, "max_abs_diff": worst_abs,
            "max_rel_diff": worst_rel, "free_max_rel_diff": free_diffs[-1], "growth_per_step": growth,
            "tolerance": TOLERANCES[dtype], "passed": passed,
            "parameters": {k: {"max_abs_diff": v[0], "max_rel_diff": v[1]} for k, v in per_param.items()}}


# ---- mixed precision against float32 (xpnet parity --precision) -----------------------------------------------

#: lockstep tolerance of a mixed step against the float32 step from the same state: the gradients and the update,
#: each as one vector over every parameter, ||mixed - float32|| / ||float32||, the median over the steps (the
#: compute type's rounding: bfloat16 keeps 8 mantissa bits, float16 11). Measured on the MLP (100 steps of momentum
#: SGD, torch, JAX and NumPy alike, docs/precision.md): gradients 1.5e-2 (bf16) and 7e-4 to 8e-4 (fp16), updates
#: 2.6e-3 and 1.2e-4 to 1.4e-4; the first step alone 4.0e-3 and 2.6e-3. The worst step is reported too, not
#: judged: where a ReLU's input or a near-zero gradient changes sign in 16 bits, one step differs more (up to
#: 6e-2), and Adam's first update (about lr * sign(g)) more still.
MIXED_TOLERANCES = {"bf16-mixed": 2e-2, "fp16-mixed": 2e-3}
#: free-running: the loss of the last step within this relative margin of the float32 run's loss on that step
#: (measured on the MLP after 100 steps: 1.4e-4 and 3e-5 at most, the largest gap along the curve 5.4e-4 and 8e-5)
MIXED_FREE_TOLERANCES = {"bf16-mixed": 1e-2, "fp16-mixed": 5e-3}


def mixed_parity(precision: str, model_fn=None, X=None, y=None, backends=("torch", "jax"), steps: int = 100,
                 batch_size: int = 64, device: str | None = None, seed: int = 0, optimizer: str = "sgd",
                 model: str = "mlp", free_tol: float | None = None, tol: float | None = None) -> dict:
    """A mixed-precision run (precision "bf16-mixed" or "fp16-mixed") against the float32 run of the same seed on
    the same backend, float32 matrix products pinned to full precision on both sides (`Backend.exact_matmul`).

    - lockstep: at every step a mixed model starts from the float32 run's state (parameters, optimizer buffers,
      layer state; its own loss scale) and takes the same batch and random inputs for one step: its gradients
      (float32, unscaled) and its update (parameters after minus before) are compared with float32's as one vector
      over all parameters, ||mixed - float32|| / ||float32||. The median over the steps is judged against tol
      (default MIXED_TOLERANCES, set on the MLP; deeper sums need more: docs/precision.md gives the CNN's, the
      residual model's and the transformer's figures); the first step's and the worst are reported. A step
      that float16 loss scaling skipped is counted (`lockstep_skipped`) and left out of the update figures.
    - free-running: a mixed model trains on its own for `steps` steps on the same batches; the two runs' per-step
      losses are compared: `free_final_rel` (the last step's relative gap, judged against free_tol, default
      MIXED_FREE_TOLERANCES) and `free_loss_gap` (the largest along the curve, reported).

    model_fn(backend, dtype) builds the float32 model (default: `model` of MODELS with `optimizer`); the mixed one
    is its config with precision= added, its state set to the float32 model's. A backend without the compute type
    is refused in one line (Backend.compute_dtype). Returns {"precision", "compute", "steps", "tolerance",
    "free_tolerance", "results": [a row per backend], "passed"}."""
    from ..precision import Policy
    compute = Policy(precision).compute  # an unknown name is refused in one line
    model_fn, X, y = _model_and_data(model_fn, X, y, model, optimizer, steps)
    tol = MIXED_TOLERANCES[precision] if tol is None else tol
    free_tol = MIXED_FREE_TOLERANCES[precision] if free_tol is None else free_tol
    bks = [select_backend(name, device if name in GPU_CAPABLE else None) for name in backends]
    for bk in bks:
        bk.compute_dtype(compute)  # refused in one line where the library lacks the type
    Xh = np.asarray(X)
    batches = parity_batches(Xh.shape[0], batch_size, steps, seed)
    results = []
    for bk in bks:
        try:
            with bk, bk.exact_matmul():
                row = _mixed_row(model_fn, bk, precision, Xh, y, batches, tol, free_tol)
        except Exception as exc:  # a backend that fails is a result too: say where and why
            row = {"backend": bk.name, "device": bk.device, "precision": precision, "passed": False,
                   "error": {"type": type(exc).__name__, "where": where_raised(exc),
                             "message": (str(exc).strip().splitlines() or [""])[0][:300]}}
        results.append(row)
    return {"precision": precision, "compute": compute, "reference": "float32, same backend and seed",
            "steps": steps, "tolerance": tol, "free_tolerance": free_tol, "results": results,
            "passed": all(r["passed"] for r in results)}


def _global_rel(got: dict, want: dict) -> float:
    """||got - want|| / ||want|| over every entry of the dicts' arrays, in float64 (0 when both are zero)."""
    diff = sum(float(np.sum((np.asarray(got[k], np.float64) - np.asarray(want[k], np.float64)) ** 2)) for k in want)
    norm = sum(float(np.sum(np.asarray(want[k], np.float64) ** 2)) for k in want)
    return math.sqrt(diff / norm) if norm else (0.0 if diff == 0.0 else math.inf)


def _mixed_row(model_fn, bk, precision, Xh, y, batches, tol, free_tol) -> dict:
    """One backend's row of mixed_parity (run under bk and bk.exact_matmul())."""
    f32 = model_fn(bk, "float32")
    config = f32.get_config()
    config.pop("dtype", None)

    def mixed_model():
        m = type(f32).from_config(config, backend=bk, dtype="float32", precision=precision)
        m.native_kernels = f32.native_kernels
        m.set_state(f32.get_state())
        return m

    lock, free = mixed_model(), mixed_model()
    to_np, n = bk.to_numpy, Xh.shape[0]
    Xd = f32.as_input(Xh)
    Yd, _ = f32.as_targets(y, n)
    scale_of = lambda m: None if m.state.loss_scale is None else float(to_np(m.state.loss_scale["scale"]))  # noqa
    grad_rels, update_rels, loss_rels, gaps, losses = [], [], [], [], ([], [])
    lock_skipped = free_skipped = 0

    def step(model, xb, yb, noise):
        value, _, grads, layer_state = model.value_and_grads(xb, yb, noise=_put(model, noise), with_state=True)
        model.apply_gradients(grads, layer_state if model.has_layer_state else None)
        return float(value), {k: to_np(g, copy=True) for k, g in grads.items()}

    for idx in batches:
        idx_d = bk.asarray(idx)
        xb, yb = f32.xp.take(Xd, idx_d, axis=0), f32.xp.take(Yd, idx_d, axis=0)
        drawn = f32.draw_noise(len(idx))
        noise = None if drawn is None else [None if a is None else to_np(a, copy=True) for a in drawn]
        before = f32.get_state()
        v32, g32 = step(f32, xb, yb, noise)
        d32 = {k: to_np(p) - before["params"][k] for k, p in f32.state.params.items()}
        # lockstep: the float32 run's state in, one mixed step, gradients and update out
        lock.set_state(before)
        scale = scale_of(lock)
        vm, gm = step(lock, xb, yb, noise)
        grad_rels.append(_global_rel(gm, g32))
        loss_rels.append(abs(vm - v32) / abs(v32) if v32 else abs(vm))
        if scale is not None and scale_of(lock) < scale:
            lock_skipped += 1
        else:
            update_rels.append(_global_rel({k: to_np(p) - before["params"][k] for k, p in lock.state.params.items()},
                                           d32))
        # free-running: the mixed model's own state, the same batch and random inputs
        scale = scale_of(free)
        vf, _ = step(free, xb, yb, noise)
        free_skipped += int(scale is not None and scale_of(free) < scale)
        losses[0].append(vf), losses[1].append(v32)
        gaps.append(abs(vf - v32) / abs(v32) if v32 else abs(vf))
    finite = all(math.isfinite(v) for v in losses[0])
    grad_rel = float(np.median(grad_rels))
    update_rel = float(np.median(update_rels)) if update_rels else math.inf
    free_final = gaps[-1] if finite else math.inf
    passed = grad_rel <= tol and update_rel <= tol and free_final <= free_tol
    return {"backend": bk.name, "device": bk.device, "precision": precision, "compute": lock.precision.compute,
            "grad_rel": grad_rel, "update_rel": update_rel, "tolerance": tol,
            "grad_rel_first": grad_rels[0], "update_rel_first": update_rels[0] if update_rels else None,
            "grad_rel_max": max(grad_rels), "update_rel_max": max(update_rels, default=None),
            "loss_rel_max": max(loss_rels), "lockstep_skipped": lock_skipped,
            "free_final_rel": free_final, "free_tolerance": free_tol,
            "free_loss_gap": max(gaps) if finite else math.inf, "free_skipped": free_skipped,
            "final_loss": losses[0][-1], "final_loss_float32": losses[1][-1], "loss_scale": scale_of(free),
            "passed": bool(passed)}


make_callable(__name__)  # xpnet.parity(...) calls parity() above; `import xpnet.parity` gives this module
