"""Replay the saved fuzz corpus (``tests/fuzz/corpus/<target>/``) through every target: the seeds from the
real vectors and every input the fuzzers found (``crash-*`` are inputs that once broke a parser; each is
fixed). No fuzzing here, so it runs in every CI; the atheris harnesses (``tox -e fuzz``) add to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import targets

CASES = [(name, p) for name in targets.TARGETS for p in targets.corpus(name)]


def test_every_target_has_a_corpus() -> None:
    assert {name for name, _ in CASES} == set(targets.TARGETS)


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}/{p.name}" for n, p in CASES])
def test_corpus_input(name: str, path: Path) -> None:
    targets.TARGETS[name](path.read_bytes())
