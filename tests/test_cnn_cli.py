"""Convolutional models through the command line and the API's image inputs: --model FILE.json, images
(N, H, W) in user files, evaluate/predict on a CNN checkpoint, --plot filters, the presets' architectures,
and the errors for images in the wrong layout. (Full preset runs on MNIST are behind XPNET_SLOW_TESTS=1;
their figures are in docs/results.md.)"""
import json
import os

import numpy as np
import pytest

import xpnet
from xpnet.models.presets import as_images
from xpnet.errors import InputError
from xpnet.models.presets import DEFAULTS, PRESETS, model_spec

from test_cli_train import cli, last_json

TINY = {"class": "Sequential", "config": {"layers": [
    {"class": "Conv2D", "config": {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1}},
    {"class": "BatchNorm", "config": {}}, {"class": "relu", "config": {}},
    {"class": "MaxPool2D", "config": {"kernel_size": 2}}, {"class": "Flatten", "config": {}},
    {"class": "Dense", "config": {"in_features": 64, "out_features": 10}}],
    "optimizer": {"class": "adam", "config": {"lr": 0.01}}}}


@pytest.fixture(scope="module")
def digits_images(tmp_path_factory):
    """The embedded 8x8 digits as (N, 8, 8) images in an .npz, and a tiny CNN as a model file."""
    from xpnet.data.datasets import load_digits
    X, y, Xt, yt = load_digits()
    folder = tmp_path_factory.mktemp("cnn")
    np.savez(folder / "digits.npz", X=X.reshape(-1, 8, 8), y=y, X_test=Xt.reshape(-1, 8, 8), y_test=yt)
    (folder / "tiny.json").write_text(json.dumps(TINY))
    return folder


@pytest.mark.parametrize("preset, params", [("lenet5", 61706), ("fashion-cnn", 1199882)])
def test_preset_architectures(preset, params):
    cfg = dict(DEFAULTS, **PRESETS[preset].settings)
    model = xpnet.model_from_config(model_spec(784, 10, cfg), "numpy")
    assert model.input_shape == (1, 28, 28) and model.n_outputs == 10
    assert sum(int(np.prod(v.shape)) for v in model.parameters().values()) == params
    assert type(model.schedule).__name__ == "Cosine" and type(model.optimizer).__name__ == "Adam"


def test_model_file_train_evaluate_predict_plot(digits_images, tmp_path):
    ck = tmp_path / "cnn.safetensors"
    r = last_json(cli("train", "--model", digits_images / "tiny.json", "--dataset", digits_images / "digits.npz",
                      "--epochs", "3", "--batch-size", "32", "--checkpoint", ck, "--plot", tmp_path / "plots",
                      "--quiet", "--json"))
    assert r["test_accuracy"] > 0.8, r
    assert (tmp_path / "plots" / "filters.png").read_bytes()[:4] == b"\x89PNG"
    model = xpnet.load(ck)
    assert model.input_shape == (1, 8, 8) and set(model.state.layer_state) == {"layers.1.running_mean",
                                                                               "layers.1.running_var"}
    ev = last_json(cli("evaluate", "--checkpoint", ck, "--json"))
    assert ev["accuracy"] == pytest.approx(r["test_accuracy"])
    X = np.load(digits_images / "digits.npz")["X_test"][:4]
    np.save(tmp_path / "x.npy", X)
    pr = last_json(cli("predict", "--checkpoint", ck, tmp_path / "x.npy", "--json"))
    assert len(pr["predictions"]) == 4


def test_channels_last_data_is_refused_with_the_transpose(digits_images, tmp_path):
    d = np.load(digits_images / "digits.npz")
    spec = dict(TINY, config=dict(TINY["config"], input_shape=[1, 8, 8]))
    (tmp_path / "m.json").write_text(json.dumps(spec))
    np.savez(tmp_path / "nhwc.npz", X=d["X"][..., None], y=d["y"])
    proc = cli("train", "--model", tmp_path / "m.json", "--dataset", tmp_path / "nhwc.npz", "--epochs", "1")
    assert proc.returncode == 2 and "X.transpose(0, 3, 1, 2)" in proc.stderr and "Traceback" not in proc.stderr, \
        proc.stderr


def test_as_images():
    flat = np.zeros((3, 784))
    assert as_images(flat, (1, 28, 28)).shape == (3, 1, 28, 28)
    assert as_images(np.zeros((3, 5, 6))).shape == (3, 1, 5, 6)
    with pytest.raises(InputError, match=r"reshape with X.reshape\(len\(X\), 1, 28, 28\)"):
        as_images(flat)
    with pytest.raises(InputError, match=r"channels-last.*transpose"):
        as_images(np.zeros((2, 28, 28, 3)), (3, 28, 28))
    with pytest.raises(InputError, match=r"channels-last.*transpose"):
        as_images(np.zeros((2, 28, 28, 3)))
    with pytest.raises(InputError, match="takes images"):
        as_images(np.zeros((2, 7)), (1, 2, 2))
    model = xpnet.Sequential([xpnet.Conv2D(3, 2, 3), xpnet.Flatten(), xpnet.Dense(2)], input_shape=(3, 4, 4))
    with pytest.raises(InputError, match=r"channels last\? transpose"):
        model.predict(np.zeros((2, 4, 4, 3)))


@pytest.mark.skipif(not os.environ.get("XPNET_SLOW_TESTS"), reason="a full MNIST epoch: set XPNET_SLOW_TESTS=1")
def test_lenet5_preset_one_epoch(mnist_dir):
    r = last_json(cli("train", "--preset", "lenet5", "--data-dir", mnist_dir, "--epochs", "1", "--quiet", "--json"))
    assert r["test_accuracy"] > 0.97, r
