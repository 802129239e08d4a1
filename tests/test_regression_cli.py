"""`xpnet evaluate` and `xpnet predict` on a regression checkpoint (`xpnet train --task regression`): the loss (MSE),
R² (scikit-learn's r2_score, uniform average), MAE and RMSE, per output for several; the continuous outputs, one
column per output; the classification-only flags refused in one line; the same figures on another backend."""
import csv
import json

import numpy as np
import pytest

import xpnet
from xpnet.cli.app import main
from xpnet.data.regression import regression_report

TRAIN = ["--task", "regression", "--optimizer", "adam", "--lr", "0.01", "--scale", "standardize", "--hidden", "16",
         "--quiet", "--json"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def one_output(tmp_path_factory):
    """A .csv with a continuous 'target' column (no test split) and its float64 checkpoint trained on NumPy."""
    d = tmp_path_factory.mktemp("one")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 + 0.1 * rng.normal(size=160)
    path, ckpt = d / "reg.csv", d / "reg.safetensors"
    with open(path, "w") as f:
        f.write("a,b,c,d,target\n")
        f.writelines(",".join(f"{v:.6f}" for v in row) + f",{t:.6f}\n" for row, t in zip(X, y))
    X, y = np.loadtxt(path, delimiter=",", skiprows=1)[:, :4], np.loadtxt(path, delimiter=",", skiprows=1)[:, 4]
    assert main(["train", "--dataset", str(path), "--label-column", "target", "--dtype", "float64", "--epochs", "10",
                 "--checkpoint", str(ckpt), *TRAIN]) == 0
    return path, ckpt, X, y


@pytest.fixture(scope="module")
def two_outputs(tmp_path_factory):
    """An .npz of X, y (samples, 2) with a test split, and its float32 (the default) checkpoint trained on NumPy."""
    d = tmp_path_factory.mktemp("two")
    rng = np.random.default_rng(1)
    X, X_test = rng.normal(size=(160, 5)), rng.normal(size=(40, 5))
    W = rng.normal(size=(5, 2))
    path, ckpt = d / "two.npz", d / "two.safetensors"
    np.savez(path, X=X, y=np.tanh(X @ W), X_test=X_test, y_test=np.tanh(X_test @ W))
    assert main(["train", "--dataset", str(path), "--epochs", "10", "--checkpoint", str(ckpt), *TRAIN]) == 0
    return path, ckpt, X_test, np.tanh(X_test @ W)


def test_evaluate_one_output_gives_mse_r2_mae_rmse_as_scikit_learn(one_output, capsys):
    path, ckpt, X, y = one_output
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt)]) == 0  # the recorded .csv and label column
    text = capsys.readouterr().out
    assert "reg.csv (training data: it has no test split): n 160  loss (MSE) " in text and "R² " in text
    assert "confusion" not in text and "accuracy" not in text
    assert main(["evaluate", "--checkpoint", str(ckpt), "--dataset", str(path), "--quiet", "--json"]) == 0
    out = _last_json(capsys)
    model = xpnet.load(ckpt)
    pred = model.predict(X)
    assert out["task"] == "regression" and out["split"] == "train" and out["n"] == 160
    assert out["r2"] == pytest.approx(model.score(X, y), abs=1e-12) and out["r2"] > 0.9
    assert out["loss"] == pytest.approx(out["mse"], rel=1e-12) and len(out["outputs"]) == 1
    assert out["outputs"][0] == pytest.approx({k: out[k] for k in ("r2", "mae", "mse", "rmse")}, rel=1e-12)
    metrics = pytest.importorskip("sklearn.metrics")
    assert out["r2"] == pytest.approx(metrics.r2_score(y, pred), abs=1e-12)
    assert out["mae"] == pytest.approx(metrics.mean_absolute_error(y, pred), rel=1e-12)
    assert out["rmse"] == pytest.approx(metrics.mean_squared_error(y, pred) ** 0.5, rel=1e-12)


def test_evaluate_several_outputs_reports_each_one(two_outputs, capsys):
    path, ckpt, X_test, y_test = two_outputs
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "two.npz (test split): n 40, 2 outputs  loss (MSE) " in lines[0] and "R² (uniform average) " in lines[0]
    assert lines[1].split() == ["output", "R²", "MAE", "RMSE"] and [r.split()[0] for r in lines[2:]] == ["0", "1"]
    assert main(["evaluate", "--checkpoint", str(ckpt), "--quiet", "--json"]) == 0
    out = _last_json(capsys)
    model = xpnet.load(ckpt)
    assert out["split"] == "test" and out["n"] == 40 and len(out["outputs"]) == 2
    assert out["r2"] == pytest.approx(model.score(X_test, y_test), abs=1e-12)
    assert out["loss"] == pytest.approx(out["mse"], rel=1e-5)  # float32 loss, float64 host MSE
    pred = model.predict(X_test).astype(np.float64)  # scikit-learn computes float32 inputs in float32
    metrics = pytest.importorskip("sklearn.metrics")
    truth = y_test.astype(np.float32).astype(np.float64)  # the targets in the model's dtype, as model.score has them
    for name, fn in (("r2", metrics.r2_score), ("mae", metrics.mean_absolute_error),
                     ("mse", metrics.mean_squared_error)):
        raw = fn(truth, pred, multioutput="raw_values")
        assert [o[name] for o in out["outputs"]] == pytest.approx(raw, rel=1e-9, abs=1e-12)
        assert out[name] == pytest.approx(fn(truth, pred), rel=1e-9, abs=1e-12)
    assert [o["rmse"] for o in out["outputs"]] == pytest.approx(
        np.sqrt(metrics.mean_squared_error(truth, pred, multioutput="raw_values")), rel=1e-9)


def test_predict_writes_one_column_per_output(one_output, two_outputs, tmp_path, capsys):
    path, ckpt, X, y = one_output
    capsys.readouterr()
    out_csv = tmp_path / "one.csv"
    assert main(["predict", "--checkpoint", str(ckpt), str(path), "--output", str(out_csv)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("0: ") and text[-2].startswith("R² ") and text[-1] == f"wrote {out_csv}"
    assert main(["predict", "--checkpoint", str(ckpt), str(path), "--json"]) == 0
    out = _last_json(capsys)
    model = xpnet.load(ckpt)
    np.testing.assert_allclose(out["predictions"], model.predict(X)[:, 0], rtol=1e-12)
    assert out["outputs"] == 1 and out["r2"] == pytest.approx(model.score(X, y), abs=1e-12)
    assert "probabilities" not in out and "class_names" not in out
    assert out["rows"][3]["prediction"] == out["predictions"][3]
    with open(out_csv) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "index", "prediction"] and len(rows) == 161
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], out["predictions"], rtol=1e-8)

    path, ckpt, X_test, y_test = two_outputs
    np.save(tmp_path / "x.npy", X_test[:3])
    out_csv = tmp_path / "two.csv"
    assert main(["predict", "--checkpoint", str(ckpt), str(path), str(tmp_path / "x.npy"), "--json", "--output",
                 str(out_csv)]) == 0
    out = _last_json(capsys)
    model = xpnet.load(ckpt)
    with np.load(path) as data:
        X_train = data["X"]
    expected = model.predict(np.concatenate([X_train, X_test[:3]]))
    np.testing.assert_allclose(out["predictions"], expected, rtol=1e-6)
    assert out["outputs"] == 2 and "r2" not in out  # the .npy has no targets
    with open(out_csv) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "index", "prediction_0", "prediction_1"] and len(rows) == 164
    assert main(["predict", "--checkpoint", str(ckpt), str(path), "--json"]) == 0  # the .npz's (samples, 2) y
    with np.load(path) as data:
        assert _last_json(capsys)["r2"] == pytest.approx(model.score(data["X"], data["y"]), abs=1e-12)


def test_classification_flags_are_refused_in_one_line(one_output, two_outputs, tmp_path, capsys):
    _, ckpt, _, _ = one_output
    capsys.readouterr()
    for flags, why in ((["--report"], "--report asks for a per-class precision/recall/F1 report"),
                       (["--top-k", "3"], "--top-k asks for a top-K accuracy over classes")):
        assert main(["evaluate", "--checkpoint", str(ckpt), *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "is a regression model" in err and "R², MAE and RMSE" in err
    with pytest.raises(SystemExit) as exit:  # predict has no probability option: argparse's one line
        main(["predict", "--checkpoint", str(ckpt), "x.csv", "--proba"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --proba" in err
    np.savez(tmp_path / "narrow.npz", X=np.ones((10, 5)), y=np.ones(10))  # one target for a two-output model
    assert main(["evaluate", "--checkpoint", str(two_outputs[1]), "--dataset", str(tmp_path / "narrow.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "narrow.npz's targets must have shape (10, 2)" in err and "got (10,)" in err


@pytest.mark.parametrize("backend", ["torch", "jax", "array_api_strict"])
def test_a_numpy_trained_checkpoint_gives_the_same_figures_on_another_backend(two_outputs, backend, capsys):
    """Trained on NumPy in float32, evaluated and predicted on another backend: the same figures within float32's
    rounding."""
    pytest.importorskip(backend)
    path, ckpt, X_test, _ = two_outputs
    figures = {}
    for name in ("numpy", backend):
        capsys.readouterr()
        assert main(["evaluate", "--checkpoint", str(ckpt), "--backend", name, "--quiet", "--json"]) == 0
        figures[name] = _last_json(capsys)
        assert main(["predict", "--checkpoint", str(ckpt), str(path), "--backend", name, "--quiet", "--json"]) == 0
        figures[name]["predictions"] = _last_json(capsys)["predictions"]
    a, b = figures["numpy"], figures[backend]
    for k in ("loss", "r2", "mae", "mse", "rmse"):
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k
    for oa, ob in zip(a["outputs"], b["outputs"]):
        assert ob == pytest.approx(oa, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(b["predictions"], a["predictions"], rtol=1e-5, atol=1e-6)


def test_regression_report_is_scikit_learns():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    t, p = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    t[:, 2] = 1.5  # a constant output: scikit-learn's force_finite R² (0 when not predicted exactly)
    r = regression_report(t, p)
    assert r["r2"] == pytest.approx(metrics.r2_score(t, p), abs=1e-12)
    assert r["mae"] == pytest.approx(metrics.mean_absolute_error(t, p), rel=1e-12)
    assert r["mse"] == pytest.approx(metrics.mean_squared_error(t, p), rel=1e-12)
    assert r["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(t, p, multioutput="raw_values")).mean())
    assert [o["r2"] for o in r["outputs"]] == pytest.approx(metrics.r2_score(t, p, multioutput="raw_values"))
    one = regression_report(t[:, 0], p[:, 0])
    assert len(one["outputs"]) == 1 and one["r2"] == pytest.approx(metrics.r2_score(t[:, 0], p[:, 0]), abs=1e-12)
