"""The one module that names array libraries: pick a namespace, a device and a dtype.

Everything else in xpnet gets `xp` from a `Backend` (or from its arrays through
array-api-compat) and uses only Array API standard functions.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings

import array_api_compat
import numpy as np

NAMES = ("numpy", "array_api_strict", "torch", "jax", "cupy")
GPU_CAPABLE = ("torch", "jax", "cupy")
INSTALL = {
    "numpy": 'pip install xpnet',
    "array_api_strict": 'pip install "xpnet[array-api-strict]"',
    "torch": 'pip install "xpnet[torch]"',
    "jax": 'pip install "xpnet[jax]"',
    "cupy": 'pip install "xpnet[cupy-cuda12]" (or "xpnet[cupy-cuda13]", matching your CUDA driver)',
}
DTYPES = ("float32", "float64")


class BackendError(ValueError):
    """A backend, device or dtype that cannot be used here; the message says how to fix it."""


def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising anything else
        raise BackendError(
            f"backend {name!r} is not installed ({type(exc).__name__}: {exc}); install it with: {INSTALL[name]}"
        ) from None


def _cuda_count(name: str) -> int:
    """Number of usable CUDA devices for a GPU-capable backend (0 when none or not installed)."""
    try:
        if name == "cupy":
            cupy = importlib.import_module("cupy")
            # getDeviceCount() raises on a machine without a driver; is_available() does not.
            return cupy.cuda.runtime.getDeviceCount() if cupy.is_available() else 0
        if name == "torch":
            torch = importlib.import_module("torch")
            return torch.cuda.device_count() if torch.cuda.is_available() else 0
        if name == "jax":
            jax = importlib.import_module("jax")
            try:
                return len(jax.devices("gpu"))
            except RuntimeError:
                return 0
    except Exception:
        return 0
    return 0


def _parse_device(device: str | None) -> tuple[str, int]:
    if device is None:
        return "", 0
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text == "cuda" or text == "gpu":
        return "cuda", 0
    for prefix in ("cuda:", "gpu:"):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return "cuda", int(text[len(prefix):])
    raise BackendError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...)")


class Backend:
    """An array namespace `xp` on one device, plus the few things the standard lacks."""

    def __init__(self, name: str, device: str | None = None):
        if name not in NAMES:
            raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(NAMES + ('auto',))}")
        kind, index = _parse_device(device)
        if kind == "cuda" and name not in GPU_CAPABLE:
            raise BackendError(
                f"backend {name!r} runs on the CPU only, but device {device!r} was asked for; "
                f"use --backend cupy, torch or jax for a GPU, or --device cpu"
            )
        if name == "cupy" and kind == "cpu":
            raise BackendError("backend 'cupy' runs on CUDA GPUs only; use --device cuda, or --backend numpy for the CPU")
        if name == "cupy":
            kind = "cuda"
        kind = kind or "cpu"
        self.name = name
        self._mod = _import(name)
        if kind == "cuda":
            count = _cuda_count(name)
            if count == 0:
                raise BackendError(
                    f"backend {name!r} sees no usable CUDA GPU (driver missing, or a CPU-only build); "
                    f"use --device cpu, or install a CUDA build: {INSTALL[name]}"
                )
            if index >= count:
                raise BackendError(f"device 'cuda:{index}' does not exist: {name} sees {count} GPU(s), cuda:0..cuda:{count - 1}")
        self.device = "cpu" if kind == "cpu" else f"cuda:{index}"
        self.native_device = self._native_device(kind, index)
        self.xp = array_api_compat.array_namespace(self._probe())
        self.version = getattr(self._mod, "__version__", "unknown")

    def _native_device(self, kind: str, index: int):
        m = self._mod
        if self.name == "numpy":
            return "cpu"
        if self.name == "array_api_strict":
            return m.Device("CPU_DEVICE")
        if self.name == "torch":
            return m.device("cpu" if kind == "cpu" else f"cuda:{index}")
        if self.name == "jax":
            return m.devices("cpu" if kind == "cpu" else "gpu")[index if kind == "cuda" else 0]
        return m.cuda.Device(index)  # cupy

    def _probe(self):
        if self.name == "numpy":
            return np.empty(0)
        if self.name == "array_api_strict":
            return self._mod.asarray(0.0)
        if self.name == "torch":
            return self._mod.empty(0, device=self.native_device)
        if self.name == "jax":
            return self._mod.device_put(np.empty(0, dtype=np.float32), self.native_device)
        with self.native_device:
            return self._mod.empty(0)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"

    def dtype(self, name: str):
        """The namespace's float dtype for 'float32' or 'float64' (enables JAX's x64 mode when needed)."""
        if name not in DTYPES:
            raise BackendError(f"unknown dtype {name!r}; choose 'float32' or 'float64'")
        if name == "float64" and self.name == "jax":
            jax = self._mod
            if not jax.config.jax_enable_x64:
                # JAX truncates float64 to float32 unless this process-wide flag is on.
                jax.config.update("jax_enable_x64", True)
                warnings.warn("xpnet enabled JAX's process-wide 'jax_enable_x64' flag because float64 was asked for",
                              stacklevel=3)
        return getattr(self.xp, name)

    @property
    def mutable(self) -> bool:
        """Whether arrays can be updated in place (all but JAX)."""
        return self.name != "jax"

    def asarray(self, host, dtype=None, copy=None):
        """Host data (NumPy array, list, scalar) -> array of this backend on its device (copy=True: never
        shares memory with `host`)."""
        if self.name == "cupy":
            with self.native_device:
                return self.xp.asarray(host, dtype=dtype, copy=copy)
        return self.xp.asarray(host, dtype=dtype, device=self.native_device, copy=copy)

    def to_numpy(self, a, copy: bool = False) -> np.ndarray:
        """Any array of this backend -> NumPy array on the host (always a copy from a GPU; copy=True
        also on the CPU, for a snapshot that later in-place updates cannot change)."""
        return np.array(to_numpy(a), copy=True) if copy else to_numpy(a)

    def synchronize(self) -> None:
        """Wait for queued device work, for honest timing."""
        if self.device == "cpu":
            return
        if self.name == "cupy":
            self._mod.cuda.Device(self.native_device.id).synchronize()
        elif self.name == "torch":
            self._mod.cuda.synchronize(self.native_device)

    def block(self, a):
        """Wait until array `a` is computed (JAX dispatches asynchronously, even on CPU)."""
        if self.name == "jax":
            a.block_until_ready()
        else:
            self.synchronize()
        return a

    def random_uniform(self, shape: tuple, dtype, seed=None):
        """U[0, 1) drawn by the backend's own generator on the device (fast, but differs between backends)."""
        if getattr(self, "_native_rng", None) is None or seed is not None:
            self._native_rng = self._make_native_rng(seed)
        m, g = self._mod, self._native_rng
        if self.name == "torch":
            return m.rand(shape, generator=g, dtype=dtype, device=self.native_device)
        if self.name == "jax":
            import jax.random as jr  # noqa: PLC0415 (the jax backend only)
            self._native_rng, key = jr.split(g)
            return m.device_put(jr.uniform(key, shape, dtype=dtype), self.native_device)
        if self.name == "cupy":
            with self.native_device:
                return g.random_sample(shape, dtype=dtype)
        return self.asarray(g.random(shape), dtype=dtype)  # numpy, array_api_strict: host generator

    def _make_native_rng(self, seed):
        m = self._mod
        if self.name == "torch":
            g = m.Generator(device=self.native_device)
            g.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
            return g
        if self.name == "jax":
            import jax.random as jr  # noqa: PLC0415
            return jr.PRNGKey(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        if self.name == "cupy":
            with self.native_device:
                return m.random.RandomState(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        return np.random.default_rng(seed)

    def owns(self, a) -> bool:
        """Whether `a` is an array of this backend's library on this device."""
        if not array_api_compat.is_array_api_obj(a) or isinstance(a, np.generic):
            return False
        if self.name == "numpy":
            return array_api_compat.is_numpy_array(a)
        if self.name == "array_api_strict":
            return type(a).__module__.startswith("array_api_strict")
        if self.name == "torch":
            return array_api_compat.is_torch_array(a) and a.device == self.native_device
        if self.name == "jax":
            return array_api_compat.is_jax_array(a) and self.native_device in a.devices()
        return array_api_compat.is_cupy_array(a) and a.device.id == self.native_device.id


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure: CuPy's or torch's OutOfMemoryError, JAX's RESOURCE_EXHAUSTED,
    or NumPy's MemoryError."""
    text = str(exc)
    return (isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__
            or "out of memory" in text.lower() or "RESOURCE_EXHAUSTED" in text)


def is_host(a) -> bool:
    """Host data: a NumPy array or scalar, or a Python number or sequence."""
    return isinstance(a, (np.ndarray, np.generic, int, float, list, tuple))


def to_numpy(a) -> np.ndarray:
    """Any supported array (or scalar) -> NumPy array on the host."""
    if isinstance(a, (np.ndarray, np.generic, int, float, list, tuple)):
        return np.asarray(a)
    if array_api_compat.is_cupy_array(a):
        return a.get()
    if array_api_compat.is_torch_array(a):
        return a.detach().cpu().numpy()
    if array_api_compat.is_jax_array(a):
        return np.asarray(a)
    return np.from_dlpack(a)


def library_of(a) -> str:
    """Short name of the array library of `a`, for error messages."""
    if isinstance(a, np.ndarray):
        return "numpy"
    for name, check in (("cupy", array_api_compat.is_cupy_array), ("torch", array_api_compat.is_torch_array),
                        ("jax", array_api_compat.is_jax_array)):
        if check(a):
            return name
    mod = type(a).__module__.split(".")[0]
    return mod or type(a).__name__


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


def describe(name: str) -> dict:
    """One row of `xpnet backends`: name, available, version, devices, reason."""
    row = {"name": name, "available": False, "version": None, "devices": [], "reason": None}
    try:
        mod = _import(name)
    except BackendError as exc:
        row["reason"] = str(exc)
        return row
    row["version"] = getattr(mod, "__version__", "unknown")
    devices = [] if name == "cupy" else ["cpu"]
    count = _cuda_count(name) if name in GPU_CAPABLE else 0
    devices += [f"cuda:{i}" + _gpu_name(name, i) for i in range(count)]
    row["devices"] = devices
    row["available"] = bool(devices)
    if not devices:
        row["reason"] = f"no usable CUDA GPU for {name} (it runs on CUDA GPUs only)"
    return row


def _gpu_name(name: str, index: int) -> str:
    try:
        if name == "cupy":
            cupy = sys.modules["cupy"]
            props = cupy.cuda.runtime.getDeviceProperties(index)
            return f" ({props['name'].decode() if isinstance(props['name'], bytes) else props['name']})"
        if name == "torch":
            return f" ({sys.modules['torch'].cuda.get_device_name(index)})"
        if name == "jax":
            return f" ({sys.modules['jax'].devices('gpu')[index].device_kind})"
    except Exception:
        pass
    return ""


def set_array_api_strict_version(version: str) -> str:
    """Select the Array API version that array_api_strict enforces (e.g. '2024.12'); returns the previous one."""
    strict = _import("array_api_strict")
    previous = strict.get_array_api_strict_flags()["api_version"]
    strict.set_array_api_strict_flags(api_version=version)
    return previous
