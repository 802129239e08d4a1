"""Class labels and the model's outputs: one rule, used by `Sequential.fit` and by `xpnet train`.

A model with k outputs predicts `classes_[i]` for output i; `classes_` is saved with the model.

- Whole numbers 0..k-1 map to themselves (`classes_` = 0..k-1), as in earlier releases, when at most half
  of 0..max would get no training sample; a library model with k outputs takes labels 0..k-1 this way.
- Any other labels (names such as "setosa", negative, sparse or very large numbers) map to their sorted
  distinct values: `classes_` = sorted(set(labels)), one output each.
- `classes=N` (`--classes N`) fixes `classes_` = 0..N-1 (outputs with no training sample allowed); a
  list (library) fixes `classes_` to it.

`predict` returns labels from `classes_`; `predict_proba`'s columns follow `classes_`. Host NumPy only:
labels never go to a device, only their output indices do.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def is_names(y: np.ndarray) -> bool:
    """Labels that are text (str, bytes or Python objects) rather than numbers."""
    return y.dtype.kind in "USO"


def as_label_array(y, name: str = "y") -> np.ndarray:
    """Labels -> 1-D host array ((n, 1) is taken as (n,)); text labels become a str array."""
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise InputError(f"{name} must be a 1-D array of class labels; could not read it: {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(str) if all(isinstance(v, (str, bytes)) for v in arr.ravel()) else arr.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} mixes label types ({sorted({type(v).__name__ for v in arr.ravel()})}); "
                             f"use all names or all numbers") from None
    elif arr.dtype.kind == "S":
        arr = arr.astype(str)
    return arr


def distinct(y: np.ndarray, y_test: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct labels of y and y_test."""
    both = y if y_test is None else np.concatenate([y.astype(np.result_type(y, y_test)),
                                                    y_test.astype(np.result_type(y, y_test))])
    return np.unique(both)


def identity_fits(y: np.ndarray, k: int) -> bool:
    """Labels that are whole numbers 0..k-1 (they index the outputs directly)."""
    if is_names(y) or y.dtype.kind not in "biuf" or not y.size:
        return not y.size
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or (y != np.floor(y)).any()):
        return False
    return bool(y.min() >= 0 and y.max() <= k - 1)


def shown(values, limit: int = 6) -> str:
    """A few labels for a message: [3, 7, 100] or ['setosa', 'versicolor', ...]."""
    items = [v.item() if hasattr(v, "item") else v for v in list(values)[:limit]]
    return "[" + ", ".join(map(repr, items)) + (", ..." if len(values) > limit else "") + "]"


def check_classes(classes, n_outputs: int | None = None, name: str = "classes") -> np.ndarray:
    """A user's classes_ (a sequence of distinct labels, one per output) -> host array."""
    arr = as_label_array(classes, name)
    if arr.ndim != 1 or arr.size < 1:
        raise InputError(f"{name} must be a 1-D list of class labels, one per output, got shape {arr.shape}")
    if np.unique(arr).size != arr.size:
        raise InputError(f"{name} holds repeated labels {shown(arr)}; each output needs its own label")
    if n_outputs is not None and arr.size != n_outputs:
        raise InputError(f"{name} holds {arr.size} labels but the model has {n_outputs} outputs; give one label "
                         f"per output")
    return arr


def encode(y: np.ndarray, classes_: np.ndarray, name: str = "y") -> np.ndarray:
    """Labels -> int64 output indices through classes_; a label not in classes_ is an InputError."""
    y = as_label_array(y, name)
    if is_names(classes_) != is_names(y):
        what = "names" if is_names(classes_) else "numbers"
        raise InputError(f"{name} holds {'names' if is_names(y) else 'numbers'} but the model's classes_ are "
                         f"{what} {shown(classes_)}; pass labels of the kind it was trained on")
    order = np.argsort(classes_, kind="stable")
    ranked = classes_[order]
    pos = np.clip(np.searchsorted(ranked, y), 0, ranked.size - 1)
    found = ranked[pos] == y
    if not found.all():
        bad = y[~found]
        raise InputError(f"{name} holds label {bad[0].item()!r}, which is not one of the model's classes_ "
                         f"{shown(classes_)}; the model can only predict those")
    return order[pos].astype(np.int64)


def identity_classes(n: int) -> np.ndarray:
    """classes_ 0..n-1: output i is label i."""
    return np.arange(int(n))


def infer_classes(y, n_outputs: int) -> np.ndarray | None:
    """A new fit's classes_ from its labels y: None (labels 0..n_outputs-1 index the outputs) or, for names and
    other whole numbers, their sorted distinct values, which must be one per output. Labels that are not class
    labels at all (NaN, fractions, wrong shape) give None: the model's label check names the problem."""
    try:
        arr = as_label_array(y)
    except InputError:
        return None
    if arr.ndim != 1 or identity_fits(arr, n_outputs):
        return None
    if not is_names(arr) and (arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and (
            not np.isfinite(arr).all() or (arr != np.floor(arr)).any()))):
        return None
    found = distinct(arr)
    if found.size != n_outputs:
        raise InputError(f"y holds {found.size} distinct labels {shown(found)}, which are not 0..{n_outputs - 1}, "
                         f"but the model has {n_outputs} outputs; build it with {found.size} outputs, or pass "
                         f"classes=[...] to fit (one label per output)")
    return found


def sample_weights(labels: np.ndarray, n_outputs: int, class_weight=None, sample_weight=None, classes_=None,
                   name: str = "class_weight") -> np.ndarray | None:
    """Per-sample weights (n,) float64 on the host from output indices `labels` (n,): class_weight[label] times
    sample_weight, or None when neither is given.

    class_weight: {label: weight} (labels as y gives them, through `classes_` when given; a class left out
    weighs 1, as in Keras), or "balanced": n / (classes present * count of the class), scikit-learn's
    compute_class_weight("balanced"). sample_weight: (n,) non-negative finite numbers."""
    if class_weight is None and sample_weight is None:
        return None
    n = labels.shape[0]
    w = np.ones(n, dtype=np.float64)
    if class_weight is not None:
        w *= class_weight_vector(labels, n_outputs, class_weight, classes_, name)[labels]
    if sample_weight is not None:
        sw = np.asarray(sample_weight)
        if sw.shape != (n,) or sw.dtype.kind not in "biuf":
            raise InputError(f"sample_weight must be {n} numbers, one per sample, got "
                             f"{'shape ' + str(sw.shape) if sw.dtype.kind in 'biuf' else 'dtype ' + str(sw.dtype)}")
        sw = sw.astype(np.float64)
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise InputError("sample_weight must hold finite numbers >= 0; got a negative or non-finite value")
        w *= sw
    if not (w > 0).any():
        raise InputError("every sample weighs 0 (class_weight times sample_weight): nothing would be trained")
    return w


def class_weight_vector(labels: np.ndarray, n_outputs: int, class_weight, classes_=None,
                        name: str = "class_weight") -> np.ndarray:
    """The weight of each output (n_outputs,) float64 from a {label: weight} dict or "balanced"."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise InputError(f"{name} must be 'balanced' or a {{label: weight}} dict, got {class_weight!r}")
        counts = np.bincount(labels, minlength=n_outputs).astype(np.float64)
        present = int((counts > 0).sum())
        out = np.ones(n_outputs, dtype=np.float64)
        out[counts > 0] = labels.shape[0] / (present * counts[counts > 0])
        return out
    if not isinstance(class_weight, dict):
        raise InputError(f"{name} must be 'balanced' or a {{label: weight}} dict, got {type(class_weight).__name__}")
    out = np.ones(n_outputs, dtype=np.float64)
    for key, value in class_weight.items():
        if classes_ is not None:
            hits = np.flatnonzero(np.asarray(classes_).astype(str) == str(key))
            if hits.size != 1:
                raise InputError(f"{name} names the label {key!r}, which is not one of the model's classes "
                                 f"({shown(classes_)})")
            index = int(hits[0])
        else:
            if not isinstance(key, (int, np.integer)) or isinstance(key, bool) or not 0 <= key < n_outputs:
                raise InputError(f"{name} names the label {key!r}; the labels are 0..{n_outputs - 1}")
            index = int(key)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
                or value < 0:
            raise InputError(f"{name}[{key!r}] must be a finite number >= 0, got {value!r}")
        out[index] = float(value)
    return out
