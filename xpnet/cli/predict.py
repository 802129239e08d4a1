"""`xpnet predict`: a checkpoint's predictions for image files, arrays or CSV rows (and a CSV of them): a
classifier's labels and probabilities, a regression model's outputs (one value per output)."""
from __future__ import annotations

import csv
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
    sp.add_argument("--prefetch", type=int, default=0, metavar="N",
                    help="read (images: decode) the next N batches of inputs in N background threads while one is "
                         "predicted (the same outputs; default 0)")
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
    """Predict on args.files, read batch by batch (xpnet.data.predict_inputs.InputRows: a .npy is memory-mapped,
    images decoded per batch; --prefetch N: N batches read ahead),
    print a line per input and write --output as the outputs come, row by row. Returns what --json prints:
    every prediction with its file and row (built only for --json: a list the size of the input), else the
    counts and the score."""
    from ..checks import Interval, check
    from ..data.predict_inputs import read_inputs
    prefetch = check("prefetch", getattr(args, "prefetch", 0), Interval(int, 0, None),
                     hint="batches of inputs read ahead by as many threads (0: none)")
    model = load_for_inference(args)
    _, label_column = data_settings(args, (model.checkpoint_meta_ or {}).get("cli") or {})
    from ._datasets import image_shape
    inputs, y = read_inputs(args.files, model.input_shape, args.invert, label_column,
                            trained_on=model_inputs(model), wide_targets=model.regression,
                            image_shape=image_shape((model.checkpoint_meta_ or {}).get("cli") or {}))
    if model.regression:
        return predict_regression(args, model, inputs, y, prefetch)
    with progress_bar(len(inputs), "predict", not args.quiet and sys.stderr.isatty()) as update:
        proba = np.asarray(model.predict_proba(inputs, progress=update, prefetch=prefetch), dtype=np.float64)
    idx = proba.argmax(axis=1)
    classes, names = model.classes_, model.class_names_
    labels = classes[idx]

    def rows():
        for (f, r), lab, i, p in zip(inputs.sources(), labels, idx, proba):
            yield {"file": f, "index": r, "label": lab.item(), "class_name": names[i], "probability": float(p[i]),
                   "probabilities": p.tolist()}
    result = {"samples": len(inputs)}
    if y is not None:
        result["accuracy"] = float(np.mean(model.encode_labels(y, len(y)) == idx))
    if args.json:
        result.update(predictions=labels.tolist(), class_names=[names[i] for i in idx], probabilities=proba.tolist(),
                      classes=[c.item() for c in classes], rows=list(rows()))
    if args.output:
        write_predictions(args.output, rows(), names)
    _show(args, _label_lines(model, rows(), inputs.one_file),
          None if y is None else f"accuracy {result['accuracy']:.4f} against the label column ({len(y)} samples)")
    return result


def _label_lines(model, rows, one_file: bool):
    """A printed line per prediction (made as printed): where, the label (and its class name where the model
    has names), the probability."""
    show_name = label_names(model) is not None
    for row in rows:
        name = f" ({row['class_name']})" if show_name else ""
        yield f"{_where(row, one_file)}: {row['label']}{name}  (p = {row['probability']:.3f})"


def predict_regression(args, model, inputs, y, prefetch: int = 0) -> dict:
    """A regression checkpoint's outputs for the inputs: `predictions` one value per input for one output, else
    one list of `outputs` values each (no labels, no probabilities); R² against the files' targets (a .csv's
    label column, an .npz's y) when every file has them; --output writes them as CSV columns."""
    with progress_bar(len(inputs), "predict", not args.quiet and sys.stderr.isatty()) as update:
        pred = np.asarray(model.predict(inputs, progress=update, prefetch=prefetch), dtype=np.float64)
    k = pred.shape[1]

    def rows():
        for (f, r), p in zip(inputs.sources(), pred):
            yield {"file": f, "index": r, "prediction": float(p[0]) if k == 1 else p.tolist()}
    result = {"task": "regression", "samples": len(inputs), "outputs": k}
    if y is not None:
        from ..data.regression import r2_score
        result["r2"] = r2_score(model.encode_labels(y, len(y), "the files' targets (a .csv label column, an .npz y)"),
                                pred)
    if args.json:
        result.update(predictions=pred[:, 0].tolist() if k == 1 else pred.tolist(), rows=list(rows()))
    if args.output:
        write_outputs(args.output, inputs.sources(), pred)
    _show(args, (f"{_where(row, inputs.one_file)}: {', '.join(f'{v:.6g}' for v in p)}"
                 for row, p in zip(rows(), pred)),
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


def _where(row: dict, one_file: bool) -> str:
    """How a printed prediction names its input: the row index when all come from one file, else the file (and
    its row)."""
    if one_file:
        return str(row["index"] if row["index"] is not None else 0)
    return row["file"] if row["index"] is None else f"{row['file']}[{row['index']}]"


def write_outputs(path, sources, pred) -> None:
    """A CSV of a regression model's outputs, written row by row: file, index, then `prediction` (one output)
    or prediction_0, ... (one column per output). sources: (file, row or None) per row of pred."""
    from ..saving.files import atomic_open
    k = pred.shape[1]
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "index"] + (["prediction"] if k == 1 else [f"prediction_{i}" for i in range(k)]))
        for (name, r), p in zip(sources, pred):
            w.writerow([name, "" if r is None else r, *(f"{v:.9g}" for v in p)])


def write_predictions(path, rows, names: list[str]) -> None:
    """A CSV of predictions, written row by row: file, index, label, class_name, then one probability column
    per class. rows: an iterable of run_predict's row dicts."""
    from ..saving.files import atomic_open
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "index", "label", "class_name"] + [f"p_{n}" for n in names])
        for r in rows:
            w.writerow([r["file"], "" if r["index"] is None else r["index"], r["label"], r["class_name"],
                        *(f"{p:.9g}" for p in r["probabilities"])])
