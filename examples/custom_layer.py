"""Your own layer, registered: it trains on every backend, saves, and loads back through xpnet.load.

    python examples/custom_layer.py [--epochs 5] [--backend numpy] [--out scaled.safetensors]

A layer is configuration and shapes; its parameters are passed in, and backward returns their
gradients (see xpnet/layers/base.py). Registering it under a versioned name lets a checkpoint (or a JSON
model config) name it; the process that loads the checkpoint must have imported the class first, as
with Keras' custom objects.
"""
import argparse
import json

import numpy as np

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.namespace import namespace


@xpnet.register("examples.Scale.v1")
class Scale(xpnet.Layer):
    """y = x * gain + shift, one trained gain and shift per feature (a diagonal affine layer)."""

    penalized = ("gain",)  # L1/L2 apply to the gain, never to the shift
    elementwise = True     # output shape = input shape

    def __init__(self, init_gain: float = 1.0):
        self.init_gain = float(init_gain)

    def param_shapes(self):
        return {"gain": self.input_shape, "shift": self.input_shape}

    def init_params(self, rng, asarray):
        return {"gain": asarray(np.full(self.input_shape, self.init_gain)),
                "shift": asarray(np.zeros(self.input_shape))}

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        gain = params["gain"]
        y = x * gain + params["shift"]

        def backward(dy):
            xp = namespace(dy)
            grads = {"gain": xp.sum(dy * x, axis=0), "shift": xp.sum(dy, axis=0)}
            return (dy * gain if need_dx else None), grads

        return y, backward


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--out", default="scaled.safetensors")
    a = p.parse_args()

    X, y, X_test, y_test = load_digits()
    X, X_test = X / 16.0, X_test / 16.0
    model = xpnet.Sequential([Scale(), xpnet.Dense(64, 32), xpnet.ReLU(), xpnet.Dense(32, 10)],
                             optimizer=xpnet.Adam(3e-3), l2=1e-4, input_shape=(64,), backend=a.backend,
                             dtype="float64", seed=0)
    print(json.dumps(xpnet.serialize(model)["config"]["layers"][0]))
    model.fit(X, y, epochs=a.epochs, batch_size=32)
    print(f"test accuracy {model.score(X_test, y_test):.4f}")
    model.save(a.out)
    again = xpnet.load(a.out, backend="numpy")
    same = np.array_equal(again.predict(X_test), xpnet.to_numpy(model.predict(X_test)))
    print(f"loaded {type(again.layers[0]).__name__}: same predictions: {same}")


if __name__ == "__main__":
    main()
