"""The cost of logging per training step (issue 29): the same fit with each logger off and on, in one process,
conditions interleaved, the median over repeats of the seconds per update.

    python benchmarks/logging_overhead.py [--repeats 7] [--epochs 5]

Needs tensorboardX and mlflow-skinny for those rows (skipped without them). The model: the default MLP of
`xpnet train` (64-100-10 ReLU, SGD, minibatches of 32) on the 8x8 digits with NumPy, 45 updates an epoch, the
smallest step there is, so the overhead shows at its largest relative to the step."""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.training.loggers import HistoryLogger, MLflowLogger, TensorBoard


def conditions(folder: Path):
    """name -> a function making the callbacks of one run (in a fresh folder)."""
    made = {"off": lambda d: [],
            "history CSV, epochs": lambda d: [HistoryLogger(d / "h.csv")],
            "history JSONL, every step": lambda d: [HistoryLogger(d / "h.jsonl", every_steps=1)],
            "history JSONL, every step, grad norm": lambda d: [HistoryLogger(d / "h.jsonl", every_steps=1,
                                                                           grad_norm=True)]}
    try:
        from tensorboardX import SummaryWriter
        made["tensorboard, epochs + histograms"] = lambda d: [TensorBoard(SummaryWriter(logdir=str(d)))]
        made["tensorboard, every step"] = lambda d: [TensorBoard(SummaryWriter(logdir=str(d)), every_steps=1)]
    except ImportError:
        pass
    try:
        from mlflow.tracking import MlflowClient
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

        def mlflow(d, every=None):
            client = MlflowClient(tracking_uri=(d / "mlruns").as_uri())
            run = client.create_run(client.create_experiment("x")).info.run_id
            return [MLflowLogger(client, run, every_steps=every)]
        made["mlflow, epochs"] = mlflow
        made["mlflow, every step"] = lambda d: mlflow(d, 1)
    except ImportError:
        pass
    return made


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--epochs", type=int, default=5)
    a = p.parse_args()
    X, y, _, _ = load_digits()
    times: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        made = conditions(Path(tmp))
        for r in range(a.repeats + 1):  # the first round warms up, not counted
            for name, make in made.items():
                folder = Path(tmp) / f"{r}-{len(times.get(name, []))}-{abs(hash(name))}"
                folder.mkdir()
                callbacks = make(folder)
                model = xpnet.Sequential(xpnet.mlp_layers([64, 100, 10], "relu"), backend="numpy", seed=1)
                t0 = time.perf_counter()
                model.fit(X, y, epochs=a.epochs, batch_size=32, callbacks=callbacks)
                seconds = time.perf_counter() - t0
                if r:
                    times.setdefault(name, []).append(seconds / len(model.batch_losses_))
    base = statistics.median(times["off"])
    print(f"{'condition':36} {'us/step':>8} {'overhead us/step':>17}")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"{name:36} {m * 1e6:8.1f} {(m - base) * 1e6:17.1f}")


if __name__ == "__main__":
    main()
