"""The parent process: plans the jobs, runs each worker in its own process (interleaved repeats; with
--baseline-ref old and new back to back, alternating which goes first) and records every result as it comes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import BENCH, ROOT
from .cases import CASES, MIXED
from .checkout import baseline_worktree, checkout_id
from .frameworks import TABLE, applicable, paired_with_baseline
from .report import Output, header
from .results import experiment_folder, record_run
from .stats import summaries


def spawn(case: str, framework: str, dtype: str, args, root: Path = ROOT) -> dict:
    """One worker process timing the xpnet of checkout `root` (first on its PYTHONPATH)."""
    cmd = [sys.executable, str(BENCH / "run.py"), "--worker", case, framework, dtype,
           "--epochs", str(args.epochs), "--data-dir", str(args.data_dir), "--device", args.device,
           "--xpnet-root", str(root)] + (["--torch-compile-mode", args.torch_compile_mode]
                                         if args.torch_compile_mode else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH")))))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT, check=False, env=env)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {args.timeout} s"}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"skipped": f"worker exited with {p.returncode}: {tail[:300]}"}


def run(args, cases: list[str], frameworks: list[str]) -> None:
    """Every (repeat, case, dtype, framework) job in its own worker, repeats interleaved; --json/--markdown
    written as it goes, the tables printed at the end. args: run.py's parsed options."""
    base_root, base_sha = baseline_worktree(args.baseline_ref) if args.baseline_ref else (None, None)

    jobs = []  # (case, dtype, framework) in run order; the NumPy-only GEMM floor once per case and dtype on the CPU
    for c in cases:
        mixed = [m for m in MIXED if "float32" in CASES[c].dtypes and args.dtypes and m in args.dtypes]
        for dtype in list(CASES[c].dtypes) + mixed:
            if args.dtypes and dtype not in args.dtypes:
                continue
            for f in frameworks + [n for n, fw in TABLE.items() if not fw.selectable]:
                why = applicable(CASES[c], f, args.device, dtype)
                if why:
                    print(f"not run: {c} {dtype} {f}: {why}", flush=True)
                else:
                    jobs.append((c, dtype, f))
    load_before = os.getloadavg()
    results = {job: [] for job in jobs}
    old_results = {job: [] for job in jobs if base_root and paired_with_baseline(job[2])}
    pairs = {job: [] for job in old_results}
    baseline = (base_root, base_sha) if base_sha else None
    total = args.repeats * (len(jobs) + len(old_results))
    out = Output(args, load_before, baseline, cases)
    out.record(record="meta", header=header(args, load_before, baseline), cases={c: CASES[c].title for c in cases},
               jobs=[list(j) for j in jobs], repeats=args.repeats, epochs=args.epochs, device=args.device,
               checkout=str(ROOT), commit=checkout_id(ROOT), baseline_ref=args.baseline_ref, baseline_commit=base_sha,
               baseline_checkout=str(base_root) if base_root else None)
    out.markdown(*summaries(results, old_results, pairs, base_sha), done=0, total=total)
    folder = experiment_folder(args.markdown, args.json)  # a results folder: its manifest.json says what ran

    def manifest(status: str) -> None:
        if folder:
            record_run(folder, [args.json, args.markdown], commit=checkout_id(ROOT), baseline_commit=base_sha,
                       load_before=round(load_before[0], 2), load_after=round(os.getloadavg()[0], 2),
                       status=status)
    manifest("running")
    done = 0

    def measure(r: int, job: tuple, which: str) -> dict:
        nonlocal done
        c, dtype, f = job
        res = spawn(c, f, dtype, args, base_root if which == "old" else ROOT)
        if "fatal" in res:
            out.record(record="fatal", error=res["fatal"])
            manifest("fatal: " + res["fatal"])
            sys.exit(f"run.py: error: {res['fatal']}")
        (old_results if which == "old" else results)[job].append(res)
        done += 1
        out.record(record="run", repeat=r + 1, case=c, dtype=dtype, framework=f,
                   checkout=(which if job in old_results else "new"), **res)
        msg = res["skipped"] if "skipped" in res else f"{res['median_s']:.3f} s/epoch, peak RSS {res['peak_rss_mb']:.0f} MB"
        if "compile_s" in res:
            msg += f", first epoch {res['first_epoch_s']:.2f} s ({res['compile_traces']} traces) untimed"
        tag = f" {which} ({base_sha[:7] if which == 'old' else 'this checkout'})" if job in old_results else ""
        print(f"[repeat {r + 1}/{args.repeats}] {c} {dtype} {f}{tag}: {msg}", flush=True)
        return res

    def stop(signum, frame):  # SIGTERM (timeout, a job runner): end like Ctrl-C, so the worker is killed too
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, stop)
    try:
        for r in range(args.repeats):
            for job in jobs:
                if job not in old_results:
                    measure(r, job, "new")
                else:
                    order = ("old", "new") if r % 2 == 0 else ("new", "old")  # alternate the first: drift cancels
                    got = {which: measure(r, job, which) for which in order}
                    pair = {"repeat": r + 1, "order": "-".join(order),
                            "old_s": got["old"].get("median_s"), "new_s": got["new"].get("median_s")}
                    pairs[job].append(pair)
                    out.record(record="pair", case=job[0], dtype=job[1], framework=job[2], baseline=base_sha, **pair)
                out.markdown(*summaries(results, old_results, pairs, base_sha), done=done, total=total)
    except KeyboardInterrupt as exc:
        name = str(exc) or "SIGINT"
        out.record(record="interrupted", signal=name, done=done, total=total)
        manifest(f"interrupted after {done} of {total} worker runs")
        print(f"run.py: interrupted ({name}) after {done} of {total} worker runs; "
              f"{args.markdown or args.json or 'the lines above'} holds what was done", file=sys.stderr)
        sys.exit(128 + signal.Signals[name].value)

    rows, comps = summaries(results, old_results, pairs, base_sha)
    for row in rows:
        out.record(record="row", **row)
    for comp in comps:
        out.record(record="comparison", **comp)
    out.record(record="end", load_after=os.getloadavg()[0])
    manifest("complete")
    out.markdown(rows, comps, done=done, total=total)
    out.show(rows, comps)
