"""The checkouts a run times: this one, and with --baseline-ref a detached git worktree of another commit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from . import ROOT

BASELINE_DIR = ROOT / ".bench-baseline"


def git(*argv, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=False)


def checkout_id(root: Path) -> str:
    """The commit a checkout is at, with '+uncommitted changes' when its tracked files differ from it."""
    head = git("rev-parse", "HEAD", cwd=root).stdout.strip() or "unknown commit"
    dirty = git("status", "--porcelain", "--untracked-files=no", cwd=root).stdout.strip()
    return head + (" + uncommitted changes" if dirty else "")


def baseline_worktree(ref: str) -> tuple[Path, str]:
    """A clean detached worktree of `ref` in .bench-baseline/<sha>, made or reused -> (its root, the sha)."""
    r = git("rev-parse", "--verify", "--quiet", ref + "^{commit}")
    if r.returncode:
        sys.exit(f"run.py: error: --baseline-ref {ref!r} is not a commit of {ROOT}")
    sha = r.stdout.strip()
    path = BASELINE_DIR / sha[:12]
    BASELINE_DIR.mkdir(exist_ok=True)
    ignore = BASELINE_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# baseline checkouts made by benchmarks/run.py --baseline-ref\n*\n")
    if path.exists():
        head = git("rev-parse", "HEAD", cwd=path).stdout.strip()
        if head != sha or git("status", "--porcelain", "--untracked-files=no", cwd=path).stdout.strip():
            sys.exit(f"run.py: error: {path} exists but is not a clean checkout of {sha}; remove it "
                     f"(git worktree remove --force {path}) and run again")
        print(f"baseline: reusing {path} ({sha[:12]})", flush=True)
    else:
        r = git("worktree", "add", "--detach", str(path), sha)
        if r.returncode:
            sys.exit(f"run.py: error: git worktree add {path} {sha[:12]} failed: "
                     f"{(r.stderr.strip().splitlines() or ['no message'])[-1]}")
        print(f"baseline: made worktree {path} ({sha[:12]}); remove it with git worktree remove {path}", flush=True)
    return path, sha
