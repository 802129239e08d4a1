"""Regression: Sequential(task="regression") fits continuous (samples, outputs) targets with the identity output
and MSE, predicts its outputs, scores R² (scikit-learn's r2_score), saves the task in its checkpoint, and trains the
same on every backend."""
import json

import numpy as np
import pytest

import xpnet
from xpnet.data.regression import check_targets, r2_score
from xpnet.errors import InputError


def _data(outputs=2, n=120):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5))
    Y = np.tanh(X @ rng.normal(size=(5, outputs))) + 0.1
    return X, Y


def _model(outputs=2, backend=None, **kw):
    return xpnet.Sequential([xpnet.Dense(5, 16), "tanh", xpnet.Dense(16, outputs)], loss="mse",
                            optimizer=xpnet.Adam(0.01), task="regression", backend=backend, dtype="float64", seed=0,
                            **kw)


def test_r2_is_scikit_learns():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    t, p, w = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)), rng.uniform(size=30)
    assert r2_score(t, p) == pytest.approx(metrics.r2_score(t, p), abs=1e-12)
    assert r2_score(t, p, w) == pytest.approx(metrics.r2_score(t, p, sample_weight=w), abs=1e-12)
    assert r2_score(t[:, 0], p[:, 0]) == pytest.approx(metrics.r2_score(t[:, 0], p[:, 0]), abs=1e-12)
    const = np.ones((5, 1))
    assert r2_score(const, const) == 1.0 and r2_score(const, const + 1) == 0.0


def test_regression_fits_predicts_scores_and_saves(xpnet_backend, tmp_path):
    X, Y = _data()
    model = _model(backend=xpnet_backend).fit(X, Y, epochs=40, sample_weight=np.ones(len(X)), validation_split=0.1)
    pred = model.predict(X)
    assert pred.shape == (len(X), 2) and model.score(X, Y) > 0.8
    assert model.score(X, Y) == pytest.approx(r2_score(Y, pred), abs=1e-12)
    loss, r2 = model.evaluate(X, Y)
    assert r2 == pytest.approx(model.score(X, Y)) and loss == pytest.approx(((pred - Y) ** 2).mean(), rel=1e-9)
    path = tmp_path / "reg.safetensors"
    model.save(path)
    back = xpnet.load(path)  # on numpy: the same weights, another library's rounding
    assert back.task == "regression"
    np.testing.assert_allclose(back.predict(X), pred, rtol=1e-12, atol=1e-12)
    reference = _model().fit(X, Y, epochs=40, sample_weight=np.ones(len(X)), validation_split=0.1)
    np.testing.assert_allclose(pred, reference.predict(X), rtol=1e-9, atol=1e-12)


def test_one_output_takes_a_vector_and_refusals_are_one_line():
    X, Y = _data(outputs=1)
    model = _model(outputs=1).fit(X, Y[:, 0], epochs=3)
    assert model.predict(X).shape == (len(X), 1) and model.get_config()["task"] == "regression"
    assert "task" not in xpnet.Sequential([xpnet.Dense(5, 2)]).get_config()  # classifiers' configs unchanged
    with pytest.raises(InputError, match=r"^task='regression' fits continuous targets, but loss=Softmax"):
        xpnet.Sequential([xpnet.Dense(5, 1)], task="regression")
    with pytest.raises(InputError, match=r"^Sequential\(task='ranking'\): must be 'classification' or 'regression'"):
        xpnet.Sequential([xpnet.Dense(5, 1)], task="ranking")
    with pytest.raises(InputError, match=r"^y must have shape \(120, 1\) or \(samples,\)"):
        model.fit(X, np.ones((120, 2)), epochs=1)
    with pytest.raises(InputError, match="NaN or infinity"):
        check_targets([np.nan], 1, 1)
    with pytest.raises(InputError, match="class_weight weighs the classes of a classifier"):
        model.fit(X, Y, epochs=1, class_weight="balanced")
    with pytest.raises(InputError, match="must hold numbers for a regression model"):
        check_targets(np.array(["a"]), 1, 1)


def _csv(path, n=240):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3
    with open(path, "w") as f:
        f.write("a,b,c,d,target\n")
        f.writelines(",".join(f"{v:.6f}" for v in row) + f",{t:.6f}\n" for row, t in zip(X, y))
    return X, y


def test_the_command_line_trains_saves_and_resumes_a_regression(tmp_path, capsys):
    """xpnet train --task regression: a .csv's label column as continuous targets, identity output and MSE,
    R² reported; the checkpoint is a regression model and resumes as one; a softmax loss is refused."""
    from xpnet.cli.app import main
    path, ckpt = tmp_path / "reg.csv", tmp_path / "reg.safetensors"
    X, y = _csv(path)
    flags = ["train", "--dataset", str(path), "--label-column", "target", "--task", "regression", "--optimizer",
             "adam", "--lr", "0.01", "--scale", "standardize", "--quiet", "--json"]
    assert main([*flags, "--epochs", "15", "--checkpoint", str(ckpt)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["task"] == "regression" and out["train_r2"] > 0.95 and out["test_r2"] is None
    model = xpnet.load(ckpt)
    assert model.task == "regression" and model.predict(X).shape == (len(X), 1)
    assert model.score(X, y) == pytest.approx(out["train_r2"], abs=1e-6)
    assert main([*flags, "--epochs", "20", "--resume", str(ckpt)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 20
    assert main([*flags, "--loss", "logistic"]) == 2
    assert "--task regression fits continuous targets with --loss mse" in capsys.readouterr().err
