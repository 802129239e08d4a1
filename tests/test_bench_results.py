"""benchmarks/results/ is one folder per experiment, each with a manifest.json, and every link from the
documents into it resolves: a results file that is removed or renamed while a document links it fails here,
and so does a folder no document (or closing note) cites, or a manifest whose "cited_by" forgets a document."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENTS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target
RUN_KEYS = {"files", "date", "commit", "baseline_commit", "cpu", "cpus", "cpu_flags", "threads", "load_before",
            "load_after", "command", "status"}
FOLDERS = sorted(p for p in RESULTS.iterdir() if p.is_dir()) if RESULTS.is_dir() else []


def links_into_results(doc: Path) -> list[tuple[str, Path]]:
    """(target as written, resolved path) of every Markdown link in `doc` that points into benchmarks/results."""
    out = []
    for target in LINK.findall(doc.read_text()):
        path = target.split("#", 1)[0]
        if "://" in path or not path:
            continue
        resolved = (doc.parent / path).resolve()
        if resolved.is_relative_to(RESULTS):
            out.append((target, resolved))
    return out


def citing_documents() -> dict[str, set[str]]:
    """experiment folder name -> the documents (paths from the repository root) that link into it."""
    cited: dict[str, set[str]] = {}
    for doc in DOCUMENTS:
        for _, resolved in links_into_results(doc):
            folder = resolved.relative_to(RESULTS).parts[0]
            cited.setdefault(folder, set()).add(str(doc.relative_to(ROOT)))
    return cited


def test_results_hold_only_experiment_folders():
    loose = [p.name for p in RESULTS.iterdir() if p.is_file()]
    assert not loose, (f"files directly in benchmarks/results/: {loose}; put each experiment in a folder DATE-NAME/ "
                       f"with a manifest.json (benchmarks/run.py --experiment NAME does)")
    for folder in FOLDERS:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d-[\w.-]+", folder.name), f"{folder.name}: expected DATE-NAME"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_results_folder_has_a_manifest_listing_its_files(folder):
    path = folder / "manifest.json"
    assert path.is_file(), f"{folder.relative_to(ROOT)} has no manifest.json (see benchmarks/bench/results.py)"
    manifest = json.loads(path.read_text())
    assert manifest["experiment"] == folder.name
    assert manifest["runs"], f"{path}: no runs"
    listed = []
    for run in manifest["runs"]:
        assert RUN_KEYS <= set(run), f"{path}: a run lacks {sorted(RUN_KEYS - set(run))}"
        listed += run["files"]
    present = sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
    assert sorted(listed) == present, f"{path}: its runs list {sorted(listed)}, the folder holds {present}"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_results_folder_is_cited_and_says_by_whom(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    documents = {c for c in manifest["cited_by"] if (ROOT / c).is_file()}
    others = [c for c in manifest["cited_by"] if c not in documents]
    linked = citing_documents().get(folder.name, set())
    assert documents == linked, (f"{folder.name}/manifest.json cited_by lists {sorted(documents)}, but "
                                 f"{sorted(linked)} link into the folder: make cited_by say so")
    assert documents or others, (f"nothing cites {folder.name}: link its files from docs/results.md (or delete "
                                 f"the folder; git keeps it)")


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_into_results_resolves(doc):
    broken = [target for target, resolved in links_into_results(doc) if not resolved.exists()]
    assert not broken, f"{doc.relative_to(ROOT)} links results that do not exist: {broken}"


def test_no_document_names_an_old_flat_results_file():
    """A path into benchmarks/results/ written in a document (a link, or in a command) names an experiment
    folder, not one of the old flat files (cnn-F-2026-11-28-quiet.md, ...)."""
    flat = re.compile(r"benchmarks/results/[^/\s`)]+\.(?:md|json|jsonl|txt)\b")
    for doc in DOCUMENTS:
        hits = flat.findall(doc.read_text())
        assert not hits, f"{doc.relative_to(ROOT)} names results outside an experiment folder: {hits}"


def test_the_link_check_fails_when_a_linked_file_is_gone(tmp_path):
    """The check itself: a document linking a results file that is not there is reported."""
    doc = tmp_path / "docs" / "x.md"
    doc.parent.mkdir()
    folder = next(iter(FOLDERS), None)
    if folder is None:
        pytest.skip("no results folders")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "results").symlink_to(RESULTS)
    doc.write_text(f"[gone](../benchmarks/results/{folder.name}/no-such-file.md) "
                   f"[there](../benchmarks/results/{folder.name}/manifest.json)\n")
    got = [(t, r.exists()) for t, r in links_into_results(doc)]
    assert got == [(f"../benchmarks/results/{folder.name}/no-such-file.md", False),
                   (f"../benchmarks/results/{folder.name}/manifest.json", True)]
