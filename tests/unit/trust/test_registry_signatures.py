"""Where cosign keeps signatures in a registry: a hostile referrers index yields no bundle to fetch (the fetching
itself is tested against the real registry in tests/integration/sig/test_registry_signatures.py)."""

from __future__ import annotations

import contextlib

import pytest

from shim.common.errors import IntegrityError
from shim.trust import registry_signatures, signatures
from tests.fuzz import targets


@pytest.mark.parametrize("index", [b'{"manifests":[{"artifactType":[],"digest":"sha256:' + b"a" * 64 + b'"}]}',
                                   b"[" * 100_000 + b"]" * 100_000])
def test_hostile_referrers_index(index: bytes) -> None:
    with contextlib.suppress(IntegrityError):
        assert registry_signatures._bundle_descriptors(index, targets.SIG_DIGEST, signatures.DEFAULT_LIMITS) == []
