"""One open registry and one config protocol for layers, losses, optimizers, schedules, penalties,
initializers and models.

    @xpnet.register("Scale.v1")          # kind taken from the base class (Layer -> "layer")
    class Scale(xpnet.Layer): ...

`get_config()` returns the constructor's arguments as JSON-able data (recorded automatically when
the object is built, so a subclass only overrides it when it must); `from_config(config)` calls the
constructor with them. `serialize(obj)` gives `{"class": "Scale.v1", "config": {...}}` and
`deserialize(spec, kind)` builds the object back, so a whole model is expressible as JSON and
checkpoints are rebuilt only through here. Names carry a version ("Dense.v1"); "Dense" finds the
newest version, and short aliases ("relu", "sgd", "softmax_cross_entropy") are what the command line
and string arguments use. Nothing here imports any other xpnet module but the error type.
"""
from __future__ import annotations

import functools
import inspect
import json
import re
from pathlib import Path

from .errors import InputError

KINDS = ("layer", "loss", "optimizer", "schedule", "penalty", "initializer", "model")

_ENTRIES: dict = {k: {} for k in KINDS}    # kind -> registered name ("Dense.v1") -> class or function
_ALIASES: dict = {k: {} for k in KINDS}    # kind -> alias ("relu") -> (registered name, default kwargs)
_VERSIONED = re.compile(r"^(?P<base>.+)\.v(?P<version>\d+)$")


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(name: str | None = None, kind: str | None = None, aliases=()):
    """Class (or function) decorator: register it under `name` (default: the class name + ".v1").
    `kind` defaults to the class's `kind` attribute (Layer, Loss, Optimizer, ... set it)."""

    def deco(obj):
        k = kind or getattr(obj, "kind", None)
        if k not in KINDS:
            raise InputError(f"cannot register {obj!r}: unknown kind {k!r}; pass kind= one of {', '.join(KINDS)}")
        full = name or f"{obj.__name__}.v1"
        if not _VERSIONED.match(full):
            full = f"{full}.v1"
        previous = _ENTRIES[k].get(full)
        if previous is not None and previous is not obj and (
                getattr(previous, "__module__", None), getattr(previous, "__qualname__", None)) != (
                getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)):
            raise InputError(f"{k} name {full!r} is already registered to {previous!r}; choose another name or "
                             f"a new version, e.g. {_VERSIONED.match(full)['base']}.v{int(_VERSIONED.match(full)['version']) + 1}")
        _ENTRIES[k][full] = obj
        if isinstance(obj, type):
            obj.registered_name = full
        for a in aliases:
            alias(a, full, kind=k)
        return obj

    return deco


def alias(short: str, target: str, kind: str, **defaults) -> None:
    """A short name for a registered entry, optionally with default constructor arguments
    (e.g. "momentum" -> SGD with momentum=0.9)."""
    _ALIASES[kind][_norm(short)] = (target, defaults)


def aliases(kind: str) -> list[str]:
    """The short names of one kind, in registration order."""
    return list(_ALIASES[kind])


def names(kind: str) -> list[str]:
    """The registered (versioned) names of one kind."""
    return list(_ENTRIES[kind])


def _lookup(kind: str, name: str):
    """(entry, default kwargs) for a registered name, a name without version (newest), or an alias."""
    entries = _ENTRIES[kind]
    if name in entries:
        return entries[name], {}
    key = _norm(name)
    if key in _ALIASES[kind]:
        target, defaults = _ALIASES[kind][key]
        return entries[target], defaults
    best = None
    for full in entries:
        m = _VERSIONED.match(full)
        if m and _norm(m["base"]) == key or _norm(full) == key:
            version = int(m["version"]) if m else 0
            if best is None or version > best[0]:
                best = (version, full)
    if best is None:
        return None, None
    return entries[best[1]], {}


def get(kind: str, name: str):
    """The class (or function) registered under `name`; unknown names list the valid ones."""
    entry, defaults = _lookup(kind, name)
    if entry is None:
        raise unknown(kind, name)
    if defaults:
        return functools.partial(entry, **defaults)
    return entry


def unknown(kind: str, name) -> InputError:
    short = aliases(kind)
    listed = ", ".join(short) if short else ", ".join(names(kind))
    more = f" (or a registered class: {', '.join(names(kind))})" if short else ""
    return InputError(f"unknown {kind} {name!r}; choose one of: {listed}{more}; register your own with "
                      f"@xpnet.register")


def resolve(value, kind: str, **kwargs):
    """A name (alias or registered name), a {"class", "config"} spec, or an instance -> an instance."""
    if isinstance(value, str):
        return get(kind, value)(**kwargs)
    if isinstance(value, dict):
        return deserialize(value, kind)
    return value


def serialize(obj) -> dict:
    """{"class": registered name, "config": obj.get_config()}."""
    cls = type(obj)
    name = getattr(cls, "registered_name", None)
    if name is None or _ENTRIES.get(getattr(cls, "kind", None), {}).get(name) is not cls:
        raise InputError(f"{cls.__name__} is not registered, so it cannot be saved or described as a config; "
                         f"decorate it with @xpnet.register(\"{cls.__name__}.v1\")")
    return {"class": name, "config": obj.get_config()}


def deserialize(spec, kind: str, **overrides):
    """An object from {"class": name, "config": {...}} (overrides go to its from_config)."""
    if not isinstance(spec, dict) or "class" not in spec:
        raise InputError(f"a {kind} config must be a dict {{\"class\": name, \"config\": {{...}}}}, got {spec!r}")
    entry, defaults = _lookup(kind, spec["class"])
    if entry is None:
        raise unknown(kind, spec["class"])
    config = dict(defaults, **(spec.get("config") or {}))
    if hasattr(entry, "from_config"):
        return entry.from_config(config, **overrides)
    return entry(**config, **overrides)


class Configurable:
    """Base of everything with a config: records its constructor arguments for `get_config()`.

    The outermost `__init__` of a subclass records the arguments it was called with (defaults filled
    in), so subclasses need no boilerplate. Override `get_config` when the constructor's arguments are
    not JSON-able or not what rebuilds the object."""

    kind: str | None = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        sig = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kwargs):
            if "_config" not in self.__dict__:
                bound = sig.bind(self, *args, **kwargs)
                bound.apply_defaults()
                config = {}
                for pname, value in list(bound.arguments.items())[1:]:
                    p = sig.parameters[pname]
                    if p.kind is p.VAR_KEYWORD:
                        config.update(value)
                    elif p.kind is p.VAR_POSITIONAL:
                        if value:
                            raise InputError(f"{cls.__name__} takes *{pname}; give its config as keyword "
                                             f"arguments or override get_config")
                    else:
                        config[pname] = value
                self.__dict__["_config"] = config
            init(self, *args, **kwargs)

        cls.__init__ = recording_init

    def get_config(self) -> dict:
        """The constructor's arguments (JSON-able data)."""
        return dict(self.__dict__.get("_config", {}))

    @classmethod
    def from_config(cls, config: dict, **overrides):
        return cls(**dict(config, **overrides))


def model_from_config(spec, backend=None, device=None, dtype=None, **options):
    """A model from its config: {"class": "Sequential", "config": {...}} as a dict, a JSON string or the path
    of a .json file (what `xpnet.serialize(model)` gives; `json.dumps` it to write one). options: run options
    of the model's constructor that are not part of its config (compile=True)."""
    return deserialize(load_config(spec), "model", backend=backend, device=device, dtype=dtype, **options)


def load_config(spec):
    """A config as data: a dict as it is, a JSON string or the path of a .json file parsed."""
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(text).read_text()
            except OSError as exc:
                raise InputError(f"cannot read model file {spec}: {exc}") from None
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise InputError(f"the model config is not valid JSON ({exc}); expected "
                             f'{{"class": "Sequential", "config": {{"layers": [...], ...}}}}') from None
    return spec
