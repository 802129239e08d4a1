"""Classification metrics from labels, scores or confusion counts, on the host: accuracy, top-k accuracy,
precision, recall and F1 per class and averaged (macro, micro, weighted), and a per-class report.

Everything is computed from the confusion counts (rows: true class, columns: predicted), so the same
figures come from a whole data set's predictions (`classification_report`), from counts summed on the device
batch by batch (fit's validation, `metrics_from_confusion`) or summed over data-parallel ranks. The definitions
are scikit-learn's (sklearn.metrics.classification_report, top_k_accuracy_score), with zero_division=0: a
class never predicted has precision 0, a class absent from the labels recall 0 (and F1 0).

    report = xpnet.metrics.classification_report(y_true, y_pred, target_names=["cat", "dog"])
    report["macro avg"]["f1-score"]; print(xpnet.metrics.format_report(report))
"""
from __future__ import annotations

import numpy as np

from .errors import InputError

AVERAGES = ("macro", "micro", "weighted")
# the validation figures fit adds to each epoch's logs (and history) when it has validation data: what
# EarlyStopping(monitor=) and ModelCheckpoint(monitor=) can watch, besides val_loss and val_accuracy
VALIDATION_METRICS = tuple(f"val_{m}_{avg}" for m in ("precision", "recall", "f1") for avg in AVERAGES)


def monitor_mode(name: str, mode: str = "auto") -> str:
    """'min' or 'max' for a monitored figure: mode as given, or inferred ('auto') from its name: losses (a
    name ending in 'loss') are minimized; accuracy, top-k accuracy, precision, recall and F1 maximized."""
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise InputError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    base = name[4:] if name.startswith("val_") else name
    if base.endswith("loss"):
        return "min"
    if base in ("accuracy", "top_k_accuracy") or base.split("_")[0] in ("precision", "recall", "f1"):
        return "max"
    raise InputError(f"cannot tell whether {name!r} should rise or fall; pass mode='min' or mode='max' (known: "
                     f"val_loss, val_accuracy, {', '.join(VALIDATION_METRICS)})")


def _labels(y, name: str) -> np.ndarray:
    """Integer class indices as int64: (samples,), or a sequence model's (samples, time), every position one
    label (as the loop's accuracy counts them)."""
    y = np.asarray(y)
    if y.ndim not in (1, 2) or y.dtype.kind not in "biu":
        raise InputError(f"{name} must be integer class indices 0..k-1 of shape (samples,) or, per position, "
                         f"(samples, time), got shape {y.shape} ({y.dtype}); encode names first "
                         f"(model.encode_labels(y, len(y)))")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Counts (n_classes, n_classes) int64 of class indices: [i, j] = samples of class i predicted j (for
    (samples, time) indices, positions: every position counts once). n_classes: default the largest index + 1."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise InputError(f"y_true and y_pred must have the same shape, got {t.shape} and {p.shape}")
    t, p = t.reshape(-1), p.reshape(-1)
    k = int(max(t.max(initial=-1), p.max(initial=-1)) + 1) if n_classes is None else int(n_classes)
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        raise InputError(f"class indices must be 0..{k - 1}, got {min(t.min(), p.min())}..{max(t.max(), p.max())}")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _div(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class(cm) -> dict:
    """{'precision', 'recall', 'f1-score', 'support'}: arrays (k,) from confusion counts (k, k)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    precision, recall = _div(tp, predicted), _div(tp, support)
    return {"precision": precision, "recall": recall, "f1-score": _div(2 * tp, support + predicted),
            "support": support.astype(np.int64)}


def averaged(cm, average: str) -> dict:
    """{'precision', 'recall', 'f1-score'} averaged over the classes: 'macro' (unweighted mean over the classes
    the labels or predictions hold), 'weighted' (by support) or 'micro' (from the summed counts: the accuracy,
    for single-label data)."""
    cm = np.asarray(cm, dtype=np.float64)
    pc = per_class(cm)
    if average == "micro":
        tp, total = np.trace(cm), cm.sum()
        v = float(tp / total) if total else 0.0
        return {"precision": v, "recall": v, "f1-score": v}
    if average == "weighted":
        w = pc["support"].astype(np.float64)
        return {m: float((pc[m] * w).sum() / w.sum()) if w.sum() else 0.0 for m in ("precision", "recall", "f1-score")}
    if average != "macro":
        raise InputError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
    seen = (cm.sum(axis=1) + cm.sum(axis=0)) > 0  # scikit-learn's labels: those in y_true or y_pred
    return {m: float(pc[m][seen].mean()) if seen.any() else 0.0 for m in ("precision", "recall", "f1-score")}


def report_from_confusion(cm, target_names=None) -> dict:
    """A classification report (scikit-learn's output_dict layout) from confusion counts (k, k): one entry per
    class {'precision', 'recall', 'f1-score', 'support'}, 'accuracy', 'macro avg', 'micro avg', 'weighted avg'.
    Classes neither in the labels nor predicted are left out, as scikit-learn leaves them out."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if target_names is None else [str(n) for n in target_names]
    if len(names) != k:
        raise InputError(f"target_names has {len(names)} names for {k} classes")
    seen = (cm.sum(axis=1) + cm.sum(axis=0)) > 0
    pc = per_class(cm)
    report = {names[i]: {m: (int(pc[m][i]) if m == "support" else float(pc[m][i])) for m in pc}
              for i in range(k) if seen[i]}
    total = int(cm.sum())
    report["accuracy"] = float(np.trace(cm) / total) if total else 0.0
    for avg in AVERAGES:
        report[f"{avg} avg"] = dict(averaged(cm, avg), support=total)
    return report


def classification_report(y_true, y_pred, n_classes: int | None = None, target_names=None) -> dict:
    """The per-class report of class indices y_true, y_pred (n,), or (n, time) for a sequence model, every
    position counted (its support is positions): see report_from_confusion."""
    return report_from_confusion(confusion_matrix(y_true, y_pred, n_classes), target_names)


def metrics_from_confusion(cm, prefix: str = "val_") -> dict:
    """{prefix + 'precision_macro': ..., ..., prefix + 'f1_weighted': ...}: VALIDATION_METRICS' figures (as
    Python floats) from confusion counts."""
    out = {}
    for avg in AVERAGES:
        a = averaged(cm, avg)
        out.update({f"{prefix}precision_{avg}": a["precision"], f"{prefix}recall_{avg}": a["recall"],
                    f"{prefix}f1_{avg}": a["f1-score"]})
    return out


def top_k_accuracy(y_true, scores, k: int = 5) -> float:
    """The fraction of samples whose class is among the k highest scores (n, classes) (ties broken as
    scikit-learn's top_k_accuracy_score breaks them: a stable ascending sort, reversed); for a sequence model
    y_true (n, time) and scores (n, time, classes), the fraction of positions."""
    t = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != t.ndim + 1 or s.shape[:-1] != t.shape:
        want = ", ".join(map(str, t.shape))
        raise InputError(f"scores must be (samples, classes) or (samples, time, classes) = ({want}, classes), got "
                         f"shape {s.shape}")
    t, s = t.reshape(-1), s.reshape(-1, s.shape[-1])
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a whole number >= 1, got {k!r}")
    if t.size == 0:
        return 0.0
    top = np.argsort(s, axis=1, kind="stable")[:, ::-1][:, :min(k, s.shape[1])]
    return float((top == t[:, None]).any(axis=1).mean())


def format_report(report: dict, digits: int = 4) -> str:
    """The report as a table: one row per class, then accuracy and the averages (scikit-learn's layout)."""
    rows = [k for k in report if k not in ("accuracy", *(f"{a} avg" for a in AVERAGES)) and isinstance(report[k], dict)]
    extra = [k for k in report if k.startswith("top_")]
    width = max([len(r) for r in rows] + [len("weighted avg"), *(len(e) for e in extra)])
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    line = lambda name, r: (f"{name:>{width}} {r['precision']:>9.{digits}f} {r['recall']:>9.{digits}f} "  # noqa: E731
                            f"{r['f1-score']:>9.{digits}f} {r['support']:>9d}")
    out = [head, ""] + [line(r, report[r]) for r in rows] + [""]
    total = report["macro avg"]["support"]
    out.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {report['accuracy']:>9.{digits}f} {total:>9d}")
    out += [line(f"{a} avg", report[f"{a} avg"]) for a in AVERAGES]
    out += [f"{e:>{width}} {'':>9} {'':>9} {report[e]:>9.{digits}f} {total:>9d}" for e in extra]
    return "\n".join(out)
