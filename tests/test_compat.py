"""Checkpoints written by release 0.1.0 (format 1, tests/fixtures/) still load and predict identically."""
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.datasets import load_digits
from xpnet.preprocessing import Scaler

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(FIXTURES / "v0.1.0-expected.npz"))


@pytest.mark.parametrize("name", ["digits-adam", "digits-momentum-f64"])
def test_cli_checkpoints_of_release_0_1_0(expected, name):
    """The checkpoint's recorded preprocessing is the model's: predict takes raw data, as `xpnet predict` did."""
    model = xpnet.load(FIXTURES / f"v0.1.0-{name}.safetensors")
    assert model.checkpoint_meta_["format_version"] == 1
    assert model.preprocessing.kind == model.checkpoint_meta_["preprocessing"]["kind"] != "raw"
    raw = load_digits()[2]
    np.testing.assert_array_equal(model.predict(raw), expected[f"{name}/pred"])
    np.testing.assert_allclose(model.predict_proba(raw), expected[f"{name}/proba"], rtol=1e-12, atol=0)
    Xs = Scaler.from_meta(model.checkpoint_meta_["preprocessing"], model.checkpoint_arrays_).transform(raw,
                                                                                                      model.dtype_name)
    model.preprocessing = None  # scaled by hand, as 0.2.0.dev0 and earlier needed
    np.testing.assert_array_equal(model.predict(Xs), expected[f"{name}/pred"])
    assert model.state.step > 0 and len(model.history_["epoch"]) == model.state.epoch


def test_neuralnetmlp_checkpoint_of_release_0_1_0(expected):
    nn = xpnet.load(FIXTURES / "v0.1.0-neuralnetmlp.safetensors")
    assert isinstance(nn, xpnet.NeuralNetMLP)
    np.testing.assert_array_equal(nn.w1, expected["neuralnetmlp/w1"])
    np.testing.assert_array_equal(nn.w2, expected["neuralnetmlp/w2"])
    assert nn.cost_ == expected["neuralnetmlp/cost"].tolist()
    Xt = load_digits()[2]
    np.testing.assert_array_equal(nn.predict(Xt), expected["neuralnetmlp/pred"])
    np.testing.assert_allclose(nn.predict_proba(Xt), expected["neuralnetmlp/proba"], rtol=1e-12, atol=0)


def test_old_checkpoint_saves_in_the_new_format(tmp_path, expected):
    nn = xpnet.load(FIXTURES / "v0.1.0-neuralnetmlp.safetensors")
    again = xpnet.load(nn.save(tmp_path / "new.safetensors"))
    assert again.checkpoint_meta_["format_version"] == 2
    np.testing.assert_array_equal(again.w1, expected["neuralnetmlp/w1"])
    assert again.eta == nn.eta and again.state.step == nn.state.step
