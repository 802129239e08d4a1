"""Checkpoints written by release 0.1.0 (format 1, tests/fixtures/) and by 0.2.0.dev0 before issue 25 moved the
modules into folders (format 2) still load and predict identically."""
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.data.preprocessing import Scaler
from xpnet.saving.checkpoint import FORMAT_VERSION

FIXTURES = Path(__file__).parent / "fixtures"

# The expected values were stored on another machine. Another CPU's BLAS kernels (OpenBLAS picks Haswell or
# SkylakeX kernels by CPU; AVX-512 ones sum in another order) round differently: float32 probabilities
# differed by 1.1e-6 relative on an AVX-512 Xeon. So: dtype-aware tolerances, and labels compared except
# at near ties (top two probabilities closer than the tolerance allows to tell apart).
STORED_TOL = {"float32": 1e-5, "float64": 1e-10}


def assert_matches_stored(pred, proba, want_pred, want_proba, dtype):
    tol = STORED_TOL[dtype]
    np.testing.assert_allclose(proba, want_proba, rtol=tol, atol=tol)  # probabilities: in [0, 1]
    top2 = np.sort(want_proba, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 4 * tol
    assert clear.mean() > 0.99, "too many near ties to judge the labels"
    np.testing.assert_array_equal(np.asarray(pred)[clear], want_pred[clear])


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
    want = expected[f"{name}/pred"], expected[f"{name}/proba"]
    assert_matches_stored(model.predict(raw), model.predict_proba(raw), *want, model.dtype_name)
    Xs = Scaler.from_meta(model.checkpoint_meta_["preprocessing"], model.checkpoint_arrays_).transform(raw,
                                                                                                      model.dtype_name)
    model.preprocessing = None  # scaled by hand, as 0.2.0.dev0 and earlier needed
    assert_matches_stored(model.predict(Xs), model.predict_proba(Xs), *want, model.dtype_name)
    assert model.state.step > 0 and len(model.history_["epoch"]) == model.state.epoch


def test_neuralnetmlp_checkpoint_of_release_0_1_0(expected):
    nn = xpnet.load(FIXTURES / "v0.1.0-neuralnetmlp.safetensors")
    assert isinstance(nn, xpnet.NeuralNetMLP)
    np.testing.assert_array_equal(nn.w1, expected["neuralnetmlp/w1"])
    np.testing.assert_array_equal(nn.w2, expected["neuralnetmlp/w2"])
    assert nn.cost_ == expected["neuralnetmlp/cost"].tolist()
    Xt = load_digits()[2]
    assert_matches_stored(nn.predict(Xt), nn.predict_proba(Xt), expected["neuralnetmlp/pred"],
                          expected["neuralnetmlp/proba"], nn.dtype_name)


def test_old_checkpoint_saves_in_the_new_format(tmp_path, expected):
    nn = xpnet.load(FIXTURES / "v0.1.0-neuralnetmlp.safetensors")
    again = xpnet.load(nn.save(tmp_path / "new.safetensors"))
    assert again.checkpoint_meta_["format_version"] == FORMAT_VERSION  # 2 until nested layers made it 3
    np.testing.assert_array_equal(again.w1, expected["neuralnetmlp/w1"])
    assert again.eta == nn.eta and again.state.step == nn.state.step


def test_format_2_checkpoint_written_before_the_move():
    """Written by the code before the modules moved into folders (tests/fixtures/make_premove_fixture.py, commit
    5e99dc0): a CNN with BatchNorm's running statistics, Dropout, a standardizing scaler and named classes. A
    checkpoint names registry entries ("Conv2D.v1"), never module paths, so it loads and predicts as it did."""
    model = xpnet.load(FIXTURES / "v0.2.0.dev0-premove-cnn.safetensors")
    assert model.checkpoint_meta_["format_version"] == 2 and model.dtype_name == "float64"
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Flatten",
                                                                 "Dropout", "Dense"]
    want = dict(np.load(FIXTURES / "v0.2.0.dev0-premove-expected.npz"))
    Xq = load_digits()[2].reshape(-1, 1, 8, 8)
    assert_matches_stored(np.asarray(model.predict(Xq)).astype(str), model.predict_proba(Xq), want["pred"],
                          want["proba"], model.dtype_name)
