"""Input scaling fitted on the training data and stored with the model, so predictions later are
preprocessed the same way: raw, unit [0, 1], symmetric [-1, 1] or standardize (zero mean, unit variance)."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

SCALES = ("raw", "unit", "symmetric", "standardize")


class Scaler:
    def __init__(self, kind: str = "unit"):
        if kind not in SCALES:
            raise InputError(f"unknown scale {kind!r}; choose one of: {', '.join(SCALES)}")
        self.kind, self.shift, self.scale = kind, np.zeros(()), np.ones(())
        self.fitted = kind == "raw"  # raw needs no statistics

    def __repr__(self) -> str:
        return f"Scaler({self.kind!r}{'' if self.fitted else ', unfitted'})"

    def fit(self, X) -> "Scaler":
        """X: (samples, *features) host data. unit/symmetric use the global min and max (0 and 255 for
        MNIST); standardize uses per-feature mean and standard deviation (1 where constant)."""
        X = np.asarray(X)
        if self.kind in ("unit", "symmetric"):
            lo, hi = float(X.min()), float(X.max())
            self.shift, self.scale = np.asarray(lo), np.asarray((hi - lo) or 1.0)
        elif self.kind == "standardize":
            Xf = X.astype(np.float64)
            std = Xf.std(axis=0)
            self.shift, self.scale = Xf.mean(axis=0), np.where(std > 0, std, 1.0)
        self.fitted = True
        return self

    def fit_chunks(self, chunks) -> "Scaler":
        """The statistics `fit` computes, from the data in chunks of rows: `chunks()` returns a fresh iterator
        of host arrays (rows, *features) that together are X in order (called once, twice for standardize).
        Nothing holds more than one chunk (float64) besides the per-feature sums.

        Equal bit for bit to `fit` on the whole X: min and max are exact in any order; for standardize the
        float64 sums run row after row, as NumPy's `X.mean(axis=0)` does for rows of two or more features
        (its inner loop runs along the features, adding rows in order), carried from chunk to chunk; then
        `X.std(axis=0)`'s second pass over the deviations, the same way. Rows of a single feature NumPy sums
        pairwise: equal there only within rounding, unless one chunk holds them all."""
        if self.kind in ("unit", "symmetric"):
            lo = hi = None
            for c in chunks():
                c = np.asarray(c)
                if c.size:
                    lo = c.min() if lo is None else np.minimum(lo, c.min())
                    hi = c.max() if hi is None else np.maximum(hi, c.max())
            if lo is None:
                raise InputError("the scaler's data has no rows; give data to fit it on")
            lo, hi = float(lo), float(hi)
            self.shift, self.scale = np.asarray(lo), np.asarray((hi - lo) or 1.0)
        elif self.kind == "standardize":
            n, total, shape = 0, None, None
            for c in chunks():
                c = np.asarray(c, dtype=np.float64)
                shape, n = c.shape[1:], n + len(c)
                total = _running_sum(total, c)
            if not n:
                raise InputError("the scaler's data has no rows; give data to fit it on")
            mean = total / n
            squares = None
            for c in chunks():
                c = np.asarray(c, dtype=np.float64)
                d = c.reshape(len(c), -1) - mean
                squares = _running_sum(squares, np.multiply(d, d, out=d))
            std = np.sqrt(squares / n)
            self.shift, self.scale = mean.reshape(shape), np.where(std > 0, std, 1.0).reshape(shape)
        self.fitted = True
        return self

    def transform_array(self, x, xp, asarray, dtype):
        """The same scaling as `transform`, on a backend array x (the model's device): x cast to `dtype`,
        then shift and scale as in `transform` (same operations, same order). asarray(host, dtype) moves
        the fitted statistics to x's device."""
        if self.kind == "raw":
            return x if xp.isdtype(x.dtype, "integral") else xp.astype(x, dtype)
        out = (xp.astype(x, dtype) - asarray(self.shift, dtype)) / asarray(self.scale, dtype)
        return out * 2 - 1 if self.kind == "symmetric" else out

    def transform(self, X, dtype: str = "float64", name: str = "X") -> np.ndarray:
        """(samples, features) -> scaled host array of `dtype`; raw integer data (uint8 pixels) is returned
        as it is: the model keeps it integer on the device and casts each minibatch (8x less memory).
        Finite data that scaling or the cast to `dtype` would turn into infinity or NaN raises InputError."""
        X = np.asarray(X)
        if self.kind == "raw" and X.dtype.kind in "ui":
            return X
        with np.errstate(over="ignore", invalid="ignore"):
            out = X.astype(dtype)
            if self.kind != "raw":
                out = (out - self.shift.astype(dtype)) / self.scale.astype(dtype)
            if self.kind == "symmetric":
                out = out * 2 - 1
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            return out  # NaN or infinity in the data itself: the model's own check names the first one
        if not np.isfinite(out).all():
            lo, hi = (float(X.min()), float(X.max())) if X.size else (0.0, 0.0)
            raise InputError(f"{name} holds values from {lo:.4g} to {hi:.4g}, which become infinite or NaN when "
                             f"scaled ({self.kind}) to {dtype}; rescale the data (e.g. divide it by a power of ten)"
                             f"{' or use --dtype float64' if dtype == 'float32' else ''}")
        return out

    def to_meta(self) -> tuple[dict, dict]:
        """(JSON metadata, host arrays) for a checkpoint."""
        return {"kind": self.kind}, {"scale_shift": np.asarray(self.shift, dtype=np.float64),
                                     "scale_scale": np.asarray(self.scale, dtype=np.float64)}

    @classmethod
    def from_meta(cls, meta: dict | None, arrays: dict) -> "Scaler":
        self = cls((meta or {}).get("kind", "raw"))
        if "scale_shift" in arrays:
            self.shift, self.scale = arrays["scale_shift"], arrays["scale_scale"]
            self.fitted = True
        return self


def _running_sum(total, c):
    """total + the rows of chunk c (rows, *features) added one after another, along axis 0 (the order of
    NumPy's axis-0 sum of a C-ordered array): the first chunk's sum, then each chunk added below the total."""
    c = c.reshape(len(c), -1)
    if total is None:
        return np.add.reduce(c, axis=0)
    return np.add.reduce(np.concatenate([total[None], c]), axis=0) if len(c) else total


def as_scaler(value) -> "Scaler | None":
    """None, a kind name ("unit", "standardize", ...) or a Scaler -> Scaler or None."""
    if value is None or isinstance(value, Scaler):
        return value
    if isinstance(value, str):
        return Scaler(value)
    raise InputError(f"preprocessing must be None, one of {', '.join(SCALES)} or a Scaler, got {value!r}")
