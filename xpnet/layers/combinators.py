"""Layers made of layers: `Chain` (a nested sequence), `Add` and `Concatenate` (branches on one input, joined)
and `Residual` (y = block(x) + shortcut(x)), written once against the array API like every layer.

A combinator owns no arrays either. Its parameters are its children's, under dotted names that are the path
to them ("block.0.weight"; in a model "layers.3.block.0.weight"). One layer instance used twice (in one
combinator, or anywhere in a model) has one parameter under the name of its first use, in depth-first order,
and its gradients are summed over its uses. `index_children` makes these names for a combinator and for
`Network` alike; `serialize_layers` / `deserialize_layers` write a second use as {"shared": "<path>"} in a
config, so a JSON round trip keeps the sharing.
"""
from __future__ import annotations

import contextvars
import math

from ..errors import InputError
from ..groups import layer_param_kinds
from ..namespace import namespace
from ..registry import register, resolve
from .base import Layer


def _sublayers(layer) -> list:
    return layer.sublayers() if hasattr(layer, "sublayers") else []


def _leaves(layer, what: str) -> dict:
    """{local name: (leaf layer, the leaf's own name)} of a layer's parameters ("param") or state ("state")."""
    if isinstance(layer, Combinator):
        return layer._index[what][2]
    shapes = layer.param_shapes() if what == "param" else layer.state_shapes()
    return {local: (layer, local) for local in shapes}


def index_children(named: list, what: str = "param", key=lambda name, local: f"{name}.{local}") -> tuple:
    """(keys, shapes, leaves) of built children [(name, layer)]: per child [(child's local name, name here)],
    {name here: shape} and {name here: (leaf, leaf's name)}; a name here is "<child name>.<child's local
    name>" at the first use of a leaf's array and that same name at every later use (one array, one name)."""
    seen, keys, shapes, leaves = {}, [], {}, {}
    for name, child in named:
        own = child.param_shapes() if what == "param" else child.state_shapes()
        pairs = []
        for local, (leaf, leaf_local) in _leaves(child, what).items():
            canon = seen.setdefault((id(leaf), leaf_local), key(name, local))
            if canon not in shapes:
                shapes[canon], leaves[canon] = tuple(own[local]), (leaf, leaf_local)
            elif what == "state":
                raise InputError(f"{type(leaf).__name__} is used twice (its {leaf_local} at {canon} and at "
                                 f"{name}.{local}); a layer with running statistics cannot be shared: use two "
                                 f"instances")
            pairs.append((local, canon))
        keys.append(pairs)
    return keys, shapes, leaves


# Configs with sharing: a second use of an instance is {"shared": "<path of its first use>"}, the path in
# parameter-name form ("layers.0", "block.1"), relative to where serializing or deserializing began.
_SCOPE: contextvars.ContextVar = contextvars.ContextVar("xpnet_layer_scope", default=None)


class _Scope:
    def __init__(self, root: tuple = ()):
        self.path, self.seen = list(root), {}


def _in_scope(root: tuple, work):
    scope = _SCOPE.get()
    if scope is not None:
        return work(scope)
    scope = _Scope(root)
    token = _SCOPE.set(scope)
    try:
        return work(scope)
    finally:
        _SCOPE.reset(token)


def serialize_layers(named: list, root: tuple = ()) -> list:
    """[(name, layer)] as registry specs, a repeated instance as {"shared": path of its first use}."""
    from ..registry import serialize

    def work(scope):
        specs = []
        for name, layer in named:
            scope.path.append(str(name))
            where = ".".join(scope.path)
            if id(layer) in scope.seen:
                specs.append({"shared": scope.seen[id(layer)][0]})
            else:
                scope.seen[id(layer)] = (where, layer)  # the layer kept alive: its id stays unique meanwhile
                specs.append(serialize(layer))
            scope.path.pop()
        return specs

    return _in_scope(root, work)


def deserialize_layers(named: list, root: tuple = (), owner: str = "") -> list:
    """[(name, spec or layer)] as layer instances; {"shared": path} gives the instance made at that path."""
    def work(scope):
        layers = []
        for i, (name, spec) in enumerate(named):
            scope.path.append(str(name))
            where = ".".join(scope.path)
            if isinstance(spec, dict) and set(spec) == {"shared"}:
                layer = scope.seen.get(str(spec["shared"]))
                if layer is None:
                    raise InputError(f"{owner}{where}: {{\"shared\": {spec['shared']!r}}} names no layer made "
                                     f"before it; a shared layer refers to the path of its first use, e.g. "
                                     f"{next(iter(scope.seen), 'layers.0')!r}")
            else:
                layer = as_layer(spec, i)
            scope.seen.setdefault(where, layer)
            layers.append(layer)
            scope.path.pop()
        return layers

    return _in_scope(root, work)


def as_layer(layer, i: int):
    """A layer instance from a layer, a registry name of one that needs no arguments ("relu", "Flatten") or a
    {"class", "config"} spec; anything else is refused in one line."""
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, (str, dict)):
        try:
            layer = resolve(layer, "layer")
        except TypeError as exc:  # a name whose class needs arguments ("Dense")
            raise InputError(f"layers[{i}] {layer!r}: a layer given by name is built with no arguments, and this "
                             f"one needs some ({exc}); pass an instance, e.g. xpnet.Dense(100, 10)") from None
        if isinstance(layer, Layer):
            return layer
    raise InputError(f"layers[{i}] is {type(layer).__name__} {layer!r:.60}, not a layer; pass a layer instance "
                     f"(xpnet.Dense(784, 100), xpnet.ReLU()) or a registered layer's name (\"relu\", \"Flatten\")")


def _describe(layer) -> str:
    kids = _sublayers(layer)
    if not kids:
        return type(layer).__name__
    return f"{type(layer).__name__}({', '.join(_describe(c) for _, c in kids)})"


class Combinator(Layer):
    """What the combinators share: children [(name, layer)] (`sublayers()`), their parameters, state,
    noise and kernels gathered under dotted names at build, and the call of one child."""

    _children: list = []

    def sublayers(self) -> list:
        """The children [(name, layer)] in order, named as in parameter paths."""
        return list(self._children)

    def _walk_for_cycles(self, stack: tuple = ()):
        for name, child in self._children:
            if child is self or any(child is s for s in stack):
                raise InputError(f"{type(self).__name__} contains itself through its child {name!r} "
                                 f"({type(child).__name__}): a cycle; a layer can be used twice, but not inside "
                                 f"itself")
            if isinstance(child, Combinator):
                child._walk_for_cycles(stack + (self,))

    def _build_child(self, name: str, child, shape: tuple) -> tuple:
        try:
            return tuple(child.build(shape))
        except InputError as exc:
            raise InputError(f"{type(self).__name__}.{name} ({type(child).__name__}): {exc}") from None

    def _finish_build(self, input_shape: tuple, output_shape: tuple) -> tuple:
        """Gather the built children's names (one per shared array), kernels and noise; record the shapes."""
        named = self._children
        self._index = {what: index_children(named, what) for what in ("param", "state")}
        leaves = self._index["param"][2]
        self._penalized = tuple(canon for canon, (leaf, local) in leaves.items() if local in leaf.penalized)
        self.kernel_names = tuple(sorted({k for _, c in named for k in c.kernel_names}))
        noise = [(j, c.noise_shape(1)) for j, (_, c) in enumerate(named)]
        self._noise = [(j, tuple(s[1:])) for j, s in noise if s is not None]
        rngs = {bool(getattr(named[j][1], "host_rng", True)) for j, _ in self._noise}
        if len(rngs) > 1:
            raise InputError(f"{type(self).__name__}: its layers draw noise from both the host RNG and the "
                             f"backend's (host_rng=True and False); use one kind inside one combinator")
        self.host_rng = rngs.pop() if rngs else True
        self.input_shape, self.output_shape = tuple(input_shape), tuple(output_shape)
        return self.output_shape

    @property
    def penalized(self) -> tuple:
        return getattr(self, "_penalized", ())

    def param_shapes(self) -> dict:
        self._require_built()
        return dict(self._index["param"][1])

    def param_kinds(self) -> dict:
        return {canon: layer_param_kinds(leaf)[local] for canon, (leaf, local) in self._index["param"][2].items()}

    def state_shapes(self) -> dict:
        self._require_built()
        return dict(self._index["state"][1])

    def init_params(self, rng, asarray) -> dict:
        """Each child's parameters drawn in order (a shared layer's once, at its first use)."""
        self._require_built()
        params = {}
        for (_, child), keys in zip(self._children, self._index["param"][0]):
            if keys and any(canon not in params for _, canon in keys):
                drawn = child.init_params(rng, asarray)
                for local, canon in keys:
                    params.setdefault(canon, drawn[local])
        return params

    def init_state(self, asarray) -> dict:
        self._require_built()
        state = {}
        for (_, child), keys in zip(self._children, self._index["state"][0]):
            if keys:
                made = child.init_state(asarray)
                state.update({canon: made[local] for local, canon in keys})
        return state

    def scratch_per_sample(self) -> int:
        return max([c.scratch_per_sample() for _, c in self._children] + [0])

    def noise_shape(self, batch: int):
        """(batch, total): one block of U[0, 1) per sample holding every child's draws side by side."""
        if not self._noise:
            return None
        return (batch, sum(math.prod(s) for _, s in self._noise))

    def _child_noise(self, noise, batch: int) -> dict:
        if noise is None or not self._noise:
            return {}
        xp, parts, start = namespace(noise), {}, 0
        for j, shape in self._noise:
            size = math.prod(shape)
            parts[j] = xp.reshape(noise[:, start:start + size], (batch, *shape))
            start += size
        return parts

    def updated_state(self, state, x) -> dict:
        """Not without the parameters: the children's statistics depend on them; `forward_with_state` gives them."""
        raise InputError(f"{type(self).__name__}.updated_state(state, x) cannot compute its children's state without "
                         f"their parameters; call forward_with_state(params, x, training=True, state=state), whose "
                         f"third result is the new state (a model does)")

    def _call(self, j: int, params: dict, x, training, need_dx, noise, state, kernels, new_state: dict):
        """Child j on x: (y, backward); its state's next values go into new_state."""
        child = self._children[j][1]
        pkeys, skeys = self._index["param"][0][j], self._index["state"][0][j]
        p = {local: params[canon] for local, canon in pkeys}
        extra = {"kernels": kernels} if child.kernel_names else {}
        if not skeys:
            return child.forward(p, x, training, need_dx, noise, **extra)
        s = None if state is None else {local: state[canon] for local, canon in skeys}
        y, back, ns = child.forward_with_state(p, x, training, need_dx, noise, s, kernels)
        if ns:
            new_state.update({canon: ns[local] for local, canon in skeys})
        return y, back

    def _gather(self, j: int, g: dict, grads: dict) -> None:
        """Child j's gradients into grads by name here, summed where a shared array is used again."""
        for local, canon in self._index["param"][0][j]:
            grads[canon] = grads[canon] + g[local] if canon in grads else g[local]

    def forward(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        """x: (batch, *input_shape) -> (y, backward); backward(dy) -> (dx, grads by dotted name). state: the
        children's running statistics by dotted name (None: their initial values); kernels: the backend's
        native kernels for the children that run them (None: array-API code)."""
        y, back, _ = self.forward_with_state(params, x, training, need_dx, noise, state, kernels)
        return y, back

    def forward_with_state(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        raise NotImplementedError


def _layer_list(layers, owner: str, word: str) -> list:
    if isinstance(layers, (str, dict)) or isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
        raise InputError(f"{owner}({word}=...) takes a list of layers, e.g. {owner}([Dense(4, 4), \"relu\"]), "
                         f"got {type(layers).__name__} {layers!r:.60}")
    layers = list(layers)
    if not layers:
        raise InputError(f"{owner} needs at least one layer in {word}, e.g. {owner}([Dense(4, 4)])")
    return layers


@register("Chain.v1", aliases=("chain",))
class Chain(Combinator):
    """Layers applied in order, as one layer (Thinc's chain, a nested Keras/PyTorch Sequential): children
    named "0", "1", ... ("layers.3.1.weight" is the weight of the second layer of the chain at layers.3)."""

    def __init__(self, layers):
        layers = _layer_list(layers, "Chain", "layers")
        self.layers = deserialize_layers(list(enumerate(layers)), owner="Chain: ")

    @property
    def _children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    @classmethod
    def examples(cls):
        from .activations import Tanh
        from .dense import Dense
        from .normalization import BatchNorm
        from .embedding import Embedding
        from .normalization import LayerNorm
        shared = Dense(3, 3)
        return [({"layers": [Dense(4, 3), Tanh(), BatchNorm(), Dense(3, 2)]}, (4,)),
                ({"layers": [shared, Tanh(), shared]}, (3,)),
                ({"layers": [Embedding(6, 3), LayerNorm(), Dense(3, 2)]}, (4,))]

    @property
    def integer_input(self) -> bool:
        """The first layer's: a chain that starts with an Embedding takes token ids."""
        return bool(self.layers) and self.layers[0].integer_input

    def sample_input(self, rng, shape: tuple):
        return self.layers[0].sample_input(rng, shape)

    def get_config(self) -> dict:
        return {"layers": serialize_layers(self._children)}

    def build(self, input_shape):
        self._walk_for_cycles()
        shape = tuple(input_shape)
        for name, child in self._children:
            shape = self._build_child(name, child, shape)
        return self._finish_build(input_shape, shape)

    def forward_with_state(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        new_state = dict(state) if state else {}
        noises, backs = self._child_noise(noise, x.shape[0]), []
        for j in range(len(self.layers)):
            x, back = self._call(j, params, x, training, need_dx if j == 0 else True, noises.get(j), state, kernels,
                                 new_state)
            backs.append(back)

        def backward(dy):
            grads = {}
            for j in range(len(backs) - 1, -1, -1):
                dy, g = backs[j](dy)
                self._gather(j, g, grads)
            return dy, grads

        return x, backward, new_state


class _Branches(Combinator):
    """Branches applied to one input, joined by `_join`; backward sums the branches' input gradients."""

    def _branch_shapes(self, input_shape) -> list:
        self._walk_for_cycles()
        return [self._build_child(name, child, tuple(input_shape)) for name, child in self._children]

    def _join(self, xp, ys):
        raise NotImplementedError

    def _split(self, dy) -> list:
        raise NotImplementedError

    def forward_with_state(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        new_state = dict(state) if state else {}
        noises = self._child_noise(noise, x.shape[0])
        outs = [self._call(j, params, x, training, need_dx, noises.get(j), state, kernels, new_state)
                for j in range(len(self._children))]
        xp = namespace(x)
        backs = [b for _, b in outs]

        def backward(dy):
            grads, dx = {}, None
            for j, (back, part) in enumerate(zip(backs, self._split(dy))):
                d, g = back(part)
                self._gather(j, g, grads)
                if need_dx:
                    dx = d if dx is None else dx + d
            return dx, grads

        return self._join(xp, [y for y, _ in outs]), backward, new_state


def _disagree(owner, named, shapes, hint) -> InputError:
    parts = ", ".join(f"{name} ({_describe(c)}) gives {s}" for (name, c), s in zip(named, shapes))
    return InputError(f"{owner}: branch outputs must agree, but {parts}; {hint}")


@register("Add.v1", aliases=("add",))
class Add(_Branches):
    """y = branch_0(x) + branch_1(x) + ...: branches of one input whose outputs have one shape (Keras' Add on
    branches, Thinc's add); children named "0", "1", ..."""

    def __init__(self, branches):
        branches = _layer_list(branches, "Add", "branches")
        self.branches = deserialize_layers(list(enumerate(branches)), owner="Add: ")

    @property
    def _children(self):
        return [(str(i), layer) for i, layer in enumerate(self.branches)]

    @classmethod
    def examples(cls):
        from .activations import Identity, Tanh
        from .dense import Dense
        return [({"branches": [Dense(3, 2), Chain([Dense(3, 2), Tanh()]), Dense(3, 2)]}, (3,)),
                ({"branches": [Identity(), Tanh()]}, (2, 3))]

    def get_config(self) -> dict:
        return {"branches": serialize_layers(self._children)}

    def build(self, input_shape):
        shapes = self._branch_shapes(input_shape)
        if len(set(shapes)) > 1:
            raise _disagree("Add", self._children, shapes, "make every branch give the same shape")
        return self._finish_build(input_shape, shapes[0])

    def _join(self, xp, ys):
        y = ys[0]
        for other in ys[1:]:
            y = y + other
        return y

    def _split(self, dy):
        return [dy] * len(self.branches)


@register("Concatenate.v1", aliases=("concatenate", "concat"))
class Concatenate(_Branches):
    """Branches of one input joined along `axis` (counted with the batch as axis 0, as torch.cat's dim and
    Keras' axis: 1 is the features of (N, F) and the channels of (N, C, H, W); negative counts from the end);
    the other dimensions must agree. Children named "0", "1", ..."""

    def __init__(self, branches, axis: int = 1):
        branches = _layer_list(branches, "Concatenate", "branches")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise InputError(f"Concatenate(axis=...) takes an int (1: features or channels), got {axis!r:.40}")
        self.axis = axis
        self.branches = deserialize_layers(list(enumerate(branches)), owner="Concatenate: ")

    @property
    def _children(self):
        return [(str(i), layer) for i, layer in enumerate(self.branches)]

    @classmethod
    def examples(cls):
        from .activations import ReLU, Tanh
        from .conv import Conv2D
        from .dense import Dense
        return [({"branches": [Dense(3, 2), Chain([Dense(3, 4), Tanh()])]}, (3,)),
                ({"branches": [Conv2D(1, 2, 3, padding=1), Chain([Conv2D(1, 1, 1), ReLU()])], "axis": -3}, (1, 3, 3))]

    def get_config(self) -> dict:
        return {"branches": serialize_layers(self._children), "axis": self.axis}

    def build(self, input_shape):
        shapes = self._branch_shapes(input_shape)
        rank = len(shapes[0]) + 1
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise InputError(f"Concatenate(axis={self.axis}) does not fit branch outputs of shape (batch, "
                             f"{', '.join(map(str, shapes[0]))}); choose an axis from 1 to {rank - 1} (or -1 to "
                             f"-{rank - 1}); axis 0 is the batch")
        rest = {s[:axis - 1] + s[axis:] for s in shapes}
        if len(rest) > 1 or len({len(s) for s in shapes}) > 1:
            raise _disagree(f"Concatenate(axis={self.axis})", self._children, shapes,
                            f"every dimension but axis {self.axis} must agree")
        self._axis, self._sizes = axis, [s[axis - 1] for s in shapes]
        out = list(shapes[0])
        out[axis - 1] = sum(self._sizes)
        return self._finish_build(input_shape, tuple(out))

    def _join(self, xp, ys):
        return xp.concat(ys, axis=self._axis)

    def _split(self, dy):
        parts, start, lead = [], 0, (slice(None),) * self._axis
        for size in self._sizes:
            parts.append(dy[lead + (slice(start, start + size), ...)])
            start += size
        return parts


@register("Residual.v1", aliases=("residual",))
class Residual(_Branches):
    """y = block(x) + shortcut(x): the shortcut the identity (None, the default) or a layer that gives the
    block's output shape from its input (a 1x1 Conv2D with stride where the block changes channels or size).
    Children named "block" and "shortcut" ("layers.3.block.0.weight")."""

    def __init__(self, block, shortcut=None):
        named = [("block", block)] + ([("shortcut", shortcut)] if shortcut is not None else [])
        made = deserialize_layers(named, owner="Residual: ")
        self.block = made[0]
        self.shortcut = made[1] if shortcut is not None else None

    @property
    def _children(self):
        return [("block", self.block)] + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])

    @classmethod
    def examples(cls):
        from .activations import ReLU, Tanh
        from .conv import Conv2D
        from .dense import Dense
        from .normalization import BatchNorm
        return [({"block": Chain([Dense(3, 3), Tanh(), Dense(3, 3)])}, (3,)),
                ({"block": Chain([Conv2D(1, 2, 3, stride=2, padding=1, bias=False), BatchNorm(), ReLU()]),
                  "shortcut": Conv2D(1, 2, 1, stride=2)}, (1, 3, 3))]

    def get_config(self) -> dict:
        specs = serialize_layers(self._children)
        return {"block": specs[0], "shortcut": specs[1] if len(specs) > 1 else None}

    def build(self, input_shape):
        shapes = self._branch_shapes(input_shape)
        if len(shapes) == 1 and shapes[0] != tuple(input_shape):
            raise InputError(f"Residual: block ({_describe(self.block)}) gives {shapes[0]} from input "
                             f"{tuple(input_shape)}, so the identity shortcut does not fit; give a shortcut that "
                             f"makes {shapes[0]}, e.g. shortcut=Conv2D(in, out, 1, stride=2)")
        if len(shapes) == 2 and shapes[0] != shapes[1]:
            raise _disagree("Residual", self._children, shapes, "give the shortcut a layer that makes the block's "
                            "shape (a 1x1 Conv2D with the block's stride and channels)")
        return self._finish_build(input_shape, shapes[0])

    def _join(self, xp, ys):
        return ys[0] + ys[1]

    def forward_with_state(self, params, x, training=False, need_dx=True, noise=None, state=None, kernels=None):
        if self.shortcut is not None:
            return super().forward_with_state(params, x, training, need_dx, noise, state, kernels)
        new_state = dict(state) if state else {}
        y, back = self._call(0, params, x, training, need_dx, self._child_noise(noise, x.shape[0]).get(0), state,
                             kernels, new_state)

        def backward(dy):
            d, g = back(dy)
            grads = {}
            self._gather(0, g, grads)
            return (d + dy if need_dx else None), grads

        return y + x, backward, new_state

    def _split(self, dy):
        return [dy, dy]


def walk(layer, path: tuple = ()):
    """(path, layer) of a layer and every layer inside it, depth first, each use of a shared layer once per use:
    path () for the layer itself, ("block", "0") for the first layer of a Residual's Chain block."""
    yield path, layer
    for name, child in _sublayers(layer):
        yield from walk(child, path + (name,))
