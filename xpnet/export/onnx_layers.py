"""How each layer becomes ONNX: one table, layer class -> emitter.

An emitter is `emit(layer, params, x) -> y` with `params` the layer's parameters as host float32 arrays
{local name: array}, and `x`, `y` ndonnx arrays (x: (batch, *layer.input_shape)). Two kinds:

- traced: the layer's own `forward(params, x, training=False)`, run on ndonnx arrays (xpnet's layers take
  `xp` from their input, so the Array API code that trains is the code that is exported). Used where the
  traced graph is as good as a hand-written one: Sigmoid (its 0.5 * tanh(0.5 z) + 0.5, the same formula as
  training), Tanh, GELU (its tanh form, as trained), ReLU (Max), Identity, Dropout (identity when not training), Flatten (Reshape).
- native: one ONNX node from the layer's config, written with spox, where tracing gives a poor graph.
  Dense -> Gemm(transB=1): the traced `x @ w.T + b` is Transpose, two Size, Mul, Equal and an If around the
  MatMul (ndonnx guards empty arrays), then Add. LeakyReLU -> LeakyRelu: the traced where() expands two
  constant arrays to the input's shape. Softmax -> Softmax: the traced max() guards NaN with IsNaN and two
  Ifs (18 nodes). benchmarks/onnx_export.py times both graphs (`--strategy trace`).

The CNN layers are native: tracing a convolution would give im2col's strided gathers and concatenations.
Conv2D -> Conv (pads from the layer's padding, PyTorch's split for "same"), MaxPool2D -> MaxPool,
AvgPool2D -> AveragePool (no padding: count_include_pad does not arise), GlobalAvgPool2D ->
GlobalAveragePool + Flatten. BatchNorm (inference, running statistics) is written as xpnet's own inference
arithmetic, (x - mean) * inv * weight + bias with inv = 1 / sqrt(var + eps) computed on the host in float32
as the layer computes it, rather than as a BatchNormalization node: spox's BatchNormalization (opset 21)
always declares the training outputs, which ONNX's shape inference refuses when training_mode = 0.
Combinators (Chain, Add, Concatenate, Residual) are their children's graphs joined by ONNX Add and Concat nodes.
A layer in neither table has no ONNX form: `emitter` says so in one line.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..layers import (GELU, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Embedding, Flatten, GlobalAvgPool2D, Identity,
                      LayerNorm, LeakyReLU, MaxPool2D, MultiHeadAttention, PositionalEmbedding, ReLU, Sigmoid, Softmax,
                      Tanh)
from ..layers._patches import pair
from ..layers.augmentation import RandomCrop, RandomFlip
from ..layers.combinators import Chain, Combinator, Concatenate, Residual
from ..layers.conv import conv_padding
from ..layers.tied import TiedOutput
from ..losses import Loss, LogisticCost, MSE, SoftmaxCrossEntropy

STRATEGIES = ("native", "trace")

TRACED: set = set()   # layer classes whose forward traces to a good graph
NATIVE: dict = {}     # layer class -> emitter writing native ONNX nodes


def traced(*classes) -> None:
    """Export these layer classes by tracing their forward (exact classes: a subclass may change forward)."""
    TRACED.update(classes)


def native(*classes):
    """Decorator: `fn(layer, params, x) -> y` exports these layer classes with native ONNX nodes."""
    def put(fn):
        for cls in classes:
            NATIVE[cls] = fn
        return fn
    return put


def _ops():
    """spox's ONNX operators at the opset ndonnx builds with (21), so one graph has one opset."""
    import spox.opset.ai.onnx.v21 as op
    return op


def _wrap(var):
    import ndonnx as ndx
    return ndx.asarray(var)


def trace(layer, params: dict, x):
    """The layer's forward on ndonnx arrays (inference: training=False, no noise)."""
    import ndonnx as ndx
    p = {k: ndx.asarray(v) for k, v in params.items()}
    y, _ = layer.forward(p, x, False, False, None)
    return y


def supported() -> list[str]:
    return sorted({c.__name__ for c in TRACED} | {c.__name__ for c in NATIVE} | {"Add", "Chain", "Concatenate",
                                                                               "Residual", "TiedOutput"})


def emitter(layer, strategy: str = "native", where: str = ""):
    """The function that exports `layer`: its native emitter (strategy 'native', the default) or its traced
    forward ('trace', where it traces; native where it does not). A combinator's children are looked up here,
    so a child without an ONNX form is named by its path ("layers.3.block.1 ...")."""
    cls = type(layer)
    if isinstance(layer, Combinator) and cls not in NATIVE:  # TiedOutput: a combinator with a native form
        base = where.rstrip()
        emits = [emitter(child, strategy, where=f"{base}.{name} ") for name, child in layer.sublayers()]
        return lambda layer, params, x: _combinator(layer, params, x, emits)
    if strategy == "native" and cls in NATIVE:
        return NATIVE[cls]
    if cls in TRACED:
        return trace
    if cls in NATIVE:
        return NATIVE[cls]
    raise InputError(f"{where}{cls.__name__} has no ONNX form in this xpnet (layers that export: "
                     f"{', '.join(supported())}); add one in xpnet/export/onnx_layers.py (traced(...) or native(...))")


traced(Sigmoid, Tanh, ReLU, Identity, Dropout, Flatten, Dense, LeakyReLU, Softmax, GELU)
traced(RandomCrop, RandomFlip)  # augmentation: training only, so the traced inference forward is the identity


@native(Dense)
def _dense(layer, params, x):
    op = _ops()
    if layer.input_shape is not None and len(layer.input_shape) != 1:  # (batch, ..., in): MatMul on the last axis
        return _wrap(linear(x.unwrap_spox(), params["weight"], params.get("bias") if layer.use_bias else None))
    args = [x.unwrap_spox(), op.const(params["weight"])]
    if layer.use_bias:
        args.append(op.const(params["bias"]))
    return _wrap(op.gemm(*args, transB=1))  # x @ W.T + b, W: (out, in) as xpnet stores it


@native(Conv2D)
def _conv2d(layer, params, x):
    op = _ops()
    kernel, stride = pair(layer.kernel_size), pair(layer.stride)
    top, bottom, left, right = conv_padding(layer.padding, kernel)
    args = [x.unwrap_spox(), op.const(params["weight"])]  # weight (out, in, kh, kw), ONNX's layout
    if layer.use_bias:
        args.append(op.const(params["bias"]))
    return _wrap(op.conv(*args, kernel_shape=list(kernel), strides=list(stride), pads=[top, left, bottom, right]))


@native(MaxPool2D)
def _max_pool(layer, params, x):
    y, _ = _ops().max_pool(x.unwrap_spox(), kernel_shape=list(layer.kernel), strides=list(layer.strides))
    return _wrap(y)


@native(AvgPool2D)
def _avg_pool(layer, params, x):
    return _wrap(_ops().average_pool(x.unwrap_spox(), kernel_shape=list(layer.kernel), strides=list(layer.strides)))


@native(GlobalAvgPool2D)
def _global_avg_pool(layer, params, x):
    op = _ops()
    return _wrap(op.flatten(op.global_average_pool(x.unwrap_spox()), axis=1))  # (N, C, 1, 1) -> (N, C)


@native(BatchNorm)
def _batch_norm(layer, params, x):
    op = _ops()
    dt = params["weight"].dtype.type  # float32 (the default export) or float64
    shape = (1, -1) if len(layer.input_shape) == 1 else (1, -1, 1, 1)
    col = lambda v: op.const(np.asarray(v, dtype=dt).reshape(shape))  # noqa: E731
    mean = params.get("running_mean", np.zeros(layer.num_features, dt))
    var = params.get("running_var", np.ones(layer.num_features, dt))
    inv = dt(1.0) / np.sqrt(var.astype(dt) + dt(layer.eps))
    xhat = op.mul(op.sub(x.unwrap_spox(), col(mean)), col(inv))
    return _wrap(op.add(op.mul(xhat, col(params["weight"])), col(params["bias"])))


# ---- the sequence layers (issue 31) ---------------------------------------------------------------------------
# Written on spox Vars with host (NumPy) parameters, as small functions a new layer can reuse: a tied output
# projection is `linear(h, embedding_weight)` (logits = h @ weight.T), a lookup `gather_rows(weight, ids)`.

def _const(a):
    """A host array as an ONNX constant; an ndonnx array or a spox Var as its Var."""
    if hasattr(a, "unwrap_spox"):
        return a.unwrap_spox()
    return _ops().const(a) if isinstance(a, np.ndarray) else a


def _ints(*values):
    return _ops().const(np.array(values, dtype=np.int64))


def linear(x, weight, bias=None):
    """x @ weight.T (+ bias) on the last axis of x of any rank (MatMul against the transposed host weight (in,
    out), then Add): Dense on (batch, ..., in), the attention projections, and a tied output projection whose
    weight is an Embedding's table (vocab, dim). x: a spox Var; weight (out, in), bias (out,): host arrays."""
    op = _ops()
    if isinstance(weight, np.ndarray):
        w_t = op.const(np.ascontiguousarray(weight.T))
    else:  # a graph value (a weight computed in the graph): transposed there
        w_t = op.transpose(_const(weight), perm=[1, 0])
    y = op.matmul(x, w_t)
    return y if bias is None else op.add(y, _const(np.asarray(bias)))


def gather_rows(table, ids):
    """table[ids]: rows of a host (rows, dim) table by int64 ids of any shape (Gather on axis 0; ONNX Runtime
    refuses an id outside [-rows, rows), a negative one counts from the end as in NumPy)."""
    return _ops().gather(_const(table), ids, axis=0)


def time_of(x):
    """The time axis (axis 1) of a (batch, time, ...) Var as an int64 (1,) tensor: dynamic in the graph."""
    return _ops().shape(x, start=1, end=2)


def layer_norm(x, weight, bias, eps: float):
    """LayerNorm over the last axis: one LayerNormalization node (opset 17) in float32, where ONNX Runtime's
    kernel is as close to the float64 truth as xpnet's two-pass float32 arithmetic (both within 7e-6 at inputs
    of mean 100 and unit spread); in float64, xpnet's own arithmetic written out ((x - mean) / sqrt(var + eps)
    with the variance of the centred values), since ONNX Runtime's float64 kernel is 1e-13 to 1e-11 away from
    it, too far for a float64 check to rounding."""
    op = _ops()
    weight, bias = np.asarray(weight), np.asarray(bias)
    if weight.dtype != np.float64:
        y, _, _ = op.layer_normalization(x, op.const(weight), op.const(bias), axis=-1, epsilon=float(eps))
        return y
    last = _ints(-1)
    centred = op.sub(x, op.reduce_mean(x, last, keepdims=1))
    var = op.reduce_mean(op.mul(centred, centred), last, keepdims=1)
    inv = op.div(op.const(np.float64(1.0)), op.sqrt(op.add(var, op.const(np.float64(eps)))))
    return op.add(op.mul(op.mul(centred, inv), op.const(weight)), op.const(bias))


def causal_keep(time):
    """The (time, time) boolean mask keep[i, j] = j <= i (`attention_ops.attention`'s top-left `tril`) from the
    int64 (1,) length `time`, so the sequence length stays dynamic."""
    op = _ops()
    pos = op.range(op.const(np.int64(0)), op.squeeze(time, _ints(0)), op.const(np.int64(1)))
    return op.less_or_equal(op.unsqueeze(pos, _ints(0)), op.unsqueeze(pos, _ints(1)))


def attention(q, k, v, causal: bool, scale: float, dtype):
    """softmax(q kᵀ · scale + mask) v on (batch, heads, time, head_dim) Vars: MatMul, Mul, Where(keep, s, -inf),
    Softmax on the last axis, MatMul (`attention_ops.attention`'s definition)."""
    op = _ops()
    s = op.mul(op.matmul(q, op.transpose(k, perm=[0, 1, 3, 2])), op.const(np.asarray(scale, dtype=dtype)))
    if causal:
        s = op.where(causal_keep(op.shape(q, start=2, end=3)), s, op.const(np.asarray(-np.inf, dtype=dtype)))
    return op.matmul(op.softmax(s, axis=-1), v)


def self_attention(x, params: dict, dim: int, heads: int, causal: bool = True):
    """MultiHeadAttention's inference forward on a (batch, time, dim) Var with torch's parameter layout
    (in_proj_weight (3·dim, dim): q's rows, k's, v's; out_proj_weight (dim, dim); biases where present)."""
    op = _ops()
    hd = dim // heads
    w_in, b_in = params["in_proj_weight"], params.get("in_proj_bias")

    def split_heads(i):  # (B, T, dim) -> (B, heads, T, head_dim)
        part = slice(i * dim, (i + 1) * dim)
        y = linear(x, w_in[part], None if b_in is None else b_in[part])
        return op.transpose(op.reshape(y, _ints(0, 0, heads, hd)), perm=[0, 2, 1, 3])

    o = attention(split_heads(0), split_heads(1), split_heads(2), causal, 1.0 / math.sqrt(hd), w_in.dtype)
    merged = op.reshape(op.transpose(o, perm=[0, 2, 1, 3]), _ints(0, 0, dim))
    return linear(merged, params["out_proj_weight"], params.get("out_proj_bias"))


@native(Embedding)
def _embedding(layer, params, x):
    return _wrap(gather_rows(params["weight"], x.unwrap_spox()))


@native(PositionalEmbedding)
def _positional_embedding(layer, params, x):
    """x + weight[:time], time read from x (dynamic, at most max_len: a longer input fails the Add's shapes)."""
    op = _ops()
    xs = x.unwrap_spox()
    rows = op.slice(op.const(params["weight"]), _ints(0), time_of(xs), _ints(0))
    return _wrap(op.add(xs, rows))


@native(LayerNorm)
def _layer_norm(layer, params, x):
    """LayerNorm(bias=False) (a GPT's) as a zero bias."""
    bias = params.get("bias")
    if bias is None:
        bias = np.zeros_like(np.asarray(params["weight"]))
    return _wrap(layer_norm(x.unwrap_spox(), params["weight"], bias, layer.eps))


@native(TiedOutput)
def _tied_output(layer, params, x):
    """A GPT's output through its Embedding's table: x @ table.T (one MatMul against the same table the Gather
    reads, a second constant of it in the graph)."""
    return _wrap(linear(x.unwrap_spox(), np.asarray(params["embedding.weight"])))


@native(MultiHeadAttention)
def _multi_head_attention(layer, params, x):
    """Inference: dropout is the identity."""
    return _wrap(self_attention(x.unwrap_spox(), params, layer.dim, layer.heads, layer.causal))


#: the lowest opset a layer's native form needs (LayerNormalization is opset 17)
MIN_OPSET = {LayerNorm: 17}


def _combinator(layer, inputs: dict, x, emits: list):
    """A combinator as its children's graphs joined: Chain in sequence, Add and Residual by Add nodes,
    Concatenate by a Concat node; a shared layer's arrays are the same constants at each use."""
    op = _ops()

    def child(j, h):
        mine = {local: inputs[canon] for what in ("param", "state") for local, canon in layer._index[what][0][j]
                if canon in inputs}
        return emits[j](layer.sublayers()[j][1], mine, h)

    if isinstance(layer, Chain):
        for j in range(len(emits)):
            x = child(j, x)
        return x
    ys = [child(j, x) for j in range(len(emits))]
    if isinstance(layer, Residual) and len(ys) == 1:
        ys.append(x)
    if isinstance(layer, Concatenate):
        return _wrap(op.concat([y.unwrap_spox() for y in ys], axis=layer._axis))
    y = ys[0].unwrap_spox()
    for other in ys[1:]:
        y = op.add(y, other.unwrap_spox())
    return _wrap(y)


@native(LeakyReLU)
def _leaky_relu(layer, params, x):
    return _wrap(_ops().leaky_relu(x.unwrap_spox(), alpha=layer.negative_slope))


@native(Softmax)
def _softmax_layer(layer, params, x):
    return _softmax(x)


def _softmax(z):
    return _wrap(_ops().softmax(z.unwrap_spox(), axis=-1))


# the fused loss's output activation (model.loss.activation), by loss class
TRACED_LOSSES = {LogisticCost, MSE, Loss}  # sigmoid's 0.5 * tanh(0.5 z) + 0.5; identity


def probabilities(loss, z, strategy: str = "native"):
    """loss.activation(z) as ONNX: native Softmax for softmax cross-entropy, else the traced activation."""
    import ndonnx as ndx
    cls = type(loss)
    if cls is SoftmaxCrossEntropy:
        return _softmax(z) if strategy == "native" else loss.activation(ndx, z)
    if cls in TRACED_LOSSES:
        return loss.activation(ndx, z)
    raise InputError(f"the loss {cls.__name__} has no ONNX form for its output activation in this xpnet; add it "
                     f"in xpnet/export/onnx_layers.py (TRACED_LOSSES or probabilities)")
