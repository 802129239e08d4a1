"""Mixed precision, decided in one place: the policy a model's training step follows, the float32 islands, and
dynamic loss scaling (issue 33).

A `Policy` ("bf16-mixed" or "fp16-mixed"; None: everything in the model's dtype) says:

- compute: the dtype of the forward and backward ("bfloat16" or "float16"). The master weights, the optimizer
  state and the layer state (running statistics) stay in the model's dtype (`model.dtype`, float32); each step
  casts the parameters to the compute dtype (`cast_params`), and the gradients come back to the master dtype
  (`to_master`) before the unscaling, the penalty, clipping and the update; micro-batch gradients
  (accumulate=k) are summed in the master dtype.
- the float32 islands (ISLANDS): the ops that compute in float32 whatever the compute dtype, because 16 bits
  overflow or lose their sums there. Each calls `widen` on its inputs and `narrow_to` on its result: the one
  rule (`is_narrow`: a 16-bit float) is here, not in the layers.
- loss scaling (float16 only, `scaling`): the loss gradient is multiplied by the scale (initial 2**15); the
  gradients are divided by it in float32; when any is not finite the update is skipped and the scale halved,
  after `growth_interval` clean steps in a row it is doubled. All of it is array work selected with `where`,
  so neither a compiled step retraces nor an eager step waits for the device (`LossScale`).

bfloat16 has float32's exponent range: it needs no loss scaling.
"""
from __future__ import annotations

from .errors import InputError

#: the policies by name: (compute dtype, whether dynamic loss scaling runs)
POLICIES = {"bf16-mixed": ("bfloat16", False), "fp16-mixed": ("float16", True)}

#: the ops that compute in float32 under a 16-bit policy (each calls widen / narrow_to), for the docs and tests:
ISLANDS = (
    "loss: every loss and its gradient, on float32 logits (Network._data_value_and_grads)",
    "BatchNorm: batch statistics, normalization and running statistics (running_mean/var stay float32)",
    "LayerNorm: statistics and normalization over the last axis",
    "attention: the softmax of the scores and its Jacobian (attention_ops.attention)",
    "embedding: the weight gradient's scatter-add (attention_ops.scatter_add_rows)",
    "gradients: summed over micro-batches, unscaled, penalized, clipped and applied in the master dtype",
)

INITIAL_SCALE = 2.0 ** 15
GROWTH_INTERVAL = 2000  # Keras' LossScaleOptimizer default


def is_narrow(dtype) -> bool:
    """Whether `dtype` is a 16-bit float (float16 or bfloat16, of any library): the islands widen it."""
    return str(dtype).rsplit(".", 1)[-1].rstrip("'>") in ("float16", "bfloat16")  # also <class 'numpy.float16'>


def widen(xp, a):
    """`a` in float32 when it is a 16-bit float, else as it is (a float32 island's input)."""
    return xp.astype(a, xp.float32) if is_narrow(a.dtype) else a


def narrow_to(xp, a, dtype):
    """`a` back in `dtype` (an island's result, in the dtype its input came in); a no-op when it already is."""
    return a if a.dtype == dtype else xp.astype(a, dtype)


class Policy:
    """A mixed-precision policy: name ("bf16-mixed" | "fp16-mixed"), compute (the dtype name), scaling (dynamic
    loss scaling on), growth_interval and initial_scale (the loss scale's). Made by `resolve`."""

    def __init__(self, name: str, growth_interval: int = GROWTH_INTERVAL, initial_scale: float = INITIAL_SCALE):
        if name not in POLICIES:
            raise InputError(f"precision must be one of {', '.join(map(repr, POLICIES))} or None (the model's dtype "
                             f"throughout), got {name!r}")
        if not isinstance(growth_interval, int) or isinstance(growth_interval, bool) or growth_interval < 1:
            raise InputError(f"growth_interval must be a positive int (clean steps before the loss scale doubles; "
                             f"default {GROWTH_INTERVAL}), got {growth_interval!r}")
        self.name = name
        self.compute, self.scaling = POLICIES[name]
        self.growth_interval = growth_interval
        self.initial_scale = float(initial_scale)

    def __repr__(self) -> str:
        return f"Policy({self.name!r})"

    def to_config(self):
        """The name, or {"name", "growth_interval", "initial_scale"} when they are not the defaults (a model's
        config keeps it, so a checkpoint resumes with the same scaling)."""
        if self.growth_interval == GROWTH_INTERVAL and self.initial_scale == INITIAL_SCALE:
            return self.name
        return {"name": self.name, "growth_interval": self.growth_interval, "initial_scale": self.initial_scale}

    def cast_params(self, xp, params: dict, dtype) -> dict:
        """The master parameters as the step's compute copies (dtype: the backend's compute dtype)."""
        return {k: xp.astype(v, dtype) for k, v in params.items()}


def resolve(precision, bk, master_dtype) -> Policy | None:
    """precision (None, a policy name, a Policy or its to_config() dict) as a Policy checked against the backend (which must have the
    compute dtype: `Backend.compute_dtype` refuses in one line) and the master dtype (float32 or float64)."""
    if precision is None:
        return None
    if isinstance(precision, Policy):
        policy = precision
    elif isinstance(precision, dict):
        policy = Policy(**precision)
    else:
        policy = Policy(precision)
    bk.compute_dtype(policy.compute)  # raises where the library lacks the type
    return policy


class LossScale:
    """The dynamic loss scale's arithmetic on device scalars (no host reads): `state` is {"scale": float32 (),
    "good": float32 () clean steps since the last change}, kept in TrainState.loss_scale and checkpointed."""

    @staticmethod
    def initial(bk, policy: Policy) -> dict:
        return {"scale": bk.asarray(policy.initial_scale, dtype=bk.xp.float32),
                "good": bk.asarray(0.0, dtype=bk.xp.float32)}

    @staticmethod
    def unscale(grads: dict, scale) -> dict:
        """The gradients (master dtype) divided by the loss scale: a non-finite entry stays non-finite."""
        return {k: g / scale for k, g in grads.items()}

    @staticmethod
    def all_finite(xp, grads: dict):
        """A boolean device scalar: every gradient entry finite (one reduction per parameter, no host read)."""
        flags = [xp.all(xp.isfinite(g)) for g in grads.values()]
        ok = flags[0]
        for f in flags[1:]:
            ok = xp.logical_and(ok, f)
        return ok

    @staticmethod
    def update(xp, state: dict, finite, interval: int) -> dict:
        """The next state: finite -> good + 1, and at `interval` clean steps the scale doubled and good 0;
        not finite -> the scale halved and good 0. Selected with where (no branch on the device value)."""
        scale, good = state["scale"], state["good"] + 1.0
        grow = good >= interval
        new_scale = xp.where(finite, xp.where(grow, scale * 2.0, scale), scale * 0.5)
        new_good = xp.where(finite, xp.where(grow, xp.zeros_like(good), good), xp.zeros_like(good))
        return {"scale": new_scale, "good": new_good}

    @staticmethod
    def select(xp, finite, new: dict, old: dict) -> dict:
        """new where finite, else old, entry by entry (nested dicts of arrays: params, optimizer state)."""
        out = {}
        for k, v in new.items():
            if isinstance(v, dict):
                out[k] = LossScale.select(xp, finite, v, old[k])
            else:
                out[k] = xp.where(finite, v, old[k])
        return out
