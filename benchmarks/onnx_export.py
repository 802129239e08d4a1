"""ONNX export, measured: export time and file size, the exported graph's agreement with xpnet, and ONNX
Runtime's inference throughput against xpnet on NumPy, for the book's model, xpnet train's default MLP and
LeNet-5.

Usage (from the repository root; one command gives every figure in the results file; outputs in a folder under
benchmarks/results/ add this run to its manifest.json, bench/results.py):

    python benchmarks/onnx_export.py --json benchmarks/results/DATE-onnx/bench.json --markdown benchmarks/results/DATE-onnx/bench.md
    python benchmarks/onnx_export.py --quick           # a check that it runs: 1 epoch, 3 repeats, 1000 test images

Models, trained here on MNIST's 60000 training images (--epochs, default 5) so the weights are realistic:
- book2015: the book's NeuralNetMLP 784-50-10 (sigmoid, logistic output, float64, raw pixels), its
  hyperparameters (`xpnet train --preset book2015`, fewer epochs);
- default-mlp: what `xpnet train --dataset mnist` builds: 784-100-10 ReLU, softmax, float32, unit scaling,
  SGD 0.1 momentum 0.9, batch 32;
- lenet5: the `--preset lenet5` model (Conv2D 6@5x5 pad 2, max-pool, Conv2D 16@5x5, max-pool, dense
  120-84-10, ReLU; Adam 0.002 with a cosine decay over --epochs, batch 128, float32, unit scaling), on
  (N, 1, 28, 28) images.
Each is saved as a checkpoint and exported with `export_checkpoint` (the code `xpnet export` runs):
median export seconds over --repeats, and the file's size; the same graph with every layer traced
(strategy='trace': Dense as ndonnx traces x @ W.T + b, softmax as written) is built beside it for the
node counts and the throughput comparison.

Agreement, on the MNIST test images: max|a-b|/max|b| of ONNX Runtime's probabilities against xpnet's
predict_proba on NumPy (in the trained dtype, and in float32 with the same weights), and the labels that
differ (with how many of those have their top two probabilities within 1e-5); for scale, xpnet float32
against xpnet in the trained dtype (the rounding any float32 run has).

Throughput, samples/s: ONNX Runtime (CPU provider, default threads) on raw pixels, the native and the traced
graph, against xpnet on NumPy doing what `xpnet predict` does (predict_proba on raw data: the model applies
its preprocessing), at
batch 1 (one sample per call, cycling through the test images) and batch 1024. Interleaved: each repeat
times every (batch, runner) once, back to back, for about --seconds each; the table gives the median over
repeats (min-max).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE))

import xpnet  # noqa: E402
from xpnet.data.preprocessing import Scaler  # noqa: E402

from bench.checkout import checkout_id  # noqa: E402
from bench.machine import cpu_model, versions  # noqa: E402
from bench.results import experiment_folder, record_run  # noqa: E402


def train_models(data_dir, epochs: int, n_train: int):
    from xpnet.data.datasets import load_mnist
    X, y, X_test, y_test = load_mnist("mnist", data_dir, download=False)
    X, y = X[:n_train].astype(np.float64), y[:n_train].astype(np.int64)
    models = {}
    nn = xpnet.NeuralNetMLP(n_output=10, n_features=784, n_hidden=50, l2=0.1, epochs=epochs, eta=0.001,
                            alpha=0.001, decrease_const=0.00001, minibatches=50, random_state=1)
    nn.preprocessing = Scaler("raw")
    nn.fit(X, y)
    models["book2015"] = nn
    mlp = xpnet.Sequential(xpnet.mlp_layers([784, 100, 10], "relu"), optimizer={"class": "sgd", "config": {
        "lr": 0.1, "momentum": 0.9}}, dtype="float32", seed=1, preprocessing="unit")
    mlp.fit(X, y, epochs=epochs, batch_size=32, verbose=False)
    models["default-mlp"] = mlp
    from xpnet.models.presets import cnn_spec
    spec = cnn_spec("lenet5", 10, {"loss": "softmax_cross_entropy", "optimizer": "adam", "lr": 0.002, "epochs": epochs,
                                   "l1": 0.0, "l2": 0.0, "dtype": "float32", "seed": 1})  # the lenet5 preset's model
    lenet = xpnet.model_from_config(spec, "numpy")
    lenet.preprocessing = Scaler("unit")
    lenet.fit(X.reshape(-1, 1, 28, 28), y, epochs=epochs, batch_size=128, verbose=False)
    models["lenet5"] = lenet
    return models, X_test.astype(np.float64), np.asarray(y_test)


def timed(fn, seconds: float) -> float:
    """Calls of fn per second over about `seconds` (at least 3 calls)."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 3:
            return n / elapsed


def agreement(ort_out, proba_ref, labels_ref) -> dict:
    """ort_out: (probabilities, labels) against the reference ones."""
    proba = ort_out[0]
    differ = ort_out[1] != labels_ref
    top2 = np.sort(proba_ref, axis=1)[:, -2:]
    tied = (top2[:, 1] - top2[:, 0]) <= 1e-5
    return {"max_rel_diff": float(np.max(np.abs(proba.astype(np.float64) - proba_ref)) / np.max(np.abs(proba_ref))),
            "labels_differ": int(differ.sum()), "labels_differ_within_1e-5": int((differ & tied).sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seconds", type=float, default=0.3, help="time per (repeat, batch, runner)")
    p.add_argument("--test-images", type=int, default=10000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.seconds, args.test_images = 1, 3, 0.05, 1000
    import onnx
    import onnxruntime as ort
    from xpnet.saving.checkpoint import save
    from xpnet.export.onnx import build, export_checkpoint

    load_before = os.getloadavg()[0]
    models, X_test, y_test = train_models(args.data_dir, args.epochs, 6000 if args.quick else 60000)
    X_test, y_test = X_test[:args.test_images], y_test[:args.test_images]
    rows, runners, tmp = {}, {}, Path(tempfile.mkdtemp(prefix="xpnet-onnx-bench-"))
    for name, model in models.items():
        ckpt = model.save(tmp / f"{name}.safetensors")  # the model's own preprocessing in it, as xpnet train writes
        out = tmp / f"{name}.onnx"
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            export_checkpoint(ckpt, out)
            seconds.append(time.perf_counter() - start)
        loaded = xpnet.load(ckpt, backend="numpy")
        shape = tuple(loaded.input_shape)
        traced = build(loaded, strategy="trace").SerializeToString()
        native = onnx.load(str(out))
        sessions = {"onnxruntime": ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]),
                    "onnxruntime-traced": ort.InferenceSession(traced, providers=["CPUExecutionProvider"])}
        raw = X_test.reshape(len(X_test), *shape)  # raw pixels: the graph and the model scale them themselves
        x32 = raw.astype(np.float32)
        as32 = xpnet.load(ckpt, backend="numpy", dtype="float32")
        ort_out = sessions["onnxruntime"].run(None, {"input": x32})
        rows[name] = {
            "architecture": " -> ".join(type(layer).__name__ for layer in loaded.layers), "dtype": loaded.dtype_name,
            "scale": loaded.preprocessing.kind, "test_accuracy_xpnet": float((loaded.predict(raw) == y_test).mean()),
            "test_accuracy_onnx": float((ort_out[1] == y_test).mean()),
            "export_s_median": statistics.median(seconds), "export_s": seconds, "bytes": out.stat().st_size,
            "checkpoint_bytes": ckpt.stat().st_size, "bytes_traced": len(traced), "nodes": len(native.graph.node),
            "nodes_traced": len(onnx.load_from_string(traced).graph.node),
            "vs_trained_dtype": agreement(ort_out, loaded.predict_proba(raw), loaded.predict(raw)),
            "vs_float32": agreement(ort_out, as32.predict_proba(raw), as32.predict(raw)),
            "xpnet_float32_vs_trained_dtype": agreement((as32.predict_proba(raw), as32.predict(raw)),
                                                        loaded.predict_proba(raw), loaded.predict(raw)),
            "vs_traced_graph": agreement(ort_out, sessions["onnxruntime-traced"].run(None, {"input": x32})[0],
                                         ort_out[1]),
        }
        for runner, session in sessions.items():
            runners[(name, runner)] = lambda xb, s=session, sh=shape: s.run(None, {"input": xb.reshape(len(xb), *sh)})
        runners[(name, "xpnet-numpy")] = lambda xb, m=loaded, sh=shape: m.predict_proba(xb.reshape(len(xb), *sh))

    singles = [X_test[i:i + 1].astype(np.float32) for i in range(min(256, len(X_test)))]
    big = np.resize(X_test, (1024, 784)).astype(np.float32)
    rates = {}
    for _ in range(args.repeats):
        for batch in (1, 1024):
            for key, fn in runners.items():
                if batch == 1:
                    it = iter(range(10 ** 12))
                    call = lambda fn=fn, it=it: fn(singles[next(it) % len(singles)])  # noqa: E731
                else:
                    call = lambda fn=fn: fn(big)  # noqa: E731
                rates.setdefault((*key, batch), []).append(batch * timed(call, args.seconds))
    throughput = [{"model": m, "runner": r, "batch": b, "samples_per_s_median": statistics.median(v),
                   "min": min(v), "max": max(v), "repeats": v} for (m, r, b), v in rates.items()]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, {cpu_model()}",
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "versions": {**versions(), **{k: __import__(k).__version__ for k in ("ndonnx", "spox", "onnx",
                                                                                 "onnxruntime")}},
            "command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]) if argv is None else str(argv),
            "epochs": args.epochs, "repeats": args.repeats, "seconds": args.seconds, "test_images": len(X_test)}
    result = {"meta": meta, "models": rows, "throughput": throughput}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    if args.markdown:
        Path(args.markdown).write_text(text)
    folder = experiment_folder(args.json, args.markdown)  # a results folder: its manifest.json says what ran
    if folder:
        record_run(folder, [args.json, args.markdown], commit=checkout_id(ROOT), load_before=round(load_before, 2),
                   load_after=round(meta["load_after"], 2), status="complete")
    print(text)
    return 0


def markdown(result: dict) -> str:
    m = result["meta"]
    out = ["# ONNX export benchmark", "",
           f"- date: {m['date']}", f"- machine: {m['machine']} (shared with other sessions: timings are noisy)",
           f"- load average before / after: {m['load_before']:.2f} / {m['load_after']:.2f}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
           f"- {m['epochs']} training epoch(s); {m['test_images']} MNIST test images; {m['repeats']} repeats, "
           f"~{m['seconds']} s per throughput cell, interleaved", f"- command: `{m['command']}`", "",
           "| model | dtype | scale | export s (median) | .onnx bytes | checkpoint bytes | nodes (traced) | "
           "max rel diff vs xpnet trained dtype | vs xpnet float32 | labels differ (tied <= 1e-5) | "
           "xpnet float32 vs trained dtype | test accuracy xpnet / onnx |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in result["models"].items():
        if "skipped" in r:
            out.append(f"| {name} | skipped: {r['skipped']} |" + "  |" * 10)
            continue
        a, b = r["vs_trained_dtype"], r["vs_float32"]
        out.append(f"| {name} | {r['dtype']} | {r['scale']} | {r['export_s_median']:.3f} | {r['bytes']:,} | "
                   f"{r['checkpoint_bytes']:,} | {r['nodes']} ({r['nodes_traced']}) | {a['max_rel_diff']:.2e} | "
                   f"{b['max_rel_diff']:.2e} | {a['labels_differ']} ({a['labels_differ_within_1e-5']}) / "
                   f"{b['labels_differ']} ({b['labels_differ_within_1e-5']}) | "
                   f"{r['xpnet_float32_vs_trained_dtype']['max_rel_diff']:.2e} | "
                   f"{r['test_accuracy_xpnet']:.4f} / {r['test_accuracy_onnx']:.4f} |")
    out += ["", "Throughput, samples/s, median (min-max) over repeats; x xpnet = ratio to xpnet-numpy's median.", "",
            "| model | batch | runner | samples/s | x xpnet |", "| --- | --- | --- | --- | --- |"]
    base = {(t["model"], t["batch"]): t["samples_per_s_median"] for t in result["throughput"]
            if t["runner"] == "xpnet-numpy"}
    for t in result["throughput"]:
        out.append(f"| {t['model']} | {t['batch']} | {t['runner']} | {t['samples_per_s_median']:,.0f} "
                   f"({t['min']:,.0f}-{t['max']:,.0f}) | {t['samples_per_s_median'] / base[(t['model'], t['batch'])]:.2f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
