"""MkDocs hooks (mkdocs.yml `hooks:`) for xpnet's documentation site.

- The command-line reference is generated from the parser: `<!-- xpnet:cli-reference -->` in a page becomes
  the `--help` of `xpnet` and of each command (`xpnet.cli.app.build_parser`), so a flag cannot be missing
  from the reference or documented after it was removed.
- Results files are served with the site: every file under `benchmarks/results/` is added at the same path
  (`benchmarks/results/...`), and a page's link to `../benchmarks/results/...` is pointed at it. MkDocs then
  checks those links like any other, so a cited file that is moved or deleted fails `mkdocs build --strict`.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
MARKER = "<!-- xpnet:cli-reference -->"
LINK = re.compile(r"\]\((?P<target>(?:\.\./)+benchmarks/results/[^)#\s]*)(?P<rest>[^)]*)\)")


def cli_reference() -> str:
    """`xpnet --help` and `xpnet COMMAND --help` for every command, as Markdown sections."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: the same page everywhere
    from xpnet.cli.app import build_parser
    parser = build_parser()
    parts = ["## xpnet", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"## xpnet {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_files(files, config):
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file():
            rel = path.relative_to(ROOT).as_posix()
            files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    page_dir = (Path(config["docs_dir"]) / page.file.src_uri).parent
    docs_dir = Path(config["docs_dir"])

    def relink(m):
        target = (page_dir / m["target"]).resolve()
        try:  # where the file is served: docs_dir / benchmarks/results/...
            served = docs_dir / target.relative_to(ROOT)
        except ValueError:
            return m[0]
        return f"]({os.path.relpath(served, page_dir).replace(os.sep, '/')}{m['rest']})"

    return LINK.sub(relink, markdown)
