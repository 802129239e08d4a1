"""benchmarks/results/: one folder per experiment, DATE-NAME/, holding its result files and a manifest.json.

manifest.json: {"experiment": the folder's name, "title": what was measured, "cited_by": the documents that
link into the folder (docs/*.md, README.md; tests/test_bench_results.py checks it), "runs": [one entry per
command run into the folder: "files" (its outputs, names in the folder), "date", "commit" (the checkout timed,
"+ uncommitted changes" when it differed), "baseline_commit" (--baseline-ref's, or null), "cpu", "cpus",
"cpu_flags", "threads" (BLAS/OpenMP settings), "load_before", "load_after", "command", "status"]}; a field a
run did not record is null. run.py writes it beside --json/--markdown when they lie in a folder under
benchmarks/results/ (--experiment NAME makes that folder, DATE-NAME, with bench.jsonl and bench.md in it).
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from pathlib import Path

from . import RESULTS, ROOT
from .machine import cpu_flags, cpu_model, threads

MANIFEST = "manifest.json"


def experiment_outputs(args) -> Path:
    """--experiment NAME: make benchmarks/results/DATE-NAME/ and point --json/--markdown (when not given)
    at bench.jsonl and bench.md in it -> the folder."""
    folder = RESULTS / f"{datetime.date.today().isoformat()}-{args.experiment}"
    folder.mkdir(parents=True, exist_ok=True)
    args.json = args.json or folder / "bench.jsonl"
    args.markdown = args.markdown or folder / "bench.md"
    return folder


def experiment_folder(*paths: Path | None) -> Path | None:
    """The folder under benchmarks/results/ that holds these outputs, or None (outputs elsewhere)."""
    for p in paths:
        if p is None:
            continue
        folder = Path(p).resolve().parent
        if folder != RESULTS.resolve() and folder.is_relative_to(RESULTS.resolve()):
            return folder
    return None


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if path.is_file():
        return json.loads(path.read_text())
    return {"experiment": folder.name, "title": None, "cited_by": [], "runs": []}


def record_run(folder: Path, files: list[Path], **fields) -> None:
    """Add (or replace: the same files) this run's entry in folder/manifest.json; the machine, the date and
    the command are filled in here, `fields` (commit, baseline_commit, load_before, load_after, status) given."""
    manifest = read_manifest(folder)
    names = sorted(Path(f).name for f in files if f is not None)
    entry = {"files": names,
             "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
             "commit": None, "baseline_commit": None, "cpu": cpu_model(), "cpus": os.cpu_count(),
             "cpu_flags": cpu_flags(), "threads": threads(), "load_before": None, "load_after": None,
             "command": f"cd {ROOT} && {shlex.join([sys.executable] + sys.argv)}", "status": None}
    old = next((r for r in manifest["runs"] if r.get("files") == names), None)
    if old is not None:  # the same files written again: this run replaces that one (keeping its start if it goes on)
        if old.get("status") == "running":
            entry["date"] = old.get("date", entry["date"])
        manifest["runs"].remove(old)
    entry.update(fields)
    manifest["runs"].append(entry)
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, folder / MANIFEST)


class Rows:
    """A benchmark's JSON lines: each row printed and, with a path, appended to it as it comes; a path inside a
    results folder records the run in its manifest.json (status running, then complete with the load after).

        with Rows(args.out, root=ROOT, mode="a", print_rows=True) as rows:
            rows.emit({"seed": 1, "val_loss": 1.9})

    `fields` (e.g. nanogpt_commit=...) go into the manifest entry."""

    def __init__(self, path: Path | None, *, root: Path, mode: str = "a", print_rows: bool = True, **fields):
        from .checkout import checkout_id
        self.path, self.print_rows, self.fields = path, print_rows, fields
        self.out = open(path, mode) if path else None
        self.folder = experiment_folder(path)
        self.commit = checkout_id(root)
        self.load_before = round(os.getloadavg()[0], 2)
        self._record("running")

    def _record(self, status: str, **more) -> None:
        if self.folder is not None:
            record_run(self.folder, [self.path], commit=self.commit, load_before=self.load_before, status=status,
                       **self.fields, **more)

    def emit(self, row: dict, *, show: bool | None = None) -> None:
        line = json.dumps(row)
        if self.print_rows if show is None else show:
            print(line, flush=True)
        if self.out:
            self.out.write(line + "\n")
            self.out.flush()

    def __enter__(self) -> "Rows":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self.out:
            self.out.close()
        self._record("complete" if exc_type is None else "failed", load_after=round(os.getloadavg()[0], 2))
