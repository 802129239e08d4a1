"""Multi-layer perceptrons: `mlp_layers` (the one helper that stacks Dense layers and activations) and
NeuralNetMLP, the book's one-hidden-layer perceptron (Python Machine Learning, 2015, ch. 12), built from
xpnet's layers, logistic loss, penalty, BookSGD optimizer and BookDecay schedule.

The book keeps the bias as column 0 of w1, w2 and samples as columns; xpnet keeps a separate bias and
samples as rows. The arithmetic is the same: z2 = w1 @ a1.T is x @ W1.T + b1, and so on.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError
from ..init import check_seed
from ..layers import Dense, Sigmoid
from ..layers.base import param_key
from ..losses import LogisticCost
from .sequential import Sequential
from ..optimizers import BookSGD
from ..checks import POSITIVE_INT, check
from ..penalties import Penalty
from ..registry import get, register
from ..schedules import BookDecay


def mlp_specs(sizes, activation="relu", init: str | None = None, output_init: str = "glorot_uniform",
              dropout: float = 0.0) -> list[dict]:
    """Layer configs {"class", "config"} of an MLP with layer sizes [in, hidden..., out]: Dense layers with
    `activation` (one name, or a list of one per hidden layer) and Dropout(dropout) when > 0 between them.
    init: the hidden layers' initializer (default he_normal after ReLU-type activations, else
    glorot_uniform); output_init the last layer's."""
    sizes = list(sizes)
    if len(sizes) < 2:
        raise InputError(f"an MLP needs at least an input and an output size, got sizes {sizes}")
    acts = [activation] * (len(sizes) - 2) if isinstance(activation, str) else list(activation)
    if len(acts) != len(sizes) - 2:
        n = len(sizes) - 2
        raise InputError(f"activation lists {len(acts)} activations for {n} hidden layer{'s' if n != 1 else ''}; "
                         f"give one per hidden layer, or one name for all")
    for name in [activation] if isinstance(activation, str) else acts:
        get("layer", name)  # fails now, naming the valid ones
    specs = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        hidden_init = init or ("he_normal" if not last and acts[i] in ("relu", "leaky_relu") else "glorot_uniform")
        specs.append({"class": "Dense", "config": {"in_features": a, "out_features": b,
                                                  "init": output_init if last else hidden_init}})
        if not last:
            specs.append({"class": acts[i], "config": {}})
            if dropout:
                specs.append({"class": "Dropout", "config": {"p": dropout}})
    return specs


def mlp_layers(sizes, activation="relu", init: str | None = None, output_init: str = "glorot_uniform",
               dropout: float = 0.0) -> list:
    """The layers of mlp_specs(...) as objects, e.g. Sequential(mlp_layers([784, 100, 10]))."""
    return [get("layer", s["class"])(**s["config"]) for s in mlp_specs(sizes, activation, init, output_init,
                                                                         dropout)]


def _book_weights(i: int, shape: str) -> property:
    """NeuralNetMLP's w1 (i=0) or w2 (i=2): Dense layer i's weight and bias in the book's layout, bias in
    column 0 (`NeuralNetMLP._book_layout`); assigning one sets both (`_set_book_layout`)."""
    return property(lambda self: self._book_layout(i), lambda self, value: self._set_book_layout(i, value),
                    doc=f"{shape}, bias in column 0: a float64 NumPy copy (assignable).")


@register("NeuralNetMLP.v1", kind="model")
class NeuralNetMLP(Sequential):
    """The book's constructor and defaults, plus backend, device and dtype. A Sequential: everything else
    (save, load, predict, state) works as for any model."""

    def __init__(self, n_output, n_features, n_hidden=30, l1=0.0, l2=0.0, epochs=500, eta=0.001, alpha=0.0,
                 decrease_const=0.0, shuffle=True, minibatches=1, random_state=None, backend=None, device=None,
                 dtype="float64", compile=False):
        check("epochs", epochs, POSITIVE_INT)
        check("minibatches", minibatches, POSITIVE_INT)
        check_seed("random_state", random_state)
        self.init_args = dict(n_output=n_output, n_features=n_features, n_hidden=n_hidden, l1=l1, l2=l2,
                              epochs=epochs, eta=eta, alpha=alpha, decrease_const=decrease_const, shuffle=shuffle,
                              minibatches=minibatches, random_state=random_state)
        self.n_output, self.n_hidden = n_output, n_hidden
        self.l1, self.l2, self.epochs, self.alpha = l1, l2, epochs, alpha
        self.decrease_const, self.shuffle, self.minibatches = decrease_const, shuffle, minibatches
        self.random_state = random_state
        # A private RandomState: the same MT19937 stream as the book's np.random.seed, global stream untouched.
        super().__init__(
            [Dense(n_features, n_hidden, init="book_uniform"), Sigmoid(), Dense(n_hidden, n_output, init="book_uniform")],
            loss=LogisticCost(reduction="sum"), optimizer=BookSGD(eta, alpha),
            penalty=Penalty(l1, l2, l1_cost_factor=0.5), schedule=BookDecay(decrease_const),
            backend=backend, device=device, dtype=dtype, rng=np.random.RandomState(random_state), compile=compile)

    def get_config(self) -> dict:
        return dict(self.init_args, dtype=self.dtype_name)

    @classmethod
    def from_config(cls, config: dict, backend=None, device=None, dtype=None, **overrides):
        config = dict(config, **overrides)
        if dtype is not None:
            config["dtype"] = dtype
        return cls(**config, backend=backend, device=device)

    def fit(self, X, y, print_progress: bool = False, resume=None, *, epochs: int | None = None, validation_data=None,
            callbacks=(), early_stopping=None, accumulate: int = 1, steps: int | None = None,
            eval_every: int | None = None, distributed=None) -> "NeuralNetMLP":
        """The book's fit: a new cost_ and zero momentum; weights, decayed eta and the RNG stream carry on.
        resume=True: continue an interrupted fit from this model's state (e.g. after xpnet.load) instead.
        epochs: the run's epochs in place of the constructor's (a resumed run's total, say).
        validation_data, callbacks, early_stopping, accumulate, steps, eval_every, distributed: see
        xpnet.training.fit (minibatches and shuffle are the constructor's)."""
        if not resume:
            self.reset_optimizer()
        super().fit(X, y, epochs=self.epochs if epochs is None else epochs, minibatches=self.minibatches,
                    shuffle=self.shuffle, compose_shuffles=True, verbose=print_progress, resume=resume,
                    validation_data=validation_data, callbacks=callbacks, early_stopping=early_stopping,
                    accumulate=accumulate, steps=steps, eval_every=eval_every, distributed=distributed)
        return self

    @property
    def cost_(self) -> list:
        """Every minibatch's cost of the last fit (Python floats), as the book's cost_."""
        return self.state.batch_losses

    @property
    def model(self) -> "NeuralNetMLP":
        """Deprecated: NeuralNetMLP is a Sequential now; use the object itself."""
        warnings.warn("NeuralNetMLP.model is deprecated: NeuralNetMLP is a Sequential, use it directly",
                      DeprecationWarning, stacklevel=2)
        return self

    def _book_layout(self, i: int) -> np.ndarray:
        p = self.state.params
        to_np = self.bk.to_numpy
        w, b = to_np(p[param_key(i, "weight")]), to_np(p[param_key(i, "bias")])
        return np.concatenate([b[:, None], w], axis=1).astype(np.float64)

    def _set_book_layout(self, i: int, value) -> None:
        w = np.asarray(value, dtype=np.float64)
        shape = tuple(self.state.params[param_key(i, "weight")].shape)
        if w.shape != (shape[0], shape[1] + 1):
            raise InputError(f"w{i // 2 + 1} must have shape {(shape[0], shape[1] + 1)} (bias in column 0), got {w.shape}")
        self.set_parameters({param_key(i, "weight"): w[:, 1:], param_key(i, "bias"): w[:, 0]})

    w1 = _book_weights(0, "(n_hidden, n_features + 1)")
    w2 = _book_weights(2, "(n_output, n_hidden + 1)")

    @property
    def eta(self) -> float:
        """The current (decayed) learning rate."""
        return self.state.lr

    @eta.setter
    def eta(self, value: float) -> None:
        self.state.lr = float(value)

    def __repr__(self) -> str:
        return (f"NeuralNetMLP(n_output={self.n_output}, n_features={self.n_features}, n_hidden={self.n_hidden}, "
                f"l1={self.l1}, l2={self.l2}, epochs={self.epochs}, eta={self.eta}, alpha={self.alpha}, "
                f"decrease_const={self.decrease_const}, minibatches={self.minibatches}, "
                f"backend={self.bk.name!r}, dtype={self.dtype_name!r})")
