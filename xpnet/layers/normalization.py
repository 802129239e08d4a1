"""BatchNorm over features of (N, C) input and over channels of (N, C, H, W) input, with PyTorch's conventions:
momentum 0.1, eps 1e-5, a biased batch variance to normalize and the unbiased one in the running variance.

The running statistics are layer *state* (non-trained arrays): `state_shapes()` / `init_state(asarray)` say
what they are, the model keeps them in `model.state.layer_state` ("layers.<i>.running_mean", ...; saved in
checkpoints), passes them to `forward_with_state(..., state=)`, which gives their next values after a training forward from the
batch statistics it normalizes with (`updated_state(state, x)` computes them alone); nothing is stored on the layer. Training normalizes with the
batch's statistics, inference (training=False) with the running ones.
"""
from __future__ import annotations

from array_api_compat import device

from .. import init as initializers
from ..errors import InputError
from ..groups import BIAS, NORM
from ..namespace import namespace
from ..precision import narrow_to, widen
from ..checks import FRACTION, Interval, check
from ..registry import register
from .base import Layer


@register("BatchNorm.v1", aliases=("batch_norm", "batchnorm"))
class BatchNorm(Layer):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per feature (N, C) or per channel (N, C, H, W).

    num_features: C (None: taken from the input). Parameters weight (C,) = 1 and bias (C,) = 0; state
    running_mean (C,) = 0 and running_var (C,) = 1, updated while training as
    running = (1 - momentum) * running + momentum * batch statistic."""

    def __init__(self, num_features: int | None = None, momentum: float = 0.1, eps: float = 1e-5):
        if num_features is not None:
            check("num_features", num_features, Interval(int, 1, None), owner="BatchNorm")
        check("momentum", momentum, FRACTION, owner="BatchNorm")
        check("eps", eps, Interval(float, 0.0, None, closed="neither"), owner="BatchNorm")
        self.num_features, self.momentum, self.eps = num_features, float(momentum), float(eps)

    @classmethod
    def examples(cls):
        return [({"num_features": 4}, (4,)), ({}, (3, 2, 5)), ({"momentum": 0.3, "eps": 1e-3}, (2, 1, 3))]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 3):
            raise InputError(f"BatchNorm takes (batch, features) or (batch, channels, height, width) input but gets "
                             f"(batch, {', '.join(map(str, input_shape))})")
        if self.num_features is not None and input_shape[0] != self.num_features:
            raise InputError(f"BatchNorm expects {self.num_features} features/channels but the previous layer gives "
                             f"{input_shape[0]}; make them agree")
        self.num_features = input_shape[0]
        self.input_shape = self.output_shape = input_shape
        return self.output_shape

    def param_shapes(self):
        return {"weight": (self.num_features,), "bias": (self.num_features,)}

    def param_kinds(self):
        return {"weight": NORM, "bias": BIAS}

    def init_params(self, rng, asarray):
        self._require_built()
        return {"weight": asarray(initializers.ones(self.num_features)),
                "bias": asarray(initializers.zeros(self.num_features))}

    def state_shapes(self):
        return {"running_mean": (self.num_features,), "running_var": (self.num_features,)}

    def init_state(self, asarray):
        self._require_built()
        return {"running_mean": asarray(initializers.zeros(self.num_features)),
                "running_var": asarray(initializers.ones(self.num_features))}

    def _axes(self, x):
        return (0,) if x.ndim == 2 else (0, 2, 3)

    def _column(self, xp, v, x):
        """A (C,) vector shaped to broadcast against x."""
        return v if x.ndim == 2 else xp.reshape(v, (1, v.shape[0], 1, 1))

    def _count(self, x) -> int:
        count = x.shape[0] if x.ndim == 2 else x.shape[0] * x.shape[2] * x.shape[3]
        if count < 2:
            raise InputError(f"BatchNorm needs more than one value per channel to train (got input of shape "
                             f"{tuple(x.shape)}); use a minibatch of at least 2 samples")
        return count

    def _batch_stats(self, xp, x):
        axes = self._axes(x)
        mean = xp.mean(x, axis=axes)
        centered = x - self._column(xp, mean, x)
        var = xp.mean(centered * centered, axis=axes)
        return mean, centered, var

    def _running(self, xp, state, x, mean, var, count: int) -> dict:
        """The running statistics after a training step whose batch (x, widened) has these statistics."""
        if state is None:
            state = self.init_state(lambda a: xp.asarray(a, dtype=x.dtype, device=device(x)))
        m = self.momentum
        return {"running_mean": (1.0 - m) * state["running_mean"] + m * mean,
                "running_var": (1.0 - m) * state["running_var"] + m * (var * (count / (count - 1)))}

    def updated_state(self, state: dict | None, x) -> dict:
        """The running statistics after one training forward on x (a pure function of state and x)."""
        xp = namespace(x)
        x = widen(xp, x)  # a float32 island (xpnet.precision): the statistics of 16-bit activations in float32
        count = self._count(x)
        mean, _, var = self._batch_stats(xp, x)
        return self._running(xp, state, x, mean, var, count)

    def forward_with_state(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        """forward, and the next running statistics from the batch statistics it computes (once)."""
        if not training:
            return (*self.forward(params, x, False, need_dx, noise, state=state), state)
        return self._train(params, x, need_dx, state)

    def _inputs(self, params, x):
        """(xp, x's dtype, x widened, a (C,) vector shaped against x, gamma, beta, the reduced axes): a float32
        island (xpnet.precision): 16-bit x is normalized in float32 and y given back in x's dtype."""
        xp = namespace(x)
        dtype, x = x.dtype, widen(xp, x)
        return (xp, dtype, x, lambda v: self._column(xp, v, x), widen(xp, params["weight"]),
                widen(xp, params["bias"]), self._axes(x))

    def forward(self, params, x, training=False, need_dx=True, noise=None, state=None):
        if training:
            return self._train(params, x, need_dx, None, next_state=False)[:2]
        xp, dtype, x, col, gamma, beta, axes = self._inputs(params, x)
        if state is None:
            inv = (1.0 + self.eps) ** -0.5  # the initial state: mean 0, variance 1
            xhat = x * inv
        else:
            inv = 1.0 / xp.sqrt(col(state["running_var"]) + self.eps)
            xhat = (x - col(state["running_mean"])) * inv

        def backward(dy):
            dy = widen(xp, dy)
            grads = {"weight": xp.sum(dy * xhat, axis=axes), "bias": xp.sum(dy, axis=axes)}
            return (narrow_to(xp, dy * (col(gamma) * inv), dtype) if need_dx else None), grads

        return narrow_to(xp, xhat * col(gamma) + col(beta), dtype), backward

    def _train(self, params, x, need_dx, state, next_state=True):
        """A training forward: (y, backward, the running statistics after it, from the batch statistics it
        normalizes with; None where next_state is False). Per channel, with M values each:

            y  = xhat · gamma + beta,  xhat = (x - mean) / sqrt(var + eps)
            dx = gamma / sqrt(var + eps) · (dy - sum(dy) / M - xhat · sum(dy · xhat) / M)

        where sum(dy) and sum(dy · xhat) are the bias and weight gradients, so the backward makes four passes
        over the activations after its two reductions."""
        xp, dtype, x, col, gamma, beta, axes = self._inputs(params, x)
        count = self._count(x)
        mean, centered, var = self._batch_stats(xp, x)
        inv = 1.0 / xp.sqrt(var + self.eps)
        xhat = centered * col(inv)
        del centered

        def backward(dy):
            dy = widen(xp, dy)
            dgamma, dbeta = xp.sum(dy * xhat, axis=axes), xp.sum(dy, axis=axes)
            grads = {"weight": dgamma, "bias": dbeta}
            if not need_dx:
                return None, grads
            scale = gamma * inv
            dx = dy * col(scale) - (xhat * col(scale * dgamma / count) + col(scale * dbeta / count))
            return narrow_to(xp, dx, dtype), grads

        y = narrow_to(xp, xhat * col(gamma) + col(beta), dtype)
        return y, backward, (self._running(xp, state, x, mean, var, count) if next_state else None)

    def __repr__(self) -> str:
        return f"BatchNorm({self.num_features}, momentum={self.momentum}, eps={self.eps})"


@register("LayerNorm.v1", aliases=("layer_norm", "layernorm"))
class LayerNorm(Layer):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis of (batch, ..., dim) input, each
    sample and position on its own (torch.nn.functional.layer_norm over the last axis; biased variance).

    dim: the last axis (None: taken from the input). Parameters weight (dim,) = 1 (kind "norm") and bias
    (dim,) = 0 (bias=False: none, nanoGPT's bias=False). The statistics and the normalized values are
    computed in float32 or wider: a float16/bfloat16 input is normalized in float32 and the output cast back to the
    input's dtype (xpnet.precision's widen / narrow_to, as BatchNorm and attention). No state: training and inference
    compute the same."""

    def __init__(self, dim: int | None = None, eps: float = 1e-5, bias: bool = True):
        if dim is not None:
            check("dim", dim, Interval(int, 1, None), owner="LayerNorm")
        check("eps", eps, Interval(float, 0.0, None, closed="neither"), owner="LayerNorm")
        if not isinstance(bias, bool):
            raise InputError(f"LayerNorm's bias is True or False, not {bias!r}")
        self.dim, self.eps, self.use_bias = dim, float(eps), bias

    @classmethod
    def examples(cls):
        return [({"dim": 4}, (4,)), ({}, (3, 5)), ({"dim": 3, "eps": 1e-3}, (2, 1, 3)), ({"bias": False}, (2, 3))]

    def get_config(self) -> dict:
        return {"dim": self.dim, "eps": self.eps, "bias": self.use_bias}

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise InputError("LayerNorm takes (batch, ..., dim) input but gets (batch,) with no feature axis; "
                             "reshape the input to (batch, 1)")
        if self.dim is not None and input_shape[-1] != self.dim:
            raise InputError(f"LayerNorm expects dim {self.dim} (the last axis) but the previous layer gives "
                             f"{input_shape[-1]}; make them agree")
        self.dim = input_shape[-1]
        self.input_shape = self.output_shape = input_shape
        return self.output_shape

    def param_shapes(self):
        return {"weight": (self.dim,), "bias": (self.dim,)} if self.use_bias else {"weight": (self.dim,)}

    def param_kinds(self):
        return {"weight": NORM, "bias": BIAS} if self.use_bias else {"weight": NORM}

    def init_params(self, rng, asarray):
        self._require_built()
        params = {"weight": asarray(initializers.ones(self.dim))}
        if self.use_bias:
            params["bias"] = asarray(initializers.zeros(self.dim))
        return params

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        # a float32 island (xpnet.precision): 16-bit x normalized in float32, y, dx and the grads given back in x's
        # dtype (no-ops for float32 and float64)
        wide = lambda a: widen(xp, a)  # noqa: E731
        back_to = lambda a: narrow_to(xp, a, x.dtype)  # noqa: E731
        gamma = wide(params["weight"])
        beta = wide(params["bias"]) if self.use_bias else None
        xw = wide(x)
        centered = xw - xp.mean(xw, axis=-1, keepdims=True)
        inv = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=-1, keepdims=True) + self.eps)
        xhat = centered * inv
        dim = self.dim

        def backward(dy):
            dyw = wide(dy)
            rows = lambda a: xp.reshape(a, (-1, dim))  # noqa: E731  (sums over every leading axis)
            grads = {"weight": back_to(xp.sum(rows(dyw * xhat), axis=0))}
            if beta is not None:
                grads["bias"] = back_to(xp.sum(rows(dyw), axis=0))
            if not need_dx:
                return None, grads
            g = dyw * gamma
            dx = (g - xp.mean(g, axis=-1, keepdims=True) - xhat * xp.mean(g * xhat, axis=-1, keepdims=True)) * inv
            return back_to(dx), grads

        y = xhat * gamma
        return back_to(y if beta is None else y + beta), backward

    def __repr__(self) -> str:
        return f"LayerNorm({self.dim}, eps={self.eps}" + (")" if self.use_bias else ", bias=False)")
