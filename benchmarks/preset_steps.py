"""Seconds per training step of convolutional presets, interleaved in one process: a preset's epoch is its
steps (the same 469 of batch 128 on MNIST-sized data for every preset here) plus scoring, so the ratio of step
times is the ratio of training epochs.

    python benchmarks/preset_steps.py --presets fashion-cnn,resnet-fashion --steps 20 --rounds 5

Each round times `--steps` updates of every preset in turn (after one untimed warm-up round), on the first
batches of Fashion-MNIST scaled as the preset trains; the medians over rounds and their ratio to the first
preset are printed, and written as JSON lines to --out (one per round and preset, then one summary per preset).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from xpnet.data.datasets import load_mnist  # noqa: E402
from xpnet.data.preprocessing import Scaler  # noqa: E402
from xpnet.models.presets import CNN_MODELS, as_images, model_spec, preset_settings  # noqa: E402
from xpnet.registry import model_from_config  # noqa: E402
from bench.results import Rows  # noqa: E402


def prepared(name: str, backend: str, data_dir: str, n: int):
    """(model, X, Y): the preset's model and its first n training images and labels, scaled as it trains."""
    cfg = preset_settings(name)
    X, y, _, _ = load_mnist("fashion-mnist", data_dir, download=False)
    X = Scaler(cfg["scale"]).fit(as_images(X, (1, 28, 28))).transform(as_images(X[:n], (1, 28, 28)), cfg["dtype"])
    model = model_from_config(model_spec(784, 10, cfg), backend)
    return model, X, np.asarray(y[:n]), cfg["batch_size"]


def time_steps(model, X, y, batch: int, steps: int) -> float:
    """Seconds for `steps` updates of `batch` samples (fit, one pass over steps * batch samples)."""
    t = time.perf_counter()
    model.fit(X, y, steps=steps, batch_size=batch, compose_shuffles=False)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="fashion-cnn,resnet-fashion")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    names = args.presets.split(",")
    unknown = [n for n in names if n not in CNN_MODELS]
    if unknown:
        p.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(CNN_MODELS)}")
    runs = {n: prepared(n, args.backend, args.data_dir, 128 * args.steps) for n in names}
    times = {n: [] for n in names}
    with Rows(args.out, root=ROOT, mode="w") as rows:
        for r in range(args.rounds + 1):
            for n in names:
                model, X, y, batch = runs[n]
                s = time_steps(model, X, y, batch, args.steps) / args.steps
                if r == 0:
                    continue  # warm-up: first allocations and caches
                times[n].append(s)
                rows.emit({"round": r, "preset": n, "seconds_per_step": s}, show=False)
        base = statistics.median(times[names[0]])
        for n in names:
            med = statistics.median(times[n])
            rows.emit({"preset": n, "backend": args.backend, "steps": args.steps, "rounds": args.rounds,
                       "median_seconds_per_step": med, "min": min(times[n]), "max": max(times[n]),
                       f"ratio_to_{names[0]}": med / base})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
