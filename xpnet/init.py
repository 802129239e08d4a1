"""Weight initializers, drawn on the host from a seeded NumPy generator so every backend starts identical.

Each is `f(rng, shape, fan_in, fan_out)` and returns a float64 NumPy array of `shape` (the layer computes
the fans from its weight's shape: Dense's (out, in) gives fan_in = in, fan_out = out); the layer casts
and moves it. Register your own with `@xpnet.register("my_init", kind="initializer")`.
"""
import math

import numpy as np

from .registry import get as _get
from .registry import names as _names
from .registry import register


def _initializer(name):
    return register(f"{name}.v1", kind="initializer", aliases=(name,))


@_initializer("uniform")
def uniform(rng, shape, fan_in: int, fan_out: int, limit: float = 1.0) -> np.ndarray:
    """U(-limit, limit); limit=1 is the book's NeuralNetMLP draw."""
    return rng.uniform(-limit, limit, size=tuple(shape))


@_initializer("glorot_uniform")
def glorot_uniform(rng, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    return uniform(rng, shape, fan_in, fan_out, math.sqrt(6.0 / (fan_in + fan_out)))


@_initializer("he_normal")
def he_normal(rng, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """He/Kaiming normal: N(0, 2 / fan_in), for ReLU layers."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=tuple(shape))


@_initializer("he_uniform")
def he_uniform(rng, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """He/Kaiming uniform: U(-a, a), a = sqrt(6 / fan_in)."""
    return uniform(rng, shape, fan_in, fan_out, math.sqrt(6.0 / fan_in))


@_initializer("normal")
def normal(rng, shape, fan_in: int, fan_out: int, std: float = 0.1) -> np.ndarray:
    """N(0, std^2); std=0.1 is the later editions' draw."""
    return rng.normal(0.0, std, size=tuple(shape))


@_initializer("book_uniform")
def book_uniform(rng, shape, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The book's NeuralNetMLP draw for a (fan_out, fan_in) weight: one flat U(-1, 1) of (fan_out, fan_in + 1),
    column 0 the bias. Returns (weight, bias)."""
    wb = rng.uniform(-1.0, 1.0, size=fan_out * (fan_in + 1)).reshape(fan_out, fan_in + 1)
    return wb[:, 1:], wb[:, 0]


@_initializer("normal_in_out")
def normal_in_out(rng, shape, fan_in: int, fan_out: int, std: float = 0.1) -> np.ndarray:
    """The later editions' draw: N(0, 0.1^2) of the transposed shape (fan_in, fan_out), row-major, then transposed."""
    return rng.normal(0.0, std, size=tuple(shape)[::-1]).T


register("xavier_uniform.v1", kind="initializer", aliases=("xavier_uniform",))(glorot_uniform)


def get(name: str):
    """The initializer registered under `name` (InputError naming the valid ones otherwise). "name:VALUE" gives
    its scale argument (the one after fan_out): "normal:0.02" is N(0, 0.02^2) (GPT-2's), "uniform:0.1"
    U(-0.1, 0.1)."""
    if isinstance(name, str) and ":" in name:
        import functools
        import inspect
        base, _, value = name.partition(":")
        fn = _get("initializer", base)
        extra = list(inspect.signature(fn).parameters)[4:5]
        try:
            number = float(value)
        except ValueError:
            number = None
        if not extra or number is None or not number > 0:
            from .errors import InputError
            raise InputError(f"initializer {name!r}: 'name:VALUE' takes a positive number after the colon for an "
                             f"initializer with a scale (normal, uniform), e.g. 'normal:0.02'")
        return functools.partial(fn, **{extra[0]: number})
    return _get("initializer", name)


def zeros(*shape) -> np.ndarray:
    return np.zeros(shape)


def ones(*shape) -> np.ndarray:
    return np.ones(shape)


def host_rng(seed=None, kind: str = "Generator"):
    """The host generator for one model: weights, shuffles and dropout masks (seed None: fresh entropy).
    kind "Generator" (NumPy's default_rng) or "RandomState" (the legacy MT19937 stream the book's code uses)."""
    check_seed("seed", seed)
    if kind == "RandomState":
        return np.random.RandomState(seed)
    if kind != "Generator":
        from .errors import InputError
        raise InputError(f"unknown host RNG kind {kind!r}; choose 'Generator' or 'RandomState'")
    return np.random.default_rng(seed)


def check_seed(name: str, seed) -> None:
    """A whole-number seed must be >= 0 (NumPy's generators refuse negative ones with a bare ValueError)."""
    import numbers
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed < 0:
        from .errors import InputError
        raise InputError.for_argument(name, f"{seed}: must be a non-negative integer (or None for a fresh seed), "
                                            f"e.g. {-seed}")


def rng_kind(rng) -> str:
    return "RandomState" if isinstance(rng, np.random.RandomState) else "Generator"


INITIALIZERS = {name: get(name) for name in ("uniform", "glorot_uniform", "xavier_uniform", "he_normal", "he_uniform",
                                              "normal", "book_uniform", "normal_in_out")}
"""Name -> function, kept for compatibility; the registry (kind "initializer") is the source."""

