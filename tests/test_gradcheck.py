"""Gradient checks in float64 on every backend: every activation, loss, layer and penalty."""
import numpy as np
import pytest

import xpnet
from xpnet.gradcheck import check_layer, grade

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


@pytest.mark.parametrize("make", [lambda: xpnet.Dense(4, 3), *[xpnet.ACTIVATIONS[a] for a in ACTS],
                                  lambda: xpnet.Dropout(0.3)],
                         ids=["dense", *ACTS, "dropout"])
def test_every_layer_input_gradient(xpnet_backend, make):
    layer = make()
    layer.build((4,))
    report = check_layer(layer, xpnet_backend, (4,), batch=6)
    assert report["input"] <= 1e-7 and all(e <= 1e-7 for e in report["params"].values()), report


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

    def wrong(params, x, training=False, need_dx=True, noise=None):
        y, back = forward(params, x, training, need_dx, noise)

        def bad_backward(dy):
            dx, grads = back(dy)
            return 1.01 * dx, grads  # a 1 % error in one backward

        return y, bad_backward

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
