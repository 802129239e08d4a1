"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""
from __future__ import annotations

import math

from ..namespace import namespace
from ..registry import register
from .base import Layer


@register("Flatten.v1", aliases=("flatten",))
class Flatten(Layer):
    def __init__(self):
        pass

    @classmethod
    def examples(cls):
        return [({}, (2, 3)), ({}, (1, 2, 3)), ({}, (4,))]

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = (math.prod(self.input_shape),)
        return self.output_shape

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        shape = tuple(x.shape)
        # -1, not shape[0]: a traced batch dimension (an ONNX graph's, via ndonnx) has no size (None)
        y = xp.reshape(x, (-1, math.prod(shape[1:])))
        return y, lambda dy: (xp.reshape(dy, shape) if need_dx else None, {})
