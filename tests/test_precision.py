"""Mixed precision (xpnet.precision, issue 33): the backends' 16-bit types, float32 master weights, the float32
islands, and dynamic loss scaling for float16. Mixed runs are compared with the float32 run of the same seed at
stated tolerances (never bit for bit across types): one step's gradients, globally, within a relative 1e-2 for
bfloat16 and 2e-3 for float16 for an MLP with BatchNorm (measured: about 4e-3 and 5e-4), twice that for a
five-layer attention stack (measured: 1.03e-2 and about 1e-3)."""
import numpy as np
import pytest

from xpnet.backend import Backend, BackendError
from xpnet.errors import InputError
from xpnet.layers import BatchNorm, Dense
from xpnet.models.sequential import Sequential
from xpnet.precision import ISLANDS, LossScale, Policy, is_narrow
from xpnet import load

from fakes import installed

TOL = {"bf16-mixed": 1e-2, "fp16-mixed": 2e-3}
CASES = [("torch", "bf16-mixed"), ("torch", "fp16-mixed"), ("jax", "bf16-mixed"), ("jax", "fp16-mixed"),
         ("numpy", "fp16-mixed")]


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 20)).astype(np.float32), rng.integers(0, 3, n)


def _model(backend, precision, optimizer="adam", **kw):
    return Sequential([Dense(20, 16), BatchNorm(), "relu", Dense(16, 3)], optimizer=optimizer, backend=backend,
                      seed=1, precision=precision, **kw)


def _host(m, d):
    return {k: m.bk.to_numpy(v, copy=True) for k, v in d.items()}


def _rel(a: dict, b: dict) -> float:
    fa = np.concatenate([np.asarray(a[k], np.float64).ravel() for k in sorted(b)])
    fb = np.concatenate([np.asarray(b[k], np.float64).ravel() for k in sorted(b)])
    return float(np.linalg.norm(fa - fb) / np.linalg.norm(fb))


def test_backend_compute_dtypes():
    bk = Backend("numpy")
    assert bk.compute_dtype("float16") == np.float16
    with pytest.raises(BackendError, match="numpy' has no bfloat16.*runs on: torch, jax"):
        bk.compute_dtype("bfloat16")
    with pytest.raises(BackendError, match="float32' or 'float64"):
        bk.dtype("float16")  # the master dtype stays float32 or float64
    strict = Backend("array_api_strict")
    for name in ("float16", "bfloat16"):
        with pytest.raises(BackendError, match=f"has no {name}"):
            strict.compute_dtype(name)
    if installed("torch"):
        assert {str(Backend("torch").compute_dtype(n)) for n in ("bfloat16", "float16")} == {"torch.bfloat16",
                                                                                             "torch.float16"}


def test_refusals_in_one_line():
    with pytest.raises(InputError, match="precision must be one of 'bf16-mixed', 'fp16-mixed'"):
        _model("numpy", "fp8")
    with pytest.raises(BackendError, match="array_api_strict' has no float16") as info:
        _model("array_api_strict", "fp16-mixed")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="growth_interval"):
        Policy("fp16-mixed", growth_interval=0)


def test_islands_and_narrow():
    assert any("BatchNorm" in s for s in ISLANDS) and any("loss" in s for s in ISLANDS)
    assert is_narrow(np.float16) and not is_narrow(np.float32) and is_narrow("torch.bfloat16")


@pytest.mark.parametrize("backend,precision", CASES)
def test_one_step_against_float32(backend, precision):
    """The gradients of one step within TOL of float32's; master weights, optimizer and layer state stay float32."""
    if not installed(backend):
        pytest.skip(f"{backend} not installed")
    X, y = _data()
    runs = []
    for p in (None, precision):
        m = _model(backend, p)
        x, yy = m.bk.asarray(X), m.bk.asarray(y)
        v, z, g = m.value_and_grads(x, yy, indices=True)
        m.train_step(x, yy, indices=True)
        runs.append((float(v), _host(m, g), m))
    (v32, g32, m32), (vm, gm, mm) = runs
    assert abs(vm - v32) / abs(v32) < TOL[precision]
    # layers.0.bias is left out: BatchNorm after it makes its gradient zero up to rounding (no relative measure)
    g32.pop("layers.0.bias"), gm.pop("layers.0.bias")
    assert _rel(gm, g32) < TOL[precision]
    st = mm.state
    arrays = list(st.params.values()) + [b for d in st.opt_state.values() for b in d.values()] + \
        list(st.layer_state.values())
    assert {str(a.dtype).rsplit(".", 1)[-1] for a in arrays} == {"float32"}
    assert _rel(_host(mm, st.params), _host(m32, m32.state.params)) < TOL[precision]


def test_forced_overflow_skips_the_step_and_halves_the_scale():
    """fp16: a loss gradient that overflows float16 skips the update (parameters and Adam's buffers untouched) and
    halves the scale; the next clean steps count towards growth, a growth interval of 2 doubles it."""
    m = _model("numpy", Policy("fp16-mixed", growth_interval=2))
    X, y = _data()
    x, yy = m.bk.asarray(X), m.bk.asarray(y)
    m.train_step(x, yy, indices=True)  # a clean step first: Adam's buffers are non-zero
    before = _host(m, m.state.params), {k: _host(m, d) for k, d in m.state.opt_state.items()}
    m.train_step(x * 1e6, yy, indices=True)  # inputs beyond float16's 65504: a huge loss, non-finite gradients
    assert float(m.state.loss_scale["scale"]) == 2.0 ** 14 and float(m.state.loss_scale["good"]) == 0
    after = _host(m, m.state.params), {k: _host(m, d) for k, d in m.state.opt_state.items()}
    for k in before[0]:
        np.testing.assert_array_equal(after[0][k], before[0][k])
        for b in before[1][k]:
            np.testing.assert_array_equal(after[1][k][b], before[1][k][b])
    m.train_step(x, yy, indices=True)
    assert float(m.state.loss_scale["good"]) == 1
    m.train_step(x, yy, indices=True)
    assert float(m.state.loss_scale["scale"]) == 2.0 ** 15 and float(m.state.loss_scale["good"]) == 0
    assert all(np.isfinite(v).all() for v in _host(m, m.state.params).values())


def test_the_default_growth_interval_doubles_the_scale_after_2000_clean_steps():
    """fp16-mixed with the default policy (initial scale 2^15, interval 2,000, Keras' LossScaleOptimizer's):
    2,000 clean steps through fit leave the scale at 2^15 until the last one doubles it. The only test of the
    default interval; a tiny model, so its 2,000 steps take under a second."""
    m = Sequential([Dense(4, 3)], optimizer="sgd", backend="numpy", seed=1, precision="fp16-mixed")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((1999 * 2, 4)).astype(np.float32), rng.integers(0, 3, 1999 * 2)
    m.fit(X, y, epochs=1, batch_size=2, shuffle=False)  # 1,999 clean steps
    assert (float(m.state.loss_scale["scale"]), float(m.state.loss_scale["good"])) == (2.0 ** 15, 1999.0)
    m.fit(X[:2], y[:2], epochs=1, batch_size=2, shuffle=False)  # the 2,000th
    assert (float(m.state.loss_scale["scale"]), float(m.state.loss_scale["good"])) == (2.0 ** 16, 0.0)


def test_loss_scale_update_rule():
    xp = Backend("numpy").xp
    st = {"scale": np.float32(8.0), "good": np.float32(2.0)}
    assert float(LossScale.update(xp, st, np.bool_(True), 3)["scale"]) == 16.0
    assert float(LossScale.update(xp, st, np.bool_(True), 4)["good"]) == 3.0
    out = LossScale.update(xp, st, np.bool_(False), 3)
    assert (float(out["scale"]), float(out["good"])) == (4.0, 0.0)


def test_checkpoint_holds_float32_and_resumes_exactly(tmp_path):
    """A fp16-mixed fit saved after 2 epochs and resumed for a third equals 3 epochs in one go, bit for bit,
    loss scale included; the checkpoint's arrays are float32."""
    X, y = _data(64)
    full = _model("numpy", Policy("fp16-mixed", growth_interval=3), optimizer="sgd")
    full.fit(X, y, epochs=3, batch_size=16)
    part = _model("numpy", Policy("fp16-mixed", growth_interval=3), optimizer="sgd")
    part.fit(X, y, epochs=2, batch_size=16)
    resumed = load(part.save(tmp_path / "part.safetensors"))
    assert resumed.precision.name == "fp16-mixed"
    assert {str(v.dtype) for v in resumed.state.params.values()} == {"float32"}
    resumed.fit(X, y, epochs=3, batch_size=16, resume=True)
    for k, v in _host(full, full.state.params).items():
        np.testing.assert_array_equal(_host(resumed, resumed.state.params)[k], v)
    assert float(resumed.state.loss_scale["scale"]) == float(full.state.loss_scale["scale"])
    assert float(resumed.state.loss_scale["good"]) == float(full.state.loss_scale["good"])


@pytest.mark.parametrize("backend,precision", [("torch", "bf16-mixed"), ("jax", "fp16-mixed"),
                                               ("numpy", "fp16-mixed")])
def test_sequence_model_one_step(backend, precision):
    """Embedding, attention (its softmax an island), LayerNorm: one step's gradients within TOL of float32's, the
    embedding table's gradient (a float32 scatter-add) among them."""
    if not installed(backend):
        pytest.skip(f"{backend} not installed")
    from xpnet.layers import Embedding, LayerNorm, MultiHeadAttention, PositionalEmbedding
    ids = np.random.default_rng(0).integers(0, 7, (4, 5))
    grads = []
    for p in (None, precision):
        m = Sequential([Embedding(7, 8, std=1.0), PositionalEmbedding(5, 8), MultiHeadAttention(8, 2),
                        LayerNorm(8), Dense(8, 7)], backend=backend, seed=3, input_shape=(5,), precision=p)
        x = m.bk.asarray(ids)
        grads.append(_host(m, m.value_and_grads(x, x, indices=True)[2]))
    # five layers of bfloat16 rounding (8 bits of mantissa) add up: measured 1.03e-2 (torch, with or without its
    # native attention; JAX alike), float16 about 1e-3: twice the MLP's tolerance here
    assert _rel(grads[1], grads[0]) < 2 * TOL[precision]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_compiled_step_scales_without_retracing(backend):
    """compile=True with fp16-mixed: overflowing steps skipped inside the one traced step (the scale halved each
    time, parameters untouched), clean steps train and grow the scale, and nothing retraces (one trace per
    minibatch shape: the scale and its counter are arguments, selected with where). bf16-mixed compiles too."""
    if not installed(backend):
        pytest.skip(f"{backend} not installed")
    X, y = _data(64)
    policy = Policy("fp16-mixed", growth_interval=2, initial_scale=2.0 ** 40)  # scaled gradients overflow float16
    m = _model(backend, policy, optimizer="sgd", compile=True)
    start = _host(m, m.state.params)
    if backend == "torch":
        import torch
        counters = torch._dynamo.utils.counters
        counters.clear()
    m.fit(X, y, epochs=1, batch_size=32, shuffle=False)  # two overflowing steps (the loss itself stays finite)
    assert float(m.bk.to_numpy(m.state.loss_scale["scale"])) == 2.0 ** 38
    for k, v in _host(m, m.state.params).items():
        np.testing.assert_array_equal(v, start[k])
    m.state.loss_scale = {"scale": m.bk.asarray(2.0 ** 10, dtype=m.bk.xp.float32), "good": m.state.loss_scale["good"]}
    m.fit(X, y, epochs=1, batch_size=32, shuffle=False)  # two clean steps: the interval of 2 doubles the scale
    assert float(m.bk.to_numpy(m.state.loss_scale["scale"])) == 2.0 ** 11
    if backend == "torch":
        # one frame, one graph, no graph break, no recompile for a new scale; late in a full test session torch's
        # backend has been seen to compile that one graph twice (as in tests/test_sequence_compile.py)
        seen = {k: dict(v) for k, v in counters.items()}
        assert seen["frames"]["total"] == 1 and seen["stats"]["unique_graphs"] == 1, seen
        assert not seen.get("graph_break") and not seen.get("recompiles"), seen
        assert m.compile_traces_ in (1, 2), seen
    else:
        assert m.compile_traces_ == 1
    assert all(np.isfinite(v).all() for v in _host(m, m.state.params).values())
    eager = _model(backend, policy, optimizer="sgd")
    eager.fit(X, y, epochs=1, batch_size=32, shuffle=False)
    assert float(eager.bk.to_numpy(eager.state.loss_scale["scale"])) == 2.0 ** 38
    eager.state.loss_scale = {"scale": eager.bk.asarray(2.0 ** 10, dtype=eager.bk.xp.float32),
                              "good": eager.state.loss_scale["good"]}
    eager.fit(X, y, epochs=1, batch_size=32, shuffle=False)
    assert _rel(_host(m, m.state.params), _host(eager, eager.state.params)) < 1e-3
    bf = _model(backend, "bf16-mixed", compile=True).fit(X, y, epochs=2, batch_size=32)
    f32 = _model(backend, None, compile=True).fit(X, y, epochs=2, batch_size=32)
    # one trace each for the one minibatch shape; late in a full test session torch's backend has been seen to
    # compile its one graph twice (as tests/test_sequence_compile.py allows), for either run independently
    assert bf.compile_traces_ <= (2 if backend == "torch" else f32.compile_traces_), (bf.compile_traces_,
                                                                                      f32.compile_traces_)
    assert {str(v.dtype).rsplit(".", 1)[-1] for v in bf.state.params.values()} == {"float32"}


def test_cli_train_precision(tmp_path):
    """xpnet train --precision fp16-mixed on the digits: trains, the checkpoint holds float32 weights and the
    policy; array-api-strict is refused in one line naming the backends with float16."""
    import subprocess
    import sys
    from safetensors.numpy import load_file
    ck = tmp_path / "m.safetensors"
    run = lambda *a: subprocess.run([sys.executable, "-m", "xpnet", "train", "--dataset", "digits", "--epochs", "2",  # noqa: E731
                                     "--hidden", "16", "--quiet", *a], capture_output=True, text=True, timeout=300)
    proc = run("--backend", "numpy", "--precision", "fp16-mixed", "--checkpoint", str(ck), "--json")
    assert proc.returncode == 0, proc.stderr
    import json
    assert json.loads(proc.stdout.strip().splitlines()[-1])["precision"] == "fp16-mixed"
    assert {str(v.dtype) for k, v in load_file(ck).items() if k.startswith("param/")} == {"float32"}
    assert load(ck).precision.name == "fp16-mixed"
    proc = run("--backend", "array_api_strict", "--precision", "bf16-mixed")
    assert proc.returncode != 0 and "has no bfloat16" in proc.stderr and "runs on: torch, jax" in proc.stderr


def test_accumulate_and_clipping_in_float32():
    """accumulate=2 sums float32 micro-batch gradients; clip_norm clips them in float32 (the pre-clip norm within
    TOL of float32's), fp16 loss scale and all."""
    from xpnet.optimizers import Adam
    X, y = _data()
    norms, params = [], []
    for p in (None, "fp16-mixed"):
        m = _model("numpy", p, optimizer=Adam(lr=0.01, clip_norm=0.1))
        x, yy = m.bk.asarray(X), m.bk.asarray(y)
        m.train_step(x, yy, accumulate=2, indices=True)
        norms.append(float(m.state.grad_norm))
        params.append(_host(m, m.state.params))
        assert {str(g.dtype) for g in m.state.grads.values()} == {"float32"}
    assert abs(norms[1] - norms[0]) / norms[0] < TOL["fp16-mixed"]
    # Adam's first step is about lr * sign(g): layers.0.bias, whose gradient is zero up to rounding (BatchNorm
    # follows), takes random signs, so it is left out
    params[0].pop("layers.0.bias"), params[1].pop("layers.0.bias")
    assert _rel(params[1], params[0]) < TOL["fp16-mixed"]


@pytest.fixture(scope="module")
def two_ranks():
    """One `mpiexec -n 2` launch of tests/mpi_precision_worker.py (a few seconds): its JSON report."""
    from test_distributed import HERE, MPIEXEC, _has_mpi4py, last_json, mpirun
    if MPIEXEC is None or not _has_mpi4py():
        pytest.skip('needs mpi4py and mpiexec: pip install "xpnet[mpi]"')
    return last_json(mpirun(2, HERE / "mpi_precision_worker.py", "numpy", timeout=120))


def test_data_parallel_fp16_is_the_one_process_fit(two_ranks):
    """fp16-mixed fit(distributed=) on 2 ranks against one process, 18 momentum-SGD steps: float32 gradients summed
    by the all-reduce, the parameters within 5e-3 of the one-process run (measured 8.5e-4: each rank sums its
    shard's rows in float16, the one process all of them), every rank bit-identical, the same loss scale."""
    fit = two_ranks["fit"]
    assert fit["ranks"] == 2 and fit["ranks_identical"] and fit["scales_agree"], fit
    assert fit["params"] < 5e-3, fit
    assert fit["scale_one"] == fit["scale_many"] == 2.0 ** 15, fit


def test_data_parallel_overflow_on_one_rank_skips_on_every_rank(two_ranks):
    """Rank 1's rows scaled by 1000: only its float16 gradient overflows (local flags [finite, not]); the all-reduced
    gradient is then non-finite on both ranks, so both skip the step (parameters and momentum unchanged), both halve
    the scale, and the ranks stay bit-identical: no separate all-reduce of the flag is needed."""
    ov = two_ranks["overflow"]
    assert ov["local_finite"] == [True, False], ov
    assert ov["unchanged"] == [True, True] and ov["ranks_identical"], ov
    assert ov["scales_after"] == [ov["scale_before"] / 2] * 2 and ov["loss_finite"], ov


def test_summing_keeps_a_non_finite_gradient_non_finite():
    """What the data-parallel decision rests on: a sum with an inf or nan term is not finite, so checking the summed
    gradient is checking every rank's flag (xpnet.distributed.data_parallel's docstring)."""
    xp = Backend("numpy").xp
    finite = np.array([1.0, -2.0], np.float32)
    for bad in (np.inf, -np.inf, np.nan):
        other = np.array([bad, 0.0], np.float32)
        with np.errstate(invalid="ignore"):
            assert not bool(LossScale.all_finite(xp, {"w": finite + other}))
    with np.errstate(invalid="ignore"):
        both = np.array([np.inf], np.float32) + np.array([-np.inf], np.float32)
        assert not bool(LossScale.all_finite(xp, {"w": both}))


def test_cli_distributed_precision(two_ranks):
    """`mpiexec -n 2 xpnet train --distributed --precision fp16-mixed` trains (it was refused before)."""
    from test_distributed import last_json, mpirun
    out = last_json(mpirun(2, "-m", "xpnet", "train", "--distributed", "--precision", "fp16-mixed", "--dataset",
                           "digits", "--epochs", 1, "--hidden", 16, "--json", timeout=120))
    assert out["world_size"] == 2 and out["test_accuracy"] > 0.5, out


def test_compiled_step_on_a_dataset_carries_the_loss_scale():
    """fit on a map-style dataset with compile=True under fp16-mixed: the loss-scale state goes through the compiled
    step as on arrays (it was left out: the step failed); an initial 2**40 overflows, both steps skip and halve it,
    the parameters stay as they were."""
    if not installed("jax"):
        pytest.skip("jax not installed")

    class Rows:
        def __init__(self, X, y):
            self.X, self.y = X, y

        def __len__(self):
            return len(self.X)

        def __getitems__(self, idx):
            return self.X[idx], self.y[idx]

    X, y = _data(64)
    m = Sequential([Dense(20, 16), "relu", Dense(16, 3)], optimizer="sgd", backend="jax", seed=1, compile=True,
                   precision=Policy("fp16-mixed", initial_scale=2.0 ** 40))
    start = _host(m, m.state.params)
    m.fit(Rows(X, y), None, epochs=1, batch_size=32, shuffle=False)
    assert float(m.bk.to_numpy(m.state.loss_scale["scale"])) == 2.0 ** 38
    for k, v in _host(m, m.state.params).items():
        np.testing.assert_array_equal(v, start[k])
