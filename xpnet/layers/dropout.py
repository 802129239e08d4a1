"""Inverted dropout."""
from __future__ import annotations

from ..errors import InputError
from ..namespace import namespace
from ..checks import FRACTION, check
from ..registry import register
from .base import Layer


@register("Dropout.v1", aliases=("dropout",))
class Dropout(Layer):
    """Zero each input with probability p while training, scale the rest by 1/(1-p).

    The layer draws nothing itself: while training it asks for uniforms of its input's shape
    (`noise_shape`), which the caller draws from the model's seeded host RNG (same seed, same masks on
    every backend, eager or compiled) or, with `host_rng=False`, from the backend's own generator
    (faster on a GPU, no cross-backend parity)."""

    elementwise = True

    def __init__(self, p: float = 0.5, host_rng: bool = True):
        check("p", p, FRACTION, hint="the probability of dropping a unit", owner="Dropout")
        self.p, self.host_rng = float(p), host_rng

    @classmethod
    def examples(cls):
        return [({"p": 0.3}, (4,)), ({"p": 0.5}, (2, 3)), ({"p": 0.0}, (3,))]

    def noise_shape(self, batch: int):
        if self.p == 0.0:
            return None
        self._require_built()
        return (batch, *self.input_shape)

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        if not training or self.p == 0.0:
            return x, lambda dy: (dy, {})
        if noise is None:
            raise InputError("Dropout needs its U[0, 1) draws while training (noise=); the model draws them: "
                             "call model.train_step or model.value_and_grads(..., noise=model.draw_noise(batch))")
        xp = namespace(x)
        keep = 1.0 - self.p
        mask = xp.astype(noise < keep, x.dtype) / keep
        return x * mask, lambda dy: (dy * mask, {})

    def __repr__(self) -> str:
        return f"Dropout({self.p})"
