"""Layers: configuration and shapes; parameters are passed in (see base.Layer for the protocol)."""
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, sigmoid, softmax
from .base import Layer
from .combinators import Add, Chain, Concatenate, Residual
from .conv import Conv2D, set_im2col_limit
from .normalization import BatchNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .dense import Dense
from .dropout import Dropout
from .reshape import Flatten

__all__ = ["Add", "AvgPool2D", "Chain", "Concatenate", "Residual", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAvgPool2D", "Identity", "Layer",
           "LeakyReLU", "MaxPool2D", "ReLU", "Sigmoid", "Softmax", "Tanh", "set_im2col_limit", "sigmoid", "softmax"]
