"""Network: layers, a fused loss, a penalty, an optimizer and a schedule on one backend and dtype, with
its training state in `model.state` (a TrainState), and the pure training step. No data checks, labels,
input scaling, inference batching, files or fit loop: those are the estimator face, `Sequential`
(models/sequential.py), which is a Network.

One training step is two pure pieces and an update of the state:

    value, logits, grads = net.value_and_grads(x, y, noise=net.draw_noise(len(x)))   # nothing changes
    net.apply_gradients(grads)      # optimizer.apply(params, grads, opt_state, hyper) -> new state

Between them is where gradients can be accumulated or all-reduced; `train_step` does both. x: (batch,
*input_shape) arrays of the backend, y: (batch, outputs) targets (one-hot rows for class labels), or integer
class indices (batch,) with indices=True (xpnet.losses has the rule); weight=: per-sample weights (batch,).
"""
from __future__ import annotations

import math

from ..backend import backend as select_backend
from ..backend import placement
from ..errors import InputError
from ..init import host_rng, rng_kind
from ..layers.base import layer_path, param_key
from ..layers.combinators import as_layer as _as_layer, deserialize_layers, index_children, serialize_layers, walk
from ..losses import Loss, for_loss
from ..optimizers import Optimizer
from ..precision import LossScale, narrow_to, resolve as resolve_precision, widen
from ..penalties import Penalty
from ..registry import Configurable, deserialize, resolve, serialize
from ..schedules import Constant
from ..training.batches import batch_bounds
from ..training.state import TrainState


_NO_PARAMS: dict = {}  # what a layer without parameters gets (shared; layers never write to their params)


def _infer_input_shape(layers) -> tuple | None:
    """The input shape the first size-aware layer declares, when only elementwise layers come before it."""
    for layer in layers:
        if layer.declared_input_shape is not None:
            return tuple(layer.declared_input_shape)
        if not layer.elementwise:
            return None
    return None


def micro_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """(start, stop) of k micro-batches of n rows, split as numpy.array_split does (at most n of them)."""
    return batch_bounds(n, minibatches=min(k, n))


# Network's cold parts: construction, config, state snapshots and the refusal of wrong targets run once per
# model or call, never inside a training step's array work; the step itself reads as methods of Network.

def _as_layers(layers, owner: str) -> list:
    """Network(layers=...) as a list of layer instances (`_as_layer` each); refused in one line when it is not
    a non-empty list."""
    if isinstance(layers, (str, dict)) or not hasattr(layers, "__iter__"):
        raise InputError(f"layers must be a list of layers, e.g. [Dense(784, 100), \"relu\", Dense(100, 10)], "
                         f"got {type(layers).__name__} {layers!r:.60}")
    layers = [_as_layer(layer, i) for i, layer in enumerate(layers)]
    if not layers:
        raise InputError(f"a {owner} model needs at least one layer, e.g. [Dense(784, 10)]")
    return layers


def _build_layers(layers: list, input_shape) -> tuple[tuple, tuple]:
    """(input_shape, output_shape) of one sample, after building each layer on its input's shape (input_shape:
    given, or the first layers' declared one); refused when it is unknown or the logits are neither 1-D
    (outputs,) per sample nor, for a sequence model (its first layer takes integer ids: Embedding), per
    position (time, outputs) (the loss, accuracy and metrics then run over the last axis, every position
    counting)."""
    shape = _infer_input_shape(layers) if input_shape is None else tuple(int(s) for s in input_shape)
    if shape is None:
        raise InputError(f"the first layer ({type(layers[0]).__name__}) does not say its input size; pass "
                         f"input_shape= (one sample's shape, e.g. input_shape=(1, 28, 28)) or start with "
                         f"Dense(in_features, out_features)")
    input_shape = shape
    for layer in layers:
        shape = tuple(layer.build(shape))
    sequence = bool(getattr(layers[0], "integer_input", False))  # token ids in: logits per position allowed
    if len(shape) != 1 and not (sequence and len(shape) == 2):
        raise InputError(f"the last layer gives outputs of shape {shape} per sample; a model's logits must be "
                         f"1-D (outputs,), or (time, outputs) per position for a sequence model (one starting "
                         f"with Embedding): end with Flatten() and Dense(..., n_classes)")
    return input_shape, shape


def _layer_index(layers: list) -> tuple:
    """(keys, penalized, noisy, state_keys) of built layers: per layer [(local name, "layers.<i>.<name>")] of its
    parameters, the keys of the penalized parameters, the indices of layers drawing noise, per layer the
    [(local, key)] of its non-trained state. A layer instance used twice (here or inside a combinator) has one
    key, its first use's (`index_children`)."""
    named = list(enumerate(layers))
    keys = index_children(named, "param", param_key)[0]
    state_keys = index_children(named, "state", param_key)[0]
    penalized = list(dict.fromkeys(full for layer, pairs in zip(layers, keys) for local, full in pairs
                                   if local in layer.penalized))
    noisy = [i for i, layer in enumerate(layers) if layer.noise_shape(1) is not None]
    return keys, penalized, noisy, state_keys


def _initial_state(net, rng) -> TrainState:
    """A new model's TrainState: each layer's parameters drawn from `rng` (the host RNG) and its state
    initialized, on net's device in its dtype, the optimizer's buffers (zeros) and learning rate."""
    params = {}
    asarray = lambda a: net.bk.asarray(a, dtype=net.dtype)  # noqa: E731
    with net.bk:  # the model's device is current while anything of the model is made or computed
        for layer, keys in zip(net.layers, net._keys):
            if any(full not in params for _, full in keys):  # a shared layer's parameters are drawn once
                full = dict(keys)
                for local, value in layer.init_params(rng, asarray).items():
                    params.setdefault(full[local], value)
        opt_state = net.optimizer.init(params)
        layer_state = {}
        for layer, keys in zip(net.layers, net._state_keys):
            if keys:
                full = dict(keys)
                layer_state.update({full[local]: value for local, value in layer.init_state(asarray).items()})
    return TrainState(params=params, opt_state=opt_state, rng=rng, lr=net.optimizer.lr, layer_state=layer_state)


def _from_config(cls, config: dict, backend, device, dtype, overrides: dict):
    """Network.from_config: the config's loss, optimizer, penalty, schedule and layers deserialized."""
    config = dict(config, **overrides)
    for key, kind in (("loss", "loss"), ("optimizer", "optimizer"), ("penalty", "penalty"),
                      ("schedule", "schedule")):
        if isinstance(config.get(key), dict):
            config[key] = deserialize(config[key], kind)
    layers = deserialize_layers(list(enumerate(config.pop("layers"))), root=("layers",))
    if dtype is not None:
        config["dtype"] = dtype
    return cls(layers, backend=backend, device=device, **config)


def _set_parameters(net, params: dict) -> None:
    """Network.set_parameters: each value copied onto net's backend in its dtype, checked by name and shape."""
    current = net.state.params
    for name, value in params.items():
        if name not in current:
            raise InputError(f"no parameter {name!r} in this model; it has {', '.join(current)}")
        if placement(value, net.bk) != "device":
            value = net.bk.asarray(value, dtype=net.dtype, copy=True)
        else:
            value = net.xp.asarray(value, dtype=net.dtype, copy=True)
        if tuple(value.shape) != tuple(current[name].shape):
            raise InputError(f"parameter {name} has shape {tuple(current[name].shape)}, got {tuple(value.shape)}")
        current[name] = value


def _get_state(net) -> dict:
    """Network.get_state: params, opt_state, layer_state as host copies, lr and step."""
    to_np = lambda a: net.bk.to_numpy(a, copy=True)  # noqa: E731
    st = net.state
    return {"params": {k: to_np(v) for k, v in st.params.items()},
            "opt_state": {k: {b: to_np(v) for b, v in bufs.items()} for k, bufs in st.opt_state.items()},
            "layer_state": {k: to_np(v) for k, v in st.layer_state.items()}, "lr": st.lr, "step": st.step}


def _set_state(net, snapshot: dict) -> None:
    """Network.set_state: a _get_state snapshot copied back onto net's backend."""
    net.set_parameters(snapshot["params"])
    put = lambda v: net.bk.asarray(v, dtype=net.dtype, copy=True)  # noqa: E731
    net.state.opt_state = {k: {b: put(v) for b, v in bufs.items()} for k, bufs in snapshot["opt_state"].items()}
    if "layer_state" in snapshot:
        net.state.layer_state = {k: put(v) for k, v in snapshot["layer_state"].items()}
    net.state.lr, net.state.step = snapshot["lr"], snapshot["step"]


def _make_native_rng(net):
    """Network.native_rng's generator, made on net's device: seeded from net.seed, else from the host RNG."""
    seed = net.seed if isinstance(net.seed, int) else int(net.state.rng.random() * 2 ** 31)
    with net.bk:
        return net.bk.make_native_rng(seed)


def _check_targets_in_general(x, y, output_shape: tuple, owner: str) -> None:
    """Network.check_targets past its fast path: any floating (batch, *output_shape) targets pass; anything else
    is refused in one line that says what came (class labels, another shape) and how to make targets."""
    shape, dtype = getattr(y, "shape", None), getattr(y, "dtype", None)
    want = (int(x.shape[0]), *output_shape)
    if shape is not None and tuple(shape) == want and "float" in str(dtype):
        return
    if shape is None:
        got = f"a {type(y).__name__}"
    elif len(shape) == 1 and "float" not in str(dtype):
        got = f"class labels of shape {tuple(shape)} ({dtype})"
    else:
        got = f"shape {tuple(shape)} ({dtype})"
    named = "(batch, outputs)" if len(want) == 2 else "(batch, time, outputs)"
    raise InputError(f"{owner}: y must be targets of shape {named} = {want} in a floating dtype (one-hot "
                     f"rows for class labels), got {got}; make them from labels with "
                     f"yb, _ = model.as_targets(labels, len(labels)), or pass integer class indices {want[:-1]} "
                     f"with indices=True")


class Network(Configurable):
    """Layers applied in order to x: (batch, *input_shape); the last layer gives the logits (batch, outputs).

    input_shape: the shape of one sample (batch excluded); by default the first layer's declared input
    (Dense(784, 100) -> (784,)). rng: a NumPy generator, or "Generator" (default_rng(seed), the default) or
    "RandomState" (the legacy stream of the book's code) to make one from `seed`.

    The network and its pure step, usable alone (e.g. in one's own loop) and not registered: `Sequential`,
    the registered model that saves, predicts and fits, is a Network with the estimator face added."""

    kind = "model"

    def __init__(self, layers, loss="softmax_cross_entropy", optimizer="sgd", l1: float = 0.0, l2: float = 0.0,
                 penalty: Penalty | None = None, schedule=None, backend=None, device=None, dtype: str = "float32",
                 seed=None, rng=None, input_shape=None, compile: bool = False, native_kernels: bool | None = None,
                 precision=None):
        self.layers = _as_layers(layers, type(self).__name__)
        self.bk = select_backend(backend, device)
        self.xp = self.bk.xp
        self.dtype_name = dtype
        self.dtype = self.bk.dtype(dtype)
        # mixed precision (xpnet.precision): None, or the policy whose compute dtype the step runs in; the
        # parameters, optimizer and layer state stay in `dtype` (the master dtype)
        self.precision = resolve_precision(precision, self.bk, self.dtype)
        self.compute_dtype = self.dtype if self.precision is None else self.bk.compute_dtype(self.precision.compute)
        self.seed = seed
        self.input_shape, self.output_shape = _build_layers(self.layers, input_shape)
        # token ids (Embedding first) stay integer on every path: `cast` leaves them as they are
        self.integer_input = bool(getattr(self.layers[0], "integer_input", False))
        self.loss: Loss = resolve(loss, "loss")
        self.optimizer: Optimizer = resolve(optimizer, "optimizer")
        self.penalty = penalty if penalty is not None else Penalty(l1, l2)
        self.schedule = resolve(schedule, "schedule") if schedule is not None else Constant()
        self.inplace = self.bk.mutable
        self.compile = bool(compile)
        if self.compile and not self.bk.compiles:
            self.bk.compile(lambda: None)  # raises: names the backends that compile
        self._compiled_step = None
        self.native_kernels = native_kernels  # a run option, not configuration (the property below)
        self.compile_traces_ = 0  # how many times the compiled step was traced (a new batch shape traces once)
        if isinstance(rng, str) or rng is None:
            rng = host_rng(seed, rng or "Generator")
        self._keys, self._penalized, self._noisy, self._state_keys = _layer_index(self.layers)
        self.state = _initial_state(self, rng)
        if self.precision is not None and self.precision.scaling:
            with self.bk:
                self.state.loss_scale = LossScale.initial(self.bk, self.precision)

    # config -----------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture and hyperparameters as JSON-able data (backend and device are run options)."""
        config = {"layers": serialize_layers(list(enumerate(self.layers)), root=("layers",)),
                  "loss": serialize(self.loss),
                  "optimizer": serialize(self.optimizer), "penalty": serialize(self.penalty),
                  "schedule": serialize(self.schedule), "dtype": self.dtype_name, "seed": self.seed,
                  "rng": rng_kind(self.state.rng), "input_shape": list(self.input_shape)}
        if self.precision is not None:
            config["precision"] = self.precision.to_config()
        return config

    @classmethod
    def from_config(cls, config: dict, backend=None, device=None, dtype=None, **overrides):
        """The model of a get_config() config (overrides replace its entries), on `backend` and `device`."""
        return _from_config(cls, config, backend, device, dtype, overrides)

    def __repr__(self) -> str:
        body = ", ".join(map(repr, self.layers))
        return (f"{type(self).__name__}([{body}], loss={self.loss!r}, optimizer={self.optimizer!r}, {self.penalty!r}, "
                f"backend={self.bk.name!r}, device={self.bk.device!r}, dtype={self.dtype_name!r})")

    @property
    def native_kernels(self) -> bool:
        """Whether the layers run the backend's native kernels where it has them (`Backend.kernels`: convolution
        and pooling on torch and JAX) rather than their array-API reference. A run option, set by the constructor's
        native_kernels= (None: True unless the environment variable XPNET_NATIVE_KERNELS is 0) or assigned before
        a step; it is not saved with the model."""
        return self._native_kernels

    @native_kernels.setter
    def native_kernels(self, value) -> None:
        from ..backend import native_kernels_default
        if value is not None and not isinstance(value, bool):
            raise InputError(f"native_kernels must be True, False or None (XPNET_NATIVE_KERNELS decides), got "
                             f"{type(value).__name__} {value!r:.40}")
        self._native_kernels = native_kernels_default() if value is None else value
        self.kernels = self.bk.kernels if self._native_kernels else None
        self._kernel_users = {i for i, layer in enumerate(self.layers) if layer.kernel_names}
        self._compiled_step = None  # a compiled step traced the other path

    def kernels_used(self) -> dict:
        """{"layers.<i>": kernel name} of the native kernels this model's layers run (empty with
        native_kernels=False, or on a backend without kernels)."""
        if self.kernels is None:
            return {}
        return {layer_path((i, *path)): name for i in sorted(self._kernel_users)
                for path, layer in walk(self.layers[i]) if not layer.sublayers()
                for name in layer.kernel_names if getattr(self.kernels, name, None) is not None}

    @property
    def n_features(self) -> int:
        """Values per sample (the product of input_shape)."""
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """Outputs (classes, or the vocabulary) per sample or, for a sequence model, per position."""
        return self.output_shape[-1]

    @property
    def target_shape(self) -> tuple:
        """The shape of one sample's integer class indices: () for (outputs,) logits, (time,) for a sequence
        model's (time, outputs) logits."""
        return tuple(self.output_shape[:-1])

    @property
    def positions(self) -> int:
        """Predictions per sample: 1, or a sequence model's time steps. Accuracy counts every position: the
        loop's correct count is divided by this, so correct / samples is the fraction of positions right."""
        return math.prod(self.output_shape[:-1])

    def summary(self, show: bool = True):
        """Each layer's name, type, output shape and parameter count, the total parameters and bytes, and the
        FLOPs of one sample (forward, training step) as torch.utils.flop_counter counts them (matmuls and
        convolutions, 2 per multiply-add; xpnet.models.summary). Printed when `show`; returned as a
        ModelSummary (str(): the table, .to_dict(): the same as data)."""
        from .summary import summarize
        result = summarize(self)
        if show:
            print(result.text(), flush=True)
        return result

    # parameters and state ---------------------------------------------------------------------------
    def parameters(self) -> dict:
        """{'layers.0.weight': array, ...} in layer order (the state's arrays, not copies)."""
        return dict(self.state.params)

    def set_parameters(self, params: dict) -> None:
        """Replace parameters by name with copies (training may update them in place), moved to this
        backend and cast to its dtype."""
        _set_parameters(self, params)

    def reset_optimizer(self) -> None:
        """Zero the optimizer's buffers and its update count (the learning rate is kept)."""
        self.state.opt_state = self.optimizer.init(self.state.params)
        self.state.step = 0

    def get_state(self) -> dict:
        """What a training step depends on, as host NumPy arrays and Python numbers (a snapshot)."""
        return _get_state(self)

    def set_state(self, snapshot: dict) -> None:
        """Put a get_state() snapshot back (copied onto this backend)."""
        _set_state(self, snapshot)

    @property
    def has_noise(self) -> bool:
        """Whether a layer draws random inputs while training (Dropout): `draw_noise` gives None otherwise."""
        return bool(self._noisy)

    @property
    def has_layer_state(self) -> bool:
        """Whether a layer keeps non-trained state (BatchNorm's running statistics)."""
        return any(self._state_keys)

    # computation ------------------------------------------------------------------------------------
    def layer_params(self, params: dict, i: int) -> dict:
        """Layer i's parameters {local name: array} out of the model's flat {"layers.<i>.<name>": array}."""
        return {local: params[full] for local, full in self._keys[i]}

    def forward(self, x, training: bool = False, params: dict | None = None, noise: list | None = None,
                layer_state: dict | None = None):
        """x: (batch, *input_shape) -> (logits (batch, outputs), backward); backward(dz) -> (dx, grads).
        layer_state: the layers' non-trained state to use (default the model's; see `forward_with_state`)."""
        z, backward, _ = self.forward_with_state(x, training, params, noise, layer_state)
        return z, backward

    def forward_with_state(self, x, training: bool = False, params: dict | None = None, noise: list | None = None,
                           layer_state: dict | None = None):
        """forward, plus the layer state after it: (logits, backward, new layer_state). Training forwards give
        the updated running statistics; otherwise the state comes back as it went in. Pure: nothing changes."""
        params = self.state.params if params is None else params
        layer_state = self.state.layer_state if layer_state is None else layer_state
        new_state = dict(layer_state)
        backs = []
        kernels, kernel_users = self.kernels, self._kernel_users
        # no layer needs its input's gradient until one with parameters has come: the first layer's dx is never
        # used, nor that of a layer after parameterless ones (the conv after RandomCrop, RandomFlip)
        need_dx = False
        for i, (layer, keys) in enumerate(zip(self.layers, self._keys)):
            p = {local: params[full] for local, full in keys} if keys else _NO_PARAMS
            skeys = self._state_keys[i]
            if skeys:
                s = {local: layer_state[full] for local, full in skeys}
                # the layer's next state comes with its output (a combinator's: its children's)
                x, back, s = layer.forward_with_state(p, x, training, need_dx, None if noise is None else noise[i],
                                                      s, kernels if i in kernel_users else None)
                if training:
                    new_state.update({full: s[local] for local, full in skeys})
            elif i in kernel_users:
                x, back = layer.forward(p, x, training, need_dx, None if noise is None else noise[i], kernels=kernels)
            else:
                x, back = layer.forward(p, x, training, need_dx, None if noise is None else noise[i])
            backs.append(back)
            need_dx = need_dx or bool(keys)
        all_keys = self._keys

        def backward(dy):
            grads = {}
            for back, keys in zip(reversed(backs), reversed(all_keys)):
                if dy is None:  # a layer that needed no input gradient: the layers before it have no parameters
                    break
                dy, g = back(dy)
                for local, full in keys:  # summed where a shared layer's parameter comes again
                    grads[full] = grads[full] + g[local] if full in grads else g[local]
            return dy, grads

        return x, backward, new_state

    def draw_noise(self, batch: int) -> list | None:
        """The random inputs of one training step (U[0, 1) per layer that asks, e.g. Dropout), drawn from the
        model's host RNG in layer order, or None when no layer needs any."""
        if not self._noisy:
            return None
        noise = [None] * len(self.layers)
        for i in self._noisy:
            layer = self.layers[i]
            shape = layer.noise_shape(batch)
            if getattr(layer, "host_rng", True):
                # asynchronous where the library allows (torch CUDA: pinned memory, non_blocking), so the
                # host does not wait for the GPU every step
                noise[i] = self.bk.to_device_async(self.state.rng.random(shape), dtype=self.dtype)
            else:
                noise[i] = self.native_rng().uniform(shape, self.dtype)
        return noise

    def native_rng(self):
        """The backend's own generator on the model's device (for Dropout(host_rng=False)): made at the first
        use, seeded from the model's seed (or, with no seed, from the host RNG), kept in the TrainState and
        saved in checkpoints where the library can restore it (not CuPy's)."""
        st = self.state
        if st.native_rng is None:
            st.native_rng = _make_native_rng(self)
        return st.native_rng

    def penalty_cost(self, params: dict | None = None):
        params = self.state.params if params is None else params
        return self.penalty.cost(self.xp, [params[k] for k in self._penalized]) if self.penalty else 0.0

    def objective(self, x, y, training: bool = False, params: dict | None = None, noise=None, weight=None,
                  indices: bool = False):
        """Loss plus penalty for x: (batch, *input_shape), y: (batch, outputs) (or class indices (batch,) with
        indices=True), weight: per-sample weights (batch,) or None; no gradients."""
        self.check_targets(x, y, "objective", indices)
        z, _ = self.forward(x, training, params, noise)
        y = for_loss(self.loss, z, y)
        value = self.loss(z, y)[0] if weight is None else self.loss(z, y, None, weight)[0]
        return value + self.penalty_cost(params)

    def check_targets(self, x, y, owner: str = "value_and_grads", indices: bool = False) -> None:
        """The targets of the low-level calls (value_and_grads, train_step, objective) are what the loss takes
        (xpnet.losses): (batch, outputs) floating rows (one-hot for class labels, probabilities, or values),
        or with indices=True integer class indices (batch,) (`as_labels`; no one-hot is made for the data). A
        sequence model ((time, outputs) logits) takes (batch, time, outputs) rows or (batch, time) indices.
        Integer labels without indices=True are refused in one line (they used to broadcast against the
        logits: a wrong loss when batch == outputs), as is anything else. Shapes and dtypes only: nothing is
        read from the device (safe inside a compiled step)."""
        shape, dtype = getattr(y, "shape", None), getattr(y, "dtype", None)
        if indices:
            want = (x.shape[0], *self.output_shape[:-1])
            if shape is not None and tuple(shape) == want and self.xp.isdtype(dtype, "integral"):
                return
            raise InputError(f"{owner}(indices=True): y must be integer class indices of shape {want}, "
                             f"got {'a ' + type(y).__name__ if shape is None else f'shape {tuple(shape)} ({dtype})'}; "
                             f"make them from labels with model.as_labels(labels, len(labels))")
        # the common case first, cheaply (it runs every step: ~0.5 us, where the general test took 2.2 us)
        out = self.output_shape
        if shape is not None and len(shape) == 1 + len(out) and shape[-1] == out[-1] and shape[0] == x.shape[0] \
                and (len(out) == 1 or tuple(shape[1:]) == out) \
                and (dtype == self.dtype or dtype == self.xp.float32 or dtype == self.xp.float64):
            return
        _check_targets_in_general(x, y, out, owner)

    def _data_value_and_grads(self, params, x, y, noise, training, denom, layer_state=None, weight=None, scale=None):
        z, backward, new_state = self.forward_with_state(x, training, params, noise, layer_state)
        if self.precision is None:
            y = for_loss(self.loss, z, y)
            value, dz = self.loss(z, y, denom) if weight is None else self.loss(z, y, denom, weight)
            return value, z, backward(dz)[1], new_state
        # mixed precision: the loss is a float32 island (on widened logits); its gradient, times the loss scale
        # (float16), goes back in the compute dtype, and the gradients come back in the master dtype
        xp, z32 = self.xp, widen(self.xp, z)
        y = for_loss(self.loss, z32, y)
        value, dz = self.loss(z32, y, denom) if weight is None else self.loss(z32, y, denom, weight)
        if scale is not None:
            dz = dz * scale
        grads = backward(narrow_to(xp, dz, z.dtype))[1]
        return value, z, {k: narrow_to(xp, g, self.dtype) for k, g in grads.items()}, new_state

    def value_and_grads(self, x, y, params: dict | None = None, noise: list | None = None, training: bool = True,
                        accumulate: int = 1, denom: int | None = None, penalty: bool = True,
                        layer_state: dict | None = None, with_state: bool = False, weight=None,
                        indices: bool = False, loss_scale=None):
        """(loss + penalty, logits, grads) for one minibatch; pure: nothing on the model changes.

        params: default the state's. noise: draw_noise(batch) when a layer needs random inputs. accumulate=k
        computes the minibatch as k micro-batches (rows split as numpy.array_split does) and sums their
        gradients: the same result up to summation order, in 1/k of the activation memory. denom: the number
        of positions a mean loss divides by (default the batch's: samples times `positions`). The penalty is
        added once, at the end; penalty=False leaves it out (data-parallel training adds it once, after the all-reduce:
        `add_penalty`).

        Layer state (BatchNorm's running statistics): taken from `layer_state` (default the model's); with
        with_state=True the result is (value, logits, grads, new layer_state) (each micro-batch of accumulate=k
        updates the statistics in turn, as k forwards do in PyTorch); `apply_gradients(grads, layer_state)`
        stores it. train_step does both.

        Targets (xpnet.losses): y (batch, outputs) floating rows, or with indices=True integer class indices
        (batch,). weight: per-sample weights (batch,) (class weights looked up by label times sample weights):
        a mean then divides by their sum (denom, when given, is the whole minibatch's sum).

        Mixed precision (precision=, xpnet.precision): the forward and backward run on compute-dtype copies of
        the parameters and x; the loss is computed in float32; the gradients come back in the master dtype,
        summed there over micro-batches, divided by the loss scale (float16: loss_scale, a device scalar,
        default the state's) before the penalty is added. Logits come in the compute dtype."""
        self.check_targets(x, y, "value_and_grads", indices)
        params = self.state.params if params is None else params
        layer_state = self.state.layer_state if layer_state is None else layer_state
        master, scale = params, None
        if self.precision is not None:
            xp = self.xp
            params = self.precision.cast_params(xp, params, self.compute_dtype)
            if not self.integer_input:
                x = narrow_to(xp, x, self.compute_dtype)
            if self.precision.scaling:
                scale = self.state.loss_scale["scale"] if loss_scale is None else loss_scale
        if accumulate == 1:
            value, z, grads, layer_state = self._data_value_and_grads(params, x, y, noise, training, denom,
                                                                      layer_state, weight, scale)
        else:
            n = x.shape[0]
            if denom is None:  # the whole minibatch's positions, so the micro-batches' means add up to its mean
                denom = n * self.positions if weight is None or self.loss.reduction == "sum" else self.xp.sum(weight)
            value, grads, zs = None, None, []
            for s, e in micro_bounds(n, accumulate):
                part = None if noise is None else [None if a is None else a[s:e, ...] for a in noise]
                v, z_part, g, layer_state = self._data_value_and_grads(params, x[s:e, ...], y[s:e, ...], part,
                                                                       training, denom, layer_state,
                                                                       None if weight is None else weight[s:e],
                                                                       scale)
                zs.append(z_part)
                if grads is None:
                    value, grads = v, g
                    continue
                value = value + v
                if self.inplace:
                    for k in grads:
                        grads[k] += g[k]
                else:
                    grads = {k: grads[k] + g[k] for k in grads}
            z = zs[0] if len(zs) == 1 else self.xp.concat(zs, axis=0)
        if scale is not None:  # unscaled in the master dtype (a non-finite entry stays non-finite)
            grads = LossScale.unscale(grads, scale)
        if penalty:
            value, grads = self.add_penalty(value, grads, master)
        if with_state:
            return value, z, grads, layer_state
        return value, z, grads

    def add_penalty(self, value, grads: dict, params: dict | None = None):
        """(value + penalty cost, grads + penalty gradients) for the data loss `value` and its gradients
        (the dict is updated and returned); unchanged when the model has no penalty."""
        if self.penalty:
            params = self.state.params if params is None else params
            value = value + self.penalty_cost(params)
            for k in self._penalized:
                grads[k] = self.penalty.add_grad(self.xp, grads[k], params[k])
        return value, grads

    _plan = None  # the UpdatePlan (update_plan), made at the first update

    def update_plan(self):
        """The optimizer's UpdatePlan for this model's parameter kinds and schedule (xpnet.optimizers): per-step
        rate, clipping, parameter groups; remade when the optimizer or schedule is replaced."""
        plan = self._plan
        if plan is None or plan.optimizer is not self.optimizer or plan.schedule is not self.schedule:
            from ..groups import layer_param_kinds
            kinds = {full: layer_param_kinds(layer)[local] for layer, keys in zip(self.layers, self._keys)
                     for local, full in keys}
            plan = self._plan = self.optimizer.plan(kinds, self.schedule)
        return plan

    def update_hyper(self, lr: float, t: int) -> tuple[float, dict]:
        """(rate, host scalars) of update t (1-based) at rate lr: a per-step schedule's rate for t, the
        optimizer's `hyper` (per parameter group) and the clip thresholds; what the compiled step takes."""
        plan = self.update_plan()
        if plan.plain:
            return lr, self.optimizer.hyper(lr, t)
        lr = plan.rate(lr, t)
        return lr, plan.hyper(lr, t)

    def apply_gradients(self, grads: dict, layer_state: dict | None = None) -> None:
        """One optimizer update of the state: step + 1, the scalars for it computed on the host; layer_state
        (value_and_grads(..., with_state=True)'s) replaces the layers' running statistics. With clipping
        (the optimizer's clip_norm/clip_value), the gradients are clipped here, as they come (the penalty's
        gradient included); state.grad_norm is then the global norm before clipping (clip_norm)."""
        st = self.state
        if layer_state is not None:
            st.layer_state = dict(layer_state)
        st.step += 1
        plan = self.update_plan()
        if self.precision is not None and self.precision.scaling:
            _apply_scaled(self, plan, grads)
        elif plan.plain:  # no per-step schedule, clipping or groups: the update as it always was
            hyper = self.optimizer.hyper(st.lr, st.step)
            st.params, st.opt_state = self.optimizer.apply(st.params, grads, st.opt_state, hyper, self.inplace)
        else:
            st.lr = plan.rate(st.lr, st.step)
            hyper = plan.hyper(st.lr, st.step)
            st.params, st.opt_state, st.grad_norm = plan.apply(self.xp, st.params, grads, st.opt_state, hyper,
                                                               self.inplace)
        # kept until the next update replaces them, as PyTorch keeps .grad: for inspection (and the lifetime
        # gradient arrays had in 0.1.0)
        st.grads = grads

    def compiled_step(self):
        """The whole training step as one compiled call (compile=True; jax.jit): gather the minibatch's rows
        from the device-resident data, forward, loss, backward, penalty, optimizer update, argmax:

            params, opt_state, loss, predictions = step(params, opt_state, X, Y, idx, noise, hyper, accumulate)
            params, opt_state, loss, predictions, layer_state = step(..., accumulate, layer_state)  # with state

        `hyper` (update_hyper(lr, t)[1]: host floats, the clip thresholds among them) and `noise` (draw_noise)
        are arguments, so a new learning rate, step count or threshold does not retrace; a new minibatch size
        (the last short one) traces once more. With clip_norm the global norm before clipping comes last.
        With idx None, X and Y are the minibatch itself (gathered outside: `step_inputs`, or a batch feed's).
        Under float16 mixed precision the loss-scale state (TrainState.loss_scale) is the last argument,
        after W (None when unweighted), and its next value the last output."""
        if self._compiled_step is None:
            self._compiled_step = _compile_step(self)
        return self._compiled_step

    def step_inputs(self, X, Y, idx, W=None) -> tuple:
        """(X, Y, idx) for the compiled step from the device-resident data and a minibatch's device indices:
        as given where the backend gathers inside its compiled step (JAX), else the minibatch gathered here and
        idx None (torch: a CUDA graph would copy whole non-static inputs on every replay). With per-sample
        weights W (n,): (X, Y, idx, W), W gathered alike."""
        if self.bk.gathers_in_step:
            return (X, Y, idx) if W is None else (X, Y, idx, W)
        out = self.bk.take(X, idx), self.bk.take(Y, idx), None
        return out if W is None else out + (self.bk.take(W, idx),)

    def train_step(self, x, y, noise=None, accumulate: int = 1, weight=None, indices: bool = False):
        """One optimizer step on a minibatch (noise drawn here when not given); returns (loss, logits) as
        device arrays. y, weight, indices: as value_and_grads takes them."""
        if noise is None and self._noisy:
            noise = self.draw_noise(x.shape[0])
        value, z, grads, layer_state = self.value_and_grads(x, y, noise=noise, accumulate=accumulate, with_state=True,
                                                            weight=weight, indices=indices)
        self.apply_gradients(grads, layer_state if self.has_layer_state else None)
        return value, z

    def count_correct(self, pred, labels):
        """The correct predictions of a minibatch as a device scalar of the model's dtype: pred, labels integer
        (batch,) or, for a sequence model, (batch, time), every position compared and the count divided by
        `positions` (so that dividing by the samples gives the fraction of positions right)."""
        xp = self.xp
        correct = xp.sum(xp.astype(pred == labels, self.dtype))
        return correct if self.positions == 1 else correct / self.positions

    def cast(self, x):
        """A minibatch as the first layer takes it: x in the model's dtype (a no-op when it already is), or, for
        a model whose first layer takes integer token ids (`integer_input`: Embedding), x as it is (integer ids
        stay integer; a float x then reaches Embedding, which refuses it in one line)."""
        if self.integer_input:
            return x
        return x if x.dtype == self.dtype else self.xp.astype(x, self.dtype)


def _apply_scaled(net, plan, grads: dict) -> None:
    """apply_gradients under dynamic loss scaling (float16): the update computed out of place and kept only where
    every gradient is finite (else the parameters and optimizer state stay as they were), and the loss scale
    updated (xpnet.precision.LossScale); device work only, selected with where: no host read."""
    st, xp = net.state, net.xp
    finite = LossScale.all_finite(xp, grads)
    if plan.plain:
        hyper = net.optimizer.hyper(st.lr, st.step)
        params, opt_state = net.optimizer.apply(st.params, grads, st.opt_state, hyper, False)
    else:
        st.lr = plan.rate(st.lr, st.step)
        params, opt_state, st.grad_norm = plan.apply(xp, st.params, grads, st.opt_state, plan.hyper(st.lr, st.step),
                                                     False)
    st.params = LossScale.select(xp, finite, params, st.params)
    st.opt_state = LossScale.select(xp, finite, opt_state, st.opt_state)
    st.loss_scale = LossScale.update(xp, st.loss_scale, finite, net.precision.growth_interval)


def _compile_step(model):
    """The compiled training step of `model` (see Network.compiled_step): traced once per minibatch shape,
    counted in model.compile_traces_."""
    xp, opt, plan = model.xp, model.optimizer, model.update_plan()
    policy = model.precision
    scaling = policy is not None and policy.scaling

    def step(params, opt_state, X, Y, idx, noise, hyper, accumulate, layer_state=None, W=None, loss_scale=None):
        # Y: one-hot rows, or integer class indices (kept integer: only X is cast); W: per-sample weights or None
        if idx is None:
            xb, yb, wb = model.cast(X), Y, W
        else:
            xb, yb = model.cast(xp.take(X, idx, axis=0)), xp.take(Y, idx, axis=0)
            wb = None if W is None else xp.take(W, idx, axis=0)
        value, z, grads, new_state = model.value_and_grads(xb, yb, params=params, noise=noise,
                                                           accumulate=accumulate, layer_state=layer_state or {},
                                                           with_state=True, weight=wb,
                                                           indices=xp.isdtype(Y.dtype, "integral"),
                                                           loss_scale=loss_scale["scale"] if scaling else None)
        old_params, old_opt_state = params, opt_state
        if plan.plain:
            params, opt_state = opt.apply(params, grads, opt_state, hyper, False)
            norm = None
        else:
            params, opt_state, norm = plan.apply(xp, params, grads, opt_state, hyper, False)
        if scaling:  # float16: the update kept only where every gradient is finite (xpnet.precision.LossScale)
            finite = LossScale.all_finite(xp, grads)
            params = LossScale.select(xp, finite, params, old_params)
            opt_state = LossScale.select(xp, finite, opt_state, old_opt_state)
            loss_scale = LossScale.update(xp, loss_scale, finite, policy.growth_interval)
        out = (params, opt_state, value, xp.argmax(z, axis=-1))
        if layer_state is not None:
            out += (new_state,)
        out = out if norm is None else out + (norm,)
        return out + (loss_scale,) if scaling else out

    def traced():
        model.compile_traces_ += 1

    # accumulate is a Python int that shapes the trace (static)
    return model.bk.compile(step, donate_argnums=(0, 1), static_argnums=(7,), on_trace=traced)
