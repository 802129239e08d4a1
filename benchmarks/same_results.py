"""Are two checkouts' results bit-identical? NeuralNetMLP with the book2015 preset's settings (NumPy,
float64, the 60,000 MNIST training images, raw pixels) for a few epochs; prints SHA-256 digests of cost_,
the weights and the test-set predictions and probabilities, per checkout, and whether they are equal.

    git worktree add /tmp/xpnet-old 9973ecb
    python benchmarks/same_results.py --baseline /tmp/xpnet-old --epochs 3 [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import hashlib, json, sys
import numpy as np
import xpnet
try:
    from xpnet.data.datasets import load_mnist
except ImportError:  # a baseline checkout from before xpnet/data/ (0.1.0)
    from xpnet.datasets import load_mnist
epochs, data_dir = int(sys.argv[1]), sys.argv[2]
X, y, Xt, yt = load_mnist("mnist", data_dir, download=False)
nn = xpnet.NeuralNetMLP(n_output=10, n_features=784, n_hidden=50, l2=0.1, l1=0.0, epochs=epochs, eta=0.001,
                        alpha=0.001, decrease_const=0.00001, minibatches=50, shuffle=True, random_state=1,
                        backend="numpy", dtype="float64")
nn.fit(X, y)
digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
print(json.dumps({"xpnet": xpnet.__file__, "cost": digest(np.asarray(nn.cost_, dtype=np.float64)),
                  "w1": digest(nn.w1), "w2": digest(nn.w2), "predict": digest(nn.predict(Xt)),
                  "predict_proba": digest(nn.predict_proba(Xt)), "eta": repr(nn.eta), "n_cost": len(nn.cost_),
                  "last_cost": repr(nn.cost_[-1]), "test_accuracy": float((nn.predict(Xt) == yt).mean())}))
"""


def run(checkout: Path, epochs: int, data_dir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run([sys.executable, "-c", WORKER, str(epochs), data_dir], env=env, check=True,
                         capture_output=True, text=True, cwd="/")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["xpnet"].startswith(str(checkout.resolve())):
        raise SystemExit(f"the worker for {checkout} imported {result['xpnet']}; check PYTHONPATH / editable installs")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, type=Path, help="root of the other checkout (e.g. a git worktree)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    a = p.parse_args()
    old, new = run(a.baseline, a.epochs, a.data_dir), run(ROOT, a.epochs, a.data_dir)
    keys = ["cost", "w1", "w2", "predict", "predict_proba", "eta", "n_cost", "last_cost"]
    for k in keys + ["test_accuracy"]:
        print(f"{k:<14} {str(old[k]):<20} {str(new[k]):<20} {'same' if old[k] == new[k] else 'DIFFERENT'}")
    same = all(old[k] == new[k] for k in keys)
    print("bit-identical" if same else "NOT bit-identical")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
