"""Training-speed benchmark: xpnet on each backend against a hand-written NumPy loop, PyTorch, scikit-learn
and the book's own code, on MNIST's 60000 training images.

Usage (from the repository root):

    python benchmarks/run.py                                  # cases A-D, every framework, 5 repeats
    python benchmarks/run.py --quick --cases A,C --frameworks xpnet-numpy,numpy-loop,torch,sklearn
    python benchmarks/run.py --cases B --repeats 3 --epochs 2 --json b.json --markdown b.md
    python benchmarks/run.py --device cuda --cases E          # GPU: xpnet-cupy/torch/jax and torch
    python benchmarks/run.py --baseline-ref 9973ecb --cases A,B,C,D --frameworks xpnet-numpy --repeats 9
    python benchmarks/run.py --cases A,B,C --frameworks xpnet-jax,xpnet-jax-jit,jax-jit --repeats 7 --epochs 3
    python benchmarks/run.py --cases F --frameworks xpnet-numpy,torch --experiment cnn-F   # -> results/DATE-cnn-F/

Options: --data-dir DIR (MNIST IDX files, default ../shared/data/mnist from the repository root),
--cases A,B,C,D,E, --frameworks (xpnet-numpy, xpnet-torch, xpnet-jax, xpnet-array_api_strict, xpnet-cupy,
xpnet-jax-jit, xpnet-torch-compile, jax-jit, numpy-loop, torch, sklearn, book-transcription), --dtypes
float32,float64 (default: each case's), --repeats N (default 5), --epochs N timed per repeat (default 1),
--quick (1 repeat, 1 epoch), --device cpu|cuda, --timeout S (per worker), --json PATH, --markdown PATH,
--experiment NAME and --baseline-ref COMMIT (below), --torch-compile-mode MODE (xpnet-torch-compile's
torch.compile mode, e.g. reduce-overhead on a GPU; default the backend's, "default").

Outputs are written as the run goes, so a run cut short leaves readable files: --json PATH is JSON lines
(read with `[json.loads(line) for line in open(PATH)]`), one object per line with a "record" key: "meta"
(header, cases, jobs, commits) first, then "run" for every worker as it finishes (case, dtype, framework,
repeat, checkout new/old, seconds, median_s, ... or skipped), "pair" for every old/new pair, and at the
end "row" (the table rows below), "comparison" (old against new) and "end". --markdown PATH is rewritten
after every measurement with the tables so far and a status line (complete, or how many runs were done).

Results to keep go in benchmarks/results/, one folder per experiment (DATE-NAME/) with a manifest.json
(bench/results.py): --experiment NAME makes benchmarks/results/DATE-NAME/ and writes bench.jsonl and bench.md
there (unless --json/--markdown say otherwise); whenever --json or --markdown lies in a folder under
benchmarks/results/, the run adds its entry to that folder's manifest.json (its files, date, commit and
baseline commit, CPU model and flags, BLAS threads, load average before and after, the command, its status)
as it starts and when it ends. A document that cites the folder links its files and is listed in the
manifest's "cited_by" (tests/test_bench_results.py checks both).

Code (benchmarks/bench/, see its __init__): a case is one entry of bench/cases.py's CASES, a framework one
entry of bench/frameworks.py's TABLE (and its train function in a bench/train_*.py); bench/runner.py is the
parent loop, bench/worker.py the child process, bench/stats.py and bench/report.py the figures and outputs.

Cases (bench/cases.py): A 784-50-10 sigmoid/logistic (sum), SGD 0.001, batch 1200, float32 and float64;
B 784-512-512-10 ReLU, softmax CE, SGD 0.1 momentum 0.9, batch 128; C 784-50-10, batch 32 (overhead-bound);
D the book's NeuralNetMLP (book2015 settings, raw pixels, float64): xpnet, tests/book_transcription.py's
BookMLP and the NumPy loop; E 4096-4096-4096-10, batch 4096 (GPU only: skipped on the CPU unless named);
F LeNet-5 on (N, 1, 28, 28), SGD 0.05 momentum 0.9, batch 128, float32 (when named: --cases F): xpnet's backends,
native PyTorch (torch.nn.Conv2d/MaxPool2d, xpnet's initial weights and batch order), native JAX (jax-jit, the
same weights and batches) and the GEMM floor of the column layout (benchmarks/cnn_profile.py splits an xpnet step into im2col, matmul, col2im, pooling).

Method: every (repeat, case, dtype, framework) runs in its own fresh process, one at a time (a second
busy process slows BLAS down), interleaved: repeat 1 of everything, then repeat 2, ... A worker loads the
data, builds the model, trains a few untimed warm-up minibatches (the epoch's shapes), then times
`--epochs` full epochs (shuffle + gather + forward + backward + update; device work finished) and reports
its median seconds per epoch and its peak RSS. Every xpnet worker runs with this checkout's root first on
PYTHONPATH and checks that the xpnet it imported comes from there (an editable install elsewhere would
otherwise be timed instead): a mismatch stops the run with an error. The table gives the median over repeats (min-max),
samples/s, GFLOP/s of the layer matrix products (2*m*n*k for x@W.T, dW = dy.T@x and dx = dy@W, no dx for
the first layer) and the ratio to the NumPy loop of the same case and dtype. The `gemm-floor` row times
only those matrix products for one epoch's minibatch shapes with NumPy (preallocated outputs): the
floor any CPU framework on this BLAS can reach (CPU runs only: with --device cuda there is no floor, and
the CPU frameworks, e.g. xpnet-numpy on the GPU machine's host, skip case E). A worker that fails is reported as skipped with the reason.
"peak RSS MB (+training)": the worker's ru_maxrss, and how far RSS rose above its level after imports and
data loading while training (VmHWM reset after loading). JSON rows add repeats_s (each repeat's median
s/epoch), epoch_seconds (every timed epoch) and the note. With JAX, each distinct minibatch offset compiles
its own slice once, so the first timed epoch is slower than later ones: use --epochs 3 for its steady state.

Compiled rows: xpnet-jax-jit and xpnet-torch-compile are xpnet with compile=True on JAX and torch (one compiled
call per minibatch: gather, forward, loss, backward, update, argmax); jax-jit is the same model written as a
JAX user would (run_jax_jit: one jax.jit call per minibatch doing the same jnp.take gather with the step's index
slice passed in, jax.value_and_grad of the same loss and penalty, the case's update; xpnet's initial weights
and batch order; A-D, and F as a native JAX LeNet-5: lax.conv_general_dilated in NCHW/OIHW, lax.reduce_window
max-pooling; its rows also record first_step_loss, the first minibatch's loss before any update). They skip the warm-up (a compiled step traces again for a new data shape) and train
--epochs + 1 epochs: the first compiles (and, on JAX, compiles each offset's index slice) and is not timed;
"compile s" (JSON compile_s; first_epoch_s, compile_traces beside it) is its extra time over the timed epochs'
median. Their rows also record last_epoch_loss and last_epoch_accuracy (xpnet rows too), so xpnet-jax-jit and
jax-jit can be seen to train the same way (case A float64: the same loss to every digit after 2 epochs).

--baseline-ref COMMIT times another checkout side by side with this one: a detached git worktree of COMMIT
in .bench-baseline/<sha> (ignored by git through its own .gitignore; reused when present; remove it with
`git worktree remove .bench-baseline/<sha>`) and, for every xpnet row, its worker run a second time with
that worktree's root first on PYTHONPATH. The worker code, the cases and the data loading are this
checkout's (benchmarks/), only `import xpnet` differs, and it uses only the public API (Sequential, Dense,
Sigmoid, ReLU, LogisticCost, SoftmaxCrossEntropy, SGD, NeuralNetMLP, backend, parameters(), history_).
Only the eager xpnet rows are paired (an older checkout may have no compile=True; the compiled rows are
timed for this checkout only). Each (repeat, case, dtype, framework) gets an old and a new measurement back to back, old first in odd
repeats and new first in even ones (so drift cancels). Reported per case, dtype and framework: the median
old and new s/epoch, the median of the paired ratios new/old and a 95 % bootstrap interval of that median
(10,000 resamples of the pairs, seed 0; with fewer than about 6 pairs the interval is coarse).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import ROOT  # noqa: E402
from bench.cases import CASES  # noqa: E402
from bench.frameworks import FRAMEWORKS, GPU_FRAMEWORKS  # noqa: E402
from bench.results import experiment_outputs  # noqa: E402
from bench.runner import run  # noqa: E402
from bench.worker import worker_main  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    ap.add_argument("--cases", default=None, help="comma-separated from A,B,C,D,E,F,G (default A,B,C,D; E on cuda; "
                    "F and G when named)")
    ap.add_argument("--frameworks", default=None, help="comma-separated from " + ",".join(
        FRAMEWORKS + tuple(f for f in GPU_FRAMEWORKS if f not in FRAMEWORKS)))
    ap.add_argument("--dtypes", default=None, help="only these of each case's dtypes, e.g. float32 (default: all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="one repeat of one epoch, to see that it works")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i] for xpnet-torch/jax/cupy and torch")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a worker is given up as skipped")
    ap.add_argument("--torch-compile-mode", default=None, metavar="MODE",
                    help="torch.compile mode of xpnet-torch-compile (default: the backend's, 'default'); "
                         "'reduce-overhead' (CUDA graphs) on a GPU")
    ap.add_argument("--baseline-ref", metavar="COMMIT",
                    help="also time this commit's xpnet (a worktree in .bench-baseline/), paired with this checkout's")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--experiment", metavar="NAME",
                    help="write into benchmarks/results/DATE-NAME/ (bench.jsonl, bench.md, manifest.json) unless "
                         "--json/--markdown say where")
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "FRAMEWORK", "DTYPE"), help=argparse.SUPPRESS)
    ap.add_argument("--xpnet-root", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()] if args.dtypes else None
    if args.quick:
        args.repeats, args.epochs = 1, 1
    gpu = args.device.startswith("cuda")
    cases = [c.strip().upper() for c in (args.cases or ("A,B,C,D,E" if gpu else "A,B,C,D")).split(",") if c.strip()]
    frameworks = [f.strip() for f in (args.frameworks or ",".join(GPU_FRAMEWORKS if gpu else FRAMEWORKS)).split(",")
                  if f.strip()]
    bad = [c for c in cases if c not in CASES] + [f for f in frameworks if f not in FRAMEWORKS + GPU_FRAMEWORKS]
    if bad:
        ap.error(f"unknown case or framework: {', '.join(bad)}")
    if args.cases is None and not gpu:
        print("case E skipped: 4096-4096-4096-10 at batch 4096 is a GPU case (about 10 TFLOP per epoch, minutes per "
              "epoch on this CPU); name it with --cases E to run it anyway, or use --device cuda", flush=True)
    if args.experiment:
        experiment_outputs(args)
    run(args, cases, frameworks)


if __name__ == "__main__":
    main()
