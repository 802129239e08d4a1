"""Weight initializers, drawn on the host from a seeded NumPy generator so every backend starts identical.

Each returns a float64 NumPy array of shape (fan_out, fan_in); the layer casts and moves it.
"""
import math

import numpy as np


def uniform(rng, fan_in: int, fan_out: int, limit: float = 1.0) -> np.ndarray:
    """U(-limit, limit); limit=1 is the book's NeuralNetMLP draw."""
    return rng.uniform(-limit, limit, size=(fan_out, fan_in))


def glorot_uniform(rng, fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    return uniform(rng, fan_in, fan_out, math.sqrt(6.0 / (fan_in + fan_out)))


def he_normal(rng, fan_in: int, fan_out: int) -> np.ndarray:
    """He/Kaiming normal: N(0, 2 / fan_in), for ReLU layers."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


def he_uniform(rng, fan_in: int, fan_out: int) -> np.ndarray:
    """He/Kaiming uniform: U(-a, a), a = sqrt(6 / fan_in)."""
    return uniform(rng, fan_in, fan_out, math.sqrt(6.0 / fan_in))


def normal(rng, fan_in: int, fan_out: int, std: float = 0.1) -> np.ndarray:
    """N(0, std^2); std=0.1 is the later editions' draw."""
    return rng.normal(0.0, std, size=(fan_out, fan_in))


def book_uniform(rng, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The book's NeuralNetMLP draw: one flat U(-1, 1) of (fan_out, fan_in + 1), column 0 the bias."""
    wb = rng.uniform(-1.0, 1.0, size=fan_out * (fan_in + 1)).reshape(fan_out, fan_in + 1)
    return wb[:, 1:], wb[:, 0]


def normal_in_out(rng, fan_in: int, fan_out: int, std: float = 0.1) -> np.ndarray:
    """The later editions' draw: N(0, 0.1^2) of shape (fan_in, fan_out), row-major, then transposed."""
    return rng.normal(0.0, std, size=(fan_in, fan_out)).T


INITIALIZERS = {
    "uniform": uniform,
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "normal": normal,
    "book_uniform": book_uniform,
    "normal_in_out": normal_in_out,
}


def host_rng(seed) -> np.random.Generator:
    """The host generator for one model: weights, shuffles and dropout masks (None: fresh entropy)."""
    return np.random.default_rng(seed)
