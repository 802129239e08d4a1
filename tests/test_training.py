"""Sequential.fit: minibatches, shuffles, history, validation, early stopping, callbacks, dropout,
optimizers and schedules, dtype handling, cross-backend equality of whole training runs, clear errors."""
import math
import re
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.parity import rel_diff
from xpnet import SCHEDULES
from xpnet.schedules import BookDecay
from xpnet.training import batch_bounds


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X / 16.0, y, Xt / 16.0, yt


def mlp(bk="numpy", dtype="float64", seed=0, optimizer=None, extra=(), **kw):
    layers = [xpnet.Dense(64, 32), xpnet.Tanh(), *extra, xpnet.Dense(32, 10)]
    return xpnet.Sequential(layers, optimizer=optimizer or xpnet.SGD(0.05, momentum=0.9), backend=bk, dtype=dtype,
                            seed=seed, **kw)


@pytest.mark.parametrize("n, k", [(10, 3), (60000, 50), (7, 7), (101, 4)])
def test_minibatches_split_like_array_split(n, k):
    expected = [(int(c[0]), int(c[-1]) + 1) for c in np.array_split(np.arange(n), k)]
    assert batch_bounds(n, minibatches=k) == expected


def test_batch_size_bounds():
    assert batch_bounds(10, batch_size=4) == [(0, 4), (4, 8), (8, 10)]


def test_learns_digits(digits):
    X, y, Xt, yt = digits
    model = mlp().fit(X, y, epochs=15, batch_size=32)
    h = model.history_
    assert len(h["loss"]) == 15 and h["loss"][-1] < h["loss"][0]
    assert set(h) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert model.score(Xt, yt) > 0.93


def test_whole_runs_agree_across_backends(xpnet_backend, digits):
    """Two epochs of shuffled minibatches with dropout from the host RNG: the same numbers on every backend."""
    X, y = digits[0][:400], digits[1][:400]
    ref = mlp(extra=[xpnet.Dropout(0.2)]).fit(X, y, epochs=2, batch_size=50)
    other = mlp(xpnet_backend, extra=[xpnet.Dropout(0.2)]).fit(X, y, epochs=2, batch_size=50)
    rp, op = ref.parameters(), other.parameters()
    worst = max(rel_diff(xpnet_backend.to_numpy(op[k]), rp[k])[1] for k in rp)
    assert worst <= 1e-10
    assert np.allclose(ref.history_["loss"], other.history_["loss"], rtol=1e-10)
    np.testing.assert_array_equal(ref.predict(X), other.predict(X))


def test_float32_everywhere(xpnet_backend, digits):
    X, y = digits[0][:200], digits[1][:200]
    model = mlp(xpnet_backend, "float32", optimizer=xpnet.Adam()).fit(X, y, epochs=1, batch_size=64)
    f32 = xpnet_backend.dtype("float32")
    assert all(p.dtype == f32 for p in model.parameters().values())
    assert all(b.dtype == f32 for bufs in model.state.opt_state.values() for b in bufs.values())
    assert model.predict_proba(X).dtype == np.float32


def test_native_dropout_runs(xpnet_backend, digits):
    X, y = digits[0][:200], digits[1][:200]
    model = mlp(xpnet_backend, extra=[xpnet.Dropout(0.5, host_rng=False)]).fit(X, y, epochs=1, batch_size=50)
    assert math.isfinite(model.history_["loss"][0])


def test_validation_split_is_the_last_part(digits):
    X, y = digits[0][:500], digits[1][:500]
    a = mlp().fit(X, y, epochs=2, validation_split=0.2)
    b = mlp().fit(X[:400], y[:400], epochs=2, validation_data=(X[400:], y[400:]))
    assert a.history_["val_loss"] == b.history_["val_loss"]
    assert all(0 <= v <= 1 for v in a.history_["val_accuracy"])


def test_early_stopping_restores_best(digits):
    X, y = digits[0][:300], digits[1][:300]
    stopper = xpnet.EarlyStopping(patience=2, monitor="val_loss")
    model = mlp(optimizer=xpnet.SGD(0.5, momentum=0.9)).fit(X, y, epochs=200, validation_split=0.3,
                                                            early_stopping=stopper)
    h = model.history_
    assert len(h["epoch"]) < 200 and stopper.stopped_epoch == len(h["epoch"])
    best = min(h["val_loss"])
    assert h["val_loss"][-1] > best  # it stopped on a non-improvement...
    X_val, y_val = X[210:], y[210:]
    onehot = np.eye(10)[y_val]
    restored = float(model.objective(model.as_input(X_val), model.bk.asarray(onehot)) - model.penalty_cost())
    assert restored == pytest.approx(best, rel=1e-12)  # ...and put the best parameters back


def test_callbacks_can_stop(digits):
    seen = []

    def cb(model, logs):
        seen.append(logs["epoch"])
        return logs["epoch"] == 3

    mlp().fit(digits[0][:100], digits[1][:100], epochs=10, callbacks=[cb])
    assert seen == [1, 2, 3]


def test_schedule_changes_lr_per_epoch(digits):
    model = mlp(schedule=SCHEDULES["step"](2, 0.5)).fit(digits[0][:64], digits[1][:64], epochs=5)
    assert model.history_["lr"] == [0.05, 0.05, 0.025, 0.025, 0.0125]


def test_book_decay_compounds():
    d, lr = BookDecay(0.1), 1.0
    for epoch in range(4):
        lr = d(epoch, lr, 1.0)
    assert lr == 1.0 / 1.1 / 1.2 / 1.3


def test_optimizer_formulas():
    w, g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.array([-1.0, 2.0])

    def run(opt):
        params = {"w": w}
        state = opt.init(params)
        for t, g in enumerate((g1, g2), start=1):
            params, state = opt.apply(params, {"w": g}, state, opt.hyper(opt.lr, t))
        return params["w"]

    def first(opt):
        params = {"w": w}
        return opt.apply(params, {"w": g1}, opt.init(params), opt.hyper(opt.lr, 1))[0]["w"]

    buf = 0.9 * g1 + g2
    np.testing.assert_allclose(run(xpnet.SGD(0.1, momentum=0.9)), w - 0.1 * g1 - 0.1 * buf)
    np.testing.assert_allclose(run(xpnet.SGD(0.1, momentum=0.9, nesterov=True)),
                               w - 0.1 * (g1 + 0.9 * g1) - 0.1 * (g2 + 0.9 * buf))
    np.testing.assert_allclose(run(xpnet.BookSGD(0.1, alpha=0.5)), w - 0.1 * g1 - (0.1 * g2 + 0.5 * 0.1 * g1))
    # Adam's first step is lr * sign(g) (up to eps); AdamW also shrinks w by lr * weight_decay
    np.testing.assert_allclose(first(xpnet.Adam(0.01)), w - 0.01 * np.sign(g1), rtol=1e-6)
    np.testing.assert_allclose(first(xpnet.AdamW(0.01, weight_decay=0.1)), w * (1 - 0.001) - 0.01 * np.sign(g1),
                               rtol=1e-6)


def test_predict_outputs(digits):
    X, y, Xt, yt = digits
    model = mlp().fit(X[:300], y[:300], epochs=3)
    proba = model.predict_proba(Xt)
    assert isinstance(proba, np.ndarray) and proba.shape == (len(Xt), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(Xt), proba.argmax(axis=1))
    assert model.score(Xt, yt) == np.mean(model.predict(Xt) == yt)


def test_divergence_names_epoch_and_step(digits):
    X, y = digits[0][:200] * 1e3, digits[1][:200]
    model = xpnet.Sequential([xpnet.Dense(64, 10)], loss="mse", optimizer=xpnet.SGD(10.0), dtype="float64", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(xpnet.TrainingDiverged, match=r"epoch \d+, step \d+.*lower the learning rate"):
            model.fit(X, y, epochs=20, batch_size=20)


@pytest.mark.parametrize("X, y, message", [
    (np.zeros(64), [1], "must be 2-D"),
    (np.zeros((0, 64)), [], "empty"),
    (np.zeros((2, 63)), [0, 1], "has 63 features but the model expects 64"),
    (np.array([[np.nan] * 64, [0.0] * 64]), [0, 1], "NaN or infinity"),
    (np.array([["a"] * 64]), [0], "numeric"),
    (np.zeros((2, 64)), [0], "1 labels but X has 2 samples"),
    (np.zeros((2, 64)), [0, 10], "holds 2 distinct labels \\[0, 10\\], which are not 0..9"),
    (np.zeros((2, 64)), [0.5, 1], "integer class labels"),
])
def test_bad_data_is_refused_before_training(X, y, message):
    model = mlp()
    before = {k: v.copy() for k, v in model.parameters().items()}
    with pytest.raises(xpnet.InputError, match=message):
        model.fit(X, y, epochs=1)
    assert all(np.array_equal(before[k], v) for k, v in model.parameters().items())


def test_foreign_arrays_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(xpnet.InputError, match="torch array but the model runs on backend 'numpy'"):
        mlp().fit(torch.zeros((2, 64)), [0, 1], epochs=1)


@pytest.mark.parametrize("make, message", [
    (lambda: xpnet.SGD(-0.1), r"^lr=-0\.1: must be a number > 0; try 0\.01 for SGD"),
    (lambda: xpnet.Penalty(l2=-1), r"^l2=-1: must be a number >= 0$"),
    (lambda: xpnet.Dense(0, 3), r"^Dense\(in_features=0\): must be a positive integer$"),
    (lambda: xpnet.Sequential([xpnet.Dense(2, 2)], loss="hinge"), "unknown loss 'hinge'; choose one of: logistic"),
    (lambda: xpnet.Sequential([xpnet.Dense(2, 2)], optimizer="rmsprop"), "unknown optimizer"),
    (lambda: xpnet.Sequential([xpnet.Dense(2, 3), xpnet.Dense(4, 2)]), "expects 4 input features"),
    (lambda: mlp().fit(np.zeros((4, 64)), [0, 1, 2, 3], epochs=0), "^epochs=0: must be a positive integer$"),
    (lambda: mlp().fit(np.zeros((4, 64)), [0, 1, 2, 3], batch_size=0), "^batch_size=0: must be a positive integer$"),
    (lambda: mlp().fit(np.zeros((4, 64)), [0, 1, 2, 3], minibatches=5),
     "^minibatches=5: must be an integer from 1 to 4; the training data has 4 samples$"),
])
def test_bad_arguments(make, message):
    with pytest.raises(xpnet.InputError, match=message):
        make()


def test_integer_pixels_stay_integer_until_gathered(xpnet_backend, digits):
    """uint8 input trains exactly as its float copy (each gathered minibatch is cast), at 1/8 the memory."""
    X = (digits[0][:300] * 16).astype(np.uint8)
    y = digits[1][:300]
    a = mlp(xpnet_backend).fit(X, y, epochs=2, batch_size=50)
    b = mlp(xpnet_backend).fit(X.astype(np.float64), y, epochs=2, batch_size=50, validation_split=0.0)
    assert same(a, b)
    assert np.array_equal(xpnet.to_numpy(a.predict(X)), xpnet.to_numpy(b.predict(X.astype(np.float64))))
    model = mlp(xpnet_backend)
    assert model.as_input(X, keep_integers=True).dtype != model.dtype  # kept as integers on the device


def same(a, b):
    pa, pb = a.parameters(), b.parameters()
    return all(np.array_equal(xpnet.to_numpy(pa[k]), xpnet.to_numpy(pb[k])) for k in pa)


@pytest.mark.parametrize("make", [lambda: xpnet.SGD(0.05), lambda: xpnet.SGD(0.05, momentum=0.9),
                                  lambda: xpnet.SGD(0.05, momentum=0.9, nesterov=True),
                                  lambda: xpnet.BookSGD(0.05, alpha=0.5), lambda: xpnet.Adam(0.01),
                                  lambda: xpnet.AdamW(0.01)], ids=["sgd", "momentum", "nesterov", "book", "adam",
                                                                   "adamw"])
def test_in_place_updates_equal_functional_ones(digits, make):
    """Mutable backends update in place; the arithmetic, and so every bit, is that of the functional form."""
    X, y = digits[0][:300], digits[1][:300]
    a, b = mlp(optimizer=make()), mlp(optimizer=make())
    assert a.inplace
    b.inplace = False
    a.fit(X, y, epochs=2, batch_size=50)
    b.fit(X, y, epochs=2, batch_size=50)
    assert same(a, b)


def test_parameters_never_alias_the_callers_arrays(digits):
    model = mlp()
    w = np.zeros((32, 64))
    model.set_parameters({"layers.0.weight": w})
    model.fit(digits[0][:100], digits[1][:100], epochs=1)
    assert not w.any()  # the caller's array is untouched by in-place training


def test_one_epoch_line_for_fit_and_the_cli(digits, capsys):
    from xpnet.training import epoch_line
    logs = {"epoch": 3, "loss": 0.12345, "accuracy": 0.9, "val_loss": None, "val_accuracy": None, "lr": 0.1,
            "seconds": 0.5}
    assert epoch_line(logs, 30) == "epoch 3/30 loss 0.1235 acc 0.9000 lr 0.1 0.50s"
    assert epoch_line(dict(logs, val_loss=0.2, val_accuracy=0.85), 30, samples=1000) == \
        "epoch 3/30 loss 0.1235 acc 0.9000 val_loss 0.2000 val_acc 0.8500 lr 0.1 0.50s 2,000 samples/s"
    mlp().fit(digits[0][:64], digits[1][:64], epochs=2, validation_split=0.25, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(re.fullmatch(r"epoch \d/2 loss \d\.\d{4} acc \d\.\d{4} val_loss \d\.\d{4} "
                                                r"val_acc \d\.\d{4} lr 0\.05 \d+\.\d\ds", line) for line in lines), lines
