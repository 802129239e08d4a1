"""xpnet.sklearn: scikit-learn's own estimator checks (parametrize_with_checks, no expected failures), array-API
inputs kept on their library and device, pipelines and grid searches, pickling, and equal cross-validation
scores on NumPy and PyTorch. Skipped as a whole without scikit-learn 1.6 (the `sklearn` extra).

Checks scikit-learn skips by itself here (each says why in its SkipTest): those of CUDA, MPS, XPU, CuPy and dpnp
devices without such a device or library, and the pandas ones without pandas."""
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6", reason="xpnet.sklearn needs scikit-learn 1.6 or later "
                              '(pip install "xpnet[sklearn]")')

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_array_api_input, parametrize_with_checks  # noqa: E402

import xpnet  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor  # noqa: E402


class SmallMLP:
    """A model factory for NeuralNet*: (n_features, n_outputs) -> layers (module-level: clone and pickle copy it;
    its repr keeps the checks' test ids stable)."""

    def __call__(self, n_features, n_outputs):
        return [xpnet.Dense(n_features, 8), "tanh", xpnet.Dense(8, n_outputs)]

    def __repr__(self):
        return "SmallMLP()"


small_mlp = SmallMLP()


def digits_cnn(n_features, n_outputs):
    """A small CNN on the 8x8 digits, taking the flat rows scikit-learn gives (viewed as (1, 8, 8))."""
    return xpnet.Sequential([xpnet.Conv2D(1, 4, 3), "relu", xpnet.Flatten(), xpnet.Dense(4 * 6 * 6, n_outputs)],
                            input_shape=(1, 8, 8))


# small, fast instances: scikit-learn's checks fit each ~80 times; these reach its accuracy (> 0.83) and R² (> 0.5)
SMALL = {"learning_rate_init": 0.03, "max_iter": 50}
ESTIMATORS = [MLPClassifier((8,), **SMALL), MLPRegressor((8,), **SMALL),
              NeuralNetClassifier(small_mlp, **SMALL), NeuralNetRegressor(small_mlp, **SMALL)]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learns_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS[:2], ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("namespace, device, dtype", [("array_api_strict", "CPU_DEVICE", "float64"),
                                                      ("array_api_strict", "device1", "float32"),
                                                      ("torch", "cpu", "float64"), ("torch", "cpu", "float32"),
                                                      ("torch", "cuda", "float32"), ("cupy", None, None)])
def test_array_api_input_and_values(estimator, namespace, device, dtype):
    """check_array_api_input with check_values: the attributes and every output in X's namespace and on its
    device, and equal to the NumPy fit's (within scikit-learn's tolerance for the dtype). CUDA and CuPy skip
    (scikit-learn's SkipTest) without a GPU."""
    pytest.importorskip(namespace)
    check_array_api_input(type(estimator).__name__, estimator, namespace, device_name=device, dtype_name=dtype,
                          check_values=True, check_sample_weight=True)


def test_fitted_on_a_device_predicts_there_and_refuses_another_namespace():
    strict = pytest.importorskip("array_api_strict")
    X, y = make_classification(n_samples=60, n_features=5, random_state=0)
    Xd = strict.asarray(X.astype("float32"), device=strict.Device("device1"))
    with sklearn.config_context(array_api_dispatch=True):
        est = MLPClassifier((8,), random_state=0, max_iter=5).fit(Xd, y)
        assert est.model_.bk.name == "array_api_strict" and est.model_.bk.device == "cpu:1"
        assert est.predict(Xd).device == strict.Device("device1") and est.predict_proba(Xd).dtype == strict.float32
        with pytest.raises(ValueError, match=r"MLPClassifier\.predict\(\) must use the same namespace"):
            est.predict(X)
    assert isinstance(est.predict(X), np.ndarray)  # dispatch off: NumPy in, NumPy out


def test_pipeline_in_a_grid_search_on_the_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    mlp = MLPClassifier(max_iter=20, batch_size=64, learning_rate_init=0.01, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", mlp)])
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(16,), (32,)], "mlp__alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"mlp__hidden_layer_sizes", "mlp__alpha"} and grid.best_score_ > 0.85
    assert grid.score(X, y) > 0.9 and len(grid.cv_results_["mean_test_score"]) == 4


def test_a_cnn_and_a_registry_config_through_neural_net_classifier():
    X, y = load_digits(return_X_y=True)
    X = X[:400] / 16.0
    cnn = NeuralNetClassifier(digits_cnn, max_iter=10, learning_rate_init=0.01, random_state=0).fit(X, y[:400])
    assert cnn.model_.input_shape == (1, 8, 8) and cnn.score(X, y[:400]) > 0.8
    config = xpnet.Sequential([xpnet.Dense(64, 10)]).get_config()  # a registry config: its layers are used
    linear = NeuralNetClassifier({"class": "Sequential.v1", "config": config}, max_iter=10, batch_size=32,
                                 learning_rate_init=0.02, random_state=0)
    assert linear.fit(X, y[:400]).score(X, y[:400]) > 0.8


def test_pickle_and_parallel_jobs_keep_predictions():
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    est = MLPClassifier((8,), max_iter=10, random_state=0).fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    assert np.array_equal(back.predict_proba(X), est.predict_proba(X)) and back.n_iter_ == est.n_iter_
    assert [w.shape for w in est.coefs_] == [(6, 8), (8, 2)] and [b.shape for b in est.intercepts_] == [(8,), (2,)]
    hidden = np.maximum(X @ est.coefs_[0] + est.intercepts_[0], 0)  # relu: scikit-learn's layout reproduces it
    np.testing.assert_allclose(est.predict_proba(X)[:, 1] > 0.5,
                               (hidden @ est.coefs_[1] + est.intercepts_[1]).argmax(1) == 1)
    assert not hasattr(MLPClassifier(), "coefs_")
    serial = cross_val_score(MLPClassifier((8,), max_iter=10, random_state=0), X, y, cv=2)
    parallel = cross_val_score(MLPClassifier((8,), max_iter=10, random_state=0), X, y, cv=2, n_jobs=2)
    assert np.array_equal(serial, parallel)


def test_partial_fit_and_warm_start_continue_the_model():
    X, y = make_classification(n_samples=100, n_features=5, random_state=0)
    est = MLPClassifier((8,), random_state=0)
    with pytest.raises(ValueError, match="the first call must give classes="):
        est.partial_fit(X, y)
    for _ in range(3):
        est.partial_fit(X[:50], y[:50], classes=[0, 1])
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    warm = MLPClassifier((8,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
    first = warm.model_
    warm.fit(X, y)
    assert warm.model_ is first and warm.n_iter_ == 4
    early = MLPRegressor((32,), max_iter=200, early_stopping=True, n_iter_no_change=2, learning_rate_init=0.05,
                         validation_fraction=0.3, random_state=0)
    rng = np.random.default_rng(0)  # noise: nothing to learn, so the validation loss soon stops falling
    early.fit(rng.normal(size=(60, 4)), rng.normal(size=60))
    assert early.n_iter_ < 200 and len(early.validation_loss_curve_) == early.n_iter_


@pytest.mark.parametrize("Estimator, make", [(MLPClassifier, make_classification), (MLPRegressor, make_regression)])
def test_cross_val_score_equal_on_numpy_and_torch(Estimator, make):
    """The same seed gives the same scores when X lives on PyTorch (array-API dispatch) as on NumPy, float64:
    equal accuracies, R² within 1e-12."""
    torch = pytest.importorskip("torch")
    X, y = make(n_samples=150, n_features=8, random_state=0)
    if Estimator is MLPRegressor:
        y = y / np.std(y)
    est = Estimator((16,), max_iter=20, learning_rate_init=0.01, random_state=0)
    cv = KFold(3, shuffle=True, random_state=0)
    on_numpy = cross_val_score(est, X, y, cv=cv)
    with sklearn.config_context(array_api_dispatch=True):
        on_torch = cross_val_score(clone(est), torch.asarray(X), torch.asarray(y), cv=cv)
    print(f"{Estimator.__name__} cross_val_score numpy {on_numpy.tolist()} torch {on_torch.tolist()} max difference "
          f"{np.abs(on_numpy - on_torch).max():.3g}")
    if Estimator is MLPClassifier:
        assert np.array_equal(on_numpy, on_torch), (on_numpy, on_torch)
    else:
        np.testing.assert_allclose(on_torch, on_numpy, rtol=0, atol=1e-12)


def test_bad_parameters_are_one_line_value_errors():
    X, y = make_classification(n_samples=30, n_features=4, random_state=0)
    with pytest.raises(ValueError, match=r"^MLPClassifier\(activation='softplus'\): must be 'relu', 'tanh', "
                                         r"'logistic' or 'identity'$"):
        MLPClassifier(activation="softplus").fit(X, y)
    with pytest.raises(ValueError, match=r"^MLPClassifier\(batch_size=0\)"):
        MLPClassifier(batch_size=0).fit(X, y)
    with pytest.raises(ValueError, match=r"NeuralNetClassifier\(model=None\): give a function"):
        NeuralNetClassifier().fit(X, y)
