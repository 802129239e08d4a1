"""JAX, on the CPU or a CUDA GPU: immutable arrays, asynchronous dispatch, explicit random keys."""
from __future__ import annotations

import contextlib
import importlib
import warnings

import array_api_compat
import numpy as np

from ._base import Backend, Kernels, _seed32


class JaxBackend(Backend):
    name = "jax"
    compute_dtypes = ("bfloat16", "float16")
    is_array = staticmethod(array_api_compat.is_jax_array)
    to_host = staticmethod(np.asarray)

    @classmethod
    def cuda_count(cls) -> int:
        jax = importlib.import_module("jax")
        try:
            return len(jax.devices("gpu"))
        except RuntimeError:
            return 0

    @classmethod
    def gpu_name(cls, index: int) -> str:
        return importlib.import_module("jax").devices("gpu")[index].device_kind

    @classmethod
    def cpu_count(cls) -> int:
        return len(importlib.import_module("jax").devices("cpu"))

    def _native_device(self, kind: str, index: int):
        return self._mod.devices("cpu" if kind == "cpu" else "gpu")[index]

    @classmethod
    def device_of(cls, a) -> str:
        jax = importlib.import_module("jax")
        d = next(iter(a.devices()))
        kind = "cpu" if d.platform == "cpu" else "cuda"
        index = jax.devices(d.platform).index(d)
        return f"{kind}:{index}" if kind == "cuda" or index else "cpu"

    def _probe(self):
        return self._mod.device_put(np.empty(0, dtype=np.float32), self.native_device)

    def _on_device(self, a) -> bool:
        return self.native_device in a.devices()

    #: float32 matrix products and convolutions at full float32 precision (jax.default_matmul_precision) while
    #: the backend is active: JAX's default precision uses TF32 on GPUs that have it (A100, H100: 10 mantissa
    #: bits, jax.lax.Precision's docstring), which torch (allow_tf32 False) and CuPy (CUPY_TF32 unset) do not,
    #: and which float32 parity's tolerance does not allow. None: JAX's default (faster on such GPUs, TF32).
    #: No effect on the CPU or on float64.
    matmul_precision: str | None = "highest"

    def activate(self):
        """jax.default_device: arrays made without device= (and computations on uncommitted ones) go to
        this backend's device, which is not JAX's default when it is cuda:1, or the CPU beside a GPU; and
        jax.default_matmul_precision(matmul_precision), traced into every step compiled while active."""
        return self._active(self._mod, self.native_device, self.matmul_precision)

    @staticmethod
    @contextlib.contextmanager
    def _active(jax, device, precision):
        with jax.default_device(device):
            if precision is None:
                yield
            else:
                with jax.default_matmul_precision(precision):
                    yield

    def exact_matmul(self):
        """jax.default_matmul_precision("highest") while active, whatever `matmul_precision` says
        (Backend.exact_matmul): JAX's default runs float32 matmuls in TF32 on GPUs that have it."""
        return self._mod.default_matmul_precision("highest")

    def dtype(self, name: str):
        """As Backend.dtype, and enables JAX's x64 mode when float64 is asked for."""
        if name == "float64" and not self._mod.config.jax_enable_x64:
            # JAX truncates float64 to float32 unless this process-wide flag is on.
            self._mod.config.update("jax_enable_x64", True)
            warnings.warn("xpnet enabled JAX's process-wide 'jax_enable_x64' flag because float64 was asked for",
                          stacklevel=3)
        return super().dtype(name)

    compiles = True

    def compile(self, fn, donate_argnums: tuple = (), static_argnums: tuple = (), on_trace=None):
        """jax.jit; donated buffers only on a GPU (the CPU client cannot reuse them and would warn)."""
        if on_trace is not None:
            inner = fn

            def fn(*args):  # noqa: F811 (Python runs a jitted body only while tracing it)
                on_trace()
                return inner(*args)

        return self._mod.jit(fn, donate_argnums=donate_argnums if self.kind != "cpu" else (),
                             static_argnums=static_argnums)

    def is_trace_error(self, exc: BaseException) -> bool:
        errors = self._mod.errors
        kinds = tuple(getattr(errors, n) for n in ("ConcretizationTypeError", "TracerArrayConversionError",
                                                   "TracerBoolConversionError", "TracerIntegerConversionError",
                                                   "UnexpectedTracerError") if hasattr(errors, n))
        return isinstance(exc, kinds)

    def block(self, a):
        """Wait until array `a` (or every array in a tuple, list or dict of them) is computed: JAX dispatches
        asynchronously, even on the CPU, and has no device-wide wait, so synchronize() cannot stand in for this."""
        return self._mod.block_until_ready(a)

    def _new_generator(self, seed):
        # the key on this device, so split and uniform run here (PRNGKey alone puts it on the default one)
        return self._mod.device_put(self._mod.random.PRNGKey(_seed32(seed)), self.native_device)

    def _uniform(self, g, shape: tuple, dtype):
        jr = self._mod.random
        g, key = jr.split(g)
        return g, self._mod.device_put(jr.uniform(key, shape, dtype=dtype), self.native_device)

    def _generator_kind(self) -> str:
        return "jax"  # a raw uint32 key; the same on every device

    def _generator_state(self, g):
        return np.asarray(g).tolist()

    def _generator_from_state(self, data):
        fresh = self._new_generator(0)
        key = np.asarray(data, dtype=np.uint32)
        if key.shape != fresh.shape:
            raise ValueError(f"a key of shape {fresh.shape} was expected, not {key.shape}")
        return self._mod.device_put(key, self.native_device)


class JaxKernels(Kernels):
    """XLA's own convolution, pooling, attention and scatter-add: jax.lax.conv_general_dilated,
    jax.lax.reduce_window, jax.nn.dot_product_attention and `.at[].add`, the gradients by jax.vjp (what jax.grad would run). Traced into jax.jit steps like any other
    operation."""

    def __init__(self, jax):
        self._jax = jax
        self._lax = jax.lax

    def conv2d(self, x, w, b, stride, pads, need_dx):
        top, bottom, left, right = pads
        lax = self._lax

        def conv(x, w):
            return lax.conv_general_dilated(x, w, tuple(stride), ((top, bottom), (left, right)),
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))

        if need_dx:
            y, vjp = self._jax.vjp(conv, x, w)
        else:
            y, vjp_w = self._jax.vjp(lambda w: conv(x, w), w)
            vjp = lambda dy: (None, *vjp_w(dy))  # noqa: E731
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        jnp = self._jax.numpy

        def backward(dy):
            dx, dw = vjp(dy)
            return dx, dw, (None if b is None else jnp.sum(dy, axis=(0, 2, 3)))

        return y, backward

    def _pool(self, x, kernel, stride, need_dx, init, op):
        lax = self._lax
        dims, strides = (1, 1, *kernel), (1, 1, *stride)
        f = lambda x: lax.reduce_window(x, init, op, dims, strides, "VALID")  # noqa: E731
        if not need_dx:
            return f(x), None
        y, vjp = self._jax.vjp(f, x)
        return y, lambda dy: vjp(dy)[0]

    def max_pool2d(self, x, kernel, stride, need_dx):
        # reduce_window_max's gradient is XLA's select-and-scatter with `ge`: a tie keeps the earlier element, so
        # the first maximum (row-major) takes the gradient, as MaxPool2D's (tests/test_kernels.py)
        return self._pool(x, kernel, stride, need_dx, -self._jax.numpy.inf, self._lax.max)

    def avg_pool2d(self, x, kernel, stride, need_dx):
        total, back = self._pool(x, kernel, stride, need_dx, 0.0, self._lax.add)
        scale = 1.0 / (kernel[0] * kernel[1])
        return total * scale, (None if back is None else (lambda dy: back(dy * scale)))

    def attention(self, q, k, v, causal, scale):
        """jax.nn.dot_product_attention (XLA's implementation, or cuDNN's where JAX picks it; layout (B, T, heads,
        D), hence the transposes), its gradients by jax.vjp. float64 excepted: dot_product_attention always takes
        its softmax in float32 (jax/_src/nn/functions.py, _dot_product_attention_core), 3e-7 away from the float64
        reference, so float64 runs the same graph written with jnp and jax.nn.softmax in float64; so does a value
        head_dim other than the query's, which dot_product_attention does not take."""
        jax, jnp = self._jax, self._jax.numpy
        bthd = (0, 2, 1, 3)

        def f(q, k, v):
            out = jax.nn.dot_product_attention(jnp.transpose(q, bthd), jnp.transpose(k, bthd),
                                               jnp.transpose(v, bthd), scale=scale, is_causal=bool(causal))
            return jnp.transpose(out, bthd)

        if q.dtype == jnp.float64 or v.shape[-1] != q.shape[-1]:
            def f(q, k, v):  # noqa: F811
                s = jnp.einsum("bhtd,bhsd->bhts", q, k) * (scale if scale is not None else q.shape[-1] ** -0.5)
                if causal:
                    s = jnp.where(jnp.tril(jnp.ones(s.shape[-2:], dtype=bool)), s, -jnp.inf)
                return jnp.einsum("bhts,bhsd->bhtd", jax.nn.softmax(s, axis=-1), v)

        out, vjp = self._jax.vjp(f, q, k, v)
        return out, vjp

    def scatter_add_rows(self, indices, values, rows):
        """.at[indices].add: XLA's scatter-add (on GPUs with atomics, nondeterministic order unless XLA's
        --xla_gpu_deterministic_ops)."""
        return self._jax.numpy.zeros((rows, values.shape[1]), dtype=values.dtype).at[indices].add(values)


JaxBackend.kernels_class = JaxKernels
