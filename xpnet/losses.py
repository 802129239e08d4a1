"""Losses: `loss(z, y, denom=None)` returns `(value, dz)` for logits z: (batch, outputs) and targets y of
the same shape.

The output activation is fused into its loss, computed from the net input z, so nothing overflows or
takes log(0): logistic = sigmoid + binary cross-entropy, softmax_cross_entropy = softmax + categorical
cross-entropy. Both have dz = activation(z) - y (the book's sigma3 = a3 - y). `reduction` is 'mean'
(per sample) or 'sum' (over the minibatch, as the book does). `denom` is the number of samples a mean
divides by: the batch by default; the whole minibatch when it arrives in micro-batches (gradient
accumulation) or in shards (data-parallel training).
"""
from __future__ import annotations

from .checks import Options, check
from .layers.activations import sigmoid, softmax
from .namespace import namespace
from .registry import Configurable, register


class Loss(Configurable):
    kind = "loss"

    def __init__(self, reduction: str = "mean"):
        check("reduction", reduction, Options("mean", "sum"), owner=type(self).__name__)
        self.reduction = reduction

    def _scale(self, z, denom) -> float:
        if self.reduction == "sum":
            return 1.0
        return 1.0 / (z.shape[0] if denom is None else denom)

    def activation(self, xp, z):
        """Network outputs (probabilities) from logits z."""
        return z

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


@register("LogisticCost.v1", aliases=("logistic",))
class LogisticCost(Loss):
    """The book's cost: sum over outputs of -y log a - (1-y) log(1-a), a = sigmoid(z).

    Computed stably as softplus(z) - y z with softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    """

    def __call__(self, z, y, denom=None):
        xp = namespace(z)
        c = self._scale(z, denom)
        softplus = 0.5 * (z + xp.abs(z)) + xp.log1p(xp.exp(-xp.abs(z)))
        return c * xp.sum(softplus - y * z), c * (sigmoid(xp, z) - y)

    def activation(self, xp, z):
        return sigmoid(xp, z)


@register("SoftmaxCrossEntropy.v1", aliases=("softmax_cross_entropy",))
class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy of softmax(z), from log-softmax (z minus its row max, minus log-sum-exp)."""

    def __call__(self, z, y, denom=None):
        xp = namespace(z)
        shifted = z - xp.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = xp.sum(e, axis=1, keepdims=True)
        c = self._scale(z, denom)
        return -c * xp.sum(y * (shifted - xp.log(s))), c * (e / s - y)

    def activation(self, xp, z):
        return softmax(xp, z)


@register("MSE.v1", aliases=("mse",))
class MSE(Loss):
    """Mean squared error over every output (reduction 'mean'), or its sum; identity output."""

    def __call__(self, z, y, denom=None):
        xp = namespace(z)
        d = z - y
        c = 1.0 / ((d.shape[0] if denom is None else denom) * d.shape[1]) if self.reduction == "mean" else 1.0
        return c * xp.sum(d * d), (2.0 * c) * d
