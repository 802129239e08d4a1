"""Argument checks (xpnet/checks.py) wherever they are used, and the learning-rate schedules' values."""
import math

import numpy as np
import pytest

import xpnet
from xpnet.checks import FRACTION, POSITIVE, POSITIVE_INT, Interval, Options, check
from xpnet.schedules import BookDecay, Constant, Cosine, Exponential, InverseTime, Step


def mlp():
    return xpnet.Sequential(xpnet.mlp_layers([3, 4, 2], "tanh"), optimizer=xpnet.SGD(0.1), dtype="float64", seed=0)


X, Y = np.arange(24.0).reshape(8, 3) / 24, np.arange(8) % 2


@pytest.mark.parametrize("make, message", [
    (lambda: mlp().fit(X, Y, epochs=True), "^epochs=True: must be a positive integer$"),
    (lambda: mlp().fit(X, Y, epochs=2.0), "^epochs=2.0: must be a positive integer$"),
    (lambda: mlp().fit(X, Y, epochs=1, batch_size=True), "^batch_size=True: must be a positive integer$"),
    (lambda: mlp().fit(X, Y, epochs=1, minibatches=True), "^minibatches=True: must be an integer from 1 to 8"),
    (lambda: mlp().fit(X, Y, epochs=1, accumulate=True), "^accumulate=True: must be a positive integer$"),
    (lambda: mlp().fit(X, Y, epochs=1, early_stopping=0), "^early_stopping=0: must be a positive integer; the "),
    (lambda: mlp().fit(X, Y, epochs=1, validation_split=1.0), r"^validation_split=1.0: must be a number in \[0, 1\)$"),
    (lambda: mlp().fit(X, Y, epochs=1, validation_split=True), r"^validation_split=True: must be a number in "),
    (lambda: xpnet.EarlyStopping(patience=True), r"^EarlyStopping\(patience=True\): must be a positive integer$"),
    (lambda: xpnet.EarlyStopping(patience=0), r"^EarlyStopping\(patience=0\): must be a positive integer$"),
    (lambda: xpnet.NeuralNetMLP(2, 3, epochs=True), "^epochs=True: must be a positive integer$"),
    (lambda: xpnet.NeuralNetMLP(2, 3, minibatches=True), "^minibatches=True: must be a positive integer$"),
    (lambda: xpnet.NeuralNetMLP(2, 3, minibatches=0), "^minibatches=0: must be a positive integer$"),
    (lambda: Step(0), r"^Step\(step_size=0\): must be a positive integer$"),
    (lambda: Step(True), r"^Step\(step_size=True\): must be a positive integer$"),
    (lambda: Step(2, gamma=0), r"^Step\(gamma=0\): must be a number > 0$"),
    (lambda: Cosine(0), r"^Cosine\(epochs=0\): must be a positive integer$"),
    (lambda: Cosine(True), r"^Cosine\(epochs=True\): must be a positive integer$"),
    (lambda: Cosine(5, min_lr=-1), r"^Cosine\(min_lr=-1\): must be a number >= 0$"),
    (lambda: Exponential(0), r"^Exponential\(gamma=0\): must be a number > 0$"),
    (lambda: Exponential(math.nan), r"^Exponential\(gamma=nan\): must be a number > 0$"),
    (lambda: InverseTime(-0.5), r"^InverseTime\(decay=-0.5\): must be a number >= 0$"),
    (lambda: BookDecay("0.1"), r"^BookDecay\(decrease_const='0.1'\): must be a number >= 0$"),
    (lambda: xpnet.SGD(0.1, momentum=1.0), r"^momentum=1.0: must be a number in \[0, 1\)$"),
    (lambda: xpnet.SGD(True), "^lr=True: must be a number > 0"),
    (lambda: xpnet.BookSGD(0.1, alpha=-1), "^alpha=-1: must be a number >= 0"),
    (lambda: xpnet.Adam(beta2=1.0), r"^beta2=1.0: must be a number in \[0, 1\)$"),
    (lambda: xpnet.Adam(weight_decay=-1e-3), "^weight_decay=-0.001: must be a number >= 0$"),
    (lambda: xpnet.Adam(eps=0.0), "^eps=0.0: must be a number > 0$"),
    (lambda: xpnet.Dropout(1.0), r"^Dropout\(p=1.0\): must be a number in \[0, 1\); the probability"),
    (lambda: xpnet.LOSSES["mse"](reduction="max"), r"^MSE\(reduction='max'\): must be 'mean' or 'sum'$"),
])
def test_bad_arguments_name_the_keyword(make, message):
    with pytest.raises(xpnet.InputError, match=message):
        make()


def test_constraints_describe_themselves():
    assert str(POSITIVE_INT) == "a positive integer" and str(POSITIVE) == "a number > 0"
    assert str(FRACTION) == "a number in [0, 1)" and str(Interval(int, 1, 4)) == "an integer from 1 to 4"
    assert str(Interval(int, 0, None)) == "a non-negative integer" and str(Interval(float, None, 2)) == "a number <= 2"
    assert str(Options(None) | POSITIVE_INT) == "None or a positive integer"
    assert POSITIVE_INT.satisfied_by(np.int64(3)) and not POSITIVE_INT.satisfied_by(np.float64(3.0))
    assert POSITIVE.satisfied_by(np.float32(0.5)) and not POSITIVE.satisfied_by(math.inf)
    assert not Options(1).satisfied_by(True) and Options(None).satisfied_by(None)
    assert check("k", 3, POSITIVE_INT) == 3
    with pytest.raises(xpnet.InputError, match=r"^k=0: must be a positive integer; try 1$"):
        check("k", 0, POSITIVE_INT, hint="try 1")


def rates(schedule, epochs=6, lr0=0.5):
    """The rate of each epoch as fit applies it: lr = schedule(epoch, lr, lr0) at each epoch's start."""
    lr, out = lr0, []
    for epoch in range(epochs):
        lr = schedule(epoch, lr, lr0)
        out.append(lr)
    return out


def test_schedule_values():
    assert rates(Constant()) == [0.5] * 6
    assert rates(InverseTime(0.5)) == [0.5 / (1 + 0.5 * e) for e in range(6)]
    assert rates(Exponential(0.5)) == [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]
    assert rates(Step(2, gamma=0.1)) == [0.5, 0.5, 0.5 * 0.1, 0.5 * 0.1, 0.5 * 0.1 ** 2, 0.5 * 0.1 ** 2]
    cos = rates(Cosine(4, min_lr=0.1))
    assert cos[0] == 0.5 and cos[2] == pytest.approx(0.3) and cos[4] == cos[5] == pytest.approx(0.1)
    assert cos == sorted(cos, reverse=True)
    # the book's: each epoch divides the already-decayed rate by 1 + d * epoch
    book, lr = rates(BookDecay(0.1)), 0.5
    for e in range(6):
        lr = lr / (1 + 0.1 * e)
        assert book[e] == lr
    assert book[3] == 0.5 / 1.1 / 1.2 / 1.3
    assert rates(BookDecay(0.0)) == [0.5] * 6 and rates(InverseTime(0.0)) == [0.5] * 6
