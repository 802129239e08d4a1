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
        y = xp.reshape(x, (shape[0], math.prod(shape[1:])))
        return y, lambda dy: (xp.reshape(dy, shape) if need_dx else None, {})
