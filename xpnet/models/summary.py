"""A model's summary: each layer's name, type, output shape and parameter count, the totals (parameters and
their bytes) and the FLOPs of one sample, forward and training step. `Network.summary()` prints and returns it;
`xpnet summary` shows it for a preset, a model file or a checkpoint.

FLOPs are counted as PyTorch's `torch.utils.flop_counter.FlopCounterMode` counts them, so the figures can be
checked against it (tests/test_summary.py does, for an MLP, LeNet-5 and the fashion-cnn preset):

- only matrix products and convolutions count, 2 per multiply-add: Dense(in, out) is 2·in·out per sample,
  Conv2D 2·C_out·C_in·kh·kw·OH·OW (bias additions are not counted);
- every other layer counts zero: activations, pooling, Flatten, Dropout, BatchNorm, and so do the loss and
  the optimizer's update;
- the backward pass of a product is the weight's gradient (as many FLOPs as the forward) plus the input's
  gradient (as many again) for every layer that has a parameterized layer before it: the first one's input
  needs no gradient (PyTorch skips it since the data does not require grad; xpnet skips it for layer 0);
- the training step is forward + backward.

A layer may say its own forward FLOPs per sample with a method `forward_flops()`; one without it counts as
above. Layers holding other layers (containers) list them with `sublayers()` -> [(name, layer), ...]; the
summary walks them recursively, indented under their container, and counts a layer met twice (a shared
layer) once.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

FLOPS_NOTE = ("matmuls and convolutions, 2 per multiply-add, as torch.utils.flop_counter.FlopCounterMode "
              "counts them; activations, pooling, normalization, dropout, the loss and the update count 0")


@dataclass
class LayerRow:
    """One row of a summary: `name` the layer's path ("layers.3", a nested one "layers.3.block.0"), `depth` its
    nesting (0 for the model's own layers), `params` the values of its own parameters (a container's: its
    children's too; 0 for a layer met before, `shared_with` naming where), FLOPs per sample."""
    name: str
    type: str
    output_shape: tuple | None
    params: int
    flops_forward: int
    flops_backward: int
    depth: int = 0
    shared_with: str | None = None


@dataclass
class ModelSummary:
    """A model's summary. str() is the table; `to_dict()` the same as JSON-able data.

    params: the model's trainable values (each parameter once, shared ones too), param_bytes: their bytes in
    the model's dtype, state_values: non-trained values (BatchNorm's running statistics). flops_forward and
    flops_training: FLOPs of one sample, a forward pass and a training step (forward + backward), counted as
    FLOPS_NOTE says."""
    model: str
    input_shape: tuple
    output_shape: tuple
    dtype: str
    rows: list = field(default_factory=list)
    params: int = 0
    param_bytes: int = 0
    state_values: int = 0
    flops_forward: int = 0
    flops_backward: int = 0

    @property
    def flops_training(self) -> int:
        return self.flops_forward + self.flops_backward

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = d.pop("rows")
        d["flops_training"] = self.flops_training
        d["flops_note"] = FLOPS_NOTE
        return d

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return (f"ModelSummary({self.model}, params={self.params:,}, flops_forward={self.flops_forward:,}, "
                f"flops_training={self.flops_training:,})")

    def text(self) -> str:
        """The table: a header line, one line per layer (nested ones indented), the totals."""
        head = ("layer", "type", "output shape", "params", "FLOPs/sample")
        body = [("  " * r.depth + r.name, r.type, _shape(r.output_shape),
                 f"{r.params:,}" if r.shared_with is None else f"(shared with {r.shared_with})",
                 f"{r.flops_forward:,}") for r in self.rows]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        line = lambda row: "  ".join(c.ljust(w) if i < 3 else c.rjust(w)  # noqa: E731
                                     for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        out = [f"{self.model}: input {_shape(self.input_shape)}, output {_shape(self.output_shape)}, {self.dtype}",
               line(head), *map(line, body),
               f"parameters: {self.params:,} ({_bytes(self.param_bytes)} in {self.dtype})"
               + (f"; non-trained state: {self.state_values:,} values" if self.state_values else ""),
               f"FLOPs per sample: forward {_count(self.flops_forward)}, training step {_count(self.flops_training)} "
               f"(matmuls and convolutions, 2 per multiply-add, as torch's FlopCounterMode counts them)"]
        return "\n".join(out)


def summarize(model) -> ModelSummary:
    """The ModelSummary of a built Network (xpnet.Sequential and the models built from it)."""
    rows = walk_layers(model.layers)
    params = _unique_count(model.state.params)
    itemsize = _itemsize(model)
    return ModelSummary(model=type(model).__name__, input_shape=tuple(model.input_shape),
                        output_shape=tuple(model.output_shape), dtype=model.dtype_name, rows=rows, params=params,
                        param_bytes=params * itemsize, state_values=_unique_count(model.state.layer_state),
                        flops_forward=sum(r.flops_forward for r in rows if r.depth == 0),
                        flops_backward=sum(r.flops_backward for r in rows if r.depth == 0))


def walk_layers(layers, prefix: str = "layers") -> list[LayerRow]:
    """The rows of built `layers` (a model's list, or any list of layers), children after their container
    (`sublayers()`, where a layer has it), each layer object counted once (a later occurrence: shared_with)."""
    rows: list[LayerRow] = []
    seen: dict[int, str] = {}
    state = {"before": False}  # whether a parameterized layer came before (its input then needs a gradient)

    def visit(name: str, layer, depth: int) -> LayerRow:
        children = _sublayers(layer)
        if id(layer) in seen:
            row = LayerRow(name, type(layer).__name__, _out(layer), 0, 0, 0, depth, seen[id(layer)])
            rows.append(row)
            return row
        seen[id(layer)] = name
        row = LayerRow(name, type(layer).__name__, _out(layer), 0, 0, 0, depth)
        rows.append(row)
        child_names = [c for c, _ in children]
        own = {k: s for k, s in _param_shapes(layer).items() if not any(k.startswith(c + ".") for c in child_names)}
        row.params = sum(math.prod(s) for s in own.values())
        if not children:
            fwd = forward_flops(layer)
            # a product's backward: the weight's gradient, and the input's where something before needs it
            row.flops_forward, row.flops_backward = fwd, fwd * (2 if state["before"] else 1)
            if own:
                state["before"] = True
            return row
        for child_name, child in children:
            sub = visit(f"{name}.{child_name}", child, depth + 1)
            row.params += sub.params
            row.flops_forward += sub.flops_forward
            row.flops_backward += sub.flops_backward
        if own:
            state["before"] = True
        return row

    for i, layer in enumerate(layers):
        visit(f"{prefix}.{i}", layer, 0)
    return rows


def forward_flops(layer) -> int:
    """FLOPs of one sample's forward through a built leaf layer (see the module's docstring): the layer's own
    `forward_flops()` where it has one, 2·in·out for Dense (times the positions of N-D input), 2·C_out·C_in·kh·kw·OH·OW for Conv2D, else 0."""
    own = getattr(layer, "forward_flops", None)
    if callable(own):
        return int(own())
    from ..layers.conv import Conv2D
    from ..layers.dense import Dense
    if isinstance(layer, Dense):  # on N-D input, once per position of the leading axes
        positions = math.prod(layer.input_shape[:-1]) if layer.input_shape is not None else 1
        return 2 * layer.in_features * layer.out_features * positions
    if isinstance(layer, Conv2D) and layer.output_shape is not None:
        _, oh, ow = layer.output_shape
        kh, kw = layer.kernel
        return 2 * layer.out_channels * layer.in_channels * kh * kw * oh * ow
    return 0


def _sublayers(layer) -> list:
    """[(name, layer)] of a container (the `sublayers()` of issue 30's layers), [] for a plain layer."""
    return list(getattr(layer, "sublayers", lambda: [])() or [])


def _param_shapes(layer) -> dict:
    try:
        return dict(layer.param_shapes())
    except Exception:  # a layer not built (a container's unused branch): nothing to count
        return {}


def _out(layer):
    shape = getattr(layer, "output_shape", None)
    return None if shape is None else tuple(shape)


def _unique_count(arrays: dict) -> int:
    """Values in a {name: array} dict, an array stored under two names (a shared parameter) counted once."""
    seen, total = set(), 0
    for value in arrays.values():
        if id(value) in seen:
            continue
        seen.add(id(value))
        total += math.prod(value.shape)
    return total


def _itemsize(model) -> int:
    return 8 if model.dtype_name == "float64" else 2 if model.dtype_name in ("float16", "bfloat16") else 4


def _shape(shape) -> str:
    return "?" if shape is None else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _count(n: int) -> str:
    """12,345,678 -> '12.35 M'."""
    for unit, size in (("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)
