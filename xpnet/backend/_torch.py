"""PyTorch, on the CPU or a CUDA GPU."""
from __future__ import annotations

import contextlib
import importlib
import threading

import array_api_compat
import numpy as np

from ._base import Backend, Kernels, Staged, _seed32

_STREAM_LOCK = threading.Lock()  # the copy stream is made once, whichever reader thread asks first


class TorchBackend(Backend):
    name = "torch"
    compute_dtypes = ("bfloat16", "float16")
    is_array = staticmethod(array_api_compat.is_torch_array)

    @classmethod
    def cuda_count(cls) -> int:
        torch = importlib.import_module("torch")
        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    @classmethod
    def gpu_name(cls, index: int) -> str:
        return importlib.import_module("torch").cuda.get_device_name(index)

    @staticmethod
    def to_host(a):
        return a.detach().cpu().numpy()

    @classmethod
    def device_of(cls, a) -> str:
        d = a.device
        return f"cuda:{d.index or 0}" if d.type == "cuda" else "cpu" if d.type == "cpu" else str(d)

    def _native_device(self, kind: str, index: int):
        return self._mod.device("cpu" if kind == "cpu" else f"cuda:{index}")

    def _probe(self):
        return self._mod.empty(0, device=self.native_device)

    compiles = True
    #: torch.compile's mode: "default" (inductor) on the CPU; "reduce-overhead" (CUDA graphs) is for GPUs. Set
    #: it on a backend before the model's first compiled step (benchmarks/run.py --torch-compile-mode).
    compile_mode = "default"
    #: the compiled step takes the gathered minibatch, not the data: under CUDA graphs (mode "reduce-overhead")
    #: each replay copies every non-static input into the graph's buffers (torch/_inductor/cudagraph_trees.py,
    #: CUDAGraphNode._copy_inputs_and_remove_from_src: torch._foreach_copy_ over non_static_input_idx), which for
    #: the device-resident X and Y would be the whole data set per step. The same on the CPU, so that the CPU
    #: tests run the GPU's path.
    gathers_in_step = False

    def compile(self, fn, donate_argnums: tuple = (), static_argnums: tuple = (), on_trace=None):
        """torch.compile (inductor, with compile_mode's options), without dynamic shapes: each new minibatch
        shape compiles once. Python ints in static_argnums specialise the graph, as torch.compile does with any
        Python int; floats must come as tensors (scalar_args), or each new value would recompile.

        With CUDA graphs (mode "reduce-overhead" on a GPU), a replay overwrites the previous replay's outputs,
        and training keeps them (the parameters go into the next step, the losses stay until the epoch ends):
        each call is marked as a new step and its outputs are cloned (not yet run on a GPU here)."""
        torch = self._mod
        if on_trace is None:
            compiled = torch.compile(fn, mode=self.compile_mode, dynamic=False)
        else:
            from torch._inductor import compile_fx  # the default backend, wrapped to count its compilations
            options = torch._inductor.list_mode_options(self.compile_mode)

            def counting_backend(gm, example_inputs):
                on_trace()
                return compile_fx.compile_fx(gm, example_inputs, config_patches=options or None)

            compiled = torch.compile(fn, backend=counting_backend, dynamic=False)
        if self.device == "cpu" or not torch._inductor.list_mode_options(self.compile_mode).get("triton.cudagraphs"):
            return compiled
        tree_map = torch.utils._pytree.tree_map

        def step(*args):
            torch.compiler.cudagraph_mark_step_begin()
            return tree_map(lambda a: a.clone() if isinstance(a, torch.Tensor) else a, compiled(*args))

        return step

    def scalar_args(self, scalars: dict) -> dict:
        """Each host float as a 0-d float64 tensor on the device, made with torch.full: a fill kernel queued on
        the stream. torch.tensor(v, device='cuda') builds the value on the CPU and copies it from pageable
        memory, which waits for the GPU (pytorch#120996): a sync per scalar per step (four with Adam), which
        would undo what a compiled step and its CUDA graph save."""
        full, f64, dev = self._mod.full, self._mod.float64, self.native_device
        return {k: full((), v, dtype=f64, device=dev) for k, v in scalars.items()}

    def is_trace_error(self, exc: BaseException) -> bool:
        return type(exc).__module__.startswith("torch._dynamo") and "Unsupported" in type(exc).__name__

    def activate(self):
        """torch.cuda.device(i) on a GPU (torch ops follow their tensors' device anyway; this sets the
        device of calls without one, e.g. streams and events); nothing on the CPU."""
        if self.device == "cpu":
            return super().activate()
        return self._mod.cuda.device(self._index)

    def exact_matmul(self):
        """torch.set_float32_matmul_precision("highest") while active (the previous setting restored on exit):
        "high" or "medium" would let float32 matmuls use TF32 or bfloat16 passes (Backend.exact_matmul)."""
        return _matmul_precision(self._mod, "highest")

    def take(self, x, indices, axis: int = 0):
        """torch.index_select: array-api-compat's take wraps the indices in torch.where(i < 0, i + n, i)
        first, extra kernels on every minibatch for indices that are never negative here."""
        return self._mod.index_select(x, axis, indices)

    def cuda_pointers(self, a):
        if not a.is_cuda:
            return None
        return a.data_ptr(), self._mod.cuda.current_stream(a.device).cuda_stream

    def synchronize(self) -> None:
        if self.device != "cpu":
            self._mod.cuda.synchronize(self.native_device)

    def to_device_async(self, host, dtype=None):
        """On CUDA: `host` is copied (on the CPU, cast to `dtype`) into a new pinned (page-locked) buffer,
        which goes to the GPU with non_blocking=True: queued on the current stream, without the host
        sync of a copy from pageable memory (torch.asarray(numpy_array, device='cuda') waits for all
        queued work). The caller's `host` is no longer read once this returns; the pinned buffer is kept
        from reuse until the copy has run by torch's caching host allocator, which records the copy's
        stream on it (see aten/src/ATen/cuda/CachingHostAllocator.h). On the CPU: asarray."""
        if self.device == "cpu":
            return self.asarray(host, dtype=dtype)
        with self.activate():
            return self._staged(host, dtype, pin=True).to(self.native_device, non_blocking=True)

    def stage(self, host, dtype=None):
        """On CUDA, in a reader thread: `host` cast into a new pinned buffer (_staged), copied to the GPU with
        non_blocking=True on this backend's copy stream (not the training thread's), an event recorded after
        the copy; `ready` makes the training thread's stream wait for it. Neither thread waits for the copy,
        which overlaps the step's kernels. The pinned buffer is kept until the copy has run by torch's caching
        host allocator (it records the copy stream). On the CPU: asarray."""
        if self.device == "cpu":
            return super().stage(host, dtype)
        torch = self._mod
        with self.activate():
            stream = self._copy_stream()
            buf = self._staged(host, dtype, pin=True)
            with torch.cuda.stream(stream):
                a = buf.to(self.native_device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(stream)
        return Staged(a, done)

    def ready(self, staged):
        """The training thread's stream waits for the staged copy (queued, not on the host), and the array is
        marked as used on that stream (record_stream), so the caching allocator does not hand its memory to
        the copy stream again before the step's kernels are done with it."""
        if not isinstance(staged, Staged):
            return staged
        stream = self._mod.cuda.current_stream(self.native_device)
        stream.wait_event(staged.done)
        staged.array.record_stream(stream)
        return staged.array

    def _copy_stream(self):
        """This backend's CUDA stream for prefetch copies, made once (torch's pooled streams do not wait for
        the default stream's work)."""
        stream = self.__dict__.get("_copy_stream_")
        if stream is None:
            with _STREAM_LOCK:
                stream = self.__dict__.get("_copy_stream_")
                if stream is None:
                    stream = self.__dict__["_copy_stream_"] = self._mod.cuda.Stream(device=self.native_device)
        return stream

    def _staged(self, host, dtype, pin: bool):
        """A new CPU tensor with host's values in `dtype` (None: the dtype asarray would give), in pinned
        memory if `pin`; it shares no memory with `host`."""
        torch = self._mod
        if isinstance(host, np.ndarray):  # one pass: cast straight into the buffer, any strides, read-only ok
            if dtype is None:
                dtype = torch.from_numpy(np.empty(0, dtype=host.dtype)).dtype
            buf = torch.empty(host.shape, dtype=dtype, device="cpu", pin_memory=pin)  # not torch's default device
            np.copyto(buf.numpy(), host, casting="unsafe")
            return buf
        cpu = torch.asarray(host, dtype=dtype, device="cpu")  # lists, scalars: asarray's dtype rules
        return cpu.pin_memory() if pin else cpu.clone()

    def _new_generator(self, seed):
        g = self._mod.Generator(device=self.native_device)
        g.manual_seed(_seed32(seed))
        return g

    def _uniform(self, g, shape: tuple, dtype):
        return g, self._mod.rand(shape, generator=g, dtype=dtype, device=self.native_device)

    def _generator_kind(self) -> str:
        return f"torch-{self.native_device.type}"  # CPU: Mersenne Twister; CUDA: Philox (seed, offset)

    def _generator_state(self, g):
        return g.get_state().tolist()  # a uint8 tensor -> list of ints

    def _generator_from_state(self, data):
        g = self._mod.Generator(device=self.native_device)
        g.set_state(self._mod.tensor(data, dtype=self._mod.uint8, device="cpu"))  # a CPU ByteTensor, for CUDA too
        return g


@contextlib.contextmanager
def _matmul_precision(torch, precision: str):
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class TorchKernels(Kernels):
    """PyTorch's own convolution, pooling, attention and scatter-add (oneDNN or its own CPU kernels, cuDNN on CUDA GPUs), forward by
    torch.nn.functional and backward by the aten ops autograd itself calls (no autograd graph is recorded:
    xpnet's arrays do not require grad). Traceable by torch.compile."""

    def __init__(self, torch):
        self._torch = torch
        self._aten = torch.ops.aten
        self._F = torch.nn.functional

    def conv2d(self, x, w, b, stride, pads, need_dx):
        top, bottom, left, right = pads
        h, wd = x.shape[2], x.shape[3]
        padded = (top, left) != (bottom, right)  # torch pads symmetrically: pad the input itself otherwise
        xin = self._F.pad(x, (left, right, top, bottom)) if padded else x
        padding = (0, 0) if padded else (top, left)
        y = self._F.conv2d(xin, w, b, tuple(stride), padding)
        aten = self._aten

        def backward(dy):
            dx, dw, db = aten.convolution_backward(dy, xin, w, None if b is None else [w.shape[0]], list(stride),
                                                   list(padding), [1, 1], False, [0, 0], 1,
                                                   [bool(need_dx), True, b is not None])
            if need_dx and padded:
                dx = dx[:, :, top:top + h, left:left + wd]
            return (dx if need_dx else None), dw, db

        return y, backward

    def max_pool2d(self, x, kernel, stride, need_dx):
        if not need_dx:
            return self._F.max_pool2d(x, tuple(kernel), tuple(stride)), _no_dx
        y, idx = self._F.max_pool2d(x, tuple(kernel), tuple(stride), return_indices=True)
        aten = self._aten
        return y, lambda dy: aten.max_pool2d_with_indices_backward(dy, x, list(kernel), list(stride), [0, 0], [1, 1],
                                                                    False, idx)

    def avg_pool2d(self, x, kernel, stride, need_dx):
        y = self._F.avg_pool2d(x, tuple(kernel), tuple(stride))
        aten = self._aten
        return y, lambda dy: aten.avg_pool2d_backward(dy, x, list(kernel), list(stride), [0, 0], False, True, None)

    def attention(self, q, k, v, causal, scale):
        """F.scaled_dot_product_attention (torch picks its fused CPU/flash/memory-efficient kernel, or the math
        one, e.g. for float64 on CUDA), differentiated by torch.autograd.grad on detached copies of the inputs:
        the graph of this one call is kept until backward, whichever kernel ran forward."""
        torch = self._torch
        if torch.compiler.is_compiling():  # autograd inside a traced step would break dynamo's graph
            return self._attention_traced(q, k, v, causal, scale)
        with torch.enable_grad():
            qkv = [a.detach().requires_grad_() for a in (q, k, v)]
            out = self._F.scaled_dot_product_attention(*qkv, is_causal=bool(causal), scale=scale)

        def backward(dout):
            return tuple(torch.autograd.grad(out, qkv, dout, retain_graph=True))

        return out.detach(), backward

    def _attention_traced(self, q, k, v, causal, scale):
        """The same attention under torch.compile: forward by F.scaled_dot_product_attention, backward written
        out (the softmax weights recomputed from q and k, then attention_ops.attention's formulas), so the
        step stays one graph that inductor fuses."""
        torch, F = self._torch, self._F
        out = F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), scale=scale)
        s_scale = q.shape[-1] ** -0.5 if scale is None else scale

        def backward(dout):
            s = torch.matmul(q, k.transpose(-1, -2)) * s_scale
            if causal:
                keep = torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril()
                s = s.masked_fill(~keep, float("-inf"))
            p = torch.softmax(s, dim=-1)
            dv = torch.matmul(p.transpose(-1, -2), dout)
            dp = torch.matmul(dout, v.transpose(-1, -2))
            ds = p * (dp - (dp * p).sum(dim=-1, keepdim=True)) * s_scale
            return torch.matmul(ds, k), torch.matmul(ds.transpose(-1, -2), q), dv

        return out, backward

    def scatter_add_rows(self, indices, values, rows):
        """index_add: on CUDA it adds with atomics, whose order (hence float rounding) varies run to run unless
        torch.use_deterministic_algorithms(True)."""
        return values.new_zeros((rows, values.shape[1])).index_add_(0, indices, values)


def _no_dx(dy):
    return None


TorchBackend.kernels_class = TorchKernels
