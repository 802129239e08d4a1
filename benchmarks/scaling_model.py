"""The data-parallel cost model of docs/scaling.md: time per step and efficiency of cases A and B projected to
8, 64 and 512 GPUs with a ring all-reduce, from the bytes per step (exact: the parameter count) and stated
assumptions (GEMM rate, per-step overhead, link bandwidths and latencies; none measured on a GPU here). One
command, printing the Markdown tables docs/scaling.md quotes:

    python benchmarks/scaling_model.py [--gemm-tflops 20] [--overhead-us 200]

Model (no overlap of communication with compute, as xpnet does today):
    t_compute(b)  = flops_per_sample * b / R + overhead          (b: rows per GPU, R: achieved GEMM rate)
    t_allreduce   = 2 (N-1)/N * S / B  +  2 (N-1) * alpha        (ring: S bytes, B bytes/s per GPU, alpha per hop;
                                                                   --algorithm tree: 2 ceil(log2 N) * alpha instead)
    t_step        = t_compute(global_batch / N) + t_allreduce
    efficiency    = t_step(1 GPU) / (N * t_step(N GPUs))          (strong scaling: the global batch fixed)
    B_50          = the global batch at which N GPUs reach 50 % efficiency against one GPU on that same batch:
                    f B / R + o = (N/2) (f B / (N R) + o + t_allreduce)  =>  B_50 = R/f (N (o + t_allreduce) - 2 o).
                    Below B_50 the case has stopped scaling to N GPUs.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.cases import CASES  # noqa: E402

# per-GPU all-reduce bandwidth (bus bandwidth, bytes/s) and per-hop latency: assumptions, labelled
FABRICS = {
    "NVLink (8-GPU node)": (300e9, 3e-6),     # H100/H200 NVLink 4: 450 GB/s per direction, ~2/3 reached by NCCL
    "400 Gb/s per GPU": (45e9, 10e-6),        # one 400 Gb/s NIC per GPU (rail-optimised), ~90 % of 50 GB/s
    "100 Gb/s per GPU": (11e9, 15e-6),        # one 100 Gb/s NIC per GPU, ~90 % of 12.5 GB/s
}
GPUS = (8, 64, 512)


def params(case) -> int:
    return sum(k * o + o for k, o in case.layers)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gemm-tflops", type=float, default=20.0, help="achieved float32 GEMM rate per GPU (assumed)")
    p.add_argument("--overhead-us", type=float, default=200.0,
                   help="per-step fixed cost on a GPU: kernel launches, the stop-flag sync (assumed)")
    p.add_argument("--bytes-per-value", type=int, default=4, help="4: float32 gradients; 2: bf16")
    p.add_argument("--algorithm", choices=["ring", "tree"], default="ring",
                   help="the latency term: ring 2(N-1) hops, tree 2 log2 N hops (the bandwidth term is the same)")
    args = p.parse_args(argv)
    rate, overhead = args.gemm_tflops * 1e12, args.overhead_us * 1e-6
    for name in ("A", "B"):
        case = CASES[name]
        batch = case.batch_size
        per_sample = case.flops(1)
        size = (params(case) + 3) * args.bytes_per_value
        one = per_sample * batch / rate + overhead
        print(f"\n**Case {name}** ({case.title}): {params(case):,} parameters, all-reduce {size / 1e6:.3f} MB per "
              f"step, {per_sample * batch / 1e6:.0f} MFLOP per step ({per_sample / 1e6:.2f} MFLOP per row); one "
              f"GPU {one * 1e6:.0f} us per step at the assumed rate\n")
        print(f"| GPUs | fabric | rows per GPU (global {batch}) | compute us | all-reduce us | step us | "
              f"efficiency at batch {batch} | global batch for 50 % (B_50) | B_50 rows per GPU |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for n in GPUS:
            for fabric, (bw, alpha) in FABRICS.items():
                if fabric.startswith("NVLink") and n > 8:
                    continue
                hops = 2 * (n - 1) if args.algorithm == "ring" else 2 * math.ceil(math.log2(n))
                ar = 2 * (n - 1) / n * size / bw + hops * alpha
                rows = batch / n
                comp = per_sample * rows / rate + overhead
                step = comp + ar
                eff = one / (n * step)
                b50 = rate / per_sample * (n * (overhead + ar) - 2 * overhead)
                print(f"| {n} | {fabric} | {rows:g} | {comp * 1e6:.0f} | {ar * 1e6:.0f} | {step * 1e6:.0f} | "
                      f"{100 * eff:.1f} % | {b50:,.0f} | {b50 / n:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
