"""Input checks shared by the API and the CLI: each error says what was expected, what came, how to fix it."""
from __future__ import annotations

import warnings

import numpy as np

from ..backend import library_of
from ..errors import InputError  # noqa: F401  (re-exported: xpnet.data.validation.InputError)


def check_X(X, input_shape=None, name: str = "X") -> np.ndarray:
    """Host data X -> NumPy array (batch, *input_shape), numeric, finite. input_shape: one sample's shape
    (an int means (features,)); None accepts any 2-D (samples, features)."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    ndim = 2 if input_shape is None else 1 + len(input_shape)
    what = "(samples, features)" if ndim == 2 else f"(samples, {', '.join(map(str, input_shape))})"
    try:
        arr = np.asarray(X)
    except Exception as exc:
        raise InputError(f"{name} must be a {ndim}-D numeric array {what}; could not read it: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}; convert it, e.g. X.astype('float32')")
    if arr.ndim != ndim:
        if ndim == 2:
            hint = " (one sample? use X.reshape(1, -1))" if arr.ndim == 1 else \
                " (images? flatten them with X.reshape(len(X), -1))" if arr.ndim > 2 else ""
            raise InputError(f"{name} must be 2-D (samples, features), got shape {arr.shape}{hint}")
        hint = ""
        if arr.ndim == 2 and arr.shape[1] == int(np.prod(input_shape)):
            hint = f" (flat rows? reshape them with X.reshape(len(X), {', '.join(map(str, input_shape))}))"
        elif arr.ndim == ndim - 1 and tuple(arr.shape) == tuple(input_shape):
            hint = f" (one sample? use X[None])"
        raise InputError(f"{name} must be {ndim}-D {what}, got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or 0 in arr.shape[1:]:
        raise InputError(f"{name} is empty (shape {arr.shape}); pass at least one sample with at least one feature")
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        if ndim == 2:
            raise InputError(f"{name} has {arr.shape[1]} features but the model expects {input_shape[0]}; "
                             f"pass data of width {input_shape[0]} or build the model with n_features={arr.shape[1]}")
        hint = ""
        if len(input_shape) == 3 and tuple(arr.shape[1:]) == (input_shape[1], input_shape[2], input_shape[0]):
            hint = " (channels last? transpose it to channels first with X.transpose(0, 3, 1, 2))"
        raise InputError(f"{name} has samples of shape {tuple(arr.shape[1:])} but the model expects "
                         f"{tuple(input_shape)}{hint}")
    bad = first_nonfinite(arr)
    if bad is not None:
        where = f"row {bad[0]}, column {bad[1]}" if arr.ndim == 2 else f"sample {bad[0]}, index {tuple(bad[1:])}"
        raise InputError(f"{name} contains NaN or infinity (first at {where}); remove or impute those values")
    return arr


def first_nonfinite(arr: np.ndarray, chunk_bytes: int = 1 << 24) -> tuple | None:
    """The index of the first NaN or infinity of arr (at least 1-D) in C order, or None (integers: None). Read
    in chunks of rows of about chunk_bytes, so a memory-mapped file is checked in one pass, with no mask the
    size of the array."""
    if arr.dtype.kind != "f":
        return None
    rows = max(1, chunk_bytes // max(1, arr[:1].nbytes))
    for s in range(0, len(arr), rows):
        ok = np.isfinite(arr[s:s + rows])
        if not ok.all():
            bad = np.argwhere(~ok)[0]
            return (int(bad[0]) + s, *(int(v) for v in bad[1:]))
    return None


def sample_shape(shape, input_shape, one: bool = True) -> tuple | None:
    """The shape to view inputs of `shape` as (samples, *input_shape), or None to take them as they are (right
    already, or refused by check_X). The same rule for `model.predict` (and predict_proba, score, evaluate)
    and `xpnet predict`: flat rows (n, prod(input_shape)); (n, H, W) for a one-channel (1, H, W) model; and
    with `one`, a single sample as input_shape, as (H, W) for one channel, or flat (prod(input_shape),)."""
    shape, want = tuple(int(v) for v in shape), tuple(int(v) for v in input_shape)
    size = int(np.prod(want))
    if len(shape) == len(want) + 1 and shape[1:] == want:
        return None
    if len(want) > 1 and len(shape) == 2 and shape[1] == size:
        return (shape[0], *want)
    if len(want) == 3 and want[0] == 1 and len(shape) == 3 and shape[1:] == want[1:]:
        return (shape[0], *want)
    if one and (shape == want or (len(want) == 3 and want[0] == 1 and shape == want[1:]) or
                (len(shape) == 1 and shape[0] == size)):
        return (1, *want)
    return None


def host_samples(X, input_shape, one: bool = True):
    """Host inputs viewed as (samples, *input_shape) by `sample_shape`'s rule; X as it came when the rule does
    not apply (check_X then says what is wrong)."""
    try:
        arr = np.asarray(X)
    except Exception:
        return X
    new = sample_shape(arr.shape, input_shape, one)
    return X if new is None else arr.reshape(new)


def check_labels(y, n_samples: int, n_classes: int, name: str = "y", warn: bool = True) -> np.ndarray:
    """Class labels -> int64 NumPy vector of length n_samples with values in 0..n_classes-1.
    warn: a UserWarning when labels to train on hold fewer than n_classes classes (not for scoring)."""
    from .labels import as_label_array
    arr = as_label_array(y, name)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D integer class labels, got shape {arr.shape}; "
                         f"for one-hot labels pass y.argmax(axis=1)")
    if arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} labels but X has {n_samples} samples; they must match")
    if arr.dtype.kind == "U":
        raise InputError(f"{name} holds names such as {arr[0]!r} but the model's classes_ are 0..{n_classes - 1}; "
                         f"fit it on the names first, or set model.classes_")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(f"{name} must hold integer class labels 0..{n_classes - 1}; got non-integer values "
                             f"such as {arr[(~np.isfinite(arr)) | (arr != np.round(arr))][0]!r}")
    labels = arr.astype(np.int64)
    _check_class_range(labels, n_classes, name, per_position=False)
    present = np.unique(labels).size
    if warn and present < n_classes:
        warnings.warn(f"{name} holds {present} of the model's {n_classes} classes; the others are never trained",
                      stacklevel=3)
    return labels


def check_sequence_targets(y, n_samples: int, target_shape: tuple, n_classes: int, name: str = "y") -> np.ndarray:
    """A sequence model's targets -> int64 NumPy (n_samples, *target_shape) with values in 0..n_classes-1 (the
    next token of each position, say); refused in one line otherwise."""
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise InputError(f"{name} must be integer targets (samples, {', '.join(map(str, target_shape))}); could not "
                         f"read it: {exc}") from None
    want = (n_samples, *target_shape)
    if arr.shape != want or arr.dtype.kind not in "biu":
        raise InputError(f"{name} must be integer targets of shape (samples, {', '.join(map(str, target_shape))}) "
                         f"= {want}, one class index per position of the model's {target_shape + (n_classes,)} "
                         f"outputs, got shape {arr.shape} ({arr.dtype}); pass the token ids each position predicts")
    labels = arr.astype(np.int64)
    _check_class_range(labels, n_classes, name, per_position=True)
    return labels


def _check_class_range(labels: np.ndarray, n_classes: int, name: str, per_position: bool) -> None:
    """Refuse int64 class indices `labels` (any shape) outside 0..n_classes-1 in one line: which values came, how
    many outputs the model has and how to build it for them: a classifier's labels (n_output=), a sequence model's
    targets per position (per_position: a vocabulary that large)."""
    if not labels.size or (labels.min() >= 0 and labels.max() < n_classes):
        return
    low, high = labels.min(), labels.max()
    if per_position:
        what, outputs = "targets", f"outputs per position (0..{n_classes - 1})"
        fix = f"build it with a vocabulary of {high + 1} or more"
    else:
        what, outputs = "labels", f"outputs (labels 0..{n_classes - 1})"
        fix = f"build it with n_output={high + 1} or relabel the classes"
    raise InputError(f"{name} holds {what} from {low} to {high} but the model has {n_classes} {outputs}; {fix}")


def foreign_array_error(a, bk, name: str = "X") -> InputError:
    return InputError(f"{name} is a {library_of(a)} array but the model runs on backend {bk.name!r} "
                      f"({bk.device}); pass a NumPy array or a {bk.name} array on {bk.device}, "
                      f"e.g. xpnet.to_numpy({name})")
