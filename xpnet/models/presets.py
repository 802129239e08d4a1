"""Convolutional models as registry configs (the `lenet5` and `fashion-cnn` presets), and image inputs:
flat rows, (N, H, W) or (N, C, H, W) arrays brought to the (N, C, H, W) a convolutional model takes.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..registry import load_config

#: layer classes whose input is (C, H, W) images: a model starting with one takes NCHW input
IMAGE_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D")


def _layer(name: str, **config) -> dict:
    return {"class": name, "config": config}


def lenet5_layers(n_classes: int = 10, channels: int = 1) -> list[dict]:
    """LeNet-5 with ReLU and max-pooling: conv 6@5x5 padding 2, max-pool 2, conv 16@5x5, max-pool 2,
    dense 120, 84, n_classes (on 28x28 inputs: 16·5·5 = 400 features into the first dense layer)."""
    return [_layer("Conv2D", in_channels=channels, out_channels=6, kernel_size=5, padding=2), _layer("relu"),
            _layer("MaxPool2D", kernel_size=2), _layer("Conv2D", in_channels=6, out_channels=16, kernel_size=5),
            _layer("relu"), _layer("MaxPool2D", kernel_size=2), _layer("Flatten"),
            _layer("Dense", in_features=400, out_features=120, init="he_uniform"), _layer("relu"),
            _layer("Dense", in_features=120, out_features=84, init="he_uniform"), _layer("relu"),
            _layer("Dense", in_features=84, out_features=n_classes)]


def fashion_cnn_layers(n_classes: int = 10, channels: int = 1) -> list[dict]:
    """conv 32@3x3, ReLU, conv 64@3x3, ReLU, max-pool 2, dropout 0.25, dense 128, ReLU, dropout 0.5,
    dense n_classes (on 28x28 inputs: 64·12·12 = 9216 features into the first dense layer)."""
    return [_layer("Conv2D", in_channels=channels, out_channels=32, kernel_size=3), _layer("relu"),
            _layer("Conv2D", in_channels=32, out_channels=64, kernel_size=3), _layer("relu"),
            _layer("MaxPool2D", kernel_size=2), _layer("Dropout", p=0.25), _layer("Flatten"),
            _layer("Dense", in_features=9216, out_features=128, init="he_uniform"), _layer("relu"),
            _layer("Dropout", p=0.5), _layer("Dense", in_features=128, out_features=n_classes)]


CNN_MODELS = {"lenet5": lenet5_layers, "fashion-cnn": fashion_cnn_layers}


def cnn_spec(name: str, n_classes: int, cfg: dict) -> dict:
    """The Sequential config of a convolutional preset (`cfg`: the resolved command-line configuration):
    Adam at cfg's rate with a cosine decay to 0 over cfg's epochs, 28x28 one-channel input."""
    return {"class": "Sequential", "config": {
        "layers": CNN_MODELS[name](n_classes), "loss": {"class": cfg["loss"], "config": {}},
        "optimizer": {"class": cfg["optimizer"], "config": {"lr": cfg["lr"]}},
        "schedule": {"class": "cosine", "config": {"epochs": cfg["epochs"]}},
        "penalty": {"class": "Penalty", "config": {"l1": cfg["l1"], "l2": cfg["l2"]}},
        "dtype": cfg["dtype"], "seed": cfg["seed"], "input_shape": [1, 28, 28]}}


def read_model_file(path) -> dict:
    """A model config from a JSON file ({"class": "Sequential", "config": {"layers": [...], ...}}, the registry's
    format: what `json.dumps(xpnet.serialize(model))` writes)."""
    try:
        spec = load_config(Path(path).expanduser())
    except InputError as exc:
        raise InputError(f"--model {path}: {exc} (examples/lenet5.json is one)") from None
    if not isinstance(spec, dict) or "class" not in spec or not isinstance(spec.get("config"), dict) \
            or not isinstance(spec["config"].get("layers"), list):
        raise InputError(f"--model {path}: expected {{\"class\": \"Sequential\", \"config\": {{\"layers\": [...]}}}} "
                         f"(examples/lenet5.json is one)")
    return spec


def takes_images(spec: dict) -> bool:
    """Whether a model config takes (C, H, W) images: a 3-D input_shape, or a first layer that does."""
    config = spec.get("config", {})
    shape = config.get("input_shape")
    if shape is not None:
        return len(shape) == 3
    layers = config.get("layers") or [{}]
    first = str(layers[0].get("class", "")).split(".v")[0].lower()
    return first in {n.lower() for n in IMAGE_LAYERS}


def as_images(X, input_shape=None, source: str = "the dataset", name: str = "X") -> np.ndarray:
    """Host data -> (N, C, H, W) for a model taking images of `input_shape` (C, H, W) (None: as X says).

    Accepts (N, C, H, W); (N, H, W) (one channel); and flat rows (N, C·H·W) when input_shape is known.
    A channels-last (N, H, W, C) array is refused with the transpose that fixes it."""
    X = np.asarray(X)
    want = None if input_shape is None else tuple(int(v) for v in input_shape)
    if X.ndim == 2:
        if want is not None and X.shape[1] == math.prod(want):
            return X.reshape(len(X), *want)
        side = math.isqrt(X.shape[1])
        hint = (f"; square one-channel images? reshape with {name}.reshape(len({name}), 1, {side}, {side})"
                if side * side == X.shape[1] else "")
        raise InputError(f"{source}: {name} is (samples, features) {X.shape} but the model takes images "
                         f"(samples, channels, height, width){'' if want is None else f' of {want}'}{hint}")
    if X.ndim == 3:
        X = X[:, None, :, :]
    if X.ndim != 4:
        raise InputError(f"{source}: {name} has shape {X.shape}; a convolutional model takes images (samples, height, "
                         f"width) or (samples, channels, height, width)")
    if want is not None and tuple(X.shape[1:]) != want:
        hint = ""
        if tuple(X.shape[1:]) == (want[1], want[2], want[0]):
            hint = f"; it looks channels-last (NHWC): transpose it with {name}.transpose(0, 3, 1, 2)"
        raise InputError(f"{source}: {name} holds images of shape {tuple(X.shape[1:])} but the model takes "
                         f"(channels, height, width) = {want}{hint}")
    if want is None and X.shape[3] in (1, 3, 4) and X.shape[1] not in (1, 3, 4):
        raise InputError(f"{source}: {name} has shape {X.shape}, which looks channels-last (NHWC); the model "
                         f"takes channels first (NCHW): transpose it with {name}.transpose(0, 3, 1, 2)")
    return X
