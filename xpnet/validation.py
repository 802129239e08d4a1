"""Input checks shared by the API and the CLI: each error says what was expected, what came, how to fix it."""
from __future__ import annotations

import warnings

import numpy as np

from .backend import library_of


class InputError(ValueError):
    """Bad data or arguments, caught before any training step."""


def check_X(X, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """Host data X -> NumPy array (batch, features), numeric, finite, of the expected width."""
    try:
        arr = np.asarray(X)
    except Exception as exc:
        raise InputError(f"{name} must be a 2-D numeric array (samples, features); could not read it: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}; convert it, e.g. X.astype('float32')")
    if arr.ndim != 2:
        hint = " (one sample? use X.reshape(1, -1))" if arr.ndim == 1 else \
            " (images? flatten them with X.reshape(len(X), -1))" if arr.ndim > 2 else ""
        raise InputError(f"{name} must be 2-D (samples, features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); pass at least one sample with at least one feature")
    if n_features is not None and arr.shape[1] != n_features:
        raise InputError(f"{name} has {arr.shape[1]} features but the model expects {n_features}; "
                         f"pass data of width {n_features} or build the model with n_features={arr.shape[1]}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} contains NaN or infinity (first at row {bad[0]}, column {bad[1]}); "
                         f"remove or impute those values")
    return arr


def check_labels(y, n_samples: int, n_classes: int, name: str = "y") -> np.ndarray:
    """Class labels -> int64 NumPy vector of length n_samples with values in 0..n_classes-1."""
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise InputError(f"{name} must be a 1-D array of integer class labels; could not read it: {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D integer class labels, got shape {arr.shape}; "
                         f"for one-hot labels pass y.argmax(axis=1)")
    if arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} labels but X has {n_samples} samples; they must match")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(f"{name} must hold integer class labels 0..{n_classes - 1}; got non-integer values "
                             f"such as {arr[(~np.isfinite(arr)) | (arr != np.round(arr))][0]!r}")
    labels = arr.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"{name} holds labels from {labels.min()} to {labels.max()} but the model has {n_classes} "
                         f"outputs (labels 0..{n_classes - 1}); build it with n_output={labels.max() + 1} "
                         f"or relabel the classes")
    present = np.unique(labels).size
    if present < n_classes:
        warnings.warn(f"{name} holds {present} of the model's {n_classes} classes; the others are never trained",
                      stacklevel=3)
    return labels


def foreign_array_error(a, bk, name: str = "X") -> InputError:
    return InputError(f"{name} is a {library_of(a)} array but the model runs on backend {bk.name!r} "
                      f"({bk.device}); pass a NumPy array or a {bk.name} array on {bk.device}, "
                      f"e.g. xpnet.to_numpy({name})")
