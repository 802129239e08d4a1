"""Learning-rate schedules on the host. Per epoch (the default kind): applied at the start of each epoch,
`lr = schedule(epoch, lr, lr0)`. Per step (`per_step = True`: WarmupCosine, WarmupLinear): the rate of every
update from the number of updates before it, `lr = schedule.rate(it, peak)` (it = 0 for the first update;
peak: the optimizer's lr), set by the model before each update and passed to the compiled step as an argument."""
from __future__ import annotations

import math

from .checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Interval, check
from .errors import InputError
from .registry import Configurable, register


NON_NEGATIVE_INT = Interval(int, 0, None)


class Schedule(Configurable):
    kind = "schedule"
    #: True: the rate is set before every update by `rate(it, peak)`, and the per-epoch call leaves it as it is
    per_step = False

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


class _WarmupDecay(Schedule):
    """Linear warmup over warmup_steps updates, then a decay to min_lr at update decay_steps, min_lr after."""

    per_step = True

    def __init__(self, warmup_steps: int = 0, decay_steps: int | None = None, min_lr: float = 0.0):
        check("warmup_steps", warmup_steps, NON_NEGATIVE_INT, hint="the number of updates the rate warms up over")
        if decay_steps is not None:
            check("decay_steps", decay_steps, POSITIVE_INT, hint="the update count at which the rate reaches min_lr")
            if warmup_steps >= decay_steps:
                raise InputError.for_argument("warmup_steps", f"{warmup_steps!r}: must be less than decay_steps "
                                                              f"({decay_steps}), where the decay ends; lower it or "
                                                              f"raise decay_steps")
        check("min_lr", min_lr, NON_NEGATIVE, hint="the rate the decay ends at")
        if decay_steps is None and min_lr:
            raise InputError.for_argument("min_lr", f"{min_lr!r}: needs decay_steps (the update count where the "
                                                    f"decay to it ends); give decay_steps or drop min_lr")
        self.warmup_steps, self.decay_steps, self.min_lr = int(warmup_steps), decay_steps, float(min_lr)
        if decay_steps is not None:
            self.decay_steps = int(decay_steps)

    def __call__(self, epoch, lr, lr0):
        return lr  # the rate is set per update (rate)

    def rate(self, it: int, peak: float) -> float:
        """The rate of the update with `it` updates before it: peak * (it + 1) / (warmup_steps + 1) while
        it < warmup_steps, then the decay from peak (it = warmup_steps) to min_lr (it = decay_steps), min_lr
        after; peak after the warmup when there is no decay_steps. nanoGPT's get_lr(it) for the cosine."""
        if it < self.warmup_steps:
            return peak * (it + 1) / (self.warmup_steps + 1)
        if self.decay_steps is None:
            return peak
        if it > self.decay_steps:
            return self.min_lr
        ratio = (it - self.warmup_steps) / (self.decay_steps - self.warmup_steps)
        return self.min_lr + self.coefficient(ratio) * (peak - self.min_lr)

    def coefficient(self, ratio: float) -> float:
        raise NotImplementedError


@register("WarmupCosine.v1", aliases=("warmup_cosine",))
class WarmupCosine(_WarmupDecay):
    """Per step: linear warmup over warmup_steps updates, then cosine decay to min_lr at decay_steps
    (nanoGPT's schedule: coefficient 0.5 * (1 + cos(pi * ratio)))."""

    def coefficient(self, ratio):
        return 0.5 * (1.0 + math.cos(math.pi * ratio))


@register("WarmupLinear.v1", aliases=("warmup_linear",))
class WarmupLinear(_WarmupDecay):
    """Per step: linear warmup over warmup_steps updates, then linear decay to min_lr at decay_steps
    (coefficient 1 - ratio)."""

    def coefficient(self, ratio):
        return 1.0 - ratio
