"""Learning-rate schedules, applied on the host at the start of each epoch: `lr = schedule(epoch, lr, lr0)`."""
from __future__ import annotations

import math

from .errors import InputError
from .registry import Configurable, register


def _number(name, v, low=None, low_open=False, integer=False):
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    ok = ok and not isinstance(v, bool) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = "" if low is None else f" {'>' if low_open else '>='} {low}"
        raise InputError(f"{name} must be {kind}{bound}, got {v!r}")


class Schedule(Configurable):
    kind = "schedule"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register("Constant.v1", aliases=("constant",))
class Constant(Schedule):
    def __init__(self):
        pass

    def __call__(self, epoch: int, lr: float, lr0: float) -> float:
        return lr


@register("BookDecay.v1", aliases=("book",))
class BookDecay(Schedule):
    """The book's compounding decrease constant: lr /= 1 + d * epoch, dividing the already-decayed rate."""

    def __init__(self, decrease_const: float):
        _number("decrease constant", decrease_const, 0.0)
        self.decrease_const = float(decrease_const)

    def __call__(self, epoch, lr, lr0):
        return lr / (1 + self.decrease_const * epoch)


@register("InverseTime.v1", aliases=("inverse_time",))
class InverseTime(Schedule):
    """lr0 / (1 + d * epoch), the closed form the book's docstring describes."""

    def __init__(self, decay: float):
        _number("inverse-time decay", decay, 0.0)
        self.decay = float(decay)

    def __call__(self, epoch, lr, lr0):
        return lr0 / (1 + self.decay * epoch)


@register("Exponential.v1", aliases=("exponential",))
class Exponential(Schedule):
    """lr0 * gamma ** epoch."""

    def __init__(self, gamma: float):
        _number("exponential decay gamma", gamma, 0.0, low_open=True)
        self.gamma = float(gamma)

    def __call__(self, epoch, lr, lr0):
        return lr0 * self.gamma ** epoch


@register("Step.v1", aliases=("step",))
class Step(Schedule):
    """lr0 * gamma ** (epoch // step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        _number("step schedule step_size", step_size, 1, integer=True)
        _number("step schedule gamma", gamma, 0.0, low_open=True)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch, lr, lr0):
        return lr0 * self.gamma ** (epoch // self.step_size)


@register("Cosine.v1", aliases=("cosine",))
class Cosine(Schedule):
    """Cosine annealing from lr0 to min_lr over `epochs` epochs."""

    def __init__(self, epochs: int, min_lr: float = 0.0):
        _number("cosine schedule epochs", epochs, 1, integer=True)
        _number("cosine schedule min_lr", min_lr, 0.0)
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def __call__(self, epoch, lr, lr0):
        return self.min_lr + 0.5 * (lr0 - self.min_lr) * (1 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))
