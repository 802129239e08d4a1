"""Gradient clipping, written once with xp: by global norm (PyTorch's `torch.nn.utils.clip_grad_norm_`) and by
value (`clip_grad_value_`). Pure functions of a gradient dict {name: array}; the thresholds may be host floats
or 0-d arrays (a compiled step passes them as arguments, so a new threshold does not retrace).

    grads, norm = clip_by_norm(xp, grads, max_norm)   # norm: the global norm before clipping, a 0-d array
    grads = clip_by_value(xp, grads, clip_value)

The global norm is sqrt(sum over every parameter of sum(g**2)): PyTorch's norm of the per-tensor norms, up to
rounding. The gradients are multiplied by coef = min(max_norm / (norm + 1e-6), 1), as PyTorch does (always
multiplied: by exactly 1 when the norm is below the threshold, which changes no bit).
"""
from __future__ import annotations

#: what PyTorch adds to the norm before dividing (torch.nn.utils.clip_grad_norm_)
EPS = 1e-6


def global_norm(xp, grads: dict):
    """The 2-norm of all gradients together, a 0-d array: sqrt(sum of every element squared)."""
    total = None
    for g in grads.values():
        s = xp.sum(g * g)
        total = s if total is None else total + s
    return xp.sqrt(total)


def clip_by_norm(xp, grads: dict, max_norm) -> tuple[dict, object]:
    """(grads scaled so that their global norm is at most max_norm, the global norm before scaling)."""
    norm = global_norm(xp, grads)
    coef = xp.clip(max_norm / (norm + EPS), max=1.0)
    return {k: g * coef for k, g in grads.items()}, norm


def clip_by_value(xp, grads: dict, clip_value) -> dict:
    """Every gradient element clipped to [-clip_value, clip_value]."""
    return {k: xp.clip(g, min=-clip_value, max=clip_value) for k, g in grads.items()}
