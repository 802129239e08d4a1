"""Learning-rate schedules, applied on the host at the start of each epoch: `lr = schedule(epoch, lr, lr0)`."""
from __future__ import annotations

import math

from .checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, check
from .registry import Configurable, register


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
        check("decrease_const", decrease_const, NON_NEGATIVE, owner="BookDecay")
        self.decrease_const = float(decrease_const)

    def __call__(self, epoch, lr, lr0):
        return lr / (1 + self.decrease_const * epoch)


@register("InverseTime.v1", aliases=("inverse_time",))
class InverseTime(Schedule):
    """lr0 / (1 + d * epoch), the closed form the book's docstring describes."""

    def __init__(self, decay: float):
        check("decay", decay, NON_NEGATIVE, owner="InverseTime")
        self.decay = float(decay)

    def __call__(self, epoch, lr, lr0):
        return lr0 / (1 + self.decay * epoch)


@register("Exponential.v1", aliases=("exponential",))
class Exponential(Schedule):
    """lr0 * gamma ** epoch."""

    def __init__(self, gamma: float):
        check("gamma", gamma, POSITIVE, owner="Exponential")
        self.gamma = float(gamma)

    def __call__(self, epoch, lr, lr0):
        return lr0 * self.gamma ** epoch


@register("Step.v1", aliases=("step",))
class Step(Schedule):
    """lr0 * gamma ** (epoch // step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        check("step_size", step_size, POSITIVE_INT, owner="Step")
        check("gamma", gamma, POSITIVE, owner="Step")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch, lr, lr0):
        return lr0 * self.gamma ** (epoch // self.step_size)


@register("Cosine.v1", aliases=("cosine",))
class Cosine(Schedule):
    """Cosine annealing from lr0 to min_lr over `epochs` epochs."""

    def __init__(self, epochs: int, min_lr: float = 0.0):
        check("epochs", epochs, POSITIVE_INT, owner="Cosine")
        check("min_lr", min_lr, NON_NEGATIVE, owner="Cosine")
        self.epochs, self.min_lr = int(epochs), float(min_lr)

    def __call__(self, epoch, lr, lr0):
        return self.min_lr + 0.5 * (lr0 - self.min_lr) * (1 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))
