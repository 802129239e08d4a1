"""`xpnet predict`: a checkpoint's predictions for image files, arrays or CSV rows (and a CSV of them): a
classifier's labels and probabilities, a regression model's outputs (one value per output)."""
from __future__ import annotations

import csv
import io
import sys

import numpy as np

from ._common import (common_flags, data_settings, label_names, load_for_inference, model_inputs, print_json,
                      progress_bar)


def add_parser(sub) -> None:
    sp = sub.add_parser("predict", help="labels and probabilities (a regression model's outputs) for .npy, .npz, "
                        ".csv files or images")
    common_flags(sp)
    sp.add_argument("--checkpoint", required=True, metavar="PATH")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("files", nargs="+", metavar="FILE",
                    help=".npy, .npz (array X), .csv (with or without the label column) or an image (png, "
                         "jpg, ...); several at once")
    sp.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                    help="invert an image's gray levels (auto: when its background is light, as on paper)")
    sp.add_argument("--label-column", default=None, help="a .csv's label column, left out of the "
                    "features and compared with the predictions (default: the one it was trained with)")
    sp.add_argument("--output", default=None, metavar="PATH",
                    help="write a CSV: file, index, label, class_name, one probability column per class (a "
                         "regression model's: file, index, prediction or prediction_0, prediction_1, ...)")
    sp.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    result = run_predict(args)
    if args.json:
        print_json(result)
    return 0


def run_predict(args) -> dict:
    from ..data.predict_inputs import read_inputs
    model = load_for_inference(args)
    _, label_column = data_settings(args, (model.checkpoint_meta_ or {}).get("cli") or {})
    from ._datasets import image_shape
    X, sources, y = read_inputs(args.files, model.input_shape, args.invert, label_column,
                                trained_on=model_inputs(model), wide_targets=model.regression,
                                image_shape=image_shape((model.checkpoint_meta_ or {}).get("cli") or {}))
    if model.regression:
        return predict_regression(args, model, X, sources, y)
    with progress_bar(len(X), "predict", not args.quiet and sys.stderr.isatty()) as update:
        proba = np.asarray(model.predict_proba(X, progress=update), dtype=np.float64)
    idx = proba.argmax(axis=1)
    classes, names = model.classes_, model.class_names_
    labels = [classes[i].item() for i in idx]
    rows = [{"file": f, "index": r, "label": lab, "class_name": names[i], "probability": float(p[i]),
             "probabilities": p.tolist()} for (f, r), lab, i, p in zip(sources, labels, idx, proba)]
    result = {"predictions": labels, "class_names": [names[i] for i in idx], "probabilities": proba.tolist(),
              "classes": [c.item() for c in classes], "rows": rows}
    if y is not None:
        result["accuracy"] = float(np.mean(model.encode_labels(y, len(y)) == idx))
    if args.output:
        write_predictions(args.output, rows, names)
    _show(args, _label_lines(model, rows, sources),
          None if y is None else f"accuracy {result['accuracy']:.4f} against the label column ({len(y)} samples)")
    return result


def _label_lines(model, rows: list[dict], sources):
    """A printed line per prediction (made as printed): where, the label (and its class name where the model
    has names), the probability."""
    show_name = label_names(model) is not None
    for row in rows:
        name = f" ({row['class_name']})" if show_name else ""
        yield f"{_where(row, sources)}: {row['label']}{name}  (p = {row['probability']:.3f})"


def predict_regression(args, model, X, sources, y) -> dict:
    """A regression checkpoint's outputs for the inputs: `predictions` one value per input for one output, else
    one list of `outputs` values each (no labels, no probabilities); R² against the files' targets (a .csv's
    label column, an .npz's y) when every file has them; --output writes them as CSV columns."""
    with progress_bar(len(X), "predict", not args.quiet and sys.stderr.isatty()) as update:
        pred = np.asarray(model.predict(X, progress=update), dtype=np.float64)
    k = pred.shape[1]
    values = pred[:, 0].tolist() if k == 1 else pred.tolist()
    rows = [{"file": f, "index": r, "prediction": v} for (f, r), v in zip(sources, values)]
    result = {"task": "regression", "predictions": values, "outputs": k, "rows": rows}
    if y is not None:
        from ..data.regression import r2_score
        result["r2"] = r2_score(model.encode_labels(y, len(y), "the files' targets (a .csv label column, an .npz y)"),
                                pred)
    if args.output:
        write_outputs(args.output, sources, pred)
    _show(args, (f"{_where(row, sources)}: {', '.join(f'{v:.6g}' for v in p)}" for row, p in zip(rows, pred)),
          None if y is None else f"R² {result['r2']:.4f} against the files' targets ({len(y)} samples)")
    return result


def _show(args, lines, score: str | None) -> None:
    """What predict prints, unless --quiet or --json: `lines` (an iterable of a line per prediction), the score
    against the inputs' targets (None: they had none), where --output wrote."""
    if args.quiet or args.json:
        return
    for line in lines:
        print(line)
    if score is not None:
        print(score)
    if args.output:
        print(f"wrote {args.output}")


def _where(row: dict, sources) -> str:
    """How a printed prediction names its input: the row index when all come from one file, else the file (and
    its row)."""
    if len({f for f, _ in sources}) == 1:
        return str(row["index"] if row["index"] is not None else 0)
    return row["file"] if row["index"] is None else f"{row['file']}[{row['index']}]"


def write_outputs(path, sources, pred) -> None:
    """A CSV of a regression model's outputs: file, index, then `prediction` (one output) or prediction_0, ...
    (one column per output)."""
    from ..saving.files import atomic_write_text
    k = pred.shape[1]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["file", "index"] + (["prediction"] if k == 1 else [f"prediction_{i}" for i in range(k)]))
    for (f, r), p in zip(sources, pred):
        w.writerow([f, "" if r is None else r, *(f"{v:.9g}" for v in p)])
    atomic_write_text(path, out.getvalue())


def write_predictions(path, rows: list[dict], names: list[str]) -> None:
    """A CSV of predictions: file, index, label, class_name, then one probability column per class."""
    from ..saving.files import atomic_write_text
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["file", "index", "label", "class_name"] + [f"p_{n}" for n in names])
    for r in rows:
        w.writerow([r["file"], "" if r["index"] is None else r["index"], r["label"], r["class_name"],
                    *(f"{p:.9g}" for p in r["probabilities"])])
    atomic_write_text(path, out.getvalue())
