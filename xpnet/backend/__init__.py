"""The one package that names array libraries: pick a namespace, a device and a dtype.

Everything else in xpnet gets `xp` from a `Backend` (or from its arrays through array-api-compat) and
uses only Array API standard functions. `Backend` (in _base.py) holds what all backends share; each
array library has its own module and subclass (_numpy.py, _strict.py, _torch.py, _jax.py, _cupy.py),
and `Backend(name, device)` returns the right one. A new backend is one new module plus one row in
_base.TABLE.

The package module is callable: `xpnet.backend("numpy")` runs `backend()` below (see xpnet/_callable.py),
while `import xpnet.backend` gives this module.
"""
from __future__ import annotations

import os
import sys

import array_api_compat
import numpy as np

from .._callable import make_callable
from ._base import (COMPILERS, DTYPES, GPU_CAPABLE, INSTALL, KERNEL_NAMES, NAMES, Backend, BackendError, Kernels,
                    NativeRNG, _cuda_count, _import, _parse_device, backend_class)

__all__ = ["DTYPES", "GPU_CAPABLE", "INSTALL", "KERNEL_NAMES", "NAMES", "Backend", "BackendError", "Kernels", "NativeRNG",
           "backend", "backend_for", "native_kernels_default",
           "backend_class", "describe", "is_foreign", "is_host", "is_out_of_memory", "library_of",
           "out_of_memory_detail", "out_of_memory_message", "placement",
           "set_array_api_strict_version", "to_numpy"]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure: CuPy's or torch's OutOfMemoryError, JAX's RESOURCE_EXHAUSTED,
    or NumPy's MemoryError."""
    text = str(exc)
    return (isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__
            or "out of memory" in text.lower() or "RESOURCE_EXHAUSTED" in text)


def out_of_memory_message(exc: BaseException, bk: Backend, doing: str) -> str | None:
    """For an allocation failure (is_out_of_memory), the one line to raise instead: "{backend} on {device}
    ran out of memory {doing} ({type}: {first 200 characters})"; None for any other error.

    It keeps only strings, so the caller can let go of `exc` before raising. That matters: `raise
    NewError(...) from None` inside the `except` block still stores `exc` as the new error's
    __context__ (from None only hides it), and with it the traceback and the failed step's frames,
    whose device arrays then stay allocated for as long as the new error lives. Raise after the block:

        error = None
        try:
            return _fit(model, X, y, **kwargs)
        except Exception as exc:
            message = out_of_memory_message(exc, model.bk, f"training a model of ...: lower --batch-size")
            if message is None:
                raise
            error = OutOfMemory(message)
        raise error  # Python deleted `exc` at the end of the block: no context, no frames of the step
    """
    detail = out_of_memory_detail(exc)
    return None if detail is None else f"{bk.name} on {bk.device} ran out of memory {doing} ({detail})"


def out_of_memory_detail(exc: BaseException) -> str | None:
    """For an allocation failure (is_out_of_memory), what the library said: "{type}: {first 200 characters}",
    a string only (see out_of_memory_message for why); None for any other error. For a message without a
    backend yet (building the model: `xpnet.cli.train.build_model`)."""
    if not is_out_of_memory(exc):
        return None
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def is_host(a) -> bool:
    """Host data: a NumPy array or scalar, or a Python number or sequence."""
    return isinstance(a, (np.ndarray, np.generic, int, float, list, tuple))


#: the top-level modules of array types that are neither host data nor converted on the host
_FOREIGN_MODULES = ("cupy", "torch", "jax", "jaxlib", "array_api_strict", "dask", "sparse")


def is_foreign(a) -> bool:
    """An array of another array library (not NumPy, not a Python sequence)."""
    mod = type(a).__module__.split(".")[0]
    return mod in _FOREIGN_MODULES


def placement(a, bk: Backend) -> str:
    """Where data `a` given to a model on backend `bk` lives, the one test the model makes:
    "device": an array of bk's library on bk's device, used as it is (never a NumPy array: NumPy data is
    host data, on the numpy backend too); "foreign": an array of another array library, or of bk's library
    on another device (refused, or left for the caller to refuse); "host": anything else (NumPy, Python
    numbers and sequences), checked and converted on the host."""
    if not is_host(a) and bk.owns(a):
        return "device"
    return "foreign" if is_foreign(a) else "host"


def torch_compiling() -> bool:
    """Whether torch.compile (dynamo) is tracing now (`torch.compiler.is_compiling()`; False where torch was
    never imported). Dynamo reads it as the constant True, so code may branch on it without a graph break."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.compiler.is_compiling()


def is_traced(a) -> bool:
    """Whether array `a` is abstract, being traced into a compiled function: a tracer inside jax.jit, or any
    array while torch.compile (dynamo) traces (`torch.compiler.is_compiling()`, which dynamo reads as the
    constant True, so a branch on it costs no graph break). A check that needs the array's values
    (`int(xp.max(ids))`: a host sync, and a graph break under dynamo) runs only where this is False. Reads
    the libraries from sys.modules: one that was never imported cannot be tracing."""
    if torch_compiling():
        return True
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(a, jax.core.Tracer)


__all__ += ["is_traced", "torch_compiling"]


def _classes():
    return [backend_class(name) for name in NAMES]


def to_numpy(a) -> np.ndarray:
    """Any supported array (or scalar) -> NumPy array on the host."""
    if isinstance(a, (np.ndarray, np.generic, int, float, list, tuple)):
        return np.asarray(a)
    for cls in _classes():
        if cls.is_array(a):
            return cls.to_host(a)
    return np.from_dlpack(a)


def library_of(a) -> str:
    """Short name of the array library of `a`, for error messages."""
    if isinstance(a, np.ndarray):
        return "numpy"
    for cls in _classes():
        if array_api_compat.is_array_api_obj(a) and cls.is_array(a):
            return cls.name
    mod = type(a).__module__.split(".")[0]
    return mod or type(a).__name__


def backend_for(a) -> Backend:
    """The backend an array lives on: its library and device (`Backend.device_of`), e.g. a torch tensor on
    cuda:1 -> Backend('torch', 'cuda:1'), an array_api_strict array on its "device1" -> Backend('array_api_strict',
    'cpu:1'); host data (NumPy, Python numbers and sequences) -> Backend('numpy'). What a caller that takes any
    array library's input (xpnet.sklearn) trains on, so that the input stays where it is."""
    if is_host(a):
        return Backend("numpy")
    for cls in _classes():
        if cls.is_array(a):
            return Backend(cls.name, cls.device_of(a))
    raise BackendError(f"{type(a).__module__}.{type(a).__name__} is not an array of a backend xpnet runs on; give a "
                       f"NumPy array or an array of: {', '.join(NAMES)}")


def backend(name: str | Backend | None = None, device: str | None = None) -> Backend:
    """Select a backend by name and device; None reads XPNET_BACKEND / XPNET_DEVICE, else 'auto'
    ('auto': CuPy when a CUDA GPU is usable, else NumPy). Read at this call, never at import."""
    if isinstance(name, Backend):
        if device is not None and _parse_device(device) != _parse_device(name.device):
            return Backend(name.name, device)
        return name
    name = name or os.environ.get("XPNET_BACKEND") or "auto"
    device = device or os.environ.get("XPNET_DEVICE") or None
    name = name.strip().lower().replace("-", "_")
    if name == "auto":
        kind, _ = _parse_device(device)
        if kind != "cpu" and _cuda_count("cupy") > 0:
            return Backend("cupy", device or "cuda:0")
        if kind == "cuda":
            raise BackendError(f"device {device!r} was asked for with backend 'auto', but CuPy sees no usable CUDA GPU; "
                               f"install CuPy ({INSTALL['cupy']}) or name --backend torch")
        return Backend("numpy", device)
    return Backend(name, device)


def native_kernels_default() -> bool:
    """Whether models use their backend's native kernels when not told (native_kernels=None): yes, unless the
    environment variable XPNET_NATIVE_KERNELS is 0 (or false, no, off). Read at each call."""
    value = os.environ.get("XPNET_NATIVE_KERNELS", "1").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on", ""):
        return True
    raise BackendError(f"XPNET_NATIVE_KERNELS={value!r} is not understood; set it to 1 (use the backends' native "
                       f"kernels, the default) or 0 (the array-API reference everywhere)")


def describe(name: str) -> dict:
    """One row of `xpnet backends`: name, available, version, devices, kernels (the native kernels a model on it
    uses; none where the layers run their array-API reference), reason."""
    row = {"name": name, "available": False, "version": None, "devices": [], "kernels": [], "reason": None}
    try:
        mod = _import(name)
    except BackendError as exc:
        row["reason"] = str(exc)
        return row
    row["version"] = getattr(mod, "__version__", "unknown")
    cls = backend_class(name)
    if cls.kernels_class is not None:
        row["kernels"] = list(cls.kernels_class.names())
    devices = ["cpu"] if cls.runs_on_cpu else []
    count = _cuda_count(name)
    devices += [f"cuda:{i}" + _gpu_name(cls, i) for i in range(count)]
    row["devices"] = devices
    row["available"] = bool(devices)
    if not devices:
        row["reason"] = f"no usable CUDA GPU for {name} (it runs on CUDA GPUs only)"
    return row


def _gpu_name(cls, index: int) -> str:
    try:
        name = cls.gpu_name(index)
    except Exception:
        return ""
    return f" ({name})" if name else ""


def set_array_api_strict_version(version: str) -> str:
    """Select the Array API version that array_api_strict enforces (e.g. '2024.12'); returns the previous one."""
    strict = _import("array_api_strict")
    previous = strict.get_array_api_strict_flags()["api_version"]
    strict.set_array_api_strict_flags(api_version=version)
    return previous


make_callable(__name__)  # xpnet.backend(...) calls backend() above
