"""Optimizers: pure update rules. An optimizer holds only its hyperparameters; everything that changes
lives in the training state and is passed in:

    opt_state = optimizer.init(params)                       # every buffer, zeros, from the start
    hyper = optimizer.hyper(lr, t)                           # host float64 scalars for update t (1, 2, ...)
    params, opt_state = optimizer.apply(params, grads, opt_state, hyper, inplace=False)

`params` and `grads` are dicts {name: array}; `opt_state` is {name: {buffer: array}}. The learning rate,
the step count and Adam's bias corrections are computed on the host in float64 (`hyper`) and passed as
arguments, never as `beta1 ** t` on a device array, so a traced step is not frozen by them.

`inplace=True` (mutable arrays: NumPy, CuPy, torch, array-api-strict) writes the same arithmetic into the
parameters and buffers (`w -= lr * step`): bit-identical to the functional form, no new parameter-sized
arrays per step. JAX's immutable arrays use the functional form.
"""
from __future__ import annotations

from .errors import InputError
from .namespace import namespace
from .checks import FRACTION, NON_NEGATIVE, POSITIVE, check
from .registry import Configurable, alias, register


def _sub(w, delta, inplace: bool):
    """w - delta (into w when in place)."""
    if inplace:
        w -= delta
        return w
    return w - delta


def _decay_add(buf, factor: float, add, inplace: bool):
    """factor * buf + add (into buf when in place)."""
    if inplace:
        buf *= factor
        buf += add
        return buf
    return factor * buf + add


class Optimizer(Configurable):
    kind = "optimizer"
    #: names of the per-parameter buffers, created as zeros by init()
    buffers: tuple = ()

    def __init__(self, lr: float):
        check("lr", lr, POSITIVE, hint="try 0.01 for SGD or 0.001 for Adam")
        self.lr = float(lr)

    def init(self, params: dict) -> dict:
        """{name: {buffer: zeros like the parameter}} for every parameter."""
        return {name: {b: namespace(w).zeros_like(w) for b in self.buffers} for name, w in params.items()}

    def hyper(self, lr: float, t: int) -> dict:
        """The scalars of update number t (1-based) at learning rate lr, as host floats."""
        return {"lr": float(lr)}

    def apply(self, params: dict, grads: dict, state: dict, hyper: dict, inplace: bool = False):
        """One update of every parameter: returns (new params, new state)."""
        new_params, new_state, update = {}, {}, self.update
        for name, w in params.items():
            new_params[name], new_state[name] = update(w, grads[name], state[name], hyper, inplace)
        return new_params, new_state

    def update(self, w, g, bufs: dict, h: dict, inplace: bool):
        """(new w, new buffers) for one parameter."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register("SGD.v1", aliases=("sgd",))
class SGD(Optimizer):
    """SGD with optional classical or Nesterov momentum (PyTorch's form: buf = mu*buf + g)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        check("momentum", momentum, FRACTION)
        if nesterov and not momentum:
            raise InputError("Nesterov momentum needs momentum > 0, e.g. momentum=0.9")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.buffers = ("momentum",) if self.momentum else ()

    def update(self, w, g, bufs, h, inplace):
        lr = h["lr"]
        if not self.momentum:
            return _sub(w, lr * g, inplace), bufs
        buf = _decay_add(bufs["momentum"], self.momentum, g, inplace)
        return _sub(w, lr * (g + self.momentum * buf if self.nesterov else buf), inplace), {"momentum": buf}


alias("momentum", "SGD.v1", kind="optimizer", momentum=0.9)
alias("nesterov", "SGD.v1", kind="optimizer", momentum=0.9, nesterov=True)


@register("BookSGD.v1", aliases=("book",))
class BookSGD(Optimizer):
    """The book's rule: delta = lr * g; w -= delta + alpha * delta_prev (a one-step look-back, not a velocity)."""

    buffers = ("delta_prev",)

    def __init__(self, lr: float = 0.001, alpha: float = 0.0):
        super().__init__(lr)
        check("alpha", alpha, NON_NEGATIVE, hint="the book's momentum factor")
        self.alpha = float(alpha)

    def update(self, w, g, bufs, h, inplace):
        delta = h["lr"] * g
        return _sub(w, delta + self.alpha * bufs["delta_prev"], inplace), {"delta_prev": delta}


@register("Adam.v1", aliases=("adam",))
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds weight_decay * w to the gradient (L2)."""

    decoupled = False
    buffers = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        check("beta1", beta1, FRACTION)
        check("beta2", beta2, FRACTION)
        check("weight_decay", weight_decay, NON_NEGATIVE)
        check("eps", eps, POSITIVE)
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)

    def hyper(self, lr, t):
        lr = float(lr)
        return {"lr": lr, "step_size": lr / (1.0 - self.beta1 ** t), "bias2": 1.0 - self.beta2 ** t,
                "decay": lr * self.weight_decay}

    def update(self, w, g, bufs, h, inplace):
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * w
        m = _decay_add(bufs["m"], self.beta1, (1.0 - self.beta1) * g, inplace)
        v = _decay_add(bufs["v"], self.beta2, (1.0 - self.beta2) * (g * g), inplace)
        denom = namespace(v).sqrt(v / h["bias2"]) + self.eps
        if self.weight_decay and self.decoupled:
            w = _sub(w, h["decay"] * w, inplace)
        return _sub(w, h["step_size"] * (m / denom), inplace), {"m": m, "v": v}


@register("AdamW.v1", aliases=("adamw",))
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * weight_decay * w, then the Adam step."""

    decoupled = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)
