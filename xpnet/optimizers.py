"""Optimizers: pure update rules. An optimizer holds only its hyperparameters; everything that changes
lives in the training state and is passed in:

    opt_state = optimizer.init(params)                       # every buffer, zeros, from the start
    hyper = optimizer.hyper(lr, t)                           # host float64 scalars for update t (1, 2, ...)
    params, opt_state = optimizer.apply(params, grads, opt_state, hyper, inplace=False)

`params` and `grads` are dicts {name: array}; `opt_state` is {name: {buffer: array}}. The learning rate,
the step count and Adam's bias corrections are computed on the host in float64 (`hyper`) and passed as
arguments, never as `beta1 ** t` on a device array, so a traced step is not frozen by them.

`inplace=True` (mutable arrays: NumPy, CuPy, torch, array-api-strict) writes the same arithmetic into the
parameters and buffers (`w -= lr * step`): bit-identical to the functional form, no new parameter-sized
arrays per step. JAX's immutable arrays use the functional form.

Every built-in optimizer also takes `clip_norm=` (clip the gradients by their global norm, PyTorch's
`clip_grad_norm_`), `clip_value=` (each element to [-v, v]) and `param_groups=` (a rule word, "nanogpt" or
"mingpt", or a list of groups: per-group weight decay and learning-rate multiplier by the parameter kinds
layers declare; xpnet.groups). A model turns them, with its schedule, into one `UpdatePlan`: what an update
does beyond `apply`, fixed once. With none of them (and a per-epoch schedule) the plan is `plain` and the
model calls `hyper` and `apply` exactly as before: no extra operation per step.
"""
from __future__ import annotations

from .clipping import clip_by_norm, clip_by_value
from .errors import InputError
from .groups import check_groups, partition
from .namespace import namespace
from .checks import FRACTION, NON_NEGATIVE, POSITIVE, check
from .registry import Configurable, alias, register

#: the regime options every built-in optimizer takes, and their defaults (left out of get_config when default,
#: so the configs of models without them are those of earlier versions)
REGIME_DEFAULTS = {"clip_norm": None, "clip_value": None, "param_groups": None}


def _sub(w, delta, inplace: bool):
    """w - delta (into w when in place)."""
    if inplace:
        w -= delta
        return w
    return w - delta


def _decay_add(buf, factor: float, add, inplace: bool):
    """factor * buf + add (into buf when in place)."""
    if inplace:
        buf *= factor
        buf += add
        return buf
    return factor * buf + add


class Optimizer(Configurable):
    kind = "optimizer"
    #: names of the per-parameter buffers, created as zeros by init()
    buffers: tuple = ()

    #: keyword arguments left out of get_config while they hold these defaults
    optional_defaults: dict = REGIME_DEFAULTS

    def __init__(self, lr: float, clip_norm: float | None = None, clip_value: float | None = None,
                 param_groups=None):
        check("lr", lr, POSITIVE, hint="try 0.01 for SGD or 0.001 for Adam")
        self.lr = float(lr)
        if clip_norm is not None:
            clip_norm = float(check("clip_norm", clip_norm, POSITIVE, hint="the largest global gradient norm, "
                                                                          "e.g. 1.0"))
        if clip_value is not None:
            clip_value = float(check("clip_value", clip_value, POSITIVE, hint="the largest gradient element"))
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.param_groups = param_groups
        self._groups = check_groups(param_groups)
        if self._groups and not hasattr(self, "weight_decay") and \
                any(g["weight_decay"] is not None for g in self._groups):
            raise InputError.for_argument("param_groups", f"{param_groups!r:.60}: {type(self).__name__} has no "
                                                          f"weight decay to set per group; use AdamW, Adam or SGD, "
                                                          f"or groups with lr_scale only")
        #: no clipping and no groups: the model applies updates as `hyper` and `apply` alone
        self.plain = clip_norm is None and clip_value is None and self._groups is None

    def get_config(self) -> dict:
        config = super().get_config()
        for k, default in self.optional_defaults.items():
            if k in config and config[k] == default:
                del config[k]
        return config

    def for_group(self, group: dict) -> "Optimizer":
        """This optimizer with a group's weight decay (None: its own), without clipping or groups: what updates
        the group's parameters (the learning-rate multiplier is applied to the rate given to its `hyper`)."""
        config = {k: v for k, v in self.get_config().items() if k not in REGIME_DEFAULTS}
        if group.get("weight_decay") is not None:
            config["weight_decay"] = group["weight_decay"]
        return type(self).from_config(config)

    def plan(self, kinds: dict, schedule=None) -> "UpdatePlan":
        """The UpdatePlan of this optimizer with `schedule` for parameters {name: kind} (in the model's order)."""
        return UpdatePlan(self, schedule, kinds)

    def init(self, params: dict) -> dict:
        """{name: {buffer: zeros like the parameter}} for every parameter."""
        return {name: {b: namespace(w).zeros_like(w) for b in self.buffers} for name, w in params.items()}

    def hyper(self, lr: float, t: int) -> dict:
        """The scalars of update number t (1-based) at learning rate lr, as host floats."""
        return {"lr": float(lr)}

    def apply(self, params: dict, grads: dict, state: dict, hyper: dict, inplace: bool = False):
        """One update of every parameter: returns (new params, new state)."""
        new_params, new_state, update = {}, {}, self.update
        for name, w in params.items():
            new_params[name], new_state[name] = update(w, grads[name], state[name], hyper, inplace)
        return new_params, new_state

    def update(self, w, g, bufs: dict, h: dict, inplace: bool):
        """(new w, new buffers) for one parameter."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register("SGD.v1", aliases=("sgd",))
class SGD(Optimizer):
    """SGD with optional classical or Nesterov momentum (PyTorch's form: buf = mu*buf + g); weight_decay adds
    weight_decay * w to the gradient first (PyTorch's SGD weight_decay)."""

    optional_defaults = dict(REGIME_DEFAULTS, weight_decay=0.0)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 clip_norm: float | None = None, clip_value: float | None = None, param_groups=None):
        check("weight_decay", weight_decay, NON_NEGATIVE)
        self.weight_decay = float(weight_decay)
        super().__init__(lr, clip_norm, clip_value, param_groups)
        check("momentum", momentum, FRACTION)
        if nesterov and not momentum:
            raise InputError("Nesterov momentum needs momentum > 0, e.g. momentum=0.9")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.buffers = ("momentum",) if self.momentum else ()

    def update(self, w, g, bufs, h, inplace):
        lr = h["lr"]
        if self.weight_decay:
            g = g + self.weight_decay * w
        if not self.momentum:
            return _sub(w, lr * g, inplace), bufs
        buf = _decay_add(bufs["momentum"], self.momentum, g, inplace)
        return _sub(w, lr * (g + self.momentum * buf if self.nesterov else buf), inplace), {"momentum": buf}


alias("momentum", "SGD.v1", kind="optimizer", momentum=0.9)
alias("nesterov", "SGD.v1", kind="optimizer", momentum=0.9, nesterov=True)


@register("BookSGD.v1", aliases=("book",))
class BookSGD(Optimizer):
    """The book's rule: delta = lr * g; w -= delta + alpha * delta_prev (a one-step look-back, not a velocity)."""

    buffers = ("delta_prev",)

    def __init__(self, lr: float = 0.001, alpha: float = 0.0, clip_norm: float | None = None,
                 clip_value: float | None = None, param_groups=None):
        super().__init__(lr, clip_norm, clip_value, param_groups)
        check("alpha", alpha, NON_NEGATIVE, hint="the book's momentum factor")
        self.alpha = float(alpha)

    def update(self, w, g, bufs, h, inplace):
        delta = h["lr"] * g
        return _sub(w, delta + self.alpha * bufs["delta_prev"], inplace), {"delta_prev": delta}


@register("Adam.v1", aliases=("adam",))
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds weight_decay * w to the gradient (L2)."""

    decoupled = False
    buffers = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, clip_norm: float | None = None, clip_value: float | None = None,
                 param_groups=None):
        check("weight_decay", weight_decay, NON_NEGATIVE)
        self.weight_decay = float(weight_decay)
        super().__init__(lr, clip_norm, clip_value, param_groups)
        check("beta1", beta1, FRACTION)
        check("beta2", beta2, FRACTION)
        check("eps", eps, POSITIVE)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def hyper(self, lr, t):
        lr = float(lr)
        return {"lr": lr, "step_size": lr / (1.0 - self.beta1 ** t), "bias2": 1.0 - self.beta2 ** t,
                "decay": lr * self.weight_decay}

    def update(self, w, g, bufs, h, inplace):
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * w
        m = _decay_add(bufs["m"], self.beta1, (1.0 - self.beta1) * g, inplace)
        v = _decay_add(bufs["v"], self.beta2, (1.0 - self.beta2) * (g * g), inplace)
        denom = namespace(v).sqrt(v / h["bias2"]) + self.eps
        if self.weight_decay and self.decoupled:
            w = _sub(w, h["decay"] * w, inplace)
        return _sub(w, h["step_size"] * (m / denom), inplace), {"m": m, "v": v}


@register("AdamW.v1", aliases=("adamw",))
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * weight_decay * w, then the Adam step."""

    decoupled = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, clip_norm: float | None = None, clip_value: float | None = None,
                 param_groups=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, clip_norm, clip_value, param_groups)


class UpdatePlan:
    """What one update does beyond `optimizer.apply`, fixed once per model (Network.update_plan): the rate of a
    per-step schedule, clipping, and the parameter groups. Pure: host scalars in (`hyper`), arrays out.

        lr = plan.rate(lr, t)                   # update t's rate (a per-step schedule's; else lr as given)
        hyper = plan.hyper(lr, t)               # host floats: each group's optimizer.hyper, the clip thresholds
        params, opt_state, norm = plan.apply(xp, params, grads, opt_state, hyper, inplace)

    The gradients are clipped as they come in (after the penalty's gradient is added and, in data-parallel
    training, after the all-reduce), by global norm first, then by value; `norm` is the global norm before
    clipping (None without clip_norm). Groups: group i's scalars are hyper["<i>.<name>"], its parameters are
    updated by `optimizer.for_group(group)` at lr * lr_scale."""

    def __init__(self, optimizer: Optimizer, schedule, kinds: dict):
        self.optimizer, self.schedule = optimizer, schedule
        self.per_step = bool(getattr(schedule, "per_step", False))
        self.clip_norm, self.clip_value = optimizer.clip_norm, optimizer.clip_value
        groups = optimizer._groups
        self.groups = None
        if groups:
            names = partition(groups, kinds, optimizer.param_groups)
            self.groups = [(optimizer.for_group(g), g["lr_scale"], n) for g, n in zip(groups, names) if n]
        self.plain = optimizer.plain and not self.per_step
        if self.per_step and schedule.min_lr > optimizer.lr:
            raise InputError.for_argument("min_lr", f"{schedule.min_lr!r}: must not exceed the learning rate "
                                                    f"{optimizer.lr!r}, the peak the schedule warms up to")

    def rate(self, lr: float, t: int) -> float:
        """The rate of update t (1-based): a per-step schedule's for t (the optimizer's lr is its peak), else lr."""
        return self.schedule.rate(t - 1, self.optimizer.lr) if self.per_step else lr

    def hyper(self, lr: float, t: int) -> dict:
        if self.groups is None:
            h = self.optimizer.hyper(lr, t)
        else:
            h = {}
            for i, (opt, scale, _) in enumerate(self.groups):
                for k, v in opt.hyper(lr * scale, t).items():
                    h[f"{i}.{k}"] = v
        if self.clip_norm is not None:
            h["clip_norm"] = self.clip_norm
        if self.clip_value is not None:
            h["clip_value"] = self.clip_value
        return h

    def apply(self, xp, params: dict, grads: dict, state: dict, hyper: dict, inplace: bool):
        norm = None
        if self.clip_norm is not None:
            grads, norm = clip_by_norm(xp, grads, hyper["clip_norm"])
        if self.clip_value is not None:
            grads = clip_by_value(xp, grads, hyper["clip_value"])
        if self.groups is None:
            params, state = self.optimizer.apply(params, grads, state, hyper, inplace)
            return params, state, norm
        new_params, new_state = {}, {}
        for i, (opt, _, names) in enumerate(self.groups):
            prefix = f"{i}."
            h = {k[len(prefix):]: v for k, v in hyper.items() if k.startswith(prefix)}
            p, s = opt.apply({k: params[k] for k in names}, {k: grads[k] for k in names},
                             {k: state[k] for k in names}, h, inplace)
            new_params.update(p)
            new_state.update(s)
        return {k: new_params[k] for k in params}, {k: new_state[k] for k in params}, norm
