"""Losses: `loss(z, y, denom=None, weight=None)` returns `(value, dz)` for logits z: (..., outputs).

Targets, one rule for every loss (decided once, here):

- class indices: an integer array of z's shape without its last axis, (...,): y[i] is the output that is 1
  (a classifier's labels (batch,), a language model's next tokens (batch, time)). The one-hot rows are made
  per call from the minibatch's indices, never for a whole dataset;
- values of z's shape (..., outputs), floating: one-hot rows, probabilities (soft labels), or continuous
  values (a regressor's targets, for MSE).

Anything else (floating labels (batch,), integer rows) is refused in one line: the two cases never overlap.

The output activation is fused into its loss, computed from the net input z, so nothing overflows or
takes log(0): logistic = sigmoid + binary cross-entropy, softmax_cross_entropy = softmax + categorical
cross-entropy over the last axis. Both have dz = activation(z) - y (the book's sigma3 = a3 - y).
`reduction` is 'mean' (per position: per sample for (batch, outputs) logits, per token for (batch, time,
classes)) or 'sum' (over the minibatch, as the book does). `denom` is what a mean divides by: the number of
positions by default; the whole minibatch's when it arrives in micro-batches (gradient accumulation) or in
shards (data-parallel training).

weight: per-position weights (...,) (sample weights, class weights looked up by label): the loss of
position i counts weight[i] times, and a mean divides by the sum of the weights (denom, when given, is
the whole minibatch's sum), as torch.nn.functional.cross_entropy(weight=) does for class weights.
"""
from __future__ import annotations

import math

from array_api_compat import device

from .checks import Interval, Options, check
from .errors import InputError
from .layers.activations import sigmoid, softmax
from .namespace import namespace
from .registry import Configurable, register


def target_rows(xp, z, y, owner: str):
    """y as rows of z's shape in z's dtype: class indices (...,) made one-hot here, rows (..., outputs) as
    given. Shapes and dtypes only (nothing is read from the device: safe in a compiled step)."""
    zs, ys = tuple(z.shape), tuple(getattr(y, "shape", ()))
    if xp.isdtype(y.dtype, "integral"):
        if ys != zs[:-1]:
            raise InputError(f"{owner}: class-index targets must have the logits' shape without its last axis, "
                             f"{zs[:-1]}, got {ys}; give one integer class per sample (or per position)")
        classes = xp.arange(zs[-1], dtype=y.dtype, device=device(z))
        return xp.astype(xp.expand_dims(y, axis=-1) == classes, z.dtype)
    if ys != zs:
        raise InputError(f"{owner}: targets must be class indices of shape {zs[:-1]} (integers) or rows of the "
                         f"logits' shape {zs} (floating: one-hot, probabilities or values), got shape {ys} "
                         f"({y.dtype})")
    return y


def check_weight(xp, z, weight, owner: str):
    """weight (...,) in z's dtype, checked against the logits' shape."""
    if tuple(weight.shape) != tuple(z.shape[:-1]):
        raise InputError(f"{owner}: weight must have one value per sample (position), shape {tuple(z.shape[:-1])}, "
                         f"got {tuple(weight.shape)}")
    return weight if weight.dtype == z.dtype else xp.astype(weight, z.dtype)


def for_loss(loss, z, y):
    """y as `loss` takes it: as given to a loss that takes class indices (`takes_indices`: the built-in ones),
    else class indices made one-hot rows here (a subclass written for rows only, as every loss once was)."""
    if getattr(loss, "takes_indices", False) or not namespace(z).isdtype(y.dtype, "integral"):
        return y
    return target_rows(namespace(z), z, y, type(loss).__name__)


class Loss(Configurable):
    kind = "loss"
    # whether __call__ takes integer class indices itself (target_rows); a subclass that leaves it False gets
    # one-hot rows (for_loss), made per minibatch
    takes_indices = False

    def __init__(self, reduction: str = "mean"):
        check("reduction", reduction, Options("mean", "sum"), owner=type(self).__name__)
        self.reduction = reduction

    def _scale(self, xp, z, denom, weight):
        """What the summed loss is multiplied by: 1 ('sum'), else 1 / denom, denom by default the number of
        positions (unweighted) or the sum of the weights."""
        if self.reduction == "sum":
            return 1.0
        if denom is not None:
            return 1.0 / denom
        return 1.0 / (math.prod(z.shape[:-1]) if weight is None else xp.sum(weight))

    def activation(self, xp, z):
        """Network outputs (probabilities) from logits z."""
        return z

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _weighted(xp, c, weight, dz):
    """dz scaled by c, and per position by weight (...,) when given."""
    if weight is None:
        return c * dz
    return xp.expand_dims(c * weight, axis=-1) * dz


@register("LogisticCost.v1", aliases=("logistic",))
class LogisticCost(Loss):
    """The book's cost: sum over outputs of -y log a - (1-y) log(1-a), a = sigmoid(z).

    Computed stably as softplus(z) - y z with softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    """

    takes_indices = True

    def __call__(self, z, y, denom=None, weight=None):
        xp = namespace(z)
        y = target_rows(xp, z, y, "LogisticCost")
        if weight is not None:
            weight = check_weight(xp, z, weight, "LogisticCost")
        c = self._scale(xp, z, denom, weight)
        softplus = 0.5 * (z + xp.abs(z)) + xp.log1p(xp.exp(-xp.abs(z)))
        if weight is None:
            return c * xp.sum(softplus - y * z), c * (sigmoid(xp, z) - y)
        per = xp.sum(softplus - y * z, axis=-1)
        return c * xp.sum(weight * per), _weighted(xp, c, weight, sigmoid(xp, z) - y)

    def activation(self, xp, z):
        return sigmoid(xp, z)


@register("SoftmaxCrossEntropy.v1", aliases=("softmax_cross_entropy",))
class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy of softmax(z) over the last axis, from log-softmax (z minus its row max,
    minus log-sum-exp).

    label_smoothing=e: the targets become (1 - e) y + e / outputs, as torch.nn.functional.cross_entropy(
    label_smoothing=) does. With weights, the whole smoothed loss of a position counts weight[i] times (torch's
    weight= instead weights the uniform part class by class: see docs/losses-metrics.md)."""

    takes_indices = True

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        check("label_smoothing", label_smoothing, Interval(float, 0.0, 1.0), owner="SoftmaxCrossEntropy")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, z, y, denom=None, weight=None):
        xp = namespace(z)
        y = target_rows(xp, z, y, "SoftmaxCrossEntropy")
        if self.label_smoothing:
            e = self.label_smoothing
            y = (1.0 - e) * y + e / z.shape[-1]
        if weight is not None:
            weight = check_weight(xp, z, weight, "SoftmaxCrossEntropy")
        shifted = z - xp.max(z, axis=-1, keepdims=True)
        e = xp.exp(shifted)
        s = xp.sum(e, axis=-1, keepdims=True)
        c = self._scale(xp, z, denom, weight)
        if weight is None:
            return -c * xp.sum(y * (shifted - xp.log(s))), c * (e / s - y)
        per = -xp.sum(y * (shifted - xp.log(s)), axis=-1)
        return c * xp.sum(weight * per), _weighted(xp, c, weight, e / s - y)

    def activation(self, xp, z):
        return softmax(xp, z)

    def __repr__(self) -> str:
        smooth = f", label_smoothing={self.label_smoothing!r}" if self.label_smoothing else ""
        return f"{type(self).__name__}(reduction={self.reduction!r}{smooth})"


@register("MSE.v1", aliases=("mse",))
class MSE(Loss):
    """Mean squared error over every output (reduction 'mean'), or its sum; identity output. Targets are
    usually continuous values of the logits' shape (a regressor's); class indices make one-hot rows."""

    takes_indices = True

    def __call__(self, z, y, denom=None, weight=None):
        xp = namespace(z)
        y = target_rows(xp, z, y, "MSE")
        if weight is not None:
            weight = check_weight(xp, z, weight, "MSE")
        d = z - y
        if self.reduction == "sum":
            c = 1.0
        elif weight is None:
            c = 1.0 / ((math.prod(d.shape[:-1]) if denom is None else denom) * d.shape[-1])
        else:
            c = 1.0 / ((xp.sum(weight) if denom is None else denom) * d.shape[-1])
        if weight is None:
            return c * xp.sum(d * d), (2.0 * c) * d
        return c * xp.sum(weight * xp.sum(d * d, axis=-1)), _weighted(xp, 2.0 * c, weight, d)
