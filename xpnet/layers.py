"""Layers: `forward(x)` returns `(y, backward)`; `backward(dy)` records parameter gradients and returns dx.

Shapes: x (batch, in_features), y (batch, out_features). A layer keeps only its parameters
(`params`), the gradients its last backward recorded (`grads`) and, for dropout, the host RNG;
everything a backward needs is held by its closure.
"""
from __future__ import annotations

from .init import INITIALIZERS
from .validation import InputError


class Layer:
    params: dict
    grads: dict

    def __init__(self, **config):
        self.params, self.grads, self._config = {}, {}, config

    def config(self) -> dict:
        """{'type': class name, **constructor arguments}: enough to rebuild the layer."""
        return {"type": type(self).__name__, **self._config}

    def build(self, bk, dtype, rng, in_features: int) -> int:
        """Create parameters on backend `bk`; return the number of output features."""
        self.bk, self.xp, self.dtype = bk, bk.xp, dtype
        return in_features

    def forward(self, x, training: bool = False, need_dx: bool = True):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """y = x @ W.T + b with W: (out_features, in_features), b: (out_features,), as the book's w[:, 1:] and w[:, 0]."""

    def __init__(self, in_features: int, out_features: int, init: str = "glorot_uniform", bias: bool = True):
        super().__init__(in_features=in_features, out_features=out_features, init=init, bias=bias)
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"Dense {what} must be a positive integer, got {v!r}")
        if init not in INITIALIZERS:
            raise InputError(f"unknown initializer {init!r}; choose one of: {', '.join(INITIALIZERS)}")
        self.in_features, self.out_features, self.init, self.use_bias = in_features, out_features, init, bias

    def build(self, bk, dtype, rng, in_features: int) -> int:
        super().build(bk, dtype, rng, in_features)
        if in_features != self.in_features:
            raise InputError(f"Dense expects {self.in_features} input features but the previous layer gives "
                             f"{in_features}; make the sizes agree")
        drawn = INITIALIZERS[self.init](rng, self.in_features, self.out_features)
        w, b = drawn if isinstance(drawn, tuple) else (drawn, None)
        self.params["weight"] = bk.asarray(w, dtype=dtype)
        if self.use_bias:
            self.params["bias"] = bk.asarray(b, dtype=dtype) if b is not None else self.xp.zeros(
                self.out_features, dtype=dtype, device=bk.native_device)
        return self.out_features

    def forward(self, x, training=False, need_dx=True):
        w = self.params["weight"]
        y = x @ w.T
        if self.use_bias:
            y = y + self.params["bias"]

        def backward(dy):
            self.grads["weight"] = dy.T @ x
            if self.use_bias:
                self.grads["bias"] = self.xp.sum(dy, axis=0)
            return dy @ w if need_dx else None

        return y, backward

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r})"


def sigmoid(xp, z):
    """Overflow-safe logistic function as 0.5 * tanh(z / 2) + 0.5: tanh never overflows, and this takes
    3 array passes where exp(-|z|) with a where() takes 7 (measured 2.2x faster on NumPy). Its absolute
    error is below 2.3e-16; tails below ~1e-16 round to 0 or 1 (the losses never take its log)."""
    return 0.5 * xp.tanh(0.5 * z) + 0.5


class Sigmoid(Layer):
    def forward(self, x, training=False, need_dx=True):
        s = sigmoid(self.xp, x)
        return s, lambda dy: dy * (s * (1.0 - s))


class Tanh(Layer):
    def forward(self, x, training=False, need_dx=True):
        t = self.xp.tanh(x)
        return t, lambda dy: dy * (1.0 - t * t)


class ReLU(Layer):
    def forward(self, x, training=False, need_dx=True):
        xp = self.xp
        y = xp.maximum(x, 0.0)  # one pass; the backward's where() is two (a float mask multiply was four)
        return y, lambda dy: xp.where(y > 0, dy, 0.0)


class LeakyReLU(Layer):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__(negative_slope=negative_slope)
        self.negative_slope = float(negative_slope)

    def forward(self, x, training=False, need_dx=True):
        xp = self.xp
        slope = xp.where(x > 0, xp.ones_like(x), xp.full_like(x, self.negative_slope))
        return x * slope, lambda dy: dy * slope

    def __repr__(self) -> str:
        return f"LeakyReLU({self.negative_slope})"


def softmax(xp, z):
    """Row-wise softmax, shifted by the row max so exp never overflows."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


class Softmax(Layer):
    """A softmax layer for inside a network; for classification use the fused softmax_cross_entropy loss."""

    def forward(self, x, training=False, need_dx=True):
        xp = self.xp
        s = softmax(xp, x)
        return s, lambda dy: s * (dy - xp.sum(dy * s, axis=1, keepdims=True))


class Identity(Layer):
    def forward(self, x, training=False, need_dx=True):
        return x, lambda dy: dy


class Dropout(Layer):
    """Inverted dropout: zero each input with probability p while training, scale the rest by 1/(1-p).

    Masks come from the model's seeded host RNG (same seed, same masks on every backend); with
    `host_rng=False` they come from the backend's own generator: faster on a GPU, no cross-backend parity.
    """

    def __init__(self, p: float = 0.5, host_rng: bool = True):
        super().__init__(p=p, host_rng=host_rng)
        if not 0.0 <= p < 1.0:
            raise InputError(f"Dropout probability must be in [0, 1), got {p!r}")
        self.p, self.host_rng = float(p), host_rng

    def build(self, bk, dtype, rng, in_features):
        self.rng = rng
        return super().build(bk, dtype, rng, in_features)

    def forward(self, x, training=False, need_dx=True):
        if not training or self.p == 0.0:
            return x, lambda dy: dy
        keep = 1.0 - self.p
        if self.host_rng:
            u = self.bk.asarray(self.rng.random(tuple(x.shape)), dtype=self.dtype)
        else:
            u = self.bk.random_uniform(tuple(x.shape), self.dtype)
        mask = self.xp.astype(u < keep, self.dtype) / keep
        return x * mask, lambda dy: dy * mask

    def __repr__(self) -> str:
        return f"Dropout({self.p})"


LAYERS = {cls.__name__: cls for cls in (Dense, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax, Identity, Dropout)}

ACTIVATIONS = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "softmax": Softmax,
    "identity": Identity,
}
