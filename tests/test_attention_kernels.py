"""Attention and scatter-add (issue 37): the array-API reference (xpnet.layers.attention_ops) against a direct
float64 NumPy formula, PyTorch autograd and central differences; each backend's native kernel against the
reference (float64 1e-10, float32 1e-5), outputs and gradients, causal and not; scatter-add with repeated indices
against np.add.at, and as an embedding's weight gradient."""
import numpy as np
import pytest

import xpnet
from xpnet.layers.attention_ops import attention, embedding, scatter_add_rows

# (batch, heads, Tq, Tk, D, Dv): square and rectangular (top-left causal mask), a single step
SHAPES = [(2, 3, 5, 5, 4, 4), (1, 2, 3, 6, 5, 2), (2, 1, 1, 1, 3, 3)]
CASES = [(s, causal) for s in SHAPES for causal in (True, False)]


def _backend(name):
    try:
        return xpnet.backend(name)
    except xpnet.BackendError:
        return None


BACKENDS = [pytest.param(n, marks=pytest.mark.skipif(_backend(n) is None, reason=f"{n} is not installed"))
            for n in ("numpy", "array_api_strict", "torch", "jax")]
NATIVE = [pytest.param(n, marks=pytest.mark.skipif(_backend(n) is None, reason=f"{n} is not installed"))
          for n in ("torch", "jax")]


def _qkv(shape, seed=0):
    b, h, tq, tk, d, dv = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, h, tq, d)), rng.standard_normal((b, h, tk, d)),
            rng.standard_normal((b, h, tk, dv)), rng.standard_normal((b, h, tq, dv)))


def _numpy_attention(q, k, v, dout, causal, scale=None):
    """The formula written out in float64 NumPy, gradients by hand from the softmax Jacobian."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.einsum("bhtd,bhsd->bhts", q, k) * scale
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = p @ v
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * scale
    return out, (ds @ k, np.swapaxes(ds, -1, -2) @ q, np.swapaxes(p, -1, -2) @ dout)


def _run(bk, dtype, arrays, causal, scale=None, kernels=None):
    f = bk.dtype(dtype)
    q, k, v, dout = (bk.asarray(a, dtype=f) for a in arrays)
    out, back = attention(q, k, v, causal=causal, scale=scale, kernels=kernels)
    return bk.to_numpy(out), [bk.to_numpy(g) for g in back(dout)]


def _maxdiff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, dtype=np.float64) - y))) for x, y in zip(a, b))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, causal", CASES)
def test_reference_attention_equals_the_numpy_formula(backend, shape, causal):
    """The array-API reference on every backend (array-api-strict: standard functions only) equals the formula,
    outputs and the three gradients, to 1e-12 in float64; masked keys get exactly zero weight."""
    arrays = _qkv(shape)
    out, grads = _run(xpnet.backend(backend), "float64", arrays, causal)
    want_out, want_grads = _numpy_attention(*arrays, causal)
    assert _maxdiff([out, *grads], [want_out, *want_grads]) <= 1e-12
    if causal:  # query 0 sees key 0 only: its output is v[..., 0, :]
        np.testing.assert_allclose(out[:, :, 0], arrays[2][:, :, 0], rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape, causal", CASES)
def test_reference_attention_equals_torch_autograd(shape, causal):
    torch = pytest.importorskip("torch")
    q, k, v, dout = _qkv(shape, seed=1)
    out, grads = _run(xpnet.backend("numpy"), "float64", (q, k, v, dout), causal, scale=0.7)
    t = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    s = t[0] @ t[1].transpose(-1, -2) * 0.7
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), float("-inf"))
    t_out = torch.softmax(s, dim=-1) @ t[2]
    t_grads = torch.autograd.grad(t_out, t, torch.tensor(dout))
    assert _maxdiff([out, *grads], [t_out.detach().numpy(), *(g.numpy() for g in t_grads)]) <= 1e-12


@pytest.mark.parametrize("causal", [True, False])
def test_reference_attention_gradcheck(causal):
    """Central differences (h = 1e-6) of <out, dout> in float64 against backward, every entry of q, k and v."""
    bk = xpnet.backend("numpy")
    q, k, v, dout = _qkv((1, 2, 4, 4, 3, 2), seed=2)
    _, grads = _run(bk, "float64", (q, k, v, dout), causal)

    def loss(q, k, v):
        return float(np.sum(_run(bk, "float64", (q, k, v, dout), causal)[0] * dout))

    h, worst = 1e-6, 0.0
    for which, grad in enumerate(grads):
        args = [q, k, v]
        for i in np.ndindex(args[which].shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which][i] += h
            minus[which][i] -= h
            numeric = (loss(*plus) - loss(*minus)) / (2 * h)
            worst = max(worst, abs(numeric - grad[i]) / max(1.0, abs(grad[i])))
    assert worst <= 1e-8, worst


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("shape, causal", CASES)
def test_native_attention_equals_the_reference(backend, dtype, tol, shape, causal):
    bk = xpnet.backend(backend)
    assert bk.kernels.attention is not None
    arrays = _qkv(shape, seed=3)
    for scale in (None, 0.3):
        native = _run(bk, dtype, arrays, causal, scale, kernels=bk.kernels)
        reference = _run(bk, dtype, arrays, causal, scale)
        assert native[0].dtype == np.dtype(dtype)
        assert _maxdiff([native[0], *native[1]], [reference[0], *reference[1]]) <= tol


def _scatter_problem(seed=4):
    rng = np.random.default_rng(seed)
    indices = np.array([3, 0, 3, 3, 1, 0, 6, 3])  # repeats; rows 2, 4, 5 get nothing
    return indices, rng.standard_normal((indices.size, 5)), 7


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("native", [False, True])
def test_scatter_add_rows_equals_np_add_at(backend, native, monkeypatch):
    bk = xpnet.backend(backend)
    if native and bk.kernels is None:
        pytest.skip(f"{backend} has no native kernels")
    indices, values, rows = _scatter_problem()
    want = np.zeros((rows, values.shape[1]))
    np.add.at(want, indices, values)
    for dtype, tol in (("float64", 1e-14), ("float32", 1e-5)):
        idx, vals = bk.asarray(indices, dtype=bk.xp.int64), bk.asarray(values, dtype=bk.dtype(dtype))
        got = scatter_add_rows(idx, vals, rows, kernels=bk.kernels if native else None)
        assert tuple(got.shape) == (rows, 5) and bk.to_numpy(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(bk.to_numpy(got), want, rtol=0, atol=tol)
    if not native:  # the one-hot mask built in blocks gives the same sums
        monkeypatch.setattr("xpnet.layers.attention_ops._CHUNK", 2 * rows)
        got = scatter_add_rows(bk.asarray(indices, dtype=bk.xp.int64), bk.asarray(values, dtype=bk.dtype("float64")),
                               rows)
        np.testing.assert_allclose(bk.to_numpy(got), want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_weight_gradient_is_the_scatter_add(backend):
    """embedding(): out = weight[tokens]; its weight gradient, reference and native, equals np.add.at of the
    upstream gradient into the tokens' rows (a token seen twice gets both)."""
    bk = xpnet.backend(backend)
    rng = np.random.default_rng(5)
    weight, tokens = rng.standard_normal((9, 4)), np.array([[1, 4, 4, 0], [8, 1, 4, 2]])
    dout = rng.standard_normal((2, 4, 4))
    want = np.zeros_like(weight)
    np.add.at(want, tokens.reshape(-1), dout.reshape(-1, 4))
    f64 = bk.dtype("float64")
    for kernels in (None, bk.kernels):
        out, back = embedding(bk.asarray(weight, dtype=f64), bk.asarray(tokens, dtype=bk.xp.int64), kernels=kernels)
        np.testing.assert_array_equal(bk.to_numpy(out), weight[tokens])
        np.testing.assert_allclose(bk.to_numpy(back(bk.asarray(dout, dtype=f64))), want, rtol=0, atol=1e-14)


def test_bad_input_is_one_clear_error():
    bk = xpnet.backend("numpy")
    a = bk.asarray(np.zeros((1, 2, 3, 4)))
    with pytest.raises(xpnet.InputError, match=r"\(batch, heads, time, head_dim\)"):
        attention(a[0], a, a)
    with pytest.raises(xpnet.InputError, match="same batch, heads and head_dim"):
        attention(a, bk.asarray(np.zeros((1, 2, 3, 5))), a)
    with pytest.raises(xpnet.InputError, match="scale must be a positive number"):
        attention(a, a, a, scale=0)
    with pytest.raises(xpnet.InputError, match=r"indices \(n,\) and values \(n, d\)"):
        scatter_add_rows(bk.asarray(np.zeros(3, dtype=np.int64)), bk.asarray(np.zeros((2, 4))), 5)
    with pytest.raises(xpnet.InputError, match="integer indices"):
        scatter_add_rows(bk.asarray(np.zeros(2)), bk.asarray(np.zeros((2, 4))), 5)
    with pytest.raises(xpnet.InputError, match="rows must be a positive int"):
        scatter_add_rows(bk.asarray(np.zeros(2, dtype=np.int64)), bk.asarray(np.zeros((2, 4))), 0)
