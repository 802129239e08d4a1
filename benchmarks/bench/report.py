"""What a run writes: the text tables, the machine header, --json (JSON lines as they happen), --markdown
(rewritten after every measurement)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys

from . import ROOT
from .cases import CASES
from .checkout import checkout_id
from .frameworks import TABLE
from .machine import cpu_model, versions
from .machine import threads as machine_threads


def table(rows: list[dict]) -> list[list[str]]:
    head = ["case", "framework", "backend", "dtype", "s/epoch median (min-max)", "samples/s", "GFLOP/s",
            "peak RSS MB (+training)", "x numpy-loop", "compile s"]
    out = [head]
    for r in rows:
        if r["median_s"] is None:
            out.append([r["case"], r["framework"], r["backend"] or "", r["dtype"], "skipped: " + r["skipped"],
                        "", "", "", "", ""])
            continue
        ratio, comp = r["ratio_to_numpy_loop"], r.get("compile_s")
        out.append([r["case"], r["framework"], r["backend"] or "", r["dtype"],
                    f"{r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f})", f"{r['samples_per_s']:,.0f}",
                    f"{r['gflops']:.1f}", f"{r['peak_rss_mb']:.0f} (+{r['train_rss_increase_mb']:.0f})",
                    "" if ratio is None else f"{ratio:.2f}", "" if comp is None else f"{comp:.2f}"])
    return out


def comparison_table(comps: list[dict]) -> list[list[str]]:
    out = [["case", "framework", "dtype", "old s/epoch (median)", "new s/epoch (median)", "new/old (median of pairs)",
            "95 % CI (bootstrap)", "pairs"]]
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for c in comps:
        ci = c["ratio_ci95"]
        out.append([c["case"], c["framework"], c["dtype"], f(c["old_median_s"]), f(c["new_median_s"]),
                    f(c["ratio_median"]), "–" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}", str(c["pairs"])])
    return out


def notes_of(rows: list[dict]) -> list[tuple[str, str]]:
    """(framework, what it is and the distinct notes its workers gave)."""
    notes = {}
    for r in rows:
        name = r["framework"] if r["backend"] is None else f"{r['framework']}-{r['backend']}"
        seen = notes.setdefault(name, [TABLE[name].note] if name in TABLE and TABLE[name].note else [])
        if r.get("note") and r["note"] not in seen:
            seen.append(r["note"])
    return [(name, "; ".join(texts)) for name, texts in sorted(notes.items()) if texts]


def header(args, load_before, baseline=None) -> list[str]:
    threads = machine_threads()
    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {cpu_model()}" + (f", {threads}" if threads else ""),
        f"- load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        (f"- {args.repeats} repeat(s) x {args.epochs} epoch(s), 60000 MNIST training images, one worker process "
         f"at a time, device {args.device}"),
        f"- xpnet timed: {ROOT} at {checkout_id(ROOT)}"
        + (f"; baseline (old): {baseline[0]} at {baseline[1]} (--baseline-ref {args.baseline_ref})" if baseline else ""),
        f"- command: `cd {ROOT} && {shlex.join([sys.executable] + sys.argv)}`",
    ]


class Output:
    """--json as JSON lines appended as they happen (one write and fsync per line, so a run killed at any
    moment leaves whole lines); --markdown rewritten after every measurement (a temporary file renamed over
    it), with the tables of what is done so far and a status line saying whether the run finished."""

    def __init__(self, args, load_before, baseline, cases):
        self.args, self.load_before, self.baseline, self.cases = args, load_before, baseline, cases
        self.fd = None
        if args.json:
            self.fd = os.open(args.json, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def record(self, **rec) -> None:
        if self.fd is not None:
            os.write(self.fd, (json.dumps(rec) + "\n").encode())
            os.fsync(self.fd)

    def markdown(self, rows, comps, done: int, total: int) -> None:
        if not self.args.markdown:
            return
        base_sha = self.baseline[1] if self.baseline else None
        status = ("complete" if done == total else
                  f"PARTIAL: {done} of {total} worker runs done (a run cut short leaves this; medians are over "
                  f"the repeats done)")
        grid = table(rows)
        md = ["# xpnet training benchmark", ""] + header(self.args, self.load_before, self.baseline)
        md += [f"- status: {status}", ""]
        md += ["| " + " | ".join(grid[0]) + " |", "|" + " --- |" * len(grid[0])]
        md += ["| " + " | ".join(line) + " |" for line in grid[1:]] + [""]
        md += [f"- {c}: {CASES[c].title}" for c in self.cases] + [f"- {n}: {t}" for n, t in notes_of(rows)]
        if comps:
            cgrid = comparison_table(comps)
            md += ["", f"## This checkout (new) against {base_sha[:12]} (old)", "",
                   "Each repeat times old and new back to back (order alternating); new/old is the median of the "
                   "paired ratios, with a 95 % bootstrap interval (10,000 resamples of the pairs, seed 0).", ""]
            md += ["| " + " | ".join(cgrid[0]) + " |", "|" + " --- |" * len(cgrid[0])]
            md += ["| " + " | ".join(line) + " |" for line in cgrid[1:]]
        tmp = self.args.markdown.with_name(self.args.markdown.name + ".tmp")
        tmp.write_text("\n".join(md) + "\n")
        os.replace(tmp, self.args.markdown)

    def show(self, rows, comps) -> None:
        def show(grid):
            widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
            print()
            for line in grid:
                print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        show(table(rows))
        for name, note in notes_of(rows):
            print(f"  {name}: {note}")
        for c in self.cases:
            print(f"  {c}: {CASES[c].title}")
        if comps:
            print(f"\nthis checkout (new) against {self.baseline[1][:12]} (old), paired measurements:")
            show(comparison_table(comps))
