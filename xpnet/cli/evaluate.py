"""`xpnet evaluate`: a checkpoint's loss, accuracy and confusion matrix on a dataset's test split; with --report
per-class precision, recall and F1 and their averages (xpnet.metrics), --top-k K the top-K accuracy. A sequence
model's (samples, time) targets count every position, as its accuracy does. A regression model's (task
"regression"): its loss (MSE), R², MAE and RMSE, each output's too when it has several (xpnet.data.regression)."""
from __future__ import annotations

import sys

import numpy as np

from ..errors import InputError
from ..metrics import confusion_matrix, format_report, report_from_confusion, top_k_accuracy
from ._common import (common_flags, data_settings, load_dataset, load_for_inference, model_input, print_json,
                      progress_bar)


#: above this many classes the confusion matrix is not printed (nor given in --json), and above CONFUSION_LIMIT it
#: is counted over the classes that occur only (a language model's vocabulary: 50257² counts would be 20 GB)
CONFUSION_SHOWN, CONFUSION_LIMIT = 64, 4096


def add_parser(sub) -> None:
    sp = sub.add_parser("evaluate", help="accuracy, loss and confusion matrix of a checkpoint on a dataset (a "
                        "regression model's loss, R², MAE and RMSE)")
    common_flags(sp)
    sp.add_argument("--checkpoint", required=True, metavar="PATH")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--dataset", default=None, help="default: the dataset it was trained on (its test split); a "
                    ".npy file or folder (with --labels) or an image folder is read batch by batch")
    sp.add_argument("--data-dir", default=None, help="default: where the data was when it was trained")
    sp.add_argument("--label-column", default=None, help="default: the one it was trained with")
    sp.add_argument("--offline", action="store_true")
    from ._datasets import add_flags
    add_flags(sp)
    sp.add_argument("--prefetch", type=int, default=0, metavar="N",
                    help="a dataset read batch by batch (a .npy, an image folder): its next N batches read in N "
                         "background threads while one is scored (the same figures; default 0)")
    sp.add_argument("--report", action="store_true",
                    help="print per-class precision, recall, F1 and support with their averages (--json: 'report')")
    sp.add_argument("--top-k", type=int, action="append", default=None, metavar="K",
                    help="also the top-K accuracy (repeatable; with --report)")
    sp.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    result = run_evaluate(args)
    if args.json:
        print_json(result)
    return 0


def run_evaluate(args) -> dict:
    from ..checks import Interval, check
    check("prefetch", getattr(args, "prefetch", 0), Interval(int, 0, None),
          hint="a dataset's batches read ahead by as many threads (0: none)")  # the CLI's own words: --prefetch -1
    model = load_for_inference(args)
    if model.regression:
        refuse_class_flags(args)
    saved = (model.checkpoint_meta_ or {}).get("cli") or {}
    dataset = args.dataset or saved.get("dataset")
    if not dataset:
        raise InputError("name the data to evaluate on with --dataset")
    if not args.dataset and saved.get("dataset_file"):
        dataset = saved["dataset_file"]  # the file it was trained on, wherever this command runs
    data_dir, label_column = data_settings(args, saved)
    from . import _datasets
    if _datasets.is_file_dataset(dataset):
        opts = _datasets.settings(args, saved)  # the image size and color the run read its images with
        if args.dataset and not args.labels:
            opts["labels"] = None  # another dataset's labels are its own
        return evaluate_dataset(args, model, dataset, opts)
    X, y, X_test, y_test = load_dataset(dataset, data_dir, label_column, download=not args.offline)
    split = "test split" if X_test is not None else "training data: it has no test split"
    if X_test is not None:
        X, y = X_test, y_test
    X = model_input(model, X, dataset)
    bar = not args.quiet and sys.stderr.isatty()
    if model.regression:
        return evaluate_regression(args, model, X, y, dataset, "test" if X_test is not None else "train", split, bar)
    truth = model.encode_labels(y, len(y))
    k = model.n_outputs
    names = model.class_names_
    if k <= CONFUSION_LIMIT:  # one pass: loss, accuracy and the counts (a sequence model's: every position)
        with progress_bar(len(y), "loss, accuracy, confusion matrix", bar) as update:
            loss, accuracy, cm = model.evaluate(X, y, progress=update, confusion=True)
    else:  # a language model's vocabulary: the counts of the classes that occur only (the same report)
        with progress_bar(len(y), "loss and accuracy", bar) as update:
            loss, accuracy = model.evaluate(X, y, progress=update)
        with progress_bar(len(y), "confusion matrix", bar) as update:
            pred = model.encode_labels(np.asarray(model.predict(X, progress=update)), len(y))
        seen = np.union1d(truth.reshape(-1), pred.reshape(-1))
        cm = confusion_matrix(np.searchsorted(seen, truth), np.searchsorted(seen, pred), len(seen))
        names = [names[i] for i in seen]
    report = None
    if getattr(args, "report", False):
        report = report_from_confusion(cm, names)
        tops = getattr(args, "top_k", None) or []  # not `k`: that is the number of classes, used below
        for top in tops:
            if top < 1:
                raise InputError(f"--top-k must be 1 or more, got {top}")
        if tops:  # the scores once, for every K
            with progress_bar(len(y), f"top-{','.join(map(str, tops))} accuracy", bar) as update:
                scores = model.predict_proba(X, progress=update)
            for top in tops:
                report[f"top_{top}_accuracy"] = top_k_accuracy(truth, scores, top)
    elif getattr(args, "top_k", None):
        raise InputError("--top-k is part of the per-class report: give --report too")
    positions = f" ({truth.size} positions)" if truth.ndim > 1 else ""
    return _classification_result(
        args, model, f"{dataset} ({split}): n {len(y)}{positions}  accuracy {accuracy:.4f}  loss {loss:.4f}",
        {"accuracy": accuracy, "loss": loss, "n": int(len(y)), "dataset": str(dataset),
         "split": "test" if X_test is not None else "train"},
        cm, names, k <= CONFUSION_SHOWN, report, int(truth.size) if truth.ndim > 1 else None)


def evaluate_dataset(args, model, dataset, opts: dict) -> dict:
    """run_evaluate on a dataset read batch by batch (a .npy file or shard folder with --labels, an image
    folder): loss, accuracy and confusion matrix over all its rows in one pass; --report from the counts."""
    from . import _datasets
    if model.regression:
        raise InputError(f"{dataset} holds class labels; a regression model is evaluated on a .npz or .csv file")
    if getattr(args, "top_k", None):
        raise InputError(f"--top-k needs every row's scores; evaluate {dataset} without it (--report works)")
    ds = _datasets.open_dataset(dataset, opts)
    _datasets.classes(ds, saved_model=model)
    loss, accuracy, cm = _datasets.evaluate(model, ds, getattr(args, "prefetch", 0))
    names, k = model.class_names_, model.n_outputs
    report = report_from_confusion(cm, names) if getattr(args, "report", False) else None
    return _classification_result(
        args, model, f"{dataset} (all {len(ds)} rows): n {len(ds)}  accuracy {accuracy:.4f}  loss {loss:.4f}",
        {"accuracy": accuracy, "loss": loss, "n": len(ds), "dataset": str(dataset), "split": "all"},
        cm, names, k <= CONFUSION_SHOWN, report)


def _classification_result(args, model, head: str, fields: dict, cm, names, shown: bool, report,
                           positions: int | None = None) -> dict:
    """What run_evaluate and evaluate_dataset print and return for a classifier. Unless --quiet: `head`, the
    confusion matrix cm (classes, classes) with `names` when `shown`, the per-class report when there is one. The
    result: `fields` (accuracy, loss, n, dataset, split), the model's classes and class names, the confusion matrix
    as lists (None unless shown), `positions` (a sequence model's scored positions) and `report` where given."""
    if not args.quiet:
        print(head)
        if shown:
            print("confusion matrix (rows: true, columns: predicted):")
            print("\n".join(confusion_table(cm, names)))
        if report is not None:
            print(format_report(report))
    result = dict(fields, classes=[c.item() for c in model.classes_], class_names=model.class_names_,
                  confusion_matrix=cm.tolist() if shown else None)
    if positions is not None:
        result["positions"] = positions
    if report is not None:
        result["report"] = report
    return result


def confusion_table(cm, names) -> list[str]:
    """The confusion matrix's lines: a header of the class names (at most 14 characters), then one row per
    true class, its name and its counts, each count right-aligned under its column's name."""
    shown = [str(n)[:14] for n in names]
    w = max(len(n) for n in shown)
    cw = max(5, w, len(str(int(cm.max(initial=0)))))
    return [" " * w + "".join(f" {n:>{cw}}" for n in shown)] + [
        f"{shown[i]:>{w}}" + "".join(f" {v:>{cw}d}" for v in row) for i, row in enumerate(cm)]


def refuse_class_flags(args) -> None:
    """A regression checkpoint has no classes: --report and --top-k are refused in one line saying what it gets."""
    flag = "--report" if getattr(args, "report", False) else "--top-k" if getattr(args, "top_k", None) else None
    if flag:
        what = "a per-class precision/recall/F1 report" if flag == "--report" else "a top-K accuracy over classes"
        raise InputError(f"{flag} asks for {what}, but {args.checkpoint} is a regression model (continuous targets, "
                         f"no classes): drop it; xpnet evaluate prints its loss, R², MAE and RMSE (per output too)")


def evaluate_regression(args, model, X, y, dataset, split: str, where: str, bar: bool) -> dict:
    """A regression checkpoint's figures on (X, y): the model's loss (MSE), R² (uniform average over the outputs,
    scikit-learn's r2_score), MAE and RMSE, and with several outputs each one's R², MAE and RMSE."""
    from ..data.regression import regression_report
    truth = model.encode_labels(y, len(X), f"{dataset}'s targets")  # (samples, outputs) in the model's dtype
    with progress_bar(len(X), "loss", bar) as update:
        loss, _ = model.evaluate(X, truth, progress=update)
    with progress_bar(len(X), "predict", bar) as update:
        pred = np.asarray(model.predict(X, progress=update))
    report = regression_report(truth, pred)
    k = truth.shape[1]
    if not args.quiet:
        outputs = f", {k} outputs" if k > 1 else ""
        mean = " (uniform average)" if k > 1 else ""
        print(f"{dataset} ({where}): n {len(X)}{outputs}  loss (MSE) {loss:.6g}  R²{mean} {report['r2']:.4f}  "
              f"MAE {report['mae']:.6g}  RMSE {report['rmse']:.6g}")
        if k > 1:
            print(f"{'output':>6} {'R²':>8} {'MAE':>11} {'RMSE':>11}")
            for i, o in enumerate(report["outputs"]):
                print(f"{i:>6} {o['r2']:>8.4f} {o['mae']:>11.6g} {o['rmse']:>11.6g}")
    return {"task": "regression", "loss": loss, **{m: report[m] for m in ("r2", "mae", "mse", "rmse")},
            "outputs": report["outputs"], "n": int(len(X)), "dataset": str(dataset), "split": split}
