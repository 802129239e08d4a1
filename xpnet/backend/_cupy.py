"""CuPy: NumPy's interface on a CUDA GPU (no CPU device), with one native kernel: the scatter-add of an
embedding's gradient (cupyx.scatter_add)."""
from __future__ import annotations

import importlib
import threading

import array_api_compat
import numpy as np

from ._base import Backend, BackendError, Kernels, _seed32

_STREAM_LOCK = threading.Lock()  # the copy stream is made once, whichever reader thread asks first


class CupyBackend(Backend):
    name = "cupy"
    compute_dtypes = ("float16",)  # CuPy has no bfloat16
    runs_on_cpu = False
    native_rng_restorable = False  # cupy.random.RandomState (curand) does not expose its state
    is_array = staticmethod(array_api_compat.is_cupy_array)

    @classmethod
    def cuda_count(cls) -> int:
        cupy = importlib.import_module("cupy")
        # getDeviceCount() raises on a machine without a driver; is_available() does not.
        return cupy.cuda.runtime.getDeviceCount() if cupy.is_available() else 0

    @classmethod
    def gpu_name(cls, index: int) -> str:
        name = importlib.import_module("cupy").cuda.runtime.getDeviceProperties(index)["name"]
        return name.decode() if isinstance(name, bytes) else name

    @staticmethod
    def to_host(a):
        return a.get()

    def _native_device(self, kind: str, index: int):
        return self._mod.cuda.Device(index)

    @classmethod
    def device_of(cls, a) -> str:
        return f"cuda:{a.device.id}"

    def cuda_pointers(self, a):
        return a.data.ptr, self._mod.cuda.get_current_stream().ptr

    def activate(self):
        """cupy.cuda.Device(i): CuPy runs kernels and creates arrays on the current device. A new Device
        object each time, as a Device keeps the stack of devices it replaced on itself."""
        return self._mod.cuda.Device(self._index)

    def _probe(self):
        with self.activate():
            return self._mod.empty(0)

    def _on_device(self, a) -> bool:
        return a.device.id == self.native_device.id

    def asarray(self, host, dtype=None, copy=None):
        with self.activate():
            return self.xp.asarray(host, dtype=dtype, copy=copy)

    def stage(self, host, dtype=None):
        """In a reader thread: `host` cast into pinned host memory, copied on this backend's copy stream (a
        non-blocking stream: it does not wait for the null stream's kernels unless told). The device array is
        allocated from the null stream's memory pool (the training thread's; CuPy frees a block back to the
        pool of the stream it was allocated on, and has no record_stream), so the copy first waits for an
        event recorded on the null stream after the allocation: every kernel that used a reused block was
        queued before it. The reader thread then waits for its copy (the training thread never does), after
        which the pinned buffer is free and the array ready: `ready` is the base's identity. Assumes the
        training thread computes on the null stream, as xpnet does."""
        cp = self._mod
        host = np.asarray(host)
        dt = host.dtype if dtype is None else np.dtype(dtype)
        with self.activate():
            pinned = importlib.import_module("cupyx").empty_pinned(host.shape, dt)
            np.copyto(pinned, host, casting="unsafe")
            a = cp.empty(host.shape, dt)  # the current (null) stream's pool
            after = cp.cuda.Event()
            after.record(cp.cuda.Stream.null)
            stream = self._copy_stream()
            stream.wait_event(after)
            a.set(pinned, stream=stream)
            done = cp.cuda.Event()
            done.record(stream)
            done.synchronize()
        return a

    def _copy_stream(self):
        """This backend's non-blocking CUDA stream for prefetch copies, made once."""
        stream = self.__dict__.get("_copy_stream_")
        if stream is None:
            with _STREAM_LOCK:
                stream = self.__dict__.get("_copy_stream_")
                if stream is None:
                    with self.activate():
                        stream = self.__dict__["_copy_stream_"] = self._mod.cuda.Stream(non_blocking=True)
        return stream

    def synchronize(self) -> None:
        self._mod.cuda.Device(self._index).synchronize()  # this GPU's, not the current one's

    def _new_generator(self, seed):
        with self.activate():  # curand's generator belongs to the device current at its creation
            return self._mod.random.RandomState(_seed32(seed))

    def _uniform(self, g, shape: tuple, dtype):
        with self.activate():
            return g, g.random_sample(shape, dtype=dtype)

    def _generator_kind(self) -> str:
        return "cupy"

    def _generator_state(self, g):
        raise BackendError("expected a generator whose state can be saved, but CuPy's native one (curand, "
                           "behind cupy.random.RandomState) cannot export it, so a run drawing from it cannot "
                           "resume exactly; use Dropout(host_rng=True) for resumable runs on CuPy")

    def _generator_from_state(self, data):
        raise BackendError("expected no CuPy native RNG state (CuPy's curand generator cannot be restored); "
                           "start a new stream with make_native_rng(seed) instead")


class CupyKernels(Kernels):
    """CuPy's native scatter-add (`cupyx.scatter_add`, atomic adds on the GPU: the order of the additions, hence
    the last bits of a row that several tokens share, varies run to run). Convolution, pooling and attention run
    the layers' array-API code (CuPy has no such kernels of its own outside cuDNN's optional bindings)."""

    def __init__(self, cupy):
        self._cupy = cupy
        self._scatter_add = importlib.import_module("cupyx").scatter_add

    def scatter_add_rows(self, indices, values, rows):
        """out (rows, d) = zeros, then out[indices[i]] += values[i] by cupyx.scatter_add, summed in float32 or
        wider: float16 values are widened for the sums and the result cast back."""
        cp = self._cupy
        wide = values if values.dtype.itemsize >= 4 else values.astype(cp.float32)
        out = cp.zeros((rows, values.shape[1]), dtype=wide.dtype)
        self._scatter_add(out, indices, wide)
        return out if wide is values else out.astype(values.dtype)


CupyBackend.kernels_class = CupyKernels
