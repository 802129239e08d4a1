"""What a new user met in their first hour (issue 23, items 2, 3, 4, 6, 7): wrong answers with no warning,
checkpoints that forgot where their data was, tracebacks instead of one line, silence on long work, and
the command line and Python disagreeing on input shapes. The CLI runs in-process (xpnet.cli.main) on tiny
data."""
import contextlib
import gzip
import io
import json
import re
import struct

import numpy as np
import pytest

import xpnet
from xpnet.cli import main
from fakes import run_cli
from xpnet.data.datasets import FILES, load_digits


run = run_cli


def one_line_error(rc, err, *parts):
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """An iris-like CSV (4 features, names in a 'species' column) and a model trained on it from the CLI."""
    d = tmp_path_factory.mktemp("iris")
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    rows = ["a,b,c,d,species"] + [",".join(f"{v:.3f}" for v in rng.normal(i % 3, 0.3, 4)) + f",{names[i % 3]}"
                                  for i in range(60)]
    (d / "iris.csv").write_text("\n".join(rows) + "\n")
    ck = d / "iris.safetensors"
    rc, out, err = run("train", "--dataset", d / "iris.csv", "--label-column", "species", "--epochs", "2",
                       "--hidden", "8", "--checkpoint", ck, "--quiet", "--backend", "numpy")
    assert rc == 0, err
    return d, ck


# item 2: wrong answers with no warning ----------------------------------------------------------------
def test_an_image_for_a_table_model_is_refused(iris, tmp_path):
    """The 4 features of an iris model are no 2x2 image: `predict digit.png` printed 'virginica (p = 1.000)'."""
    pytest.importorskip("PIL")
    from PIL import Image
    d, ck = iris
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "digit.png")
    one_line_error(rc, err, "digit.png", "trained on a table", "4 features")
    assert out == ""
    # saved from Python, with no record of its data: 4 features are no image either
    bare = xpnet.Sequential([xpnet.Dense(4, 3)], backend="numpy", seed=0).save(tmp_path / "bare.safetensors")
    rc, out, err = run("predict", "--checkpoint", bare, tmp_path / "digit.png")
    one_line_error(rc, err, "digit.png: an image, but the model takes a table of 4 features per sample")


def test_a_table_for_an_image_model_is_refused(tmp_path):
    """The reverse: a table (here 4 named features) for a model trained on images is refused in one line that
    says so; the images' pixels as rows, with or without a header, are accepted."""
    ck = tmp_path / "digits.safetensors"
    assert run("train", "--epochs", "1", "--hidden", "8", "--checkpoint", ck, "--quiet", "--backend", "numpy")[0] == 0
    (tmp_path / "table.csv").write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "table.csv")
    one_line_error(rc, err, "table.csv has 4 features but the model expects 64",
                   "the model was trained on images (digits): pass images, or their pixels (64 values, 8x8 per sample)")
    X = load_digits()[2][:3]
    (tmp_path / "pixels.csv").write_text(",".join(f"pixel{i}" for i in range(64)) + "\n" +
                                         "\n".join(",".join(map(str, r)) for r in X) + "\n")
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "pixels.csv", "--quiet", "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["predictions"] == xpnet.load(ck).predict(X).tolist(), err


@pytest.mark.parametrize("batch", [10, 7])
def test_value_and_grads_refuses_labels_as_targets(batch):
    """Integer labels y[:10] gave a wrong loss (128.29 instead of 2.27) when the batch equalled the outputs,
    and a raw TypeError from losses.py at other sizes: now one line saying how targets are made."""
    X, y, _, _ = load_digits()
    model = xpnet.Sequential([xpnet.Dense(64, 10)], backend="numpy", seed=0)
    xb = model.as_input(X[:batch] / 16)
    for call in (lambda t: model.value_and_grads(xb, t), lambda t: model.train_step(xb, t),
                 lambda t: model.objective(xb, t)):
        with pytest.raises(xpnet.InputError, match=r"y must be targets of shape \(batch, outputs\) = "
                                                   rf"\({batch}, 10\).*model.as_targets\(labels, len\(labels\)\)"):
            call(y[:batch])
    with pytest.raises(xpnet.InputError, match=r"got shape \(\d+, 10\) \(int64\)"):
        model.value_and_grads(xb, np.eye(10, dtype=np.int64)[y[:batch]])
    yb, _ = model.as_targets(y[:batch], batch)  # the README's way: labels -> one-hot targets
    loss = float(model.value_and_grads(xb, yb)[0])
    assert 1.0 < loss < 5.0  # about log(10) from the initial weights


@pytest.mark.parametrize("callbacks, message", [
    (["tensorboard"], r"callbacks\[0\] is the name 'tensorboard' \(xpnet has no callbacks by name\)"),
    ("tensorboard", r"callbacks\[0\] is the name 'tensorboard'"),
    ([object()], r"callbacks\[0\] is object .*which has none of the hooks"),
])
def test_unknown_callbacks_are_refused(callbacks, message):
    X, y, _, _ = load_digits()
    model = xpnet.Sequential([xpnet.Dense(64, 10)], backend="numpy", seed=0)
    with pytest.raises(xpnet.InputError, match=message):
        model.fit(X[:40], y[:40], epochs=1, callbacks=callbacks)
    seen = []
    model.fit(X[:40], y[:40], epochs=2, callbacks=[lambda m, logs: seen.append(logs["epoch"])])
    assert seen == [1, 2]


# item 4: tracebacks instead of one line --------------------------------------------------------------
def test_negative_seed_is_one_line():
    rc, out, err = run("train", "--seed", "-3", "--epochs", "1", "--quiet")
    one_line_error(rc, err, "--seed -3: must be a non-negative integer")
    with pytest.raises(xpnet.InputError, match=r"seed=-3: must be a non-negative integer"):
        xpnet.Sequential([xpnet.Dense(4, 2)], seed=-3)
    with pytest.raises(xpnet.InputError, match=r"random_state=-1: must be a non-negative integer"):
        xpnet.NeuralNetMLP(n_output=2, n_features=4, random_state=-1)


def test_layers_by_registry_name():
    """Sequential(["relu"]) raised AttributeError: names of layers that need no arguments are accepted, the
    rest refused in one line that says how."""
    by_name = xpnet.Sequential([xpnet.Dense(4, 8), "relu", xpnet.Dense(8, 3), "softmax"], seed=0, backend="numpy")
    assert [type(layer).__name__ for layer in by_name.layers] == ["Dense", "ReLU", "Dense", "Softmax"]
    by_class = xpnet.Sequential([xpnet.Dense(4, 8), xpnet.ReLU(), xpnet.Dense(8, 3), xpnet.Softmax()], seed=0,
                                backend="numpy")
    X = np.random.default_rng(0).standard_normal((5, 4))
    np.testing.assert_array_equal(by_name.predict_proba(X), by_class.predict_proba(X))
    with pytest.raises(xpnet.InputError, match="does not say its input size"):
        xpnet.Sequential(["relu"])
    with pytest.raises(xpnet.InputError, match=r"layers\[0\] 'Dense': a layer given by name is built with no "
                                               r"arguments.*pass an instance"):
        xpnet.Sequential(["Dense"])
    with pytest.raises(xpnet.InputError, match=r"layers\[1\] is int 3, not a layer"):
        xpnet.Sequential([xpnet.Dense(4, 2), 3])
    with pytest.raises(xpnet.InputError, match="unknown layer 'rleu'; choose one of"):
        xpnet.Sequential([xpnet.Dense(4, 2), "rleu"])
    with pytest.raises(xpnet.InputError, match="layers must be a list of layers"):
        xpnet.Sequential("relu")


# item 7: the command line and Python agree on shapes -------------------------------------------------
@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    from xpnet.models.presets import lenet5_layers
    from xpnet.registry import model_from_config
    model = model_from_config({"class": "Sequential", "config": {"layers": lenet5_layers(), "seed": 0,
                                                                  "input_shape": [1, 28, 28]}}, "numpy")
    ck = model.save(tmp_path_factory.mktemp("lenet") / "lenet.safetensors")
    return model, ck


@pytest.mark.parametrize("shape", [(3, 784), (3, 28, 28), (3, 1, 28, 28), (28, 28), (784,), (1, 28, 28)])
def test_predict_shapes_accepted_alike(lenet, tmp_path, shape):
    """Flat rows, (n, H, W) and one sample: `xpnet predict` accepted flat (n, 784) arrays for LeNet-5 and
    model.predict refused them; a single (28, 28) sample was refused by both."""
    model, ck = lenet
    X = np.random.default_rng(1).random((3, 1, 28, 28))
    n = 3 if len(shape) > 1 and shape[0] == 3 else 1
    want = model.predict(X[:n]).tolist()
    data = X[:n].reshape(shape)
    assert model.predict(data).tolist() == want
    np.testing.assert_array_equal(model.predict_proba(data), model.predict_proba(X[:n]))
    assert model.score(data, want) == 1.0 and model.evaluate(data, want)[1] == 1.0
    np.save(tmp_path / "x.npy", data)
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "x.npy", "--json", "--quiet")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["predictions"] == want


def test_device_arrays_take_the_same_shapes(xpnet_backend):
    """The rule holds for the backend's own arrays too (reshaped on the device)."""
    model = xpnet.Sequential([xpnet.Flatten(), xpnet.Dense(10)], input_shape=(1, 4, 4), backend=xpnet_backend,
                             dtype="float64", seed=0)
    X = np.random.default_rng(0).random((3, 1, 4, 4))
    want = np.asarray(model.predict_proba(X))
    for shape in ((3, 16), (3, 4, 4)):
        got = model.predict_proba(xpnet_backend.asarray(X.reshape(shape), dtype=model.dtype))
        np.testing.assert_allclose(xpnet_backend.to_numpy(got), want, rtol=1e-12)
    one = model.predict_proba(xpnet_backend.asarray(X[0, 0], dtype=model.dtype))
    np.testing.assert_allclose(xpnet_backend.to_numpy(one), want[:1], rtol=1e-12)
    with pytest.raises(xpnet.InputError, match=r"X must (be 4-D|have shape) \(samples, 1, 4, 4\), got (shape )?\(3, 2, 8\)"):
        model.predict(xpnet_backend.asarray(X.reshape(3, 2, 8), dtype=model.dtype))


@pytest.mark.parametrize("shape, message", [
    ((3, 28, 28, 1), r"has samples of shape \(28, 28, 1\) but the model expects \(1, 28, 28\) \(channels last\?"),
    ((3, 2, 392), r"must be 4-D \(samples, 1, 28, 28\), got shape \(3, 2, 392\)"),
    ((3, 783), r"must be 4-D \(samples, 1, 28, 28\), got shape \(3, 783\)"),
])
def test_predict_shapes_refused_alike(lenet, tmp_path, shape, message):
    model, ck = lenet
    data = np.zeros(shape)
    with pytest.raises(xpnet.InputError, match="X " + message):
        model.predict(data)
    np.save(tmp_path / "x.npy", data)
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "x.npy")
    one_line_error(rc, err)
    assert re.search("x.npy " + message, err), err


def test_one_sample_of_a_table_model_alike(iris, tmp_path):
    d, ck = iris
    model = xpnet.load(ck)
    row = np.array([0.1, 0.2, 0.3, 0.4])
    assert model.predict(row).tolist() == model.predict(row[None]).tolist()
    np.save(tmp_path / "row.npy", row)
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "row.npy", "--json", "--quiet")
    assert rc == 0 and json.loads(out.splitlines()[-1])["predictions"] == model.predict(row).tolist(), err
    for bad in (np.zeros((2, 5)), np.zeros((2, 2, 2))):
        with pytest.raises(xpnet.InputError) as lib:
            model.predict(bad)
        np.save(tmp_path / "bad.npy", bad)
        rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "bad.npy")
        one_line_error(rc, err, str(lib.value).replace("X ", "", 1))


# item 3: checkpoints remember where the data was --------------------------------------------------------
def fake_mnist(folder, n_train=32, n_test=16):
    """The four IDX files of a tiny MNIST-like set of 28x28 images (gzipped)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10,
              rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10)
    for name, a in zip(FILES, arrays):
        a = np.asarray(a, dtype=np.uint8)
        header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
        (folder / name).write_bytes(gzip.compress(header + a.tobytes()))
    return folder


def test_evaluate_finds_the_data_dir_it_was_trained_from(tmp_path, monkeypatch):
    """`xpnet evaluate --checkpoint lenet5.safetensors` (the README's example) looked for MNIST in the default
    folder (and downloaded it) although the run was trained from --data-dir."""
    data = fake_mnist(tmp_path / "my-mnist")
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "empty"))
    ck = tmp_path / "lenet5.safetensors"
    rc, out, err = run("train", "--preset", "lenet5", "--data-dir", data, "--epochs", "1", "--offline",
                       "--checkpoint", ck, "--quiet", "--backend", "numpy")
    assert rc == 0, err
    rc, out, err = run("evaluate", "--checkpoint", ck, "--offline", "--backend", "numpy")
    assert rc == 0, err
    assert out.startswith("mnist (test split): n 16  accuracy")
    rc, out, err = run("evaluate", "--checkpoint", ck, "--offline", "--data-dir", tmp_path / "empty")
    one_line_error(rc, err, "not found")  # a --data-dir given still wins


def test_csv_runs_remember_file_and_label_column(iris, tmp_path, monkeypatch):
    """A CSV model trained with --label-column species failed in predict, evaluate and resume until the flag
    was given again; evaluate scored the training file without saying so; a relative --dataset path was
    lost once the command ran elsewhere."""
    d, ck = iris
    rc, out, err = run("predict", "--checkpoint", ck, d / "iris.csv")
    assert rc == 0 and "accuracy" in out.splitlines()[-1] and "against the label column (60 samples)" in out, err
    monkeypatch.chdir(d)
    rel = tmp_path / "rel.safetensors"
    rc, out, err = run("train", "--dataset", "iris.csv", "--label-column", "species", "--epochs", "1", "--hidden",
                       "8", "--checkpoint", rel, "--quiet", "--backend", "numpy")
    assert rc == 0, err
    monkeypatch.chdir(tmp_path)
    rc, out, err = run("evaluate", "--checkpoint", rel)
    assert rc == 0, err
    assert out.startswith(f"{d / 'iris.csv'} (training data: it has no test split): n 60  accuracy"), out
    result = json.loads(run("evaluate", "--checkpoint", rel, "--json")[1].splitlines()[-1])
    assert result["split"] == "train" and result["n"] == 60
    rc, out, err = run("train", "--epochs", "2", "--checkpoint", rel, "--resume", rel, "--quiet", "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["epochs"] == 2, err  # from another folder, no flags
    monkeypatch.chdir(d)
    rc, out, err = run("train", "--dataset", "iris.csv", "--epochs", "3", "--checkpoint", rel, "--resume", rel,
                       "--quiet", "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["epochs"] == 3, err


def test_checkpoints_of_release_0_1_0_still_evaluate():
    from pathlib import Path
    fixture = Path(__file__).parent / "fixtures" / "v0.1.0-digits-adam.safetensors"
    rc, out, err = run("evaluate", "--checkpoint", fixture, "--backend", "numpy")
    assert rc == 0 and re.match(r"digits \(test split\): n 359  accuracy 0\.9\d+", out), (out, err)


# item 6: progress on long evaluations, times that cover what they say --------------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_on_terminal(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), Terminal()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_inference_reports_progress_per_batch():
    X, y, Xt, yt = load_digits()
    model = xpnet.Sequential([xpnet.Dense(64, 10)], backend="numpy", seed=0)
    model.fit(X, y, epochs=1)
    for call, batches in ((lambda p: model.score(Xt, yt, progress=p), [len(Xt)]),  # one default batch
                          (lambda p: model.evaluate(Xt, yt, batch_size=100, progress=p), [100, 100, 100, len(Xt) - 300]),
                          (lambda p: model.predict(Xt, batch_size=100, progress=p), [100, 100, 100, len(Xt) - 300]),
                          (lambda p: model.predict_proba(Xt[:7], batch_size=3, progress=p), [3, 3, 1])):
        seen = []
        with_progress = call(seen.append)
        assert seen == batches
        np.testing.assert_array_equal(np.asarray(with_progress), np.asarray(call(None)))
    with pytest.raises(xpnet.InputError, match=r"score\(progress='tqdm'\): must be a function"):
        model.score(Xt, yt, progress="tqdm")


def test_train_scoring_shows_progress_and_reports_its_time():
    """After an epoch of fashion-cnn about 25 s passed silently (the train accuracy over 60,000 images) and
    the run reported '(97.1 s)' for 127 s: on a terminal the scoring passes get a bar, and the last line
    says what each time covers."""
    rc, out, err = run_on_terminal("train", "--epochs", "1", "--hidden", "8", "--backend", "numpy")
    assert rc == 0
    assert "train accuracy" in err and "test accuracy" in err and "sample" in err  # the two scoring bars
    last = out.splitlines()[-1]
    m = re.fullmatch(r"train accuracy 0\.\d{4}  test accuracy 0\.\d{4}  \(training (\d+\.\d) s, scoring (\d+\.\d) s; "
                     r"(\d+\.\d) s in all\)", last)
    assert m, last
    training, scoring, total = map(float, m.groups())
    assert training + scoring <= total + 0.1
    result = json.loads(run("train", "--epochs", "1", "--hidden", "8", "--quiet", "--json")[1].splitlines()[-1])
    assert result["seconds"] + result["scoring_seconds"] <= result["total_seconds"]
    from pathlib import Path
    fixture = Path(__file__).parent / "fixtures" / "v0.1.0-digits-adam.safetensors"
    rc, out, err = run_on_terminal("evaluate", "--checkpoint", fixture, "--backend", "numpy")
    assert rc == 0 and "loss, accuracy, confusion matrix" in err and "sample" in err  # one pass, one bar
