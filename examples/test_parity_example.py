"""Backend parity in your own test suite: run with `python -m pytest examples/test_parity_example.py`."""
import numpy as np

import xpnet
from xpnet.tools.testing import assert_parity, xpnet_backend  # noqa: F401  (the fixture)


def my_model(bk, dtype):
    return xpnet.Sequential([xpnet.Dense(10, 16), xpnet.Tanh(), xpnet.Dense(16, 3)], loss="softmax_cross_entropy",
                            optimizer=xpnet.Adam(1e-3), l2=1e-3, backend=bk, dtype=dtype, seed=42)


def test_my_model_trains_the_same_everywhere():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 10)), rng.integers(0, 3, 200)
    assert_parity(my_model, X, y, dtypes=("float64", "float32"), steps=20)


def test_my_model_runs_on(xpnet_backend):  # once per installed backend and device
    model = my_model(xpnet_backend, "float32")
    X = np.random.default_rng(1).standard_normal((8, 10))
    assert model.predict(X).shape == (8,)
