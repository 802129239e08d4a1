"""`xpnet predict`: a checkpoint's predictions for image files, arrays or CSV rows (and a CSV of them)."""
from __future__ import annotations

import csv
import io
import sys

import numpy as np

from ._common import (common_flags, data_settings, label_names, load_for_inference, model_inputs, print_json,
                      progress_bar)


def add_parser(sub) -> None:
    sp = sub.add_parser("predict", help="labels and probabilities for .npy, .npz, .csv files or images")
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
                    help="write a CSV: file, index, label, class_name, one probability column per class")
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
    X, sources, y = read_inputs(args.files, model.input_shape, args.invert, label_column,
                                trained_on=model_inputs(model))
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
    if not args.quiet and not args.json:
        show_name = label_names(model) is not None
        for row in rows:
            where = row["file"] if len(sources) == 1 or row["index"] is None else f"{row['file']}[{row['index']}]"
            if len({f for f, _ in sources}) == 1:
                where = str(row["index"] if row["index"] is not None else 0)
            name = f" ({row['class_name']})" if show_name else ""
            print(f"{where}: {row['label']}{name}  (p = {row['probability']:.3f})")
        if y is not None:
            print(f"accuracy {result['accuracy']:.4f} against the label column ({len(y)} samples)")
        if args.output:
            print(f"wrote {args.output}")
    return result


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
