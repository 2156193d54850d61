"""Fuzzing image references: any string parses (and then normalizes and pins to references that parse
back to the same repository) or raises UsageError (``tests.fuzz.targets.check_reference``)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.common.errors import UsageError
from shim.images import reference as nref
from tests.fuzz import targets
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import mutated

_PARTS = st.sampled_from((
    "127.0.0.1", ":5000", "localhost", "docker.io", "index.docker.io", "[::1]", "/", "//", "library", "app",
    "a.b_c", "a__b", "a--b", "a-", "_a", "A", "\u0430", ":", ":latest", ":" + "t" * 128, "@", "@sha256:",
    "sha256:" + "ab" * 32, "sha384:" + "ab" * 48, "sha256:" + "AB" * 32, "ab" * 32, "Qm", "bafy", "z", "f01",
    "ipfs://", "ipns://", "oci-archive://", ".", "..", "-", "\x00", "\udcff", "\u212a",
))


@fuzz(500)
@given(st.lists(st.one_of(_PARTS, st.text(alphabet="abcdef0123456789:/@._-", max_size=6)), max_size=8).map("".join))
def test_assembled_references(raw: str) -> None:
    targets.check_reference(raw)


@fuzz(300)
@given(st.text(max_size=40))
def test_any_text(raw: str) -> None:
    targets.check_reference(raw)


@fuzz(300)
@given(st.sampled_from([p.read_bytes() for p in targets.corpus("reference")]).flatmap(mutated))
def test_mutated_seed_references(raw: bytes) -> None:
    targets.reference(raw)


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_long_references_are_refused_quickly(n: int) -> None:
    # no regular-expression blow-up on long names: each finishes at once
    for raw in ("a" * n + "!", "a-" * (n // 2) + "!", "a." * (n // 2) + "/", "a/" * (n // 2) + "A", "a" * n + ":x"):
        with contextlib.suppress(UsageError):
            nref.parse(raw)
