"""Gradient checks in float64 on every backend: every activation, loss, layer and penalty."""
import numpy as np
import pytest

import xpnet
from xpnet.gradcheck import grade, relative_error

ACTS = list(xpnet.ACTIVATIONS)


def data(n=12, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features))
    y = np.arange(n) % classes
    return X, y


@pytest.mark.parametrize("activation", ACTS)
def test_every_activation(xpnet_backend, activation):
    X, y = data()
    model = xpnet.Sequential([xpnet.Dense(5, 6), xpnet.ACTIVATIONS[activation](), xpnet.Dense(6, 3)],
                             loss="softmax_cross_entropy", l1=0.01, l2=0.1, backend=xpnet_backend,
                             dtype="float64", seed=1)
    report = xpnet.gradcheck(model, X, y)
    assert report["max_relative_error"] <= 1e-7, report
    assert report["passed"] and [c["parameter"] for c in report["checks"]] == [
        "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]


@pytest.mark.parametrize("loss", list(xpnet.LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_every_loss(xpnet_backend, loss, reduction):
    X, y = data()
    model = xpnet.Sequential([xpnet.Dense(5, 4), xpnet.Tanh(), xpnet.Dense(4, 3)],
                             loss=xpnet.LOSSES[loss](reduction=reduction), l1=0.001, l2=0.01,
                             backend=xpnet_backend, dtype="float64", seed=2)
    report = xpnet.gradcheck(model, X, y)
    assert report["max_relative_error"] <= 1e-7, report


def _layer_input_check(bk, layer, x, eps=1e-6, fix_rng=None):
    """d/dx of sum(layer(x) * r) by central differences against layer.backward(r)."""
    xp = bk.xp
    rng = np.random.default_rng(3)
    r = rng.standard_normal((x.shape[0], layer_out(layer, x.shape[1])))

    def f(xh):
        if fix_rng:
            fix_rng()
        y, _ = layer.forward(bk.asarray(xh, dtype=xp.float64), training=True)
        return float(xp.sum(y * bk.asarray(r, dtype=xp.float64)))

    if fix_rng:
        fix_rng()
    _, back = layer.forward(bk.asarray(x, dtype=xp.float64), training=True)
    ana = bk.to_numpy(back(bk.asarray(r, dtype=xp.float64)))
    num = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[i] += eps
        xm[i] -= eps
        num[i] = (f(xp_) - f(xm)) / (2 * eps)
    return relative_error(num, ana)


def layer_out(layer, n):
    return layer.out_features if isinstance(layer, xpnet.Dense) else n


@pytest.mark.parametrize("make", [lambda: xpnet.Dense(4, 3), *[xpnet.ACTIVATIONS[a] for a in ACTS],
                                  lambda: xpnet.Dropout(0.3)],
                         ids=["dense", *ACTS, "dropout"])
def test_every_layer_input_gradient(xpnet_backend, make):
    layer = make()
    rng = np.random.default_rng(0)
    layer.build(xpnet_backend, xpnet_backend.xp.float64, rng, 4)
    x = rng.standard_normal((6, 4))
    x = np.where(np.abs(x) < 0.05, 0.5, x)  # keep ReLU kinks away from the difference stencil
    fix = (lambda: setattr(layer, "rng", np.random.default_rng(7))) if isinstance(layer, xpnet.Dropout) else None
    assert _layer_input_check(xpnet_backend, layer, x, fix_rng=fix) <= 1e-7


def test_neuralnetmlp_book_setting():
    X, y = data(n=5, features=20, classes=10)
    y = np.array([5, 0, 4, 1, 9])
    nn = xpnet.NeuralNetMLP(n_output=10, n_features=20, n_hidden=10, epochs=1, random_state=1)
    with pytest.warns(UserWarning, match="classes"):
        report = xpnet.gradcheck(nn, X * 50, y)
    assert report["passed"] and report["overall_relative_error"] <= 1e-7


def test_catches_a_wrong_backward():
    X, y = data()
    model = xpnet.Sequential([xpnet.Dense(5, 4), xpnet.Sigmoid(), xpnet.Dense(4, 3)], dtype="float64", seed=0)
    sig = model.layers[1]
    forward = sig.forward

    def wrong(x, training=False, need_dx=True):
        y, back = forward(x, training, need_dx)
        return y, lambda dy: 1.01 * back(dy)  # a 1 % error in one backward

    sig.forward = wrong
    report = xpnet.gradcheck(model, X, y)
    assert not report["passed"]
    assert report["checks"][0]["grade"] in ("Warning", "PROBLEM")
    assert report["checks"][2]["grade"] == "Ok"  # the layer above the bug is still right


def test_grades_and_float32_refused():
    assert (grade(1e-8), grade(1e-5), grade(1e-3)) == ("Ok", "Warning", "PROBLEM")
    model = xpnet.Sequential([xpnet.Dense(5, 3)], dtype="float32")
    with pytest.raises(xpnet.InputError, match="float64"):
        xpnet.gradcheck(model, *data())
