"""NeuralNetMLP against an independent transcription of the book's code (tests/book_transcription.py).

Training under the book's settings is chaotic (a rounding difference grows 30-1000x per minibatch),
so exactness is checked where it means something: initial weights and shuffle order bit for bit,
cost_ over the first minibatches, a tiny-rate run, and the gradient from the same weights at every step.
"""
import numpy as np
import pytest
from book_transcription import BookMLP

import xpnet
from xpnet.parity import rel_diff


@pytest.fixture(scope="module")
def data(mnist_dir):
    from xpnet.data.datasets import load_idx_pair
    X, y = load_idx_pair(mnist_dir / "train-images-idx3-ubyte.gz", mnist_dir / "train-labels-idx1-ubyte.gz")
    return X[:3000].astype(np.float64), y[:3000].astype(np.int64)  # raw pixels 0-255, as the book


BOOK = dict(n_output=10, n_features=784, n_hidden=50, l2=0.1, l1=0.0, epochs=1, eta=0.001, alpha=0.001,
            decrease_const=0.00001, minibatches=50, shuffle=True, random_state=1)


def test_initial_weights_bit_for_bit():
    ours, book = xpnet.NeuralNetMLP(**BOOK), BookMLP(**BOOK)
    assert np.array_equal(ours.w1, book.w1) and np.array_equal(ours.w2, book.w2)
    assert ours.w1.shape == (50, 785) and ours.w2.shape == (10, 51)


def test_private_stream_leaves_global_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    xpnet.NeuralNetMLP(**BOOK)
    assert np.random.random() == expected


def test_book_rate_first_minibatches_and_shuffle(data):
    X, y = data
    ours = xpnet.NeuralNetMLP(**{**BOOK, "epochs": 2}).fit(X, y)
    book = BookMLP(**{**BOOK, "epochs": 2}).fit(X, y)
    assert len(ours.cost_) == len(book.cost_) == 100
    assert all(isinstance(c, float) for c in ours.cost_)
    for i in range(3):
        assert rel_diff(ours.cost_[i], book.cost_[i])[1] <= 1e-10, i
    assert np.array_equal(ours.order_, book.orders[-1])  # composed shuffles, bit for bit
    assert ours.eta == book.eta  # the compounding decay, exactly


def test_tiny_rate_three_epochs(data):
    X, y = data[0][:1000], data[1][:1000]
    cfg = {**BOOK, "epochs": 3, "minibatches": 4, "eta": 1e-6, "decrease_const": 0.01, "alpha": 0.5, "l1": 0.01}
    ours, book = xpnet.NeuralNetMLP(**cfg).fit(X, y), BookMLP(**cfg).fit(X, y)
    assert len(ours.cost_) == 12
    worst = max(rel_diff(a, b)[1] for a, b in zip(ours.cost_, book.cost_))
    assert worst <= 1e-10, worst
    assert ours.eta == book.eta
    assert np.array_equal(ours.order_, book.orders[-1])


def test_gradient_lockstep_every_step(data):
    X, y = data
    cfg = {**BOOK, "l1": 0.01}
    ours, book = xpnet.NeuralNetMLP(**cfg), BookMLP(**cfg)
    worst = []

    def on_step(xb, y_enc):
        ours.w1, ours.w2 = book.w1, book.w2
        model = ours
        _, _, g = model.value_and_grads(model.as_input(xb), model.bk.asarray(y_enc.T.copy(), dtype=model.dtype))
        g1 = np.concatenate([g["layers.0.bias"][:, None], g["layers.0.weight"]], axis=1)
        g2 = np.concatenate([g["layers.2.bias"][:, None], g["layers.2.weight"]], axis=1)
        b1, b2 = book.gradient(xb, y_enc)
        worst.append(max(rel_diff(g1, b1)[1], rel_diff(g2, b2)[1]))

    book.fit(X, y, on_step=on_step)
    assert len(worst) == 50
    assert max(worst) <= 1e-11, max(worst)


def test_fit_keeps_weights_eta_and_stream(data):
    X, y = data[0][:600], data[1][:600]
    cfg = {**BOOK, "epochs": 2, "minibatches": 3, "decrease_const": 0.1}
    ours, book = xpnet.NeuralNetMLP(**cfg), BookMLP(**cfg)
    ours.fit(X, y).fit(X, y)
    book.fit(X, y)
    book.orders = []
    book.fit(X, y)
    assert len(ours.cost_) == 6  # a new cost_ per fit
    assert ours.eta == book.eta
    assert np.array_equal(ours.order_, book.orders[-1])


def test_predict_is_argmax_of_net_input(data):
    X = data[0][:500]
    ours, book = xpnet.NeuralNetMLP(**BOOK), BookMLP(**BOOK)
    assert np.array_equal(ours.predict(X), book.predict(X))
