"""All-reduce micro-benchmark: latency and bandwidth of xpnet's per-step sum (Communicator.allreduce_) from
1 KB to 64 MB, on the ranks an MPI launcher started. One command:

    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/allreduce.py [--backend numpy] [--dtype float32] [--json PATH]

For each size: each rank times its own calls (a barrier before each, `--warmup` untimed first) and the slowest
rank's median is reported, since a step waits for the slowest rank. Fewer repeats above 1 MiB. algbw = bytes /
time; busbw = algbw * 2(N-1)/N, the bytes each link carries in a ring all-reduce (NCCL's convention), comparable
across rank counts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xpnet  # noqa: E402
from xpnet.distributed import Communicator  # noqa: E402

SIZES = [2 ** k for k in range(10, 27, 2)]  # 1 KiB, 4 KiB, ..., 64 MiB


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--max-bytes", type=int, default=SIZES[-1])
    p.add_argument("--json", default=None, help="append one JSON line per size here (rank 0)")
    args = p.parse_args(argv)
    comm = Communicator()
    bk = xpnet.backend(args.backend, args.device)
    itemsize = 4 if args.dtype == "float32" else 8
    rows = []
    with bk:
        for nbytes in [s for s in SIZES if s <= args.max_bytes]:
            flat = bk.xp.ones((nbytes // itemsize,), dtype=bk.dtype(args.dtype), device=bk.native_device)
            reps = max(3, min(args.repeats, int(args.repeats * 2 ** 20 / nbytes) + 3))
            times = []
            for i in range(args.warmup + reps):
                comm.barrier()
                t0 = time.perf_counter()
                flat = bk.block(comm.allreduce_(flat, bk))  # (JAX: synchronize() would not wait for the copy back)
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
            med = max(comm.allgather(statistics.median(times)))
            row = {"bytes": nbytes, "ranks": comm.size, "backend": bk.name, "device": bk.device, "dtype": args.dtype,
                   "path": comm.path(bk, flat), "repeats": reps, "median_s": med,
                   "min_s": max(comm.allgather(min(times))), "max_s": max(comm.allgather(max(times))),
                   "load_average_1min": os.getloadavg()[0], "algbw_GBps": nbytes / med / 1e9,
                   "busbw_GBps": nbytes / med / 1e9 * 2 * (comm.size - 1) / comm.size}
            rows.append(row)
    if comm.rank == 0:
        print(f"all-reduce, {comm.size} ranks, {bk.name} {args.dtype}, path {rows[0]['path']}: median of each rank's "
              f"calls, slowest rank")
        print(f"{'bytes':>10} {'median us':>10} {'min us':>9} {'algbw GB/s':>10} {'busbw GB/s':>10}")
        for r in rows:
            print(f"{_size(r['bytes']):>10} {r['median_s'] * 1e6:>10.1f} {r['min_s'] * 1e6:>9.1f} "
                  f"{r['algbw_GBps']:>10.3f} {r['busbw_GBps']:>10.3f}")
        if args.json:
            with open(args.json, "a") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
    return 0


def _size(n: int) -> str:
    return f"{n // 2 ** 20} MiB" if n >= 2 ** 20 else f"{n // 2 ** 10} KiB"


if __name__ == "__main__":
    sys.exit(main())
