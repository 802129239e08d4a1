"""Step split of data-parallel training: compute (this rank's forward + backward on its shard), communication
(the one all-reduce, including waiting for the slowest rank) and update (penalty + optimizer) per step, for
benchmark cases A and B on 1 and 2 ranks. One command (it launches the ranks itself with mpiexec, the rank
counts and cases interleaved, `--repeats` rounds):

    python benchmarks/step_split.py --data-dir ../shared/data/mnist [--repeats 3] [--steps 60] [--json PATH]

One rank under mpiexec runs the same DataParallel step (its all-reduce returns at once); "1 process" figures
of plain fit are in docs/results.md. Medians over steps, then the median over rounds; each rank runs with one
BLAS/OpenMP thread. A worker alone: mpiexec -n 2 python benchmarks/step_split.py --worker --case B ...
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def worker(args) -> None:
    import numpy as np

    import xpnet
    from bench.cases import CASES, load_data
    from xpnet.distributed.data_parallel import DataParallel
    from xpnet.distributed import Communicator
    from xpnet.models.mlp import mlp_layers

    case = CASES[args.case]
    comm = Communicator()
    X, y = load_data(case, args.dtype, args.data_dir)
    # the runner's model for the case: Dense layers with case.init, case.hidden between them
    layers = mlp_layers(list(case.sizes), case.hidden, init=case.init, output_init=case.init)
    loss = (xpnet.LogisticCost if case.loss == "logistic" else xpnet.SoftmaxCrossEntropy)(reduction=case.reduction)
    model = xpnet.Sequential(layers, loss=loss, optimizer=xpnet.SGD(case.lr, momentum=case.momentum),
                             backend=args.backend, dtype=args.dtype, seed=0)
    bk = model.bk
    with bk:
        Xd, (Yd, Ld) = model.as_input(X), model.as_targets(y, X.shape[0])
        dp = DataParallel(model, comm)
        order = bk.asarray(np.random.default_rng(0).permutation(X.shape[0]))
        b = case.batch_size
        steps = min(args.steps, X.shape[0] // b)
        for i in range(args.warmup):
            dp.step(Xd, Yd, Ld, order[i * b:(i + 1) * b])
        dp.timer = []
        comm.barrier()
        t0 = time.perf_counter()
        for i in range(steps):
            dp.step(Xd, Yd, Ld, order[i * b:(i + 1) * b])
        total = (time.perf_counter() - t0) / steps
    comp, com, upd = (statistics.median(t[j] for t in dp.timer) for j in range(3))
    rows = comm.allgather((comp, com, upd, total))
    if comm.rank == 0:
        worst = [max(r[j] for r in rows) for j in range(4)]
        print(json.dumps({"case": case.name, "ranks": comm.size, "batch": b, "shard": -(-b // comm.size),
                          "backend": bk.name, "dtype": args.dtype, "steps": steps, "path": comm.path(bk, Xd[0]),
                          "bytes_per_step": dp.bytes_per_step(), "compute_s": worst[0], "comm_s": worst[1],
                          "update_s": worst[2], "step_s": worst[3], "load_average_1min": os.getloadavg()[0]}),
              flush=True)


def launch(args) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    for rnd in range(args.repeats):
        for case in args.cases.split(","):
            for n in (1, 2):
                cmd = ["mpiexec", "-n", str(n), sys.executable, __file__, "--worker", "--case", case, "--data-dir",
                       args.data_dir, "--steps", str(args.steps), "--backend", args.backend, "--dtype", args.dtype]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
                if out.returncode:
                    sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(dict(row, round=rnd))
    table = []
    print(f"step split, median over {args.repeats} rounds of per-step medians (us), slowest rank; "
          f"{args.backend} {args.dtype}")
    print(f"{'case':<5} {'ranks':>5} {'shard':>6} {'compute':>9} {'comm':>8} {'update':>8} {'step':>8} "
          f"{'comm %':>7} {'speedup':>8}")
    for case in args.cases.split(","):
        one = None
        for n in (1, 2):
            rs = [r for r in results if r["case"] == case and r["ranks"] == n]
            med = {k: statistics.median(r[k] for r in rs) for k in ("compute_s", "comm_s", "update_s", "step_s")}
            one = med["step_s"] if n == 1 else one
            row = dict(rs[0], **med, rounds=len(rs), speedup=one / med["step_s"])
            table.append(row)
            print(f"{case:<5} {n:>5} {row['shard']:>6} {med['compute_s'] * 1e6:>9.0f} {med['comm_s'] * 1e6:>8.0f} "
                  f"{med['update_s'] * 1e6:>8.0f} {med['step_s'] * 1e6:>8.0f} "
                  f"{100 * med['comm_s'] / med['step_s']:>6.1f}% {row['speedup']:>7.2f}x")
    if args.json:
        with open(args.json, "a") as f:
            for r in results + [dict(t, summary=True) for t in table]:
                f.write(json.dumps(r) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help="run as one rank (under mpiexec)")
    p.add_argument("--case", default="A")
    p.add_argument("--cases", default="A,B")
    p.add_argument("--data-dir", default=os.environ.get("XPNET_DATA", "../shared/data/mnist"))
    p.add_argument("--backend", default="numpy")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    worker(args) if args.worker else launch(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
