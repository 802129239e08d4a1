"""A GPT (nanoGPT's, Karpathy's GPT-2 in small) composed of xpnet's layers, and text generation from it.

`gpt_layers(vocab, block, layers, heads, dim, ...)` is the model as a list of registry configs, nothing but
existing layers and combinators:

    Embedding(vocab, dim)                                   token table wte, N(0, 0.02^2)
    PositionalEmbedding(block, dim)                         position table wpe, N(0, 0.02^2)
    [Dropout(p)]
    layers x ( Residual(Chain([LayerNorm, MultiHeadAttention(causal), [Dropout]]))      x + attn(ln_1(x))
               Residual(Chain([LayerNorm, Dense(4·dim), GELU, Dense(dim), [Dropout]])) ) x + mlp(ln_2(x))
    LayerNorm                                               ln_f
    TiedOutput({"shared": "layers.0"})                      lm_head = wte.weight.T (one parameter)

bias=False: no biases in the LayerNorms, projections and MLP (nanoGPT's bias=False). Weights N(0, 0.02^2), the
residual projections (attention's out_proj, the MLP's second Dense) N(0, (0.02/sqrt(2·layers))^2), as nanoGPT's
_init_weights. GELU is the tanh form (xpnet.GELU). Dropout: the Dropout layers (after the embeddings and
each residual branch); nanoGPT also drops attention weights, which `attention_dropout=True` adds (drawn from the
host RNG: costly at large sizes).

Generation (`generate`): sampling on the host (the last position's logits as float64, / temperature, top-k,
softmax, a NumPy generator's choice), so one seed gives the same text on every backend. A prompt longer than the
context is cropped to its last `block` tokens (nanoGPT's idx_cond). While the context is not full, a key/value
cache (`MultiHeadAttention.forward_cached`) feeds only the new token; once it is full the window slides and
each token is computed from the last `block` tokens (nanoGPT recomputes always).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import InputError


def _layer(name: str, **config) -> dict:
    return {"class": name, "config": config}


def gpt_layers(vocab: int, block: int, layers: int = 4, heads: int = 4, dim: int = 128, dropout: float = 0.0,
               bias: bool = False, host_rng: bool = True, attention_dropout: bool = False) -> list[dict]:
    """The GPT's layers as registry configs (see the module's docstring); input (block,) token ids, logits
    (block, vocab). host_rng=False: the Dropout layers draw their masks on the device (Dropout(host_rng=False):
    faster on a GPU, not bit-identical across backends)."""
    for what, v in (("vocab", vocab), ("block", block), ("layers", layers), ("heads", heads), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"gpt's {what} is a positive whole number, got {v!r}")
    std, proj = "normal:0.02", f"normal:{0.02 / math.sqrt(2 * layers)!r}"
    drop = [_layer("Dropout", p=dropout, host_rng=host_rng)] if dropout else []
    out = [_layer("Embedding", vocab=vocab, dim=dim, std=0.02), _layer("PositionalEmbedding", max_len=block, dim=dim,
                                                                         std=0.02), *drop]
    for _ in range(layers):
        attn = _layer("MultiHeadAttention", dim=dim, heads=heads, causal=True,
                      dropout=dropout if attention_dropout else 0.0, bias=bias, init=std, out_init=proj)
        out.append(_layer("Residual", block=_layer("Chain", layers=[_layer("LayerNorm", dim=dim, bias=bias), attn,
                                                                      *drop])))
        mlp = [_layer("LayerNorm", dim=dim, bias=bias), _layer("Dense", in_features=dim, out_features=4 * dim,
                                                                  init=std, bias=bias),
               _layer("GELU"), _layer("Dense", in_features=4 * dim, out_features=dim, init=proj, bias=bias), *drop]
        out.append(_layer("Residual", block=_layer("Chain", layers=mlp)))
    return out + [_layer("LayerNorm", dim=dim, bias=bias), _layer("TiedOutput", embedding={"shared": "layers.0"})]


def gpt_spec(vocab: int, block: int, layers: int = 4, heads: int = 4, dim: int = 128, dropout: float = 0.0,
             bias: bool = False, host_rng: bool = True, lr: float = 1e-3, betas=(0.9, 0.99), weight_decay: float = 0.1,
             clip_norm: float | None = 1.0, warmup_steps: int = 100, decay_steps: int = 2000, min_lr: float = 1e-4,
             dtype: str = "float32", seed: int | None = 1) -> dict:
    """The Sequential config of a GPT trained as nanoGPT trains (its shakespeare_char recipe by default): AdamW
    (betas 0.9/0.99, weight decay on the matrices and tables only: param_groups "nanogpt"), gradient clipping
    by global norm, a linear warmup then a cosine decay to min_lr at decay_steps (WarmupCosine)."""
    return {"class": "Sequential", "config": {
        "layers": gpt_layers(vocab, block, layers, heads, dim, dropout, bias, host_rng),
        "loss": {"class": "softmax_cross_entropy", "config": {}},
        "optimizer": {"class": "adamw", "config": {"lr": lr, "beta1": betas[0], "beta2": betas[1],
                                                    "weight_decay": weight_decay, "clip_norm": clip_norm,
                                                    "param_groups": "nanogpt"}},
        "schedule": {"class": "warmup_cosine", "config": {"warmup_steps": warmup_steps, "decay_steps": decay_steps,
                                                          "min_lr": min_lr}},
        "dtype": dtype, "seed": seed, "input_shape": [block]}}


def gpt(vocab: int, block: int, layers: int = 4, heads: int = 4, dim: int = 128, backend=None, device=None,
        compile: bool = False, **options):
    """A GPT Sequential (gpt_spec's options) on `backend`: xpnet.models.gpt.gpt(65, 64) is nanoGPT's CPU model.
    compile=True: each training step one compiled call (JAX, torch)."""
    from ..registry import model_from_config
    return model_from_config(gpt_spec(vocab, block, layers, heads, dim, **options), backend, device,
                             **({"compile": True} if compile else {}))


def nanogpt_parameters(vocab: int, block: int, layers: int, dim: int, bias: bool = False,
                       non_embedding: bool = True) -> int:
    """The parameter count nanoGPT's model.py has for this shape, by its formula: wte (vocab·dim, tied with
    lm_head) + wpe (block·dim) + per block ln_1, c_attn (3·dim·dim), c_proj (dim·dim), ln_2, c_fc (4·dim·dim),
    c_proj (4·dim·dim) (+ their biases with bias=True) + ln_f. non_embedding=True (what nanoGPT prints,
    get_num_params' default) leaves wpe out."""
    ln = dim * (2 if bias else 1)
    per_block = 2 * ln + 12 * dim * dim + ((3 * dim + dim + 4 * dim + dim) if bias else 0)
    total = vocab * dim + block * dim + layers * per_block + ln
    return total - block * dim if non_embedding else total


# ------------------------------------------------------------------------------------------------ generation

def vocabulary(model):
    """The model's CharVocab (its outputs' names, one character each: `xpnet train --dataset tinyshakespeare`
    sets them), or None for a model without one."""
    from ..data.text import CharVocab
    names = getattr(model, "given_class_names", None)
    if not names or any(len(c) != 1 for c in names) or len(set(names)) != len(names):
        return None
    return CharVocab("".join(names))


def context_length(model) -> int:
    """The longest context the model takes: its input_shape's time (the PositionalEmbedding's table)."""
    return int(model.input_shape[0])


def _child_params(comb, j: int, params: dict) -> dict:
    return {local: params[canon] for local, canon in comb._index["param"][0][j]}


def _incremental(layer, params: dict, x, cache: dict, key: str, pos: int):
    """Layer `layer` on the new positions x (batch, t, ...) at absolute positions pos..pos+t-1, the attention
    layers reading and extending `cache` (by layer path `key`); inference only."""
    from ..layers.attention import MultiHeadAttention
    from ..layers.combinators import Chain, Residual
    from ..layers.embedding import PositionalEmbedding
    from ..layers.tied import TiedOutput
    if isinstance(layer, MultiHeadAttention):
        y, cache[key] = layer.forward_cached(params, x, cache.get(key))
        return y
    if isinstance(layer, PositionalEmbedding):
        t = x.shape[1]
        if pos + t > layer.max_len:
            raise InputError(f"position {pos + t - 1} is past the context of {layer.max_len}")
        return x + params["weight"][pos:pos + t, :]
    if isinstance(layer, TiedOutput):
        return layer.forward(params, x)[0]
    if isinstance(layer, Residual) and layer.shortcut is None:
        return _incremental(layer.block, _child_params(layer, 0, params), x, cache, key + ".block", pos) + x
    if isinstance(layer, Chain):
        for j, child in enumerate(layer.layers):
            x = _incremental(child, _child_params(layer, j, params), x, cache, f"{key}.{j}", pos)
        return x
    if layer.sublayers() or type(layer).__name__ not in _POSITIONWISE:
        raise InputError(f"{type(layer).__name__} at {key} has no incremental forward; generate with cache=False")
    extra = {"kernels": None} if layer.kernel_names else {}
    return layer.forward(params, x, **extra)[0]


#: layers that act on each position alone (their forward on new positions is the incremental one)
_POSITIONWISE = {"Embedding", "LayerNorm", "Dense", "GELU", "Dropout", "ReLU", "Tanh", "Sigmoid", "LeakyReLU",
                 "Identity", "Softmax"}


def _last_logits_full(model, ids):
    """The logits (vocab,) of the last position of one sequence (its forward on the whole context)."""
    x = model.bk.asarray(np.asarray(ids, dtype=np.int64).reshape(1, -1))
    z, _ = model.forward(x)
    return model.bk.to_numpy(z[0, -1, :]).astype(np.float64)


def _last_logits_cached(model, new_ids, cache: dict, pos: int):
    x = model.bk.asarray(np.asarray(new_ids, dtype=np.int64).reshape(1, -1))
    params = model.state.params
    for i, layer in enumerate(model.layers):
        x = _incremental(layer, model.layer_params(params, i), x, cache, f"layers.{i}", pos)
    return model.bk.to_numpy(x[0, -1, :]).astype(np.float64)


def sample_next(logits, rng, temperature: float = 1.0, top_k: int | None = None) -> int:
    """One token id from host logits (vocab,): / temperature, the top_k largest kept (nanoGPT's rule: those
    below the k-th largest set to -inf), softmax in float64, rng.choice."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None and top_k < z.shape[0]:
        kth = np.sort(z)[-top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(z.shape[0], p=p))


def check_sampling(temperature, top_k, tokens) -> None:
    """Refuse, in one line, a temperature that is not a positive number, a top_k below 1 or not whole, and a
    token count that is not a positive whole number."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or tokens < 1:
        raise InputError(f"tokens is the number of tokens to generate, a positive whole number; got {tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
            or not math.isfinite(temperature):
        raise InputError(f"temperature must be a positive number (1.0 samples the model's distribution, lower is "
                         f"more conservative), got {temperature!r}; use e.g. 0.8")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise InputError(f"top_k keeps the k most likely tokens, a whole number of 1 or more (or None: all), got "
                         f"{top_k!r}; use e.g. 200")


def generate(model, prompt, tokens: int, temperature: float = 1.0, top_k: int | None = None, seed=None,
             cache: bool = True):
    """Continue `prompt` by `tokens` tokens sampled from `model` (a GPT: token ids in, (time, vocab) logits out).

    prompt: text (encoded by the model's character vocabulary: `vocabulary`) or a sequence of token ids.
    Sampling on the host (`sample_next`) from numpy.random.default_rng(seed): the same tokens on every backend
    for a seed. cache=True: a key/value cache while the context is not full (see the module's docstring);
    False: each token from a forward over the last `block` tokens. Returns (text or ids: the prompt and the new
    tokens, as the prompt was given; stats {"tokens", "seconds", "tokens_per_second", "cached_tokens"})."""
    check_sampling(temperature, top_k, tokens)
    vocab = None
    if isinstance(prompt, str):
        vocab = vocabulary(model)
        if vocab is None:
            raise InputError("this model has no character vocabulary (its outputs are not named by characters); "
                             "give the prompt as token ids, or train it with xpnet train --dataset tinyshakespeare")
        ids = [int(i) for i in vocab.encode(prompt)]
    else:
        ids = [int(i) for i in np.asarray(prompt).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < model.n_outputs]
        if bad:
            raise InputError(f"the prompt holds token id {bad[0]}, outside the model's vocabulary "
                             f"0..{model.n_outputs - 1}; give ids the model was trained on")
    if not ids:
        raise InputError("the prompt is empty; give at least one character (e.g. '\\n')")
    block = context_length(model)
    rng = np.random.default_rng(seed)
    kv, cached_len, cached = {}, 0, 0
    t0 = time.perf_counter()
    with model.bk:
        for _ in range(int(tokens)):
            if cache and len(ids) <= block:
                logits = _last_logits_cached(model, ids[cached_len:], kv, cached_len)
                cached_len = len(ids)
                cached += 1
            else:
                logits = _last_logits_full(model, ids[-block:])
            ids.append(sample_next(logits, rng, temperature, top_k))
    seconds = time.perf_counter() - t0
    stats = {"tokens": int(tokens), "seconds": seconds, "tokens_per_second": tokens / seconds if seconds else None,
             "cached_tokens": cached}
    return (vocab.decode(ids) if vocab is not None else ids), stats
