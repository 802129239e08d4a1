"""A modern MLP on Fashion-MNIST: ReLU, dropout, softmax cross-entropy, Adam, early stopping.

    python examples/fashion_adam.py --data-dir DIR [--backend torch] [--epochs 20]
"""
import argparse

import xpnet
from xpnet.data.datasets import load_mnist

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default=None)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--samples", type=int, default=60000)
p.add_argument("--backend", default=None)
p.add_argument("--device", default=None)
a = p.parse_args()

X, y, X_test, y_test = load_mnist("fashion-mnist", a.data_dir)
X, y = X[:a.samples] / 255.0, y[:a.samples]
model = xpnet.Sequential([xpnet.Dense(784, 256, init="he_normal"), xpnet.ReLU(), xpnet.Dropout(0.2),
                          xpnet.Dense(256, 128, init="he_normal"), xpnet.ReLU(), xpnet.Dense(128, 10)],
                         loss="softmax_cross_entropy", optimizer=xpnet.Adam(1e-3), backend=a.backend,
                         device=a.device, dtype="float32", seed=0)
model.fit(X, y, epochs=a.epochs, batch_size=128, validation_split=0.1, early_stopping=3, verbose=True)
print(f"test accuracy {model.score(X_test / 255.0, y_test):.4f} on {model.bk.name} ({model.bk.device})")
