"""A clone of the repository explains itself: no file cites the team's brief (which a clone does not
have), and every ``docs/NAME.md`` a file cites exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(
    # (spelled in pieces so that this file does not match what it looks for)
    r"\.\./shared|shared/" r"DESIGN|(?<![a-z/])DESIGN\.md|(?<!docs/)reference/(nerdctl|signatures|attestation)\.md"
)
DOC_CITE = re.compile(r"(?<![a-z] )docs/([a-z0-9_-]+\.md)")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.stdout.splitlines() if p and not p.startswith("tests/vectors/")]


def _texts() -> list[tuple[Path, str]]:
    found = []
    for p in _tracked():
        try:
            found.append((p, p.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
    return found


def test_no_file_cites_a_document_outside_the_repository() -> None:
    bad = [f"{p.relative_to(ROOT)}:{n}" for p, text in _texts() if p.name != Path(__file__).name
           for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not bad, "cite the project's own docs/ instead: " + ", ".join(bad)


def test_every_cited_doc_exists() -> None:
    missing = {f"docs/{m}" for _, text in _texts() for m in DOC_CITE.findall(text)
               if not (ROOT / "docs" / m).is_file()}
    assert not missing, f"cited but not in docs/: {sorted(missing)}"
