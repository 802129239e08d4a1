"""From worker results to figures: a table row per job (median over repeats, samples/s, GFLOP/s, RSS) and, with
--baseline-ref, old against new (median of the paired ratios and its bootstrap interval)."""
from __future__ import annotations

import statistics

from .cases import CASES, N_TRAIN
from .frameworks import TABLE


def summarize(case, framework: str, dtype: str, runs: list[dict], baseline: str | None = None) -> dict:
    """One table row from a job's runs; `baseline`: the sha when these are the baseline checkout's runs."""
    xp = framework in TABLE and TABLE[framework].backend is not None
    backend = framework[len("xpnet-"):] if xp else None  # "jax-jit" for xpnet-jax-jit
    name = ("xpnet" if not baseline else f"xpnet@{baseline[:7]}") if backend else framework
    row = {"case": case.name, "framework": name, "backend": backend, "dtype": dtype,
           "median_s": None, "min_s": None, "max_s": None, "samples_per_s": None, "gflops": None,
           "peak_rss_mb": None, "rss_after_load_mb": None, "ratio_to_numpy_loop": None, "compile_s": None}
    ok = [r for r in runs if "skipped" not in r]
    if not ok:
        row["skipped"] = runs[0]["skipped"] if runs else "not run yet"
        return row
    per_repeat = [r["median_s"] for r in ok]
    med = statistics.median(per_repeat)
    row.update(median_s=med, min_s=min(per_repeat), max_s=max(per_repeat), samples_per_s=N_TRAIN / med,
               gflops=case.flops(N_TRAIN) / med / 1e9, peak_rss_mb=max(r["peak_rss_mb"] for r in ok),
               rss_after_load_mb=max(r["rss_after_load_mb"] for r in ok),
               train_rss_increase_mb=max(r["train_rss_increase_mb"] for r in ok), repeats_s=per_repeat,
               epoch_seconds=[r["seconds"] for r in ok],
               device=ok[0]["device"], note=ok[0]["note"], xpnet_file=ok[0].get("xpnet_file"))
    if any("compile_s" in r for r in ok):  # compiled rows: their first (untimed) epoch, per repeat
        row.update(compile_s=statistics.median(r["compile_s"] for r in ok),
                   compile_s_repeats=[r["compile_s"] for r in ok], compile_traces=ok[0].get("compile_traces"))
    if len(ok) < len(runs):
        failed = next(r["skipped"] for r in runs if "skipped" in r)
        row["note"] = "; ".join(filter(None, (row["note"], f"{len(runs) - len(ok)} repeat(s) failed: {failed}")))
    return row


def summaries(results: dict, old_results: dict, pairs: dict, base_sha: str | None) -> tuple[list[dict], list[dict]]:
    """The table rows (baseline rows before this checkout's) and the old/new comparisons from the runs so far."""
    rows = []
    for job, runs in results.items():
        c, dtype, f = job
        if job in old_results:
            rows.append(summarize(CASES[c], f, dtype, old_results[job], baseline=base_sha))
        rows.append(summarize(CASES[c], f, dtype, runs))
    for row in rows:
        ref = next((x for x in rows if x["case"] == row["case"] and x["dtype"] == row["dtype"]
                    and x["framework"] == "numpy-loop" and x["median_s"]), None)
        if ref and row["median_s"]:
            row["ratio_to_numpy_loop"] = row["median_s"] / ref["median_s"]
    comps = []
    for job in old_results:
        old, new = (next(x for x in rows if (x["case"], x["dtype"]) == job[:2] and x["backend"] == job[2][6:]
                         and x["framework"] == name) for name in (f"xpnet@{base_sha[:7]}", "xpnet"))
        comps.append(comparison(job, old, new, pairs[job], base_sha))
    return rows, comps


def paired_ratio(pairs: list[dict], resamples: int = 10000, seed: int = 0) -> dict:
    """Median of the paired ratios new/old and its 95 % percentile-bootstrap interval (pairs resampled)."""
    import numpy as np
    ratios = np.array([p["new_s"] / p["old_s"] for p in pairs if p["old_s"] and p["new_s"]])
    if not ratios.size:
        return {"pairs": 0, "ratio_median": None, "ratio_ci95": None, "ratios": []}
    idx = np.random.default_rng(seed).integers(0, ratios.size, size=(resamples, ratios.size))
    lo, hi = np.percentile(np.median(ratios[idx], axis=1), [2.5, 97.5])
    return {"pairs": int(ratios.size), "ratio_median": float(np.median(ratios)), "ratio_ci95": [float(lo), float(hi)],
            "ratios": ratios.tolist()}


def comparison(key: tuple, old: dict, new: dict, pairs: list[dict], sha: str) -> dict:
    """Old against new for one (case, dtype, framework): their medians over repeats and the paired ratios."""
    case, dtype, framework = key
    return {"case": case, "dtype": dtype, "framework": framework, "baseline": sha, "old_median_s": old["median_s"],
            "new_median_s": new["median_s"], **paired_ratio(pairs), "measurements": pairs}
