"""Checkpoints: round trips on every backend, exact resume, crash safety, and refusal of bad files."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnet
from xpnet.saving.checkpoint import FORMAT_VERSION, read
from xpnet.data.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits()
    return X / 16.0, y, Xt / 16.0, yt


def make(bk="numpy", dtype="float64", seed=0):
    return xpnet.Sequential([xpnet.Dense(64, 24), xpnet.ReLU(), xpnet.Dropout(0.1), xpnet.Dense(24, 10)],
                            optimizer=xpnet.Adam(0.003), l2=1e-4, backend=bk, dtype=dtype, seed=seed)


def same_params(a, b):
    pa, pb = a.parameters(), b.parameters()
    return pa.keys() == pb.keys() and all(np.array_equal(xpnet.to_numpy(pa[k]), xpnet.to_numpy(pb[k])) for k in pa)


def test_round_trip_on_every_backend(xpnet_backend, digits, tmp_path):
    X, y, Xt, _ = digits
    model = make(xpnet_backend).fit(X[:300], y[:300], epochs=2, batch_size=50)
    path = model.save(tmp_path / "m.safetensors")
    again = xpnet.load(path, backend=xpnet_backend)
    assert same_params(model, again) and again.state.step == model.state.step
    np.testing.assert_array_equal(xpnet.to_numpy(model.predict(Xt)), xpnet.to_numpy(again.predict(Xt)))
    on_cpu = xpnet.load(path, backend="numpy")  # e.g. a GPU-trained checkpoint read on a laptop
    np.testing.assert_array_equal(on_cpu.predict(Xt), xpnet.to_numpy(model.predict(Xt)))


@pytest.mark.parametrize("stop_after", [None, 37])  # at an epoch boundary, and inside an epoch
def test_resume_is_bit_identical(digits, tmp_path, stop_after):
    X, y = digits[0], digits[1]
    full = make().fit(X, y, epochs=5, batch_size=32)

    class Stop:
        def __init__(self):
            self.k = 0

        def on_batch_end(self, model, step, total):
            self.k += 1
            model.stop_requested = stop_after is not None and self.k == stop_after

    part = make()
    try:
        part.fit(X, y, epochs=5 if stop_after else 3, batch_size=32, callbacks=[Stop()])
    except xpnet.TrainingInterrupted:
        pass
    path = part.save(tmp_path / "part.safetensors")
    resumed = xpnet.load(path)
    resumed.fit(X, y, epochs=5, batch_size=32, resume=True)
    assert same_params(full, resumed)
    assert resumed.history_["loss"] == full.history_["loss"]
    assert resumed.history_["accuracy"] == full.history_["accuracy"]


def test_neuralnetmlp_round_trip_and_resume(digits, tmp_path):
    X, y = digits[0][:600] * 16, digits[1][:600]
    cfg = dict(n_output=10, n_features=64, n_hidden=20, l2=0.1, epochs=4, eta=0.001, alpha=0.001,
               decrease_const=0.01, minibatches=6, random_state=1)
    full = xpnet.NeuralNetMLP(**cfg).fit(X, y)
    half = xpnet.NeuralNetMLP(**{**cfg, "epochs": 2}).fit(X, y)
    again = xpnet.load(half.save(tmp_path / "nn.safetensors"))
    assert isinstance(again, xpnet.NeuralNetMLP) and np.array_equal(again.w1, half.w1) and again.eta == half.eta
    again.epochs = 4
    again.fit(X, y, resume=True)
    assert np.array_equal(again.w1, full.w1) and np.array_equal(again.w2, full.w2)
    assert again.cost_ == full.cost_ and again.eta == full.eta


def test_metadata(digits, tmp_path):
    model = make().fit(digits[0][:100], digits[1][:100], epochs=1)
    meta, tensors = read(model.save(tmp_path / "m.safetensors", note="hello"))
    assert meta["format_version"] == FORMAT_VERSION and meta["xpnet_version"] == xpnet.__version__
    config = meta["model"]["config"]
    assert meta["model"]["class"] == "Sequential.v1"
    assert config["layers"][0] == {"class": "Dense.v1", "config": {"in_features": 64, "out_features": 24,
                                                                   "init": "glorot_uniform", "bias": True}}
    assert config["optimizer"]["class"] == "Adam.v1" and meta["dtype"] == "float64" and meta["note"] == "hello"
    assert meta["state"]["epoch"] == 1 and meta["state"]["rng"]["type"] == "Generator"
    assert meta["state"]["step"] == model.state.step == 4  # 100 samples, minibatches of 32
    assert "param/layers.0.weight" in tensors and "opt/layers.0.weight/m" in tensors and "train/order" in tensors


def test_refuses_pickles_and_garbage(tmp_path):
    import pickle
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(xpnet.CheckpointError, match="pickle"):
        xpnet.load(evil)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk" + os.urandom(196))  # not 0x80 or PK first: random bytes might start a pickle or zip
    with pytest.raises(xpnet.CheckpointError, match="not a readable xpnet checkpoint"):
        xpnet.load(junk)
    with pytest.raises(xpnet.CheckpointError, match="does not exist"):
        xpnet.load(tmp_path / "missing.safetensors")


def test_truncated_newer_and_mismatched(digits, tmp_path):
    from safetensors.numpy import save_file
    path = make().fit(digits[0][:64], digits[1][:64], epochs=1).save(tmp_path / "m.safetensors")
    raw = path.read_bytes()
    for cut in (5, 100, len(raw) // 2, len(raw) - 3):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(raw[:cut])
        with pytest.raises(xpnet.CheckpointError):
            xpnet.load(bad)
    meta, tensors = read(path)
    newer = tmp_path / "newer.safetensors"
    save_file(tensors, newer, metadata={"xpnet": json.dumps({**meta, "format_version": FORMAT_VERSION + 1})})
    with pytest.raises(xpnet.CheckpointError, match="newer than this xpnet"):
        xpnet.load(newer)
    wrong = tmp_path / "wrong.safetensors"
    tensors["param/layers.0.weight"] = np.zeros((24, 63))
    save_file(tensors, wrong, metadata={"xpnet": json.dumps(meta)})
    with pytest.raises(xpnet.CheckpointError, match="shape"):
        xpnet.load(wrong)


def test_never_overwrites_with_non_finite(digits, tmp_path):
    model = make().fit(digits[0][:64], digits[1][:64], epochs=1)
    path = model.save(tmp_path / "m.safetensors")
    before = path.read_bytes()
    model.set_parameters({"layers.0.weight": np.full((24, 64), np.nan)})
    with pytest.raises(xpnet.CheckpointError, match="NaN"):
        model.save(path)
    assert path.read_bytes() == before


CHILD = r"""
import sys, numpy as np, xpnet
m = xpnet.Sequential([xpnet.Dense(784, 512), xpnet.ReLU(), xpnet.Dense(512, 10)], dtype="float64", seed=0)
i = 0
while True:
    i += 1
    m.set_parameters({"layers.2.bias": np.full(10, float(i))})
    m.save(sys.argv[1])
    print(i, flush=True)
"""


def test_kill_9_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "crash.safetensors"
    rng = np.random.default_rng(0)
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one save finished
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model = xpnet.load(path)  # whole, either the previous or the new one
        bias = model.parameters()["layers.2.bias"]
        assert np.all(bias == bias[0]) and bias[0] >= 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "crash.safetensors"]
    assert all(name.endswith(".tmp") for name in leftovers)  # a killed write leaves only its temporary file
    xpnet.load(path).save(path)  # and the next good save removes those
    assert [p.name for p in tmp_path.iterdir()] == ["crash.safetensors"]


def test_a_header_length_ending_in_0x80_is_no_pickle(tmp_path):
    """The first byte of a safetensors file is its header length's low byte: 0x80 there is not a pickle."""
    model = make()
    for pad in range(300):
        path = model.save(tmp_path / "m.safetensors", pad="x" * pad)
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no header length with low byte 0x80 in 300 tries")
    assert same_params(xpnet.load(path), model)
