"""Attention and scatter-add written with the array API only: the reference (and fallback) of the backends'
`attention` and `scatter_add_rows` kernels (`xpnet.backend.Kernels`), which the sequence layers call (Embedding, MultiHeadAttention).

Each function takes `kernels=` as the layers' forward does: the backend's Kernels object (a model passes
`bk.kernels`), whose kernel of the same name runs instead when the backend has it; None or a missing kernel runs
the code here, which defines what a kernel must compute (tests/test_attention_kernels.py holds them to it).
"""
from __future__ import annotations

import math

from array_api_compat import device

from ..errors import InputError
from ..namespace import namespace
from ..precision import narrow_to, widen


def attention(q, k, v, causal: bool = True, scale: float | None = None, kernels=None, weights_mask=None):
    """Scaled-dot-product attention, softmax(q kᵀ · scale + mask) v, with its backward.

    q (batch, heads, Tq, D), k (batch, heads, Tk, D), v (batch, heads, Tk, Dv), one floating dtype;
    scale: 1/sqrt(D) when None. causal: query i attends to keys 0..i (the mask `tril(ones((Tq, Tk)))`,
    top-left aligned as torch's `is_causal` and `jax.nn.dot_product_attention`'s); every row keeps key 0, so a
    fully masked row cannot occur. Returns (out (batch, heads, Tq, Dv), backward); backward(dout) -> (dq, dk, dv)
    of q's, k's and v's shapes. Pure: nothing is stored but the closure's arrays.

    Numerically safe softmax: the row maximum is subtracted before exp (finite: the row's unmasked scores
    include key 0), masked scores are -inf, so their exp is exactly 0 and they get no gradient.

    weights_mask: None, or an array broadcasting against the weights (batch, heads, Tq, Tk) that multiplies them
    after the softmax (dropout on the attention weights: the keep mask scaled by 1/keep, MultiHeadAttention's);
    the native kernels take none, so the code here runs whenever it is given.
    """
    _check_attention(q, k, v, scale)
    if weights_mask is None and kernels is not None and getattr(kernels, "attention", None) is not None:
        return kernels.attention(q, k, v, causal, scale)
    xp = namespace(q)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    kt = xp.permute_dims(k, (0, 1, 3, 2))
    s = widen(xp, xp.matmul(q, kt)) * scale  # (B, H, Tq, Tk); the softmax is a float32 island (xpnet.precision)
    if causal:
        keep = xp.tril(xp.ones((q.shape[2], k.shape[2]), dtype=xp.bool, device=device(q)))
        s = xp.where(keep, s, xp.full_like(s, -math.inf))
    e = xp.exp(s - xp.max(s, axis=-1, keepdims=True))
    p = e / xp.sum(e, axis=-1, keepdims=True)
    pm = p if weights_mask is None else p * weights_mask
    pm = narrow_to(xp, pm, v.dtype)
    out = xp.matmul(pm, v)

    def backward(dout):
        dv = xp.matmul(xp.permute_dims(pm, (0, 1, 3, 2)), dout)
        dp = widen(xp, xp.matmul(dout, xp.permute_dims(v, (0, 1, 3, 2))))
        if weights_mask is not None:
            dp = dp * weights_mask
        ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True)) * scale  # softmax's Jacobian; masked p are 0
        ds = narrow_to(xp, ds, q.dtype)
        return xp.matmul(ds, k), xp.matmul(xp.permute_dims(ds, (0, 1, 3, 2)), q), dv

    return out, backward


def _check_attention(q, k, v, scale):
    shapes = [tuple(a.shape) for a in (q, k, v)]
    if any(len(s) != 4 for s in shapes):
        raise InputError(f"attention takes q, k, v of shape (batch, heads, time, head_dim) but got {shapes}; "
                         f"reshape them to 4-D")
    (b, h, _, d), (bk, hk, tk, dk), (bv, hv, tv, _) = shapes
    if (b, h, d) != (bk, hk, dk) or (b, h, tk) != (bv, hv, tv):
        raise InputError(f"attention needs q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) but got {shapes}; "
                         f"give k the same batch, heads and head_dim as q, and v the same time as k")
    if scale is not None and not scale > 0:
        raise InputError(f"attention's scale must be a positive number or None (1/sqrt(head_dim)), not {scale!r}")


def scatter_add_rows(indices, values, rows: int, kernels=None):
    """out[r] = the sum of values[i] over i with indices[i] == r: the array API's missing scatter-add.

    indices (n,) integers in [0, rows), repeats allowed; values (n, d) floating; returns (rows, d) of values'
    dtype (rows that no index names are 0). Indices out of range are not checked here (that needs a sync with
    the device and cannot run under jax.jit): the reference drops them, torch's kernel raises, JAX's drops them;
    the caller (the embedding) validates its tokens.

    Reference form: a one-hot matrix product, onehot (rows, n) @ values, where onehot[r, i] = (indices[i] == r).
    Chosen over a sort + cumsum form because (a) it is exact up to summation order: each output is a plain sum of
    its own values (the other terms are exact zeros), where cumsum differences subtract large running totals and
    lose the small rows' digits to cancellation; (b) it is one GEMM, the fastest operation every library has, and
    needs no argsort, no in-place update and no data-dependent shapes (so it traces under jax.jit and runs on
    array-api-strict); (c) its cost, rows·n·d multiply-adds and a (rows, n) mask, is what a Dense layer on one-hot
    tokens would spend. The mask is built for at most `_CHUNK` elements at a time (blocks of indices), so memory
    stays bounded for a large vocabulary; the native kernels (torch `index_add`, JAX `.at[].add`) cost n·d.
    """
    xp = namespace(values)
    if len(indices.shape) != 1 or len(values.shape) != 2 or indices.shape[0] != values.shape[0]:
        raise InputError(f"scatter_add_rows takes indices (n,) and values (n, d) but got {tuple(indices.shape)} and "
                         f"{tuple(values.shape)}; flatten the indices and reshape the values to (n, d)")
    if not xp.isdtype(indices.dtype, "integral"):
        raise InputError(f"scatter_add_rows takes integer indices but got {indices.dtype}; cast them to int64")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InputError(f"scatter_add_rows' rows must be a positive int, not {rows!r}")
    dtype = values.dtype  # a float32 island (xpnet.precision): 16-bit rows summed in float32, given back in dtype
    values = widen(xp, values)
    if kernels is not None and getattr(kernels, "scatter_add_rows", None) is not None:
        return narrow_to(xp, kernels.scatter_add_rows(indices, values, rows), dtype)
    n = indices.shape[0]
    targets = xp.reshape(xp.arange(rows, dtype=indices.dtype, device=device(values)), (rows, 1))
    block = max(1, _CHUNK // rows)
    out = None
    for start in range(0, n, block):
        stop = min(n, start + block)
        onehot = xp.astype(xp.reshape(indices[start:stop], (1, stop - start)) == targets, values.dtype)
        part = xp.matmul(onehot, values[start:stop, :])
        out = part if out is None else out + part
    if out is None:  # n == 0
        out = xp.zeros((rows, values.shape[1]), dtype=values.dtype, device=device(values))
    return narrow_to(xp, out, dtype)


#: the most elements of the one-hot mask scatter_add_rows builds at once (2**24: 128 MiB in float64)
_CHUNK = 1 << 24


def embedding(weight, indices, kernels=None):
    """An embedding lookup and its weight gradient: out = weight[indices], backward(dout) -> dweight.

    weight (vocab, d) floating; indices integers of any shape S in [0, vocab); out S + (d,). backward(dout of
    shape S + (d,)) -> dweight (vocab, d): scatter_add_rows of dout's rows into their tokens' rows (a token seen
    twice gets both gradients), the backend's kernel when `kernels` has one. The indices get no gradient.
    """
    xp = namespace(weight)
    if len(weight.shape) != 2:
        raise InputError(f"embedding takes a weight of shape (vocab, dim) but got {tuple(weight.shape)}")
    vocab, d = weight.shape
    shape = tuple(indices.shape)
    flat = xp.reshape(indices, (-1,))
    out = xp.reshape(xp.take(weight, flat, axis=0), (*shape, d))

    def backward(dout):
        return scatter_add_rows(flat, xp.reshape(dout, (-1, d)), vocab, kernels=kernels)

    return out, backward
