"""Losses: `loss(z, y)` returns `(value, dz)` for logits z: (batch, outputs) and targets y of the same shape.

The output activation is fused into its loss, computed from the net input z, so nothing
overflows or takes log(0): logistic = sigmoid + binary cross-entropy, softmax_cross_entropy =
softmax + categorical cross-entropy. Both have dz = activation(z) - y (the book's sigma3 = a3 - y).
`reduction` is 'mean' (per sample) or 'sum' (over the minibatch, as the book does).
"""
from __future__ import annotations

from .layers import sigmoid, softmax
from .validation import InputError


class Loss:
    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise InputError(f"loss reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def config(self) -> dict:
        return {"type": type(self).__name__, "reduction": self.reduction}

    def build(self, xp) -> "Loss":
        """Bind the array namespace the model runs on."""
        self.xp = xp
        return self

    def _scale(self, z) -> float:
        return 1.0 / z.shape[0] if self.reduction == "mean" else 1.0

    def activation(self, xp, z):
        """Network outputs (probabilities) from logits z."""
        return z

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class LogisticCost(Loss):
    """The book's cost: sum over outputs of -y log a - (1-y) log(1-a), a = sigmoid(z).

    Computed stably as softplus(z) - y z with softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    """

    def __call__(self, z, y):
        xp = self.xp
        c = self._scale(z)
        softplus = 0.5 * (z + xp.abs(z)) + xp.log1p(xp.exp(-xp.abs(z)))
        return c * xp.sum(softplus - y * z), c * (sigmoid(xp, z) - y)

    def activation(self, xp, z):
        return sigmoid(xp, z)


class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy of softmax(z), from log-softmax (z minus its row max, minus log-sum-exp)."""

    def __call__(self, z, y):
        xp = self.xp
        shifted = z - xp.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = xp.sum(e, axis=1, keepdims=True)
        c = self._scale(z)
        return -c * xp.sum(y * (shifted - xp.log(s))), c * (e / s - y)

    def activation(self, xp, z):
        return softmax(xp, z)


class MSE(Loss):
    """Mean squared error over every output (reduction 'mean'), or its sum; identity output."""

    def __call__(self, z, y):
        xp = self.xp
        d = z - y
        c = 1.0 / (d.shape[0] * d.shape[1]) if self.reduction == "mean" else 1.0
        return c * xp.sum(d * d), (2.0 * c) * d


LOSS_TYPES = {cls.__name__: cls for cls in (LogisticCost, SoftmaxCrossEntropy, MSE)}

LOSSES = {
    "logistic": LogisticCost,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "mse": MSE,
}
