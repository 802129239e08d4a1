"""Sliding windows from standard array operations only (the Array API has no convolution and no pad):
zero padding by concatenation, the k·k window offsets as strided slices, and their adjoint, which adds
per-offset contributions back into an image (col2im).

Every function here takes images as (A, B, H, W) and works on the last two axes only, so the same code
serves convolution (A, B = C, N: channels first, see conv.py) and pooling (A, B = N, C).

col2im adds in place (`out[..., i::s, j::s] += part`) where the output buffer is writeable (NumPy,
PyTorch, CuPy, array-api-strict); otherwise (JAX) it places each part in a zero image by concatenating
zeros and interleaving with zeros, and sums the placed parts in the same offset order. Either way every
output element is 0 + part_1 + part_2 + ... in offset order, so the two forms give the same bits
(tests/test_conv.py checks it on NumPy). Windows that tile the image (stride = kernel) share no element:
there each part is placed, by slice assignment or by stacking and interleaving, again the same bits.
"""
from __future__ import annotations

import array_api_compat

from ..errors import InputError
from ..params import Interval, check


def size_arg(v, what: str, owner: str, low: int = 1, alternative: str | None = None):
    """A window size, stride or padding: an int >= low or a pair (height, width) of them (JSON gives lists)
    -> the config's form, an int when both are equal."""
    extra = f" or {alternative}" if alternative else ""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise InputError(f"{owner}({what}={v!r}): give an int, a pair (height, width){extra}")
        for part in v:
            check(what, part, Interval(int, low, None), owner=owner)
        return int(v[0]) if v[0] == v[1] else [int(v[0]), int(v[1])]
    check(what, v, Interval(int, low, None), hint=f"or a pair (height, width){extra}", owner=owner)
    return int(v)


def pair(v) -> tuple[int, int]:
    """An int or a pair of ints -> (h, w)."""
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def out_size(size: int, kernel: int, stride: int, pad_total: int) -> int:
    """Windows along one axis: floor((size + padding - kernel) / stride) + 1."""
    return (size + pad_total - kernel) // stride + 1


def pad2d(xp, x, pads: tuple[int, int, int, int]):
    """x: (A, B, H, W) -> (A, B, H + top + bottom, W + left + right) with zeros, by concatenation."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    a, b, h, w = x.shape
    if top or bottom:
        parts = ([xp.zeros((a, b, top, w), dtype=x.dtype, device=array_api_compat.device(x))] if top else []) + [x] + \
                ([xp.zeros((a, b, bottom, w), dtype=x.dtype, device=array_api_compat.device(x))] if bottom else [])
        x = xp.concat(parts, axis=2)
        h = h + top + bottom
    if left or right:
        parts = ([xp.zeros((a, b, h, left), dtype=x.dtype, device=array_api_compat.device(x))] if left else []) + [x] + \
                ([xp.zeros((a, b, h, right), dtype=x.dtype, device=array_api_compat.device(x))] if right else [])
        x = xp.concat(parts, axis=3)
    return x


def windows(x, kernel: tuple[int, int], stride: tuple[int, int], out: tuple[int, int]) -> list:
    """The kh·kw strided views x[..., i::sh, j::sw] (each (A, B, OH, OW)), offsets in row-major order."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out
    return [x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] for i in range(kh) for j in range(kw)]


def _dilate(xp, part, axis: int, stride: int):
    """Insert stride - 1 zeros between elements along `axis` (2 or 3) of (A, B, H, W), no trailing zeros."""
    if stride == 1:
        return part
    zeros = xp.zeros_like(part)
    stacked = xp.stack([part] + [zeros] * (stride - 1), axis=axis + 1)
    shape = list(part.shape)
    n = shape[axis]
    shape[axis] = n * stride
    full = xp.reshape(stacked, tuple(shape))
    keep = (n - 1) * stride + 1
    return full[:, :, :keep, :] if axis == 2 else full[:, :, :, :keep]


def col2im(xp, parts: list, shape: tuple, kernel: tuple[int, int], stride: tuple[int, int], inplace=None, like=None):
    """The adjoint of `windows`: an image of `shape` (A, B, H, W), zero but for each parts[i·kw + j] (A, B, OH, OW)
    added at rows i, i + sh, ... and columns j, j + sw, ... .

    When the windows tile the image (stride = kernel, the pooling default), no element gets more than one part,
    so the parts are placed rather than added (no read of the zero image, and a part's -0.0 stays -0.0 in both
    forms). like: an array of `shape` whose memory order the output takes (zeros_like; NumPy, PyTorch and CuPy
    keep a permuted input's strides), so a channel-major activation gets a channel-major gradient.
    inplace: None chooses by the output buffer (writeable: slice assignments; else the functional form);
    True/False force one (the tests compare them)."""
    (kh, kw), (sh, sw) = kernel, stride
    a, b, h, w = shape
    oh, ow = parts[0].shape[2], parts[0].shape[3]
    tiles = (sh, sw) == (kh, kw)
    first = parts[0]
    if inplace is None or inplace:
        out = xp.zeros_like(like) if like is not None else \
            xp.zeros(shape, dtype=first.dtype, device=array_api_compat.device(first))
        if inplace is None:
            inplace = array_api_compat.is_writeable_array(out)
    if inplace:
        for k, part in enumerate(parts):
            i, j = divmod(k, kw)
            where = (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
            if tiles:
                out[where] = part
            else:
                out[where] += part
        return out
    if tiles:
        # (kh·kw, A, B, OH, OW) -> (A, B, OH, kh, OW, kw) -> (A, B, OH·kh, OW·kw), zero rows/columns left uncovered
        placed = xp.reshape(xp.stack(parts, axis=0), (kh, kw, a, b, oh, ow))
        placed = xp.reshape(xp.permute_dims(placed, (2, 3, 4, 0, 5, 1)), (a, b, oh * kh, ow * kw))
        return pad2d(xp, placed, (0, h - oh * kh, 0, w - ow * kw))
    total = None
    for k, part in enumerate(parts):
        i, j = divmod(k, kw)
        placed = _dilate(xp, _dilate(xp, part, 2, sh), 3, sw)
        ph, pw = placed.shape[2], placed.shape[3]
        placed = pad2d(xp, placed, (i, h - i - ph, j, w - j - pw))
        total = placed if total is None else total + placed
    # 0 + first part, as the in-place form computes it (turns a -0.0 into +0.0 in the same places)
    return total + xp.zeros_like(total)
