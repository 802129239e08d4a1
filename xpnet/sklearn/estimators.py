"""The estimators of xpnet.sklearn (see its package docstring and docs/sklearn.md).

Each estimator builds an xpnet `Sequential` in `fit` (the fitted `model_`) and trains it with `Sequential.fit`:
the loss (softmax cross-entropy, or MSE for a regressor), the optimizer (Adam or SGD at `learning_rate_init`),
the L2 penalty (`alpha`) and the seed (`random_state`) come from the estimator's parameters; the layers from
`hidden_layer_sizes`/`activation` (MLP*) or from `model` (NeuralNet*).

Where the data lives ("everything follows X"): with array-API dispatch on, X of a backend's library (PyTorch,
CuPy, JAX, array-api-strict) is validated by scikit-learn in its own namespace and the model is built on X's
library and device (`xpnet.backend.backend_for`); y and sample_weight, whatever their library, are read on the
host (labels are encoded there, as xpnet always does) and the targets go to X's device. Predictions,
probabilities and the fitted arrays other than `classes_` are then in X's namespace and on its device. With
dispatch off, scikit-learn converts every input to NumPy and the model trains on NumPy. The model's dtype is X's
(float32 stays float32; anything else becomes float64).

Determinism: the same `random_state` (an int) gives the same weights, the same minibatch order and so the same
model on every fit, which is what scikit-learn's idempotence and consistency checks ask for. `random_state=None`
draws a fresh seed per fit; a RandomState draws the seed from it.
"""
from __future__ import annotations

import math
import os
import tempfile
import warnings
from numbers import Integral

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..backend import Backend, backend_for, is_foreign, library_of, placement, to_numpy
from ..checks import FRACTION, NON_NEGATIVE, POSITIVE, POSITIVE_INT, Options, check
from ..data.regression import r2_score
from ..errors import InputError
from ..layers import Dense
from ..layers.base import param_key
from ..models.mlp import mlp_specs
from ..models.sequential import Sequential
from ..optimizers import SGD, Adam
from ..penalties import Penalty
from ..registry import deserialize
from ..training.callbacks import EarlyStopping

#: scikit-learn's activation names -> xpnet's layers
ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}

# the warning Sequential.fit gives when a minibatch of partial_fit lacks some of the classes: expected there
_FEWER_CLASSES = r".* holds \d+ of the model's \d+ classes"


def _host(a):
    """Any input (NumPy, a list, a pandas object, an array of a backend's library on any device) -> NumPy."""
    if a is None:
        return None
    return to_numpy(a) if is_foreign(a) else np.asarray(a)


class _XpnetEstimator(BaseEstimator):
    """What the four estimators share: validation, the model's backend and dtype, fit, partial_fit, pickling.

    Subclasses give `_layers(n_features, n_outputs)` (a list of layers, or a Sequential whose layers are used)
    and the task's `_targets`, `_loss` and prediction methods."""

    _task = "classification"

    # -- parameters, checked when fit starts (scikit-learn: __init__ stores them unchanged) ------------------
    def _check_params(self) -> None:
        owner = type(self).__name__
        check("solver", self.solver, Options("adam", "sgd"), owner=owner)
        check("alpha", self.alpha, NON_NEGATIVE, owner=owner)
        check("learning_rate_init", self.learning_rate_init, POSITIVE,
              owner=owner)
        check("max_iter", self.max_iter, POSITIVE_INT, owner=owner)
        check("n_iter_no_change", self.n_iter_no_change, POSITIVE_INT, owner=owner)
        check("validation_fraction", self.validation_fraction, FRACTION, owner=owner)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            check("batch_size", self.batch_size, POSITIVE_INT, owner=owner, hint="or 'auto': min(200, samples)")

    def _seed(self) -> int | None:
        """The model's seed: random_state as it is (an int), None, or drawn from a RandomState."""
        rs = self.random_state
        if rs is None or (isinstance(rs, Integral) and not isinstance(rs, bool)):
            return None if rs is None else int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    # -- data ------------------------------------------------------------------------------------------------
    def _validate_X(self, X, reset: bool):
        """X validated by scikit-learn (2-D, finite, numeric; n_features_in_ and feature_names_in_ set or
        checked), kept in its namespace when array-API dispatch is on, and the backend it lives on."""
        dispatch = get_config()["array_api_dispatch"]
        bk = backend_for(X) if dispatch and is_foreign(X) else None
        dtypes = (np.float64, np.float32) if bk is None else (bk.xp.float64, bk.xp.float32)
        X = validate_data(self, X, reset=reset, dtype=dtypes)
        return X, (bk or Backend("numpy"))

    def _sample_weight(self, sample_weight, n: int):
        if sample_weight is None:
            return None
        sw = _host(sample_weight)
        if sw.ndim == 0:
            sw = np.full(n, float(sw))
        if sw.shape != (n,):
            raise InputError(f"sample_weight must be {n} numbers, one per sample, got shape {sw.shape}")
        if sw.size and not (sw != 0).any():
            raise InputError("sample_weight is zero for every sample: nothing would be trained; give some "
                             "samples a positive weight")
        return sw

    def _dtype_name(self, X) -> str:
        return "float32" if "float32" in str(X.dtype) else "float64"

    def _inputs(self, X, model):
        """X (samples, features) viewed as the model's input shape (a CNN's (samples, 1, 8, 8), say)."""
        shape = tuple(model.input_shape)
        if tuple(X.shape[1:]) != shape and X.shape[1] == math.prod(shape):
            xp = model.xp if placement(X, model.bk) == "device" else np
            X = xp.reshape(X, (X.shape[0], *shape))
        return X

    # -- the model ---------------------------------------------------------------------------------------------
    def _batch(self, n: int) -> int:
        return min(200 if self.batch_size == "auto" else int(self.batch_size), n)

    def _build(self, n_features: int, n_outputs: int, bk: Backend, dtype: str, n: int, weight_sum: float):
        """A new Sequential on bk: the layers of `_layers`, the estimator's loss, optimizer, penalty and seed.

        alpha is scikit-learn's L2 penalty: (alpha / 2) ||W||² per minibatch divided by the minibatch's weight
        (its samples, or the sum of their sample weights), so each step's gradient gains alpha W / (the mean
        weight of a minibatch), xpnet's Penalty(l2=...)."""
        batches = math.ceil(n / self._batch(n))
        l2 = float(self.alpha) * batches / weight_sum if weight_sum > 0 else 0.0
        lr = float(self.learning_rate_init)
        options = {"loss": self._loss, "optimizer": Adam(lr) if self.solver == "adam" else SGD(lr),
                   "penalty": Penalty(0.0, l2), "dtype": dtype, "seed": self._seed(),
                   "task": self._task}
        made = self._layers(n_features, n_outputs)
        if isinstance(made, dict):  # a registry config: {"class": "Sequential.v1", "config": {...}} or the config
            made = deserialize(made if "class" in made else {"class": "Sequential.v1", "config": made}, "model")
        if isinstance(made, Sequential):
            config = {k: v for k, v in made.get_config().items()
                      if k in ("layers", "input_shape", "schedule", "rng")}
            return Sequential.from_config(config, backend=bk, **options)
        if isinstance(made, (list, tuple)):
            return Sequential(list(made), backend=bk, **options)
        raise InputError(f"{type(self).__name__}: model must give an xpnet Sequential, a list of layers or a registry "
                         f"config (a dict), got {type(made).__name__}")

    def _fit(self, X, y, sample_weight=None, *, partial: bool, classes=None, epochs: int | None = None):
        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        new = not (partial or self.warm_start) or not hasattr(self, "model_")
        X, bk = self._validate_X(X, reset=new)
        n = X.shape[0]
        targets = self._targets(y, n, new, classes)
        sw = self._sample_weight(sample_weight, n)
        weight_sum = float(n if sw is None else sw.sum())
        if new:
            self.model_ = self._build(X.shape[1], self._n_outputs, bk, self._dtype_name(X), n, weight_sum)
            self._backend_ = (bk.name, bk.device)
            self.loss_curve_, self.n_iter_ = [], 0
        model = self.model_
        if (model.bk.name, model.bk.device) != (bk.name, bk.device) and bk.name != "numpy":
            raise InputError(f"{type(self).__name__} was fitted on {model.bk.name} ({model.bk.device}) and this X is "
                             f"{library_of(X)} on another device; continue on the same library and device, or fit "
                             f"a new estimator (warm_start=False)")
        X = self._inputs(X, model)
        options = {"epochs": epochs or int(self.max_iter), "batch_size": self._batch(n), "shuffle": bool(self.shuffle),
                   "verbose": bool(self.verbose), "sample_weight": sw}
        if self.early_stopping and not partial:
            options.update(self._validation(X, targets, sw, model))
            X, targets, options["sample_weight"] = self._train_rows
            options["batch_size"] = self._batch(X.shape[0])
            del self._train_rows
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _FEWER_CLASSES, UserWarning)
            model.fit(X, targets, **options)
        history = model.state.history
        self.loss_curve_ = list(self.loss_curve_) + [float(v) for v in history["loss"]]
        self.n_iter_ = int(self.n_iter_) + len(history["loss"])
        self.best_loss_ = min(self.loss_curve_)
        if self.early_stopping and not partial:
            self.validation_loss_curve_ = [float(v) for v in history["val_loss"]]
        return self

    def _validation(self, X, targets, sw, model) -> dict:
        """early_stopping: a random validation_fraction of the rows held out (seeded by random_state), the rest
        trained on; EarlyStopping on the validation loss with patience n_iter_no_change, the best weights kept."""
        n = X.shape[0]
        n_val = max(1, int(round(n * float(self.validation_fraction))))
        if n_val >= n:
            raise InputError(f"early_stopping: validation_fraction={self.validation_fraction} of {n} samples leaves "
                             f"nothing to train on; lower it or give more samples")
        order = np.random.default_rng(self._seed()).permutation(n)
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        rows = lambda a, idx: (model.bk.take(a, model.bk.asarray(idx), axis=0)  # noqa: E731
                               if placement(a, model.bk) == "device" else a[idx])
        self._train_rows = (rows(X, train), targets[train], None if sw is None else sw[train])
        return {"validation_data": (rows(X, val), targets[val]),
                "early_stopping": EarlyStopping(int(self.n_iter_no_change), monitor="val_loss")}

    def fit(self, X, y, sample_weight=None):
        """Train a new model (or, with warm_start=True, the fitted one further) for max_iter epochs on X
        (samples, features) and y; sample_weight: (samples,) non-negative numbers. Returns self."""
        return self._fit(X, y, sample_weight, partial=False)

    # -- inference ---------------------------------------------------------------------------------------------
    def _forward(self, X, method: str, proba: bool):
        """The model's outputs for X: argmax indices (proba False) or the output activations, in X's namespace
        when array-API dispatch is on (fitted on that library and device), else NumPy."""
        check_is_fitted(self)
        model = self.model_
        dispatch = get_config()["array_api_dispatch"]
        xp = backend_for(X).xp if dispatch and is_foreign(X) else np
        X = validate_data(self, X, reset=False, dtype=(xp.float64, xp.float32))
        same = placement(X, model.bk) == "device" if model.bk.name != "numpy" else not is_foreign(X)
        if dispatch and not same:
            raise ValueError(f"{type(self).__name__}.{method}() must use the same namespace and device as the data it "
                             f"was fitted on: {model.bk.name} on {model.bk.device}, got {library_of(X)}; move X there "
                             f"first")
        if not dispatch and model.bk.name != "numpy" and is_foreign(X):
            X = _host(X)
        X = self._inputs(X, model)
        return model._outputs(X, proba, None, method)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    # -- pickling: the model travels as one xpnet checkpoint (safetensors, no pickle inside) -------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # scikit-learn's: the __dict__ and its version
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.safetensors")
                model.save(path)
                with open(path, "rb") as f:
                    state["_model_checkpoint"] = f.read()
        return state

    def __setstate__(self, state):
        state = dict(state)
        data = state.pop("_model_checkpoint", None)
        super().__setstate__(state)
        if data is not None:
            from ..saving.checkpoint import load
            name, device = state.get("_backend_", ("numpy", "cpu"))
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.safetensors")
                with open(path, "wb") as f:
                    f.write(data)
                self.model_ = load(path, backend=name, device=device)


class _Classifier(ClassifierMixin, _XpnetEstimator):
    _loss = "softmax_cross_entropy"

    def _targets(self, y, n: int, new: bool, classes=None):
        """y -> int64 output indices (n,) through classes_ (set on a new fit: y's sorted labels, or `classes`)."""
        y = _host(y)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]")
        check_classification_targets(y)
        if new:
            self.classes_ = np.unique(y) if classes is None else np.unique(_host(classes))
            self._n_outputs = len(self.classes_)
        known = np.isin(y, self.classes_)
        if not known.all():
            raise ValueError(f"y holds labels the estimator was not fitted on, such as {y[~known][0]!r}; its classes_ "
                             f"are {list(self.classes_)[:10]}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch on X, y, continuing the fitted model (a new one on the first call, which must name every
        label in `classes`). Returns self."""
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError(f"{type(self).__name__}.partial_fit: the first call must give classes= (every label "
                             f"the model will see)")
        return self._fit(X, y, sample_weight, partial=True, classes=classes if first else None, epochs=1)

    def predict(self, X):
        """The label of each sample, from classes_: (samples,), in X's namespace when its labels are numbers."""
        idx = self._forward(X, "predict", False)
        if placement(idx, self.model_.bk) != "device" or self.classes_.dtype.kind not in "biuf":
            return self.classes_[_host(idx)]
        bk = self.model_.bk
        return bk.take(bk.asarray(self.classes_), idx, axis=0)

    def predict_proba(self, X):
        """Probabilities (samples, classes), columns in the order of classes_."""
        return self._forward(X, "predict_proba", True)

    def predict_log_proba(self, X):
        """log of predict_proba."""
        p = self._forward(X, "predict_log_proba", True)
        xp = self.model_.xp if placement(p, self.model_.bk) == "device" else np
        return xp.log(p)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of predict(X) against y (weighted by sample_weight): a Python float."""
        pred = _host(self.predict(X))
        y = column_or_1d(_host(y))
        return float(np.average(pred == y, weights=_host(sample_weight)))


class _Regressor(RegressorMixin, _XpnetEstimator):
    _loss = "mse"
    _task = "regression"

    def _targets(self, y, n: int, new: bool, classes=None):
        """y -> float64 (n, outputs); a 1-D y (or, warned, a column) makes predict return (samples,)."""
        y = _host(y)
        if y.dtype.kind not in "biuf":
            y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1 and new:
            one_d = False
        else:
            one_d = y.ndim == 1
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if y.ndim != 2 or y.shape[0] != n:
            raise ValueError(f"y must have shape ({n},) or ({n}, outputs), got {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity; remove or impute those targets")
        if new:
            self._n_outputs, self._one_d = y.shape[1], one_d
        elif y.shape[1] != self._n_outputs:
            raise ValueError(f"y has {y.shape[1]} outputs but the estimator was fitted on {self._n_outputs}")
        return y.astype(np.float64)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on X, y, continuing the fitted model (a new one on the first call). Returns self."""
        return self._fit(X, y, sample_weight, partial=True, epochs=1)

    def predict(self, X):
        """The predicted values: (samples,) for a 1-D y, else (samples, outputs); in X's namespace."""
        out = self._forward(X, "predict", True)
        if self._one_d:
            xp = self.model_.xp if placement(out, self.model_.bk) == "device" else np
            out = xp.reshape(out, (-1,))
        return out

    def score(self, X, y, sample_weight=None) -> float:
        """R² of predict(X) against y (scikit-learn's r2_score, outputs averaged uniformly): a Python float."""
        pred = _host(self.predict(X))
        return r2_score(_host(y), pred, _host(sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class _MLP:
    """The layers of hidden_layer_sizes and activation: Dense layers with the activation between them."""

    def _layers(self, n_features: int, n_outputs: int):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        for i, s in enumerate(sizes):
            check(f"hidden_layer_sizes[{i}]", s, POSITIVE_INT, owner=type(self).__name__)
        check("activation", self.activation, Options(*ACTIVATIONS), owner=type(self).__name__)
        from ..registry import get
        return [get("layer", s["class"])(**s["config"])
                for s in mlp_specs([n_features, *sizes, n_outputs], ACTIVATIONS[self.activation])]

    def _dense(self, name: str) -> list:
        check_is_fitted(self)
        model = self.model_
        params = model.parameters()
        return [params[param_key(i, name)] for i, layer in enumerate(model.layers) if isinstance(layer, Dense)]

    @property
    def coefs_(self) -> list:
        """scikit-learn's coefs_: each Dense layer's weights (n_in, n_out) (its weight transposed), in the model's
        namespace and on its device."""
        return [self.model_.xp.matrix_transpose(w) for w in self._dense("weight")]

    @property
    def intercepts_(self) -> list:
        """scikit-learn's intercepts_: each Dense layer's bias (n_out,)."""
        return self._dense("bias")


class MLPClassifier(_MLP, _Classifier):
    """A multi-layer perceptron classifier: scikit-learn's MLPClassifier parameters (those it shares), trained by
    xpnet on X's library and device. Softmax output over classes_ (two outputs for two classes).

    hidden_layer_sizes: the hidden layers' widths. activation: "relu", "tanh", "logistic" or "identity".
    solver: "adam" or "sgd". alpha: L2 penalty. batch_size: samples per minibatch, or "auto" (min(200, samples)).
    learning_rate_init: the step size. max_iter: epochs. shuffle: reshuffle each epoch. random_state: the seed.
    early_stopping: hold out validation_fraction of the data and stop after n_iter_no_change epochs without a
    lower validation loss (the best weights kept). warm_start: fit continues the fitted model. verbose: one line
    per epoch. Fitted: model_ (the xpnet Sequential), classes_, n_features_in_, feature_names_in_ (from a
    DataFrame), loss_curve_, best_loss_, n_iter_, and validation_loss_curve_ with early stopping."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 verbose=False, warm_start=False, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change


class MLPRegressor(_MLP, _Regressor):
    """A multi-layer perceptron regressor (identity output, mean squared error): MLPClassifier's parameters and
    attributes, continuous targets (samples,) or (samples, outputs), score R²."""

    __init__ = MLPClassifier.__init__


class _NeuralNet:
    """The layers of `model`: a function (n_features, n_outputs) -> a Sequential or a list of layers, a Sequential
    (its layers and input shape), or a registry config ({"class": "Sequential.v1", "config": {...}})."""

    def _layers(self, n_features: int, n_outputs: int):
        made = self.model
        if made is None:
            raise InputError(f"{type(self).__name__}(model=None): give a function (n_features, n_outputs) -> a "
                             f"Sequential or list of layers, or a registry config of the model")
        return made(n_features, n_outputs) if callable(made) and not isinstance(made, Sequential) else made


class NeuralNetClassifier(_NeuralNet, _Classifier):
    """A classifier on any xpnet model (`model`: see _NeuralNet); the other parameters as MLPClassifier's. The
    model's outputs must be one per class of y: a function of (n_features, n_outputs) gives them. Flat rows
    (samples, features) are viewed as the model's input shape (a CNN's (samples, 1, 8, 8), say)."""

    def __init__(self, model=None, *, solver="adam", alpha=0.0, batch_size="auto", learning_rate_init=0.001,
                 max_iter=200, shuffle=True, random_state=None, verbose=False, warm_start=False,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10):
        self.model = model
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change


class NeuralNetRegressor(_NeuralNet, _Regressor):
    """A regressor on any xpnet model (identity output, MSE); parameters as NeuralNetClassifier's."""

    __init__ = NeuralNetClassifier.__init__
