"""Data augmentation as layers: RandomFlip (horizontal flip) and RandomCrop (zero padding, then a random crop
back to the input's size), per sample, on NCHW images, active only while training.

Written once with the Array API, so the augmentation runs where the model runs (on the GPU with CuPy or torch),
inside a compiled step (jax.jit, torch.compile) too. Their randomness is Dropout's: a layer declares the U[0, 1)
draws it needs (`noise_shape(batch)`: (batch, 1) for the flip, (batch, 2) for the crop's two offsets), the model
draws them from its seeded host RNG (`Network.draw_noise`, `model.state.rng`, saved in checkpoints) and passes
them as `noise=`. The host stream advances one draw per step, so the augmentation of a batch is a function of
(seed, epoch, batch index): the same seed gives the same augmented batches on every backend, eager or compiled,
and a resumed run continues it exactly. A data-parallel step draws the global batch's noise and each rank takes
its rows, as for Dropout.

Per-sample offsets without a loop over the batch: the crop is a shift of each image by (dy, dx) in
[-padding, padding] with zeros shifted in, i.e. a gather, `take` on the flattened array at indices built from
the offsets by broadcasting (`_shift`). Its adjoint is the shift back (every kept pixel goes to one place), so
backward is the same gather with the offsets negated; the flip's backward is the flip. Both move values and
never compute with them, so the augmented batch is bit for bit the same on every backend.

When not training (evaluate, predict, ONNX export) both are the identity.
"""
from __future__ import annotations

import math

import array_api_compat

from ..checks import Interval, check
from ..errors import InputError
from ..namespace import namespace
from ..registry import register
from ._patches import pair, size_arg
from .base import Layer

PROBABILITY = Interval(float, 0, 1)  # [0, 1]


def _need_noise(owner: str):
    return InputError(f"{owner} needs its U[0, 1) draws while training (noise=); the model draws them: call "
                      f"model.train_step or model.value_and_grads(..., noise=model.draw_noise(batch))")


def _check_images(owner: str, input_shape) -> tuple:
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise InputError(f"{owner} takes images (channels, height, width), got input of shape {shape}; put it "
                         f"first in an image model (input_shape=(1, 28, 28)) or after a layer giving NCHW output")
    return shape


def index_dtype(xp, shape: tuple):
    """int32 where every flat index of an array of `shape` fits (JAX without x64 has no int64), else int64."""
    return xp.int32 if math.prod(shape) < 2 ** 31 else xp.int64


def _shift(x, sy, sx):
    """y[n, c, i, j] = x[n, c, i + sy[n], j + sx[n]], 0 where that falls outside the image.

    x: (N, C, H, W); sy, sx: (N,) integer arrays of `index_dtype(xp, x.shape)` on x's device. A gather on the
    flattened x, its (N, C, H, W) indices from broadcast index arithmetic, no loop over the batch."""
    xp = namespace(x)
    n, c, h, w = x.shape
    device, itype = array_api_compat.device(x), sy.dtype
    rows = xp.arange(h, dtype=itype, device=device)[None, :] + sy[:, None]   # (N, H): source rows
    cols = xp.arange(w, dtype=itype, device=device)[None, :] + sx[:, None]   # (N, W): source columns
    valid = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    rows, cols = xp.clip(rows, 0, h - 1), xp.clip(cols, 0, w - 1)
    base = xp.reshape(xp.arange(n * c, dtype=itype, device=device) * (h * w), (n, c, 1, 1))
    index = base + (rows * w)[:, None, :, None] + cols[:, None, None, :]       # (N, C, H, W)
    taken = xp.take(xp.reshape(x, (-1,)), xp.reshape(index, (-1,)))
    zero = xp.zeros((), dtype=x.dtype, device=device)
    return xp.where(valid, xp.reshape(taken, (n, c, h, w)), zero)


@register("RandomFlip.v1", aliases=("random_flip",))
class RandomFlip(Layer):
    """Flip each image left-right with probability p while training (torchvision's RandomHorizontalFlip, Keras'
    RandomFlip("horizontal")); the identity otherwise.

    Input and output (batch, C, H, W). noise: (batch, 1) U[0, 1) draws; sample n is flipped where noise[n] < p.
    backward(dy) flips dy as the input was flipped."""

    def __init__(self, p: float = 0.5):
        check("p", p, PROBABILITY, hint="the probability of flipping an image", owner="RandomFlip")
        self.p = float(p)

    @classmethod
    def examples(cls):
        return [({"p": 0.5}, (2, 3, 4)), ({"p": 1.0}, (1, 4, 5))]

    def build(self, input_shape):
        self.input_shape = self.output_shape = _check_images("RandomFlip", input_shape)
        return self.output_shape

    def noise_shape(self, batch: int):
        if self.p == 0.0:
            return None
        self._require_built()
        return (batch, 1)

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        if not training or self.p == 0.0:
            return x, lambda dy: (dy, {})
        if noise is None:
            raise _need_noise("RandomFlip")
        xp = namespace(x)
        flip = xp.reshape(noise < self.p, (-1, 1, 1, 1))                            # (N, 1, 1, 1)

        def apply(a):
            return xp.where(flip, xp.flip(a, axis=-1), a)

        return apply(x), lambda dy: (apply(dy) if need_dx and dy is not None else None, {})

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


@register("RandomCrop.v1", aliases=("random_crop",))
class RandomCrop(Layer):
    """Zero-pad each image by `padding` on every side, then crop it back to its H x W at a random offset, per
    sample, while training (torchvision's RandomCrop(size, padding=4), the CIFAR / Fashion-MNIST recipe); the
    identity otherwise.

    padding: an int, or a pair (height, width), each >= 1 and smaller than the image's side.
    Input and output (batch, C, H, W). noise: (batch, 2) U[0, 1) draws; the crop's top-left corner in the padded
    image is floor(u * (2 * padding + 1)) along each axis, so each of the 2p + 1 offsets is equally likely.
    backward(dy) shifts dy back (the crop's adjoint: cropped-away pixels get 0)."""

    def __init__(self, padding=4):
        self.padding = size_arg(padding, "padding", "RandomCrop")

    @classmethod
    def examples(cls):
        return [({"padding": 2}, (2, 5, 6)), ({"padding": [1, 3]}, (1, 4, 5))]

    def build(self, input_shape):
        shape = _check_images("RandomCrop", input_shape)
        ph, pw = pair(self.padding)
        if ph >= shape[1] or pw >= shape[2]:
            raise InputError(f"RandomCrop(padding={self.padding!r}) on {shape[1]}x{shape[2]} images: a crop could "
                             f"hold no pixel of the image; give a padding smaller than the image's side (4 is usual)")
        self.input_shape = self.output_shape = shape
        return self.output_shape

    def noise_shape(self, batch: int):
        self._require_built()
        return (batch, 2)

    def offsets(self, noise, itype):
        """(sy, sx): each sample's shift, integers in [-padding, padding] ((batch,) arrays of dtype `itype` on the
        noise's device) from its (batch, 2) U[0, 1) draws."""
        xp = namespace(noise)
        out = []
        for axis, p in enumerate(pair(self.padding)):
            k = xp.astype(xp.floor(noise[:, axis] * (2 * p + 1)), itype)
            out.append(xp.clip(k, 0, 2 * p) - p)  # a float32 draw just under 1 may round up to 1.0
        return tuple(out)

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        if not training:
            return x, lambda dy: (dy, {})
        if noise is None:
            raise _need_noise("RandomCrop")
        sy, sx = self.offsets(noise, index_dtype(namespace(x), tuple(x.shape)))
        y = _shift(x, sy, sx)
        return y, lambda dy: (_shift(dy, -sy, -sx) if need_dx and dy is not None else None, {})

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding!r})"
