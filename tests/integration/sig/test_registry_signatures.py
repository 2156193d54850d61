"""Signature material found at the real registry: our classic signing, bundles as referrers (fallback
tag), hostile manifests pushed to the ``.sig`` tag, and the offline cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shim.common.errors import Denied, IntegrityError, NotFound, Unavailable
from shim.images import oci
from shim.images.registry import Client, Repository
from shim.trust import cache as signature_cache
from shim.trust import signatures, signing
from shim.trust.keys import ECDSA_P256, PublicKey, SigningKey, load_public_key
from shim.trust.registry_signatures import fetch_signatures
from shim.trust.signatures import BUNDLE_MEDIA_TYPE, Material, classic_payload, verify
from tests.harness import sigimages
from tests.harness.images import Image
from tests.harness.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.registry]


def new_key() -> SigningKey:
    return SigningKey("team.key", ECDSA_P256, ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def team() -> SigningKey:
    return new_key()


@pytest.fixture(scope="module")
def trusted(team: SigningKey) -> list[PublicKey]:
    return [load_public_key(team.public_pem(), "team.pub")]


def test_sign_then_fetch_and_verify(sig_registry: Registry, sig_layout: Path, client: Client, team: SigningKey,
                                    trusted: list[PublicKey]) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    with pytest.raises(Denied, match="no signature found"):
        verify([fetch_signatures(client, repo, img.digest)], trusted)
    signed = signing.sign(client, repo, img.digest, team)
    assert signed.layers == 1
    v = verify([fetch_signatures(client, repo, img.digest)], trusted)
    assert (v.digest, v.format) == (img.digest, "classic")
    other = new_key()
    assert signing.sign(client, repo, img.digest, other).layers == 2  # appended, the first kept
    material = fetch_signatures(client, repo, img.digest)
    assert verify([material], trusted).key.name == "team.pub"
    assert verify([material], [load_public_key(other.public_pem(), "other.pub")]).key.name == "other.pub"


def test_signature_moved_to_another_image_is_denied(sig_registry: Registry, sig_layout: Path, client: Client,
                                                    team: SigningKey, trusted: list[PublicKey]) -> None:
    low = sigimages.push_fresh(sig_layout, sig_registry, "low")
    high = sigimages.push_fresh(sig_layout, sig_registry, "high")
    lrepo, hrepo = Repository.of(low.ref), Repository.of(high.ref)
    signing.sign(client, lrepo, low.digest, team)
    sig = client.get_manifest(lrepo, signatures.sig_tag(low.digest)).data
    # Copy low's signature (manifest and blobs) under high's .sig tag: a valid signature, wrong image.
    m = oci.parse_manifest(sig)
    for d in (m.config, *m.layers):
        client.push_blob(hrepo, client.get_blob(lrepo, d.digest))
    client.put_manifest(hrepo, signatures.sig_tag(high.digest), sig, oci.MEDIA_OCI_MANIFEST)
    with pytest.raises(Denied, match="signature for another digest") as e:
        verify([fetch_signatures(client, hrepo, high.digest)], trusted)
    assert low.digest in e.value.message


def test_sig_manifest_with_1001_layers_is_denied(sig_registry: Registry, sig_layout: Path, client: Client,
                                                 team: SigningKey, trusted: list[PublicKey]) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    signing.sign(client, repo, img.digest, team)
    doc = json.loads(client.get_manifest(repo, signatures.sig_tag(img.digest)).data)
    doc["layers"] = doc["layers"] * 1001
    client.put_manifest(repo, signatures.sig_tag(img.digest), json.dumps(doc).encode(), oci.MEDIA_OCI_MANIFEST)
    with pytest.raises(Denied, match="1001 layers, more than the limit of 1000"):
        verify([fetch_signatures(client, repo, img.digest)], trusted)


def push_bundle(client: Client, img: Image, bundle: bytes) -> None:
    """Store ``bundle`` as cosign 3 does, and list it under the referrers fallback tag (this registry
    version has no referrers API)."""
    repo = Repository.of(img.ref)
    subject = client.get_manifest(repo, img.digest)
    manifest = sigimages.bundle_manifest(bundle, img.digest, len(subject.data), subject.media_type)
    client.push_blob(repo, sigimages.EMPTY_CONFIG)
    client.push_blob(repo, bundle)
    client.put_manifest(repo, oci.sha256_digest(manifest), manifest, oci.MEDIA_OCI_MANIFEST)
    try:
        existing = json.loads(client.get_manifest(repo, signatures.referrers_tag(img.digest)).data)["manifests"]
    except NotFound:
        existing = []
    index = json.loads(sigimages.referrers_index([(manifest, BUNDLE_MEDIA_TYPE)]))
    index["manifests"] = existing + index["manifests"]
    client.put_manifest(repo, signatures.referrers_tag(img.digest), json.dumps(index).encode(), oci.MEDIA_OCI_INDEX)


def test_bundle_found_through_the_fallback_tag(sig_registry: Registry, sig_layout: Path, client: Client,
                                               team: SigningKey, trusted: list[PublicKey]) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    push_bundle(client, img, sigimages.make_bundle(new_key(), img.digest))
    with pytest.raises(Denied, match="untrusted"):
        verify([fetch_signatures(client, repo, img.digest)], trusted)
    push_bundle(client, img, sigimages.make_bundle(team, img.digest))
    material = fetch_signatures(client, repo, img.digest)
    assert len(material.bundles) == 2
    assert material.classic_manifest is None
    v = verify([material], trusted)
    assert (v.format, v.digest) == ("bundle", img.digest)


def test_bundle_for_another_image_is_denied(sig_registry: Registry, sig_layout: Path, client: Client,
                                            team: SigningKey, trusted: list[PublicKey]) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    other = sigimages.push_fresh(sig_layout, sig_registry, "high")
    push_bundle(client, img, sigimages.make_bundle(team, other.digest))
    with pytest.raises(Denied, match="for another image"):
        verify([fetch_signatures(client, Repository.of(img.ref), img.digest)], trusted)


def test_index_signature_or_platform_signature(sig_registry: Registry, sig_layout: Path, client: Client,
                                              team: SigningKey, trusted: list[PublicKey]) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry, "multi")
    repo = Repository.of(img.ref)
    index = oci.parse_index(client.get_manifest(repo, img.digest).data)
    amd64 = next(d.digest for d in index.manifests if d.platform == oci.Platform("linux", "amd64"))
    signing.sign(client, repo, amd64, team)
    v = verify([fetch_signatures(client, repo, img.digest), fetch_signatures(client, repo, amd64)], trusted)
    assert v.digest == amd64
    arm64 = next(d.digest for d in index.manifests if d.platform == oci.Platform("linux", "arm64"))
    with pytest.raises(Denied, match="no signature found"):
        verify([fetch_signatures(client, repo, img.digest), fetch_signatures(client, repo, arm64)], trusted)
    signing.sign(client, repo, img.digest, team)
    assert verify([fetch_signatures(client, repo, img.digest), fetch_signatures(client, repo, arm64)],
                  trusted).digest == img.digest


def test_offline_run_after_pull(sig_registry: Registry, sig_layout: Path, client: Client, team: SigningKey,
                                trusted: list[PublicKey], tmp_path: Path) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    signing.sign(client, repo, img.digest, team)
    push_bundle(client, img, sigimages.make_bundle(team, img.digest))
    # pull: fetch, verify, keep.
    material = fetch_signatures(client, repo, img.digest)
    verify([material], trusted)
    signature_cache.store(tmp_path, material)
    # classic only, as well (the verifier asked for its payload, so it was kept)
    classic_only = Material(img.digest, material.classic_manifest, material.blobs)
    verify([classic_only], trusted)
    signature_cache.store(tmp_path / "classic", classic_only)
    # run, registry unreachable: a client to a dead port fails, the cache still decides.
    with Client(insecure={"127.0.0.1:1"}, timeout=1) as dead, pytest.raises(Unavailable):
        fetch_signatures(dead, Repository.of(f"127.0.0.1:1/{repo.name}"), img.digest)
    for state in (tmp_path, tmp_path / "classic"):
        kept = signature_cache.load(state, img.digest)
        assert kept is not None
        assert verify([kept], trusted).digest == img.digest
        with pytest.raises(Denied):  # re-verified with the keys at decision time
            verify([kept], [load_public_key(new_key().public_pem(), "rotated.pub")])


def test_payload_of_our_signature_names_the_repository(sig_registry: Registry, sig_layout: Path, client: Client,
                                                       team: SigningKey) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    signing.sign(client, repo, img.digest, team)
    layer = oci.parse_manifest(client.get_manifest(repo, signatures.sig_tag(img.digest)).data).layers[0]
    assert client.get_blob(repo, layer.digest) == classic_payload(img.digest, str(repo))


@pytest.mark.parametrize("index", [
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"manifests":[]}',
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"x":' + b"[" * 200
    + b"]" * 200 + b"}",
])
def test_a_fallback_index_we_cannot_read_does_not_hide_a_classic_signature(
        sig_registry: Registry, sig_layout: Path, client: Client, team: SigningKey, trusted: list[PublicKey],
        index: bytes) -> None:
    """Anyone who may push to the repository may put an index under ``sha256-<hex>`` that the registry takes
    and BACON's strict reader does not (a key twice, nesting too deep); before, the fetch then failed
    (IntegrityError) and the valid classic signature was never looked at. Such referrers are skipped."""
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    signing.sign(client, repo, img.digest, team)
    client.put_manifest(repo, signatures.referrers_tag(img.digest), index, oci.MEDIA_OCI_INDEX)
    with pytest.raises(IntegrityError):  # the registry took it; BACON does not read it
        client.referrers(repo, img.digest)
    material = fetch_signatures(client, repo, img.digest)
    assert material.bundles == ()
    assert verify([material], trusted).format == "classic"


def test_a_sig_manifest_we_cannot_read_does_not_hide_a_bundle(sig_registry: Registry, sig_layout: Path,
                                                              client: Client, team: SigningKey,
                                                              trusted: list[PublicKey]) -> None:
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    signing.sign(client, repo, img.digest, team)
    sig = client.get_manifest(repo, signatures.sig_tag(img.digest)).data
    twice = sig[:-1] + b',"layers":[]}'  # the registry's Go decoder keeps the last "layers"
    client.put_manifest(repo, signatures.sig_tag(img.digest), twice, oci.MEDIA_OCI_MANIFEST)
    with pytest.raises(IntegrityError, match="duplicate key"):  # alone: the denial says what is wrong
        fetch_signatures(client, repo, img.digest)
    push_bundle(client, img, sigimages.make_bundle(team, img.digest))
    material = fetch_signatures(client, repo, img.digest)
    assert material.classic_manifest is None
    assert verify([material], trusted).format == "bundle"


def test_referrers_padded_to_the_size_limit_do_not_hide_a_real_bundle(sig_registry: Registry, sig_layout: Path,
                                                                       client: Client, team: SigningKey,
                                                                       trusted: list[PublicKey]) -> None:
    """Three junk "bundles" just under 1 MiB listed before the real one: fetched in order they spent the 2 MiB
    that bundles may take together, and the real one was never fetched. The smallest are fetched first."""
    img = sigimages.push_fresh(sig_layout, sig_registry)
    repo = Repository.of(img.ref)
    for i in range(3):
        push_bundle(client, img, b'{"pad":"' + (b"%d" % i) * ((1 << 20) - 100) + b'"}')
    push_bundle(client, img, sigimages.make_bundle(team, img.digest))
    material = fetch_signatures(client, repo, img.digest)
    assert sum(map(len, material.bundles)) <= signatures.DEFAULT_LIMITS.max_bundle_total
    assert verify([material], trusted).format == "bundle"
