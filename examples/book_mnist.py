"""The book's experiment through the library API: NeuralNetMLP on MNIST with the 2015 settings.

    python examples/book_mnist.py --data-dir DIR            # the full run: 1000 epochs
    python examples/book_mnist.py --epochs 5 --samples 5000 # a quick look
"""
import argparse

import numpy as np

import xpnet
from xpnet.data.datasets import load_mnist

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default=None)
p.add_argument("--epochs", type=int, default=1000)
p.add_argument("--samples", type=int, default=60000, help="use the first N training images")
p.add_argument("--backend", default="numpy")
a = p.parse_args()

X, y, X_test, y_test = load_mnist("mnist", a.data_dir)
X, y = X[:a.samples].astype(np.float64), y[:a.samples].astype(np.int64)  # raw pixels 0-255, as the book
nn = xpnet.NeuralNetMLP(n_output=10, n_features=X.shape[1], n_hidden=50, l2=0.1, l1=0.0, epochs=a.epochs,
                        eta=0.001, alpha=0.001, decrease_const=0.00001, minibatches=50, shuffle=True,
                        random_state=1, backend=a.backend)
nn.fit(X, y)
print(f"cost_: {len(nn.cost_)} minibatch costs, last {nn.cost_[-1]:.2f}; eta decayed to {nn.eta:.3g}")
print(f"Training accuracy: {nn.score(X, y) * 100:.2f}%")
print(f"Test accuracy: {nn.score(X_test.astype(np.float64), y_test) * 100:.2f}%")
