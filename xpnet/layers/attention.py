"""MultiHeadAttention: self-attention over (batch, time, dim), heads by reshape and permute, the scaled dot
product in `attention_ops.attention` (the backend's native attention kernel where it has one).

    qkv = x @ in_proj_weight.T + in_proj_bias            (B, T, 3·dim), split into q, k, v and into heads:
    q, k, v: (B, T, 3, heads, head_dim) -> permuted to (3, B, heads, T, head_dim)
    o = softmax(q kᵀ / sqrt(head_dim) + mask) v          the causal mask before the softmax
    y = merge_heads(o) @ out_proj_weight.T + out_proj_bias

The parameters are torch.nn.MultiheadAttention's, by name and layout: in_proj_weight (3·dim, dim) with q's rows
first, then k's and v's; in_proj_bias (3·dim,); out_proj_weight (dim, dim); out_proj_bias (dim,).
"""
from __future__ import annotations

import math

from array_api_compat import device

from .. import init as initializers
from ..checks import FRACTION, POSITIVE_INT, check
from ..errors import InputError
from ..groups import BIAS, WEIGHT
from ..namespace import namespace
from ..registry import register
from .attention_ops import attention
from .base import Layer, weight_and_bias


@register("MultiHeadAttention.v1", aliases=("multi_head_attention",))
class MultiHeadAttention(Layer):
    """Multi-head self-attention on (batch, time, dim) -> (batch, time, dim).

    dim: the model width, a multiple of heads (head_dim = dim // heads). causal: position i attends to positions
    0..i only (GPT's mask), so a later token never changes an earlier position's output. dropout: the
    probability of zeroing an attention weight while training (after the softmax, the rest scaled by
    1/(1 - dropout)), drawn from the model's seeded host RNG as Dropout's (`noise_shape`: (batch, heads, time,
    time)); with dropout in training the array-API attention runs, else the backend's kernel where it has one.
    bias: the projections' biases. init: the initializer of both projections' weights (xpnet.init: e.g.
    "normal:0.02"); out_init: the output projection's, when it differs (GPT-2's residual projections,
    N(0, (0.02/sqrt(2·layers))^2)). Sequences may be shorter than the time the layer was built for.

    `forward_cached(params, x, cache)`: the incremental forward of generation (a key/value cache; see there)."""

    penalized = ("in_proj_weight", "out_proj_weight")
    kernel_names = ("attention",)
    host_rng = True

    def __init__(self, dim: int, heads: int, causal: bool = True, dropout: float = 0.0, bias: bool = True,
                 init: str = "glorot_uniform", out_init: str | None = None):
        check("dim", dim, POSITIVE_INT, hint="the model width", owner="MultiHeadAttention")
        check("heads", heads, POSITIVE_INT, hint="the number of attention heads", owner="MultiHeadAttention")
        if dim % heads:
            raise InputError(f"MultiHeadAttention's dim must be a multiple of heads (each head gets dim // heads) but "
                             f"got dim={dim}, heads={heads}; choose heads among the divisors of {dim}")
        check("dropout", dropout, FRACTION, hint="the probability of dropping an attention weight",
              owner="MultiHeadAttention")
        if not isinstance(causal, bool) or not isinstance(bias, bool):
            raise InputError(f"MultiHeadAttention's causal and bias are True or False, not {causal!r} and {bias!r}")
        initializers.get(init)
        if out_init is not None:
            initializers.get(out_init)
        self.dim, self.heads, self.causal, self.dropout = dim, heads, causal, float(dropout)
        self.use_bias, self.init, self.out_init = bias, init, out_init

    @classmethod
    def examples(cls):
        return [({"dim": 4, "heads": 2}, (3, 4)), ({"dim": 3, "heads": 1, "causal": False, "bias": False}, (2, 3)),
                ({"dim": 4, "heads": 2, "dropout": 0.25}, (3, 4))]

    def get_config(self) -> dict:
        config = {"dim": self.dim, "heads": self.heads, "causal": self.causal, "dropout": self.dropout,
                  "bias": self.use_bias, "init": self.init}
        if self.out_init is not None:
            config["out_init"] = self.out_init
        return config

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[1] != self.dim:
            shown = ", ".join(map(str, input_shape))
            raise InputError(f"MultiHeadAttention(dim={self.dim}) takes (batch, time, {self.dim}) input but gets "
                             f"(batch, {shown}); put an Embedding or a Dense(..., {self.dim}) before it")
        self.input_shape = self.output_shape = input_shape
        return self.output_shape

    def param_shapes(self):
        d = self.dim
        shapes = {"in_proj_weight": (3 * d, d), "out_proj_weight": (d, d)}
        if self.use_bias:
            shapes.update(in_proj_bias=(3 * d,), out_proj_bias=(d,))
        return shapes

    def param_kinds(self):
        return {name: (WEIGHT if name.endswith("weight") else BIAS) for name in self.param_shapes()}

    def init_params(self, rng, asarray):
        self._require_built()
        d, params = self.dim, {}
        for name, rows in (("in_proj", 3 * d), ("out_proj", d)):
            init = self.out_init if name == "out_proj" and self.out_init is not None else self.init
            drawn = weight_and_bias(init, rng, (rows, d), self.use_bias, asarray)
            params.update({f"{name}_{k}": v for k, v in drawn.items()})
        return params

    def noise_shape(self, batch: int):
        if self.dropout == 0.0:
            return None
        self._require_built()
        time = self.input_shape[0]
        return (batch, self.heads, time, time)

    def forward(self, params, x, training=False, need_dx=True, noise=None, kernels=None):
        xp = namespace(x)
        if x.ndim != 3 or x.shape[2] != self.dim:
            raise InputError(f"MultiHeadAttention(dim={self.dim}) takes (batch, time, {self.dim}) input but got shape "
                             f"{tuple(x.shape)}")
        b, t, d = x.shape
        h = self.heads
        hd = d // h
        mask = None
        if training and self.dropout > 0.0:
            if noise is None:
                raise InputError("MultiHeadAttention(dropout>0) needs its U[0, 1) draws while training (noise=); the "
                                 "model draws them: call model.train_step or model.value_and_grads(..., "
                                 "noise=model.draw_noise(batch))")
            keep = 1.0 - self.dropout
            mask = xp.astype(noise[:, :, :t, :t] < keep, x.dtype) / keep
        w_in, w_out = params["in_proj_weight"], params["out_proj_weight"]
        x2 = xp.reshape(x, (b * t, d))
        qkv = x2 @ w_in.T
        if self.use_bias:
            qkv = qkv + params["in_proj_bias"]
        qkv = xp.permute_dims(xp.reshape(qkv, (b, t, 3, h, hd)), (2, 0, 3, 1, 4))  # (3, B, H, T, hd)
        o, back_attention = attention(qkv[0, ...], qkv[1, ...], qkv[2, ...], causal=self.causal, kernels=kernels,
                                      weights_mask=mask)
        o2 = xp.reshape(xp.permute_dims(o, (0, 2, 1, 3)), (b * t, d))  # heads merged: (B·T, dim)
        y = o2 @ w_out.T
        if self.use_bias:
            y = y + params["out_proj_bias"]

        def backward(dy):
            dy2 = xp.reshape(dy, (b * t, d))
            grads = {"out_proj_weight": dy2.T @ o2}
            if self.use_bias:
                grads["out_proj_bias"] = xp.sum(dy2, axis=0)
            do = xp.permute_dims(xp.reshape(dy2 @ w_out, (b, t, h, hd)), (0, 2, 1, 3))
            dq, dk, dv = back_attention(do)
            dqkv = xp.reshape(xp.permute_dims(xp.stack([dq, dk, dv], axis=0), (1, 3, 0, 2, 4)), (b * t, 3 * d))
            grads["in_proj_weight"] = dqkv.T @ x2
            if self.use_bias:
                grads["in_proj_bias"] = xp.sum(dqkv, axis=0)
            return (xp.reshape(dqkv @ w_in, (b, t, d)) if need_dx else None), grads

        return xp.reshape(y, (b, t, d)), backward

    def forward_cached(self, params, x, cache=None):
        """The forward of new positions given the keys and values of the earlier ones (generation's key/value
        cache): x (batch, t, dim) the new positions' inputs, cache None (none before) or {"k", "v"}:
        (batch, heads, past, head_dim) each. Returns (y (batch, t, dim), the cache with the new positions'
        keys and values appended). The new queries attend to every cached key and, causally, to the new ones
        up to their own: the same outputs as forward on the whole sequence at those positions (no dropout:
        inference only, no backward)."""
        xp = namespace(x)
        b, t, d = x.shape
        h = self.heads
        hd = d // h
        qkv = xp.reshape(x, (b * t, d)) @ params["in_proj_weight"].T
        if self.use_bias:
            qkv = qkv + params["in_proj_bias"]
        qkv = xp.permute_dims(xp.reshape(qkv, (b, t, 3, h, hd)), (2, 0, 3, 1, 4))
        q, k, v = qkv[0, ...], qkv[1, ...], qkv[2, ...]
        if cache is not None:
            k, v = xp.concat([cache["k"], k], axis=2), xp.concat([cache["v"], v], axis=2)
        past = k.shape[2] - t
        s = xp.matmul(q, xp.permute_dims(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(hd))  # (B, H, t, past + t)
        if self.causal:
            rows = xp.reshape(xp.arange(t, device=device(x)), (t, 1)) + past
            keep = xp.reshape(xp.arange(past + t, device=device(x)), (1, past + t)) <= rows
            s = xp.where(keep, s, xp.full_like(s, -math.inf))
        e = xp.exp(s - xp.max(s, axis=-1, keepdims=True))
        o = xp.matmul(e / xp.sum(e, axis=-1, keepdims=True), v)  # (B, H, t, hd)
        y = xp.reshape(xp.permute_dims(o, (0, 2, 1, 3)), (b * t, d)) @ params["out_proj_weight"].T
        if self.use_bias:
            y = y + params["out_proj_bias"]
        return xp.reshape(y, (b, t, d)), {"k": k, "v": v}

    def __repr__(self) -> str:
        return (f"MultiHeadAttention({self.dim}, heads={self.heads}, causal={self.causal}, dropout={self.dropout}, "
                f"bias={self.use_bias})")
