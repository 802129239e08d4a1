"""Optimizers: `step(params, grads)` takes and returns dicts {name: array}; per-parameter buffers
live in `state[name]`; `lr` is a plain float that the schedule may change between epochs.

Updates are functional (`w - lr * step`) on immutable arrays (JAX). Where arrays are mutable (NumPy,
CuPy, torch, array-api-strict) the same arithmetic is written into the parameters and buffers in place
(`w -= lr * step`): bit-identical results, no new parameter-sized arrays per step (measured: the
784-512-512-10 momentum update 0.37 -> 0.25 ms per step on NumPy).
"""
from __future__ import annotations

from .validation import InputError


class Optimizer:
    def __init__(self, lr: float):
        if not (isinstance(lr, (int, float)) and lr > 0.0):
            raise InputError(f"learning rate must be a number > 0, got {lr!r}; try 0.01 for SGD or 0.001 for Adam")
        self.lr, self.t, self.state = float(lr), 0, {}

    keys: tuple = ("lr",)

    def config(self) -> dict:
        """{'type': class name, **constructor arguments} (lr as it is now)."""
        return {"type": type(self).__name__, **{k: getattr(self, k) for k in self.keys}}

    def build(self, xp, inplace: bool = False) -> "Optimizer":
        self.xp, self.inplace = xp, inplace
        return self

    def _sub(self, w, delta):
        """w - delta (into w when arrays are mutable)."""
        if self.inplace:
            w -= delta
            return w
        return w - delta

    def _decay_add(self, buf, factor: float, add):
        """factor * buf + add (into buf when arrays are mutable); the first call copies `add`."""
        if buf is None:
            return self.xp.asarray(add, copy=True) if self.inplace else add
        if self.inplace:
            buf *= factor
            buf += add
            return buf
        return factor * buf + add

    def reset(self) -> None:
        """Forget buffers and the step count (the learning rate is kept)."""
        self.t, self.state = 0, {}

    def step(self, params: dict, grads: dict) -> dict:
        self.t += 1
        return {name: self.update(name, w, grads[name]) for name, w in params.items()}

    def update(self, name: str, w, g):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    """SGD with optional classical or Nesterov momentum (PyTorch's form: buf = mu*buf + g)."""

    keys = ("lr", "momentum", "nesterov")

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise InputError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and not momentum:
            raise InputError("Nesterov momentum needs momentum > 0, e.g. momentum=0.9")
        self.momentum, self.nesterov = float(momentum), nesterov

    def update(self, name, w, g):
        if not self.momentum:
            return self._sub(w, self.lr * g)
        prev = self.state.get(name)
        buf = self._decay_add(None if prev is None else prev["momentum"], self.momentum, g)
        self.state[name] = {"momentum": buf}
        return self._sub(w, self.lr * (g + self.momentum * buf if self.nesterov else buf))


class BookSGD(Optimizer):
    """The book's rule: delta = lr * g; w -= delta + alpha * delta_prev (a one-step look-back, not a velocity)."""

    keys = ("lr", "alpha")

    def __init__(self, lr: float = 0.001, alpha: float = 0.0):
        super().__init__(lr)
        if alpha < 0.0:
            raise InputError(f"momentum alpha must be >= 0, got {alpha!r}")
        self.alpha = float(alpha)

    def update(self, name, w, g):
        delta = self.lr * g
        prev = self.state.get(name)
        self.state[name] = {"delta_prev": delta}
        return self._sub(w, delta if prev is None else delta + self.alpha * prev["delta_prev"])


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds weight_decay * w to the gradient (L2)."""

    decoupled = False
    keys = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise InputError(f"Adam betas must be in [0, 1), got beta1={beta1!r}, beta2={beta2!r}")
        if weight_decay < 0.0:
            raise InputError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)

    def update(self, name, w, g):
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * w
        s = self.state.get(name)
        m = self._decay_add(None if s is None else s["m"], self.beta1, (1.0 - self.beta1) * g)
        v = self._decay_add(None if s is None else s["v"], self.beta2, (1.0 - self.beta2) * (g * g))
        self.state[name] = {"m": m, "v": v}
        step_size = self.lr / (1.0 - self.beta1 ** self.t)
        denom = self.xp.sqrt(v / (1.0 - self.beta2 ** self.t)) + self.eps
        if self.weight_decay and self.decoupled:
            w = self._sub(w, (self.lr * self.weight_decay) * w)
        return self._sub(w, step_size * (m / denom))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * weight_decay * w, then the Adam step."""

    decoupled = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)


OPTIMIZER_TYPES = {cls.__name__: cls for cls in (SGD, BookSGD, Adam, AdamW)}

OPTIMIZERS = {
    "sgd": SGD,
    "momentum": lambda lr=0.01, momentum=0.9: SGD(lr, momentum=momentum),
    "nesterov": lambda lr=0.01, momentum=0.9: SGD(lr, momentum=momentum, nesterov=True),
    "book": BookSGD,
    "adam": Adam,
    "adamw": AdamW,
}
