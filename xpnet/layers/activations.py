"""Elementwise activations and softmax: no parameters, output shape = input shape."""
from __future__ import annotations

import math

from array_api_compat import device

from ..checks import Interval, check
from ..namespace import namespace
from ..registry import aliases, get, register
from .base import Layer


def sigmoid(xp, z):
    """Overflow-safe logistic function as 0.5 * tanh(z / 2) + 0.5: tanh never overflows, and this takes
    3 array passes where exp(-|z|) with a where() takes 7 (docs/results.md has the timing). Its absolute
    error is below 2.3e-16; tails below ~1e-16 round to 0 or 1 (the losses never take its log)."""
    return 0.5 * xp.tanh(0.5 * z) + 0.5


def softmax(xp, z):
    """Row-wise softmax over the last axis, shifted by the row max so exp never overflows."""
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


class Activation(Layer):
    elementwise = True

    @classmethod
    def examples(cls):
        return [({}, (5,)), ({}, (2, 3))] if cls is not Softmax else [({}, (5,))]

    def __init__(self):
        pass


@register("Sigmoid.v1", aliases=("sigmoid",))
class Sigmoid(Activation):
    def forward(self, params, x, training=False, need_dx=True, noise=None):
        s = sigmoid(namespace(x), x)
        return s, lambda dy: (dy * (s * (1.0 - s)), {})


@register("Tanh.v1", aliases=("tanh",))
class Tanh(Activation):
    def forward(self, params, x, training=False, need_dx=True, noise=None):
        t = namespace(x).tanh(x)
        return t, lambda dy: (dy * (1.0 - t * t), {})


@register("ReLU.v1", aliases=("relu",))
class ReLU(Activation):
    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        # a 0-d zero, not the Python float 0.0: array-api-compat's torch maximum() promotes a Python scalar
        # through torch.result_type, which torch.compile cannot trace (a graph break in every ReLU)
        y = xp.maximum(x, xp.zeros((), dtype=x.dtype, device=device(x)))
        # dy times a float mask, not where(y > 0, dy, 0): NumPy's and PyTorch's CPU where() branch per element
        # and are 5-18x slower on ReLU's random mask (docs/results.md). An inf or NaN dy at y <= 0 gives NaN here.
        return y, lambda dy: (dy * xp.astype(y > 0, dy.dtype), {})


@register("LeakyReLU.v1", aliases=("leaky_relu",))
class LeakyReLU(Activation):
    def __init__(self, negative_slope: float = 0.01):
        check("negative_slope", negative_slope, Interval(float), owner="LeakyReLU")
        self.negative_slope = float(negative_slope)

    @classmethod
    def examples(cls):
        return [({}, (5,)), ({"negative_slope": 0.2}, (2, 3))]

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        positive = xp.astype(x > 0, x.dtype)
        slope = positive + (1.0 - positive) * self.negative_slope  # exactly 1 or negative_slope, without where()
        return x * slope, lambda dy: (dy * slope, {})

    def __repr__(self) -> str:
        return f"LeakyReLU({self.negative_slope})"


@register("Softmax.v1", aliases=("softmax",))
class Softmax(Activation):
    """A softmax layer for inside a network; for classification use the fused softmax_cross_entropy loss."""

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        s = softmax(xp, x)
        return s, lambda dy: (s * (dy - xp.sum(dy * s, axis=-1, keepdims=True)), {})


@register("GELU.v1", aliases=("gelu",))
class GELU(Activation):
    """GELU in the tanh form GPT-2 uses: 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))), which is
    torch.nn.functional.gelu(x, approximate="tanh") and jax.nn.gelu(x, approximate=True).

    Not the exact x·Φ(x) = 0.5·x·(1 + erf(x/√2)): the Array API standard has no erf, so the exact form cannot be
    written once for every backend; the two differ by at most 4.8e-4 (at |x| near 2.7)."""

    _C = math.sqrt(2.0 / math.pi)

    _CA = _C * 0.044715

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        # h = (1 + tanh(u)) / 2 = 1 / (1 + exp(-2u)) with u = C·x·(1 + 0.044715·x²); y = x·h (exp: torch's CPU
        # tanh is several times slower than its exp; exp(-2u) = inf gives h = 0, the limit). The derivative,
        # written with h (1 - tanh² = 4·h·(1 - h)) and x², takes 7 elementwise operations where the textbook
        # form takes 12 (the GELU of a GPT's MLP is a sizeable part of its step on a CPU)
        xp = namespace(x)
        x2 = x * x
        h = 1.0 / (1.0 + xp.exp(x * (x2 * (-2.0 * self._CA) - 2.0 * self._C)))
        y = x * h

        def backward(dy):
            # dy/dx = h + x·(1 - tanh²)/2·du/dx = h + 2·x·h·(1 - h)·(C + 3·C·0.044715·x²)
            return dy * (h + (x * h) * (1.0 - h) * (x2 * (6.0 * self._CA) + 2.0 * self._C)), {}

        return y, backward


@register("Identity.v1", aliases=("identity",))
class Identity(Activation):
    def forward(self, params, x, training=False, need_dx=True, noise=None):
        return x, lambda dy: (dy, {})


#: the activations' short names ("sigmoid", "tanh", ...), read from the registry: the aliases of the classes above,
#: in registration order (xpnet.ACTIVATIONS and the command line's --activation choices)
ACTIVATION_NAMES = tuple(a for a in aliases("layer")
                         if isinstance(get("layer", a), type) and issubclass(get("layer", a), Activation))
