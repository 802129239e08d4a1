"""`xpnet train`: load a dataset, scale it, build an MLP from flags, fit, report."""
from __future__ import annotations

import time

import numpy as np

from .validation import InputError

DEFAULTS = dict(hidden=[100], activation="relu", loss="softmax_cross_entropy", optimizer="sgd", lr=None, momentum=0.9,
                l1=0.0, l2=0.0, epochs=30, batch_size=None, minibatches=None, seed=1, dtype="float32", scale="unit",
                validation_split=0.0, early_stopping=None)


def load_dataset(name: str, data_dir=None, label_column: str = "label", download: bool = True):
    """(X_train, y_train, X_test | None, y_test | None) as host arrays."""
    from . import datasets
    if name == "digits":
        return datasets.load_digits()
    if name in ("mnist", "fashion-mnist"):
        return datasets.load_mnist(name, data_dir, download=download)
    if name.endswith((".npz", ".csv")):
        return datasets.load_array_file(name, label_column=label_column)
    raise InputError(f"unknown dataset {name!r}; choose digits, mnist, fashion-mnist, or a path to a .npz or .csv file")


class Scaler:
    """Input scaling fitted on the training data: raw, unit [0, 1], symmetric [-1, 1] or standardize."""

    def __init__(self, kind: str = "unit"):
        if kind not in ("raw", "unit", "symmetric", "standardize"):
            raise InputError(f"unknown scale {kind!r}; choose raw, unit, symmetric or standardize")
        self.kind, self.shift, self.scale = kind, 0.0, 1.0

    def fit(self, X: np.ndarray) -> "Scaler":
        X = np.asarray(X, dtype=np.float64)
        if self.kind in ("unit", "symmetric"):
            lo, hi = float(X.min()), float(X.max())
            self.shift, self.scale = lo, (hi - lo) or 1.0
        elif self.kind == "standardize":
            std = X.std(axis=0)
            self.shift, self.scale = X.mean(axis=0), np.where(std > 0, std, 1.0)
        return self

    def transform(self, X: np.ndarray, dtype: str) -> np.ndarray:
        X = np.asarray(X, dtype=dtype)
        if self.kind == "raw":
            return X
        X = (X - np.asarray(self.shift, dtype=dtype)) / np.asarray(self.scale, dtype=dtype)
        return X * 2 - 1 if self.kind == "symmetric" else X


def build_mlp(n_features: int, n_classes: int, hidden, activation, loss, optimizer, lr, momentum, l1, l2, backend,
              device, dtype, seed):
    from .layers import ACTIVATIONS, Dense
    from .model import Sequential
    from .optimizers import OPTIMIZERS, SGD
    if activation not in ACTIVATIONS:
        raise InputError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    sizes = [n_features, *hidden, n_classes]
    init = "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(Dense(a, b, init="glorot_uniform" if last else init))
        if not last:
            layers.append(ACTIVATIONS[activation]())
    if lr is None:
        lr = 0.001 if optimizer in ("adam", "adamw") else 0.1 if optimizer != "book" else 0.001
    if optimizer in ("sgd", "momentum", "nesterov"):
        opt = SGD(lr, momentum=momentum, nesterov=optimizer == "nesterov")
    else:
        opt = OPTIMIZERS[optimizer](lr=lr)
    return Sequential(layers, loss=loss, optimizer=opt, l1=l1, l2=l2, backend=backend, device=device, dtype=dtype,
                      seed=seed)


def run_train(args) -> dict:
    cfg = {k: (getattr(args, k) if getattr(args, k, None) is not None else v) for k, v in DEFAULTS.items()}
    X, y, X_test, y_test = load_dataset(args.dataset, args.data_dir, args.label_column, download=not args.offline)
    y = np.asarray(y)
    n_classes = int(max(y.max(), -1 if y_test is None else np.asarray(y_test).max())) + 1
    scaler = Scaler(cfg["scale"]).fit(X)
    Xs = scaler.transform(X, cfg["dtype"])
    model = build_mlp(Xs.shape[1], n_classes, cfg["hidden"], cfg["activation"], cfg["loss"], cfg["optimizer"],
                      cfg["lr"], cfg["momentum"], cfg["l1"], cfg["l2"], args.backend, args.device, cfg["dtype"],
                      cfg["seed"])
    if not args.quiet:
        print(f"training on {args.dataset}: {Xs.shape[0]} samples x {Xs.shape[1]} features, {n_classes} classes; "
              f"{model.bk.name} on {model.bk.device}, {cfg['dtype']}", flush=True)
    t0 = time.perf_counter()
    model.fit(Xs, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], minibatches=cfg["minibatches"],
              validation_split=cfg["validation_split"], early_stopping=cfg["early_stopping"], verbose=not args.quiet)
    seconds = time.perf_counter() - t0
    n_train = Xs.shape[0] - int(round(Xs.shape[0] * cfg["validation_split"]))
    train_acc = model.score(Xs[:n_train], y[:n_train])
    test_acc = None if X_test is None else model.score(scaler.transform(X_test, cfg["dtype"]), y_test)
    if not args.quiet:
        print(f"train accuracy {train_acc:.4f}" + ("" if test_acc is None else f"  test accuracy {test_acc:.4f}") +
              f"  ({seconds:.1f} s)", flush=True)
    return {"backend": model.bk.name, "device": model.bk.device, "dtype": cfg["dtype"],
            "epochs": len(model.history_["epoch"]), "seconds": seconds, "train_accuracy": train_acc,
            "test_accuracy": test_acc, "final_loss": model.history_["loss"][-1], "checkpoint": None}
