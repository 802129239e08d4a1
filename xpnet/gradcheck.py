"""Gradient checking, as the book's "Debugging neural networks with gradient checking":
central differences for every parameter against backpropagation, in float64.

Perturbations are made on a host copy of one parameter tensor at a time (each J(w +- eps) is a
full forward pass on the model's own backend), so this is for small models and data.
"""
from __future__ import annotations

import math

import numpy as np

from ._callable import make_callable
from .validation import InputError

OK, WARNING = 1e-7, 1e-4


def grade(relative_error: float) -> str:
    """The book's grades: Ok <= 1e-7 < Warning <= 1e-4 < PROBLEM."""
    return "Ok" if relative_error <= OK else "Warning" if relative_error <= WARNING else "PROBLEM"


def relative_error(num: np.ndarray, ana: np.ndarray) -> float:
    """||num - ana|| / (||num|| + ||ana||), 0 when both are zero."""
    denom = np.linalg.norm(num) + np.linalg.norm(ana)
    return float(np.linalg.norm(num - ana) / denom) if denom else 0.0


def gradcheck(model, X, y, epsilon: float = 1e-5) -> dict:
    """Compare backprop gradients of `model` (a float64 Sequential or NeuralNetMLP) on X, y with central
    differences. Returns {'checks': [{parameter, relative_error, grade}], 'overall_relative_error',
    'max_relative_error', 'passed'}."""
    model = getattr(model, "model", model)  # NeuralNetMLP wraps a Sequential
    if model.dtype_name != "float64":
        raise InputError(f"gradient checking needs a float64 model (central differences with eps={epsilon} are "
                         f"meaningless in {model.dtype_name}); build the model with dtype='float64'")
    Xd = model.as_input(X)
    Yd, _ = model.as_targets(y, Xd.shape[0])
    model.loss_and_grads(Xd, Yd, training=False)
    to_np = model.bk.to_numpy
    analytic = {k: to_np(v) for k, v in model.gradients().items()}
    original = model.parameters()
    checks, nums, anas = [], [], []
    for name, value in original.items():
        w = to_np(value).astype(np.float64)  # a copy
        num = np.empty_like(w)
        flat_w, flat_num = w.reshape(-1), num.reshape(-1)
        for i in range(flat_w.size):
            keep = flat_w[i]
            flat_w[i] = keep + epsilon
            model.set_parameters({name: w})
            j_plus = float(model.objective(Xd, Yd))
            flat_w[i] = keep - epsilon
            model.set_parameters({name: w})
            j_minus = float(model.objective(Xd, Yd))
            flat_w[i] = keep
            flat_num[i] = (j_plus - j_minus) / (2.0 * epsilon)
        model.set_parameters({name: value})
        err = relative_error(num, analytic[name])
        checks.append({"parameter": name, "relative_error": err, "grade": grade(err)})
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


make_callable(__name__)  # xpnet.gradcheck(...) calls gradcheck() above; `import xpnet.gradcheck` gives this module
