"""One `xpnet` command timed on this source tree beside another (an earlier commit's checkout), run in turn as
fresh processes, with their outputs compared. Not run by CI.

    python benchmarks/cli_commands.py --baseline DIR [--repeats 5] [--setup "ARGS"] -- ARGS

--setup: xpnet arguments run once first, with this tree (e.g. training the checkpoint the command reads).
In both, {work} stands for a fresh folder the run works in (deleted afterwards). Each repeat runs the command
once per tree, the order alternating, each a fresh `python -m xpnet` process with that tree on PYTHONPATH; the
wall seconds of each and their medians are printed, and whether both trees printed the same standard output.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def xpnet(tree: Path, argv, work: Path) -> tuple[float, bytes]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("XPNET_BACKEND", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "xpnet", *argv], env=env, cwd=work, capture_output=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"xpnet {shlex.join(argv)} ({tree}) failed: {proc.stderr.decode()[-2000:]}")
    return seconds, proc.stdout


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("give the xpnet command after --, e.g. -- evaluate --checkpoint {work}/m.safetensors")
    cut = argv.index("--")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="another source tree (e.g. a git worktree of an earlier commit)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--setup", default=None, help="xpnet arguments run once first, with this tree")
    p.add_argument("--dir", default="/tmp")
    args = p.parse_args(argv[:cut])
    work = Path(tempfile.mkdtemp(prefix="xpnet-cli-", dir=args.dir))
    command = [a.replace("{work}", str(work)) for a in argv[cut + 1:]]
    trees = {"this tree": REPO, "baseline": Path(args.baseline).resolve()}
    try:
        if args.setup:
            setup = [a.replace("{work}", str(work)) for a in shlex.split(args.setup)]
            seconds, _ = xpnet(REPO, setup, work)
            print(f"setup: xpnet {shlex.join(setup)} ({seconds:.1f} s)", flush=True)
        print(f"timed: xpnet {shlex.join(command)}; {args.repeats} repeats, the trees in turn", flush=True)
        times, outputs = {k: [] for k in trees}, {}
        for r in range(args.repeats):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                seconds, outputs[name] = xpnet(trees[name], command, work)
                times[name].append(seconds)
                print(f"  repeat {r + 1} {name:9s}: {seconds:.3f} s", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in trees:
            print(f"{k:9s}: median {med[k]:.3f} s ({', '.join(f'{t:.3f}' for t in times[k])})")
        print(f"this tree / baseline: {med['this tree'] / med['baseline']:.3f}")
        same = outputs["this tree"] == outputs["baseline"]
        print(f"standard output of the last repeat: {'identical' if same else 'DIFFERENT'}")
        if not same:
            for k in trees:
                print(f"--- {k}:\n{outputs[k].decode()[-1500:]}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
