"""The array namespace of an array: array-api-compat's `array_namespace`, cached per array type.

Layers and losses take `xp` from their input, so the same code runs on whatever array library the
model runs on (and, later, on tracers and ONNX graph arrays). `array_namespace` inspects its argument
on every call; the namespace depends only on the array's type, so one dict lookup per call suffices.
"""
from __future__ import annotations

import array_api_compat

from .backend import torch_compiling

_CACHE: dict = {}


def namespace(x):
    """The Array API namespace of array `x` (e.g. array_api_compat.numpy for a NumPy array). While torch.compile
    traces, array-api-compat is asked directly: dynamo would guard the compiled graph on the cache's size, so any
    array type seen later for the first time (anywhere in the process) would recompile every compiled step."""
    if torch_compiling():
        return array_api_compat.array_namespace(x)
    try:
        return _CACHE[type(x)]
    except KeyError:
        xp = _CACHE[type(x)] = array_api_compat.array_namespace(x)
        return xp
