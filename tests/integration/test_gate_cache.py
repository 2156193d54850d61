"""The signature cache on the admission path: material kept at the first decision is verified again at the
next, and not written again (one fsync less per admission)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Host, Signed
from tests.integration.test_gate import nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


def _entry(host: Host, digest: str) -> Path:
    return host.state_dir / "signatures" / "images" / "sha256" / f"{digest.removeprefix('sha256:')}.json"


def test_cached_signatures_are_reverified_not_rewritten(gate_host: Host, signed: Signed) -> None:
    low = signed["low"]
    assert nerdctl(gate_host, "create", low.ref).rc == 0
    entry = _entry(gate_host, low.digest)
    first = entry.stat()
    assert nerdctl(gate_host, "create", low.ref).rc == 0
    again = entry.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


def test_a_damaged_entry_is_fetched_again_and_replaced(gate_host: Host, signed: Signed) -> None:
    low = signed["low"]
    assert nerdctl(gate_host, "create", low.ref).rc == 0
    entry = _entry(gate_host, low.digest)
    entry.write_bytes(b"{not json")
    r = nerdctl(gate_host, "create", low.ref)
    assert r.rc == 0, r.stderr
    assert entry.read_bytes().startswith(b"{\"bundles\"")  # rewritten from the registry's verified material
