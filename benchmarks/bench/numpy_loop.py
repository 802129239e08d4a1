"""A hand-written, vectorized NumPy training loop: the reference the benchmark compares everything with.

Dense layers y = x @ W.T + b (W: (out, in)), sigmoid or ReLU hidden units, a sigmoid + binary
cross-entropy ('logistic') or softmax cross-entropy output (gradient p - y, summed or averaged over the
minibatch), plain SGD, classical momentum (PyTorch's form) or the book's look-back (w -= d + alpha * d_prev),
L2 on weights. Every array stays in one dtype; no loss value or accuracy is computed, only forward,
backward and the in-place update.
"""
import numpy as np


def sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


class NumpyMLP:
    def __init__(self, params, hidden="sigmoid", loss="softmax", reduction="mean", lr=0.1, momentum=0.0, alpha=0.0,
                 l2=0.0, dtype="float32", seed=0):
        assert not (momentum and alpha), "classical momentum or the book's look-back, not both"
        self.P = [np.array(p, dtype=dtype) for wb in params for p in wb]  # W0, b0, W1, b1, ...
        self.hidden, self.loss, self.mean = hidden, loss, reduction == "mean"
        self.lr, self.momentum, self.alpha, self.l2 = lr, momentum, alpha, l2
        self.buf = [None] * len(self.P)
        self.rng = np.random.default_rng(seed)

    def epoch(self, X, Y, bounds):
        """One pass over X: (n, features), one-hot Y: (n, outputs) in a new permutation; bounds: (start, stop)."""
        P, L = self.P, len(self.P) // 2
        order = self.rng.permutation(X.shape[0])
        for s, e in bounds:
            idx = order[s:e]
            acts = [X.take(idx, axis=0)]
            for i in range(L):
                z = acts[-1] @ P[2 * i].T + P[2 * i + 1]
                acts.append(z if i == L - 1 else sigmoid(z) if self.hidden == "sigmoid" else np.maximum(z, 0))
            z = acts.pop()
            if self.loss == "softmax":
                p = np.exp(z - z.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
            else:
                p = sigmoid(z)
            dy = p - Y.take(idx, axis=0)
            if self.mean:
                dy /= e - s
            grads = [None] * len(P)
            for i in reversed(range(L)):
                a = acts[i]
                grads[2 * i], grads[2 * i + 1] = dy.T @ a, dy.sum(axis=0)
                if i:
                    dy = dy @ P[2 * i]
                    dy *= a * (1 - a) if self.hidden == "sigmoid" else (a > 0)
            for j, g in enumerate(grads):
                if self.l2 and j % 2 == 0:
                    g += self.l2 * P[j]
                if self.momentum:
                    g = self.buf[j] = g if self.buf[j] is None else self.momentum * self.buf[j] + g
                step = self.lr * g
                if self.alpha:
                    prev, self.buf[j] = self.buf[j], step
                    if prev is not None:
                        step = step + self.alpha * prev
                P[j] -= step
