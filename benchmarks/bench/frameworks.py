"""The frameworks a case is timed with: one Framework entry each, in the order a run lists them.

An xpnet row names its backend (and compile=True or not): train_xpnet.run_xpnet builds the case with the
public API. Any other row names its train function run(case, dtype, X, y, epochs, device) -> (seconds per
timed epoch, note[, a dict of extra figures]) and, optionally, prepare() (imports done before the worker
measures its RSS after loading). `gpu`: it runs on --device and is in the default list of a cuda run;
`cpu`: in the default list of a CPU run; `selectable`: may be named in --frameworks (the GEMM floor is added
to every case instead). conv/resnet/book: whether it can run case F (and G) / case G / case D; book_only: case D only; data: whether the worker loads
the case's data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import train_jax, train_numpy, train_others, train_torch


@dataclass(frozen=True)
class Framework:
    name: str
    backend: str | None = None        # an xpnet row: xpnet.backend(backend, device)
    compiled: bool = False            # xpnet's compile=True (a first, untimed, compiling epoch)
    run: Callable | None = None       # a non-xpnet row's train function
    prepare: Callable | None = None   # imports before the RSS after loading is read
    note: str | None = None           # what the row is, under the table
    cpu: bool = True                  # in a CPU run's default list
    gpu: bool = False                 # runs on --device; in a cuda run's default list
    selectable: bool = True           # may be named in --frameworks
    conv: bool = True                 # runs case F (LeNet-5)
    resnet: bool = True               # runs case G (resnet-fashion's ResNet)
    book: bool = True                 # runs case D (the book's NeuralNetMLP)
    book_only: bool = False           # runs case D only
    data: bool = True                 # loads the case's data (the GEMM floor draws its own)


TABLE = {f.name: f for f in (
    Framework("xpnet-cupy", backend="cupy", cpu=False, gpu=True),
    Framework("xpnet-numpy", backend="numpy"),
    Framework("xpnet-torch", backend="torch", gpu=True),
    Framework("xpnet-jax", backend="jax", gpu=True),
    Framework("xpnet-array_api_strict", backend="array_api_strict"),
    Framework("xpnet-jax-jit", backend="jax", compiled=True, gpu=True,
              note="compile=True on JAX: one jax.jit call per minibatch (xpnet's own step traced)"),
    Framework("xpnet-torch-compile", backend="torch", compiled=True, gpu=True,
              note="compile=True on torch: one torch.compile'd call per minibatch (xpnet's own step)"),
    Framework("jax-jit", run=train_jax.run_jax_jit, prepare=train_jax.prepare, gpu=True, resnet=False,
              note="native JAX (run.py run_jax_jit): one jax.jit step per minibatch (jnp.take gather, "
                   "value_and_grad, the case's update, loss and argmax out), xpnet's initial weights and batch order; "
                   "case F: lax.conv_general_dilated (NCHW/OIHW) and lax.reduce_window max-pooling"),
    Framework("numpy-loop", run=train_numpy.run_numpy_loop, conv=False,
              note="hand-written loop (numpy_loop.py): no loss value or accuracy computed"),
    Framework("torch", run=train_torch.run_torch, prepare=train_torch.prepare, gpu=True, book=False),
    Framework("sklearn", run=train_others.run_sklearn, prepare=train_others.prepare_sklearn, conv=False, book=False,
              note="MLPClassifier(solver='sgd', alpha=0), one partial_fit per epoch; softmax output (its multiclass "
                   "output), mean loss, lr scaled by the batch size where the case sums"),
    Framework("book-transcription", run=train_others.run_book, book_only=True,
              note="tests/book_transcription.py BookMLP: bias columns, samples as columns, composed shuffles"),
    Framework("gemm-floor", run=train_numpy.run_gemm_floor, cpu=False, selectable=False, data=False,
              note="NumPy matrix products only, one epoch's shapes, preallocated outputs"),
)}
# the names a run lists by default, on the CPU and with --device cuda (and may be named in --frameworks)
FRAMEWORKS = tuple(n for n, f in TABLE.items() if f.cpu and f.selectable)
GPU_FRAMEWORKS = tuple(n for n, f in TABLE.items() if f.gpu and f.selectable)


def paired_with_baseline(framework: str) -> bool:
    """Whether --baseline-ref times `framework` on the old checkout too: the eager xpnet rows only (an older
    checkout may have no compile=True)."""
    f = TABLE.get(framework)
    return bool(f and f.backend and not f.compiled)


def applicable(case, framework: str, device: str = "cpu", dtype: str = "float32") -> str | None:
    """None, or why `framework` does not run `case` on `device` in `dtype` (a mixed policy: xpnet's eager rows and
    native torch only)."""
    from .cases import MIXED, N_TRAIN
    f = TABLE[framework]
    if dtype in MIXED and not ((f.backend and not f.compiled) or framework == "torch"):
        return f"{dtype}: xpnet's eager rows (Sequential(precision=)) and native torch (torch.autocast) only"
    on_gpu_run = device.startswith("cuda")
    if on_gpu_run and case.gpu_only and not f.gpu:
        return (f"a CPU row on the GPU case: about {case.flops(N_TRAIN):.0e} FLOP per epoch, minutes on the host CPU; "
                f"run it without --device cuda to time it")
    if framework == "gemm-floor" and on_gpu_run:
        return "the GEMM floor is NumPy on the CPU: no floor for the GPU rows"
    if f.book_only and not case.book:
        return "the book's code is case D only"
    if case.conv and not f.conv:
        return ("case F is convolutional: no such row (xpnet's backends, native torch.nn.Conv2d, native JAX "
                "(jax-jit) and the GEMM floor)")
    if case.resnet and not f.resnet:
        return "case G is a ResNet: no such row (xpnet's backends and native PyTorch, torch.nn modules)"
    if case.book and not f.book:
        return "no equivalent of the book's look-back momentum and composed shuffles"
    return None
