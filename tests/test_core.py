"""The pure training core: gradients apart from updates, optimizer state from the start, host scalars,
gradient accumulation, the TrainState, shape-aware layers and N-D inputs."""
import re
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.parity import rel_diff


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X / 16.0, y, Xt / 16.0, yt


def mlp(bk="numpy", dtype="float64", extra=(), loss="softmax_cross_entropy", optimizer=None, **kw):
    return xpnet.Sequential([xpnet.Dense(64, 32), xpnet.Tanh(), *extra, xpnet.Dense(32, 10)], loss=loss,
                            optimizer=optimizer or xpnet.SGD(0.05, momentum=0.9), l1=1e-4, l2=1e-3, backend=bk,
                            dtype=dtype, seed=0, **kw)


def host(model, tree):
    return {k: model.bk.to_numpy(v, copy=True) for k, v in tree.items()}


def test_value_and_grads_changes_nothing(digits):
    m = mlp()
    X, Y = m.as_input(digits[0][:50]), m.as_targets(digits[1][:50], 50)[0]
    before, opt_before = host(m, m.state.params), {k: host(m, b) for k, b in m.state.opt_state.items()}
    v1, _, g1 = m.value_and_grads(X, Y)
    v2, _, g2 = m.value_and_grads(X, Y)
    assert float(v1) == float(v2) and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert all(np.array_equal(before[k], v) for k, v in host(m, m.state.params).items())
    assert m.state.step == 0 and all(np.array_equal(opt_before[k][b], m.state.opt_state[k][b])
                                     for k in opt_before for b in opt_before[k])
    m.apply_gradients(g1)
    assert m.state.step == 1 and not np.array_equal(before["layers.0.weight"], m.state.params["layers.0.weight"])


@pytest.mark.parametrize("make", [lambda: xpnet.SGD(0.1, momentum=0.9), lambda: xpnet.BookSGD(0.1, alpha=0.5),
                                  lambda: xpnet.Adam(), lambda: xpnet.AdamW()], ids=["momentum", "book", "adam", "adamw"])
def test_optimizer_buffers_exist_from_the_start(make):
    m = mlp(optimizer=make())
    opt = m.state.opt_state
    assert set(opt) == set(m.state.params)
    assert all(set(bufs) == set(m.optimizer.buffers) and all(not np.any(b) for b in bufs.values()) for bufs in opt.values())
    assert all(opt[k][b].shape == m.state.params[k].shape for k in opt for b in opt[k])


def test_adam_scalars_are_host_float64():
    adam = xpnet.Adam(0.001, beta1=0.9, beta2=0.999)
    h = adam.hyper(0.001, 3)
    assert all(type(v) is float for v in h.values())
    assert h["step_size"] == 0.001 / (1.0 - 0.9 ** 3) and h["bias2"] == 1.0 - 0.999 ** 3


def _one_batch(m, X, y, accumulate, noise=None):
    Xd, Yd = m.as_input(X), m.as_targets(y, len(y))[0]
    value, z, grads = m.value_and_grads(Xd, Yd, noise=noise, accumulate=accumulate)
    return float(value), m.bk.to_numpy(z), host(m, grads)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse", "logistic"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("k", [2, 3, 7])
def test_accumulated_micro_batches_equal_one_batch(xpnet_backend, digits, loss, reduction, k):
    """k micro-batches (50 rows split unevenly) give the one-batch loss, logits and gradients within 1e-13
    (parity's metric, float64), dropout included: its uniforms are drawn for the whole batch and sliced."""
    X, y = digits[0][:50], digits[1][:50]
    m = mlp(xpnet_backend, extra=[xpnet.Dropout(0.3)], loss=xpnet.LOSSES[loss](reduction=reduction))
    noise = m.draw_noise(50)
    v1, z1, g1 = _one_batch(m, X, y, 1, noise)
    vk, zk, gk = _one_batch(m, X, y, k, noise)
    assert rel_diff(vk, v1)[1] <= 1e-13 and rel_diff(zk, z1)[1] <= 1e-13
    worst = max(rel_diff(gk[n], g1[n])[1] for n in g1)
    assert worst <= 1e-13, worst


def test_fit_with_accumulation_trains_the_same_run(digits):
    X, y = digits[0][:400], digits[1][:400]
    a = mlp(extra=[xpnet.Dropout(0.2)]).fit(X, y, epochs=3, batch_size=64)
    b = mlp(extra=[xpnet.Dropout(0.2)]).fit(X, y, epochs=3, batch_size=64, accumulate=4)
    assert a.state.step == b.state.step == 3 * 7  # the step count counts updates
    worst = max(rel_diff(b.parameters()[k], v)[1] for k, v in a.parameters().items())
    assert worst <= 1e-12, worst
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=1e-12)
    with pytest.raises(xpnet.InputError, match="^accumulate=0: must be a positive integer$"):
        mlp().fit(X, y, epochs=1, accumulate=0)



def test_accumulate_beyond_the_minibatch_is_refused(digits):
    """accumulate=64 with batch 32 made 32 micro-batches of one sample (20x slower) without a word (issue 23).
    Refused before any step; in data-parallel training each rank splits its shard of the minibatch, so the
    limit is the largest shard's rows (here 4 ranks: 8 of 32)."""
    from xpnet.distributed import Communicator
    X, y = digits[0][:96], digits[1][:96]
    m = mlp()
    with pytest.raises(xpnet.InputError, match=r"^accumulate=64: must be an integer from 1 to 32; a minibatch of 32 "
                                               r"samples is split into micro-batches of one sample or more: lower "
                                               r"it, or raise the batch size$"):
        m.fit(X, y, epochs=1, batch_size=32, accumulate=64)
    assert m.state.step == 0
    with pytest.raises(xpnet.InputError, match=r"^accumulate=13: must be an integer from 1 to 12; "):
        mlp().fit(X, y, epochs=1, minibatches=8, accumulate=13)  # 96 rows in 8 minibatches of 12
    assert mlp().fit(X, y, epochs=1, batch_size=32, accumulate=32).state.step == 3  # one sample each: allowed
    four = object.__new__(Communicator)  # rank 0 of 4; the check comes before any collective call
    four.rank, four.size = 0, 4
    with pytest.raises(xpnet.InputError, match=r"^accumulate=9: must be an integer from 1 to 8; each of 4 ranks "
                                               r"splits its 8 of a minibatch's 32 samples into micro-batches of one "
                                               r"sample or more: lower it, or raise the batch size$"):
        mlp().fit(X, y, epochs=1, batch_size=32, accumulate=9, distributed=four)


@pytest.mark.parametrize("stop_at, where", [(3, "in epoch 2, after step 3 of 4"),
                                            (4, "after the last step of epoch 2 (4 of 4)")])
def test_interrupt_names_the_epoch_it_stopped_in(digits, stop_at, where):
    """It said 'stopped at epoch 2, step 3' of a stop inside epoch 2 (the CLI: 'after epoch 2, step 3')."""
    X, y = digits[0][:96], digits[1][:96]

    class Stop:
        def on_batch_end(self, model, step, total):
            model.stop_requested = model.state.epoch == 1 and step == stop_at

    with pytest.raises(xpnet.TrainingInterrupted, match=f"^stopped {re.escape(where)}$") as info:
        mlp().fit(X, y, epochs=3, batch_size=25, callbacks=[Stop()])
    assert info.value.where == where and (info.value.epoch, info.value.step, info.value.steps) == (2, stop_at, 4)

def test_train_state_is_what_fit_reads_and_writes(digits):
    X, y = digits[0][:96], digits[1][:96]
    m = mlp().fit(X, y, epochs=2, batch_size=32)
    st = m.state
    assert isinstance(st, xpnet.TrainState)
    assert (st.epoch, st.batch, st.step) == (2, 0, 6) and st.settings["n"] == 96 and st.lr == 0.05
    assert m.history_ is st.history and m.batch_losses_ is st.batch_losses and len(st.batch_losses) == 6
    assert m.order_ is st.order and sorted(st.order) == list(range(96))
    with pytest.warns(DeprecationWarning, match="model.state"):
        assert m.progress_ is st
    nn = xpnet.NeuralNetMLP(n_output=10, n_features=64, n_hidden=5, epochs=1, minibatches=2, random_state=1)
    nn.fit(X * 16, y)
    assert nn.cost_ == nn.state.batch_losses and len(nn.cost_) == 2
    with pytest.warns(DeprecationWarning, match="is a Sequential"):
        assert nn.model is nn
    with pytest.raises(xpnet.InputError, match="nothing to resume"):
        mlp().fit(X, y, epochs=1, resume=True)


def test_dropout_gets_its_uniforms_from_the_caller(digits):
    m = mlp(extra=[xpnet.Dropout(0.5)])
    X, Y = m.as_input(digits[0][:8]), m.as_targets(digits[1][:8], 8)[0]
    with pytest.raises(xpnet.InputError, match="Dropout needs its U\\[0, 1\\) draws"):
        m.value_and_grads(X, Y)
    noise = m.draw_noise(8)
    assert [None if a is None else tuple(a.shape) for a in noise] == [None, None, (8, 32), None]
    v1, _, _ = m.value_and_grads(X, Y, noise=noise)
    v2, _, _ = m.value_and_grads(X, Y, noise=noise)
    assert float(v1) == float(v2)  # same draws in, same result out
    assert float(m.value_and_grads(X, Y, training=False)[0]) != float(v1)  # no dropout when not training


def test_images_through_flatten_equal_flat_rows(digits):
    """N-D input: (n, 8, 8) images through Flatten train exactly as the flat (n, 64) rows."""
    X, y = digits[0][:200], digits[1][:200]
    flat = xpnet.Sequential([xpnet.Dense(64, 16), xpnet.ReLU(), xpnet.Dense(16, 10)], dtype="float64", seed=3)
    images = xpnet.Sequential([xpnet.Flatten(), xpnet.Dense(16), xpnet.ReLU(), xpnet.Dense(10)],
                              input_shape=(8, 8), dtype="float64", seed=3)
    assert images.input_shape == (8, 8) and images.n_features == 64 and images.output_shape == (10,)
    flat.fit(X, y, epochs=2, batch_size=25)
    images.fit(X.reshape(-1, 8, 8), y, epochs=2, batch_size=25)
    assert all(np.array_equal(images.parameters()[k.replace("layers.0", "layers.1").replace("layers.2", "layers.3")], v)
               for k, v in flat.parameters().items())
    np.testing.assert_array_equal(images.predict(X.reshape(-1, 8, 8)), flat.predict(X))


@pytest.mark.parametrize("X, message", [
    (np.zeros((3, 64)), r"must be 3-D \(samples, 8, 8\), got shape \(3, 64\) \(flat rows\? reshape them"),
    (np.zeros((3, 8, 9)), r"samples of shape \(8, 9\) but the model expects \(8, 8\)"),
    (np.zeros((8, 8)), r"one sample\? use X\[None\]"),
])
def test_nd_input_errors(X, message):
    m = xpnet.Sequential([xpnet.Flatten(), xpnet.Dense(10)], input_shape=(8, 8))
    with pytest.raises(xpnet.InputError, match=message):
        m.fit(X, np.zeros(len(X), dtype=int), epochs=1)


def test_channels_last_hint():
    m = xpnet.Sequential([xpnet.Flatten(), xpnet.Dense(10)], input_shape=(1, 28, 28))
    with pytest.raises(xpnet.InputError, match=r"channels last\? transpose it .*X.transpose\(0, 3, 1, 2\)"):
        m.predict(np.zeros((2, 28, 28, 1)))


@pytest.mark.parametrize("make, message", [
    (lambda: xpnet.Sequential([xpnet.Flatten(), xpnet.Dense(10)]), "does not say its input size; pass input_shape="),
    # Dense now works on the last axis of N-D input (issue 31); such a model is still refused, for its N-D logits
    (lambda: xpnet.Sequential([xpnet.Dense(10)], input_shape=(2, 3)), r"outputs of shape \(2, 10\) .* Flatten\(\)"),
    (lambda: xpnet.Sequential([xpnet.Dense(4, 3), xpnet.Dense(5, 2)]), "Dense expects 5 input features but the previous"),
    (lambda: xpnet.Sequential([]), "needs at least one layer"),
    (lambda: xpnet.Dense(4, 3, init="zeros_please"), "unknown initializer 'zeros_please'; choose one of: uniform"),
])
def test_shape_errors(make, message):
    with pytest.raises(xpnet.InputError, match=message):
        make()


def test_penalty_applies_to_declared_parameters_only(digits):
    m = mlp()
    assert m._penalized == ["layers.0.weight", "layers.2.weight"]
    X, Y = m.as_input(digits[0][:20]), m.as_targets(digits[1][:20], 20)[0]
    plain = mlp()
    plain.penalty = xpnet.Penalty()
    _, _, g = m.value_and_grads(X, Y)
    _, _, g0 = plain.value_and_grads(X, Y)
    assert np.array_equal(g["layers.0.bias"], g0["layers.0.bias"])
    assert not np.array_equal(g["layers.0.weight"], g0["layers.0.weight"])


def test_initializers_get_fans_from_the_shape():
    from xpnet import init
    rng = np.random.default_rng(0)
    w = init.he_uniform(rng, (30, 20), 20, 30)
    assert w.shape == (30, 20) and np.abs(w).max() <= np.sqrt(6 / 20)
    assert init.he_uniform(np.random.default_rng(1), (30, 20), 20, 30).std() == pytest.approx(np.sqrt(2 / 20), rel=0.1)
    w = init.normal_in_out(np.random.default_rng(0), (3, 2), 2, 3)
    assert np.array_equal(w, np.random.default_rng(0).normal(0.0, 0.1, size=(2, 3)).T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert init.get("xavier_uniform") is init.glorot_uniform


def test_last_gradients_stay_inspectable(digits):
    m = mlp()
    X, Y = m.as_input(digits[0][:30]), m.as_targets(digits[1][:30], 30)[0]
    assert m.state.grads is None
    _, _, expected = m.value_and_grads(X, Y)
    expected = host(m, expected)
    m.train_step(X, Y)
    assert m.state.grads.keys() == expected.keys()
    assert all(np.array_equal(m.state.grads[k], v) for k, v in expected.items())


def test_mlp_specs_take_one_activation_per_hidden_layer():
    specs = xpnet.mlp_specs([2, 3, 4, 2], ["relu", "tanh"])
    assert [s["class"] for s in specs] == ["Dense", "relu", "Dense", "tanh", "Dense"]
    assert [s["config"]["init"] for s in specs if s["class"] == "Dense"] == ["he_normal", "glorot_uniform",
                                                                             "glorot_uniform"]
    assert xpnet.mlp_specs([2, 3, 3, 2], ["sigmoid", "sigmoid"]) == xpnet.mlp_specs([2, 3, 3, 2], "sigmoid")
    with pytest.raises(xpnet.InputError, match="^activation lists 2 activations for 1 hidden layer; give one per"):
        xpnet.mlp_specs([2, 3, 2], ["relu", "tanh"])
    with pytest.raises(xpnet.InputError, match="unknown layer 'swish'"):
        xpnet.mlp_specs([2, 3, 2], ["swish"])
