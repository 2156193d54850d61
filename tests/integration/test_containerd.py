"""containerd's gRPC API through our stubs, against the real private containerd of the harness."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from shim import __version__
from shim.common.errors import IntegrityError, NotFound, Unavailable
from shim.images import oci
from shim.images.containerd import Client
from shim.wrapper.nerdctl_env import Target
from tests.conftest import Host
from tests.harness.containerd import Containerd
from tests.harness.images import ImageSet, pull

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


def client(c: Containerd, namespace: str = "default") -> Client:
    return Client(Target(str(c.socket), namespace))


def test_version_is_the_daemons(containerd: Containerd) -> None:
    with client(containerd) as c:
        version, _revision = c.version()
    assert version
    assert version in containerd.ctr("version").stdout


@pytest.mark.parametrize(("name", "label"), [("low", "Low"), ("mid", "Mid"), ("high", "High")])
def test_policy_label_of_single_manifest_image(containerd: Containerd, images: ImageSet, name: str,
                                               label: str) -> None:
    with client(containerd) as c:
        r = c.resolve_image(images[name].ref)
    assert r.labels["policy"] == label
    assert r.digest == images[name].digest
    assert r.manifest.digest == images[name].digest
    assert r.record.target.media_type == oci.MEDIA_OCI_MANIFEST


def test_missing_label_and_lookalike_are_reported_as_they_are(containerd: Containerd, images: ImageSet) -> None:
    with client(containerd) as c:
        assert "policy" not in c.resolve_image(images["nolabel"].ref).labels
        assert c.resolve_image(images["lookalike"].ref).labels["policy"] == "Hіgh"


def test_multi_platform_index_picks_the_host_manifest(containerd: Containerd, images: ImageSet) -> None:
    img = images["multi"]
    with client(containerd) as c:
        r = c.resolve_image(img.ref, oci.Platform("linux", "amd64"))
        assert r.record.target.media_type == oci.MEDIA_OCI_INDEX
        assert r.digest == img.digest  # the index digest, as at the registry
        assert r.manifest.digest == images["low"].digest  # the amd64 entry
        assert r.manifest.digest != r.digest
        assert r.labels["policy"] == "Low"  # not the arm64 entry's High
        # The arm64 manifest was never pulled (ctr pulls one platform): a clear error, not a guess.
        with pytest.raises(NotFound, match="content sha256:"):
            c.resolve_image(img.ref, oci.Platform("linux", "arm64"))
        with pytest.raises(NotFound, match="has no manifest for the platform"):
            c.resolve_image(img.ref, oci.Platform("linux", "s390x"))


def test_missing_image_names_image_and_namespace(containerd: Containerd) -> None:
    with client(containerd) as c, pytest.raises(NotFound) as e:
        c.get_image("127.0.0.1:1/nothing/here:v1")
    assert "127.0.0.1:1/nothing/here:v1" in e.value.message
    assert "namespace default" in e.value.message
    assert e.value.exit_code == 64


def test_wrong_namespace_is_a_clear_not_found(containerd: Containerd, images: ImageSet) -> None:
    with client(containerd, "no-such-namespace") as c, pytest.raises(NotFound) as e:
        c.get_image(images["low"].ref)
    assert "namespace no-such-namespace" in e.value.message


def test_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as e:
        Client(Target(str(tmp_path / "nope.sock"), "default"))
    assert "does not exist" in e.value.message
    assert e.value.exit_code == 69
    assert e.value.hint
    assert "CONTAINERD_ADDRESS" in e.value.hint


def test_refused_connection(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # bound, never listening: connections are refused
    try:
        c = Client(Target(str(path), "default"), timeout=2)
        with pytest.raises(Unavailable, match="did not answer"):
            c.version()
    finally:
        s.close()


def test_not_a_socket(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(Unavailable, match="not a socket"):
        Client(Target(str(f), "default"))


def test_blob_reads_are_bounded_and_checked(containerd: Containerd, images: ImageSet) -> None:
    img = images["low2"]
    pull(containerd, img)
    with client(containerd) as c:
        rec = c.get_image(img.ref)
        data = c.read_blob(rec.target.digest, 1 << 20, rec.target.size)
        assert oci.sha256_digest(data) == rec.target.digest
        with pytest.raises(IntegrityError, match="limit"):
            c.read_blob(rec.target.digest, 10)
        with pytest.raises(IntegrityError, match="malformed digest"):
            c.read_blob("sha256:abc", 10)
        # Corrupt the manifest in containerd's own content store: the read must refuse it.
        blob = containerd.root / "io.containerd.content.v1.content" / "blobs" / "sha256" / rec.target.digest[7:]
        original = blob.read_bytes()
        blob.write_bytes(original.replace(b"schemaVersion", b"schemaVersioN"))
        try:
            with pytest.raises(IntegrityError, match="expected " + rec.target.digest):
                c.resolve_image(img.ref)
        finally:
            blob.write_bytes(original)


def test_container_lookup_by_name_and_id_prefix(containerd: Containerd, images: ImageSet) -> None:
    ref = images["low"].ref
    cid = "b" * 8 + "0123456789"
    containerd.ctr("containers", "create", "--label", "nerdctl/name=lookup-me", ref, cid)
    containerd.ctr("containers", "create", "--label", "nerdctl/name=other", ref, "b" * 8 + "99")
    try:
        with client(containerd) as c:
            rec = c.find_container("lookup-me")
            assert rec.id == cid
            assert rec.image == ref
            assert rec.snapshot_key
            assert c.find_container(cid[:12]).id == cid
            with pytest.raises(NotFound, match="matches 2 containers"):
                c.find_container("b" * 8)
            with pytest.raises(NotFound, match="no container"):
                c.find_container("nobody")
            with pytest.raises(NotFound, match="no container"):
                c.find_container(".*")  # a regexp metacharacter is taken literally
    finally:
        containerd.ctr("containers", "rm", cid, "b" * 8 + "99", check=False)


def test_bacon_image_cli(host: Host, images: ImageSet) -> None:
    r = subprocess.run([*host.bacon, "image", "--json", images["multi"].ref], env=host.env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["labels"]["policy"] == "Low"
    assert doc["target"]["digest"] == images["multi"].digest
    r = subprocess.run([*host.bacon, "image", "127.0.0.1:1/missing:v1"], env=host.env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 64
    assert "not found" in r.stderr
    r = subprocess.run([*host.bacon, "version"], env=host.env(CONTAINERD_ADDRESS="/nonexistent.sock"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 69
    assert "/nonexistent.sock does not exist" in r.stderr
    assert r.stdout.splitlines()[0] == f"bacon {__version__}"  # BACON's own version needs no containerd
