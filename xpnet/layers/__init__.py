"""Layers: configuration and shapes; parameters are passed in (see base.Layer for the protocol)."""
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, sigmoid, softmax
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .reshape import Flatten

__all__ = ["Dense", "Dropout", "Flatten", "Identity", "Layer", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
           "sigmoid", "softmax"]
