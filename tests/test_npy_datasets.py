"""Memory-mapped .npy datasets (issue 34, part 2): training from files equals training from the same arrays in
memory bit for bit (raw, unit and standardize scaling; a stopped run resumed), the streaming statistics equal
the in-memory ones, shards read as one dataset, and bad files refused in one line."""
import json
import re

import numpy as np
import pytest

import xpnet
from xpnet.data.arrays import NpyDataset, Prepared, row_chunks
from xpnet.data.datasets import load_mnist
from xpnet.data.preprocessing import Scaler
from xpnet.errors import InputError
from xpnet.layers import Dense, ReLU

N = 2000


@pytest.fixture(scope="module")
def mnist_rows(mnist_dir):
    X, y, _, _ = load_mnist("mnist", mnist_dir)
    return X[:N], y[:N]


@pytest.fixture
def files(tmp_path, mnist_rows):
    X, y = mnist_rows
    np.save(tmp_path / "x.npy", X.reshape(N, 28, 28))
    np.save(tmp_path / "y.npy", y.astype(np.int64))
    return tmp_path / "x.npy", tmp_path / "y.npy"


def _model(scale):
    return xpnet.Sequential([Dense(784, 32), ReLU(), Dense(32, 10)], backend="numpy", dtype="float64", seed=3,
                            preprocessing=scale)


def _params(model):
    return {k: np.asarray(v) for k, v in model.state.params.items()}


def _same(a, b):
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)


@pytest.mark.parametrize("scale", ["raw", "unit", "standardize"])
def test_mapped_files_train_as_the_arrays(files, mnist_rows, scale):
    X, y = mnist_rows
    memory = _model(scale).fit(X, y, epochs=2, batch_size=64)
    ds = NpyDataset(*files)
    assert isinstance(ds.maps[0], np.memmap) and not ds.xs[0].flags.owndata and len(ds) == N and ds.sample_shape == (28, 28)
    mapped = _model(scale).fit(ds, None, epochs=2, batch_size=64)
    _same(memory, mapped)
    if scale != "raw":
        np.testing.assert_array_equal(memory.preprocessing.shift, mapped.preprocessing.shift)
        np.testing.assert_array_equal(memory.preprocessing.scale, mapped.preprocessing.scale)
    assert memory.history_["loss"] == mapped.history_["loss"]


@pytest.mark.parametrize("scale", ["unit", "standardize"])
def test_evaluate_predict_and_score_take_a_dataset(files, mnist_rows, scale):
    """Sequential.evaluate / predict / predict_proba / score on a memory-mapped dataset (its own targets, rows
    read and scaled batch by batch) equal the same calls on the arrays; y beside a dataset is refused."""
    X, y = mnist_rows
    model = _model(scale).fit(X[:256], y[:256], epochs=1, batch_size=64)
    ds = NpyDataset(*files)
    assert model.evaluate(ds, batch_size=300) == model.evaluate(X, y, batch_size=300)
    np.testing.assert_array_equal(model.predict(ds, batch_size=300), model.predict(X))
    np.testing.assert_array_equal(model.predict_proba(ds), model.predict_proba(X))
    assert model.score(ds) == model.score(X, y)
    for call, match in [(lambda: model.evaluate(ds, y), "leave y out"), (lambda: model.evaluate(X), "pass y"),
                        (lambda: model.score(X), "pass y")]:
        with pytest.raises(InputError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_streaming_statistics_equal_the_in_memory_ones():
    rng = np.random.default_rng(0)
    for shape in [(700, 5), (500, 3, 4, 4), (900, 1)]:
        X = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 5, size=shape)).astype(np.float32)
        for kind in ("unit", "symmetric", "standardize"):
            whole = Scaler(kind).fit(X)
            rows = 900 if shape[1:] == (1,) else 37  # one feature: NumPy sums pairwise; equal in one chunk
            chunked = Scaler(kind).fit_chunks(lambda: (X[s:s + rows] for s in range(0, len(X), rows)))
            np.testing.assert_array_equal(whole.shift, chunked.shift)
            np.testing.assert_array_equal(whole.scale, chunked.scale)


def test_resume_mid_run_equals_an_uninterrupted_run(files, tmp_path):
    class StopAt(xpnet.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.state.step == 40:
                self.model.state.stop_requested = True

    whole = _model("standardize").fit(NpyDataset(*files), None, epochs=2, batch_size=64)
    first = _model("standardize")
    with pytest.raises(xpnet.TrainingInterrupted):
        first.fit(NpyDataset(*files), None, epochs=2, batch_size=64, callbacks=[StopAt()])
    path = first.save(tmp_path / "stopped.safetensors")
    resumed = xpnet.load(path, backend="numpy")
    resumed.fit(NpyDataset(*files), None, epochs=2, batch_size=64, resume=True)
    _same(whole, resumed)
    assert whole.history_["loss"] == resumed.history_["loss"]


def test_shards_read_as_one_dataset(tmp_path, mnist_rows):
    X, y = mnist_rows
    (tmp_path / "xs").mkdir()
    (tmp_path / "ys").mkdir()
    for i, (s, e) in enumerate([(0, 700), (700, 701), (701, N)]):
        np.save(tmp_path / "xs" / f"part{i}.npy", X[s:e])
        np.save(tmp_path / "ys" / f"part{i}.npy", y[s:e])
    ds = NpyDataset(tmp_path / "xs", tmp_path / "ys")
    idx = np.array([1999, 0, 700, 699, 701, 5, 700])
    xb, yb = ds.__getitems__(idx)
    np.testing.assert_array_equal(xb, X[idx])
    np.testing.assert_array_equal(yb, y[idx])
    assert yb.dtype == np.int64 and len(ds) == N
    np.testing.assert_array_equal(np.concatenate(list(row_chunks(ds, chunk_bytes=8 * 784 * 300)())), X)
    np.testing.assert_array_equal(ds.labels(), y)
    (tmp_path / "ys2").mkdir()  # label shards split elsewhere than the inputs' (a single file is one more way)
    for i, (s, e) in enumerate([(0, 3), (3, 1500), (1500, N)]):
        np.save(tmp_path / "ys2" / f"part{i}.npy", y[s:e])
    np.testing.assert_array_equal(NpyDataset(tmp_path / "xs", tmp_path / "ys2").__getitems__(idx)[1], y[idx])
    for kind in ("unit", "symmetric", "standardize"):
        for dtype in ("float32", "float64"):
            model = xpnet.Sequential([Dense(784, 10)], backend="numpy", dtype=dtype, preprocessing=kind)
            prepared = model.prepare_dataset(ds, fit=True)
            assert isinstance(prepared, Prepared)
            expected = xpnet.Sequential([Dense(784, 10)], backend="numpy", dtype=dtype, preprocessing=kind)
            expected.prepare(X, fit=True)  # the whole array's statistics, then the batch's rows
            np.testing.assert_array_equal(prepared.__getitems__(idx)[0], expected.prepare(X[idx]))


def test_bad_files_refused_in_one_line(tmp_path):
    def refused(match, x, y):
        with pytest.raises(InputError, match=match) as info:
            NpyDataset(x, y)
        assert "\n" not in str(info.value)

    np.save(tmp_path / "x.npy", np.zeros((10, 4), np.float32))
    np.save(tmp_path / "y.npy", np.zeros(10, np.int64))
    np.save(tmp_path / "y9.npy", np.zeros(9, np.int64))
    np.save(tmp_path / "yf.npy", np.zeros(10, np.float32))
    np.save(tmp_path / "y2.npy", np.zeros((10, 3), np.int64))
    np.save(tmp_path / "flat.npy", np.zeros(10, np.float32))
    np.save(tmp_path / "c.npy", np.zeros((10, 4), np.complex64))
    np.save(tmp_path / "obj.npy", np.array([[None]] * 10, dtype=object), allow_pickle=True)
    (tmp_path / "notnpy.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:100])  # cut short
    refused(r"9 labels for 10 samples", tmp_path / "x.npy", tmp_path / "y9.npy")
    refused(r"labels of dtype float32; expected integer class indices", tmp_path / "x.npy", tmp_path / "yf.npy")
    refused(r"labels of shape \(10, 3\).*one-hot", tmp_path / "x.npy", tmp_path / "y2.npy")
    refused(r"shape \(10,\); expected \(samples, features\)", tmp_path / "flat.npy", tmp_path / "y.npy")
    refused(r"complex64 values; expected real numbers", tmp_path / "c.npy", tmp_path / "y.npy")
    refused(r"pickle", tmp_path / "obj.npy", tmp_path / "y.npy")
    refused(r"not a readable .npy file", tmp_path / "notnpy.npy", tmp_path / "y.npy")
    refused(r"no such file", tmp_path / "missing.npy", tmp_path / "y.npy")
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "a.npy", np.zeros((5, 4), np.float32))
    np.save(tmp_path / "shards" / "b.npy", np.zeros((5, 3), np.float32))
    refused(r"shards must agree", tmp_path / "shards", tmp_path / "y.npy")
    ds = NpyDataset(tmp_path / "x.npy", tmp_path / "y.npy")
    model = xpnet.Sequential([Dense(5, 2)], backend="numpy")
    with pytest.raises(InputError, match=r"rows of shape \(4,\), but the model takes \(5,\)"):
        model.fit(ds, None, epochs=1)


def _main(capsys, *args):
    from xpnet.cli import main
    code = main([*map(str, args), "--backend", "numpy", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def _refused(capsys, match, *args):
    from xpnet.cli import main
    assert main([*map(str, args), "--backend", "numpy"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(match, err) and len(err.splitlines()) == 1, err


def test_cli_trains_resumes_and_evaluates_on_mapped_files(tmp_path, mnist_rows, capsys):
    from safetensors.numpy import load_file
    X, y = mnist_rows
    np.save(tmp_path / "x.npy", X[:600])
    np.save(tmp_path / "y.npy", y[:600].astype(np.int32))
    np.savez(tmp_path / "d.npz", X=X[:600], y=y[:600])
    run = ["train", "--hidden", "16", "--dtype", "float64", "--scale", "standardize", "--quiet"]
    mapped = _main(capsys, *run, "--dataset", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--epochs", 2,
                   "--checkpoint", tmp_path / "a.safetensors")
    arrays = _main(capsys, *run, "--dataset", tmp_path / "d.npz", "--epochs", 2, "--checkpoint", tmp_path / "b.safetensors")
    assert mapped["final_loss"] == arrays["final_loss"] and mapped["train_accuracy"] == arrays["train_accuracy"]
    _main(capsys, *run, "--dataset", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--epochs", 1,
          "--checkpoint", tmp_path / "c.safetensors")
    _main(capsys, "train", "--resume", tmp_path / "c.safetensors", "--epochs", 2, "--quiet",
          "--checkpoint", tmp_path / "c.safetensors")
    a, b, c = (load_file(tmp_path / f"{k}.safetensors") for k in "abc")
    for k in (k for k in a if k.startswith("param/")):
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])
    on_files = _main(capsys, "evaluate", "--checkpoint", tmp_path / "a.safetensors", "--quiet")
    on_arrays = _main(capsys, "evaluate", "--checkpoint", tmp_path / "b.safetensors", "--quiet")
    assert on_files["accuracy"] == on_arrays["accuracy"] and on_files["loss"] == on_arrays["loss"]
    assert on_files["confusion_matrix"] == on_arrays["confusion_matrix"] and on_files["n"] == 600
    ahead = _main(capsys, "evaluate", "--checkpoint", tmp_path / "a.safetensors", "--quiet", "--prefetch", 2)
    assert ahead == on_files  # its batches read in two threads: the same figures
    _refused(capsys, "--prefetch -1: must be", "evaluate", "--checkpoint", tmp_path / "a.safetensors", "--prefetch", -1)
    _refused(capsys, "name their labels with --labels", *run, "--dataset", tmp_path / "x.npy")
    _refused(capsys, "--image-size describe an image folder", *run, "--dataset", tmp_path / "x.npy", "--labels",
             tmp_path / "y.npy", "--image-size", "28x28")
    np.save(tmp_path / "y9.npy", y[:9].astype(np.int64))
    _refused(capsys, "9 labels for 600 samples", *run, "--dataset", tmp_path / "x.npy", "--labels", tmp_path / "y9.npy")
    np.save(tmp_path / "x.npy", X[:600][::-1])  # the file changed since the checkpoint
    _refused(capsys, "other data", "train", "--resume", tmp_path / "c.safetensors", "--epochs", 3)


def test_predict_reads_a_memory_mapped_array_batch_by_batch(tmp_path, mnist_rows, monkeypatch):
    """model.predict / predict_proba on host data (np.load(path, mmap_mode="r") here) read, scale and move it
    batch by batch, never a scaled copy of the whole: the same bits as before (scaling it whole), and no
    Scaler.transform call sees more than a batch."""
    from xpnet.data.preprocessing import Scaler
    X, y = mnist_rows
    X = X[:600].astype(np.float32)  # float rows: scaled by Scaler.transform (integer pixels have a path of their own)
    np.save(tmp_path / "x.npy", X)
    mapped_x = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = xpnet.Sequential([xpnet.Dense(784, 16), xpnet.ReLU(), xpnet.Dense(16, 10)], seed=1,
                             preprocessing="standardize").fit(X, y[:600], epochs=1)
    whole = model._outputs(model.prepare(model.as_samples(X)), True, 64, "test")  # scaled whole
    sizes, real = [], Scaler.transform
    monkeypatch.setattr(Scaler, "transform", lambda self, x, *a, **k: sizes.append(len(x)) or real(self, x, *a, **k))
    np.testing.assert_array_equal(model.predict_proba(mapped_x, batch_size=64), whole)
    assert max(sizes) == 64 and sum(sizes) == 600
    assert model.predict(mapped_x).tolist() == model.predict(np.asarray(X)).tolist()
    with pytest.raises(xpnet.InputError, match=r"X contains NaN or infinity \(first at row 3"):
        bad = X[:8].astype(np.float64)
        bad[3, 5] = np.nan
        model.predict(bad)
