"""Sequence layers (issue 31): Dense on N-D input, Embedding, PositionalEmbedding, LayerNorm, GELU.

Each against PyTorch autograd in float64 on every CPU backend (outputs and every gradient, relative difference
<= 1e-10, on shapes the other tests do not use), the refusals in one line, the low-precision paths (statistics
and the embedding's gradient in float32), configs through the registry, and Embedding under jax.jit. The layer
contract test (tests/test_layers_api.py) gradchecks them through their examples()."""
import json

import numpy as np
import pytest

import xpnet
from xpnet.layers.embedding import Embedding, PositionalEmbedding

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-10


def rel(a, b) -> float:
    """max |a - b| / max |b| (b the oracle), both as float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def run_layer(bk, layer, params, x, dy, x_dtype="float64", kernels=None):
    """(y, dx, grads) of one float64 forward and backward on backend bk, as host arrays."""
    f64 = bk.dtype("float64")
    p = {k: bk.asarray(v, dtype=f64) for k, v in params.items()}
    xd = bk.asarray(x, dtype=bk.xp.int64 if x_dtype == "int64" else f64)
    extra = {} if kernels is None else {"kernels": kernels}
    y, back = layer.forward(p, xd, training=True, **extra)
    dx, grads = back(bk.asarray(dy, dtype=f64))
    return (bk.to_numpy(y), None if dx is None else bk.to_numpy(dx), {k: bk.to_numpy(g) for k, g in grads.items()})


def torch_grads(fn, inputs, dy):
    """fn(*tensors) and its gradients for upstream dy, by torch autograd in float64 (None for integer inputs)."""
    t = [torch.tensor(a, requires_grad=np.issubdtype(np.asarray(a).dtype, np.floating)) for a in inputs]
    y = fn(*t)
    needs = [a for a in t if a.requires_grad]
    grads = iter(torch.autograd.grad(y, needs, torch.tensor(dy)))
    return y.detach().numpy(), [next(grads).numpy() if a.requires_grad else None for a in t]


def built(layer, input_shape, seed=0):
    layer.build(input_shape)
    return layer, layer.init_params(np.random.default_rng(seed), np.asarray)


# ---- Dense on N-D input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 5, 7), (3, 2, 2, 7)])
def test_dense_nd_equals_torch_linear(xpnet_backend, shape):
    rng = np.random.default_rng(1)
    layer, params = built(xpnet.Dense(7, 4), shape[1:])
    assert layer.output_shape == (*shape[1:-1], 4)
    params = {"weight": rng.standard_normal((4, 7)), "bias": rng.standard_normal(4)}
    x, dy = rng.standard_normal(shape), rng.standard_normal((*shape[:-1], 4))
    y, dx, grads = run_layer(xpnet_backend, layer, params, x, dy)
    want, (wdx, wdw, wdb) = torch_grads(F.linear, (x, params["weight"], params["bias"]), dy)
    assert max(rel(y, want), rel(dx, wdx), rel(grads["weight"], wdw), rel(grads["bias"], wdb)) <= TOL


def test_dense_nd_is_the_2d_gemm_of_its_rows():
    """N-D input runs the unchanged 2-D code on its (rows, features) reshape: bit for bit the same numbers."""
    bk = xpnet.backend("numpy")
    rng = np.random.default_rng(2)
    layer, params = built(xpnet.Dense(6, 3), (4, 6))
    x, dy = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 4, 3))
    y3, dx3, g3 = run_layer(bk, layer, params, x, dy)
    y2, dx2, g2 = run_layer(bk, layer, params, x.reshape(8, 6), dy.reshape(8, 3))
    np.testing.assert_array_equal(y3.reshape(8, 3), y2)
    np.testing.assert_array_equal(dx3.reshape(8, 6), dx2)
    for k in g2:
        np.testing.assert_array_equal(g3[k], g2[k])


def test_dense_refuses_a_wrong_last_axis_in_one_line():
    with pytest.raises(xpnet.InputError, match=r"expects 7 input features but the previous layer gives 5 \(the last axis") as e:
        xpnet.Dense(7, 2).build((3, 5))
    assert "\n" not in str(e.value)
    with pytest.raises(xpnet.InputError, match="no feature axis"):
        xpnet.Dense(2).build(())


def test_dense_nd_flops_count_every_position():
    """model.summary()'s FLOPs of a Dense on (time, features) input: 2·in·out per position."""
    from xpnet.models.summary import forward_flops
    layer = xpnet.Dense(6, 5)
    layer.build((3, 6))
    assert forward_flops(layer) == 2 * 6 * 5 * 3
    layer.build((6,))
    assert forward_flops(layer) == 2 * 6 * 5


# ---- Embedding ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("native", [False, True])
def test_embedding_equals_torch_embedding(xpnet_backend, native):
    if native and xpnet_backend.kernels is None:
        pytest.skip(f"{xpnet_backend.name} has no native kernels")
    rng = np.random.default_rng(4)
    layer, params = built(Embedding(11, 6), (7,))
    ids = rng.integers(0, 11, (3, 7))
    ids[0, :3] = 5  # repeats: one row gets several gradients
    dy = rng.standard_normal((3, 7, 6))
    y, dx, grads = run_layer(xpnet_backend, layer, params, ids, dy, x_dtype="int64",
                             kernels=xpnet_backend.kernels if native else None)
    want, (_, wdw) = torch_grads(lambda i, w: F.embedding(i, w), (ids, params["weight"]), dy)
    assert dx is None
    assert max(rel(y, want), rel(grads["weight"], wdw)) <= TOL
    assert np.all(grads["weight"][np.setdiff1d(np.arange(11), ids)] == 0)  # unseen tokens: no gradient


def test_embedding_refuses_floats_and_unknown_ids_in_one_line(xpnet_backend):
    layer, params = built(Embedding(5, 2), (3,))
    p = {"weight": xpnet_backend.asarray(params["weight"], dtype=xpnet_backend.dtype("float64"))}
    ids = lambda a: xpnet_backend.asarray(np.array(a), dtype=xpnet_backend.xp.int64)  # noqa: E731
    cases = [(xpnet_backend.asarray(np.zeros((2, 3)), dtype=xpnet_backend.dtype("float64")), "integer token ids"),
             (ids([[0, 4, 5]]), r"ids in \[0, 5\) but got id 5"), (ids([[0, -1, 2]]), "but got id -1")]
    for x, message in cases:
        with pytest.raises(xpnet.InputError, match=message) as e:
            layer.forward(p, x)
        assert "\n" not in str(e.value)
    y, _ = layer.forward(p, ids([[0, 4, 1]]))  # the edges of the vocabulary pass
    assert tuple(y.shape) == (1, 3, 2)


def test_embedding_traces_under_jax_jit():
    """Under jax.jit the ids are abstract: no check runs (nor fails), and the compiled lookup equals the eager
    one; an id past the vocabulary gives a NaN row there, as the docstring says."""
    try:
        bk = xpnet.backend("jax")
    except xpnet.BackendError as exc:
        pytest.skip(str(exc))
    import jax
    layer, params = built(Embedding(6, 3), (4,))
    w = bk.asarray(params["weight"], dtype=bk.dtype("float64"))
    ids = bk.asarray(np.array([[1, 5, 0, 5]]), dtype=bk.xp.int64)
    compiled = jax.jit(lambda w, i: layer.forward({"weight": w}, i)[0])
    np.testing.assert_array_equal(bk.to_numpy(compiled(w, ids)), bk.to_numpy(layer.forward({"weight": w}, ids)[0]))
    out = bk.to_numpy(compiled(w, bk.asarray(np.array([[1, 6, 0, 2]]), dtype=bk.xp.int64)))
    assert np.isnan(out[0, 1]).all() and np.isfinite(np.delete(out[0], 1, axis=0)).all()


def test_embedding_gradient_is_summed_in_float32():
    """A float16 model's table gradient is summed in float32 (the scatter-add gets float32 rows; NumPy's and torch's
    own float16 sums happen to accumulate wider already, so the kernel's input dtype is what is checked) and cast
    back to float16: 3000 gradients of 1 into one token give 3000 (a float16 running sum stops at 2048)."""
    from xpnet.layers.attention_ops import scatter_add_rows
    bk = xpnet.backend("numpy")
    seen = []

    class Recording:
        def scatter_add_rows(self, indices, values, rows):
            seen.append(values.dtype)
            return scatter_add_rows(indices, values, rows)

    layer, _ = built(Embedding(2, 1), (3000,))
    w = bk.asarray(np.zeros((2, 1)), dtype=bk.xp.float16)
    _, back = layer.forward({"weight": w}, bk.asarray(np.zeros((1, 3000)), dtype=bk.xp.int64), kernels=Recording())
    _, grads = back(bk.asarray(np.ones((1, 3000, 1)), dtype=bk.xp.float16))
    got = bk.to_numpy(grads["weight"])
    assert seen == [bk.xp.float32] and got.dtype == np.float16 and got[0, 0] == 3000 and got[1, 0] == 0


# ---- PositionalEmbedding -----------------------------------------------------------------------------------------

def test_positional_embedding_equals_torch(xpnet_backend):
    rng = np.random.default_rng(5)
    layer, params = built(PositionalEmbedding(9, 5), (6, 5))
    x, dy = rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 5))
    y, dx, grads = run_layer(xpnet_backend, layer, params, x, dy)
    want, (wdx, wdw) = torch_grads(lambda x, w: x + w[:6], (x, params["weight"]), dy)
    assert max(rel(y, want), rel(dx, wdx), rel(grads["weight"], wdw)) <= TOL
    assert np.all(grads["weight"][6:] == 0)
    shorter, _, _ = run_layer(xpnet_backend, layer, params, x[:, :2], dy[:, :2])  # shorter sequences: their positions
    assert rel(shorter, x[:, :2] + params["weight"][:2]) <= TOL


def test_positional_embedding_refuses_long_sequences_in_one_line():
    with pytest.raises(xpnet.InputError, match=r"at most 4 steps but got 5.*make max_len larger") as e:
        PositionalEmbedding(4, 3).build((5, 3))
    assert "\n" not in str(e.value)
    layer, params = built(PositionalEmbedding(4, 3), (4, 3))
    with pytest.raises(xpnet.InputError, match="at most 4 steps but got 6"):
        layer.forward(params, np.zeros((1, 6, 3)))
    with pytest.raises(xpnet.InputError, match=r"\(batch, time, dim\)"):
        PositionalEmbedding(4).build((3,))
    with pytest.raises(xpnet.InputError, match="expects dim 2"):
        PositionalEmbedding(4, 2).build((3, 3))


# ---- LayerNorm and GELU ------------------------------------------------------------------------------------------

def test_layer_norm_equals_torch(xpnet_backend):
    rng = np.random.default_rng(6)
    layer, _ = built(xpnet.LayerNorm(5, eps=1e-4), (3, 5))
    params = {"weight": rng.standard_normal(5), "bias": rng.standard_normal(5)}
    x, dy = 2.0 + 3.0 * rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))
    y, dx, grads = run_layer(xpnet_backend, layer, params, x, dy)
    want, (wdx, wdw, wdb) = torch_grads(lambda x, w, b: F.layer_norm(x, (5,), w, b, eps=1e-4),
                                        (x, params["weight"], params["bias"]), dy)
    assert max(rel(y, want), rel(dx, wdx), rel(grads["weight"], wdw), rel(grads["bias"], wdb)) <= TOL


def test_layer_norm_statistics_in_float32_for_float16_input():
    """float16 input whose squared deviations (~300² = 9e4) overflow float16: normalized in float32, the output
    (float16) matches float64 to float16's precision; computed in float16 the variance would be inf."""
    bk = xpnet.backend("numpy")
    rng = np.random.default_rng(7)
    x = (300.0 * rng.standard_normal((2, 8))).astype(np.float16)
    with np.errstate(over="ignore"):  # the float16 hazard is real
        assert np.isinf(np.mean(np.square(x - x.mean(-1, keepdims=True)), axis=-1)).any()
    layer, params = built(xpnet.LayerNorm(8), (8,))
    f16 = bk.xp.float16  # models are float32 or float64; the layer takes any float
    y, back = layer.forward({k: bk.asarray(v, dtype=f16) for k, v in params.items()}, bk.asarray(x, dtype=f16))
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    assert bk.to_numpy(y).dtype == np.float16 and np.max(np.abs(bk.to_numpy(y) - want)) <= 4e-3
    dx, grads = back(bk.asarray(np.ones((2, 8)), dtype=f16))
    assert bk.to_numpy(dx).dtype == np.float16 and np.isfinite(bk.to_numpy(dx)).all()


def test_layer_norm_refusals():
    with pytest.raises(xpnet.InputError, match="expects dim 4.*gives 3"):
        xpnet.LayerNorm(4).build((2, 3))
    with pytest.raises(xpnet.InputError, match="eps"):
        xpnet.LayerNorm(4, eps=0.0)


def test_gelu_equals_torch_tanh_gelu(xpnet_backend):
    rng = np.random.default_rng(8)
    layer, _ = built(xpnet.GELU(), (3, 4))
    x, dy = np.linspace(-6, 6, 24).reshape(2, 3, 4), rng.standard_normal((2, 3, 4))
    y, dx, _ = run_layer(xpnet_backend, layer, {}, x, dy)
    want, (wdx,) = torch_grads(lambda x: F.gelu(x, approximate="tanh"), (x,), dy)
    assert max(rel(y, want), rel(dx, wdx)) <= TOL
    exact = F.gelu(torch.tensor(x)).numpy()  # not erf's GELU: the docstring's bound on the difference
    assert 1e-4 < np.max(np.abs(y - exact)) <= 5e-4


# ---- configs and a sequence model --------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [Embedding(7, 3, std=0.5), PositionalEmbedding(8, 3, std=0.1),
                                   xpnet.LayerNorm(3, eps=1e-6), xpnet.GELU(), xpnet.Dense(3, 2, bias=False)])
def test_config_round_trip_through_the_registry(layer):
    spec = json.loads(json.dumps(xpnet.serialize(layer)))
    again = xpnet.deserialize(spec, "layer")
    assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_a_chain_of_sequence_layers_equals_torch():
    """Embedding -> PositionalEmbedding -> LayerNorm -> Dense -> GELU -> Dense as one Chain: logits and every
    parameter's gradient against the same model in torch autograd."""
    bk = xpnet.backend("numpy")
    chain = xpnet.Chain([Embedding(10, 4), PositionalEmbedding(6, 4), xpnet.LayerNorm(4), xpnet.Dense(4, 8),
                         xpnet.GELU(), xpnet.Dense(8, 10)])
    chain, params = built(chain, (5,), seed=9)
    rng = np.random.default_rng(10)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # LayerNorm's 1 and 0 moved
    ids, dy = rng.integers(0, 10, (2, 5)), rng.standard_normal((2, 5, 10))
    y, _, grads = run_layer(bk, chain, params, ids, dy, x_dtype="int64")
    names = list(params)

    def model(ids, *p):
        p = dict(zip(names, p))
        h = F.embedding(ids, p["0.weight"]) + p["1.weight"][:5]
        h = F.layer_norm(h, (4,), p["2.weight"], p["2.bias"])
        h = F.gelu(F.linear(h, p["3.weight"], p["3.bias"]), approximate="tanh")
        return F.linear(h, p["5.weight"], p["5.bias"])

    want, wgrads = torch_grads(model, (ids, *params.values()), dy)
    assert rel(y, want) <= TOL
    assert max(rel(grads[k], g) for k, g in zip(names, wgrads[1:])) <= TOL


# ---- MultiHeadAttention ------------------------------------------------------------------------------------------

def torch_mha(x, w_in, b_in, w_out, b_out, heads, causal, weights_mask=None):
    """The same attention in torch: F.linear, heads by view and transpose, scaled_dot_product_attention (or, with a
    dropout mask, the softmax written out so the mask can be the one xpnet drew)."""
    b, t, d = x.shape
    q, k, v = (a.view(b, t, heads, d // heads).transpose(1, 2) for a in F.linear(x, w_in, b_in).split(d, dim=-1))
    if weights_mask is None:
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    else:
        s = q @ k.transpose(-1, -2) / (d // heads) ** 0.5
        if causal:
            s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
        o = (torch.softmax(s, dim=-1) * weights_mask) @ v
    return F.linear(o.transpose(1, 2).reshape(b, t, d), w_out, b_out)


def _mha_problem(dim, heads, time, seed):
    rng = np.random.default_rng(seed)
    params = {"in_proj_weight": rng.standard_normal((3 * dim, dim)) / dim ** 0.5, "in_proj_bias": rng.standard_normal(3 * dim),
              "out_proj_weight": rng.standard_normal((dim, dim)) / dim ** 0.5, "out_proj_bias": rng.standard_normal(dim)}
    return params, rng.standard_normal((2, time, dim)), rng.standard_normal((2, time, dim))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("native", [False, True])
def test_multi_head_attention_equals_torch_sdpa(xpnet_backend, causal, native):
    if native and xpnet_backend.kernels is None:
        pytest.skip(f"{xpnet_backend.name} has no native kernels")
    layer = xpnet.MultiHeadAttention(6, 3, causal=causal)
    layer.build((5, 6))
    params, x, dy = _mha_problem(6, 3, 5, seed=11)
    y, dx, grads = run_layer(xpnet_backend, layer, params, x, dy, kernels=xpnet_backend.kernels if native else None)
    names = ["in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias"]
    want, (wdx, *wgrads) = torch_grads(lambda x, *p: torch_mha(x, *p, heads=3, causal=causal),
                                       (x, *(params[n] for n in names)), dy)
    assert max(rel(y, want), rel(dx, wdx), *(rel(grads[n], g) for n, g in zip(names, wgrads))) <= TOL


def test_multi_head_attention_dropout_on_the_weights_equals_torch():
    """dropout=0.4 while training: the weights times the mask drawn from noise (< keep, scaled by 1/keep), the same
    mask given to torch; not training, no dropout."""
    bk = xpnet.backend("numpy")
    layer = xpnet.MultiHeadAttention(4, 2, dropout=0.4)
    layer.build((4, 4))
    params, x, dy = _mha_problem(4, 2, 3, seed=12)  # a sequence shorter than the built time: the noise sliced
    noise = np.random.default_rng(13).random(layer.noise_shape(2))
    assert noise.shape == (2, 2, 4, 4)
    f64 = bk.dtype("float64")
    p = {k: bk.asarray(v, dtype=f64) for k, v in params.items()}
    y, back = layer.forward(p, bk.asarray(x, dtype=f64), training=True, noise=bk.asarray(noise, dtype=f64))
    dx, grads = back(bk.asarray(dy, dtype=f64))
    mask = torch.tensor((noise[:, :, :3, :3] < 0.6) / 0.6)
    names = ["in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias"]
    want, (wdx, *wgrads) = torch_grads(lambda x, *q: torch_mha(x, *q, heads=2, causal=True, weights_mask=mask),
                                       (x, *(params[n] for n in names)), dy)
    assert max(rel(bk.to_numpy(y), want), rel(bk.to_numpy(dx), wdx),
               *(rel(bk.to_numpy(grads[n]), g) for n, g in zip(names, wgrads))) <= TOL
    plain, _ = layer.forward(p, bk.asarray(x, dtype=f64), training=False)
    no_dropout = torch_mha(*(torch.tensor(a) for a in (x, *(params[n] for n in names))), heads=2, causal=True)
    assert rel(bk.to_numpy(plain), no_dropout.numpy()) <= TOL


@pytest.mark.parametrize("native", [False, True])
def test_causality_a_later_token_never_changes_an_earlier_output(xpnet_backend, native):
    """Embedding -> PositionalEmbedding -> MultiHeadAttention -> LayerNorm -> Dense (logits): changing token t
    leaves the logits of positions 0..t-1 exactly as they were, and changes position t's."""
    if native and xpnet_backend.kernels is None:
        pytest.skip(f"{xpnet_backend.name} has no native kernels")
    chain = xpnet.Chain([Embedding(9, 4), PositionalEmbedding(6, 4), xpnet.MultiHeadAttention(4, 2),
                         xpnet.LayerNorm(4), xpnet.Dense(4, 9)])
    chain, params = built(chain, (6,), seed=14)
    f64 = xpnet_backend.dtype("float64")
    p = {k: xpnet_backend.asarray(v, dtype=f64) for k, v in params.items()}
    kernels = {"kernels": xpnet_backend.kernels} if native else {}
    ids = np.random.default_rng(15).integers(0, 9, (2, 6))
    logits = lambda a: xpnet_backend.to_numpy(chain.forward(  # noqa: E731
        p, xpnet_backend.asarray(a, dtype=xpnet_backend.xp.int64), **kernels)[0])
    base = logits(ids)
    for t in range(6):
        changed = ids.copy()
        changed[:, t] = (changed[:, t] + 1) % 9
        after = logits(changed)
        np.testing.assert_array_equal(after[:, :t], base[:, :t])
        assert np.all(np.abs(after[:, t] - base[:, t]).max(axis=-1) > 0)


def test_multi_head_attention_refusals_and_config():
    with pytest.raises(xpnet.InputError, match="multiple of heads.*dim=6, heads=4") as e:
        xpnet.MultiHeadAttention(6, 4)
    assert "\n" not in str(e.value)
    with pytest.raises(xpnet.InputError, match=r"takes \(batch, time, 6\) input but gets \(batch, 5, 4\)"):
        xpnet.MultiHeadAttention(6, 2).build((5, 4))
    with pytest.raises(xpnet.InputError, match="dropout"):
        xpnet.MultiHeadAttention(6, 2, dropout=1.0)
    layer = xpnet.MultiHeadAttention(6, 2, causal=False, dropout=0.1, bias=False)
    again = xpnet.deserialize(json.loads(json.dumps(xpnet.serialize(layer))), "layer")
    assert type(again) is type(layer) and again.get_config() == layer.get_config()
    again.build((3, 6))
    assert set(again.param_shapes()) == {"in_proj_weight", "out_proj_weight"} and again.noise_shape(2) == (2, 2, 3, 3)


def test_a_sequence_chain_compiles_under_jax_jit():
    """The whole stem and an attention block traced by jax.jit (the Embedding's id check skipped on tracers, the
    native attention and scatter-add traced): logits and gradients equal the eager ones."""
    try:
        bk = xpnet.backend("jax")
    except xpnet.BackendError as exc:
        pytest.skip(str(exc))
    import jax
    chain = xpnet.Chain([Embedding(7, 4), PositionalEmbedding(5, 4), xpnet.MultiHeadAttention(4, 2),
                         xpnet.LayerNorm(4), xpnet.Dense(4, 7)])
    chain, params = built(chain, (5,), seed=16)
    p = {k: bk.asarray(v, dtype=bk.dtype("float64")) for k, v in params.items()}
    ids = bk.asarray(np.random.default_rng(17).integers(0, 7, (2, 5)), dtype=bk.xp.int64)
    dy = bk.asarray(np.random.default_rng(18).standard_normal((2, 5, 7)), dtype=bk.dtype("float64"))

    def step(p, ids, dy):
        y, back = chain.forward(p, ids, kernels=bk.kernels)
        return y, back(dy)[1]

    eager, compiled = step(p, ids, dy), jax.jit(step)(p, ids, dy)
    assert rel(bk.to_numpy(compiled[0]), bk.to_numpy(eager[0])) <= 1e-12
    assert max(rel(bk.to_numpy(compiled[1][k]), bk.to_numpy(eager[1][k])) for k in p) <= 1e-12
