"""Learning-rate schedules, applied at the start of each epoch: `lr = schedule(epoch, lr, lr0)`."""
from __future__ import annotations

import math

from .validation import InputError


class Schedule:
    def config(self) -> dict:
        """{'type': class name, **constructor arguments}."""
        return {"type": type(self).__name__, **vars(self)}


class Constant(Schedule):
    def __call__(self, epoch: int, lr: float, lr0: float) -> float:
        return lr


class BookDecay(Schedule):
    """The book's compounding decrease constant: lr /= 1 + d * epoch, dividing the already-decayed rate."""

    def __init__(self, decrease_const: float):
        if decrease_const < 0:
            raise InputError(f"decrease constant must be >= 0, got {decrease_const!r}")
        self.decrease_const = float(decrease_const)

    def __call__(self, epoch, lr, lr0):
        return lr / (1 + self.decrease_const * epoch)


class InverseTime(Schedule):
    """lr0 / (1 + d * epoch), the closed form the book's docstring describes."""

    def __init__(self, decay: float):
        self.decay = float(decay)

    def __call__(self, epoch, lr, lr0):
        return lr0 / (1 + self.decay * epoch)


class Exponential(Schedule):
    def __init__(self, gamma: float):
        self.gamma = float(gamma)

    def __call__(self, epoch, lr, lr0):
        return lr0 * self.gamma ** epoch


class Step(Schedule):
    def __init__(self, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, epoch, lr, lr0):
        return lr0 * self.gamma ** (epoch // self.step_size)


class Cosine(Schedule):
    """Cosine annealing from lr0 to min_lr over `epochs` epochs."""

    def __init__(self, epochs: int, min_lr: float = 0.0):
        self.epochs, self.min_lr = max(int(epochs), 1), float(min_lr)

    def __call__(self, epoch, lr, lr0):
        return self.min_lr + 0.5 * (lr0 - self.min_lr) * (1 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))


SCHEDULE_TYPES = {cls.__name__: cls for cls in (Constant, BookDecay, InverseTime, Exponential, Step, Cosine)}

SCHEDULES = {
    "constant": Constant,
    "book": BookDecay,
    "inverse_time": InverseTime,
    "exponential": Exponential,
    "step": Step,
    "cosine": Cosine,
}
