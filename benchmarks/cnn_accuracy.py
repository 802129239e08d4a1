"""Accuracy runs of the convolutional presets, with the test accuracy and seconds of every epoch.

    python benchmarks/cnn_accuracy.py --preset lenet5 --seed 1 --out benchmarks/results/DATE-cnn-accuracy/lenet5-seed1.jsonl
    python benchmarks/cnn_accuracy.py --preset fashion-cnn --seed 1 --backend numpy
    python benchmarks/cnn_accuracy.py --preset resnet-fashion --seed 1 --backend torch --augment crop,flip

The run is `xpnet train --preset PRESET --seed SEED` (the same model config, scaling, seed, shuffles and
updates: xpnet.models.presets' settings and model_spec, and Scaler), with the test set scored after every
epoch for the record only (nothing is selected on it: the reported figure is the last epoch's). One JSON line per
epoch goes to --out as the run goes (epoch, loss, train accuracy, test accuracy, seconds of training), and a last
line with the totals, so a run cut short leaves its epochs readable. An --out in a folder under benchmarks/results/ adds the
run to that folder's manifest.json (bench/results.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from xpnet.models.presets import as_images  # noqa: E402
from xpnet.data.datasets import load_mnist  # noqa: E402
from xpnet.data.preprocessing import Scaler  # noqa: E402
from xpnet.registry import model_from_config  # noqa: E402
from xpnet.models.presets import CNN_MODELS, model_spec, preset_settings, with_overrides  # noqa: E402
from xpnet.cli.train import _with_label_smoothing  # noqa: E402
from bench.checkout import checkout_id  # noqa: E402
from bench.results import experiment_folder, record_run  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=list(CNN_MODELS), default="lenet5")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's (15)")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--augment", default=None, help="the preset with `xpnet train --augment`'s layers first, e.g. crop,flip")
    p.add_argument("--optimizer", default=None, help="in place of the preset's, e.g. adam or adamw (without --lr: at its default rate)")
    p.add_argument("--lr", type=float, default=None, help="in place of the preset's rate")
    p.add_argument("--weight-decay", type=float, default=None, help="as `xpnet train --weight-decay`")
    p.add_argument("--batch-size", type=int, default=None, help="in place of the preset's (128)")
    p.add_argument("--label-smoothing", type=float, default=None, help="as `xpnet train --label-smoothing`")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=None, help="JSON lines, one per epoch (default: stdout only)")
    args = p.parse_args(argv)
    cfg = preset_settings(args.preset)
    cfg["seed"] = args.seed
    overrides = ("optimizer", "lr", "weight_decay", "batch_size", "label_smoothing")  # beside the preset's
    with_overrides(cfg, {k: getattr(args, k) for k in ("epochs", "augment") + overrides[:-1]})
    X, y, Xt, yt = load_mnist(cfg["dataset"], args.data_dir, download=False)
    X, Xt = as_images(X, (1, 28, 28)), as_images(Xt, (1, 28, 28))
    scaler = Scaler(cfg["scale"]).fit(X)
    Xs, Xts = scaler.transform(X, cfg["dtype"]), scaler.transform(Xt, cfg["dtype"])
    spec = _with_label_smoothing(model_spec(784, 10, cfg), args)  # as `xpnet train --label-smoothing`
    model = model_from_config(spec, args.backend, **({"compile": True} if args.compile else {}))
    out = open(args.out, "a") if args.out else None
    head = {"record": "meta", "preset": args.preset, "seed": args.seed, "backend": args.backend,
            "compile": args.compile, "augment": cfg["augment"], "epochs": cfg["epochs"],
            **{k: getattr(args, k) for k in overrides if getattr(args, k) is not None},
            "command": " ".join(["python"] + sys.argv)}

    def emit(row):
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    emit(head)
    folder = experiment_folder(args.out)  # a results folder: its manifest.json says what ran
    load_before = round(os.getloadavg()[0], 2)

    def manifest(status):
        if folder:
            record_run(folder, [args.out], commit=checkout_id(ROOT), load_before=load_before,
                       load_after=round(os.getloadavg()[0], 2), status=status)
    manifest("running")

    def on_epoch_end(m, logs):
        t = time.perf_counter()
        acc = m.score(Xts, yt)
        emit({"record": "epoch", "epoch": logs["epoch"], "loss": logs["loss"], "train_accuracy": logs["accuracy"],
              "test_accuracy": acc, "lr": logs["lr"], "seconds": logs["seconds"],
              "test_seconds": time.perf_counter() - t})

    t0 = time.perf_counter()
    model.fit(Xs, np.asarray(y), callbacks=[on_epoch_end], epochs=cfg["epochs"], batch_size=cfg["batch_size"],
              compose_shuffles=False)
    hist = model.history_
    emit({"record": "end", "test_accuracy": model.score(Xts, yt), "seconds_per_epoch_median": float(np.median(hist["seconds"])),
          "total_seconds": time.perf_counter() - t0})
    manifest("complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
