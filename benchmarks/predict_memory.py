"""`xpnet predict` on a large .npy: its time and memory, and the time of printing a line per input, for this
source tree beside another (an earlier commit's checkout), run after each other in turn. Not run by CI.

    python benchmarks/predict_memory.py [--baseline DIR] [--rows 600000] [--print-rows 40000] [--repeats 2]
                                        [--images 0] [--library]

It trains a small MNIST checkpoint (784-32-10, one epoch, NumPy float32) with this tree, writes MNIST's 10,000
test images as float32 rows repeated to --rows rows (600,000: 1.88 GB) and to --print-rows rows, then for each
repeat and each tree (the order alternating) runs, as a fresh process with that tree on PYTHONPATH:
  quiet:  xpnet predict --checkpoint CK big.npy --quiet --output preds.csv
  lines:  xpnet predict --checkpoint CK small.npy          (a line per input, to a file)
  images: xpnet predict --checkpoint CK images/ --invert no --quiet --output preds.csv   (with --images N: the
          first N test images as PNG files; this tree also with --prefetch 2, decoding in two threads)
  library: model.predict_proba(np.load("big.npy", mmap_mode="r")) in Python (with --library)
sampling the process's RssAnon (its own memory: heap, arrays) and RssFile (file pages mapped into it: the
page cache of the .npy, which the kernel may drop) from /proc/PID/status every 20 ms. It prints the medians
and checks that both trees wrote the same CSV and the same lines, byte for byte.
"""
from __future__ import annotations

import argparse
import filecmp
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30
#: the library case: a checkpoint's probabilities for a memory-mapped .npy, their SHA-256 printed
LIBRARY = ("import sys, hashlib, numpy as np, xpnet; m = xpnet.load(sys.argv[1]); "
           "p = m.predict_proba(np.load(sys.argv[2], mmap_mode='r')); print(p.shape, hashlib.sha256(p).hexdigest())")


def run_sampled(cmd, env, stdout, cwd) -> tuple[float, int, int]:
    """(seconds, peak RssAnon, peak RssFile in bytes) of a process, sampled every 20 ms. cwd: not a source tree
    (python -m puts the working folder before PYTHONPATH)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd)
    anon = file = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]) * 1024)
                    elif line.startswith("RssFile:"):
                        file = max(file, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, anon, file


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=None, help="another source tree (e.g. a git worktree of an earlier commit)")
    p.add_argument("--rows", type=int, default=600_000)
    p.add_argument("--print-rows", type=int, default=40_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    p.add_argument("--dir", default="/tmp")
    p.add_argument("--images", type=int, default=0, help="also predict on this many PNG files (default 0: not)")
    p.add_argument("--library", action="store_true", help="also model.predict_proba on the mapped big.npy")
    args = p.parse_args(argv)
    trees = {"this tree": REPO} | ({"baseline": Path(args.baseline).resolve()} if args.baseline else {})
    work = Path(tempfile.mkdtemp(prefix="xpnet-predict-", dir=args.dir))
    with gzip.open(Path(args.data_dir) / "t10k-images-idx3-ubyte.gz") as f:
        test = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32)
    for name, rows in (("big.npy", args.rows), ("small.npy", args.print_rows)):
        x = np.lib.format.open_memmap(work / name, mode="w+", dtype=np.float32, shape=(rows, 784))
        for s in range(0, rows, len(test)):
            x[s:s + len(test)] = test[:rows - s]
        x.flush()
        del x
    if args.images:
        from PIL import Image
        (work / "images").mkdir()
        for i in range(args.images):
            Image.fromarray(test[i % len(test)].reshape(28, 28).astype(np.uint8)).save(work / "images" / f"{i:06d}.png")
    ck = work / "m.safetensors"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "xpnet", "train", "--dataset", "mnist", "--data-dir", args.data_dir,
                    "--epochs", "1", "--hidden", "32", "--checkpoint", ck, "--quiet"], env=env, check=True, cwd=work)
    size = (work / "big.npy").stat().st_size
    print(f"{args.rows} x 784 float32 rows ({size / 1e9:.2f} GB) quiet with --output; {args.print_rows} rows with "
          f"a line each; {args.repeats} repeats, trees in turn", flush=True)
    got = {k: {"quiet": [], "lines": [], "images": [], "images-prefetch": [], "library": []} for k in trees}
    for r in range(args.repeats):
        for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
            env = dict(os.environ, PYTHONPATH=str(trees[name]))
            check = subprocess.run([sys.executable, "-c", "import xpnet; print(xpnet.__file__)"], env=env, cwd=work,
                                   capture_output=True, text=True, check=True).stdout.strip()
            assert check.startswith(str(trees[name])), f"{name} imports {check}"
            tag = name.replace(" ", "-")
            quiet = run_sampled([sys.executable, "-m", "xpnet", "predict", "--checkpoint", ck, work / "big.npy",
                                 "--quiet", "--output", work / f"preds-{tag}.csv"], env, subprocess.DEVNULL, work)
            with open(work / f"lines-{tag}.txt", "wb") as out:
                lines = run_sampled([sys.executable, "-m", "xpnet", "predict", "--checkpoint", ck,
                                     work / "small.npy"], env, out, work)
            got[name]["quiet"].append(quiet)
            got[name]["lines"].append(lines)
            if args.library:  # model.predict_proba on the memory-mapped array, in Python
                with open(work / f"library-{tag}.txt", "wb") as out:
                    got[name]["library"].append(run_sampled([sys.executable, "-c", LIBRARY, ck, work / "big.npy"],
                                                            env, out, work))
                print(f"  repeat {r + 1} {name:9s}: library {got[name]['library'][-1][0]:6.2f} s, peak RssAnon "
                      f"{got[name]['library'][-1][1] / GIB:.3f} GiB", flush=True)
            for flags, key in (([], "images"), (["--prefetch", "2"], "images-prefetch")):
                if args.images and (not flags or name == "this tree"):
                    got[name][key].append(run_sampled(
                        [sys.executable, "-m", "xpnet", "predict", "--checkpoint", ck, work / "images", "--invert",
                         "no", "--quiet", "--output", work / f"{key}-{tag}.csv", *flags],
                        env, subprocess.DEVNULL, work))
                    print(f"  repeat {r + 1} {name:9s}: {key} {got[name][key][-1][0]:6.2f} s, peak RssAnon "
                          f"{got[name][key][-1][1] / GIB:.3f} GiB", flush=True)
            print(f"  repeat {r + 1} {name:9s}: quiet {quiet[0]:6.2f} s, peak RssAnon {quiet[1] / GIB:.3f} GiB, "
                  f"RssFile {quiet[2] / GIB:.3f} GiB; lines {lines[0]:6.2f} s", flush=True)
    for name, runs in got.items():
        q, lines = runs["quiet"], runs["lines"]
        print(f"{name:9s}: quiet median {statistics.median(v[0] for v in q):.2f} s, peak RssAnon "
              f"{max(v[1] for v in q) / GIB:.3f} GiB (RssFile {max(v[2] for v in q) / GIB:.3f} GiB); lines median "
              f"{statistics.median(v[0] for v in lines):.2f} s")
        for key in ("images", "images-prefetch", "library"):
            if runs[key]:
                med, peak = statistics.median(v[0] for v in runs[key]), max(v[1] for v in runs[key])
                what = "model.predict_proba(np.load(big.npy, mmap_mode='r'))" if key == "library" else \
                    f"{args.images} PNG files"
                print(f"{name:9s}: {key} ({what}) median {med:.2f} s, peak RssAnon {peak / GIB:.3f} GiB")
    pairs = [("preds-this-tree.csv", "preds-baseline.csv"), ("lines-this-tree.txt", "lines-baseline.txt"),
             ("images-this-tree.csv", "images-baseline.csv"), ("images-this-tree.csv", "images-prefetch-this-tree.csv"),
             ("library-this-tree.txt", "library-baseline.txt")]
    for a, b in pairs:
        if (work / a).exists() and (work / b).exists():
            same = filecmp.cmp(work / a, work / b, shallow=False)
            print(f"{a} and {b}: {'byte-identical' if same else 'DIFFERENT'}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
