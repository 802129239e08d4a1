"""One registry and one config protocol: names, versions, aliases, user classes, JSON model configs,
and checkpoints rebuilt only through it."""
import json

import numpy as np
import pytest

import xpnet
from xpnet import registry
from xpnet.data.datasets import load_digits
from xpnet.namespace import namespace


@xpnet.register("tests.Square.v1")
class Square(xpnet.Layer):
    """y = x * x (no parameters; the constructor's argument is only there to be configured)."""

    elementwise = True

    def __init__(self, note: str = "none"):
        self.note = note

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        return x * x, lambda dy: (2.0 * x * dy, {})


class Unregistered(xpnet.Layer):
    elementwise = True

    def __init__(self):
        pass

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        return x, lambda dy: (dy, {})


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X / 16.0, y, Xt / 16.0, yt


def model(layers=None, **kw):
    layers = layers or [xpnet.Dense(64, 16), Square(note="hi"), xpnet.Dense(16, 10)]
    return xpnet.Sequential(layers, optimizer=xpnet.Adam(1e-3), l2=1e-4, dtype="float64", seed=0, **kw)


def test_names_versions_and_aliases():
    assert registry.get("layer", "Dense") is registry.get("layer", "Dense.v1") is xpnet.Dense
    assert registry.get("layer", "relu") is xpnet.ReLU and registry.get("loss", "mse") is xpnet.MSE
    momentum = registry.get("optimizer", "momentum")(lr=0.1)
    assert isinstance(momentum, xpnet.SGD) and momentum.momentum == 0.9 and momentum.lr == 0.1
    assert xpnet.serialize(xpnet.ReLU()) == {"class": "ReLU.v1", "config": {}}
    assert xpnet.OPTIMIZERS["adam"] is xpnet.Adam and set(xpnet.ACTIVATIONS) >= {"relu", "tanh", "sigmoid"}


def test_newest_version_wins():
    @xpnet.register("tests.Thing.v1")
    class Thing1(xpnet.Layer):
        def __init__(self):
            pass

    @xpnet.register("tests.Thing.v2")
    class Thing2(xpnet.Layer):
        def __init__(self):
            pass

    assert registry.get("layer", "tests.Thing") is Thing2 and registry.get("layer", "tests.Thing.v1") is Thing1


def test_unknown_and_taken_names_say_what_to_do():
    with pytest.raises(xpnet.InputError, match=r"unknown layer 'Conv9D'; choose one of: sigmoid, .*dense, .*Dense.v1.*@xpnet.register"):
        registry.get("layer", "Conv9D")
    with pytest.raises(xpnet.InputError, match=r"'tests.Square.v1' is already registered .* tests.Square.v2"):
        @xpnet.register("tests.Square.v1")
        class Other(xpnet.Layer):
            pass
    with pytest.raises(xpnet.InputError, match="not registered, so it cannot be saved .*@xpnet.register"):
        xpnet.serialize(Unregistered())


def test_every_object_has_one_config_protocol():
    objects = [xpnet.Dense(3, 2, init="he_uniform"), xpnet.Dropout(0.25), xpnet.LeakyReLU(0.2),
               xpnet.SoftmaxCrossEntropy(reduction="sum"), xpnet.SGD(0.1, momentum=0.5, nesterov=True),
               xpnet.AdamW(0.01, weight_decay=0.05), xpnet.Penalty(l1=0.1, l2=0.2),
               xpnet.SCHEDULES["cosine"](10, min_lr=0.001), xpnet.SCHEDULES["step"](3, 0.5)]
    for obj in objects:
        spec = json.loads(json.dumps(xpnet.serialize(obj)))
        again = xpnet.deserialize(spec, obj.kind)
        assert type(again) is type(obj) and again.get_config() == obj.get_config(), obj


def test_model_config_is_json_and_rebuilds_the_same_model(tmp_path):
    m = model()
    text = json.dumps(xpnet.serialize(m))
    path = tmp_path / "model.json"
    path.write_text(text)
    for spec in (json.loads(text), text, str(path), path):
        again = xpnet.model_from_config(spec)
        assert again.get_config() == m.get_config()
        assert all(np.array_equal(again.parameters()[k], v) for k, v in m.parameters().items())  # same seed
    nn = xpnet.NeuralNetMLP(n_output=3, n_features=4, n_hidden=5, random_state=1)
    again = xpnet.model_from_config(json.loads(json.dumps(xpnet.serialize(nn))))
    assert isinstance(again, xpnet.NeuralNetMLP) and np.array_equal(again.w1, nn.w1)


def test_bad_model_configs():
    with pytest.raises(xpnet.InputError, match="not valid JSON"):
        xpnet.model_from_config("{not json")
    with pytest.raises(xpnet.InputError, match="cannot read model file"):
        xpnet.model_from_config("/no/such/model.json")
    with pytest.raises(xpnet.InputError, match=r"must be a dict \{\"class\""):
        xpnet.model_from_config({"layers": []})


def test_user_layer_trains_saves_and_loads(digits, tmp_path):
    X, y, Xt, _ = digits
    m = model().fit(X[:300], y[:300], epochs=2, batch_size=50)
    again = xpnet.load(m.save(tmp_path / "m.safetensors"))
    assert isinstance(again.layers[1], Square) and again.layers[1].note == "hi"
    np.testing.assert_array_equal(again.predict(Xt), m.predict(Xt))
    assert again.state.step == m.state.step == 12


def test_unregistered_layer_trains_but_cannot_be_saved(digits, tmp_path):
    X, y = digits[0][:100], digits[1][:100]
    m = model([xpnet.Dense(64, 10), Unregistered()]).fit(X, y, epochs=1)
    with pytest.raises(xpnet.InputError, match="Unregistered is not registered"):
        m.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_constructor_arguments_are_recorded_for_subclasses():
    class WithArgs(xpnet.Layer):
        def __init__(self, a, b=2, **extra):
            self.a = a

    assert WithArgs(1, c=3).get_config() == {"a": 1, "b": 2, "c": 3}


def test_namespace_is_taken_from_the_input(xpnet_backend):
    x = xpnet_backend.asarray([1.0, 2.0])
    assert namespace(x) is xpnet_backend.xp or namespace(x).__name__ == xpnet_backend.xp.__name__
