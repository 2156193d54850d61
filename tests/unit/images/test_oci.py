"""Pure OCI parsing: digests, hostile manifests and configs (platform choice: test_platforms.py)."""

from __future__ import annotations

import json

import pytest

from shim.common.errors import IntegrityError
from shim.images import oci

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def index(*entries: tuple[str, str, str]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": [
        {"mediaType": oci.MEDIA_OCI_MANIFEST, "digest": d, "size": 10,
         "platform": {"os": "linux", "architecture": a, **({"variant": v} if v else {})}}
        for d, a, v in entries]}).encode()


def test_digest_checks() -> None:
    data = b"hello"
    d = oci.sha256_digest(data)
    oci.verify_digest(data, d, "x")
    with pytest.raises(IntegrityError, match="expected"):
        oci.verify_digest(b"hellO", d, "x")
    for bad in ("sha256:ABC", "sha512:" + "a" * 128, "sha256:" + "A" * 64, d + " ", "md5:x"):
        with pytest.raises(IntegrityError, match="malformed"):
            oci.verify_digest(data, bad, "x")


@pytest.mark.parametrize("raw", [
    b"", b"[]", b"{", b'{"manifests": 3}', b'{"manifests": [{"digest": "sha256:x", "size": 1}]}',
    b'{"manifests": [{"mediaType": "a", "digest": "' + D1.encode() + b'", "size": -1}]}',
    b'{"manifests": [{"mediaType": "a", "digest": "' + D1.encode() + b'", "size": true}]}',
    b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "manifests": []}',
    b'{"manifests": [], "manifests": []}',
])
def test_bad_indexes(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        oci.parse_index(raw)


def test_index_entry_limit() -> None:
    raw = json.dumps({"manifests": [{"mediaType": "x", "digest": D1, "size": 1}] * 1001}).encode()
    with pytest.raises(IntegrityError, match="limit"):
        oci.parse_index(raw)


def test_manifest_parse_and_limits() -> None:
    m = {"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 3},
         "layers": [{"mediaType": "l", "digest": D2, "size": 5, "annotations": {"a": "b"}}]}
    parsed = oci.parse_manifest(json.dumps(m).encode())
    assert parsed.config.digest == D1
    assert parsed.layers[0].annotations == {"a": "b"}
    with pytest.raises(IntegrityError, match="limit of 0"):
        oci.parse_manifest(json.dumps(m).encode(), max_layers=0)
    with pytest.raises(IntegrityError, match="schemaVersion"):
        oci.parse_manifest(json.dumps({**m, "schemaVersion": 1}).encode())
    with pytest.raises(IntegrityError, match="expected an image manifest"):
        oci.parse_manifest(json.dumps({**m, "mediaType": oci.MEDIA_OCI_INDEX}).encode())
    with pytest.raises(IntegrityError, match="limit"):
        oci.parse_manifest(b" " * (oci.MAX_MANIFEST_BYTES + 1))


def test_config_labels() -> None:
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Labels": {"policy": "Low"}}}
    parsed = oci.parse_config(json.dumps(cfg).encode())
    assert parsed.labels == {"policy": "Low"}
    assert parsed.platform == oci.Platform("linux", "amd64")
    assert oci.parse_config(b'{"config": {}}').labels == {}
    assert oci.parse_config(b'{"config": {"Labels": null}}').labels == {}


@pytest.mark.parametrize("raw", [
    # A second "policy" key: one JSON parser keeps the first, another the last. Refuse both.
    b'{"config": {"Labels": {"policy": "Low", "policy": "High"}}}',
    b'{"config": {"Labels": {"policy": 1}}}',
    b'{"config": {"Labels": ["policy"]}}',
    b'{"config": "x"}',
    b'{"config": {}, "config": {}}',
    b"\xff\xfe",
    b"[" * 100000,
])
def test_hostile_configs(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        oci.parse_config(raw)


def test_media_type_of() -> None:
    assert oci.media_type_of(index((D1, "amd64", ""))) == oci.MEDIA_OCI_INDEX
    assert oci.media_type_of(b'{"manifests": []}') == oci.MEDIA_OCI_INDEX
    assert oci.media_type_of(b'{"layers": []}', oci.MEDIA_DOCKER_MANIFEST) == oci.MEDIA_DOCKER_MANIFEST
    with pytest.raises(IntegrityError, match="served as"):
        oci.media_type_of(index((D1, "amd64", "")), oci.MEDIA_OCI_MANIFEST)


@pytest.mark.parametrize("value", ["sha256:" + "a" * 64 + "\n", "\nsha256:" + "a" * 64, "sha256:" + "a" * 64 + " "])
def test_a_digest_with_anything_around_it_is_not_canonical(value: str) -> None:
    assert not oci.is_digest(value)
    assert oci.is_digest(value.strip())
