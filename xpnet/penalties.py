"""L1 and L2 weight penalties on the parameters layers declare as penalized (Dense: weights, never biases)."""
from __future__ import annotations

from .checks import NON_NEGATIVE, check
from .registry import Configurable, register


@register("Penalty.v1", kind="penalty")
class Penalty(Configurable):
    """cost = l2_cost_factor * l2 * sum(w**2) + l1_cost_factor * l1 * sum|w|; gradient += l2 * w + l1 * sign(w).

    The defaults (0.5, 1.0) keep cost and gradient consistent. l1_cost_factor=0.5 reproduces the 2015 book,
    whose L1 cost is (l1/2) sum|w| while its gradient uses l1 * sign(w); l2_cost_factor=1.0 the later
    editions, whose L2 cost is l2 sum(w**2) while their gradient uses l2 * w.
    """

    kind = "penalty"

    def __init__(self, l1: float = 0.0, l2: float = 0.0, l1_cost_factor: float = 1.0, l2_cost_factor: float = 0.5):
        check("l1", l1, NON_NEGATIVE)
        check("l2", l2, NON_NEGATIVE)
        self.l1, self.l2 = float(l1), float(l2)
        self.l1_cost_factor, self.l2_cost_factor = float(l1_cost_factor), float(l2_cost_factor)

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2, "l1_cost_factor": self.l1_cost_factor,
                "l2_cost_factor": self.l2_cost_factor}

    def __bool__(self) -> bool:
        return bool(self.l1 or self.l2)

    def cost(self, xp, weights):
        """Penalty value over a list of weight arrays."""
        total = 0.0
        for w in weights:
            if self.l2:
                total = total + (self.l2_cost_factor * self.l2) * xp.sum(w * w)
            if self.l1:
                total = total + (self.l1_cost_factor * self.l1) * xp.sum(xp.abs(w))
        return total

    def add_grad(self, xp, g, w):
        """g plus the penalty's gradient for weights w (added term by term, in the book's order)."""
        if self.l2:
            g = g + self.l2 * w
        if self.l1:
            g = g + self.l1 * xp.sign(w)
        return g

    def __repr__(self) -> str:
        return f"Penalty(l1={self.l1}, l2={self.l2})"
