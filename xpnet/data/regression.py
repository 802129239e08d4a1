"""Continuous targets: the data path of a regression model (`Sequential(task="regression")`, xpnet.sklearn's
MLPRegressor, `xpnet train --task regression`), on the host.

A regression model's targets are values of its outputs' shape: (samples, outputs), or (samples,) for a model
with one output. Its output is the identity (loss "mse"), `predict` returns the outputs and `score` is R², the
coefficient of determination averaged uniformly over the outputs, as scikit-learn's r2_score computes it.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def check_targets(y, n_samples: int, n_outputs: int, name: str = "y", dtype: str = "float64") -> np.ndarray:
    """Continuous targets -> finite `dtype` NumPy array (n_samples, n_outputs); (n_samples,) is taken as one
    column when the model has one output. Refused in one line otherwise."""
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise InputError(f"{name} must be numbers (samples, outputs); could not read it: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold numbers for a regression model, got dtype {arr.dtype}; "
                         f"for class labels build a classifier (task='classification')")
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    want = (n_samples, n_outputs)
    if arr.shape != want:
        one = " or (samples,)" if n_outputs == 1 else ""
        raise InputError(f"{name} must have shape {want}{one}: one value per output of the model for each of "
                         f"X's {n_samples} samples, got {arr.shape}")
    arr = arr.astype(dtype)
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinity; remove or impute those targets")
    return arr


def r2_score(y_true, y_pred, sample_weight=None) -> float:
    """R² = 1 - sum w (y - pred)² / sum w (y - mean_w y)², per output, then their uniform mean (scikit-learn's
    r2_score, multioutput="uniform_average"): 1 for a perfect fit, 0 for predicting the mean. An output whose
    targets are constant scores 1 when predicted exactly, else 0 (scikit-learn's force_finite)."""
    return float(r2_scores(y_true, y_pred, sample_weight).mean())


def r2_scores(y_true, y_pred, sample_weight=None) -> np.ndarray:
    """R² of each output, float64 (outputs,) (scikit-learn's r2_score with multioutput="raw_values"); y_true and
    y_pred (samples,) or (samples, outputs)."""
    t, p = _columns(y_true, y_pred)
    w = np.ones((t.shape[0], 1)) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1, 1)
    num = (w * (t - p) ** 2).sum(axis=0)
    den = (w * (t - np.average(t, axis=0, weights=w[:, 0])) ** 2).sum(axis=0)
    scores = np.ones(t.shape[1])
    ok = den != 0
    scores[ok] = 1.0 - num[ok] / den[ok]
    scores[(~ok) & (num != 0)] = 0.0
    return scores


def regression_report(y_true, y_pred) -> dict:
    """The figures `xpnet evaluate` gives a regression model, computed on the host in float64 as scikit-learn's
    metrics do: "r2", "mae", "mse", "rmse", each the uniform average over the outputs (r2_score,
    mean_absolute_error, mean_squared_error, root_mean_squared_error with their default multioutput), and
    "outputs": one {"r2", "mae", "mse", "rmse"} per output. y_true, y_pred: (samples,) or (samples, outputs)."""
    t, p = _columns(y_true, y_pred)
    r2 = r2_scores(t, p)
    mae, mse = np.abs(t - p).mean(axis=0), ((t - p) ** 2).mean(axis=0)
    rmse = np.sqrt(mse)
    outputs = [{"r2": float(a), "mae": float(b), "mse": float(c), "rmse": float(d)}
               for a, b, c, d in zip(r2, mae, mse, rmse)]
    return {"r2": float(r2.mean()), "mae": float(mae.mean()), "mse": float(mse.mean()), "rmse": float(rmse.mean()),
            "outputs": outputs}


def _columns(y_true, y_pred) -> tuple:
    """y_true, y_pred as float64 (samples, outputs) (a (samples,) vector is one output)."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    return t.reshape(t.shape[0], -1), p.reshape(p.shape[0], -1)
