"""The layer protocol.

A layer is configuration and shapes, no arrays: its parameters live in the model's training state
(`model.state.params`, named "layers.<i>.<name>") and are passed in.

- `build(input_shape) -> output_shape`: shapes exclude the batch dimension; raises InputError when the
  input does not fit.
- `param_shapes() -> {name: shape}` and `init_params(rng, asarray) -> {name: array}`: parameters drawn
  from the model's host RNG (initializers get fan-in and fan-out computed from the shape).
- `penalized`: names of the parameters L1/L2 penalties apply to (Dense: the weight, never the bias).
- `param_kinds() -> {name: kind}`: what each parameter is ("weight", "bias", "norm", "embedding";
  xpnet.groups), which parameter groups choose by (`param_groups="nanogpt"`: weight decay on weights and
  embeddings only). The default: "weight" for two or more dimensions, "bias" for fewer.
- `noise_shape(batch) -> shape | None`: a layer that needs random numbers while training (Dropout) says
  the shape of its U[0, 1) input; the caller draws it (same seed, same numbers on every backend).
- `forward(params, x, training=False, need_dx=True, noise=None) -> (y, backward)`, with
  `backward(dy) -> (dx, grads)`: x: (batch, *input_shape), y: (batch, *output_shape), grads a dict
  {name: array} like params (empty for layers without parameters); dx is None when need_dx is False.
  Nothing is stored on the layer: a forward is a pure function of (params, x, noise).
- Layer state (non-trained arrays such as BatchNorm's running statistics): `state_shapes()` and
  `init_state(asarray)` name them; the model keeps them in `model.state.layer_state` ("layers.<i>.<name>",
  saved in checkpoints), calls such a layer as `forward_with_state(..., state={name: array}) -> (y, backward,
  next state)`, whose default is `forward(..., state=)` and `updated_state(state, x) -> {name: array}` (pure,
  like forward) after a training forward.
  Layers without state take no `state` argument.
- Native kernels: a layer that can run a backend's own kernel (Conv2D, the pooling layers) names it in
  `kernel_names` ("conv2d", ...: `xpnet.backend.KERNEL_NAMES`) and takes `forward(..., kernels=)`, the backend's
  `Kernels` (`Backend.kernels`) or None; the model passes its own (`Network.kernels`). The layer uses the kernel
  where it is not None, else its array-API code, which stays the definition the kernel is tested against.
  Layers without kernel_names take no `kernels` argument.
"""
from __future__ import annotations

import math

from ..errors import InputError
from ..registry import Configurable


def layer_path(path: int | tuple) -> str:
    """Where a layer of a model lives in its names (parameter keys, messages): "layers.<i>" for layer i, and
    for a nested layer the path to it, a tuple of ints and strings: (3, "block", 0) -> "layers.3.block.0"."""
    if isinstance(path, tuple):
        return ".".join(("layers", *map(str, path)))
    return f"layers.{path}"


def param_key(path: int | tuple, name: str) -> str:
    """The model-wide key of a parameter or state array `name` of the layer at `path` (see `layer_path`):
    "layers.<i>.<name>", the key of `model.state.params` and `model.state.layer_state` (and of checkpoints),
    or a nested layer's "layers.3.block.0.weight" (path (3, "block", 0), or path 3 and name "block.0.weight")."""
    return f"{layer_path(path)}.{name}"


def local_name(key: str, path: int | tuple) -> str | None:
    """The inverse of `param_key` for one layer: `name` when `key` is `param_key(path, name)`, else None."""
    prefix = param_key(path, "")
    return key[len(prefix):] if key.startswith(prefix) else None


class Layer(Configurable):
    kind = "layer"
    penalized: tuple = ()
    #: True when the output has the input's shape and the layer knows nothing about sizes (activations)
    elementwise: bool = False
    #: the backend kernels forward(..., kernels=) can use (empty: the layer takes no kernels argument)
    kernel_names: tuple = ()
    #: the input shape the layer was constructed for, when its constructor names one (Dense(in, out))
    declared_input_shape: tuple | None = None
    #: True when the layer takes integer input (Embedding's token ids): it has no input gradient (backward's dx
    #: is None), and `sample_input` draws valid integers for the tests and gradient checks
    integer_input: bool = False

    input_shape: tuple | None = None
    output_shape: tuple | None = None

    @classmethod
    def examples(cls) -> list[tuple[dict, tuple]]:
        """(constructor arguments, input shape) pairs that the layer contract test (tests/test_layers_api.py)
        builds, gradchecks and round-trips through its config. The default, one sample of 5 features with no
        arguments, fits layers whose constructor needs none; others override it."""
        return [({}, (5,))]

    def sample_input(self, rng, shape: tuple):
        """A host NumPy input of `shape` (batch included) that the layer accepts, for tests and gradient checks:
        standard normal values by default; integer-input layers draw valid ids."""
        return rng.standard_normal(shape)

    def build(self, input_shape: tuple) -> tuple:
        """Record and check the input shape (batch excluded); return the output shape."""
        self.input_shape = self.output_shape = tuple(input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """The output shape for `input_shape`, without building (Keras' name for it)."""
        return type(self).from_config(self.get_config()).build(input_shape)

    def sublayers(self) -> list:
        """The layers inside this one as [(name, layer)], in order, named as in parameter paths ("block",
        "0": "layers.3.block.0.weight"); empty for a layer made of no layers (combinators: layers/combinators.py)."""
        return []

    def param_shapes(self) -> dict:
        return {}

    def param_kinds(self) -> dict:
        """{name: kind} of the parameters (xpnet.groups.KINDS): by default "weight" for a parameter of two or
        more dimensions and "bias" for the others; layers whose 1-D parameters are scales (normalization) or
        whose matrices are tables (embeddings) say so."""
        from ..groups import default_kind
        return {name: default_kind(tuple(shape)) for name, shape in self.param_shapes().items()}

    def init_params(self, rng, asarray) -> dict:
        """Parameters drawn from host RNG `rng`; `asarray(host_array)` moves one to the model's device and dtype."""
        return {}

    def scratch_per_sample(self) -> int:
        """Working values per sample that the forward allocates beyond its input and output (Conv2D: its im2col
        columns); the model sizes its default inference batch by the largest of these."""
        return 0

    def noise_shape(self, batch: int) -> tuple | None:
        return None

    def state_shapes(self) -> dict:
        """{name: shape} of the layer's non-trained arrays (none by default)."""
        return {}

    def init_state(self, asarray) -> dict:
        return {}

    def updated_state(self, state: dict | None, x) -> dict:
        """The state after a training forward on input x (layers with state override it)."""
        return {}

    def forward_with_state(self, params: dict, x, training: bool = False, need_dx: bool = True, noise=None,
                           state: dict | None = None, kernels=None):
        """A layer with state on x: (y, backward, next state): the state after a training forward on x
        (`updated_state`), the state as given otherwise. A layer that computes its next state from what its
        forward computes anyway (BatchNorm's batch statistics) overrides this to compute it once."""
        extra = {"kernels": kernels} if self.kernel_names else {}
        next_state = self.updated_state(state, x) if training else state
        y, back = self.forward(params, x, training, need_dx, noise, state=state, **extra)
        return y, back, next_state

    def forward(self, params: dict, x, training: bool = False, need_dx: bool = True, noise=None):
        raise NotImplementedError(f"{type(self).__name__} must define forward(params, x, training, need_dx, noise)")

    def _require_built(self):
        if self.input_shape is None:
            raise InputError(f"{type(self).__name__} is not built; put it in a Sequential model (which builds "
                             f"it) or call build(input_shape) first")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def weight_and_bias(init: str, rng, shape: tuple, use_bias: bool, asarray) -> dict:
    """{"weight": drawn with initializer `init` for a weight of `shape` (out, in, *kernel), "bias": zeros (out,)
    or the initializer's own bias (book_uniform)} (no bias when use_bias is False)."""
    from .. import init as initializers
    fan_in, fan_out = fans(shape)
    drawn = initializers.get(init)(rng, shape, fan_in, fan_out)
    w, b = drawn if isinstance(drawn, tuple) else (drawn, None)
    params = {"weight": asarray(w)}
    if use_bias:
        params["bias"] = asarray(b) if b is not None else asarray(initializers.zeros(shape[0]))
    return params


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel): in * kernel and out * kernel."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def where_raised(exc: BaseException) -> str | None:
    """'layers.<i> <Layer>.<method>' for the innermost layer code in an exception's traceback (for error
    reports that name the layer at fault), else None."""
    layer, method, model = None, None, None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Layer):
            layer, method = owner, tb.tb_frame.f_code.co_name
        elif isinstance(getattr(owner, "layers", None), list):
            model = owner
        tb = tb.tb_next
    if layer is None:
        return None
    path = _path_of(layer, model.layers) if model is not None else None
    prefix = f"{layer_path(path)} " if path is not None else ""
    if method in ("<lambda>", "backward"):
        method = f"forward's backward ({method})"
    return f"{prefix}{type(layer).__name__}.{method}"


def _path_of(target, layers, prefix: tuple = ()) -> tuple | None:
    """The path (i, "block", 0, ...) of the first use of `target` among `layers` and the layers inside them."""
    for name, layer in (layers if prefix else enumerate(layers)):
        here = (*prefix, name)
        if layer is target:
            return here
        found = _path_of(target, layer.sublayers(), here) if hasattr(layer, "sublayers") else None
        if found is not None:
            return found
    return None
