"""xpnet: neural networks written once against the Python Array API, trained on NumPy, CuPy, PyTorch, JAX."""
__version__ = "0.1.0"

# backend, gradcheck and parity are modules that can be called like their main function (xpnet/_callable.py):
# xpnet.backend("numpy") works and `import xpnet.backend` still gives the module.
from . import backend, gradcheck, parity
from .backend import Backend, BackendError, to_numpy
from .checkpoint import CheckpointError, load
from .layers import ACTIVATIONS, Dense, Dropout, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .losses import LOSSES, MSE, LogisticCost, SoftmaxCrossEntropy
from .mlp import NeuralNetMLP
from .model import Sequential
from .optimizers import OPTIMIZERS, SGD, Adam, AdamW, BookSGD
from .penalties import Penalty
from .schedules import SCHEDULES
from .training import EarlyStopping, OutOfMemory, TrainingDiverged, TrainingInterrupted
from .validation import InputError

__all__ = [
    "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "SCHEDULES", "MSE", "SGD", "Adam", "AdamW", "Backend", "BackendError",
    "BookSGD", "CheckpointError", "Dense", "Dropout", "EarlyStopping", "Identity", "InputError", "LeakyReLU", "LogisticCost",
    "NeuralNetMLP", "OutOfMemory", "Penalty", "ReLU", "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "Tanh",
    "TrainingDiverged", "TrainingInterrupted", "backend", "gradcheck", "load", "parity", "to_numpy", "__version__",
]
