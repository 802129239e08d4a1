"""Conv2D on NCHW input, from standard array operations: im2col by strided slicing, one matrix product.

Layout. The input (N, C, H, W) is viewed as (C, H, W, N) (a permutation view, no copy), copied into a zero
buffer of that order with the padding, and its kh·kw window offsets x[:, i::s, j::s, :] are stacked into the
columns (C·kh·kw, OH·OW·N). Then everything is one large GEMM per direction:

    forward        y = W (O, C·kh·kw) @ cols          -> (O, OH, OW, N), returned as the view (N, O, OH, OW)
    weight grad    dW = dy (O, OH·OW·N) @ cols.T
    input grad     dcols = W.T @ dy, added back to (C, H, W, N) by col2im (_patches.col2im), viewed as NCHW;
                   with stride 1 and "same" padding, Wflip (C, O·kh·kw) @ im2col(dy) instead (_input_grad)

Why the batch innermost: a window slice of (C, H, W, N) memory is made of runs of OW·N adjacent values, where
in (C, N, H, W) memory it is runs of OW (10 values for LeNet-5's second convolution). NumPy's elementwise loops
pay a fixed cost per run, so col2im's slice-adds there took 1.70 ms against 0.41 ms (docs/results.md).
The output is an NCHW *view* of (O, OH, OW, N) memory; elementwise layers and pooling keep that memory order,
so the next Conv2D's (C, H, W, N) view of its input is contiguous and dy reshapes to (O, OH·OW·N) without a
copy.

Native kernels: where the backend has its own convolution (`Backend.kernels`: torch, JAX), `forward(...,
kernels=)` runs that instead, and this file's im2col is the reference it is checked against (docs/cnn.md).

Memory: the columns take C·kh·kw·N·OH·OW values. When they would exceed the layer's im2col limit
(IM2COL_LIMIT bytes by default, 256 MiB; `set_im2col_limit` or Conv2D(im2col_limit=)), the minibatch is
processed in chunks of samples whose columns fit: the forward keeps no columns and the backward builds them
again chunk by chunk, summing the weight gradient over chunks (a different summation order only).
"""
from __future__ import annotations

import math
import os

from .. import init as initializers
from ..errors import InputError
from ..groups import BIAS, WEIGHT
from ..namespace import namespace
from ..checks import Interval, check
from ..registry import register
from ._patches import col2im, out_size, pad2d, pair, size_arg, windows
from .base import Layer, weight_and_bias

IM2COL_LIMIT = int(float(os.environ.get("XPNET_IM2COL_MIB", "256")) * 2 ** 20)


def set_im2col_limit(nbytes: int) -> None:
    """The default bound, in bytes, on one Conv2D's im2col buffer (Conv2D(im2col_limit=) overrides it per layer;
    the environment variable XPNET_IM2COL_MIB sets it at import)."""
    global IM2COL_LIMIT
    check("nbytes", nbytes, Interval(int, 1, None), owner="set_im2col_limit")
    IM2COL_LIMIT = int(nbytes)


def conv_padding(padding, kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for padding = int, (h, w) or "same" (stride 1: PyTorch's split, the extra
    row/column of an even kernel at the bottom/right)."""
    if padding == "same":
        kh, kw = kernel
        return (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2
    ph, pw = pair(padding)
    return ph, ph, pw, pw


@register("Conv2D.v1", aliases=("conv2d",))
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as PyTorch's conv2d) on (batch, in_channels, H, W) input.

    weight: (out_channels, in_channels, kh, kw); bias: (out_channels,). padding: zeros on each side (an int,
    a pair (h, w), or "same" with stride 1). Output (batch, out_channels, OH, OW) with
    OH = (H + 2·ph - kh) // sh + 1."""

    penalized = ("weight",)

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=0, bias: bool = True,
                 init: str = "he_uniform", im2col_limit: int | None = None):
        check("in_channels", in_channels, Interval(int, 1, None), owner="Conv2D")
        check("out_channels", out_channels, Interval(int, 1, None), owner="Conv2D")
        self.kernel_size = size_arg(kernel_size, "kernel_size", "Conv2D")
        self.stride = size_arg(stride, "stride", "Conv2D")
        if padding == "same":
            if pair(self.stride) != (1, 1):
                raise InputError(f"Conv2D(padding='same') needs stride 1, got stride={stride!r}; give the padding "
                                 f"as a number instead")
            self.padding = "same"
        else:
            self.padding = size_arg(padding, "padding", "Conv2D", low=0, alternative="'same'")
        if im2col_limit is not None:
            check("im2col_limit", im2col_limit, Interval(int, 1, None), hint="bytes", owner="Conv2D")
        initializers.get(init)
        self.in_channels, self.out_channels, self.use_bias, self.init = in_channels, out_channels, bias, init
        self.im2col_limit = im2col_limit
        self.kernel, self.strides = pair(self.kernel_size), pair(self.stride)
        self.pads = conv_padding(self.padding, self.kernel)

    @classmethod
    def examples(cls):
        return [({"in_channels": 2, "out_channels": 3, "kernel_size": 3}, (2, 5, 6)),
                ({"in_channels": 1, "out_channels": 2, "kernel_size": [2, 3], "stride": [2, 1], "padding": [1, 2]},
                 (1, 5, 4)),
                ({"in_channels": 2, "out_channels": 2, "kernel_size": 2, "padding": "same", "bias": False},
                 (2, 3, 4))]

    def get_config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": self.kernel_size,
                "stride": self.stride, "padding": self.padding, "bias": self.use_bias, "init": self.init,
                "im2col_limit": self.im2col_limit}

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise InputError(f"Conv2D takes (batch, channels, height, width) input but gets (batch, "
                             f"{', '.join(map(str, input_shape))}); give images as NCHW, e.g. "
                             f"input_shape=(1, 28, 28)")
        c, h, w = input_shape
        if c != self.in_channels:
            hint = " (channels last? the layers take NCHW)" if w == self.in_channels else ""
            raise InputError(f"Conv2D expects {self.in_channels} input channels but gets {c} (input "
                             f"{input_shape}){hint}; make in_channels agree with the previous layer")
        top, bottom, left, right = self.pads
        oh = out_size(h, self.kernel[0], self.strides[0], top + bottom)
        ow = out_size(w, self.kernel[1], self.strides[1], left + right)
        if oh < 1 or ow < 1:
            raise InputError(f"Conv2D's kernel {self.kernel} does not fit the padded input {(h + top + bottom, w + left + right)}; "
                             f"pad more or use a smaller kernel")
        self.input_shape, self.output_shape = input_shape, (self.out_channels, oh, ow)
        return self.output_shape

    def param_shapes(self):
        shapes = {"weight": (self.out_channels, self.in_channels, *self.kernel)}
        if self.use_bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def param_kinds(self):
        return {"weight": WEIGHT, "bias": BIAS} if self.use_bias else {"weight": WEIGHT}

    def init_params(self, rng, asarray):
        self._require_built()
        return weight_and_bias(self.init, rng, (self.out_channels, self.in_channels, *self.kernel), self.use_bias,
                               asarray)

    # computation -------------------------------------------------------------------------------------
    _AXES = (1, 2)  # the spatial axes of the (C, H, W, N) view

    def _columns(self, xp, xc, out):
        """xc: (C, H, W, N) -> columns (C·kh·kw, OH·OW·N)."""
        c, n = xc.shape[0], xc.shape[3]
        xc = pad2d(xp, xc, self.pads, self._AXES, copy=True)
        cols = xp.stack(windows(xc, self.kernel, self.strides, out, self._AXES), axis=1)  # (C, kh·kw, OH, OW, N)
        return xp.reshape(cols, (c * self.kernel[0] * self.kernel[1], out[0] * out[1] * n))

    def _same_size(self) -> bool:
        """Stride 1 and an output the input's size ("same" padding): there the input gradient is the
        convolution of dy with the flipped kernel, on im2col columns of dy (`_input_grad`)."""
        return self.strides == (1, 1) and tuple(self.output_shape[1:]) == tuple(self.input_shape[1:])

    def _input_grad(self, xp, w2, dy2, n, out):
        """dx (C, H, W, N) from dy2 (O, OH·OW·N). Stride 1 with "same" padding: the correlation of dy, padded
        by (k - 1 - padding), with the kernel flipped and its channel axes swapped: one im2col and one GEMM
        (C, O·kh·kw) @ (O·kh·kw, H·W·N), the same products as below without col2im's kh·kw read-modify-writes
        of dx (fashion-sized 3x3 layers: 6.7 against 8.7 ms). Otherwise dcols = W.T @ dy, added back into
        (C, H, W, N) by col2im (padding cut off)."""
        c, (kh, kw) = self.in_channels, self.kernel
        if self._same_size():
            o = self.out_channels
            top, bottom, left, right = self.pads
            wf = xp.reshape(xp.permute_dims(xp.flip(xp.reshape(w2, (o, c, kh, kw)), axis=(2, 3)), (1, 0, 2, 3)),
                            (c, o * kh * kw))
            dyc = pad2d(xp, xp.reshape(dy2, (o, out[0], out[1], n)),
                        (kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right), self._AXES, copy=True)
            cols = xp.stack(windows(dyc, self.kernel, (1, 1), out, self._AXES), axis=1)  # (O, kh·kw, H, W, N)
            return xp.reshape(wf @ xp.reshape(cols, (o * kh * kw, out[0] * out[1] * n)), (c, out[0], out[1], n))
        dcols = xp.reshape(w2.T @ dy2, (c, kh * kw, out[0], out[1], n))
        h, w = self.input_shape[1:]
        top, bottom, left, right = self.pads
        dxc = col2im(xp, [dcols[:, k, ...] for k in range(kh * kw)], (c, h + top + bottom, w + left + right, n),
                     self.kernel, self.strides, axes=self._AXES)
        if any(self.pads):
            dxc = dxc[:, top:top + h, left:left + w, :]
        return dxc

    def scratch_per_sample(self) -> int:
        """The forward's im2col columns' values per sample: C·kh·kw·OH·OW."""
        self._require_built()
        return self.in_channels * self.kernel[0] * self.kernel[1] * math.prod(self.output_shape[1:])

    def chunk_size(self, n: int, itemsize: int) -> int:
        """Samples per im2col chunk: all n when their columns fit the limit, else as many as do (at least 1). The
        columns of a training step: the forward's, or the backward's of dy (O·kh·kw·H·W values per sample) where
        those are larger (`_input_grad`)."""
        limit = IM2COL_LIMIT if self.im2col_limit is None else self.im2col_limit
        values = self.scratch_per_sample()
        if self._same_size() and self.out_channels > self.in_channels:
            values = values // self.in_channels * self.out_channels
        return max(1, min(n, limit // (values * itemsize)))

    kernel_names = ("conv2d",)

    def forward(self, params, x, training=False, need_dx=True, noise=None, kernels=None):
        """x (N, C, H, W) -> y (N, O, OH, OW) and backward(dy) -> (dx, {"weight": dW, "bias": db}). kernels: the
        backend's native kernels (`Backend.kernels`); with a conv2d among them it computes the layer, else the
        array-API code below, which is its definition (tests/test_kernels.py holds them together)."""
        native = None if kernels is None else kernels.conv2d
        if native is not None:
            return self._native_forward(native, params, x, need_dx)
        xp = namespace(x)
        w = params["weight"]
        o, n = self.out_channels, x.shape[0]
        out = self.output_shape[1:]
        w2 = xp.reshape(w, (o, -1))
        xc = xp.permute_dims(x, (1, 2, 3, 0))  # (C, H, W, N)
        step = self.chunk_size(n, _itemsize(x))
        bounds = [(s, min(s + step, n)) for s in range(0, n, step)]
        ys, cols = [], None
        for s, e in bounds:
            c = self._columns(xp, xc[..., s:e] if len(bounds) > 1 else xc, out)
            ys.append(xp.reshape(w2 @ c, (o, *out, e - s)))
            if len(bounds) == 1:
                cols = c  # kept for the backward only when the whole batch fits
        y = ys[0] if len(ys) == 1 else xp.concat(ys, axis=3)
        if self.use_bias:
            y = y + xp.reshape(params["bias"], (o, 1, 1, 1))
        y = xp.permute_dims(y, (3, 0, 1, 2))  # (N, O, OH, OW), a view of (O, OH, OW, N) memory

        def backward(dy):
            dyc = xp.permute_dims(dy, (1, 2, 3, 0))  # (O, OH, OW, N)
            grads, dxs, dw = {}, [], None
            for s, e in bounds:
                part = dyc[..., s:e] if len(bounds) > 1 else dyc
                dy2 = xp.reshape(part, (o, out[0] * out[1] * (e - s)))
                c = cols if cols is not None else self._columns(xp, xc[..., s:e], out)
                g = dy2 @ c.T
                dw = g if dw is None else dw + g
                if need_dx:
                    dxs.append(self._input_grad(xp, w2, dy2, e - s, out))
            grads["weight"] = xp.reshape(dw, tuple(w.shape))
            if self.use_bias:
                grads["bias"] = xp.sum(dyc, axis=(1, 2, 3))
            if not need_dx:
                return None, grads
            dxc = dxs[0] if len(dxs) == 1 else xp.concat(dxs, axis=3)
            return xp.permute_dims(dxc, (3, 0, 1, 2)), grads

        return y, backward

    def _native_forward(self, conv2d, params, x, need_dx):
        y, back = conv2d(x, params["weight"], params["bias"] if self.use_bias else None, self.strides, self.pads,
                         need_dx)

        def backward(dy):
            dx, dw, db = back(dy)
            return dx, ({"weight": dw, "bias": db} if self.use_bias else {"weight": dw})

        return y, backward

    def __repr__(self) -> str:
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r})")


def _itemsize(x) -> int:
    """Bytes per element of a floating-point array (from its dtype's finfo)."""
    return namespace(x).finfo(x.dtype).bits // 8
