"""The registry client against the real registry (Debian's docker-registry) over plain http."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.common.errors import IntegrityError, NotFound, Unavailable
from shim.images import oci
from shim.images.registry import Client, Repository
from tests.harness import proc, sigimages
from tests.harness.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.registry]


def test_resolve_and_fetch_by_tag_and_digest(sig_registry: Registry, sig_layout: Path, client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry, "low")
    repo = Repository.of(img.ref)
    assert client.resolve(repo, "v1") == img.digest
    by_tag = client.get_manifest(repo, "v1")
    by_digest = client.get_manifest(repo, img.digest)
    assert by_tag == by_digest
    assert by_tag.digest == img.digest == oci.sha256_digest(by_tag.data)
    assert by_tag.media_type == oci.MEDIA_OCI_MANIFEST
    manifest = oci.parse_manifest(by_tag.data)
    config = client.get_blob(repo, manifest.config.digest, max_bytes=1 << 20)
    assert oci.parse_config(config).labels == {"policy": "Low"}


def test_index_is_fetched_raw(sig_registry: Registry, sig_layout: Path, client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry, "multi")
    got = client.get_manifest(Repository.of(img.ref), "v1")
    assert got.media_type == oci.MEDIA_OCI_INDEX
    assert got.digest == img.digest
    assert len(oci.parse_index(got.data).manifests) == 2


def test_unknown_manifest_and_blob_are_not_found(sig_registry: Registry, client: Client) -> None:
    repo = Repository(sig_registry.host, "sig/nothing-here")
    with pytest.raises(NotFound):
        client.get_manifest(repo, "v1")
    with pytest.raises(NotFound):
        client.resolve(repo, "sha256:" + "0" * 64)
    with pytest.raises(NotFound):
        client.get_blob(repo, "sha256:" + "0" * 64)
    assert client.referrers(repo, "sha256:" + "0" * 64) is None


def test_blob_limit_is_enforced(sig_registry: Registry, sig_layout: Path, client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry, "low")
    repo = Repository.of(img.ref)
    layer = oci.parse_manifest(client.get_manifest(repo, img.digest).data).layers[0]
    with pytest.raises(IntegrityError, match="exceeds the limit"):
        client.get_blob(repo, layer.digest, max_bytes=1024)
    client.get_blob(repo, layer.digest, max_bytes=layer.size)


def test_push_blob_and_manifest_round_trip(sig_registry: Registry, client: Client) -> None:
    repo = Repository(sig_registry.host, "sig/pushed")
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}'
    digest = client.push_blob(repo, config)
    assert client.blob_exists(repo, digest)
    assert client.push_blob(repo, config) == digest  # already there: no second upload
    assert client.get_blob(repo, digest) == config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest, "size": len(config)}, "layers": []},
                          indent=3).encode()  # unusual formatting: the digest is over these exact bytes
    md = client.put_manifest(repo, "t1", manifest, oci.MEDIA_OCI_MANIFEST)
    assert md == oci.sha256_digest(manifest)
    assert client.get_manifest(repo, "t1").data == manifest
    assert client.resolve(repo, "t1") == md
    with pytest.raises(IntegrityError):
        client.put_manifest(repo, "sha256:" + "0" * 64, manifest, oci.MEDIA_OCI_MANIFEST)


def test_referrers_fallback_tag(sig_registry: Registry, sig_layout: Path, client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry, "low")
    repo = Repository.of(img.ref)
    assert client.referrers(repo, img.digest) is None
    index = sigimages.referrers_index([])
    client.put_manifest(repo, "sha256-" + img.digest.removeprefix("sha256:"), index, oci.MEDIA_OCI_INDEX)
    assert client.referrers(repo, img.digest) == index


def test_plain_http_only_for_insecure_registries(sig_registry: Registry) -> None:
    with Client(timeout=5) as c, pytest.raises(Unavailable, match="TLS") as e:
        c.get_manifest(Repository(sig_registry.host, "sig/x"), "v1")
    assert "insecure" in (e.value.hint or "")


def test_registry_down_is_unavailable() -> None:
    host = f"127.0.0.1:{proc.free_port()}"
    with Client(insecure={host}, timeout=2) as c, pytest.raises(Unavailable, match="unreachable"):
        c.resolve(Repository(host, "sig/x"), "v1")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_timeout_is_unavailable(silent_server: str) -> None:
    start = time.monotonic()
    with Client(insecure={silent_server}, timeout=0.5) as c, pytest.raises(Unavailable, match="timed out"):
        c.get_manifest(Repository(silent_server, "sig/x"), "v1")
    assert time.monotonic() - start < 5


def test_endpoint_override(sig_registry: Registry, sig_layout: Path) -> None:
    """A registry host whose API is served elsewhere (configuration maps it), e.g. the default domain's."""
    img = sigimages.push_fresh(sig_layout, sig_registry)
    name = Repository.of(img.ref).name
    with Client(insecure={sig_registry.host}, endpoints={"registry.test": sig_registry.host}) as c:
        assert c.resolve(Repository("registry.test", name), "v1") == img.digest
        assert c.push_blob(Repository("registry.test", name), b"via endpoint")
