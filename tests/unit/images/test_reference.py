"""Image references as nerdctl reads them (pkg/referenceutil, distribution/reference, go-digest, go-cid)."""

from __future__ import annotations

import pytest

from shim.common.errors import UsageError
from shim.images import reference

H64 = "ab" * 32
D64 = "sha256:" + H64
CID0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
CID1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
# The same CIDv1 in other multibase encodings.
CID1_BASE16 = "f01701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a"
CID1_BASE58 = "zdj7Wic6KcJAfWz1c9o4M6kq9Lwd5BfbxkVafnrojaaGiSFxM"
CID1_BASE36 = "k2jmtxw8rjh1z69c6not3wtdxb0u3urbzhyll1t9jg6ox26dhi5sfi1m"
CID1_BASE64 = "mAXASIMPEcz7Ir/0Gz56f9Q/8a80uyFphcABLtwlmnDHelDka"


@pytest.mark.parametrize(("raw", "normalized", "familiar"), [
    ("alpine", "docker.io/library/alpine:latest", "alpine"),
    ("alpine:3.19", "docker.io/library/alpine:3.19", "alpine"),
    ("library/alpine", "docker.io/library/alpine:latest", "alpine"),
    ("docker.io/alpine", "docker.io/library/alpine:latest", "alpine"),
    ("index.docker.io/alpine", "docker.io/library/alpine:latest", "alpine"),
    ("user/app", "docker.io/user/app:latest", "user/app"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b"),
    ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app"),
    ("registry.example/app", "registry.example/app:latest", "registry.example/app"),
    ("localhost/app", "localhost/app:latest", "localhost/app"),
    ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app"),
    ("Registry/app", "Registry/app:latest", "Registry/app"),  # an upper-case first component is a domain
    ("a.b-c__d/e--f", "a.b-c__d/e--f:latest", "a.b-c__d/e--f"),
    ("app@" + D64, "docker.io/library/app@" + D64, "app"),
    ("app:1@" + D64, "docker.io/library/app:1@" + D64, "app"),
    ("sha256:" + "AB" * 32, "docker.io/library/sha256:" + "AB" * 32, "sha256"),  # upper hex: a tag
    ("abc123", "docker.io/library/abc123:latest", "abc123"),
])
def test_names_normalize_as_nerdctl_does(raw: str, normalized: str, familiar: str) -> None:
    ref = reference.parse(raw)
    assert ref.kind == "name"
    assert str(ref) == normalized
    assert reference.normalize(raw) == normalized
    assert ref.familiar_name == familiar
    assert not ref.is_special


def test_fields_of_a_name() -> None:
    ref = reference.parse("127.0.0.1:5000/team/app:v1@" + D64)
    assert (ref.domain, ref.path, ref.tag, ref.explicit_tag, ref.digest) == (
        "127.0.0.1:5000", "team/app", "v1", "v1", D64)
    assert ref.name == "127.0.0.1:5000/team/app"
    bare = reference.parse("alpine")
    assert (bare.tag, bare.explicit_tag, bare.digest) == ("latest", "", "")
    by_digest = reference.parse("alpine@" + D64)
    assert (by_digest.tag, by_digest.digest) == ("", D64)


@pytest.mark.parametrize(("raw", "digest"), [
    (D64, D64),
    (H64, D64),
    ("sha512:" + "c" * 128, "sha512:" + "c" * 128),
    ("sha384:" + "d" * 96, "sha384:" + "d" * 96),
])
def test_digest_only(raw: str, digest: str) -> None:
    ref = reference.parse(raw)
    assert ref.kind == "digest"
    assert ref.digest == digest
    assert str(ref) == digest
    assert reference.is_image_id(raw)


@pytest.mark.parametrize(("raw", "why"), [
    ("", "at least one component"),
    ("-", "invalid reference format"),
    ("Alpine", "lowercase"),
    ("user/App", "lowercase"),
    ("localhost:5000/App", "lowercase"),
    ("a:b:c", "invalid reference format"),
    ("app:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("app//x", "invalid reference format"),
    ("app/", "invalid reference format"),
    ("app:" + "t" * 129, "invalid reference format"),
    ("app@sha256:abc", "invalid reference format"),
    ("app@sha256:" + "AB" * 32, "invalid checksum digest format"),
    ("app@sha256:" + "a" * 65, "invalid checksum digest length"),
    ("app@md5:" + "0" * 32, "unsupported digest algorithm"),
    ("a" * 256, "not be more than 255 characters"),
    ("app name", "invalid reference format"),
    ("app\n", "invalid reference format"),
])
def test_invalid_references_are_usage_errors_naming_them(raw: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as e:
        reference.parse(raw)
    assert "invalid image reference" in e.value.message
    assert e.value.hint


def test_long_invalid_reference_is_shortened_in_the_message() -> None:
    with pytest.raises(UsageError) as e:
        reference.parse("A" * 1000)
    assert len(e.value.message) < 400


@pytest.mark.parametrize(("raw", "kind"), [
    ("ipfs://" + CID1, "ipfs"),
    ("ipfs://anything", "ipfs"),
    ("ipns://app.example", "ipns"),
    ("oci-archive:///tmp/a.tar", "oci-archive"),
    ("oci-archive://a.tar:tag", "oci-archive"),
    (CID0, "cid"),
    (CID1, "cid"),
    (CID1_BASE16, "cid"),
    (CID1_BASE58, "cid"),
    (CID1_BASE36, "cid"),
    (CID1_BASE64, "cid"),
    (CID1.upper(), "cid"),
    ("f01550000", "cid"),  # v1, raw codec, identity multihash of nothing
])
def test_special_forms(raw: str, kind: str) -> None:
    assert reference.special_kind(raw) == kind
    ref = reference.parse(raw)
    assert ref.kind == kind
    assert ref.is_special
    assert str(ref) == raw
    with pytest.raises(UsageError):
        reference.normalize(raw)
    with pytest.raises(UsageError, match="cannot be pinned"):
        reference.pinned(ref, D64)


@pytest.mark.parametrize("raw", [
    "alpine", "busybox", "bafy", "mysql", "kafka", "zookeeper", "ubuntu", "fedora", "mariadb",
    CID0[:-1], CID1[:-1], CID1_BASE16[:-2], "Qm" + "1" * 44, "", "b", "f",
])
def test_names_that_are_not_cids(raw: str) -> None:
    assert not reference.is_cid(raw)


@pytest.mark.parametrize(("raw", "prefix"), [
    ("abc123", "sha256:abc123"),
    ("a", "sha256:a"),
    (H64, D64),
    ("sha256:ab", "sha256:ab"),
    ("sha256:", "sha256:"),
    (D64, D64),
    ("alpine", None),
    ("ABC", None),
    ("abc:1", None),
    ("a" * 65, None),
])
def test_digest_prefix(raw: str, prefix: str | None) -> None:
    assert reference.digest_prefix(raw) == prefix


def test_short_hex_is_also_a_name() -> None:
    assert not reference.is_image_id("abc123")
    assert reference.parse("abc123").kind == "name"


@pytest.mark.parametrize(("raw", "expected"), [
    ("alpine", "docker.io/library/alpine@" + D64),
    ("alpine:3.19", "docker.io/library/alpine@" + D64),
    ("127.0.0.1:5000/team/app:v1@sha256:" + "0" * 64, "127.0.0.1:5000/team/app@" + D64),
    ("localhost/app", "localhost/app@" + D64),
    (H64, D64),
    ("sha256:" + "0" * 64, D64),
])
def test_pinned(raw: str, expected: str) -> None:
    assert reference.pinned(raw, D64) == expected
    assert reference.pinned(reference.parse(raw), D64) == expected
    # the pinned form is itself a reference nerdctl reads as that digest
    again = reference.parse(expected)
    assert again.digest == D64


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "AB" * 32, "sha512:" + "c" * 128, H64, ""])
def test_pinned_refuses_malformed_digests(digest: str) -> None:
    with pytest.raises(UsageError, match="malformed digest"):
        reference.pinned("alpine", digest)


def test_pinned_refuses_invalid_references() -> None:
    with pytest.raises(UsageError, match="Alpine"):
        reference.pinned("Alpine", D64)
