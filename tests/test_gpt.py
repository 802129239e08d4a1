"""The character-level GPT (issue 32): the text data and its batch stream, the tied embedding against PyTorch
autograd, exact resume, parity across the CPU backends, generation, the presets' parameter counts."""
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.data.text import (TEXT_DATASETS, CharVocab, TextBlocks, block_offsets, default_steps_per_epoch,
                             load_text, split_ids, text_path)
from xpnet.models.gpt import gpt, gpt_spec, nanogpt_parameters
from xpnet.models.presets import PRESETS, model_spec, preset_settings
from xpnet.training.sources import RandomBatches

from fakes import installed

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HAVE_TEXT = (DATA / "tinyshakespeare" / "input.txt").is_file()
CPU_BACKENDS = [b for b in ("numpy", "torch", "jax", "array_api_strict") if installed(b)]


def tiny(backend="numpy", dtype="float64", **options):
    """A 2-block GPT of width 8 on 7 tokens, context 6."""
    options.setdefault("warmup_steps", 2)
    options.setdefault("decay_steps", 20)
    return gpt(7, 6, layers=2, heads=2, dim=8, backend=backend, dtype=dtype, **options)


def tiny_data(n=400, seed=0):
    ids = np.random.default_rng(seed).integers(0, 7, size=n)
    return TextBlocks(ids[:n - 80], 6), TextBlocks(ids[n - 80:], 6)


class Recording:
    """A dataset that records the rows each read asks for."""

    def __init__(self, ds):
        self.ds, self.reads = ds, []

    def __len__(self):
        return len(self.ds)

    def __getitems__(self, idx):
        self.reads.append(np.asarray(list(idx)))
        return self.ds.__getitems__(idx)


# --- data ------------------------------------------------------------------------------------------------

def test_text_blocks_rows_and_targets():
    ids = np.arange(20)
    ds = TextBlocks(ids, 4)
    assert len(ds) == 16  # offsets 0..15 (nanoGPT: randint(len - block))
    x, y = ds.__getitems__([0, 15, 3])
    assert x.dtype == np.int64 and x.shape == (3, 4)
    assert x[1].tolist() == [15, 16, 17, 18] and y[1].tolist() == [16, 17, 18, 19]
    whole = TextBlocks(ids, 4, stride=4)  # non-overlapping: 0-3, 4-7, 8-11, 12-15 (targets to 16)
    assert len(whole) == 4 and whole.__getitems__([3])[1].tolist() == [[13, 14, 15, 16]]
    with pytest.raises(xpnet.InputError, match="more than block=20"):
        TextBlocks(ids, 20)


def test_vocabulary_round_trip_and_refusal():
    vocab = CharVocab.from_text("hello, world\n")
    assert vocab.chars == "\n ,dehlorw" and vocab.decode(vocab.encode("world")) == "world"
    with pytest.raises(xpnet.InputError, match=r"1 character\(s\) outside .* \('Z'\)"):
        vocab.encode("hello Z")
    assert CharVocab.from_config(vocab.to_config()).chars == vocab.chars


@pytest.mark.skipif(not HAVE_TEXT, reason="../shared/data/tinyshakespeare/input.txt is not here")
def test_tiny_shakespeare_checksum_vocabulary_and_split():
    text = load_text("tinyshakespeare", DATA, download=False)
    assert len(text) == TEXT_DATASETS["tinyshakespeare"]["characters"]
    vocab = CharVocab.from_text(text)
    train, val = split_ids(vocab.encode(text), 0.9)
    assert len(vocab) == 65 and (len(train), len(val)) == (1003854, 111540)  # nanoGPT's prepare.py
    assert vocab.decode(train[:14]) == "First Citizen:"


def test_a_wrong_file_is_refused_and_a_missing_one_named(tmp_path):
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("not Shakespeare")
    with pytest.raises(xpnet.errors.DataError, match=r"not the tinyshakespeare file \(SHA-256"):
        text_path("tinyshakespeare", tmp_path, download=False)
    with pytest.raises(xpnet.errors.DataError, match=r"no input.txt in .*allow the download"):
        text_path("tinyshakespeare", tmp_path / "empty", download=False)
    with pytest.raises(xpnet.InputError, match="unknown text dataset"):
        text_path("war-and-peace", tmp_path)


# --- the batch stream ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_the_batch_stream_is_block_offsets_on_every_backend_and_evaluation_leaves_it(backend):
    train, val = tiny_data()
    spe = 3  # short epochs: the stream crosses one (xpnet train's is default_steps_per_epoch: 14 here)
    assert default_steps_per_epoch(len(train), 4, 6) == 14
    runs = []
    for evaluating in (False, True):
        rec = Recording(train)
        m = tiny(backend)
        m.fit(rec, None, steps=spe + 2, source=RandomBatches(4, seed=3, steps_per_epoch=spe),
              **({"validation_data": val, "eval_every": 2, "eval_batches": 2} if evaluating else {}))
        runs.append(rec.reads)
        if evaluating:
            assert m.state.step_history["step"] == [2, 4]
    assert len(runs[0]) == spe + 2 and all(np.array_equal(a, b) for a, b in zip(*runs))
    for i, rows in enumerate(runs[0]):  # what the benchmark draws: block_offsets(i, ...)
        assert np.array_equal(rows, block_offsets(i, seed=3, n_blocks=len(train), batch=4, block=6,
                                                  steps_per_epoch=spe))
    assert np.array_equal(block_offsets(20, seed=3, n_blocks=len(train), batch=4, block=6),
                          block_offsets(20, seed=3, n_blocks=len(train), batch=4, block=6, steps_per_epoch=14))


def test_exact_resume_by_step_mid_run(tmp_path):
    """Stopped by steps inside an epoch, saved, loaded and resumed: bit-identical to the straight run (float64)."""
    train, val = tiny_data()
    src = dict(batch_size=4, seed=5, steps_per_epoch=4)
    straight = tiny()
    straight.fit(train, None, steps=7, source=RandomBatches(**src), validation_data=val, eval_every=3,
                 eval_batches=2)
    part = tiny()
    part.fit(train, None, steps=5, source=RandomBatches(**src), validation_data=val, eval_every=3, eval_batches=2)
    part.save(tmp_path / "part.safetensors")
    resumed = xpnet.load(tmp_path / "part.safetensors")
    resumed.fit(train, None, steps=7, source=RandomBatches(**src), validation_data=val, eval_every=3,
                eval_batches=2, resume=True)
    for k, v in straight.state.params.items():
        assert np.array_equal(v, resumed.state.params[k]), k
    assert straight.state.step_history == resumed.state.step_history
    assert straight.state.batch_losses == resumed.state.batch_losses


def test_a_dataset_refuses_what_cannot_apply():
    train, _ = tiny_data()
    m = tiny()
    with pytest.raises(xpnet.InputError, match="pass y=None"):
        m.fit(train, np.zeros(3), steps=1, source=RandomBatches(2))
    with pytest.raises(xpnet.InputError, match="validation_data=dataset"):
        m.fit(train, None, steps=1, source=RandomBatches(2), validation_split=0.1)
    with pytest.raises(xpnet.InputError, match="eval_batches"):
        m.fit(train, None, steps=1, source=RandomBatches(2), eval_batches=0)


# --- the model against PyTorch autograd ----------------------------------------------------------------------

def _torch_gpt_loss(torch, P, x, y, layers, heads):
    """nanoGPT's forward (no biases, tied head, tanh GELU) on xpnet's parameters P (torch leaves), mean CE."""
    F = torch.nn.functional
    b, t = x.shape
    h = P["layers.0.weight"][x] + P["layers.1.weight"][:t]
    for i in range(layers):
        a, m = f"layers.{2 + 2 * i}.block", f"layers.{3 + 2 * i}.block"
        d = h.shape[-1]
        z = F.layer_norm(h, (d,), P[f"{a}.0.weight"], None, 1e-5)
        q, k, v = (z @ P[f"{a}.1.in_proj_weight"].T).split(d, dim=2)
        q, k, v = [u.view(b, t, heads, d // heads).transpose(1, 2) for u in (q, k, v)]
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        h = h + o @ P[f"{a}.1.out_proj_weight"].T
        z = F.layer_norm(h, (d,), P[f"{m}.0.weight"], None, 1e-5)
        h = h + F.gelu(z @ P[f"{m}.1.weight"].T, approximate="tanh") @ P[f"{m}.3.weight"].T
    h = F.layer_norm(h, (h.shape[-1],), P[f"layers.{2 + 2 * layers}.weight"], None, 1e-5)
    logits = h @ P["layers.0.weight"].T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@pytest.mark.skipif(not installed("torch"), reason="needs torch")
def test_tied_gpt_loss_and_every_gradient_against_torch_autograd():
    import torch
    m = tiny()
    train, _ = tiny_data()
    x, y = train.__getitems__([0, 7, 31])
    value, _, grads = m.value_and_grads(m.bk.asarray(x), m.bk.asarray(y), indices=True, penalty=False)
    P = {k: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True) for k, v in m.parameters().items()}
    loss = _torch_gpt_loss(torch, P, torch.tensor(x), torch.tensor(y), 2, 2)
    loss.backward()
    assert abs(float(value) - loss.item()) < 1e-10
    assert set(grads) == set(P) and "layers.7.embedding.weight" not in grads  # one tied table
    for k, p in P.items():
        assert np.max(np.abs(np.asarray(grads[k]) - p.grad.numpy())) < 1e-10, k


@pytest.mark.skipif(len(CPU_BACKENDS) < 2, reason="needs two backends")
def test_a_tiny_gpt_trains_alike_on_every_cpu_backend():
    train, val = tiny_data()
    final = {}
    for backend in CPU_BACKENDS:
        m = tiny(backend)
        m.fit(train, None, steps=4, source=RandomBatches(4, seed=2), validation_data=val, eval_every=2,
              eval_batches=2)
        final[backend] = ({k: m.bk.to_numpy(v) for k, v in m.parameters().items()}, m.state.step_history["val_loss"])
    ref, ref_val = final["numpy"]
    for backend, (params, vals) in final.items():
        assert np.allclose(vals, ref_val, rtol=0, atol=1e-10), backend
        for k, v in params.items():
            assert np.max(np.abs(v - ref[k])) < 1e-10, (backend, k)


# --- generation ----------------------------------------------------------------------------------------------

def _named(m):
    m.class_names_ = list("abcdefg")
    return m


def test_cached_and_uncached_logits_agree():
    from xpnet.models.gpt import _last_logits_cached, _last_logits_full
    m = tiny()
    ids = [1, 4, 2, 6, 0, 3]
    cache = {}
    cached = [_last_logits_cached(m, ids[:3], cache, 0)]
    for i in range(3, 6):
        cached.append(_last_logits_cached(m, ids[i:i + 1], cache, i))
    full = [_last_logits_full(m, ids[:i]) for i in (3, 4, 5, 6)]
    assert np.max(np.abs(np.array(cached) - np.array(full))) < 1e-12


@pytest.mark.skipif(not installed("torch"), reason="needs torch")
def test_generate_gives_the_same_text_on_numpy_and_torch_and_crops_long_prompts():
    a, b = _named(tiny("numpy", "float32")), _named(tiny("torch", "float32"))
    text, stats = a.generate("abcab", 20, temperature=1.0, top_k=5, seed=3)
    assert len(text) == 25 and text.startswith("abcab") and stats["tokens_per_second"] > 0
    assert b.generate("abcab", 20, temperature=1.0, top_k=5, seed=3)[0] == text
    assert a.generate("abcab", 20, temperature=1.0, top_k=5, seed=3, cache=False)[0] == text
    long = "gfedcbagfedcba"  # longer than the context of 6: only its last 6 characters count
    assert a.generate(long, 8, seed=4)[0][len(long):] == a.generate(long[-6:], 8, seed=4)[0][6:]


@pytest.mark.parametrize("kwargs, match", [
    ({"prompt": "abz"}, r"outside the model's vocabulary of 7 \('z'\)"),
    ({"temperature": 0}, "temperature must be a positive number"),
    ({"top_k": 0}, "top_k keeps the k most likely tokens"),
    ({"tokens": 0}, "positive whole number"),
])
def test_generate_refuses_in_one_line(kwargs, match):
    m = _named(tiny())
    args = dict(prompt="ab", tokens=3)
    args.update(kwargs)
    with pytest.raises(xpnet.InputError, match=match) as info:
        m.generate(args.pop("prompt"), args.pop("tokens"), **args)
    assert "\n" not in str(info.value)


# --- presets -------------------------------------------------------------------------------------------------

def test_the_cpu_preset_has_nanogpts_parameter_count():
    """nanoGPT prints get_num_params() without the position table: 0.80M (795,904) for its CPU recipe; the model
    holds 804,096 with it (wte 8,320 tied with lm_head, wpe 8,192, 4 blocks of 196,864, ln_f 128)."""
    cfg = preset_settings("gpt-shakespeare-cpu")
    spec = model_spec(None, 65, cfg)
    m = xpnet.model_from_config(spec, "numpy")
    total = sum(int(np.prod(v.shape)) for v in m.parameters().values())
    assert total == nanogpt_parameters(65, 64, 4, 128, non_embedding=False) == 804_096
    assert total - 64 * 128 == nanogpt_parameters(65, 64, 4, 128) == 795_904
    opt = spec["config"]["optimizer"]["config"]
    assert (opt["beta1"], opt["beta2"], opt["weight_decay"], opt["clip_norm"], opt["param_groups"]) == \
        (0.9, 0.99, 0.1, 1.0, "nanogpt")
    gpu = xpnet.registry.deserialize(model_spec(None, 65, preset_settings("gpt-shakespeare"))["config"]["layers"][2],
                                     "layer")
    assert type(gpu).__name__ == "Dropout" and gpu.host_rng is False
    assert PRESETS["gpt-shakespeare"].settings["steps"] == 5000


def test_the_gpt_config_round_trips_with_its_tied_table():
    m = tiny()
    again = xpnet.model_from_config(xpnet.serialize(m), "numpy")
    assert list(again.parameters()) == list(m.parameters())
    assert xpnet.serialize(m)["config"]["layers"][-1]["config"]["embedding"] == {"shared": "layers.0"}
    assert gpt_spec(7, 6)["config"]["schedule"]["class"] == "warmup_cosine"


def test_gpu_check_has_the_gpu_recipe_as_a_mode_of_its_own(tmp_path):
    """GPU_CHECK_SECTIONS=gpt: probe, backends, then gpt-shakespeare a few hundred steps on CuPy and torch CUDA,
    within the script's budget (dry run: the plan only)."""
    import re
    import subprocess
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "GPU_CHECK_DRY_RUN": "1",
                               "GPU_CHECK_SECTIONS": "gpt"})
    assert done.returncode == 0, done.stderr
    sections = re.findall(r"^== ([\w:-]+) \(limit (\d+) s\)(?:: (.*))?$", done.stdout, re.M)
    assert [n for n, _, _ in sections] == ["probe", "backends", "gpt-cupy", "gpt-torch"]
    total, budget = map(int, re.search(r": (\d+) s of the budget's (\d+) s", done.stdout).groups())
    assert total <= budget <= 360
    for name, backend in (("gpt-cupy", "cupy"), ("gpt-torch", "torch")):
        command = dict((n, c) for n, _, c in sections)[name]
        assert f"--preset gpt-shakespeare --backend {backend} --device cuda --steps 300" in command


@pytest.mark.skipif(not installed("jax"), reason="needs jax")
def test_the_compiled_jax_step_trains_a_tiny_gpt_as_the_eager_one():
    train, _ = tiny_data()
    runs = []
    for compiled in (False, True):
        m = tiny("jax", compile=compiled)
        m.fit(train, None, steps=4, source=RandomBatches(4, seed=1))
        runs.append({k: m.bk.to_numpy(v) for k, v in m.parameters().items()})
    assert m.compile_traces_ == 1
    assert max(float(np.max(np.abs(runs[0][k] - runs[1][k]))) for k in runs[0]) < 1e-12


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_device_mask_dropout_trains_and_repeats_on_one_backend(backend):
    """The GPU recipe's Dropout(host_rng=False): masks from the backend's own generator, seeded by the model's
    seed, so a run repeats on one backend (not bit for bit across backends)."""
    train, _ = tiny_data()
    runs = []
    for _ in range(2):
        m = tiny(backend, dropout=0.3, host_rng=False)
        m.fit(train, None, steps=3, source=RandomBatches(4, seed=1))
        runs.append([float(m.bk.to_numpy(v)) for v in m.state.partial_losses])
    assert runs[0] == runs[1] and len(runs[0]) == 3 and all(np.isfinite(runs[0]))


def test_a_dataset_validates_on_arrays_as_on_the_same_rows_as_a_dataset():
    train, val = tiny_data()
    X, Y = val.__getitems__(np.arange(len(val)))
    figures = []
    for validation in (val, (X, Y)):
        m = tiny()
        m.fit(train, None, steps=2, source=RandomBatches(4, seed=1), validation_data=validation, eval_every=2)
        figures.append(m.state.step_history["val_loss"])
    assert figures[0] == figures[1] and len(figures[0]) == 1
