"""Gradient checking, as the book's "Debugging neural networks with gradient checking":
central differences for every parameter against backpropagation, in float64.

Perturbations are made on a host copy of one parameter tensor at a time (each J(w +- eps) is a
full forward pass on the model's own backend, with the perturbed parameters passed in: the model
itself never changes), so this is for small models and data.
"""
from __future__ import annotations

import math

import numpy as np

from .._callable import make_callable
from ..errors import InputError

OK, WARNING = 1e-7, 1e-4


def grade(relative_error: float) -> str:
    """The book's grades: Ok <= 1e-7 < Warning <= 1e-4 < PROBLEM."""
    return "Ok" if relative_error <= OK else "Warning" if relative_error <= WARNING else "PROBLEM"


def relative_error(num: np.ndarray, ana: np.ndarray) -> float:
    """||num - ana|| / (||num|| + ||ana||), 0 when both are zero."""
    denom = np.linalg.norm(num) + np.linalg.norm(ana)
    return float(np.linalg.norm(num - ana) / denom) if denom else 0.0


def gradcheck(model, X, y, epsilon: float = 1e-5) -> dict:
    """Compare backprop gradients of `model` (a float64 model) on X, y with central
    differences. Returns {'checks': [{parameter, relative_error, grade}], 'overall_relative_error',
    'max_relative_error', 'passed'}."""
    if model.dtype_name != "float64":
        raise InputError(f"gradient checking needs a float64 model (central differences with eps={epsilon} are "
                         f"meaningless in {model.dtype_name}); build the model with dtype='float64'")
    with model.bk:
        return _gradcheck(model, X, y, epsilon)


def _gradcheck(model, X, y, epsilon: float) -> dict:
    Xd = model.as_input(X)
    Yd, _ = model.as_targets(y, Xd.shape[0])
    to_np = model.bk.to_numpy
    original = model.parameters()
    _, _, grads = model.value_and_grads(Xd, Yd, params=original, training=False)
    analytic = {k: to_np(v) for k, v in grads.items()}
    checks, nums, anas = [], [], []
    for name, value in original.items():
        w = to_np(value).astype(np.float64)  # a copy
        num = np.empty_like(w)
        flat_w, flat_num = w.reshape(-1), num.reshape(-1)
        for i in range(flat_w.size):
            keep = flat_w[i]
            flat_w[i] = keep + epsilon
            j_plus = float(model.objective(Xd, Yd, params={**original, name: model.bk.asarray(w)}))
            flat_w[i] = keep - epsilon
            j_minus = float(model.objective(Xd, Yd, params={**original, name: model.bk.asarray(w)}))
            flat_w[i] = keep
            flat_num[i] = (j_plus - j_minus) / (2.0 * epsilon)
        err = relative_error(num, analytic[name])
        checks.append({"parameter": name, "relative_error": err, "grade": grade(err),
                       "abs_error": float(np.linalg.norm(num - analytic[name]))})
        nums.append(num.ravel())
        anas.append(analytic[name].ravel())
    overall = relative_error(np.concatenate(nums), np.concatenate(anas))
    worst = max(c["relative_error"] for c in checks)
    return {
        "checks": checks,
        "overall_relative_error": overall,
        "max_relative_error": worst,
        "passed": all(c["grade"] == "Ok" for c in checks) and math.isfinite(overall),
    }


def check_layer(layer, bk, input_shape, batch: int = 4, seed: int = 0, epsilon: float = 1e-6,
                training: bool = True, kernels=None) -> dict:
    """Central differences against one layer's backward, in float64 on backend `bk`: the gradient of
    sum(layer(x) * r) with respect to x and to every parameter, for random x and r (x kept 0.05 away from
    0, where ReLU-type kinks would straddle the stencil). The layer must be built for `input_shape`.
    kernels: the backend's native kernels (`bk.kernels`) for a layer that takes them (its kernel_names), which
    then checks the kernels' gradients; None checks the layer's array-API code.
    Integer-input layers (`layer.integer_input`: Embedding) get valid ids from `layer.sample_input` and no input
    check. Returns {'input': relative error (None for integer input), 'params': {name: relative error}}."""
    rng = np.random.default_rng(seed)
    f64 = bk.dtype("float64")
    put = lambda a: bk.asarray(a, dtype=f64)  # noqa: E731
    params = layer.init_params(rng, put)
    integer = getattr(layer, "integer_input", False)
    if integer:  # token ids: no input gradient to check
        x = layer.sample_input(rng, (batch, *input_shape))
        put_x = lambda a: bk.asarray(a, dtype=bk.xp.int64)  # noqa: E731
    else:
        x = rng.standard_normal((batch, *input_shape))
        x = np.where(np.abs(x) < 0.05, 0.5, x)
        put_x = put
    shape = layer.noise_shape(batch)
    noise = None if shape is None else put(rng.random(shape))
    extra = {} if kernels is None else {"kernels": kernels}
    y, back = layer.forward(params, put_x(x), training=training, noise=noise, **extra)
    r = rng.standard_normal(tuple(y.shape))
    dx, grads = back(put(r))
    xp = bk.xp

    def f(xh, ph):
        out, _ = layer.forward(ph, put_x(xh), training=training, noise=noise, **extra)
        return float(xp.sum(out * put(r)))

    def numeric(values, call):
        num = np.zeros_like(values)
        for i in np.ndindex(*values.shape):
            plus, minus = values.copy(), values.copy()
            plus[i] += epsilon
            minus[i] -= epsilon
            num[i] = (call(plus) - call(minus)) / (2 * epsilon)
        return num

    report = {"input": None if integer else relative_error(numeric(x, lambda v: f(v, params)), bk.to_numpy(dx)),
              "params": {}}
    for name, value in params.items():
        host = bk.to_numpy(value, copy=True).astype(np.float64)
        num = numeric(host, lambda v, name=name: f(x, {**params, name: put(v)}))
        report["params"][name] = relative_error(num, bk.to_numpy(grads[name]))
    return report
make_callable(__name__)  # xpnet.gradcheck(...) calls gradcheck() above; `import xpnet.gradcheck` gives this module
