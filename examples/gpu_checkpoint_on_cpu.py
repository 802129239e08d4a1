"""Train on a GPU (CuPy or torch CUDA when present, else the CPU), save, and load the checkpoint on a CPU.

    python examples/gpu_checkpoint_on_cpu.py [--epochs 10] [--out model.safetensors]
"""
import argparse

import numpy as np

import xpnet
from xpnet.backend import describe
from xpnet.data.datasets import load_digits

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--out", default="digits-model.safetensors")
a = p.parse_args()

if describe("cupy")["available"]:
    backend, device = "cupy", "cuda:0"
elif any(d.startswith("cuda") for d in describe("torch")["devices"]):
    backend, device = "torch", "cuda:0"
else:
    backend, device = "numpy", "cpu"
X, y, X_test, y_test = load_digits()
model = xpnet.Sequential([xpnet.Dense(64, 64), xpnet.ReLU(), xpnet.Dense(64, 10)], optimizer=xpnet.Adam(3e-3),
                         backend=backend, device=device, dtype="float32", seed=0)
model.fit(X / 16.0, y, epochs=a.epochs, batch_size=64)
model.save(a.out)
print(f"trained on {backend} ({device}), saved {a.out}")

cpu = xpnet.load(a.out, backend="numpy", device="cpu")
same = np.array_equal(cpu.predict(X_test / 16.0), xpnet.to_numpy(model.predict(X_test / 16.0)))
print(f"loaded on numpy (cpu): test accuracy {cpu.score(X_test / 16.0, y_test):.4f}; same predictions: {same}")
