"""What every backend shares: the table of backends, device parsing and the `Backend` base class.

One subclass per array library lives in its own module (_numpy.py, _strict.py, _torch.py, _jax.py,
_cupy.py) and holds everything that differs between libraries. Adding a backend means writing one such
module and adding its row to TABLE.
"""
from __future__ import annotations

import abc
import contextlib
import importlib
import threading

import array_api_compat
import numpy as np

from ..errors import BackendError  # also this module's (and xpnet.backend's) name

# name: ("module:class" of its subclass in this package, runs on CUDA GPUs, how to install it)
TABLE = {
    "numpy": ("_numpy:NumpyBackend", False, "pip install xpnet"),
    "array_api_strict": ("_strict:StrictBackend", False, 'pip install "xpnet[array-api-strict]"'),
    "torch": ("_torch:TorchBackend", True, 'pip install "xpnet[torch]"'),
    "jax": ("_jax:JaxBackend", True, 'pip install "xpnet[jax]"'),
    "cupy": ("_cupy:CupyBackend", True,
             'pip install "xpnet[cupy-cuda12]" (or "xpnet[cupy-cuda13]", matching your CUDA driver)'),
}
NAMES = tuple(TABLE)
GPU_CAPABLE = tuple(name for name, row in TABLE.items() if row[1])
INSTALL = {name: row[2] for name, row in TABLE.items()}
DTYPES = ("float32", "float64")
#: the 16-bit compute types of mixed precision (xpnet.precision); which a backend has: its `compute_dtypes`
COMPUTE_DTYPES = ("bfloat16", "float16")


def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken install raising anything else
        raise BackendError(
            f"backend {name!r} is not installed ({type(exc).__name__}: {exc}); install it with: {INSTALL[name]}"
        ) from None


def backend_class(name) -> type[Backend]:
    """The Backend subclass for a backend name (its module is imported here; the array library is not)."""
    if not isinstance(name, str) or name not in TABLE:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(NAMES + ('auto',))}")
    module, cls = TABLE[name][0].split(":")
    return getattr(importlib.import_module(f".{module}", __package__), cls)


def _cuda_count(name: str) -> int:
    """Number of usable CUDA devices for a GPU-capable backend (0 when none, not installed or CPU-only)."""
    if name not in GPU_CAPABLE:
        return 0
    try:
        return backend_class(name).cuda_count()
    except Exception:
        return 0


def _parse_device(device: str | None) -> tuple[str, int]:
    if device is None:
        return "", 0
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text.startswith("cpu:") and text[4:].isdigit():
        return "cpu", int(text[4:])
    if text == "cuda" or text == "gpu":
        return "cuda", 0
    for prefix in ("cuda:", "gpu:"):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return "cuda", int(text[len(prefix):])
    raise BackendError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...), or 'cpu:N' "
                       f"where the library has several CPU devices (JAX with --xla_force_host_platform_device_count)")


def _seed32(seed) -> int:
    """A 32-bit seed for a library generator, derived from an int seed (None: fresh entropy)."""
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


#: the kernels a backend may provide natively (Kernels' attributes), in the order `xpnet backends` lists them
KERNEL_NAMES = ("conv2d", "max_pool2d", "avg_pool2d", "attention", "scatter_add_rows")


class Kernels:
    """A backend's native kernels: what the Array API standard lacks (convolution, pooling, ...) done by the
    library's own fast path. Each attribute of KERNEL_NAMES is a function or None (the backend has none: the
    layer runs its array-API reference, which also defines what a kernel must compute; tests/test_kernels.py
    compares them). All take and return arrays of the backend's library (images NCHW) and, but for
    scatter_add_rows, return (y, backward) as a layer's forward does; backward(dy) is pure too:

        conv2d(x, w, b, stride, pads, need_dx) -> (y, backward);  backward(dy) -> (dx | None, dw, db | None)
            x (N, C, H, W), w (O, C, kh, kw), b (O,) or None; stride (sh, sw); pads (top, bottom, left, right)
            of zeros; y (N, O, OH, OW), the cross-correlation plus bias (Conv2D's definition).
        max_pool2d(x, kernel, stride, need_dx) -> (y, backward);  backward(dy) -> dx
            no padding; a window's gradient goes to its first maximum (row-major), as MaxPool2D's.
        avg_pool2d(x, kernel, stride, need_dx) -> (y, backward);  backward(dy) -> dx
            no padding; the window's mean, as AvgPool2D's.
        attention(q, k, v, causal, scale) -> (out, backward);  backward(dout) -> (dq, dk, dv)
            q (B, heads, Tq, D), k (B, heads, Tk, D), v (B, heads, Tk, Dv); softmax(q kᵀ·scale + mask) v, scale
            None meaning 1/sqrt(D), causal the top-left `tril` mask (xpnet.layers.attention_ops.attention's).
        scatter_add_rows(indices, values, rows) -> out
            indices (n,) ints in [0, rows), values (n, d); out (rows, d), each value added into its row, repeats
            summed (an embedding's weight gradient; xpnet.layers.attention_ops.scatter_add_rows).
    A kernel is added by naming it in KERNEL_NAMES and here, giving the layer that uses it the array-API
    reference, and implementing it in the backends that have it.
    """

    conv2d = max_pool2d = avg_pool2d = attention = scatter_add_rows = None

    @classmethod
    def names(cls) -> tuple:
        """The kernels this backend has natively."""
        return tuple(n for n in KERNEL_NAMES if getattr(cls, n) is not None)


class Backend(abc.ABC):
    """An array namespace `xp` on one device, plus the few things the standard lacks.

    `Backend(name, device)` returns the subclass for `name` (NumpyBackend, TorchBackend, ...), so
    `isinstance(bk, Backend)` holds for all. Subclasses set the class attributes below and override
    the methods whose library differs; the defaults here suit a CPU library with NumPy-style arrays.

    The device: `with bk:` makes bk's device the library's *current* device for the block and restores
    the previous one after (it nests, and is per thread; `bk.activate()` gives the bare context manager).
    The core should wrap each stretch of work on bk's arrays in it: building a model (its parameters),
    fit, predict / evaluate / score, and each backend's run in parity. This matters for CuPy on a GPU
    other than cuda:0: array-api-compat passes `device=` to CuPy only in asarray, so every other
    creation function and every kernel runs on the current device, GPU 0 unless a `cupy.cuda.Device`
    block says otherwise. asarray, to_device_async, NativeRNG's draws and synchronize choose the device
    themselves, so they are right outside the block too. For torch on CUDA the block sets
    torch.cuda's current device (harmless: torch ops follow their tensors), for JAX the default device
    (`jax.default_device`, where arrays made without device= go); for NumPy and array_api_strict it
    does nothing. The block does not move torch's *default* device (where torch puts an array made
    without device=: the CPU unless `torch.set_default_device` says otherwise; entering `torch.device(...)`
    would, at the cost of a Python mode on every torch call), so every array the library makes from
    scratch passes device= too (tests/test_placement.py checks it under a "meta" default device).
    """

    name = ""        # the key of TABLE
    runs_on_cpu = True  # False for CuPy: a CUDA GPU only

    def __new__(cls, name=None, device=None):
        if cls is Backend:
            cls = backend_class(name)
        return super().__new__(cls)

    def __init__(self, name: str, device: str | None = None):
        if name != self.name:
            raise BackendError(f"{type(self).__name__} is backend {self.name!r}, not {name!r}; "
                               f"use Backend({name!r}) to get the right class")
        kind, index = _parse_device(device)
        if kind == "cuda" and name not in GPU_CAPABLE:
            raise BackendError(
                f"backend {name!r} runs on the CPU only, but device {device!r} was asked for; "
                f"use --backend cupy, torch or jax for a GPU, or --device cpu"
            )
        if not self.runs_on_cpu:
            if kind == "cpu":
                raise BackendError(f"backend {name!r} runs on CUDA GPUs only; use --device cuda, "
                                   f"or --backend numpy for the CPU")
            kind = "cuda"
        kind = kind or "cpu"
        self._mod = _import(name)
        if kind == "cuda":
            count = type(self).cuda_count()
            if count == 0:
                raise BackendError(
                    f"backend {name!r} sees no usable CUDA GPU (driver missing, or a CPU-only build); "
                    f"use --device cpu, or install a CUDA build: {INSTALL[name]}"
                )
            if index >= count:
                raise BackendError(f"device 'cuda:{index}' does not exist: {name} sees {count} GPU(s), cuda:0..cuda:{count - 1}")
        elif index:
            count = type(self).cpu_count()
            if index >= count:
                raise BackendError(f"device 'cpu:{index}' does not exist: {name} sees {count} CPU device(s); use "
                                   f"--device cpu" + (" (JAX shows more with XLA_FLAGS=--xla_force_host_platform_"
                                                      "device_count=N, set before it is imported)" if name == "jax" else ""))
        self.kind = kind  # "cpu" or "cuda"
        self.device = f"{kind}:{index}" if kind == "cuda" or index else "cpu"
        self._index = index
        self.native_device = self._native_device(kind, index)
        probe = self._probe()
        self.xp = array_api_compat.array_namespace(probe)
        self._mutable = bool(array_api_compat.is_writeable_array(probe))
        self.version = getattr(self._mod, "__version__", "unknown")
        self._local = threading.local()  # the per-thread stack of entered activate() contexts

    # ---- what a subclass provides -------------------------------------------------------------------

    @classmethod
    def cuda_count(cls) -> int:
        """Usable CUDA devices (imports the library; may raise when it is not installed)."""
        return 0

    @classmethod
    def cpu_count(cls) -> int:
        """CPU devices the library shows as separate devices ('cpu:N'): one, except JAX's forced host devices."""
        return 1

    @classmethod
    def gpu_name(cls, index: int) -> str:
        """The name of CUDA device `index`, for `xpnet backends` ('' when unknown)."""
        return ""

    @classmethod
    def device_of(cls, a) -> str:
        """xpnet's name ("cpu", "cuda:N", "cpu:N") of the device array `a` of this library lies on."""
        return "cpu"

    @staticmethod
    @abc.abstractmethod
    def is_array(a) -> bool:
        """Whether `a` is an array of this library (on any device)."""

    @staticmethod
    def to_host(a) -> np.ndarray:
        """An array of this library -> NumPy array on the host (shares memory where the library allows)."""
        return np.from_dlpack(a)

    @abc.abstractmethod
    def _native_device(self, kind: str, index: int):
        """The library's device object for 'cpu' or 'cuda' number `index`."""

    @abc.abstractmethod
    def _probe(self):
        """An empty array of the library on the device: gives `xp` and tells whether arrays are writeable."""

    def _on_device(self, a) -> bool:
        """Whether array `a` of this library lies on this backend's device."""
        return array_api_compat.device(a) == self.native_device

    def activate(self):
        """A new context manager that makes this backend's device the library's current device while it
        is entered (here: nothing to do, for a library with one device)."""
        return contextlib.nullcontext()

    # ---- the public interface -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"

    def __enter__(self) -> Backend:
        ctx = self.activate()
        ctx.__enter__()
        self._entered().append(ctx)
        return self

    def __exit__(self, *exc_info):
        return self._entered().pop().__exit__(*exc_info)

    def _entered(self) -> list:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def dtype(self, name: str):
        """The namespace's float dtype for 'float32' or 'float64'."""
        if name not in DTYPES:
            raise BackendError(f"unknown dtype {name!r}; choose 'float32' or 'float64'")
        return getattr(self.xp, name)

    def exact_matmul(self):
        """A context manager under which float32 matrix products run at full float32 precision (no TF32 or
        bfloat16 passes), restored on exit: what the mixed-precision parity pins on both sides, so that the float32
        run it compares with is float32 (torch: set_float32_matmul_precision("highest"); JAX:
        jax.default_matmul_precision("highest")). Nothing to pin here: the library has one float32 matmul."""
        return contextlib.nullcontext()

    #: the 16-bit float types the library computes in natively (mixed precision's compute dtypes): none here
    compute_dtypes: tuple = ()

    def compute_dtype(self, name: str):
        """The library's dtype for a mixed-precision compute type, 'bfloat16' or 'float16'; refused in one line
        where the library lacks it, naming the backends that have it (the master dtype stays `dtype`'s)."""
        if name not in COMPUTE_DTYPES:
            raise BackendError(f"unknown compute dtype {name!r}; choose 'bfloat16' or 'float16'")
        if name not in self.compute_dtypes:
            have = [n for n in TABLE if name in backend_class(n).compute_dtypes]
            raise BackendError(f"backend {self.name!r} has no {name}, so it cannot compute in it; {name} runs on: "
                               f"{', '.join(have)} (e.g. --backend {have[0]}), or train without --precision")
        found = getattr(self.xp, name, None)
        return found if found is not None else getattr(self._mod, name)

    #: the Kernels subclass of the library's own kernels (None: it has none, the layers run their reference)
    kernels_class: type[Kernels] | None = None

    @property
    def kernels(self) -> Kernels | None:
        """The library's own kernels (a `kernels_class` object, made once per backend), or None where it has none:
        the layers then run their array-API reference (NumPy, array-api-strict). A model uses them unless
        native_kernels=False or XPNET_NATIVE_KERNELS=0 (Network.kernels)."""
        if self.kernels_class is None:
            return None
        kernels = self.__dict__.get("_kernels")
        if kernels is None:
            kernels = self.__dict__["_kernels"] = self.kernels_class(self._mod)
        return kernels

    #: whether compile() traces a function into one compiled call (jax.jit); see COMPILERS
    compiles = False
    #: whether the compiled training step takes the whole device-resident data and the minibatch's indices and
    #: gathers inside (jax.jit: the data is passed by reference), or takes the gathered minibatch (torch: a CUDA
    #: graph copies every input that is not static into its own buffers on each replay)
    gathers_in_step = True

    def compile(self, fn, donate_argnums: tuple = (), static_argnums: tuple = (), on_trace=None):
        """fn traced and compiled into one call for this backend's device (arguments that are arrays, or
        nested dicts and lists of them, traced; donate_argnums: arguments whose buffers the result may reuse;
        static_argnums: arguments that are Python values shaping the trace; on_trace(): called once per trace
        or compilation, for counting them)."""
        raise BackendError(f"backend {self.name!r} has no compiler, so compile=True cannot be used with it; "
                           f"compiled training runs on: {', '.join(COMPILERS)} (e.g. --backend jax --compile), "
                           f"or drop --compile / compile=True to train eagerly")

    def scalar_args(self, scalars: dict) -> dict:
        """Host floats as arguments of a compiled function such that new values do not recompile it (JAX traces
        Python floats already; torch.compile would specialise on them)."""
        return scalars

    def is_trace_error(self, exc: BaseException) -> bool:
        """Whether `exc` says traced code tried host work on a traced array (float(x), if x > 0, np.asarray(x))."""
        return False

    @property
    def mutable(self) -> bool:
        """Whether arrays can be updated in place (all but JAX), as array_api_compat.is_writeable_array says."""
        return self._mutable

    def asarray(self, host, dtype=None, copy=None):
        """Host data (NumPy array, list, scalar) -> array of this backend on its device (copy=True: never
        shares memory with `host`)."""
        return self.xp.asarray(host, dtype=dtype, device=self.native_device, copy=copy)

    def to_device_async(self, host, dtype=None):
        """Like asarray(host, dtype), but on a GPU the host does not wait for the copy where the library
        allows it (torch on CUDA); use it for data made on the host every step, such as dropout masks.
        The same values and dtype as asarray; `host` may be reused or dropped as soon as this returns.
        Here (CPU libraries, and CuPy and JAX): asarray itself."""
        return self.asarray(host, dtype=dtype)

    def stage(self, host, dtype=None):
        """Host data (a NumPy array) on its way to this backend's device, called from a thread other than the
        one that trains (fit(prefetch=N)'s readers): a handle for `ready`, which the training thread calls.
        Where the library allows it the copy overlaps the training thread's device work (torch on CUDA: pinned
        memory and a copy stream of its own; CuPy: a copy stream of its own); here: asarray(host, dtype)
        itself, done in the calling thread. The same values and dtype as asarray; `host` may be reused once
        this returns."""
        return self.asarray(host, dtype=dtype)

    def ready(self, staged):
        """The device array of a `stage` handle, safe to compute on from the calling (training) thread: work it
        queues waits for the copy, and the array's memory is not reused before that work is done. Here: the
        array itself."""
        return staged

    def take(self, x, indices, axis: int = 0):
        """The entries of `x` at `indices` (a 1-D integer array of this backend, values in 0..n-1) along
        `axis`, as xp.take; a backend may use a faster call of its library with the same result."""
        return self.xp.take(x, indices, axis=axis)

    def to_numpy(self, a, copy: bool = False) -> np.ndarray:
        """Any array of this backend -> NumPy array on the host (always a copy from a GPU; copy=True
        also on the CPU, for a snapshot that later in-place updates cannot change)."""
        if isinstance(a, (np.ndarray, np.generic, int, float, list, tuple)):
            host = np.asarray(a)
        else:
            host = self.to_host(a) if self.is_array(a) else np.from_dlpack(a)
        return np.array(host, copy=True) if copy else host

    def cuda_pointers(self, a) -> tuple[int, int] | None:
        """(address of the contiguous CUDA array `a`'s first element, handle of the library's current CUDA
        stream), what NCCL's all-reduce takes; None where `a` is not on a CUDA GPU (the host path then)."""
        return None

    def synchronize(self) -> None:
        """Wait for queued device work, for honest timing (nothing to wait for on a synchronous CPU library; a
        no-op on JAX too, which has no device-wide wait: time with block(outputs) instead)."""

    def block(self, a):
        """Wait until array `a` (or every array in a tuple, list or dict of them) is computed; returns `a`."""
        self.synchronize()
        return a

    # ---- the library's own generator: seedable, and its state JSON-able for checkpoints -------------

    native_rng_restorable = True  # whether NativeRNG.state() can capture the generator (not CuPy's)

    def make_native_rng(self, seed=None) -> NativeRNG:
        """A new generator of the library on this device, seeded from `seed` (an int such as the model's
        seed; None: fresh entropy). The backend keeps none itself: each model keeps its own
        (`model.native_rng()`, what Dropout(host_rng=False) draws from)."""
        return NativeRNG(self, seed)

    def _new_generator(self, seed):
        """The library's generator seeded from `seed` (default: NumPy's, on the host)."""
        return np.random.default_rng(seed)

    def _uniform(self, g, shape: tuple, dtype):
        """(generator after the draw, U[0, 1) array of `shape` and `dtype` on the device) from generator g."""
        return g, self.asarray(g.random(shape), dtype=dtype)

    def _generator_kind(self) -> str:
        """Which generator this is: states restore only into a generator of the same kind."""
        return "numpy"

    def _generator_state(self, g):
        """The state of generator g as JSON-able data."""
        return g.bit_generator.state

    def _generator_from_state(self, data):
        """A generator continuing from _generator_state's data."""
        g = np.random.default_rng()
        g.bit_generator.state = data
        return g

    def owns(self, a) -> bool:
        """Whether `a` is an array of this backend's library on this device."""
        if not array_api_compat.is_array_api_obj(a) or isinstance(a, np.generic):
            return False
        return self.is_array(a) and self._on_device(a)


COMPILERS = ("jax", "torch")  # the backends whose compile() works


class Staged:
    """What a GPU backend's `stage` returns: the device `array` (its copy maybe still running) and `done`, the
    library's event recorded after the copy, which `ready` makes the training thread's stream wait for."""

    __slots__ = ("array", "done")

    def __init__(self, array, done):
        self.array, self.done = array, done


class NativeRNG:
    """A generator of a backend's own library on its device (NumPy's on the host for the CPU libraries):
    U[0, 1) draws, seeded from an int, and its state saved and restored as JSON-able data."""

    def __init__(self, bk: Backend, seed=None):
        self._bk = bk
        self._g = bk._new_generator(seed)

    def __repr__(self) -> str:
        return f"NativeRNG({self._bk._generator_kind()!r})"

    def uniform(self, shape: tuple, dtype):
        """U[0, 1) of `shape` and `dtype` on the backend's device; advances the generator."""
        self._g, u = self._bk._uniform(self._g, tuple(shape), dtype)
        return u

    def state(self) -> dict:
        """{'generator': kind, 'state': JSON-able data}: pass it to set_state to continue from here."""
        return {"generator": self._bk._generator_kind(), "state": self._bk._generator_state(self._g)}

    def set_state(self, state: dict) -> None:
        """Continue from a state() taken on the same kind of generator (backend library and device type)."""
        kind = self._bk._generator_kind()
        got = state.get("generator") if isinstance(state, dict) else None
        if got != kind or "state" not in state:
            raise BackendError(f"expected a native RNG state of generator {kind!r} (from NativeRNG.state() on "
                               f"{self._bk!r}), got {got if got else type(state).__name__!r}; resume on the "
                               f"backend and device type it was saved on, or start a new stream with "
                               f"make_native_rng(seed)")
        try:
            self._g = self._bk._generator_from_state(state["state"])
        except BackendError:
            raise
        except (TypeError, ValueError, KeyError, RuntimeError, OverflowError) as exc:
            raise BackendError(f"native RNG state of generator {kind!r} is malformed ({type(exc).__name__}: "
                               f"{exc}); pass it as NativeRNG.state() returned it, or start a new stream with "
                               f"make_native_rng(seed)") from None
