"""Sliding windows from standard array operations only (the Array API has no convolution and no pad):
zero padding, the k·k window offsets as strided slices, and their adjoint, which adds per-offset
contributions back into an image (col2im).

The functions work on any 4-D array whose two spatial axes are `axes` (height, width), by default (2, 3):
pooling takes NCHW images as they come; convolution passes (C, H, W, N) views, axes (1, 2), because with the
batch innermost every window slice is made of runs of OW·N adjacent values, and NumPy's elementwise loops pay
per run (conv.py says more).

Padding and col2im write into a zero buffer (slice assignment, `out[..., i::s, j::s] += part`) where arrays
are writeable (NumPy, PyTorch, CuPy, array-api-strict); otherwise (JAX) padding concatenates zeros and col2im
places the parts by interleaving them with zeros and concatenating zeros, and sums them. Both forms add the
same terms, each ordered for its executor (see col2im), so they agree to rounding (tests/test_conv.py checks
both against a float64 sum). Windows that tile the image (stride = kernel) share no element: there each part
is placed, by slice assignment or by stacking and interleaving, and the two forms give the same bits.
"""
from __future__ import annotations

import array_api_compat

from ..errors import InputError
from ..checks import Interval, check


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


def _index(ndim: int, axes: tuple[int, int], rows, cols) -> tuple:
    """The index tuple taking `rows` along axes[0], `cols` along axes[1] and everything elsewhere."""
    index = [slice(None)] * ndim
    index[axes[0]], index[axes[1]] = rows, cols
    return tuple(index)


def _zeros(xp, shape, like):
    return xp.zeros(tuple(shape), dtype=like.dtype, device=array_api_compat.device(like))


def pad2d(xp, x, pads: tuple[int, int, int, int], axes: tuple[int, int] = (2, 3), copy: bool = False):
    """x with zeros added along its spatial axes: (top, bottom) rows on axes[0], (left, right) columns on axes[1].

    Writeable backends: one zero buffer in C order and a slice assignment. copy=True makes that buffer even
    without padding, so the result is C-contiguous whatever x's memory order (the window slices of im2col
    then read long runs). Otherwise (JAX) zeros are concatenated, and x itself comes back unpadded."""
    top, bottom, left, right = pads
    ah, aw = axes
    if not any(pads) and not copy:
        return x
    shape = list(x.shape)
    h, w = shape[ah], shape[aw]
    shape[ah], shape[aw] = h + top + bottom, w + left + right
    out = _zeros(xp, shape, x)
    if array_api_compat.is_writeable_array(out):
        out[_index(x.ndim, axes, slice(top, top + h), slice(left, left + w))] = x
        return out
    for axis, before, after in ((ah, top, bottom), (aw, left, right)):
        if before or after:
            edge = list(x.shape)
            parts = []
            if before:
                edge[axis] = before
                parts.append(_zeros(xp, edge, x))
            parts.append(x)
            if after:
                edge[axis] = after
                parts.append(_zeros(xp, edge, x))
            x = xp.concat(parts, axis=axis)
    return x


def windows(x, kernel: tuple[int, int], stride: tuple[int, int], out: tuple[int, int],
            axes: tuple[int, int] = (2, 3)) -> list:
    """The kh·kw strided views x[..., i::sh, j::sw] (on axes), each with OH x OW windows, offsets row-major."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out
    return [x[_index(x.ndim, axes, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))]
            for i in range(kh) for j in range(kw)]


def _dilate(xp, part, axis: int, stride: int):
    """Insert stride - 1 zeros between elements along `axis`, no trailing zeros."""
    if stride == 1:
        return part
    zeros = xp.zeros_like(part)
    stacked = xp.stack([part] + [zeros] * (stride - 1), axis=axis + 1)
    shape = list(part.shape)
    n = shape[axis]
    shape[axis] = n * stride
    full = xp.reshape(stacked, tuple(shape))
    index = [slice(None)] * part.ndim
    index[axis] = slice(0, (n - 1) * stride + 1)
    return full[tuple(index)]


def col2im(xp, parts: list, shape: tuple, kernel: tuple[int, int], stride: tuple[int, int], inplace=None, like=None,
           axes: tuple[int, int] = (2, 3)):
    """The adjoint of `windows`: an array of `shape`, zero but for each parts[i·kw + j] (shaped as a window view)
    added at rows i, i + sh, ... and columns j, j + sw, ... of the spatial axes.

    In place (writeable arrays), the kh·kw parts are added one by one in offset order: each output element is
    0 + part_00 + part_01 + ... . The functional form (JAX) sums in two stages: for each row offset i the parts
    of that row are placed at their column offsets and summed into a band of OH rows, then the kh bands are
    placed at their row offsets and summed. Each form is the fast one for its executor, measured:
    - under jax.jit, adding the kh·kw padded parts one by one made XLA materialize every padded part and sum
      them in one loop with the following layers' transposes; the bands took LeNet-5's value_and_grads from
      27.4 to 8.9 ms;
    - in place on NumPy, the bands cost a zeroed buffer and one more add per row offset: fashion-cnn's conv2
      col2im took 13.4 ms against 5.2 ms one by one (docs/results.md).
    So the two forms agree to rounding, not bit for bit.

    When the windows tile the image (stride = kernel, the pooling default), no element gets more than one part,
    so the parts are placed rather than added (no read of the zero image, and a part's -0.0 stays -0.0 in both
    forms, which give the same bits). like: an array of `shape` whose memory order the output takes
    (zeros_like; NumPy, PyTorch and CuPy keep a permuted input's strides), so an activation in Conv2D's
    (C, H, W, N) memory gets its gradient in that memory. inplace: None chooses by the output buffer
    (writeable: slice assignments; else the functional form); True/False force one (the tests compare them)."""
    (kh, kw), (sh, sw) = kernel, stride
    ah, aw = axes
    first = parts[0]
    ndim = first.ndim
    oh, ow = first.shape[ah], first.shape[aw]
    h, w = shape[ah], shape[aw]
    tiles = (sh, sw) == (kh, kw)
    if inplace is None or inplace:
        out = xp.zeros_like(like) if like is not None else _zeros(xp, shape, first)
        if inplace is None:
            inplace = array_api_compat.is_writeable_array(out)
    if inplace:
        for k, part in enumerate(parts):
            i, j = divmod(k, kw)
            where = _index(ndim, axes, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
            if tiles:
                out[where] = part
            else:
                out[where] += part
        return out
    if tiles:
        # (kh, kw, *part) -> the part's axes with kh after the row axis and kw after the column axis
        stacked = xp.reshape(xp.stack(parts, axis=0), (kh, kw, *first.shape))
        order = []
        for t in range(ndim):
            order.append(t + 2)
            if t in axes:
                order.append(0 if t == ah else 1)
        placed_shape = list(first.shape)
        placed_shape[ah], placed_shape[aw] = oh * kh, ow * kw
        placed = xp.reshape(xp.permute_dims(stacked, tuple(order)), tuple(placed_shape))
        return pad2d(xp, placed, (0, h - oh * kh, 0, w - ow * kw), axes)
    total = None
    for i in range(kh):
        band = None
        for j in range(kw):
            placed = _dilate(xp, parts[i * kw + j], aw, sw)
            placed = pad2d(xp, placed, (0, 0, j, w - j - placed.shape[aw]), axes)
            band = placed if band is None else band + placed
        band = _dilate(xp, band, ah, sh)
        band = pad2d(xp, band, (i, h - i - band.shape[ah], 0, 0), axes)
        total = band if total is None else total + band
    # + 0, as the in-place form starts from +0.0: a -0.0 total (every term -0.0) is +0.0 in both forms
    return total + xp.zeros_like(total)
