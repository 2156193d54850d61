"""Interop with the real cosign (Debian's 2.5, scripts/fetch-cosign.sh), both ways, on the real registry."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from shim.common.errors import ConfigError, Denied
from shim.images import oci
from shim.images.registry import Client, Repository
from shim.trust import keys, signatures, signing
from shim.trust.registry_signatures import fetch_signatures
from tests.harness import sigimages
from tests.harness.registry import Registry
from tests.integration.sig.conftest import CosignKeys

pytestmark = [pytest.mark.integration, pytest.mark.registry, pytest.mark.cosign]


def cosign(exe: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=env, check=False)


def cosign_sign(exe: str, k: CosignKeys, ref: str) -> None:
    r = cosign(exe, "sign", "--key", str(k.key), "--tlog-upload=false", "--allow-insecure-registry", "-y", ref,
               env=k.env())
    assert r.returncode == 0, r.stderr


def cosign_verify(exe: str, pub: Path, ref: str) -> subprocess.CompletedProcess[str]:
    return cosign(exe, "verify", "--key", str(pub), "--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)


def test_image_signed_by_cosign_verifies_here(cosign_exe: str, cosign_keys: CosignKeys, sig_registry: Registry,
                                              sig_layout: Path, client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    cosign_sign(cosign_exe, cosign_keys, img.pinned)
    repo = Repository.of(img.ref)
    (pub,) = keys.load_trusted_keys([cosign_keys.pub])
    v = signatures.verify([fetch_signatures(client, repo, img.digest)], [pub])
    assert (v.digest, v.format, v.key.key_id) == (img.digest, "classic", pub.key_id)


def test_cosign_signature_with_another_key_is_denied(cosign_exe: str, cosign_keys: CosignKeys,
                                                     sig_registry: Registry, sig_layout: Path, client: Client,
                                                     tmp_path: Path) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    cosign_sign(cosign_exe, cosign_keys, img.pinned)
    env = {**cosign_keys.env(), "COSIGN_PASSWORD": ""}
    subprocess.run([cosign_exe, "generate-key-pair"], cwd=tmp_path, env=env, check=True, capture_output=True,
                   timeout=60)
    (other,) = keys.load_trusted_keys([tmp_path / "cosign.pub"])
    with pytest.raises(Denied, match="signed only by untrusted keys"):
        signatures.verify([fetch_signatures(client, Repository.of(img.ref), img.digest)], [other])


def test_cosign_signed_tag_reference_is_the_digest(cosign_exe: str, cosign_keys: CosignKeys, sig_registry: Registry,
                                                   sig_layout: Path, client: Client) -> None:
    """cosign signs what the tag names at signing time; the signature is found under that digest."""
    img = sigimages.push_fresh(sig_layout, sig_registry, "high")
    cosign_sign(cosign_exe, cosign_keys, img.ref)
    repo = Repository.of(img.ref)
    digest = client.resolve(repo, "v1")
    assert digest == img.digest
    signatures.verify([fetch_signatures(client, repo, digest)], keys.load_trusted_keys([cosign_keys.pub]))


def test_image_signed_here_verifies_with_cosign(cosign_exe: str, cosign_keys: CosignKeys, sig_registry: Registry,
                                                sig_layout: Path, client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    assert cosign_verify(cosign_exe, cosign_keys.pub, img.pinned).returncode != 0  # unsigned yet
    key = keys.load_signing_key_file(cosign_keys.key, cosign_keys.env())  # cosign's own encrypted key file
    signing.sign(client, Repository.of(img.ref), img.digest, key)
    r = cosign_verify(cosign_exe, cosign_keys.pub, img.pinned)
    assert r.returncode == 0, r.stderr
    assert img.digest in r.stdout


def test_our_signature_appended_to_cosigns_verifies_both_ways(cosign_exe: str, cosign_keys: CosignKeys,
                                                              sig_registry: Registry, sig_layout: Path,
                                                              client: Client, tmp_path: Path) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    cosign_sign(cosign_exe, cosign_keys, img.pinned)
    # Another key, given as plain PKCS#8 PEM (what `cosign import-key-pair` takes).
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    mine = keys.load_signing_key(pem, "team.pem")
    (tmp_path / "team.pub").write_bytes(mine.public_pem())
    assert signing.sign(client, repo, img.digest, mine).layers == 2
    layers = oci.parse_manifest(client.get_manifest(repo, signatures.sig_tag(img.digest)).data).layers
    assert len(layers) == 2
    for pub in (cosign_keys.pub, tmp_path / "team.pub"):
        r = cosign_verify(cosign_exe, pub, img.pinned)
        assert r.returncode == 0, r.stderr
        signatures.verify([fetch_signatures(client, repo, img.digest)], keys.load_trusted_keys([pub]))


def test_cosign_rejects_a_signature_we_made_for_another_image(cosign_exe: str, cosign_keys: CosignKeys,
                                                             sig_registry: Registry, sig_layout: Path,
                                                             client: Client) -> None:
    """The hostile copy is refused by cosign as well as by us: same rule both sides."""
    low = sigimages.push_fresh(sig_layout, sig_registry, "low")
    high = sigimages.push_fresh(sig_layout, sig_registry, "high")
    key = keys.load_signing_key_file(cosign_keys.key, cosign_keys.env())
    lrepo, hrepo = Repository.of(low.ref), Repository.of(high.ref)
    signing.sign(client, lrepo, low.digest, key)
    sig = client.get_manifest(lrepo, signatures.sig_tag(low.digest)).data
    m = oci.parse_manifest(sig)
    for d in (m.config, *m.layers):
        client.push_blob(hrepo, client.get_blob(lrepo, d.digest))
    client.put_manifest(hrepo, signatures.sig_tag(high.digest), sig, oci.MEDIA_OCI_MANIFEST)
    assert cosign_verify(cosign_exe, cosign_keys.pub, high.pinned).returncode != 0
    with pytest.raises(Denied, match="another digest"):
        signatures.verify([fetch_signatures(client, hrepo, high.digest)], keys.load_trusted_keys([cosign_keys.pub]))


def test_cosign_signed_index_counts_for_the_platform(cosign_exe: str, cosign_keys: CosignKeys,
                                                     sig_registry: Registry, sig_layout: Path,
                                                     client: Client) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry, "multi")
    cosign_sign(cosign_exe, cosign_keys, img.pinned)  # signs the index digest only
    repo = Repository.of(img.ref)
    index = oci.parse_index(client.get_manifest(repo, img.digest).data)
    amd64 = next(d.digest for d in index.manifests if d.platform == oci.Platform("linux", "amd64"))
    trusted = keys.load_trusted_keys([cosign_keys.pub])
    v = signatures.verify([fetch_signatures(client, repo, img.digest), fetch_signatures(client, repo, amd64)],
                          trusted)
    assert v.digest == img.digest
    with pytest.raises(Denied, match="no signature found"):
        signatures.verify([fetch_signatures(client, repo, amd64)], trusted)


def test_ed25519_keys_both_ways(cosign_exe: str, sig_registry: Registry, sig_layout: Path, client: Client,
                                tmp_path: Path) -> None:
    """cosign 2.5 imports Ed25519 keys (and refuses P-384 and RSA ones); they must be allowed explicitly here."""
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "ed.pem").write_bytes(pem)
    env = {**os.environ, "COSIGN_PASSWORD": ""}
    r = subprocess.run([cosign_exe, "import-key-pair", "--key", "ed.pem", "-o", "ed"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    k = CosignKeys(tmp_path / "ed.key", tmp_path / "ed.pub", "")
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    cosign_sign(cosign_exe, k, img.pinned)
    with pytest.raises(ConfigError, match="ed25519"):
        keys.load_trusted_keys([k.pub])
    (pub,) = keys.load_trusted_keys([k.pub], allowed={keys.ED25519})
    assert signatures.verify([fetch_signatures(client, repo, img.digest)], [pub]).key.key_type == keys.ED25519

    other = sigimages.push_fresh(sig_layout, sig_registry)
    signing.sign(client, Repository.of(other.ref), other.digest,
                 keys.load_signing_key_file(k.key, k.env()))
    r2 = cosign_verify(cosign_exe, k.pub, other.pinned)
    assert r2.returncode == 0, r2.stderr


def _put_payload(client: Client, repo: Repository, digest: str, key: keys.SigningKey, payload: bytes) -> None:
    manifest, config = signing.signature_manifest(None, payload, key.sign(payload))
    client.push_blob(repo, payload)
    client.push_blob(repo, config)
    client.put_manifest(repo, signatures.sig_tag(digest), manifest, oci.MEDIA_OCI_MANIFEST)


@pytest.mark.parametrize("spelling", ["Critical", "CRITICAL"])
def test_a_payload_cosign_reads_another_way_is_refused(cosign_exe: str, cosign_keys: CosignKeys,
                                                      sig_registry: Registry, sig_layout: Path, client: Client,
                                                      spelling: str) -> None:
    """A signed payload with ``critical`` for this image and ``Critical`` for another: cosign's Go decoder
    matches both keys to one field and keeps the last (the other image), and refuses; before, BACON read
    only ``critical`` and admitted. Now a payload whose keys name one field twice is malformed here too."""
    low, high = sigimages.push_fresh(sig_layout, sig_registry, "low"), sigimages.push_fresh(sig_layout, sig_registry,
                                                                                           "high")
    key = keys.load_signing_key_file(cosign_keys.key, cosign_keys.env())
    repo = Repository.of(low.ref)
    mine, other = signatures.classic_payload(low.digest, str(repo)), signatures.classic_payload(high.digest, str(repo))
    their_critical = other[len(b'{"critical":'):other.index(b',"optional"')]
    payload = mine[:-1] + b',"' + spelling.encode() + b'":' + their_critical + b"}"
    _put_payload(client, repo, low.digest, key, payload)
    assert cosign_verify(cosign_exe, cosign_keys.pub, low.pinned).returncode != 0
    with pytest.raises(Denied, match="both set the field 'critical'"):
        signatures.verify([fetch_signatures(client, repo, low.digest)], keys.load_trusted_keys([cosign_keys.pub]))


def test_a_payload_in_other_case_is_read_as_cosign_reads_it(cosign_exe: str, cosign_keys: CosignKeys,
                                                           sig_registry: Registry, sig_layout: Path,
                                                           client: Client) -> None:
    """``Critical``/``Image``/``Docker-Manifest-Digest`` alone are the fields to cosign's Go decoder: it
    admits, and so does BACON (before: "no critical.image.docker-manifest-digest")."""
    low = sigimages.push_fresh(sig_layout, sig_registry, "low")
    key = keys.load_signing_key_file(cosign_keys.key, cosign_keys.env())
    repo = Repository.of(low.ref)
    payload = (signatures.classic_payload(low.digest, str(repo)).replace(b'"critical"', b'"Critical"')
               .replace(b'"image"', b'"Image"').replace(b'"docker-manifest-digest"', b'"Docker-Manifest-Digest"'))
    _put_payload(client, repo, low.digest, key, payload)
    r = cosign_verify(cosign_exe, cosign_keys.pub, low.pinned)
    assert r.returncode == 0, r.stderr
    v = signatures.verify([fetch_signatures(client, repo, low.digest)], keys.load_trusted_keys([cosign_keys.pub]))
    assert v.digest == low.digest
