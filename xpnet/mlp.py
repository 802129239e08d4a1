"""NeuralNetMLP: the book's one-hidden-layer perceptron (Python Machine Learning, 2015, ch. 12),
built from xpnet's layers, logistic loss, penalty, BookSGD optimizer and BookDecay schedule.

The book keeps the bias as column 0 of w1, w2 and samples as columns; xpnet keeps a separate bias
and samples as rows. The arithmetic is the same: z2 = w1 @ a1.T is x @ W1.T + b1, and so on.
"""
from __future__ import annotations

import numpy as np

from .layers import Dense, Sigmoid
from .losses import LogisticCost
from .model import Sequential
from .optimizers import BookSGD
from .penalties import Penalty
from .schedules import BookDecay
from .training import fit as _fit
from .validation import InputError


class NeuralNetMLP:
    """The book's constructor and defaults, plus backend, device and dtype."""

    def __init__(self, n_output, n_features, n_hidden=30, l1=0.0, l2=0.0, epochs=500, eta=0.001, alpha=0.0,
                 decrease_const=0.0, shuffle=True, minibatches=1, random_state=None, backend=None, device=None,
                 dtype="float64"):
        if not isinstance(epochs, int) or epochs < 1:
            raise InputError(f"epochs must be a positive integer, got {epochs!r}")
        if not isinstance(minibatches, int) or minibatches < 1:
            raise InputError(f"minibatches must be a positive integer, got {minibatches!r}")
        self.init_args = dict(n_output=n_output, n_features=n_features, n_hidden=n_hidden, l1=l1, l2=l2, epochs=epochs,
                              eta=eta, alpha=alpha, decrease_const=decrease_const, shuffle=shuffle,
                              minibatches=minibatches, random_state=random_state)
        self.n_output, self.n_features, self.n_hidden = n_output, n_features, n_hidden
        self.l1, self.l2, self.epochs, self.alpha = l1, l2, epochs, alpha
        self.decrease_const, self.shuffle, self.minibatches = decrease_const, shuffle, minibatches
        self.random_state = random_state
        # A private RandomState: the same MT19937 stream as the book's np.random.seed, global stream untouched.
        self.rng = np.random.RandomState(random_state)
        self.model = Sequential(
            [Dense(n_features, n_hidden, init="book_uniform"), Sigmoid(), Dense(n_hidden, n_output, init="book_uniform")],
            loss=LogisticCost(reduction="sum"),
            optimizer=BookSGD(eta, alpha),
            penalty=Penalty(l1, l2, l1_cost_factor=0.5),
            schedule=BookDecay(decrease_const),
            backend=backend, device=device, dtype=dtype, rng=self.rng,
        )
        self.cost_: list[float] = []

    @classmethod
    def from_model(cls, model, init_args: dict) -> "NeuralNetMLP":
        """Wrap a Sequential rebuilt from a checkpoint (xpnet.load)."""
        self = cls.__new__(cls)
        self.init_args = dict(init_args)
        for k, v in init_args.items():
            if k != "eta":
                setattr(self, k, v)
        self.model, self.rng = model, model.rng
        self.cost_ = list((getattr(model, "progress_", None) or {}).get("batch_losses", []))
        return self

    def fit(self, X, y, print_progress: bool = False, resume: dict | None = None, **fit_kwargs) -> "NeuralNetMLP":
        """The book's fit: a new cost_ and zero momentum; weights, decayed eta and the RNG stream carry on.
        resume: continue an interrupted fit from its checkpoint (`model.progress_`) instead.
        fit_kwargs: validation_data, callbacks, early_stopping (see xpnet.training.fit)."""
        if resume is None:
            self.model.optimizer.reset()
        _fit(self.model, X, y, epochs=self.epochs, minibatches=self.minibatches, shuffle=self.shuffle,
             compose_shuffles=True, verbose=print_progress, resume=resume, **fit_kwargs)
        self.cost_ = list(self.model.batch_losses_)
        return self

    def save(self, path, **extra):
        """One safetensors checkpoint (see xpnet.checkpoint); xpnet.load(path) gives a NeuralNetMLP back."""
        from .checkpoint import save
        return save(self, path, extra=extra or None)

    def predict(self, X):
        """argmax of the output net input z3."""
        return self.model.predict(X)

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def score(self, X, y) -> float:
        return self.model.score(X, y)

    def _book_layout(self, i: int) -> np.ndarray:
        p = self.model.parameters()
        to_np = self.model.bk.to_numpy
        w, b = to_np(p[f"layers.{i}.weight"]), to_np(p[f"layers.{i}.bias"])
        return np.concatenate([b[:, None], w], axis=1).astype(np.float64)

    def _set_book_layout(self, i: int, value) -> None:
        w = np.asarray(value, dtype=np.float64)
        shape = tuple(self.model.parameters()[f"layers.{i}.weight"].shape)
        if w.shape != (shape[0], shape[1] + 1):
            raise InputError(f"w{i // 2 + 1} must have shape {(shape[0], shape[1] + 1)} (bias in column 0), got {w.shape}")
        self.model.set_parameters({f"layers.{i}.weight": w[:, 1:], f"layers.{i}.bias": w[:, 0]})

    @property
    def w1(self) -> np.ndarray:
        """(n_hidden, n_features + 1), bias in column 0: a float64 NumPy copy (assignable)."""
        return self._book_layout(0)

    @w1.setter
    def w1(self, value) -> None:
        self._set_book_layout(0, value)

    @property
    def w2(self) -> np.ndarray:
        """(n_output, n_hidden + 1), bias in column 0: a float64 NumPy copy (assignable)."""
        return self._book_layout(2)

    @w2.setter
    def w2(self, value) -> None:
        self._set_book_layout(2, value)

    @property
    def eta(self) -> float:
        return self.model.optimizer.lr

    @eta.setter
    def eta(self, value: float) -> None:
        self.model.optimizer.lr = float(value)

    def __repr__(self) -> str:
        return (f"NeuralNetMLP(n_output={self.n_output}, n_features={self.n_features}, n_hidden={self.n_hidden}, "
                f"l1={self.l1}, l2={self.l2}, epochs={self.epochs}, eta={self.eta}, alpha={self.alpha}, "
                f"decrease_const={self.decrease_const}, minibatches={self.minibatches}, "
                f"backend={self.model.bk.name!r}, dtype={self.model.dtype_name!r})")
