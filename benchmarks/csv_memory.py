"""Reading a large CSV (`xpnet.data.datasets.load_array_file`, what `xpnet train --dataset x.csv` reads): its
seconds and peak memory for this source tree beside another (an earlier commit's checkout), run in turn as
fresh processes. Not run by CI.

    python benchmarks/csv_memory.py --baseline DIR [--rows 300000] [--features 50] [--repeats 3]

The file: a header row, --features columns of standard normal numbers written with 6 significant digits and a
`label` column of integers 0-9 (seed 0). Each process reads it and prints the arrays' shapes and a checksum;
both trees must print the same. Peak RssAnon (the process's own memory) is sampled every 20 ms
(benchmarks/predict_memory.py's sampler).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from predict_memory import GIB, run_sampled

REPO = Path(__file__).resolve().parents[1]
READ = ("import sys, hashlib; from xpnet.data.datasets import load_array_file; X, y, _, _ = load_array_file(sys.argv[1]); "
        "h = hashlib.sha256(); h.update(X.data.cast('B') if X.flags.c_contiguous else X.tobytes()); "
        "h.update(y.data.cast('B')); print(X.shape, y.dtype, h.hexdigest()[:16])")  # no copies of the arrays


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True)
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--features", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default="/tmp")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xpnet-csv-", dir=args.dir))
    try:
        rng = np.random.default_rng(0)
        path = work / "big.csv"
        with open(path, "w") as fh:
            fh.write(",".join([f"f{i}" for i in range(args.features)] + ["label"]) + "\n")
            for s in range(0, args.rows, 10_000):
                X = rng.standard_normal((min(10_000, args.rows - s), args.features))
                y = rng.integers(0, 10, len(X))
                fh.write("".join(",".join(f"{v:.6g}" for v in row) + f",{label}\n" for row, label in zip(X, y)))
        print(f"{path.name}: {args.rows} rows x {args.features} features + label, {path.stat().st_size / 1e6:.1f} MB; "
              f"{args.repeats} repeats, the trees in turn", flush=True)
        trees = {"this tree": REPO, "baseline": Path(args.baseline).resolve()}
        got, printed = {k: [] for k in trees}, {}
        for r in range(args.repeats):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                env = dict(os.environ, PYTHONPATH=str(trees[name]))
                with open(work / "out.txt", "wb") as out:
                    got[name].append(run_sampled([sys.executable, "-c", READ, path], env, out, work))
                printed[name] = (work / "out.txt").read_text().strip()
                s, anon, _ = got[name][-1]
                print(f"  repeat {r + 1} {name:9s}: {s:.2f} s, peak RssAnon {anon / GIB:.3f} GiB  {printed[name]}",
                      flush=True)
        for name, runs in got.items():
            print(f"{name:9s}: median {statistics.median(v[0] for v in runs):.2f} s, peak RssAnon "
                  f"{max(v[1] for v in runs) / GIB:.3f} GiB")
        same = printed["this tree"] == printed["baseline"]
        print(f"the arrays (shape, dtype, SHA-256 of their bytes) are {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
