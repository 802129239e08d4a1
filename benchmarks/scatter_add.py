"""Embedding's weight gradient two ways: the backend's native scatter-add (`Kernels.scatter_add_rows`: torch
`index_add_`, JAX `.at[].add`, CuPy `cupyx.scatter_add`) against the array-API reference, a one-hot matrix
product (`xpnet.layers.attention_ops.scatter_add_rows` without kernels), on each backend and (tokens, vocab,
dim) shape; eager calls, as an eager training step makes them.

    python benchmarks/scatter_add.py --backends numpy,torch,jax --shapes 768x65x128,16384x65x384,4096x50257x64
    python benchmarks/scatter_add.py --experiment scatter-add     # writes benchmarks/results/DATE-scatter-add/

Each (backend, shape) is timed `--repeats` times per path after one untimed warm-up call, the paths alternating
call by call (so drift in the machine's load falls on both alike); printed and written: the median seconds of
each path, their ratio (reference / native: how many times faster the kernel is) and the two results' max
relative difference. xpnet's NumPy backend has no kernel: its native column is np.add.at, for comparison;
array-api-strict's row times the reference only. A shape
whose one-hot blocks or operands would exceed --max-mib is skipped with the reason. --out FILE writes JSON lines
and a Markdown table beside it (FILE with .md); inside benchmarks/results/ the folder's manifest.json gets the
run (benchmarks/bench/results.py); --experiment NAME makes that folder.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

import xpnet  # noqa: E402
from xpnet.layers.attention_ops import _CHUNK, scatter_add_rows  # noqa: E402
from bench import RESULTS  # noqa: E402
from bench.checkout import checkout_id  # noqa: E402
from bench.results import experiment_folder, read_manifest, record_run  # noqa: E402

SHAPES = "768x65x128,16384x65x384,4096x50257x64"
TITLE = "Embedding's gradient: native scatter-add against the one-hot product, per backend and shape"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for part in text.split(","):
        try:
            n, v, d = (int(x) for x in part.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--shapes: {part!r} is not TOKENSxVOCABxDIM (e.g. 768x65x128)") from None
        shapes.append((n, v, d))
    return shapes


def mib_needed(n: int, vocab: int, d: int, itemsize: int) -> float:
    """The reference's peak: indices, values, the output, one one-hot block (at most _CHUNK elements) and its
    product; the native path needs less."""
    block = min(n, max(1, _CHUNK // vocab))
    return (n * 8 + n * d * itemsize + 2 * vocab * d * itemsize + vocab * block * itemsize) / 2 ** 20


class _NumpyAddAt:
    """NumPy's own scatter-add, np.add.at, in the kernel's form: xpnet's NumPy backend has no kernel (its layers
    run the one-hot reference); this row says what one would give."""

    @staticmethod
    def scatter_add_rows(indices, values, rows):
        out = np.zeros((rows, values.shape[1]), dtype=values.dtype)
        np.add.at(out, indices, values)
        return out


def time_pair(bk, idx, values, vocab: int, repeats: int) -> dict:
    """{'native': [seconds], 'reference': [seconds], 'max_rel_diff'}; native None where the backend has none."""
    kernels = bk.kernels if bk.kernels is not None and bk.kernels.scatter_add_rows is not None else None
    if kernels is None and bk.name == "numpy":  # no xpnet kernel: np.add.at, for comparison (what one would be)
        kernels = _NumpyAddAt()
    paths = {"reference": None} if kernels is None else {"native": kernels, "reference": None}
    outs, times = {}, {p: [] for p in paths}
    for path, k in paths.items():  # warm-up: first allocations, JAX's compilation of each op
        outs[path] = bk.to_numpy(bk.block(scatter_add_rows(idx, values, vocab, kernels=k)))
    for _ in range(repeats):
        for path, k in paths.items():
            t = time.perf_counter()
            bk.block(scatter_add_rows(idx, values, vocab, kernels=k))
            times[path].append(time.perf_counter() - t)
    diff = None
    if "native" in outs:
        ref = outs["reference"].astype(np.float64)
        scale = float(np.max(np.abs(ref))) or 1.0
        diff = float(np.max(np.abs(outs["native"].astype(np.float64) - ref))) / scale
    return {**times, "max_rel_diff": diff}


def markdown(rows: list[dict]) -> str:
    lines = [f"# {TITLE}", "", "Medians of eager calls after one warm-up; reference / native: how many times faster "
             "the native scatter-add is (NumPy's native column is np.add.at, which xpnet does not use).", "",
             "| backend | dtype | tokens | vocab | dim | native median s | reference median s | reference / native "
             "| max rel diff | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {r['backend']} | {r['dtype']} | {r['tokens']} | {r['vocab']} | {r['dim']} | "
                     f"{fmt(r.get('native_median_s'), '.3g')} | {fmt(r.get('reference_median_s'), '.3g')} | "
                     f"{fmt(r.get('ratio'), '.2f')} | {fmt(r.get('max_rel_diff'), '.1e')} | {r.get('skipped', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="numpy,torch,jax")
    p.add_argument("--shapes", default=SHAPES, help=f"TOKENSxVOCABxDIM, comma-separated (default {SHAPES})")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--max-mib", type=float, default=4096.0, help="skip a shape needing more memory than this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON lines here, a Markdown table beside it (.md)")
    p.add_argument("--experiment", default=None, help="write benchmarks/results/DATE-NAME/ (bench.jsonl, bench.md)")
    args = p.parse_args(argv)
    if args.experiment:
        folder = RESULTS / f"{datetime.date.today().isoformat()}-{args.experiment}"
        folder.mkdir(parents=True, exist_ok=True)
        args.out = args.out or folder / "bench.jsonl"
    md_path = None if args.out is None else args.out.with_suffix(".md")
    folder = experiment_folder(args.out)
    load_before = round(os.getloadavg()[0], 2)
    rng = np.random.default_rng(args.seed)
    rows = []
    for name in args.backends.split(","):
        bk = xpnet.backend(name)
        dtype = bk.dtype(args.dtype)
        for n, vocab, d in parse_shapes(args.shapes):
            row = {"backend": name, "device": bk.device, "version": bk.version, "dtype": args.dtype, "tokens": n,
                   "vocab": vocab, "dim": d, "repeats": args.repeats}
            need = mib_needed(n, vocab, d, np.dtype(args.dtype).itemsize)
            if need > args.max_mib:
                row["skipped"] = f"needs about {need:.0f} MiB > --max-mib {args.max_mib:.0f}"
            else:
                with bk:
                    idx = bk.asarray(rng.integers(0, vocab, n).astype(np.int64))
                    values = bk.asarray(rng.standard_normal((n, d)), dtype=dtype)
                    got = time_pair(bk, idx, values, vocab, args.repeats)
                for path in ("native", "reference"):
                    if path in got:
                        row[f"{path}_median_s"] = statistics.median(got[path])
                        row[f"{path}_s"] = got[path]
                if "native" in got:
                    row["ratio"] = row["reference_median_s"] / row["native_median_s"]
                row["max_rel_diff"] = got["max_rel_diff"]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("_s") or k.endswith("median_s")}),
                  flush=True)
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
        md_path.write_text(markdown(rows))
    if folder:
        record_run(folder, [args.out, md_path], commit=checkout_id(ROOT), load_before=load_before,
                   load_after=round(os.getloadavg()[0], 2), status="complete")
        manifest = read_manifest(folder)
        if not manifest.get("title"):
            manifest["title"] = TITLE
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
