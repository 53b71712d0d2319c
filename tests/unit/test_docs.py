"""The repository stands on its own: every document it links to is in it, and nothing cites a
document that is not."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / line for line in listed.stdout.splitlines()]


def test_every_relative_link_in_the_docs_resolves_to_a_file_in_the_repository() -> None:
    broken = []
    for page in tracked("*.md"):
        for target, _ in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} → {target}")
    assert not broken


def test_nothing_cites_a_design_document_outside_the_repository() -> None:
    outside = re.compile(r"DESIGN(\.md)? ?§|\.\./shared/")
    citing = [str(path.relative_to(REPO)) for path in tracked("*.py", "*.md", "*.yaml", "*.toml", "Makefile", "*.sh")
              if outside.search(path.read_text(encoding="utf-8", errors="replace"))]  # fmt: skip
    assert not citing
