"""Issue 28: targets (class indices or rows), class and sample weights, label smoothing, metrics and monitoring.

Oracles: PyTorch (torch.nn.functional.cross_entropy with weight= and label_smoothing=, autograd for the gradient
with respect to the logits, and one SGD step of a torch model against fit's), central differences in float64
(gradchecks), scikit-learn (classification_report, precision_recall_fscore_support, top_k_accuracy_score,
compute_class_weight, f1_score)."""
import json

import numpy as np
import pytest

import xpnet
from xpnet.data.labels import class_weight_vector, sample_weights
from xpnet.metrics import classification_report, confusion_matrix, format_report, monitor_mode, top_k_accuracy
from xpnet.parity import default_problem

torch = pytest.importorskip("torch")
F = torch.nn.functional


def f64(bk, a):
    return bk.asarray(np.asarray(a, dtype=np.float64), dtype=bk.dtype("float64"))


def host(bk, a):
    return np.asarray(bk.to_numpy(a), dtype=np.float64)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def torch_ce(z, y, weight=None, smoothing=0.0, per_sample=None):
    """(value, dz) of torch's cross_entropy on logits z (..., C) (moved to torch's (N, C, ...) layout), by autograd.
    per_sample: weights w (...,) applied to reduction='none' and divided by their sum (the per-sample weighted
    mean) instead of torch's weight=."""
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    zin = zt if zt.ndim == 2 else zt.permute(0, zt.ndim - 1, *range(1, zt.ndim - 1))
    yt = torch.tensor(y) if np.asarray(y).dtype.kind in "iu" else torch.tensor(y, dtype=torch.float64)
    if yt.dtype.is_floating_point and zt.ndim > 2:
        yt = yt.permute(0, yt.ndim - 1, *range(1, yt.ndim - 1))
    wt = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    if per_sample is None:
        value = F.cross_entropy(zin, yt, weight=wt, label_smoothing=smoothing)
    else:
        w = torch.tensor(per_sample, dtype=torch.float64)
        value = (F.cross_entropy(zin, yt, reduction="none", label_smoothing=smoothing) * w).sum() / w.sum()
    value.backward()
    return value.item(), zt.grad.numpy()


def problem(shape=(6, 4), seed=0):
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.standard_normal(shape)
    y = rng.integers(0, shape[-1], shape[:-1])
    return z, y


# -- targets -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "logistic", "mse"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_class_indices_are_the_one_hot_rows(xpnet_backend, loss, reduction):
    """Integer targets (...,) and one-hot rows (..., C) give the same loss and dz, for (batch, C) and a language
    model's (batch, time, C) logits; the mean is per position."""
    bk = xpnet_backend
    fn = xpnet.registry.resolve(loss, "loss").__class__(reduction=reduction)
    for shape in [(6, 4), (2, 3, 5)]:
        z, y = problem(shape)
        onehot = np.eye(shape[-1])[y]
        v1, d1 = fn(f64(bk, z), bk.asarray(y))
        v2, d2 = fn(f64(bk, z), f64(bk, onehot))
        assert rel(host(bk, v1), host(bk, v2)) <= 1e-15 and rel(host(bk, d1), host(bk, d2)) <= 1e-15
        if loss == "softmax_cross_entropy" and reduction == "mean":
            tv, tdz = torch_ce(z, y)
            assert rel(host(bk, v1), tv) <= 1e-12 and rel(host(bk, d1), tdz) <= 1e-12


def test_targets_that_fit_neither_case_are_refused(xpnet_backend):
    bk = xpnet_backend
    z, y = problem()
    loss = xpnet.SoftmaxCrossEntropy()
    with pytest.raises(xpnet.InputError, match=r"class-index targets must have the logits' shape without its last "
                                               r"axis, \(6,\), got \(5,\)"):
        loss(f64(bk, z), bk.asarray(y[:5]))
    with pytest.raises(xpnet.InputError, match=r"targets must be class indices of shape \(6,\) \(integers\) or rows "
                                               r"of the logits' shape \(6, 4\).*got shape \(6,\)"):
        loss(f64(bk, z), f64(bk, y))  # labels as floats: neither case
    with pytest.raises(xpnet.InputError, match=r"weight must have one value per sample \(position\), shape \(6,\)"):
        loss(f64(bk, z), bk.asarray(y), None, f64(bk, np.ones(5)))


def test_the_low_level_calls_take_indices_when_told(xpnet_backend):
    """value_and_grads/train_step/objective take class indices with indices=True (what fit uses), the same result
    as the one-hot rows; labels without it stay refused (test_user_inputs), wrong indices are refused."""
    X, y = default_problem(n=24)
    model = xpnet.Sequential([xpnet.Dense(16, 8), xpnet.Tanh(), xpnet.Dense(8, 4)], backend=xpnet_backend,
                             dtype="float64", seed=0)
    xb, onehot = model.as_input(X), model.as_targets(y, 24)[0]
    labels = model.as_labels(y, 24)
    v1, _, g1 = model.value_and_grads(xb, onehot)
    v2, _, g2 = model.value_and_grads(xb, labels, indices=True)
    assert float(v1) == pytest.approx(float(v2), rel=1e-15)
    assert max(rel(host(xpnet_backend, g2[k]), host(xpnet_backend, g1[k])) for k in g1) <= 1e-14
    assert float(model.objective(xb, labels, indices=True)) == pytest.approx(float(v1), rel=1e-15)
    with pytest.raises(xpnet.InputError, match=r"value_and_grads\(indices=True\): y must be integer class indices "
                                               r"of shape \(24,\), got shape \(24, 4\)"):
        model.value_and_grads(xb, onehot, indices=True)


# -- weights and label smoothing against PyTorch, gradchecks -------------------------------------------------

def test_softmax_cross_entropy_against_torch(xpnet_backend):
    """Class weights (as per-sample weights w[y]), label smoothing, soft targets, (batch, time, C) logits and
    per-sample weights against torch.nn.functional.cross_entropy: value and dz (autograd) to 1e-12."""
    bk = xpnet_backend
    worst = 0.0
    for shape in [(7, 5), (2, 3, 5)]:
        z, y = problem(shape, seed=1)
        cw = np.array([0.5, 2.0, 1.0, 3.0, 0.25])
        w = np.random.default_rng(2).uniform(0.1, 2.0, shape[:-1])
        soft = np.random.default_rng(3).dirichlet(np.ones(5), shape[:-1])
        cases = [  # (ours: targets, smoothing, per-sample weight) vs (torch: its arguments)
            ((y, 0.0, cw[y]), dict(y=y, weight=cw)),
            ((y, 0.1, None), dict(y=y, smoothing=0.1)),
            ((soft, 0.2, None), dict(y=soft, smoothing=0.2)),
            ((y, 0.0, w), dict(y=y, per_sample=w)),
            ((y, 0.1, cw[y]), dict(y=y, smoothing=0.1, per_sample=cw[y])),  # ours with both: see docs
        ]
        for (t, e, sw), theirs in cases:
            loss = xpnet.SoftmaxCrossEntropy(label_smoothing=e)
            t = bk.asarray(t) if t.dtype.kind in "iu" else f64(bk, t)
            v, dz = loss(f64(bk, z), t, None, None if sw is None else f64(bk, sw))
            tv, tdz = torch_ce(z, **theirs)
            worst = max(worst, rel(host(bk, v), tv), rel(host(bk, dz), tdz))
    assert worst <= 1e-12, worst


def test_smoothing_with_class_weights_differs_from_torch_as_documented():
    """torch's weight= with label_smoothing weights the uniform part class by class; xpnet weighs a sample's whole
    smoothed loss by its class's weight (docs/losses-metrics.md). Equal with one weight for every class."""
    z, y = problem((7, 5), seed=1)
    cw = np.array([0.5, 2.0, 1.0, 3.0, 0.25])
    ours = float(xpnet.SoftmaxCrossEntropy(label_smoothing=0.1)(z, y, None, cw[y])[0])
    assert abs(ours - torch_ce(z, y, weight=cw, smoothing=0.1)[0]) > 1e-3
    same = np.full(5, 2.0)
    ours = float(xpnet.SoftmaxCrossEntropy(label_smoothing=0.1)(z, y, None, same[y])[0])
    assert ours == pytest.approx(torch_ce(z, y, weight=same, smoothing=0.1)[0], rel=1e-12)


def test_weighted_logistic_and_mse_against_torch(xpnet_backend):
    bk = xpnet_backend
    z, y = problem((6, 3), seed=4)
    w = np.random.default_rng(5).uniform(0.1, 2.0, 6)
    targets = np.random.default_rng(6).uniform(0, 1, (6, 3))
    zt = torch.tensor(z, requires_grad=True)
    wt, tt = torch.tensor(w), torch.tensor(targets)
    for loss, torch_fn in [(xpnet.LogisticCost(), lambda: (F.binary_cross_entropy_with_logits(
                               zt, tt, reduction="none").sum(1) * wt).sum() / wt.sum()),
                           (xpnet.MSE(), lambda: (((zt - tt) ** 2).mean(1) * wt).sum() / wt.sum())]:
        zt.grad = None
        tv = torch_fn()
        tv.backward()
        v, dz = loss(f64(bk, z), f64(bk, targets), None, f64(bk, w))
        assert rel(host(bk, v), tv.item()) <= 1e-12 and rel(host(bk, dz), zt.grad.numpy()) <= 1e-12


@pytest.mark.parametrize("loss", [xpnet.SoftmaxCrossEntropy(label_smoothing=0.15), xpnet.SoftmaxCrossEntropy(),
                                  xpnet.LogisticCost(), xpnet.MSE(), xpnet.MSE(reduction="sum")],
                         ids=["ce-smoothing", "ce", "logistic", "mse", "mse-sum"])
def test_weighted_losses_gradcheck(xpnet_backend, loss):
    """dz of the weighted losses (class indices, per-sample weights) against central differences, float64."""
    bk = xpnet_backend
    z, y = problem((4, 3), seed=7)
    w = f64(bk, np.random.default_rng(8).uniform(0.2, 3.0, 4))
    yb = bk.asarray(y)
    dz = host(bk, loss(f64(bk, z), yb, None, w)[1])
    h, num = 1e-6, np.zeros_like(z)
    for i in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[i] += h
        down[i] -= h
        num[i] = (float(host(bk, loss(f64(bk, up), yb, None, w)[0])) -
                  float(host(bk, loss(f64(bk, down), yb, None, w)[0]))) / (2 * h)
    assert np.max(np.abs(dz - num)) / np.max(np.abs(num)) <= 1e-7


def test_weighted_network_gradcheck(xpnet_backend):
    """value_and_grads(weight=, indices=True, accumulate=3) against central differences of objective(weight=) on
    every parameter entry of a small network, float64 (penalty included)."""
    X, y = default_problem(n=9, features=4, classes=3)
    model = xpnet.Sequential([xpnet.Dense(4, 3), xpnet.Tanh(), xpnet.Dense(3, 3)], backend=xpnet_backend,
                             dtype="float64", seed=3, l2=0.01, loss=xpnet.SoftmaxCrossEntropy(label_smoothing=0.1))
    bk = xpnet_backend
    xb, labels = model.as_input(X), model.as_labels(y, 9)
    w = f64(bk, np.random.default_rng(9).uniform(0.2, 3.0, 9))
    _, _, grads = model.value_and_grads(xb, labels, weight=w, indices=True, accumulate=3)
    params = {k: host(bk, v) for k, v in model.parameters().items()}
    worst, h = 0.0, 1e-6
    for name, value in params.items():
        num = np.zeros_like(value)
        for i in np.ndindex(*value.shape):
            vals = []
            for step in (h, -h):
                p = value.copy()
                p[i] += step
                trial = {k: f64(bk, p if k == name else v) for k, v in params.items()}
                vals.append(float(host(bk, model.objective(xb, labels, params=trial, weight=w, indices=True))))
            num[i] = (vals[0] - vals[1]) / (2 * h)
        worst = max(worst, np.max(np.abs(host(bk, grads[name]) - num)) / max(np.max(np.abs(num)), 1e-12))
    assert worst <= 1e-7, worst


# -- weights in fit --------------------------------------------------------------------------------------------

def torch_step(X, y, W0, b0, lr, weight=None, smoothing=0.0):
    """One full-batch SGD step of logits x W^T + b in torch: the parameters after it."""
    Wt, bt = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    z = torch.tensor(X) @ Wt.T + bt
    wt = None if weight is None else torch.tensor(weight)
    F.cross_entropy(z, torch.tensor(y), weight=wt, label_smoothing=smoothing).backward()
    return W0 - lr * Wt.grad.numpy(), b0 - lr * bt.grad.numpy()


@pytest.mark.parametrize("case", ["class_weight", "balanced", "smoothing"])
def test_a_weighted_fit_step_is_torchs(xpnet_backend, case):
    """fit(class_weight=...) or a label-smoothed loss, one full-batch SGD step: the parameters torch's
    cross_entropy(weight=, label_smoothing=) and autograd give, float64."""
    from sklearn.utils.class_weight import compute_class_weight
    X, y = default_problem(n=40, features=5, classes=3, seed=1)
    loss = xpnet.SoftmaxCrossEntropy(label_smoothing=0.2 if case == "smoothing" else 0.0)
    model = xpnet.Sequential([xpnet.Dense(5, 3)], loss=loss, optimizer=xpnet.SGD(0.5), backend=xpnet_backend,
                             dtype="float64", seed=0)
    start = model.get_state()["params"]
    cw = {"class_weight": {0: 3.0, 2: 0.5}, "balanced": "balanced", "smoothing": None}[case]
    model.fit(X, y, epochs=1, batch_size=40, shuffle=False, class_weight=cw)
    weight = {"class_weight": np.array([3.0, 1.0, 0.5]), "smoothing": None,
              "balanced": compute_class_weight("balanced", classes=np.arange(3), y=y)}[case]
    W, b = torch_step(X, y, start["layers.0.weight"], start["layers.0.bias"], 0.5, weight,
                      0.2 if case == "smoothing" else 0.0)
    got = model.get_state()["params"]
    assert rel(got["layers.0.weight"], W) <= 1e-12 and rel(got["layers.0.bias"], b) <= 1e-12


def test_weighted_fit_divides_by_the_weights_and_accumulates_exactly():
    """Weights all 2 train as no weights (a mean divides by the weights' sum, not the batch size); class_weight is
    sample_weight = class_weight[y]; accumulate=3 micro-batches give the one-batch run (float64)."""
    X, y = default_problem(n=60, features=6, classes=3, seed=2)
    sw = np.random.default_rng(0).uniform(0.2, 2.0, 60)

    def run(**kw):
        model = xpnet.Sequential([xpnet.Dense(6, 8), xpnet.Tanh(), xpnet.Dense(8, 3)], optimizer=xpnet.SGD(0.1, 0.9),
                                 backend="numpy", dtype="float64", seed=0)
        return model.fit(X, y, epochs=2, batch_size=16, **kw).get_state()["params"]

    def worst(a, b):
        return max(rel(a[k], b[k]) for k in a)

    assert worst(run(sample_weight=np.full(60, 2.0)), run()) <= 1e-13
    cw = {0: 2.0, 1: 0.5, 2: 1.5}
    assert worst(run(class_weight=cw), run(sample_weight=np.array([cw[v] for v in y]))) == 0.0
    assert worst(run(class_weight="balanced", sample_weight=sw, accumulate=3),
                 run(class_weight="balanced", sample_weight=sw)) <= 1e-13
    assert worst(run(sample_weight=sw), run()) > 1e-3  # the weights matter


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_compiled_steps_keep_integer_targets_and_weights(backend, monkeypatch):
    """Under jax.jit and torch.compile the step's targets stay integer class indices (only X is cast), and a
    weighted, accumulated, label-smoothed compiled fit is the eager one (float64)."""
    pytest.importorskip(backend)
    X, y = default_problem(n=50, features=6, classes=3, seed=3)
    seen = []
    check = xpnet.Sequential.check_targets

    def spy(self, x, t, owner="value_and_grads", indices=False):
        seen.append((str(t.dtype), indices))
        return check(self, x, t, owner, indices)

    def run(compile):
        model = xpnet.Sequential([xpnet.Dense(6, 8), xpnet.Tanh(), xpnet.Dense(8, 3)],
                                 loss=xpnet.SoftmaxCrossEntropy(label_smoothing=0.1), optimizer=xpnet.SGD(0.1, 0.9),
                                 backend=backend, dtype="float64", seed=0, compile=compile)
        return model.fit(X, y, epochs=2, batch_size=16, class_weight="balanced", accumulate=2)

    def reset():  # torch.compile's recompile limit counts every model's step (one code object) in this process
        if backend == "torch":
            torch._dynamo.reset()

    monkeypatch.setattr(xpnet.Sequential, "check_targets", spy)
    reset()
    try:
        compiled = run(True)
    finally:
        reset()
    assert compiled.compile_traces_ >= 2  # traced: the minibatch of 16 and the short last one of 2
    assert seen and all("int" in dtype and indices for dtype, indices in seen), seen
    eager = run(False).get_state()["params"]
    compiled = compiled.get_state()["params"]
    assert max(rel(compiled[k], eager[k]) for k in eager) <= 1e-10


def test_class_and_sample_weights_are_checked():
    from sklearn.utils.class_weight import compute_class_weight
    labels = np.array([0, 0, 0, 1, 2, 2])
    assert np.allclose(class_weight_vector(labels, 3, "balanced"),
                       compute_class_weight("balanced", classes=np.arange(3), y=labels), rtol=1e-15)
    names = np.array(["ant", "bee", "cat"])
    assert class_weight_vector(labels, 3, {"bee": 4.0}, names).tolist() == [1.0, 4.0, 1.0]
    for bad, match in [({"dog": 1.0}, r"names the label 'dog', which is not one of the model's classes"),
                       ({"ant": -1.0}, r"class_weight\['ant'\] must be a finite number >= 0"),
                       ("balance", r"must be 'balanced' or a \{label: weight\} dict, got 'balance'")]:
        with pytest.raises(xpnet.InputError, match=match):
            class_weight_vector(labels, 3, bad, names)
    with pytest.raises(xpnet.InputError, match=r"sample_weight must be 6 numbers, one per sample, got shape \(5,\)"):
        sample_weights(labels, 3, None, np.ones(5))
    with pytest.raises(xpnet.InputError, match=r"every sample weighs 0"):
        sample_weights(labels, 3, {0: 0.0, 1: 0.0, 2: 0.0})
    model = xpnet.Sequential([xpnet.Dense(4, 3)], backend="numpy", seed=0)
    with pytest.raises(xpnet.InputError, match=r"class_weight names the label 7"):
        model.fit(np.zeros((6, 4)), labels, epochs=1, class_weight={7: 2.0})


# -- metrics against scikit-learn ------------------------------------------------------------------------------

def test_report_and_top_k_are_scikit_learns():
    """classification_report (per class, accuracy, macro, weighted; micro from precision_recall_fscore_support)
    and top_k_accuracy_score, with a class never predicted, one absent from the labels, and tied scores."""
    from sklearn import metrics as skm
    rng = np.random.default_rng(0)
    y_true = rng.choice([0, 1, 2, 4], 200)          # class 3 absent from the labels
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.choice([0, 1, 3, 4], 200))  # 2 only where right
    y_pred[y_pred == 2] = 1                          # class 2 never predicted
    ours = classification_report(y_true, y_pred, n_classes=6)  # class 5 in neither: left out, as sklearn does
    theirs = skm.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    worst = 0.0
    for key, row in theirs.items():
        if key == "accuracy":
            worst = max(worst, abs(ours[key] - row))
            continue
        assert ours[key]["support"] == row["support"], key
        worst = max(worst, *(abs(ours[key][m] - row[m]) for m in ("precision", "recall", "f1-score")))
    assert set(ours) - set(theirs) == {"micro avg"} and "5" not in ours
    micro = skm.precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    worst = max(worst, *(abs(ours["micro avg"][m] - v) for m, v in zip(("precision", "recall", "f1-score"), micro)))
    scores = rng.integers(0, 4, (200, 6)).astype(float)  # many ties
    for k in (1, 2, 3, 5):
        worst = max(worst, abs(top_k_accuracy(y_true, scores, k) -
                               skm.top_k_accuracy_score(y_true, scores, k=k, labels=np.arange(6))))
    assert worst <= 1e-15, worst
    table = format_report(ours)
    assert table.splitlines()[0].split() == ["precision", "recall", "f1-score", "support"]
    assert "macro avg" in table and "weighted avg" in table


def test_the_models_report_and_validation_f1_are_scikit_learns(xpnet_backend):
    """model.classification_report (names, top-k) and fit's val_f1_macro/val_precision_weighted (from confusion
    counts summed on the device) against scikit-learn on the model's own predictions."""
    from sklearn import metrics as skm
    X, y = default_problem(n=120, features=8, classes=3, seed=4)
    model = xpnet.Sequential([xpnet.Dense(8, 3)], optimizer=xpnet.SGD(0.05), backend=xpnet_backend, seed=0,
                             dtype="float64")
    model.fit(X, y, epochs=2, batch_size=16, validation_split=0.25)
    Xv, yv = X[90:], y[90:]
    pred = np.asarray(xpnet.to_numpy(model.predict(Xv)))
    h = model.history_
    assert h["val_f1_macro"][-1] == pytest.approx(skm.f1_score(yv, pred, average="macro", zero_division=0),
                                                  abs=1e-15)
    assert h["val_precision_weighted"][-1] == pytest.approx(
        skm.precision_score(yv, pred, average="weighted", zero_division=0), abs=1e-15)
    model.class_names_ = ["a", "b", "c"]
    report = model.classification_report(Xv, yv, top_k=2)
    theirs = skm.classification_report(yv, pred, output_dict=True, zero_division=0, target_names=["a", "b", "c"])
    assert report["b"]["f1-score"] == pytest.approx(theirs["b"]["f1-score"], abs=1e-15)
    assert report["macro avg"]["recall"] == pytest.approx(theirs["macro avg"]["recall"], abs=1e-15)
    scores = np.asarray(xpnet.to_numpy(model.predict_proba(Xv)))
    assert report["top_2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(yv, scores, k=2), abs=1e-15)
    assert np.array_equal(report["confusion_matrix"], confusion_matrix(yv, pred, 3))


# -- monitoring ------------------------------------------------------------------------------------------------

def test_monitor_modes_and_the_best_checkpoint(tmp_path):
    assert [monitor_mode(n) for n in ("val_loss", "loss", "val_f1_macro", "val_accuracy", "val_recall_weighted")] \
        == ["min", "min", "max", "max", "max"]
    with pytest.raises(xpnet.InputError, match=r"cannot tell whether 'val_auc' should rise or fall; pass mode="):
        xpnet.EarlyStopping(monitor="val_auc")
    assert xpnet.EarlyStopping(monitor="val_auc", mode="max").mode == "max"
    model = xpnet.Sequential([xpnet.Dense(2, 2)], backend="numpy", seed=0)
    stop = xpnet.EarlyStopping(patience=2, monitor="val_f1_macro", restore_best=False)
    saved = []
    best = xpnet.ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_f1_macro")
    best.save = lambda *a, **k: saved.append(epoch)
    for cb in (stop, best):
        cb.set_model(model)
        cb.on_train_begin({})
    for epoch, f1 in enumerate([0.5, 0.4, 0.6, 0.6, 0.55]):
        for cb in (stop, best):
            cb.on_epoch_end(epoch, {"epoch": epoch + 1, "loss": 1.0, "val_f1_macro": f1})
        if model.stop_training:
            break
    assert saved == [0, 2] and best.best == 0.6 and stop.stopped_epoch == 5
    with pytest.raises(xpnet.InputError, match=r"EarlyStopping\(monitor='val_f1_macro'\): this fit's epochs report "
                                               r"no val_f1_macro .*validation_split"):
        xpnet.Sequential([xpnet.Dense(2, 2)], backend="numpy", seed=0).fit(
            np.zeros((8, 2)), np.arange(8) % 2, epochs=1, early_stopping=xpnet.EarlyStopping(monitor="val_f1_macro"))


def test_early_stopping_on_validation_f1_restores_its_best_epoch():
    X, y = default_problem(n=200, features=8, classes=4, seed=5)
    model = xpnet.Sequential([xpnet.Dense(8, 16), xpnet.ReLU(), xpnet.Dense(16, 4)], optimizer=xpnet.SGD(0.5, 0.9),
                             backend="numpy", dtype="float64", seed=0)
    stop = xpnet.EarlyStopping(patience=2, monitor="val_f1_macro")
    model.fit(X, y, epochs=25, batch_size=20, validation_split=0.3, early_stopping=stop)
    f1 = model.history_["val_f1_macro"]
    assert stop.mode == "max" and -stop.best == max(f1)
    if stop.stopped_epoch is not None:  # restored: the best epoch's model scores its F1 again
        from sklearn.metrics import f1_score
        assert f1_score(y[140:], model.predict(X[140:]), average="macro") == pytest.approx(max(f1), abs=1e-15)


# -- command line ----------------------------------------------------------------------------------------------

def test_cli_train_weights_smoothing_monitor_and_evaluate_report(tmp_path):
    from fakes import run_cli
    from sklearn import metrics as skm
    ck, best = tmp_path / "ck.safetensors", tmp_path / "best.safetensors"
    rc, out, err = run_cli("train", "--epochs", 3, "--hidden", 16, "--class-weight", "balanced", "--label-smoothing",
                           0.1, "--validation-split", 0.2, "--early-stopping", 2, "--monitor", "val_f1_macro",
                           "--best-checkpoint", best, "--checkpoint", ck, "--history", tmp_path / "h.csv", "--quiet",
                           "--json")
    assert rc == 0, err
    header = (tmp_path / "h.csv").read_text().splitlines()[0].split(",")
    assert "val_f1_macro" in header and "val_recall_weighted" in header
    assert best.exists() and xpnet.load(ck).loss.label_smoothing == 0.1
    rc, out, err = run_cli("evaluate", "--checkpoint", ck, "--report", "--top-k", 3, "--json")
    assert rc == 0, err
    ev = json.loads(out.strip().splitlines()[-1])
    cm = np.asarray(ev["confusion_matrix"])
    t, p = np.nonzero(cm)
    y_true, y_pred = np.repeat(t, cm[t, p]), np.repeat(p, cm[t, p])
    theirs = skm.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    assert ev["report"]["macro avg"]["f1-score"] == pytest.approx(theirs["macro avg"]["f1-score"], abs=1e-15)
    assert ev["report"]["accuracy"] == pytest.approx(ev["accuracy"], abs=1e-12) and 0 < ev["report"]["top_3_accuracy"]
    rc, out, err = run_cli("evaluate", "--checkpoint", ck, "--report")
    assert rc == 0 and "macro avg" in out and "f1-score" in out
    import xpnet.cli.evaluate as ev_cli  # more classes than a printed matrix holds: --top-k must not change that
    shown, ev_cli.CONFUSION_SHOWN = ev_cli.CONFUSION_SHOWN, 9
    try:
        rc, out, err = run_cli("evaluate", "--checkpoint", ck, "--report", "--top-k", 3, "--json", "--quiet")
    finally:
        ev_cli.CONFUSION_SHOWN = shown
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["confusion_matrix"] is None, err
    for argv, match in [(["--monitor", "val_f1_macro", "--early-stopping", 2],
                         "--monitor val_f1_macro is a validation figure: give --validation-split"),
                        (["--label-smoothing", 0.1, "--loss", "logistic"],
                         "--label-smoothing applies to the softmax_cross_entropy loss")]:
        rc, out, err = run_cli("train", "--epochs", 1, "--quiet", *argv)
        assert rc != 0 and match in err, err


# -- data-parallel ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_weighted_monitored_fit_on_two_ranks_is_the_one_process_fit(backend):
    """mpiexec -n 2: class weights ("balanced") times sample weights, label smoothing, accumulate=2 and early
    stopping on val_f1_macro: the one-process run to rounding (the weighted mean divides by the global
    minibatch's weight sum on each rank), the same F1 on every rank and the same stopping epoch."""
    from test_distributed import HERE, last_json, mpirun, needs_mpi
    if needs_mpi.args[0]:
        pytest.skip(needs_mpi.kwargs["reason"])
    out = last_json(mpirun(2, HERE / "mpi_weights_worker.py", backend, "float64", timeout=180))
    assert out["ranks"] == 2 and out["ranks_identical"] and out["ranks_agree_on_f1"], out
    assert out["params"] <= 1e-12 and out["batch_losses"] <= 1e-12, out
    assert out["val_f1_macro"] == out["one_val_f1_macro"] and out["stopped"][0] == out["stopped"][1], out


def test_a_weighted_run_resumes_exactly_and_only_with_its_weights():
    X, y = default_problem(n=60, features=6, classes=3, seed=6)

    def model():
        return xpnet.Sequential([xpnet.Dense(6, 3)], optimizer=xpnet.SGD(0.1, 0.9), backend="numpy", dtype="float64",
                                seed=0)

    whole = model().fit(X, y, epochs=2, batch_size=16, class_weight="balanced")
    part = model().fit(X, y, steps=5, batch_size=16, class_weight="balanced")  # stops inside epoch 2
    with pytest.raises(xpnet.InputError, match=r"trained with class or sample weights, and this fit gives none"):
        part.fit(X, y, resume=True, epochs=2)
    with pytest.raises(xpnet.InputError, match=r"with other weights than this fit's"):
        part.fit(X, y, resume=True, epochs=2, class_weight={0: 2.0})
    part.fit(X, y, resume=True, epochs=2, class_weight="balanced")
    a, b = whole.get_state()["params"], part.get_state()["params"]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_loss_written_for_rows_gets_rows():
    """A Loss subclass that does not declare takes_indices (written for one-hot rows) trains in fit on the
    minibatch's rows made from the labels: the same run as the built-in loss it copies."""
    class RowsOnly(xpnet.Loss):
        def __call__(self, z, y, denom=None):
            assert y.shape == z.shape  # never class indices
            return xpnet.SoftmaxCrossEntropy()(z, y, denom)

        def activation(self, xp, z):
            return xpnet.SoftmaxCrossEntropy().activation(xp, z)

    X, y = default_problem(n=40, features=5, classes=3)

    def run(loss):
        model = xpnet.Sequential([xpnet.Dense(5, 3)], loss=loss, backend="numpy", dtype="float64", seed=0)
        model.fit(X, y, epochs=2, batch_size=8, validation_split=0.2)
        return model

    a, b = run(RowsOnly()), run(xpnet.SoftmaxCrossEntropy())
    assert all(np.array_equal(a.parameters()[k], b.parameters()[k]) for k in a.parameters())
    assert a.history_["val_loss"] == b.history_["val_loss"]


def test_evaluate_counts_the_confusion_matrix_in_the_same_pass():
    """model.evaluate(X, y, confusion=True): the loss and accuracy of evaluate(X, y) and the confusion counts of
    predict(X) against y, rows and columns in the order of classes_ (names here); refused for regression."""
    from xpnet.data.datasets import load_digits
    from xpnet.metrics import confusion_matrix
    X, y = load_digits()[:2]
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y[:400]]
    model = xpnet.Sequential([xpnet.Dense(64, 16), xpnet.ReLU(), xpnet.Dense(16, 10)], seed=0,
                             preprocessing="unit").fit(X[:400], names, epochs=2)
    loss, accuracy, cm = model.evaluate(X[:400], names, batch_size=64, confusion=True)
    assert (loss, accuracy) == model.evaluate(X[:400], names, batch_size=64)
    index = {c: i for i, c in enumerate(model.classes_.tolist())}
    want = confusion_matrix(np.array([index[v] for v in names]),
                            np.array([index[v] for v in model.predict(X[:400]).tolist()]), 10)
    assert cm.dtype == np.int64 and cm.tolist() == want.tolist() and cm.sum() == 400
    assert np.trace(cm) / 400 == pytest.approx(accuracy)
    reg = xpnet.Sequential([xpnet.Dense(64, 1)], loss="mse", task="regression", seed=0).fit(X[:50], y[:50] * 1.0,
                                                                                          epochs=1)
    with pytest.raises(xpnet.InputError, match=r"confusion=True\) counts classes"):
        reg.evaluate(X[:50], y[:50].astype(float), confusion=True)


def test_confusion_counts_stay_exact_past_what_a_float_holds(monkeypatch):
    """The device counts are floats, exact up to count_limit (2**24 in float32): past it they are added into
    host int64 counts first. With the limit lowered to 50 rows, 400 rows in batches of 64, 7 or 1 give the
    same counts as in one go."""
    from xpnet.data.datasets import load_digits
    from xpnet.training import loop
    assert loop.count_limit(np, np.float32) == 2 ** 24 and loop.count_limit(np, np.float64) == 2 ** 53
    X, y = load_digits()[:2]
    model = xpnet.Sequential([xpnet.Dense(64, 10)], seed=0, preprocessing="unit").fit(X[:400], y[:400], epochs=1)
    want = model.evaluate(X[:400], y[:400], batch_size=400, confusion=True)[2]
    monkeypatch.setattr(loop, "count_limit", lambda xp, dtype: 50)
    moved, real = [], loop._host_counts
    monkeypatch.setattr(loop, "_host_counts", lambda model, cm, counts: moved.append(1) or real(model, cm, counts))
    for batch, flushes in ((64, 7), (7, 9), (1, 8)):  # each flush holds at most max(50, batch) rows, the last too
        moved.clear()
        assert model.evaluate(X[:400], y[:400], batch_size=batch, confusion=True)[2].tolist() == want.tolist()
        assert len(moved) == flushes
