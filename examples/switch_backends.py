"""The same model, the same seed, every installed backend: the same numbers.

    python examples/switch_backends.py [--epochs 3]
"""
import argparse

import numpy as np

import xpnet
from xpnet.backend import NAMES, describe
from xpnet.data.datasets import load_digits
from xpnet.parity import rel_diff

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=3)
a = p.parse_args()

X, y, X_test, y_test = load_digits()
X, X_test = X / 16.0, X_test / 16.0
results = {}
for name in NAMES:
    row = describe(name)
    if not row["available"]:
        print(f"{name:<17} skipped: {row['reason']}")
        continue
    device = "cuda" if name == "cupy" else "cpu"
    model = xpnet.Sequential([xpnet.Dense(64, 32), xpnet.Tanh(), xpnet.Dense(32, 10)],
                             optimizer=xpnet.SGD(0.05, momentum=0.9), backend=name, device=device,
                             dtype="float64", seed=0)
    model.fit(X, y, epochs=a.epochs, batch_size=32)
    results[name] = {k: xpnet.to_numpy(v) for k, v in model.parameters().items()}
    worst = max(rel_diff(results[name][k], results["numpy"][k])[1] for k in results[name])
    print(f"{name:<17} test accuracy {model.score(X_test, y_test):.4f}  max relative difference to numpy "
          f"{worst:.1e}")
assert all(np.isfinite(v).all() for r in results.values() for v in r.values())
