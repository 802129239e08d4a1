"""Parameter groups: which parameters get which weight decay and learning-rate multiplier, chosen by the KIND of
each parameter that its layer declares (`Layer.param_kinds()`), never by its name (names change when layers
nest).

Kinds: "weight" (a weight matrix or convolution kernel), "bias", "norm" (a normalization layer's scale),
"embedding" (an embedding table). A layer that declares none gets "weight" for parameters of two or more
dimensions and "bias" for the others (`default_kind`), nanoGPT's test.

A grouping is a rule word or a list of groups:

    "nanogpt"   decay every tensor of two or more dimensions, embeddings included; no decay on biases and
                normalization weights (nanoGPT's configure_optimizers)
    "mingpt"    decay weight matrices only; no decay on biases, normalization weights or embeddings (minGPT's)
    [{"kinds": ["weight"], "lr_scale": 1.0}, {"kinds": ["bias", "norm"], "weight_decay": 0.0, "lr_scale": 2.0}]

A group's "weight_decay" (default: the optimizer's own) replaces the optimizer's for its parameters, its
"lr_scale" (default 1) multiplies the learning rate. Every kind a model has must be in exactly one group.
"""
from __future__ import annotations

from .checks import NON_NEGATIVE, POSITIVE, check
from .errors import InputError

WEIGHT, BIAS, NORM, EMBEDDING = "weight", "bias", "norm", "embedding"
KINDS = (WEIGHT, BIAS, NORM, EMBEDDING)

#: the rule words: (decayed kinds, kinds without decay)
RULES = {
    "nanogpt": ((WEIGHT, EMBEDDING), (BIAS, NORM)),
    "mingpt": ((WEIGHT,), (BIAS, NORM, EMBEDDING)),
}


def default_kind(shape: tuple) -> str:
    """The kind of a parameter whose layer declares none: "weight" with two or more dimensions, else "bias"."""
    return WEIGHT if len(shape) >= 2 else BIAS


def layer_param_kinds(layer) -> dict:
    """{local name: kind} of a layer's parameters: its `param_kinds()`, a default (`default_kind`) for every
    parameter it leaves out."""
    shapes = layer.param_shapes()
    declared = layer.param_kinds() if hasattr(layer, "param_kinds") else {}
    return {name: declared.get(name) or default_kind(tuple(shape)) for name, shape in shapes.items()}


def check_groups(groups) -> tuple | None:
    """A grouping (rule word or list of group dicts) as a tuple of normalized groups ({"kinds": tuple,
    "weight_decay": float or None, "lr_scale": float}); None for None. Refused in one line when malformed."""
    if groups is None:
        return None
    if isinstance(groups, str):
        if groups not in RULES:
            raise InputError.for_argument("param_groups", f"{groups!r}: unknown grouping rule; choose one of "
                                                          f"{', '.join(RULES)}, or give a list of groups")
        decay, no_decay = RULES[groups]
        return ({"kinds": decay, "weight_decay": None, "lr_scale": 1.0},
                {"kinds": no_decay, "weight_decay": 0.0, "lr_scale": 1.0})
    if not isinstance(groups, (list, tuple)) or not groups or not all(isinstance(g, dict) for g in groups):
        raise InputError.for_argument("param_groups", f"{groups!r:.80}: must be a rule word ({', '.join(RULES)}) or "
                                                      f"a list of groups such as [{{\"kinds\": [\"weight\"]}}, "
                                                      f"{{\"kinds\": [\"bias\", \"norm\"], \"weight_decay\": 0.0}}]")
    out, seen = [], set()
    for i, g in enumerate(groups):
        unknown = set(g) - {"kinds", "weight_decay", "lr_scale"}
        kinds = g.get("kinds")
        if unknown or not isinstance(kinds, (list, tuple)) or not kinds or \
                not all(isinstance(k, str) for k in kinds):
            raise InputError.for_argument("param_groups", f"group {i} {g!r:.80}: a group is {{\"kinds\": [kind, ...], "
                                                          f"\"weight_decay\": float, \"lr_scale\": float}} with "
                                                          f"kinds among {', '.join(KINDS)} (or a layer's own)")
        twice = seen.intersection(kinds)
        if twice:
            raise InputError.for_argument("param_groups", f"group {i} names kind {sorted(twice)[0]!r} again; "
                                                          f"each kind belongs to one group")
        seen.update(kinds)
        wd = g.get("weight_decay")
        if wd is not None:
            wd = float(check("weight_decay", wd, NON_NEGATIVE, owner=f"param_groups[{i}]"))
        scale = float(check("lr_scale", g.get("lr_scale", 1.0), POSITIVE, owner=f"param_groups[{i}]"))
        out.append({"kinds": tuple(kinds), "weight_decay": wd, "lr_scale": scale})
    return tuple(out)


def partition(groups: tuple, kinds: dict, spec) -> list[list[str]]:
    """The parameter names {name: kind} of each group of `groups` (check_groups' form), in the model's order.
    `spec`: the grouping as given, for the message when a parameter's kind is in no group."""
    where = {k: i for i, g in enumerate(groups) for k in g["kinds"]}
    names = [[] for _ in groups]
    for name, kind in kinds.items():
        if kind not in where:
            raise InputError.for_argument("param_groups", f"{spec!r:.80}: parameter {name} is of kind {kind!r}, "
                                                          f"which no group names; add it to a group")
        names[where[kind]].append(name)
    return names
