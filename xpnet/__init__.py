"""xpnet: neural networks written once against the Python Array API, trained on NumPy, CuPy, PyTorch, JAX."""
from ._version import __version__
# backend, gradcheck and parity are modules that can be called like their main function (xpnet/_callable.py):
# xpnet.backend("numpy") works and `import xpnet.backend` still gives the module. gradcheck and parity live in
# tools/ and stay public here under their short names, as the same module objects (see _alias below).
from . import backend
from .tools import gradcheck, parity
from .backend import Backend, to_numpy
from .errors import (BackendError, CheckpointError, InputError, OutOfMemory, TrainingDiverged,
                     TrainingInterrupted)
from .layers.activations import ACTIVATION_NAMES as _ACTIVATION_NAMES
from .layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, Identity, Layer, LeakyReLU,
                     MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)
from .layers.combinators import Add, Chain, Concatenate, Residual
from .layers.augmentation import RandomCrop, RandomFlip
from .layers import GELU, Embedding, LayerNorm, MultiHeadAttention, PositionalEmbedding, TiedOutput
from .losses import MSE, Loss, LogisticCost, SoftmaxCrossEntropy
from .models.mlp import NeuralNetMLP, mlp_layers, mlp_specs
from .models.sequential import Sequential
from .optimizers import SGD, Adam, AdamW, BookSGD, Optimizer
from .penalties import Penalty
from .registry import deserialize, model_from_config, register, serialize
from .saving.checkpoint import load
from .schedules import Schedule, WarmupCosine, WarmupLinear
from .training import Callback, EarlyStopping, ModelCheckpoint, ProgressBar, TrainState
from .training.loggers import HistoryLogger, MLflowLogger, TensorBoard  # they take their writer/client
from . import metrics  # xpnet.metrics: precision, recall, F1, top-k, classification_report
from . import registry as _registry
from ._moved import alias as _alias

# `import xpnet.gradcheck` / `import xpnet.parity` give the modules above (first-class public names: the
# documented calls are xpnet.gradcheck(...) and xpnet.parity(...)), without a deprecation warning.
_alias("xpnet.gradcheck", gradcheck)
_alias("xpnet.parity", parity)


def _by_alias(kind: str, names=None) -> dict:
    return {a: _registry.get(kind, a) for a in (names or _registry.aliases(kind))}


# Name -> class (or factory) tables, kept for compatibility; the registry is their one source.
ACTIVATIONS = _by_alias("layer", _ACTIVATION_NAMES)
LOSSES = _by_alias("loss")
OPTIMIZERS = _by_alias("optimizer")
SCHEDULES = _by_alias("schedule")


__all__ = [
    "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "SCHEDULES", "MSE", "SGD", "Adam", "AdamW", "AvgPool2D", "Backend",
    "BackendError", "BatchNorm", "BookSGD", "Callback", "CheckpointError", "Conv2D", "Dense", "Dropout", "EarlyStopping", "Flatten", "GlobalAvgPool2D", "Identity", "InputError", "Layer",
    "LeakyReLU", "LogisticCost", "Loss", "MaxPool2D", "ModelCheckpoint", "NeuralNetMLP", "Optimizer", "OutOfMemory", "Penalty", "ProgressBar", "ReLU", "Schedule",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "Tanh", "TrainState", "TrainingDiverged",
    "TrainingInterrupted", "WarmupCosine", "WarmupLinear",
    "Add", "Chain", "Concatenate", "Residual", "RandomCrop", "RandomFlip",
    "Embedding", "GELU", "LayerNorm", "MultiHeadAttention", "PositionalEmbedding", "TiedOutput",
    "backend", "deserialize", "gradcheck", "load", "mlp_layers", "mlp_specs",
    "model_from_config", "parity", "register", "serialize", "to_numpy", "__version__",
]
__all__ += ["HistoryLogger", "MLflowLogger", "TensorBoard"]
