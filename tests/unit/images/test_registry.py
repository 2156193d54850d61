"""The registry client's names: a repository from a reference (the HTTP is tested against the real registry
in tests/integration/sig/test_registry_client.py)."""

from __future__ import annotations

import pytest

from shim.common.errors import UsageError
from shim.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN
from shim.images.reference import parse as parse_reference
from shim.images.registry import Repository
from shim.trust.registry_signatures import docker_reference


def test_repository_of_a_reference() -> None:
    """One way from a reference (nerdctl's grammar) to its repository, and to what is fetched in it."""
    r = parse_reference("127.0.0.1:5000/a/b:v1")
    repo = Repository.of(r)
    assert (repo.host, repo.name, r.tag, r.digest) == ("127.0.0.1:5000", "a/b", "v1", "")
    assert Repository.of("127.0.0.1:5000/a/b:v1") == repo
    d = "sha256:" + "a" * 64
    r = parse_reference(f"10.0.0.1:443/a/b@{d}")
    assert (Repository.of(r).name, r.digest, r.manifest_reference) == ("a/b", d, d)
    r = parse_reference("busybox")
    assert (Repository.of(r).host, Repository.of(r).name, r.tag) == (DEFAULT_DOMAIN, "library/busybox", "latest")
    assert r.manifest_reference == "latest"
    assert docker_reference(Repository.of(r)) == f"{LEGACY_DEFAULT_DOMAIN}/library/busybox"
    assert docker_reference(Repository("127.0.0.1:5000", "a/b")) == "127.0.0.1:5000/a/b"
    for bad in ("h:1/a@sha256:abc", "h:1/A", "sha256:" + "a" * 64, "ipfs://x"):
        with pytest.raises(UsageError):
            Repository.of(bad)
