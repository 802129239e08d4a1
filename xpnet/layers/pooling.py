"""Pooling on NCHW input from strided slices: MaxPool2D, AvgPool2D, GlobalAvgPool2D.

A window's kh·kw offsets are the strided views x[:, :, i::s, j::s] (row-major order). Max-pooling takes their
elementwise maximum; its backward sends each output's gradient to the *first* offset (in that order) that
holds the maximum, so ties go to the first maximum on every backend (PyTorch's CPU kernel does the same).
The per-offset gradients go back into the image through col2im (in place where arrays are writeable).

Native kernels: where the backend has its own pooling (`Backend.kernels`: torch, JAX), `forward(..., kernels=)`
runs it, and this code is the reference it is checked against; both send a tie's gradient to the first maximum
(tests/test_kernels.py).
"""
from __future__ import annotations

import array_api_compat
from array_api_compat import device

from ..errors import InputError
from ..namespace import namespace
from ..registry import register
from ._patches import col2im, out_size, pair, size_arg, windows
from .base import Layer


def _image_shape(layer, input_shape) -> tuple:
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise InputError(f"{type(layer).__name__} takes (batch, channels, height, width) input but gets (batch, "
                         f"{', '.join(map(str, input_shape))}); give images as NCHW")
    return input_shape


class _Pool2D(Layer):
    def __init__(self, kernel_size=2, stride=None):
        owner = type(self).__name__
        self.kernel_size = size_arg(kernel_size, "kernel_size", owner)
        self.stride = None if stride is None else size_arg(stride, "stride", owner)
        self.kernel = pair(self.kernel_size)
        self.strides = self.kernel if stride is None else pair(self.stride)

    @classmethod
    def examples(cls):
        return [({"kernel_size": 2}, (2, 4, 6)), ({"kernel_size": [3, 2], "stride": [2, 1]}, (1, 7, 4)),
                ({"kernel_size": 2}, (1, 5, 5))]

    def get_config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def build(self, input_shape):
        c, h, w = _image_shape(self, input_shape)
        oh, ow = out_size(h, self.kernel[0], self.strides[0], 0), out_size(w, self.kernel[1], self.strides[1], 0)
        if oh < 1 or ow < 1:
            raise InputError(f"{type(self).__name__}'s window {self.kernel} is larger than its input {(h, w)}; "
                             f"use a smaller kernel_size")
        self.input_shape, self.output_shape = (c, h, w), (c, oh, ow)
        return self.output_shape

    def _native_forward(self, pool, x, need_dx):
        """The backend's own pooling kernel (forward(..., kernels=)): the same (y, backward) as the reference."""
        y, back = pool(x, self.kernel, self.strides, need_dx)
        return y, (lambda dy: (back(dy) if need_dx else None, {}))

    def _scatter(self, xp, parts, x):
        return col2im(xp, parts, tuple(x.shape), self.kernel, self.strides, like=x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kernel_size}, stride={self.stride})"


def _in_order_of(xp, y, dy):
    """dy in y's memory order (empty_like keeps a permuted array's strides on NumPy, PyTorch and CuPy), where
    arrays are writeable; dy itself otherwise. Pooling's output after a Conv2D is (C, H, W, N) memory, but a
    gradient coming back through Flatten or Dropout is in NCHW order, and NumPy's elementwise ops and slice
    assignments mixing the two orders made fashion-cnn's max-pool backward 1.6x slower than one copy into y's
    order and same-order ops after it (docs/results.md)."""
    out = xp.empty_like(y)
    if not array_api_compat.is_writeable_array(out):
        return dy
    out[...] = dy
    return out


@register("MaxPool2D.v1", aliases=("max_pool2d", "maxpool2d"))
class MaxPool2D(_Pool2D):
    """Maximum over kh·kw windows (stride: default the kernel size; no padding). Ties: the first maximum."""

    kernel_names = ("max_pool2d",)

    def forward(self, params, x, training=False, need_dx=True, noise=None, kernels=None):
        native = None if kernels is None else kernels.max_pool2d
        if native is not None:
            return self._native_forward(native, x, need_dx)
        xp = namespace(x)
        views = windows(x, self.kernel, self.strides, self.output_shape[1:])
        y = views[0]
        for v in views[1:]:
            y = xp.maximum(y, v)

        def backward(dy):
            if not need_dx:
                return None, {}
            dy = _in_order_of(xp, y, dy)
            # `left` is the gradient no earlier offset has taken: an offset holding the maximum takes all of it
            # (left * 1) and leaves 0 (left - left), the others take 0 and leave it whole, so each output's
            # gradient goes to its first maximum. Float masks, not where(): NumPy's and PyTorch's CPU where()
            # branch per element and are 5-18x slower on a mask this random (docs/results.md).
            parts, left = [], dy
            for k, v in enumerate(views):
                part = left * xp.astype(v == y, dy.dtype)
                parts.append(part)
                if k < len(views) - 1:
                    left = left - part
            return self._scatter(xp, parts, x), {}

        return y, backward


@register("AvgPool2D.v1", aliases=("avg_pool2d", "avgpool2d"))
class AvgPool2D(_Pool2D):
    """Mean over kh·kw windows (stride: default the kernel size; no padding)."""

    kernel_names = ("avg_pool2d",)

    def forward(self, params, x, training=False, need_dx=True, noise=None, kernels=None):
        native = None if kernels is None else kernels.avg_pool2d
        if native is not None:
            return self._native_forward(native, x, need_dx)
        xp = namespace(x)
        views = windows(x, self.kernel, self.strides, self.output_shape[1:])
        total = views[0]
        for v in views[1:]:
            total = total + v
        scale = 1.0 / (self.kernel[0] * self.kernel[1])
        y = total * scale

        def backward(dy):
            if not need_dx:
                return None, {}
            g = dy * scale
            return self._scatter(xp, [g] * len(views), x), {}

        return y, backward


@register("GlobalAvgPool2D.v1", aliases=("global_avg_pool2d",))
class GlobalAvgPool2D(Layer):
    """Mean over height and width: (batch, C, H, W) -> (batch, C)."""

    def __init__(self):
        pass

    @classmethod
    def examples(cls):
        return [({}, (3, 4, 5)), ({}, (2, 1, 1))]

    def build(self, input_shape):
        c, h, w = _image_shape(self, input_shape)
        self.input_shape, self.output_shape = (c, h, w), (c,)
        return self.output_shape

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        n, c, h, w = x.shape
        y = xp.mean(x, axis=(2, 3))

        def backward(dy):
            if not need_dx:
                return None, {}
            g = xp.reshape(dy * (1.0 / (h * w)), (n, c, 1, 1))
            return g * xp.ones((1, 1, h, w), dtype=dy.dtype, device=device(dy)), {}

        return y, backward
