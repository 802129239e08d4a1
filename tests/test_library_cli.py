"""The library and the command line agree (issue 15): a checkpoint's model applies its own preprocessing,
labels of any kind come back through classes_, `xpnet predict` reads what `xpnet train` reads, and class
names reach predictions, the confusion matrix and the plots. The CLI runs in-process (xpnet.cli.main)."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

import xpnet
from fakes import run_cli
from xpnet.data.datasets import load_digits
from xpnet.layers import Dense, ReLU

SCALES = ["raw", "unit", "symmetric", "standardize"]


run = run_cli


def last_json(argv) -> dict:
    rc, out, err = run(*argv, "--json")
    assert rc == 0, err
    return json.loads(out.splitlines()[-1])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same small problem as .npz, .csv (with names as labels) and .npy inputs, raw (not scaled)."""
    d = tmp_path_factory.mktemp("data")
    X, y, Xt, yt = load_digits()
    X, y, Xt, yt = X[:300] * 3.0 + 7.0, y[:300], Xt[:40] * 3.0 + 7.0, yt[:40]  # far from unit scale
    np.savez(d / "d.npz", X=X, y=y, X_test=Xt, y_test=yt)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    header = [f"f{i}" for i in range(64)] + ["digit"]
    with open(d / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([*row, names[label]] for row, label in zip(X.tolist(), y))
    with open(d / "x.csv", "w", newline="") as f:  # no label column, no header
        csv.writer(f).writerows(Xt.tolist())
    np.save(d / "x.npy", Xt)
    return d, Xt, yt, names


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("kind", ["digits", "npz", "csv"])
def test_load_predict_equals_xpnet_predict(tmp_path, files, kind, scale):
    """xpnet.load(path).predict(raw) == `xpnet predict` on every --scale kind and dataset kind (the loaded
    model ignored its preprocessing before: 33 % on iris)."""
    d, Xt, yt, names = files
    dataset = {"digits": "digits", "npz": d / "d.npz", "csv": d / "d.csv"}[kind]
    ck = tmp_path / "m.safetensors"
    last_json(["train", "--dataset", dataset, "--label-column", "digit", "--scale", scale, "--epochs", "3",
               "--hidden", "16", "--checkpoint", ck, "--quiet", "--backend", "numpy"])
    model = xpnet.load(ck)
    assert model.preprocessing.kind == scale
    raw = load_digits()[2][:40] if kind == "digits" else Xt
    if kind == "digits":
        np.save(tmp_path / "x.npy", raw)
    cli = last_json(["predict", "--checkpoint", ck, tmp_path / "x.npy" if kind == "digits" else d / "x.npy",
                     "--quiet"])
    assert cli["predictions"] == model.predict(raw).tolist()
    np.testing.assert_array_equal(np.asarray(cli["probabilities"]), model.predict_proba(raw))
    if kind == "csv":
        assert set(cli["predictions"]) <= set(names) and model.classes_.tolist() == sorted(names)
    truth = yt if kind != "csv" else names[yt]
    expected_acc = float(np.mean(model.predict(raw) == (load_digits()[3][:40] if kind == "digits" else truth)))
    ev_acc = model.score(raw, load_digits()[3][:40] if kind == "digits" else truth)
    assert ev_acc == expected_acc and model.evaluate(raw, truth if kind != "digits" else load_digits()[3][:40])[1] \
        == pytest.approx(expected_acc)
    if scale != "raw":  # scaled by hand, the same model without its preprocessing gives the same answers
        Xs = model.preprocessing.transform(raw, model.dtype_name)
        model.preprocessing = None
        assert model.predict(Xs).tolist() == cli["predictions"]


def test_library_fit_with_names_and_preprocessing():
    X, y, Xt, yt = load_digits()
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    model = xpnet.Sequential([Dense(64, 32), ReLU(), Dense(32, 10)], optimizer="adam", seed=0,
                             preprocessing="standardize", backend="numpy")
    model.fit(X * 16, names[y], epochs=5, batch_size=32)
    assert model.classes_.tolist() == sorted(names)
    pred = model.predict(Xt * 16)
    assert pred.dtype.kind == "U" and model.score(Xt * 16, names[yt]) == np.mean(pred == names[yt]) > 0.8
    proba = model.predict_proba(Xt * 16)
    assert (model.classes_[proba.argmax(axis=1)] == pred).all()
    with pytest.raises(xpnet.InputError, match="label 'ten', which is not one of the model's classes_"):
        model.score(Xt[:2], ["ten", "one"])
    with pytest.raises(xpnet.InputError, match="y holds 2 distinct labels .*model has 10 outputs.*classes="):
        xpnet.Sequential([Dense(64, 10)], backend="numpy").fit(X[:4], ["a", "b", "a", "b"], epochs=1)
    explicit = xpnet.Sequential([Dense(64, 3)], backend="numpy", seed=0)
    explicit.fit(X[:30], np.array(["b", "c", "a"])[y[:30] % 3], classes=["c", "b", "a"], epochs=1)
    assert explicit.classes_.tolist() == ["c", "b", "a"]
    onehot = explicit.as_targets(["c", "b", "a"], 3)[0]
    np.testing.assert_array_equal(np.asarray(onehot), np.eye(3))


def test_names_survive_a_checkpoint(tmp_path):
    X, y, Xt, _ = load_digits()
    model = xpnet.Sequential([Dense(64, 3)], backend="numpy", seed=0, preprocessing="unit")
    model.fit(X[:60], np.array(["x", "y", "z"])[y[:60] % 3], epochs=1)
    model.class_names_ = ["Ex", "Why", "Zed"]
    again = xpnet.load(model.save(tmp_path / "m.safetensors"), backend="numpy")
    assert again.classes_.tolist() == ["x", "y", "z"] and again.class_names_ == ["Ex", "Why", "Zed"]
    assert again.predict(Xt).tolist() == model.predict(Xt).tolist()
    np.testing.assert_array_equal(again.preprocessing.shift, model.preprocessing.shift)


def test_predict_reads_every_format_and_several_files(tmp_path, files):
    d, Xt, yt, names = files
    ck = tmp_path / "m.safetensors"
    last_json(["train", "--dataset", d / "d.csv", "--label-column", "digit", "--epochs", "3", "--hidden", "16",
               "--checkpoint", ck, "--quiet", "--backend", "numpy", "--scale", "standardize"])
    model = xpnet.load(ck)
    want = model.predict(Xt).tolist()
    for f in ("x.npy", "x.csv"):
        assert last_json(["predict", "--checkpoint", ck, d / f, "--quiet"])["predictions"] == want, f
    with_labels = last_json(["predict", "--checkpoint", ck, d / "d.csv", "--label-column", "digit", "--quiet"])
    assert len(with_labels["predictions"]) == 300 and 0 <= with_labels["accuracy"] <= 1
    np.savez(tmp_path / "x.npz", X=Xt[:5])
    both = last_json(["predict", "--checkpoint", ck, d / "x.npy", tmp_path / "x.npz", "--output",
                      tmp_path / "p.csv", "--quiet"])
    assert both["predictions"] == want + want[:5]
    assert [r["file"] for r in both["rows"]] == [str(d / "x.npy")] * 40 + [str(tmp_path / "x.npz")] * 5
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 45 and [r["label"] for r in rows] == want + want[:5]
    assert list(rows[0])[:4] == ["file", "index", "label", "class_name"] and "p_nine" in rows[0]
    assert abs(sum(float(rows[0][f"p_{n}"]) for n in names) - 1) < 1e-6
    rc, out, err = run("predict", "--checkpoint", ck, d / "x.npy", tmp_path / "missing.npy")
    assert rc == 2 and err.count("\n") == 1 and "missing.npy: no such file" in err


def test_predict_reads_a_npy_memory_mapped_batch_by_batch(tmp_path, files, capsys):
    """`xpnet predict` maps a .npy (never loads it whole) and reads it batch by batch: the labels, probabilities,
    printed lines and --output rows equal model.predict_proba on the arrays in memory."""
    import mmap
    from xpnet.cli.app import main
    from xpnet.data.predict_inputs import read_inputs
    d, Xt, yt, names = files
    ck = tmp_path / "m.safetensors"
    last_json(["train", "--dataset", d / "d.csv", "--label-column", "digit", "--epochs", "2", "--hidden", "16",
               "--checkpoint", ck, "--quiet", "--backend", "numpy", "--scale", "standardize"])
    model = xpnet.load(ck)
    inputs, y = read_inputs([d / "x.npy", d / "x.npy"], model.input_shape)
    base = inputs.arrays[0]
    while getattr(base, "base", None) is not None and not isinstance(base, mmap.mmap):
        base = base.base
    assert isinstance(base, mmap.mmap) and y is None and len(inputs) == 80, "the .npy is not memory-mapped"
    for batch in (7, None):  # the same batches: the same bits (BLAS rounds a product by its rows' count)
        np.testing.assert_array_equal(model.predict_proba(inputs, batch_size=batch),
                                      model.predict_proba(np.concatenate([Xt, Xt]), batch_size=batch))
    want = model.predict_proba(np.concatenate([Xt, Xt]))
    assert main(["predict", "--checkpoint", str(ck), str(d / "x.npy"), str(d / "x.npy"), "--output",
                 str(tmp_path / "p.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = model.predict(Xt).tolist() * 2
    assert len(lines) == 81 and lines[-1] == f"wrote {tmp_path / 'p.csv'}"
    assert lines[40].startswith(f"{d / 'x.npy'}[0]: {labels[40]}  (p = ")
    assert lines[39].startswith(f"{d / 'x.npy'}[39]:")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["label"] for r in rows] == labels and [r["index"] for r in rows] == [str(i) for i in range(40)] * 2
    np.testing.assert_array_equal([[float(r[f"p_{n}"]) for n in model.class_names_] for r in rows],
                                  np.array([[float(f"{v:.9g}") for v in p] for p in want]))


def test_predict_an_image_grid_of_a_square_model(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image
    ck = tmp_path / "m.safetensors"
    last_json(["train", "--epochs", "2", "--checkpoint", ck, "--quiet", "--backend", "numpy"])
    X = load_digits()[2][:3]
    for i in range(3):
        Image.fromarray((X[i].reshape(8, 8) * 15).astype(np.uint8)).save(tmp_path / f"{i}.png")
    result = last_json(["predict", "--checkpoint", ck, *(tmp_path / f"{i}.png" for i in range(3)), "--quiet"])
    assert len(result["predictions"]) == 3 and [r["index"] for r in result["rows"]] == [None] * 3


def test_fashion_names_in_predictions_and_confusion(tmp_path, mnist_dir):
    fashion = mnist_dir.parent / "fashion-mnist"
    ck = tmp_path / "f.safetensors"
    last_json(["train", "--dataset", "fashion-mnist", "--data-dir", fashion, "--epochs", "1", "--hidden", "8",
               "--batch-size", "500", "--checkpoint", ck, "--quiet", "--offline", "--backend", "numpy"])
    model = xpnet.load(ck)
    assert model.class_names_[0] == "T-shirt/top" and model.class_names_[9] == "Ankle boot"
    assert model.classes_.tolist() == list(range(10))
    rc, out, err = run("evaluate", "--checkpoint", ck, "--data-dir", fashion, "--offline")
    assert rc == 0 and "Ankle boot" in out and "Trouser" in out, err
    X = xpnet.data.datasets.load_mnist("fashion-mnist", fashion, download=False)[2][:3]
    np.save(tmp_path / "x.npy", X)
    rc, out, err = run("predict", "--checkpoint", ck, tmp_path / "x.npy")
    assert rc == 0 and any(f"({n})" in out for n in model.class_names_), out
    from xpnet.cli.train import label_names
    assert label_names(model, by_label=True)["9"] == "Ankle boot"


def test_plot_titles_use_class_names(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.axes
    matplotlib.use("Agg")
    from xpnet.tools import plots
    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, t, *a, **k: (titles.append(t), real(ax, t, *a, **k))[1])
    X = np.zeros((3, 4))
    plots.write_plots(tmp_path, [1.0, 0.5], {"epoch": [1], "accuracy": [0.5], "val_accuracy": [None]}, 2, X,
                      np.array([0, 1, 2]), np.array([1, 1, 0]), names={"0": "T-shirt/top", "1": "Trouser", "2": "Bag"})
    assert "1) t: T-shirt/top\np: Trouser" in titles and "2) t: Bag\np: T-shirt/top" in titles



def test_confusion_matrix_columns_are_class_names(tmp_path, files):
    """The columns were labelled 0-9 whatever the classes' names, and each row ended with its index again
    (issue 23): now the header names the classes, and a row is its name and one count per class."""
    d, Xt, yt, names = files
    ck = tmp_path / "m.safetensors"
    last_json(["train", "--dataset", d / "d.csv", "--label-column", "digit", "--epochs", "1", "--checkpoint", ck,
               "--quiet", "--backend", "numpy"])
    rc, out, err = run("evaluate", "--checkpoint", ck, "--dataset", d / "d.csv", "--label-column", "digit")
    assert rc == 0, err
    lines = out.splitlines()
    table = lines[lines.index("confusion matrix (rows: true, columns: predicted):") + 1:]
    order = xpnet.load(ck).class_names_  # sorted: eight, five, four, ...
    assert sorted(order) == sorted(names) and table[0].split() == order, out
    rows = [line.split() for line in table[1:]]
    assert [r[0] for r in rows] == order and all(len(r) == 11 for r in rows), out
    assert sum(int(v) for r in rows for v in r[1:]) == 300
    for line in table[1:]:  # each count sits under its column's name
        assert len(line) == len(table[0]), out


@pytest.mark.parametrize("wrong, grid", [(3, (1, 3)), (7, (2, 4)), (30, (5, 5))])
def test_misclassified_grid_fits_the_images_shown(tmp_path, monkeypatch, wrong, grid):
    """misclassified.png was a 5x5 grid however few images were wrong, most of it empty (issue 23)."""
    pytest.importorskip("matplotlib")
    import matplotlib.figure
    from xpnet.tools import plots
    saved = {}
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, *a, **k: (saved.__setitem__(Path(path).name, fig), real(fig, path, *a, **k))[1])
    y_true = np.zeros(40, dtype=int)
    y_pred = (np.arange(40) < wrong).astype(int)
    plots.write_plots(tmp_path, [1.0, 0.5], {"epoch": [1], "accuracy": [0.5], "val_accuracy": [None]}, 2,
                      np.zeros((40, 16)), y_true, y_pred)
    fig = saved["misclassified.png"]
    shown = min(wrong, 25)
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {grid}
    assert sum(ax.axison for ax in fig.axes) == shown and len(fig.axes) - shown < grid[1]

def test_parity_on_a_users_model_json(tmp_path):
    model = xpnet.Sequential([Dense(5, 8), ReLU(), Dense(8, 3)], optimizer="adam")
    (tmp_path / "m.json").write_text(json.dumps(xpnet.serialize(model)))
    report = last_json(["parity", "--model", tmp_path / "m.json", "--backends", "numpy,array_api_strict",
                        "--steps", "5"])
    assert report["passed"] and [r["label"] for r in report["results"]] == ["numpy", "array_api_strict"]
    rc, out, err = run("parity", "--model", tmp_path / "nope.json")
    assert rc == 2 and "cannot read model file" in err and err.count("\n") == 1


def test_written_files_get_the_usual_mode(tmp_path):
    """Checkpoints, prediction CSVs and exported models are created as open() would create them (0666 less
    the umask), not with mkstemp's private 0600."""
    import os
    import stat
    umask = os.umask(0)
    os.umask(umask)
    path = xpnet.Sequential([Dense(3, 2)], backend="numpy").save(tmp_path / "m.safetensors")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
