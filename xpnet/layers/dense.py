"""Dense: y = x @ W.T + b with W: (out_features, in_features), b: (out_features,) (the book's w[:, 1:] and w[:, 0]),
on the last axis of (batch, ..., in_features) input (torch.nn.functional.linear's rule)."""
from __future__ import annotations

from .. import init as initializers
from ..errors import InputError
from ..groups import BIAS, WEIGHT
from ..namespace import namespace
from ..checks import POSITIVE_INT, check
from ..registry import register
from .base import Layer, weight_and_bias


@register("Dense.v1", aliases=("dense",))
class Dense(Layer):
    """Fully connected layer on the last axis: (batch, in_features) -> (batch, out_features), and
    (batch, ..., in_features) -> (batch, ..., out_features) for sequences (batch, time, features).

    Dense(in_features, out_features) or Dense(out_features) (input size taken from the previous layer).
    N-D input runs as one GEMM on its (batch·..., in_features) reshape, so the weight's gradient is summed over
    every leading axis; 2-D input runs the 2-D code unchanged."""

    penalized = ("weight",)

    def __init__(self, in_features: int | None, out_features: int | None = None, init: str = "glorot_uniform",
                 bias: bool = True):
        if out_features is None:
            in_features, out_features = None, in_features
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if v is None and what == "in_features":
                continue
            check(what, v, POSITIVE_INT, owner="Dense")
        initializers.get(init)  # fails now, naming the valid initializers
        self.in_features, self.out_features, self.init, self.use_bias = in_features, out_features, init, bias
        self.declared_input_shape = None if in_features is None else (in_features,)

    @classmethod
    def examples(cls):
        return [({"in_features": 4, "out_features": 3}, (4,)), ({"in_features": 3}, (3,)),
                ({"in_features": 4, "out_features": 2, "init": "he_uniform", "bias": False}, (4,)),
                ({"in_features": 3, "out_features": 2}, (2, 3)), ({"in_features": 2, "bias": False}, (2, 1, 2))]

    def get_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init,
                "bias": self.use_bias}

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise InputError("Dense takes (batch, ..., features) input but gets (batch,) with no feature axis; "
                             "reshape the input to (batch, 1)")
        if self.in_features is not None and input_shape[-1] != self.in_features:
            raise InputError(f"Dense expects {self.in_features} input features but the previous layer gives "
                             f"{input_shape[-1]} (the last axis of (batch, {', '.join(map(str, input_shape))})); make "
                             f"the sizes agree, or put a Flatten() before it for image input")
        self.in_features = input_shape[-1]
        self.input_shape, self.output_shape = input_shape, (*input_shape[:-1], self.out_features)
        return self.output_shape

    def param_shapes(self):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.use_bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    def param_kinds(self):
        return {"weight": WEIGHT, "bias": BIAS} if self.use_bias else {"weight": WEIGHT}

    def init_params(self, rng, asarray):
        self._require_built()
        return weight_and_bias(self.init, rng, (self.out_features, self.in_features), self.use_bias, asarray)

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        if x.ndim != 2:
            return self._forward_nd(params, x, need_dx)
        w = params["weight"]
        y = x @ w.T
        if self.use_bias:
            y = y + params["bias"]

        def backward(dy):
            grads = {"weight": dy.T @ x}
            if self.use_bias:
                grads["bias"] = namespace(dy).sum(dy, axis=0)
            return (dy @ w if need_dx else None), grads

        return y, backward

    def _forward_nd(self, params, x, need_dx):
        """(..., in) input as the 2-D forward of its (prod(...), in) reshape; dy and dx reshaped back."""
        xp = namespace(x)
        lead = tuple(x.shape[:-1])
        y2, back2 = self.forward(params, xp.reshape(x, (-1, x.shape[-1])), need_dx=need_dx)

        def backward(dy):
            dx, grads = back2(xp.reshape(dy, (-1, self.out_features)))
            return (None if dx is None else xp.reshape(dx, (*lead, x.shape[-1]))), grads

        return xp.reshape(y2, (*lead, self.out_features)), backward

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, init={self.init!r})"
