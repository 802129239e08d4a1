"""benchmarks/run.py in parts: each a small module, the cases and the frameworks tables.

- cases.py: the CASES table (A-F: architecture, loss, optimizer, minibatching, dtypes), MNIST reading, FLOPs.
  A new case is one Case(...) entry there.
- frameworks.py: the TABLE of frameworks (what trains a case, which device, which cases it can run, its note).
  A new framework is one Framework(...) entry there and, unless it is an xpnet backend, its train function
  run(case, dtype, X, y, epochs, device) -> (seconds per timed epoch, note[, extra figures]) in a train_*.py.
- train_xpnet.py, train_jax.py, train_torch.py, train_numpy.py, train_others.py: those train functions.
- worker.py: the child process (one measurement, one JSON line back).
- runner.py: the parent (the plan, the interleaved repeats, old/new pairs for --baseline-ref).
- stats.py: table rows and the paired comparison (median of ratios, bootstrap interval).
- report.py: the text and Markdown tables, the header, --json (JSON lines) and --markdown as the run goes.
- checkout.py: git, the commit a checkout is at, --baseline-ref's worktree in .bench-baseline/.
- machine.py: versions, the CPU's model and flags, thread settings (for headers and manifests).
- results.py: benchmarks/results/DATE-NAME/ folders and their manifest.json (--experiment NAME).
"""
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]  # benchmarks/
ROOT = BENCH.parent                           # the checkout whose benchmarks these are
RESULTS = BENCH / "results"                   # one folder per experiment, each with a manifest.json
