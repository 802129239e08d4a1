"""Embedding (token ids -> vectors) and PositionalEmbedding (a learned vector added per position), for
sequence input (batch, time).

Embedding's forward is a row lookup (`take`) and its weight gradient a scatter-add of the upstream rows into
their tokens' rows (`attention_ops.embedding` and `scatter_add_rows`: a one-hot product in the array API, the
backend's native scatter-add where it has one, `kernel_names`). Both tables are drawn N(0, std^2), std 0.02 as
GPT-2's, and are of kind "embedding" (xpnet.groups: the "nanogpt" grouping decays them, "mingpt" does not).
"""
from __future__ import annotations

import math

from array_api_compat import device

from ..backend import is_traced
from ..checks import POSITIVE, POSITIVE_INT, check
from ..errors import InputError
from ..groups import EMBEDDING
from ..namespace import namespace
from ..registry import register
from .attention_ops import embedding
from .base import Layer


def _shape_text(shape) -> str:
    return f"(batch, {', '.join(map(str, shape))})" if shape else "(batch,)"


def _ids_range(xp, ids):
    """(min, max) of integer ids as Python ints where the array holds values (eager), None where it is abstract
    (traced under jax.jit or torch.compile: `xpnet.backend.is_traced`, so the check costs torch.compile no graph
    break) or empty."""
    if is_traced(ids) or math.prod(ids.shape) == 0:  # checked first: dynamo cannot compare a traced shape
        return None
    try:
        return int(xp.min(ids)), int(xp.max(ids))
    except TypeError:  # a traced array (JAX's ConcretizationTypeError is a TypeError): no values to check
        return None


@register("Embedding.v1", aliases=("embedding",))
class Embedding(Layer):
    """Token ids to vectors: integer input of any shape (batch, ...) -> (batch, ..., dim), row `id` of the
    table weight (vocab, dim), as torch.nn.functional.embedding.

    The ids get no gradient (backward's dx is None); the table's gradient sums the upstream gradient of every
    position holding a token into that token's row, in float32 or wider (a float16/bfloat16 model's gradient is
    summed in float32 and cast back). Refused in one line: float input, and, where the ids have values (eager
    calls on every backend), an id outside [0, vocab). Inside a compiled step (jax.jit, torch.compile) the ids
    are abstract and are not checked there, so the step stays one graph: a model checks its whole X once where
    the data enters fit, evaluate and predict (`check_token_ids`, from `Sequential.as_input`). Ids given
    straight to a compiled step unchecked: on JAX an id >= vocab gives a row of NaN (jnp.take's fill mode) and a
    negative id counts from the table's end, as NumPy's; torch's index_select raises."""

    penalized = ("weight",)
    kernel_names = ("scatter_add_rows",)
    integer_input = True

    def __init__(self, vocab: int, dim: int, std: float = 0.02):
        check("vocab", vocab, POSITIVE_INT, hint="the number of distinct token ids", owner="Embedding")
        check("dim", dim, POSITIVE_INT, hint="the size of each token's vector", owner="Embedding")
        check("std", std, POSITIVE, hint="the standard deviation of the initial table", owner="Embedding")
        self.vocab, self.dim, self.std = vocab, dim, float(std)

    @classmethod
    def examples(cls):
        return [({"vocab": 5, "dim": 3}, (4,)), ({"vocab": 3, "dim": 2, "std": 1.0}, (2, 2)), ({"vocab": 4, "dim": 2}, ())]

    def get_config(self) -> dict:
        return {"vocab": self.vocab, "dim": self.dim, "std": self.std}

    def sample_input(self, rng, shape: tuple):
        return rng.integers(0, self.vocab, size=shape)

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = (*self.input_shape, self.dim)
        return self.output_shape

    def param_shapes(self):
        return {"weight": (self.vocab, self.dim)}

    def param_kinds(self):
        return {"weight": EMBEDDING}

    def init_params(self, rng, asarray):
        return {"weight": asarray(rng.normal(0.0, self.std, size=(self.vocab, self.dim)))}

    def check_ids(self, ids) -> None:
        """Refuse float ids, and ids outside [0, vocab) where they have values (see the class docstring)."""
        xp = namespace(ids)
        if not xp.isdtype(ids.dtype, "integral"):
            raise InputError(f"Embedding takes integer token ids but got {ids.dtype} input; give the ids as integers "
                             f"(e.g. int64), not as floats or one-hot rows")
        span = _ids_range(xp, ids)
        if span is not None and (span[0] < 0 or span[1] >= self.vocab):
            bad = span[0] if span[0] < 0 else span[1]
            raise InputError(f"Embedding({self.vocab}, {self.dim}) takes token ids in [0, {self.vocab}) but got id "
                             f"{bad}; map the tokens into the vocabulary or make vocab larger")

    def forward(self, params, x, training=False, need_dx=True, noise=None, kernels=None):
        self.check_ids(x)
        weight = params["weight"]
        xp = namespace(weight)
        y, back = embedding(weight, x, kernels=kernels)

        def backward(dy):
            if xp.finfo(dy.dtype).bits >= 32:
                return None, {"weight": back(dy)}
            wide = back(xp.astype(dy, xp.float32))  # the sums of a low-precision model in float32
            return None, {"weight": xp.astype(wide, dy.dtype)}

        return y, backward

    def __repr__(self) -> str:
        return f"Embedding({self.vocab}, {self.dim})"


def first_embedding(layer):
    """The Embedding that takes a model's token ids: `layer` itself, or the first layer of a combinator whose
    input is integer ids (a Chain starting with one), depth first; None where there is none."""
    while layer is not None and not isinstance(layer, Embedding):
        children = layer.sublayers() if hasattr(layer, "sublayers") else []
        layer = children[0][1] if children and getattr(layer, "integer_input", False) else None
    return layer


def check_token_ids(layer, ids) -> None:
    """Refuse, in Embedding's one line, ids out of the vocabulary of the Embedding that takes them (`layer`: a
    model's first layer): one min/max over the whole array where data enters a model (host or device ids; a
    float array is left for Embedding's own dtype refusal)."""
    first = first_embedding(layer)
    if first is not None and namespace(ids).isdtype(ids.dtype, "integral"):
        first.check_ids(ids)


@register("PositionalEmbedding.v1", aliases=("positional_embedding",))
class PositionalEmbedding(Layer):
    """A learned position vector added to each step: (batch, time, dim) -> x + weight[:time], weight
    (max_len, dim). The positions past `time` get a zero gradient. A sequence longer than max_len is refused in
    one line, when built and when called."""

    def __init__(self, max_len: int, dim: int | None = None, std: float = 0.02):
        check("max_len", max_len, POSITIVE_INT, hint="the longest sequence the table covers",
              owner="PositionalEmbedding")
        if dim is not None:
            check("dim", dim, POSITIVE_INT, hint="the size of each position's vector", owner="PositionalEmbedding")
        check("std", std, POSITIVE, hint="the standard deviation of the initial table", owner="PositionalEmbedding")
        self.max_len, self.dim, self.std = max_len, dim, float(std)

    @classmethod
    def examples(cls):
        return [({"max_len": 5, "dim": 3}, (4, 3)), ({"max_len": 2, "std": 1.0}, (2, 2))]

    def get_config(self) -> dict:
        return {"max_len": self.max_len, "dim": self.dim, "std": self.std}

    def _check_time(self, time: int, shape) -> None:
        if time > self.max_len:
            raise InputError(f"PositionalEmbedding(max_len={self.max_len}) takes sequences of at most {self.max_len} "
                             f"steps but got {time} (input {shape}); shorten the sequences or make max_len larger")

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise InputError(f"PositionalEmbedding takes (batch, time, dim) input but gets {_shape_text(input_shape)}; "
                             f"put an Embedding (or a Dense) before it")
        if self.dim is not None and input_shape[1] != self.dim:
            raise InputError(f"PositionalEmbedding expects dim {self.dim} (the last axis) but the previous layer gives "
                             f"{input_shape[1]}; make them agree")
        self._check_time(input_shape[0], _shape_text(input_shape))
        self.dim = input_shape[1]
        self.input_shape = self.output_shape = input_shape
        return self.output_shape

    def param_shapes(self):
        return {"weight": (self.max_len, self.dim)}

    def param_kinds(self):
        return {"weight": EMBEDDING}

    def init_params(self, rng, asarray):
        self._require_built()
        return {"weight": asarray(rng.normal(0.0, self.std, size=(self.max_len, self.dim)))}

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        xp = namespace(x)
        if x.ndim != 3:
            raise InputError(f"PositionalEmbedding takes (batch, time, dim) input but got shape {tuple(x.shape)}")
        time = x.shape[1]
        self._check_time(time, tuple(x.shape))
        weight = params["weight"]

        def backward(dy):
            used = xp.sum(dy, axis=0)
            if time < self.max_len:
                used = xp.concat([used, xp.zeros((self.max_len - time, self.dim), dtype=dy.dtype,
                                                 device=device(dy))], axis=0)
            return (dy if need_dx else None), {"weight": used}

        return x + weight[:time, :], backward

    def __repr__(self) -> str:
        return f"PositionalEmbedding({self.max_len}, {self.dim})"
