"""Declarative argument checks, after scikit-learn's `utils/_param_validation.py`: a constraint says what a
value must be, `check` raises one `InputError` line that names the keyword, the value it got and what it
expects, with an optional hint on how to fix it:

    check("batch_size", 0, Interval(int, 1, None))
    # InputError: batch_size=0: must be a positive integer
    check("step_size", 0, Interval(int, 1, None), owner="Step")
    # InputError: Step(step_size=0): must be a positive integer
    check("lr", -1.0, POSITIVE, hint="try 0.01 for SGD or 0.001 for Adam")
    # InputError: lr=-1.0: must be a number > 0; try 0.01 for SGD or 0.001 for Adam

`True` and `False` are never numbers here (`epochs=True` is refused). The error's `argument` field names the
keyword ("batch_size"; None with an owner), and the command line writes the flag that set it instead
('--batch-size 0: must be a positive integer', `xpnet.cli.app.as_flags`).
"""
from __future__ import annotations

import math
import numbers

from .errors import InputError


class Constraint:
    """What a value must be: `satisfied_by(value)`, and `str(constraint)` says it ('a positive integer')."""

    def satisfied_by(self, value) -> bool:
        raise NotImplementedError

    def __or__(self, other: "Constraint") -> "AnyOf":
        return AnyOf(self, other)

    def parts(self) -> list[str]:
        """The alternatives it allows, in words (`AnyOf` lists them all)."""
        return [str(self)]


class Interval(Constraint):
    """A real number (type float: int or float, finite) or an integer (type int) between `left` and `right`
    (None: unbounded); `closed` is which ends belong to it: "both" (default), "left", "right" or "neither"."""

    def __init__(self, type: type, left=None, right=None, closed: str = "both"):
        if type not in (int, float) or closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval(type int or float, closed both/left/right/neither), got {type!r}, {closed!r}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def satisfied_by(self, value) -> bool:
        if isinstance(value, bool):
            return False
        if self.type is int:
            if not isinstance(value, numbers.Integral):
                return False
        elif not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        if self.left is not None and not (value >= self.left if self.closed in ("both", "left") else value > self.left):
            return False
        if self.right is not None and not (value <= self.right if self.closed in ("both", "right")
                                           else value < self.right):
            return False
        return True

    def __str__(self) -> str:
        kind = "an integer" if self.type is int else "a number"
        left_in, right_in = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.type is int and self.right is None and self.left is not None:
            low = self.left if left_in else self.left + 1
            if low in (0, 1):
                return "a positive integer" if low == 1 else "a non-negative integer"
            return f"an integer >= {low}"
        if self.left is not None and self.right is not None:
            if self.type is int and left_in and right_in:
                return f"an integer from {self.left} to {self.right}"
            return f"{kind} in {'[' if left_in else '('}{self.left}, {self.right}{']' if right_in else ')'}"
        if self.left is not None:
            return f"{kind} {'>=' if left_in else '>'} {self.left}"
        if self.right is not None:
            return f"{kind} {'<=' if right_in else '<'} {self.right}"
        return kind if self.type is int else "a finite number"


class Options(Constraint):
    """One of the given values (compared with ==, booleans only with booleans)."""

    def __init__(self, *values):
        self.values = values

    def satisfied_by(self, value) -> bool:
        return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)

    def parts(self) -> list[str]:
        return [repr(v) for v in self.values]

    def __str__(self) -> str:
        return _either(self.parts())


class InstanceOf(Constraint):
    """An instance of `cls`."""

    def __init__(self, cls: type, name: str | None = None):
        self.cls, self.name = cls, name or cls.__name__

    def satisfied_by(self, value) -> bool:
        return isinstance(value, self.cls)

    def __str__(self) -> str:
        return f"an {self.name}" if self.name[:1].lower() in "aeiou" else f"a {self.name}"


class AnyOf(Constraint):
    """Any one of the constraints: `Interval(int, 1, None) | Options(None)`."""

    def __init__(self, *constraints: Constraint):
        self.constraints = constraints

    def satisfied_by(self, value) -> bool:
        return any(c.satisfied_by(value) for c in self.constraints)

    def __or__(self, other: Constraint) -> "AnyOf":
        return AnyOf(*self.constraints, other)

    def parts(self) -> list[str]:
        return [p for c in self.constraints for p in c.parts()]

    def __str__(self) -> str:
        return _either(self.parts())


def _either(parts: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


POSITIVE_INT = Interval(int, 1, None)
POSITIVE = Interval(float, 0, None, closed="neither")
NON_NEGATIVE = Interval(float, 0, None)
FRACTION = Interval(float, 0, 1, closed="left")  # [0, 1)


def check(name: str, value, constraint: Constraint, hint: str | None = None, owner: str | None = None):
    """`value` if it satisfies `constraint`; else InputError '[owner(]name=value[)]: must be ...[; hint]'
    (without owner, one made by `InputError.for_argument(name, ...)`: its `argument` field is `name`)."""
    if not constraint.satisfied_by(value):
        must = f"must be {constraint}" + (f"; {hint}" if hint else "")
        if owner is None:
            raise InputError.for_argument(name, f"{value!r}: {must}")
        raise InputError(f"{owner}({name}={value!r}): {must}")
    return value
