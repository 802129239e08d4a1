"""Sequential: a stack of layers, a fused loss, a penalty and an optimizer on one backend and dtype."""
from __future__ import annotations

from .backend import backend as select_backend
from .backend import is_host
from .init import host_rng
from .layers import Dense
from .losses import LOSSES, Loss
from .optimizers import OPTIMIZERS, Optimizer
from .penalties import Penalty
from .schedules import SCHEDULES, Constant
from .validation import InputError, check_labels, check_X, foreign_array_error


def resolve(value, registry: dict, what: str, **kwargs):
    """A registry name (or an instance) -> an instance; unknown names list the valid ones."""
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        if key not in registry:
            raise InputError(f"unknown {what} {value!r}; choose one of: {', '.join(registry)}")
        return registry[key](**kwargs)
    return value


class Sequential:
    """Layers applied in order to x: (batch, features); the last layer gives the logits (batch, outputs)."""

    def __init__(self, layers, loss="softmax_cross_entropy", optimizer="sgd", l1: float = 0.0, l2: float = 0.0,
                 penalty: Penalty | None = None, schedule=None, backend=None, device=None, dtype: str = "float32",
                 seed=None, rng=None):
        self.layers = list(layers)
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        if not dense:
            raise InputError("a Sequential model needs at least one Dense layer, e.g. [Dense(784, 10)]")
        self.bk = select_backend(backend, device)
        self.xp = self.bk.xp
        self.dtype_name = dtype
        self.dtype = self.bk.dtype(dtype)
        self.rng = rng if rng is not None else host_rng(seed)
        n = self.n_features = dense[0].in_features
        for layer in self.layers:
            n = layer.build(self.bk, self.dtype, self.rng, n)
        self.n_outputs = n
        self._refs = [(f"layers.{i}.{key}", layer, key)
                      for i, layer in enumerate(self.layers) for key in layer.params]
        self._weights = [(layer, key) for _, layer, key in self._refs if key == "weight"]
        self.loss: Loss = resolve(loss, LOSSES, "loss").build(self.xp)
        self.optimizer: Optimizer = resolve(optimizer, OPTIMIZERS, "optimizer").build(self.xp, self.bk.mutable)
        self.penalty = penalty if penalty is not None else Penalty(l1, l2)
        self.schedule = resolve(schedule, SCHEDULES, "schedule") if schedule is not None else Constant()
        self.history_: dict = {}

    def __repr__(self) -> str:
        body = ", ".join(map(repr, self.layers))
        return (f"Sequential([{body}], loss={self.loss!r}, optimizer={self.optimizer!r}, {self.penalty!r}, "
                f"backend={self.bk.name!r}, device={self.bk.device!r}, dtype={self.dtype_name!r})")

    # parameters ---------------------------------------------------------------------------------
    def parameters(self) -> dict:
        """{'layers.0.weight': array, ...} in layer order."""
        return {name: layer.params[key] for name, layer, key in self._refs}

    def gradients(self) -> dict:
        return {name: layer.grads[key] for name, layer, key in self._refs}

    def set_parameters(self, params: dict) -> None:
        """Replace parameters by name with copies (training may update them in place), moved to this
        backend and cast to its dtype."""
        for name, layer, key in self._refs:
            if name in params:
                value = params[name]
                if is_host(value) or not self.bk.owns(value):
                    value = self.bk.asarray(value, dtype=self.dtype, copy=True)
                else:
                    value = self.xp.asarray(value, dtype=self.dtype, copy=True)
                layer.params[key] = value

    def get_state(self) -> dict:
        """Everything a training step depends on, as host NumPy arrays and Python numbers."""
        to_np = lambda a: self.bk.to_numpy(a, copy=True)  # noqa: E731 (a snapshot, not a view)
        return {
            "params": {k: to_np(v) for k, v in self.parameters().items()},
            "optimizer": {k: {b: to_np(v) for b, v in bufs.items()} for k, bufs in self.optimizer.state.items()},
            "lr": self.optimizer.lr,
            "t": self.optimizer.t,
        }

    def set_state(self, state: dict) -> None:
        self.set_parameters(state["params"])
        put = lambda v: self.bk.asarray(v, dtype=self.dtype, copy=True)  # noqa: E731
        self.optimizer.state = {k: {b: put(v) for b, v in bufs.items()} for k, bufs in state["optimizer"].items()}
        self.optimizer.lr, self.optimizer.t = state["lr"], state["t"]

    # computation --------------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """x: (batch, features) -> (logits (batch, outputs), backward)."""
        backs = []
        for i, layer in enumerate(self.layers):
            x, back = layer.forward(x, training, need_dx=i > 0)
            backs.append(back)

        def backward(dy):
            for back in reversed(backs):
                dy = back(dy)
            return dy

        return x, backward

    def penalty_cost(self):
        return self.penalty.cost(self.xp, [layer.params[key] for layer, key in self._weights]) if self.penalty else 0.0

    def objective(self, x, y, training: bool = False):
        """Loss plus penalty for x: (batch, features), y: (batch, outputs); no gradients."""
        z, _ = self.forward(x, training)
        return self.loss(z, y)[0] + self.penalty_cost()

    def loss_and_grads(self, x, y, training: bool = True):
        """Loss plus penalty; records every parameter's gradient. Returns (value, logits)."""
        z, backward = self.forward(x, training)
        value, dz = self.loss(z, y)
        backward(dz)
        if self.penalty:
            value = value + self.penalty_cost()
            for layer, key in self._weights:
                layer.grads[key] = self.penalty.add_grad(self.xp, layer.grads[key], layer.params[key])
        return value, z

    def train_step(self, x, y):
        """One optimizer step on a minibatch; returns (loss value, logits) as device arrays."""
        value, z = self.loss_and_grads(x, y)
        new = self.optimizer.step(self.parameters(), self.gradients())
        for (name, layer, key) in self._refs:  # the optimizer's own arrays: no checks needed
            layer.params[key] = new[name]
        return value, z

    # data -----------------------------------------------------------------------------------------
    def as_input(self, X, name: str = "X", keep_integers: bool = False):
        """Host or backend data -> validated backend array (batch, features) in the model's dtype.

        keep_integers: integer data (raw uint8 pixels) stays integer on the device, 8x smaller than
        float64; `cast` converts each minibatch after it is gathered."""
        if not is_host(X) and self.bk.owns(X):
            if X.ndim != 2 or X.shape[1] != self.n_features:
                raise InputError(f"{name} must have shape (samples, {self.n_features}), got {tuple(X.shape)}")
            if not (keep_integers and self.xp.isdtype(X.dtype, "integral")):
                if not bool(self.xp.all(self.xp.isfinite(X))):
                    raise InputError(f"{name} contains NaN or infinity; remove or impute those values")
                return self.cast(X)
            return X
        if _is_foreign(X):
            raise foreign_array_error(X, self.bk, name)
        host = check_X(X, self.n_features, name)
        if keep_integers and host.dtype.kind in "ui":
            return self.bk.asarray(host)
        return self.bk.asarray(host, dtype=self.dtype)

    def cast(self, x):
        """x in the model's dtype (a no-op when it already is)."""
        return x if x.dtype == self.dtype else self.xp.astype(x, self.dtype)

    def as_targets(self, y, n: int, name: str = "y"):
        """Class labels -> (one-hot targets (n, outputs), labels) on the backend."""
        if not is_host(y) and self.bk.owns(y):
            y = self.bk.to_numpy(y)
        elif _is_foreign(y):
            raise foreign_array_error(y, self.bk, name)
        labels = check_labels(y, n, self.n_outputs, name)
        xp = self.xp
        lab = self.bk.asarray(labels)
        onehot = xp.astype(xp.reshape(lab, (n, 1)) == xp.reshape(xp.arange(self.n_outputs, device=self.bk.native_device),
                                                                   (1, self.n_outputs)), self.dtype)
        return onehot, lab

    # inference ------------------------------------------------------------------------------------
    def _outputs(self, X, proba: bool, batch_size: int):
        xp = self.xp
        host = is_host(X) or not self.bk.owns(X)
        Xd = self.as_input(X, keep_integers=True)
        chunks = []
        n = Xd.shape[0]
        for s in range(0, n, batch_size):
            z, _ = self.forward(self.cast(Xd[s:min(s + batch_size, n), ...]))
            chunks.append(self.loss.activation(xp, z) if proba else xp.argmax(z, axis=1))
        out = chunks[0] if len(chunks) == 1 else xp.concat(chunks, axis=0)
        return self.bk.to_numpy(out) if host else out

    def predict(self, X, batch_size: int = 8192):
        """Class labels (argmax of the logits), NumPy for host input, else a backend array."""
        return self._outputs(X, False, batch_size)

    def predict_proba(self, X, batch_size: int = 8192):
        """Output activations: softmax or sigmoid probabilities (batch, outputs)."""
        return self._outputs(X, True, batch_size)

    def score(self, X, y) -> float:
        """Accuracy as a fraction 0-1."""
        pred = self.bk.to_numpy(self.predict(X))
        labels = check_labels(y if is_host(y) else self.bk.to_numpy(y), pred.shape[0], self.n_outputs)
        return float((pred == labels).mean())

    def save(self, path, **extra):
        """One safetensors checkpoint (see xpnet.checkpoint); xpnet.load(path, backend=, device=) reads it."""
        from .checkpoint import save  # noqa: PLC0415 (safetensors is only needed here)
        return save(self, path, extra=extra or None)

    def fit(self, X, y, **kwargs) -> "Sequential":
        """Train on X: (samples, features), y: integer labels (samples,). See xpnet.training.fit for options."""
        from .training import fit  # noqa: PLC0415 (training imports model helpers)
        fit(self, X, y, **kwargs)
        return self


def _is_foreign(a) -> bool:
    """An array of another array library (not NumPy, not a Python sequence)."""
    mod = type(a).__module__.split(".")[0]
    return mod in ("cupy", "torch", "jax", "jaxlib", "array_api_strict", "dask", "sparse")
