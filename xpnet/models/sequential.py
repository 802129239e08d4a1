"""Sequential: a Network (models/network.py: the layers, their parameters and state, the pure training
step) with the estimator face added: data conversion and checks (`prepare`, `as_input`, `as_targets`,
`encode_labels`), the labels of the outputs (`classes_`, `class_names_`), inference (`predict`,
`predict_proba`, `score`, `evaluate`), files (`save`, `to_onnx`) and `fit`. The registered model
("Sequential.v1"): what `model_from_config`, `xpnet.load` and the command line build.

    model = Sequential([Dense(784, 100), "relu", Dense(100, 10)], optimizer="adam", seed=0)
    model.fit(X, y, epochs=5)            # X: (samples, *input_shape) raw data, y: labels (samples,)
    model.predict(X_test)                # labels from classes_, (samples,)

A regression model (task="regression", loss "mse": the identity output) takes continuous targets (samples,
outputs) instead of labels, predicts its outputs and scores R² (xpnet.data.regression).
"""
from __future__ import annotations

import math
from numbers import Integral
import warnings

from ..backend import placement
from ..saving.checkpoint import save as save_checkpoint
from ..errors import InputError
from ..data.regression import check_targets, r2_score
from ..data.labels import as_label_array, check_classes, encode, identity_classes, infer_classes, sample_weights
from ..checks import Interval, Options, check
from ..penalties import Penalty
from ..data.preprocessing import as_scaler
from ..layers.embedding import check_token_ids
from ..registry import register
from ..training.state import TrainState
from ..training.loop import fit as _fit
from ..training.sources import is_dataset
from ..data.validation import (check_labels, check_sequence_targets, check_X, foreign_array_error, host_samples,
                               sample_shape)
from .network import Network, micro_bounds  # noqa: F401  (micro_bounds: also this module's name)

# the default inference batch (Sequential.inference_batch_size): at most this many samples, and on the CPU
# its largest per-batch array within about a last-level cache
MAX_INFERENCE_BATCH = 8192
INFERENCE_BATCH_BYTES = 32 * 2 ** 20


@register("Sequential.v1", kind="model")
class Sequential(Network):
    """A Network (layers, loss, penalty, optimizer, schedule, backend, dtype, seed, rng, input_shape, compile,
    native_kernels: see models/network.py) that takes raw data and labels, predicts, saves and fits.

    preprocessing: None (inputs used as given), or an input scaling fitted on the first `fit`'s X and
    saved with the model: "unit" ([0, 1]), "symmetric" ([-1, 1]), "standardize" (per feature), "raw", or
    an `xpnet.data.preprocessing.Scaler`. `predict`, `predict_proba`, `score`, `evaluate` and `fit` then take
    raw data. `classes_`: the label of each output (see xpnet.data.labels); `class_names_`: their display names.

    task: "classification" (labels; predict gives the label of the largest output, score the accuracy) or
    "regression" (continuous targets (samples, outputs), or (samples,) for one output; predict gives the
    outputs (samples, outputs), score R²; with an identity-output loss such as "mse")."""

    stop_training = False  # fit sets it False; a Callback sets it True to end fit after the current epoch

    def __init__(self, layers, loss="softmax_cross_entropy", optimizer="sgd", l1: float = 0.0, l2: float = 0.0,
                 penalty: Penalty | None = None, schedule=None, backend=None, device=None, dtype: str = "float32",
                 seed=None, rng=None, input_shape=None, compile: bool = False, preprocessing=None,
                 native_kernels: bool | None = None, task: str = "classification", precision=None):
        check("task", task, Options("classification", "regression"), owner=type(self).__name__)
        super().__init__(layers, loss, optimizer, l1, l2, penalty, schedule, backend, device, dtype, seed, rng,
                         input_shape, compile, native_kernels, precision)
        self.task = task
        if self.regression and type(self.loss).__name__ in ("SoftmaxCrossEntropy", "LogisticCost"):
            raise InputError(f"task='regression' fits continuous targets, but loss={self.loss!r} squashes the outputs "
                             f"into probabilities; use loss='mse' (the identity output)")
        self.preprocessing = as_scaler(preprocessing)
        self._classes = None  # None: output i is label i (classes_ = 0..outputs-1)
        self._class_names = None

    def get_config(self) -> dict:
        """The architecture and hyperparameters as JSON-able data (backend and device are run options)."""
        config = super().get_config()
        if getattr(self, "preprocessing", None) is not None:
            config["preprocessing"] = self.preprocessing.kind  # the kind; its fitted statistics are state
        if getattr(self, "task", "classification") != "classification":
            config["task"] = self.task  # only when not the default: classifiers' configs stay as they were
        return config

    @property
    def regression(self) -> bool:
        """Whether the model fits continuous targets (task="regression") rather than class labels."""
        return getattr(self, "task", "classification") == "regression"

    # data -------------------------------------------------------------------------------------------
    def as_input(self, X, name: str = "X", keep_integers: bool = False):
        """Host or backend data -> validated backend array (batch, *input_shape) in the model's dtype.

        keep_integers: integer data (raw uint8 pixels) stays integer on the device, 8x smaller than
        float64; `cast` converts each minibatch after it is gathered."""
        where = placement(X, self.bk)
        if where == "device":
            if tuple(X.shape[1:]) != self.input_shape or X.ndim != 1 + len(self.input_shape):
                raise InputError(f"{name} must have shape (samples, {', '.join(map(str, self.input_shape))}), got "
                                 f"{tuple(X.shape)}")
            if self.integer_input:  # token ids out of the vocabulary refused once here, not in the traced step
                check_token_ids(self.layers[0], X)
            if not (keep_integers and self.xp.isdtype(X.dtype, "integral")):
                if not bool(self.xp.all(self.xp.isfinite(X))):
                    raise InputError(f"{name} contains NaN or infinity; remove or impute those values")
                return self.cast(X)
            return X
        if where == "foreign":
            raise foreign_array_error(X, self.bk, name)
        host = check_X(X, self.input_shape, name)
        if self.integer_input and host.dtype.kind in "ui":  # token ids: int64, as every backend's take wants
            check_token_ids(self.layers[0], host)
            return self.bk.asarray(host.astype("int64", copy=False))
        if keep_integers and host.dtype.kind in "ui":
            return self.bk.asarray(host)
        return self.bk.asarray(host, dtype=self.dtype)

    def as_samples(self, X):
        """Inputs to predict, predict_proba, score or evaluate as (samples, *input_shape): flat rows, (n, H, W)
        for a one-channel model, and one sample are viewed so (`xpnet.data.validation.sample_shape`, the rule
        `xpnet predict` follows); anything else is left for `as_input`'s checks to refuse."""
        where = placement(X, self.bk)
        if where == "device":
            new = sample_shape(X.shape, self.input_shape)
            return X if new is None else self.xp.reshape(X, new)
        return X if where == "foreign" else host_samples(X, self.input_shape)

    def as_targets(self, y, n: int, name: str = "y", warn: bool = True):
        """Class labels -> (one-hot targets (n, outputs), output indices) on the backend; for a sequence model
        (n, time) targets -> ((n, time, outputs), (n, time)). warn: warn when the labels hold fewer classes than
        the model has outputs (for training data; not for validation or scoring)."""
        labels = self.encode_labels(y, n, name, warn)
        if self.regression:
            targets = self.bk.asarray(labels)
            return targets, targets
        xp = self.xp
        lab = self.bk.asarray(labels)
        classes = self.bk.asarray(list(range(self.n_outputs)), dtype=lab.dtype)
        ones = (1,) * lab.ndim
        onehot = xp.astype(xp.reshape(lab, (*lab.shape, 1)) == xp.reshape(classes, (*ones, self.n_outputs)),
                           self.dtype)
        return onehot, lab

    def as_labels(self, y, n: int, name: str = "y", warn: bool = False):
        """Class labels -> integer output indices (n,) on the backend: the targets fit trains on (losses take
        class indices, and make the one-hot rows of each minibatch themselves: xpnet.losses)."""
        return self.bk.asarray(self.encode_labels(y, n, name, warn))

    def sample_weights(self, labels, class_weight=None, sample_weight=None):
        """Per-sample weights (n,) on the backend in the model's dtype for host output indices `labels` (n,):
        class_weight ({label: weight} or "balanced") looked up by label, times sample_weight; None when neither
        is given (xpnet.data.labels.sample_weights)."""
        if self.regression and class_weight is not None:
            raise InputError("class_weight weighs the classes of a classifier; this model fits continuous targets "
                             "(task='regression'): give sample_weight instead")
        if len(self.output_shape) > 1 and (class_weight is not None or sample_weight is not None):
            raise InputError(f"class_weight and sample_weight weigh samples of a classifier; this sequence model "
                             f"(outputs {self.output_shape} per sample) trains every position alike: drop them")
        w = sample_weights(labels, self.n_outputs, class_weight, sample_weight, self.classes_)
        return None if w is None else self.bk.asarray(w, dtype=self.dtype)

    def encode_labels(self, y, n: int, name: str = "y", warn: bool = False):
        """Labels (host or backend) -> int64 host output indices 0..outputs-1 through `classes_`; for a sequence
        model ((time, outputs) logits), integer targets (n, time) with values 0..outputs-1; for a regression
        model, the targets as host (n, outputs) values in the model's dtype (xpnet.data.regression)."""
        where = placement(y, self.bk)
        if where == "device":
            y = self.bk.to_numpy(y)
        elif where == "foreign":
            raise foreign_array_error(y, self.bk, name)
        if self.regression:
            return check_targets(y, n, self.n_outputs, name, self.dtype_name)
        if len(self.output_shape) > 1:
            return check_sequence_targets(y, n, self.target_shape, self.n_outputs, name)
        if self._classes is not None:
            y = as_label_array(y, name)
            if y.ndim == 1 and y.shape[0] == n:
                y = encode(y, self._classes, name)
        return check_labels(y, n, self.n_outputs, name, warn)

    def count_correct(self, pred, labels):
        """Network.count_correct; for a regression model, whose targets are not classes, zero: fit's history
        then shows accuracy 0 and its loss columns are the mean squared error."""
        if self.regression:
            return self.xp.sum(self.xp.zeros_like(pred, dtype=self.dtype))
        return super().count_correct(pred, labels)

    # labels and preprocessing -----------------------------------------------------------------------
    @property
    def classes_(self):
        """The label each output stands for (host NumPy, as scikit-learn's classes_): `predict` returns these,
        `predict_proba`'s columns follow them. 0..outputs-1 unless fit found other labels or it was set."""
        return identity_classes(self.n_outputs) if self._classes is None else self._classes

    @classes_.setter
    def classes_(self, value) -> None:
        self._classes = None if value is None else check_classes(value, self.n_outputs, "classes_")

    @property
    def class_names_(self) -> list[str]:
        """Display names of the outputs (e.g. Fashion-MNIST's "T-shirt/top", ...); by default the labels."""
        if self._class_names is not None:
            return list(self._class_names)
        return [str(c.item() if hasattr(c, "item") else c) for c in self.classes_]

    @class_names_.setter
    def class_names_(self, names) -> None:
        if names is not None:
            names = [str(v) for v in names]
            if len(names) != self.n_outputs:
                raise InputError(f"class_names_ holds {len(names)} names but the model has {self.n_outputs} outputs")
        self._class_names = names

    @property
    def default_classes(self) -> bool:
        """Whether `classes_` is the default 0..outputs-1: no fit found other labels and none were set."""
        return self._classes is None

    @property
    def given_class_names(self) -> list[str] | None:
        """The display names set through `class_names_` (a copy), or None while they are the labels (the
        default): what a checkpoint stores."""
        return None if self._class_names is None else list(self._class_names)

    def _learn_classes(self, y, classes) -> None:
        """Before a new fit: classes_ from `classes` (a list, or N for 0..N-1), else from y when its labels
        are not 0..outputs-1 (names, or other numbers): their sorted distinct values, one per output."""
        if self.regression:
            if classes is not None:
                raise InputError("classes= names the labels of a classifier's outputs; this model fits continuous "
                                 "targets (task='regression'): drop it")
            return
        if classes is not None:
            self.classes_ = identity_classes(classes) if isinstance(classes, Integral) and not isinstance(classes, bool) \
                else classes
        elif self._classes is None:
            if placement(y, self.bk) == "device":
                y = self.bk.to_numpy(y)
            self._classes = infer_classes(y, self.n_outputs)

    def prepare(self, X, name: str = "X", fit: bool = False):
        """Raw inputs -> the model's inputs: `preprocessing` applied (host data on the host, exactly as
        `xpnet train` does; backend arrays on their device), or X as it is when there is none. fit: fit an
        unfitted preprocessing on X first (a new `fit`'s training data)."""
        pre = self.preprocessing
        if pre is None or pre.kind == "raw":
            return X
        where = placement(X, self.bk)
        on_device = where == "device"
        if not on_device:
            if where == "foreign":
                raise foreign_array_error(X, self.bk, name)
            X = check_X(X, self.input_shape, name)
        if not pre.fitted:
            if not fit:
                raise InputError(f"the model's preprocessing ({pre.kind}) is not fitted yet; call fit first")
            pre.fit(self.bk.to_numpy(X) if on_device else X)  # statistics per feature: a sample's shape
        if on_device:
            with self.bk:
                return pre.transform_array(X, self.xp, lambda a, dt: self.bk.asarray(a, dtype=dt), self.dtype)
        return pre.transform(X, self.dtype_name, name)

    def prepare_dataset(self, ds, fit: bool = False):
        """A map-style dataset -> the dataset the model trains and evaluates on: each batch's rows viewed as
        the model's input shape and scaled by `preprocessing` (xpnet.data.arrays.Prepared: Scaler.transform per
        batch, as `prepare` scales arrays), or ds itself when neither applies (token ids, raw rows of the right
        shape). fit: fit an unfitted preprocessing first, in one streaming pass over chunks of rows (two for
        standardize: Scaler.fit_chunks, equal to fitting on the whole array)."""
        from ..data.arrays import Prepared, row_chunks
        pre = self.preprocessing
        scale = pre is not None and pre.kind != "raw"
        shape = getattr(ds, "sample_shape", None)
        if not scale and (shape is None or tuple(shape) == tuple(self.input_shape)):
            return ds
        if scale and not pre.fitted:
            if not fit:
                raise InputError(f"the model's preprocessing ({pre.kind}) is not fitted yet; call fit first")
            pre.fit_chunks(row_chunks(ds, self.input_shape))
        return Prepared(ds, pre if scale else None, self.dtype_name, self.input_shape)

    # inference --------------------------------------------------------------------------------------
    def inference_batch_size(self) -> int:
        """The batch predict, predict_proba, score and evaluate use by default. On the CPU: as many samples as
        keep the largest per-batch array (a layer's input, output or working buffer such as Conv2D's im2col
        columns) within INFERENCE_BATCH_BYTES, about a last-level cache, at most 8192: a CNN's activations at
        8192 samples spill far out of the caches (fashion-cnn scored 10,000 images in 12.4 s at 8192 and 2.3 s
        at 50, the size this rule gives; docs/results.md). MLPs, whose per-sample arrays are small, keep 8192.
        On a GPU: 8192."""
        if self.bk.kind != "cpu":
            return MAX_INFERENCE_BATCH
        values = max(max(math.prod(layer.input_shape or ()), math.prod(layer.output_shape or ()),
                         layer.scratch_per_sample()) for layer in self.layers)
        itemsize = self.xp.finfo(self.dtype).bits // 8
        return max(1, min(MAX_INFERENCE_BATCH, INFERENCE_BATCH_BYTES // (values * itemsize)))

    def _batch_arg(self, batch_size, owner: str) -> int:
        if batch_size is None:
            return self.inference_batch_size()
        check("batch_size", batch_size, Interval(int, 1, None), owner=owner,
              hint=f"samples per inference batch; leave it out for the model's default ({self.inference_batch_size()})")
        return int(batch_size)

    def _outputs(self, X, proba: bool, batch_size, owner: str, progress=None):
        batch_size = self._batch_arg(batch_size, owner)
        _check_progress(progress, owner)
        with self.bk:
            return self._outputs_on_device(X, proba, batch_size, progress)

    def _raw_outputs(self, X, proba: bool, batch_size, owner: str, progress=None):
        """predict's and predict_proba's outputs of raw X. Host data is checked whole (check_X reads it in chunks)
        and then read, scaled and moved batch by batch (as one data.predict_inputs.InputRows through
        `_dataset_outputs`: the same values as scaling it whole), so a memory-mapped file larger than memory, or than the device's, is
        never copied whole; token ids and device arrays go through `prepare` whole."""
        Xs = self.as_samples(X)
        if placement(Xs, self.bk) != "host" or self.integer_input:
            return self._outputs(self.prepare(Xs), proba, batch_size, owner, progress)
        from ..data.predict_inputs import InputRows
        return self._dataset_outputs(InputRows([("X", check_X(Xs, self.input_shape, "X"))]), proba, batch_size,
                                     owner, progress)

    def _dataset_outputs(self, ds, proba: bool, batch_size, owner: str, progress=None, prefetch: int = 0):
        """Host NumPy outputs (len(ds), ...) of a map-style dataset, its rows read and prepared batch by batch
        (`prepare_dataset`; prefetch=N: the next N batches read ahead by N threads,
        xpnet.training.prefetch.batches_in_order), its targets ignored: probabilities, or output indices."""
        from ..training.prefetch import batches_in_order
        batch_size = self._batch_arg(batch_size, owner)
        _check_progress(progress, owner)
        prepared, xp, chunks = self.prepare_dataset(ds), self.xp, []
        n = len(prepared)
        bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        with self.bk, batches_in_order(self, prepared, range(n), bounds, prefetch, f"{owner}(dataset)") as batches:
            for (s, e), (xb, _) in zip(bounds, batches):
                z, _ = self.forward(self.cast(xb))
                chunks.append(self.loss.activation(xp, z) if proba else xp.argmax(z, axis=-1))
                if progress is not None:
                    progress(e - s)
            return self.bk.to_numpy(chunks[0] if len(chunks) == 1 else xp.concat(chunks, axis=0))

    def _outputs_on_device(self, X, proba: bool, batch_size: int, progress=None):
        xp = self.xp
        host = placement(X, self.bk) != "device"
        Xd = self.as_input(X, keep_integers=True)
        chunks = []
        n = Xd.shape[0]
        for s in range(0, n, batch_size):
            z, _ = self.forward(self.cast(Xd[s:min(s + batch_size, n), ...]))
            chunks.append(self.loss.activation(xp, z) if proba else xp.argmax(z, axis=-1))
            if progress is not None:
                progress(min(s + batch_size, n) - s)
        out = chunks[0] if len(chunks) == 1 else xp.concat(chunks, axis=0)
        return self.bk.to_numpy(out) if host else out

    def predict(self, X, batch_size: int | None = None, progress=None, prefetch: int = 0):
        """Labels from `classes_` (argmax of the logits) for raw X: NumPy for host input, else a backend array
        (host NumPy when classes_ are not 0..outputs-1). batch_size: samples per forward (default
        `inference_batch_size()`). progress: called with the number of samples after each batch (a tqdm
        bar's `update`, as `xpnet train` and `evaluate` use on a terminal); the same for predict_proba, score
        and evaluate. prefetch=N (X a dataset): its next N batches read by N threads while one is computed (the
        same outputs); arrays: nothing to do; the same for predict_proba and evaluate."""
        _check_prefetch(prefetch, "predict")
        if is_dataset(X):  # a map-style dataset: its rows read batch by batch (host NumPy out)
            out = self._dataset_outputs(X, self.regression, batch_size, "predict", progress, prefetch)
            return out if self.regression or self._classes is None else self._classes[out]
        if self.regression:  # the outputs themselves (samples, outputs)
            return self._raw_outputs(X, True, batch_size, "predict", progress)
        idx = self._raw_outputs(X, False, batch_size, "predict", progress)
        if self._classes is None:
            return idx
        return self._classes[self.bk.to_numpy(idx) if placement(idx, self.bk) == "device" else idx]

    def predict_proba(self, X, batch_size: int | None = None, progress=None, prefetch: int = 0):
        """Output activations for raw X: softmax or sigmoid probabilities (batch, outputs), columns in the order
        of `classes_`. X may be a map-style dataset (host NumPy out; prefetch as in `predict`)."""
        _check_prefetch(prefetch, "predict_proba")
        if is_dataset(X):
            return self._dataset_outputs(X, True, batch_size, "predict_proba", progress, prefetch)
        return self._raw_outputs(X, True, batch_size, "predict_proba", progress)

    def score(self, X, y=None, progress=None) -> float:
        """Accuracy (0-1) of `predict(X)` against labels y; for a sequence model (y: (samples, time) integer
        targets) the fraction of every position right; for a regression model R² (xpnet.data.regression.r2_score,
        scikit-learn's r2_score). X may be a map-style dataset (y None: its own targets)."""
        if is_dataset(X):
            return self.evaluate(X, y, progress=progress)[1]
        _need_labels(y, "score")
        if self.regression:
            pred = self.bk.to_numpy(self._outputs(self.prepare(self.as_samples(X)), True, None, "score", progress))
            return r2_score(self.encode_labels(y, pred.shape[0]), pred)
        pred = self.bk.to_numpy(self._outputs(self.prepare(self.as_samples(X)), False, None, "score", progress))
        labels = self.encode_labels(y, pred.shape[0])
        return float((pred == labels).mean())

    def evaluate(self, X, y=None, batch_size: int | None = None, progress=None, prefetch: int = 0,
                 confusion: bool = False) -> tuple:
        """(mean loss per sample, accuracy) on raw X and labels y, as `xpnet evaluate` reports them; for a
        regression model (mean loss per sample, R²). X may be a map-style dataset (y None: its own targets, class
        indices), read batch by batch (prefetch as in `predict`). confusion=True (a classifier): (loss, accuracy,
        confusion counts) from the same pass, the counts a host int64 (outputs, outputs) array, rows true and
        columns predicted, over the output indices (the order of `classes_`; a sequence model's every position)."""
        from ..training.loop import evaluate
        batch_size = self._batch_arg(batch_size, "evaluate")
        _check_progress(progress, "evaluate")
        _check_prefetch(prefetch, "evaluate")
        if confusion and self.regression:
            raise InputError("evaluate(confusion=True) counts classes; this model fits continuous targets "
                             "(task='regression'): leave confusion out")
        if is_dataset(X):
            if y is not None or self.regression:
                raise InputError("evaluate(dataset): a map-style dataset brings its own class-index targets; got "
                                 + ("y as well: leave y out" if y is not None else
                                    "a regression model: evaluate it on arrays (X, y)"))
            return evaluate(self, self.prepare_dataset(X), None, batch_size, progress, bool(confusion),
                            prefetch=prefetch)
        _need_labels(y, "evaluate")
        with self.bk:
            Xd = self.as_input(self.prepare(self.as_samples(X)), keep_integers=True)
            figures = evaluate(self, Xd, self.as_labels(y, Xd.shape[0]), batch_size, progress, bool(confusion))
        if confusion:
            return figures
        loss, accuracy = figures
        if self.regression:
            pred = self.bk.to_numpy(self._outputs(Xd, True, batch_size, "evaluate"))
            return loss, r2_score(self.encode_labels(y, pred.shape[0]), pred)
        return loss, accuracy

    def classification_report(self, X, y, top_k=None, batch_size: int | None = None, progress=None) -> dict:
        """Per-class precision, recall, F1 and support, accuracy and the macro, micro and weighted averages
        of `predict(X)` against labels y, rows named by `class_names_` (xpnet.metrics.report_from_confusion:
        scikit-learn's classification_report(output_dict=True) layout), plus "confusion_matrix" (rows true,
        columns predicted). top_k: an int or ints: "top_<k>_accuracy" from predict_proba's scores too."""
        from ..metrics import confusion_matrix, report_from_confusion, top_k_accuracy
        if self.regression:
            raise InputError("a classification report needs class labels; this model fits continuous targets "
                             "(task='regression'): use score (R²) or evaluate")
        Xs = self.prepare(self.as_samples(X))
        truth = self.encode_labels(y, Xs.shape[0])
        ks = [] if top_k is None else [top_k] if isinstance(top_k, Integral) else list(top_k)
        host = lambda a: self.bk.to_numpy(a) if placement(a, self.bk) == "device" else a  # noqa: E731
        pred = host(self._outputs(Xs, False, batch_size, "classification_report", progress))
        cm = confusion_matrix(truth, pred, self.n_outputs)
        report = report_from_confusion(cm, self.class_names_)
        if ks:
            scores = host(self._outputs(Xs, True, batch_size, "classification_report"))
            for k in ks:
                report[f"top_{k}_accuracy"] = top_k_accuracy(truth, scores, k)
        report["confusion_matrix"] = cm.tolist()
        return report

    def save(self, path, **extra):
        """One safetensors checkpoint (see xpnet.saving.checkpoint); xpnet.load(path, backend=, device=) reads it."""
        return save_checkpoint(self, path, extra=extra or None)

    def to_onnx(self, path, **options) -> dict:
        """Write the model as an ONNX file: raw input (batch, *input_shape) float32 -> `probabilities`,
        `label` (and `logits` with logits=True), the input scaling inside. Options: opset, batch,
        preprocessing, logits (see xpnet.export.onnx.export; needs the xpnet[onnx] extra)."""
        from ..export.onnx import export
        return export(self, path, **options)

    def fit(self, X, y, classes=None, *, epochs: int | None = None, steps: int | None = None,
            batch_size: int | None = None, minibatches: int | None = None, shuffle: bool = True,
            compose_shuffles: bool = False, drop_last: bool = False, source=None, validation_split: float = 0.0,
            validation_data=None, eval_every: int | None = None, eval_batches: int | None = None,
            early_stopping=None, callbacks=(), verbose: bool = False, resume=None, accumulate: int = 1,
            distributed=None, class_weight=None, sample_weight=None, prefetch: int = 0) -> "Sequential":
        """Train on X: (samples, *input_shape) raw data (see `preprocessing`), y: class labels (samples,). The
        options are xpnet.training.fit's: epochs (default 10) and/or steps (total updates; whichever ends
        first), batch_size or minibatches, shuffle, compose_shuffles, drop_last, or source (a BatchSource),
        validation_split or validation_data, eval_every, eval_batches, early_stopping, callbacks, verbose, resume,
        accumulate, distributed. X may be a map-style dataset (len and __getitems__, e.g.
        xpnet.data.text.TextBlocks; y None), validation_data= too (xpnet.training.sources). classes: the label
        of each output (a list, or N for 0..N-1); by default 0..outputs-1, or y's sorted distinct labels when they are names or other numbers. class_weight: {label: weight} or
        "balanced"; sample_weight: (samples,) numbers; a minibatch's mean loss is then weighted, divided by the
        sum of its weights (docs/losses-metrics.md). prefetch=N: a dataset's next N minibatches read and
        staged by N threads while the step runs (xpnet.training.prefetch; arrays: nothing to do).

        The model's device is the current one during fit, predict and score (CuPy runs kernels on the current
        device); when you call value_and_grads, apply_gradients or train_step yourself on a GPU other than
        cuda:0, do it inside `with model.bk:`."""
        if is_dataset(X):  # a map-style dataset: its rows are read per step (classes 0..outputs-1)
            if classes is not None:
                raise InputError("classes= names the labels of arrays; a dataset's targets are output indices "
                                 "0..outputs-1: drop classes")
            if not resume and self._class_names is None and getattr(X, "class_names", None) is not None \
                    and len(X.class_names) == self.n_outputs:
                self.class_names_ = X.class_names  # an image folder's class folders name the outputs
            X = self.prepare_dataset(X, fit=not resume)
        else:
            if not resume:
                self._learn_classes(y, classes)
            X = self.prepare(X, fit=not resume)
        if validation_data is not None and is_dataset(validation_data):
            validation_data = self.prepare_dataset(validation_data)
        elif validation_data is not None:
            Xv, yv = validation_data
            validation_data = (self.prepare(Xv, "validation X"), yv)
        with self.bk:
            _fit(self, X, y, epochs=epochs, steps=steps, batch_size=batch_size, minibatches=minibatches,
                 shuffle=shuffle, compose_shuffles=compose_shuffles, drop_last=drop_last, source=source,
                 validation_split=validation_split, validation_data=validation_data, eval_every=eval_every,
                 eval_batches=eval_batches, early_stopping=early_stopping, callbacks=callbacks, verbose=verbose,
                 resume=resume, accumulate=accumulate, distributed=distributed, class_weight=class_weight,
                 sample_weight=sample_weight, prefetch=prefetch)
        return self

    def generate(self, prompt, tokens: int, temperature: float = 1.0, top_k: int | None = None, seed=None,
                 cache: bool = True):
        """Continue `prompt` (text, for a model with a character vocabulary, or token ids) by `tokens` tokens
        sampled on the host: a language model's (token ids in, (time, vocab) logits out, e.g. a GPT). Returns
        (the prompt and the new tokens, stats with tokens_per_second); see xpnet.models.gpt.generate."""
        from .gpt import generate
        return generate(self, prompt, tokens, temperature, top_k, seed, cache)

    # views of the training state, as earlier versions had them -------------------------------------
    @property
    def history_(self) -> dict:
        """Per-epoch lists of the last fit: epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds."""
        return self.state.history

    @property
    def batch_losses_(self) -> list:
        """Every minibatch's loss of the last fit (Python floats)."""
        return self.state.batch_losses

    @property
    def order_(self):
        """The host index order of the current epoch."""
        return self.state.order

    @property
    def stop_requested(self) -> bool:
        return self.state.stop_requested

    @stop_requested.setter
    def stop_requested(self, value: bool) -> None:
        self.state.stop_requested = bool(value)

    @property
    def progress_(self) -> TrainState:
        """Deprecated: the training state is `model.state`; `fit(..., resume=True)` continues it."""
        warnings.warn("model.progress_ is deprecated: the training state is model.state, and "
                      "fit(..., resume=True) continues it", DeprecationWarning, stacklevel=2)
        return self.state

    @property
    def rng(self):
        return self.state.rng


def _need_labels(y, owner: str) -> None:
    if y is None:
        raise InputError(f"{owner}(X, y): arrays X need their labels y (only a map-style dataset brings its own "
                         f"targets): pass y")


def _check_prefetch(prefetch, owner: str) -> None:
    check("prefetch", prefetch, Interval(int, 0, None), owner=owner,
          hint="a dataset's batches read ahead by as many threads (0: none)")


def _check_progress(progress, owner: str) -> None:
    if progress is not None and not callable(progress):
        raise InputError(f"{owner}(progress={progress!r:.40}): must be a function called with the number of samples "
                         f"done after each batch (e.g. a tqdm bar's update), or None")
