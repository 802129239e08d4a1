"""Sequence models in the loop (issue 31): token ids stay integer on every path (eager, accumulate, compiled,
data-parallel, evaluate/predict), (time, vocab) logits trained on (samples, time) integer targets with the
loss and accuracy over every position, the tiny transformer's float64 parity on every CPU backend, its
mpiexec run against one process, and causality at the model level."""
import numpy as np
import pytest

import xpnet
from fakes import installed
from xpnet import Dense, Embedding, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.parity import rel_diff
from xpnet.tools.parity import sequence_problem, transformer_model

from test_distributed import HERE, last_json, mpirun, needs_mpi

CPU_BACKENDS = [b for b in ("numpy", "array_api_strict", "torch", "jax") if installed(b)]
COMPILERS = [b for b in ("jax", "torch") if installed(b)]
X, Y = sequence_problem(n=24)  # (24, 6) token ids in [0, 11), (24, 6) next tokens


def _params(model):
    return model.get_state()["params"]


def _worst(a, b):
    return max(rel_diff(a[k], b[k])[1] for k in b)


def test_sequence_loss_is_torch_cross_entropy_over_every_position():
    """Softmax cross-entropy on (batch, time, vocab) logits and (batch, time) integer targets: the mean over
    batch * time positions, value and gradient within 1e-10 of torch's cross_entropy on the flattened logits."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    z, t = rng.standard_normal((3, 5, 7)) * 2, rng.integers(0, 7, (3, 5))
    value, dz = SoftmaxCrossEntropy()(z, t)
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt.reshape(-1, 7), torch.tensor(t).reshape(-1))
    ref.backward()
    assert rel_diff(np.asarray(value), ref.detach().numpy())[1] <= 1e-10
    assert dz.shape == (3, 5, 7) and rel_diff(dz, zt.grad.numpy())[1] <= 1e-10


def test_token_ids_stay_integer_and_class_models_still_cast():
    model = transformer_model("numpy", "float64")
    assert model.integer_input and model.output_shape == (6, 11) and model.n_outputs == 11
    assert model.positions == 6 and model.target_shape == (6,)
    ids = model.as_input(X)
    assert ids.dtype == np.int64 and model.cast(ids) is ids
    mlp = xpnet.Sequential([Dense(4, 3), ReLU(), Dense(3, 2)], backend="numpy")
    assert not mlp.integer_input and mlp.positions == 1
    assert mlp.cast(np.ones((2, 4), dtype=np.int64)).dtype == np.float32


@pytest.fixture(scope="module")
def eager_fit():
    return transformer_model("numpy", "float64").fit(X, Y, epochs=2, batch_size=8, shuffle=False)


def test_fit_accumulate_and_inference_on_token_ids(eager_fit):
    """fit trains on (samples, time) integer targets; accumulate=2 is the same run; evaluate's accuracy is every
    position's (predict (samples, time) against y), its loss torch's cross_entropy over the flattened logits."""
    acc = transformer_model("numpy", "float64").fit(X, Y, epochs=2, batch_size=8, shuffle=False, accumulate=2)
    assert _worst(_params(acc), _params(eager_fit)) <= 1e-10
    assert rel_diff(np.asarray(acc.batch_losses_), np.asarray(eager_fit.batch_losses_))[1] <= 1e-10
    pred = eager_fit.predict(X)
    assert pred.shape == (24, 6) and pred.dtype.kind in "iu"
    loss, accuracy = eager_fit.evaluate(X, Y, batch_size=7)
    assert accuracy == pytest.approx(float((pred == Y).mean()), abs=1e-12) == pytest.approx(eager_fit.score(X, Y))
    z, _ = eager_fit.forward(X)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    nll = -np.log(np.take_along_axis(e / e.sum(axis=-1, keepdims=True), Y[..., None], axis=-1)).mean()
    assert loss == pytest.approx(float(nll), rel=1e-10)
    assert 0.0 <= eager_fit.history_["accuracy"][-1] <= 1.0 and len(eager_fit.batch_losses_) == 6


@pytest.mark.parametrize("name", COMPILERS)
def test_compiled_fit_on_token_ids_is_the_eager_fit(name, eager_fit):
    """compile=True (jax.jit / torch.compile): the token ids reach Embedding integer inside the compiled step,
    and the run equals NumPy's eager fit in float64, accuracy included."""
    model = transformer_model(name, "float64")
    model.compile = True
    model.fit(X, Y, epochs=2, batch_size=8, shuffle=False)
    assert model.compile_traces_ >= 1
    assert _worst(_params(model), _params(eager_fit)) <= 1e-10
    assert model.history_["accuracy"] == pytest.approx(eager_fit.history_["accuracy"], abs=1e-12)


def test_sequence_targets_refused_in_one_line():
    model = transformer_model("numpy", "float64")
    ids = model.as_input(X[:4])
    model.check_targets(ids, model.bk.asarray(Y[:4]), indices=True)  # (batch, time) integer indices pass
    with pytest.raises(xpnet.InputError, match=r"integer class indices of shape \(4, 6\)"):
        model.check_targets(ids, model.bk.asarray(Y[:4, 0]), indices=True)
    for bad, match in ((Y[:, 0], r"integer targets of shape \(samples, 6\) = \(24, 6\)"),
                       (Y.astype(float), r"integer targets"), (Y + 5, r"targets from 5 to 15 .* 11 outputs")):
        with pytest.raises(xpnet.InputError, match=match) as info:
            model.fit(X, bad, epochs=1)
        assert "\n" not in str(info.value)
    with pytest.raises(xpnet.InputError, match="sample_weight"):
        model.fit(X, Y, epochs=1, sample_weight=np.ones(24))
    with pytest.raises(xpnet.InputError, match="neither 1-D|logits must be"):
        xpnet.Sequential([Embedding(11, 4)], input_shape=(2, 3))  # (2, 3, 4): no per-position logits


@pytest.mark.parametrize("compiled", [False, True])
def test_transformer_parity_on_every_cpu_backend(compiled):
    """The tiny transformer (Embedding, PositionalEmbedding, residual attention and MLP blocks, LayerNorm,
    Dense(vocab)): float64 lockstep within 1e-10 of NumPy on every installed CPU backend, compiled JAX and
    torch included."""
    backends = COMPILERS if compiled else CPU_BACKENDS
    report = xpnet.parity(model="transformer", backends=backends, dtypes=["float64"], steps=2, compile=compiled)
    rows = [r for r in report["results"] if not r.get("skipped")]
    assert report["passed"], [(r["label"], r["max_rel_diff"], r.get("error")) for r in rows]
    assert {r["backend"] for r in rows} == set(backends)
    assert all(r["max_rel_diff"] <= 1e-10 for r in rows), [(r["label"], r["max_rel_diff"]) for r in rows]
    if compiled:
        assert {f"{b} (compiled)" for b in backends} <= {r["label"] for r in rows}


@needs_mpi
def test_data_parallel_transformer_is_the_one_process_fit():
    """mpiexec -n 2: the tiny transformer on token ids trained on two ranks equals the one-process fit to rounding,
    every rank bit-identical (tests/mpi_transformer_worker.py)."""
    out = last_json(mpirun(2, HERE / "mpi_transformer_worker.py", "numpy", "float64", timeout=120))
    assert out["ranks"] == 2 and out["steps"] == 8 and out["ranks_identical"], out
    assert out["params"] <= 1e-12 and out["batch_losses"] <= 1e-12, out
    assert np.allclose(out["accuracy"][0], out["accuracy"][1], rtol=0, atol=1e-12), out


@pytest.mark.parametrize("name", [b for b in ("numpy", "torch") if installed(b)])
def test_changing_a_later_token_never_changes_earlier_logits(name):
    """Causality of the whole model: a token changed at position t changes no logits before t, and changes t's."""
    model = transformer_model(name, "float64")
    to_np = model.bk.to_numpy
    base = to_np(model.forward(model.as_input(X[:5]))[0])
    for t in range(X.shape[1]):
        other = X[:5].copy()
        other[:, t] = (other[:, t] + 3) % 11
        z = to_np(model.forward(model.as_input(other))[0])
        assert np.array_equal(z[:, :t], base[:, :t]), t
        assert not np.allclose(z[:, t], base[:, t]), t
