"""The layer contract, for every registered layer (a new layer is checked without editing this file: it only
has to say, in `examples()`, how to build it): build and shapes, parameters as declared, forward and
backward shapes, a float64 gradient check of input and parameters on every backend, a JSON config round
trip through the registry, and purity (nothing stored on the layer by forward or backward)."""
import copy
import json

import numpy as np
import pytest

import xpnet
from xpnet import registry
from xpnet.gradcheck import check_layer

# xpnet's own layers: a layer another test module registers (test_parity's deliberately non-portable one) is not
# collected, whichever order the modules are imported in
CASES = [(name, i) for name in registry.names("layer") if registry.get("layer", name).__module__.startswith("xpnet.")
         for i in range(len(registry.get("layer", name).examples()))]


def _build(name, i):
    cls = registry.get("layer", name)
    kwargs, input_shape = cls.examples()[i]
    layer = cls(**kwargs)
    return layer, tuple(input_shape), tuple(layer.build(input_shape))


def test_every_layer_is_covered():
    """Every layer xpnet registers."""
    own = {n for n in registry.names("layer") if registry.get("layer", n).__module__.startswith("xpnet.")}
    assert own <= {n for n, _ in CASES}
    assert {"Dense.v1", "Dropout.v1", "Flatten.v1", "ReLU.v1"} <= {n for n, _ in CASES}


@pytest.mark.parametrize("name, i", CASES)
def test_config_round_trip(name, i):
    layer, input_shape, output_shape = _build(name, i)
    spec = json.loads(json.dumps(xpnet.serialize(layer)))  # JSON-able
    assert spec["class"] == name
    again = xpnet.deserialize(spec, "layer")
    assert type(again) is type(layer) and again.get_config() == layer.get_config()
    assert tuple(again.build(input_shape)) == output_shape == tuple(layer.compute_output_shape(input_shape))


@pytest.mark.parametrize("name, i", CASES)
def test_shapes_and_gradients(xpnet_backend, name, i):
    layer, input_shape, output_shape = _build(name, i)
    f64 = xpnet_backend.dtype("float64")
    rng = np.random.default_rng(0)
    params = layer.init_params(rng, lambda a: xpnet_backend.asarray(a, dtype=f64))
    assert {k: tuple(v.shape) for k, v in params.items()} == {k: tuple(s) for k, s in layer.param_shapes().items()}
    assert set(layer.penalized) <= set(params)
    before = copy.deepcopy(vars(layer))
    batch = 3
    integer = layer.integer_input  # token ids (Embedding): valid integers, no input gradient
    x = xpnet_backend.asarray(layer.sample_input(rng, (batch, *input_shape)),
                              dtype=xpnet_backend.xp.int64 if integer else f64)
    shape = layer.noise_shape(batch)
    noise = None if shape is None else xpnet_backend.asarray(rng.random(shape), dtype=f64)
    for training in (False, True):
        y, back = layer.forward(params, x, training=training, noise=noise)
        assert tuple(y.shape) == (batch, *output_shape)
        dx, grads = back(y)
        assert dx is None if integer else tuple(dx.shape) == tuple(x.shape)
        assert set(grads) == set(params) and all(grads[k].shape == params[k].shape for k in params)
    assert vars(layer).keys() == before.keys()  # forward/backward store nothing on the layer
    report = check_layer(layer, xpnet_backend, input_shape)
    assert report["input"] is None if integer else report["input"] <= 1e-7, report
    assert all(e <= 1e-7 for e in report["params"].values()), report


def test_layer_without_examples_says_how_to_add_them():
    class NeedsArgs(xpnet.Layer):
        def __init__(self, size):
            self.size = size

    with pytest.raises(TypeError):
        NeedsArgs(**NeedsArgs.examples()[0][0])  # the default example does not fit: it must override examples()


def test_param_key_names_top_level_and_nested_layers():
    """One function makes every parameter and state name: today's "layers.<i>.<name>" (checkpoints store
    them, so they never change) and a nested layer's path, with local_name its inverse for one layer."""
    from xpnet.layers.base import layer_path, local_name, param_key
    assert param_key(0, "weight") == "layers.0.weight" and param_key(12, "running_var") == "layers.12.running_var"
    assert param_key((3, "block", 0), "weight") == "layers.3.block.0.weight" == param_key(3, "block.0.weight")
    assert layer_path((3,)) == layer_path(3) == "layers.3"
    assert local_name("layers.3.block.0.weight", 3) == "block.0.weight"
    assert local_name("layers.3.block.0.weight", (3, "block")) == "0.weight"
    assert local_name("layers.31.weight", 3) is None
    model = xpnet.Sequential([xpnet.Dense(4, 3), "relu", xpnet.Dense(3, 2)], seed=0)
    assert list(model.parameters()) == [param_key(i, n) for i in (0, 2) for n in ("weight", "bias")]
