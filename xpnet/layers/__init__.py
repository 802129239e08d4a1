"""Layers: configuration and shapes; parameters are passed in (see base.Layer for the protocol)."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, sigmoid, softmax
from .attention import MultiHeadAttention
from .base import Layer
from .combinators import Add, Chain, Concatenate, Residual
from .conv import Conv2D, set_im2col_limit
from .normalization import BatchNorm, LayerNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, PositionalEmbedding
from .reshape import Flatten
from .augmentation import RandomCrop, RandomFlip
from .tied import TiedOutput

__all__ = ["Add", "AvgPool2D", "Chain", "Concatenate", "Residual", "BatchNorm", "Conv2D", "Dense", "Dropout", "Embedding", "Flatten", "GELU", "GlobalAvgPool2D",
           "Identity", "Layer", "LayerNorm", "LeakyReLU", "MaxPool2D", "MultiHeadAttention", "PositionalEmbedding", "RandomCrop", "RandomFlip", "ReLU", "Sigmoid", "Softmax", "Tanh", "TiedOutput", "set_im2col_limit", "sigmoid", "softmax"]
