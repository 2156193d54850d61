"""Signature verification over bytes: the classic ``.sig`` format, bundles, limits and hostile material.

Also the pure parts of signing (the ``.sig`` manifest) and the signature cache."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.common.errors import Denied, IntegrityError, Unavailable
from shim.images import oci
from shim.trust import cache as signature_cache
from shim.trust import signatures, signing
from shim.trust.keys import ECDSA_P256, PublicKey, SigningKey, load_public_key
from shim.trust.signatures import Material, classic_payload, verify
from tests.harness.sigimages import make_bundle, statement

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
REPO = "127.0.0.1:5000/bacon/low"

# A payload written by real cosign 2.5 (`cosign sign --key`), byte for byte.
COSIGN_PAYLOAD = (b'{"critical":{"identity":{"docker-reference":"127.0.0.1:37225/bacon/low"},"image":'
                  b'{"docker-manifest-digest":"sha256:55052cfd7a9730ddde4665dab9a6d6a0863ea3df814dd85d1fd1b31d3159d013"},'
                  b'"type":"cosign container image signature"},"optional":null}')


def signing_key(curve: ec.EllipticCurve | None = None) -> SigningKey:
    k = ec.generate_private_key(curve or ec.SECP256R1())
    kt = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}[k.curve.name]
    return SigningKey(name=f"{kt}.key", key_type=kt, key=k)


@pytest.fixture(scope="module")
def team() -> SigningKey:
    return signing_key()


@pytest.fixture(scope="module")
def trusted(team: SigningKey) -> list[PublicKey]:
    return [load_public_key(team.public_pem(), "team.pub")]


def classic(key: SigningKey, digest: str, claimed: str | None = None, existing: bytes | None = None,
            payload: bytes | None = None) -> tuple[bytes, dict[str, bytes]]:
    """A .sig manifest (appended to ``existing``) and its payload blobs."""
    body = payload if payload is not None else classic_payload(claimed or digest, REPO)
    manifest, _ = signing.signature_manifest(existing, body, key.sign(body))
    return manifest, {oci.sha256_digest(body): body}


def raw_manifest(layers: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": oci.sha256_digest(b"{}"), "size": 2},
                       "layers": layers}).encode()


# -- payload ---------------------------------------------------------------------------------------


def test_classic_payload_is_byte_identical_to_cosign() -> None:
    digest = "sha256:55052cfd7a9730ddde4665dab9a6d6a0863ea3df814dd85d1fd1b31d3159d013"
    assert classic_payload(digest, "127.0.0.1:37225/bacon/low") == COSIGN_PAYLOAD


def test_classic_payload_optional_is_go_json() -> None:
    p = classic_payload(D1, REPO, {"z": "1", "a": "<b>&"})
    assert p.endswith(b',"optional":{"a":"\\u003cb\\u003e\\u0026","z":"1"}}')
    assert json.loads(p)["optional"] == {"a": "<b>&", "z": "1"}


def test_pae() -> None:
    assert signatures.pae("t", b"ab") == b"DSSEv1 1 t 2 ab"


def test_tags() -> None:
    assert signatures.sig_tag(D1) == "sha256-" + "1" * 64 + ".sig"
    assert signatures.referrers_tag(D1) == "sha256-" + "1" * 64
    with pytest.raises(IntegrityError):
        signatures.sig_tag("sha256:abc")


# -- classic ---------------------------------------------------------------------------------------


def test_classic_signature_verifies(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(team, D1)
    v = verify([Material(D1, manifest, blobs)], trusted)
    assert (v.digest, v.format, v.key.name) == (D1, "classic", "team.pub")
    result = v.check_result()
    assert result.name == "signature"
    assert result.details["key_id"] == trusted[0].key_id


def test_payload_claiming_another_digest_is_denied(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(team, D1, claimed=D2)  # a real signature, copied under D1's .sig tag
    with pytest.raises(Denied, match="signature for another digest") as e:
        verify([Material(D1, manifest, blobs)], trusted)
    assert e.value.check == "signature"
    assert D2 in e.value.message


def test_untrusted_key_is_denied(trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(signing_key(), D1)
    with pytest.raises(Denied, match="signed only by untrusted keys"):
        verify([Material(D1, manifest, blobs)], trusted)


@pytest.mark.parametrize("other", [
    lambda: signing_key(ec.SECP384R1()),
    lambda: SigningKey("rsa.key", "rsa", rsa.generate_private_key(65537, 2048)),
], ids=["p384", "rsa"])
def test_rsa_or_p384_signer_where_p256_is_trusted(other: Any, trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(other(), D1)
    with pytest.raises(Denied, match="untrusted"):
        verify([Material(D1, manifest, blobs)], trusted)


def test_any_layer_suffices_and_every_layer_is_tried(team: SigningKey, trusted: list[PublicKey]) -> None:
    m, b1 = classic(signing_key(), D1)
    m, b2 = classic(team, D1, claimed=D2, existing=m)
    m, b3 = classic(team, D1, existing=m)
    assert len(oci.parse_manifest(m).layers) == 3
    assert verify([Material(D1, m, {**b1, **b2, **b3})], trusted).format == "classic"


def test_signature_manifest_with_1001_layers_is_denied(team: SigningKey, trusted: list[PublicKey]) -> None:
    body = classic_payload(D1, REPO)
    sig = base64.b64encode(team.sign(body)).decode()
    layer = {"mediaType": signatures.SIMPLESIGNING_MEDIA_TYPE, "digest": oci.sha256_digest(body),
             "size": len(body), "annotations": {signatures.SIGNATURE_ANNOTATION: sig}}
    blobs = {oci.sha256_digest(body): body}
    assert verify([Material(D1, raw_manifest([layer] * 1000), blobs)], trusted).digest == D1
    with pytest.raises(Denied, match="1001 layers, more than the limit of 1000"):
        verify([Material(D1, raw_manifest([layer] * 1001), blobs)], trusted)


class Counting(dict[str, bytes]):
    """Payload blobs, recording which were asked for."""

    def __init__(self, blobs: Mapping[str, bytes]) -> None:
        super().__init__(blobs)
        self.asked: list[str] = []

    def get(self, k: str, default: Any = None) -> Any:
        self.asked.append(k)
        return super().get(k, default)


def junk_layers(n: int, size: int) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    layers, blobs = [], {}
    for i in range(n):
        body = (b"%d" % i).ljust(size, b"x")
        blobs[oci.sha256_digest(body)] = body
        made_up = base64.b64encode(b"x" * 70).decode()
        layers.append({"mediaType": signatures.SIMPLESIGNING_MEDIA_TYPE, "digest": oci.sha256_digest(body),
                       "size": size, "annotations": {signatures.SIGNATURE_ANNOTATION: made_up}})
    return layers, blobs


def test_the_smallest_payloads_are_tried_first(team: SigningKey, trusted: list[PublicKey]) -> None:
    """Before, layers were tried in order: 100 junk payloads of 60 KiB put first were all fetched."""
    manifest, good = classic(team, D1)
    junk, blobs = junk_layers(100, 60 << 10)
    doc = json.loads(manifest)
    blobs = Counting({**blobs, **good})
    verified = verify([Material(D1, raw_manifest(junk + doc["layers"]), blobs)], trusted)
    assert blobs.asked == list(good)
    assert verified.evidence == next(iter(good))


def test_payloads_over_the_total_are_not_fetched(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, good = classic(team, D1)
    junk, blobs = junk_layers(20, 60 << 10)
    good_layer = json.loads(manifest)["layers"][0]
    good_layer["size"] = 60 << 10  # the real one after 17 junk ones of the same size: over 1 MiB by then
    blobs = Counting({**blobs, good_layer["digest"]: next(iter(good.values()))})
    with pytest.raises(Denied, match="was not tried: the payloads tried before it and its own come to more than"):
        verify([Material(D1, raw_manifest([*junk, good_layer]), blobs)], trusted)
    assert len(blobs.asked) == (1 << 20) // (60 << 10) == 17


def test_evidence_of_keeps_only_what_verified(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, good = classic(team, D1)
    junk, blobs = junk_layers(3, 100)
    m = Material(D1, raw_manifest(junk + json.loads(manifest)["layers"]), {**blobs, **good})
    other = Material(D2, manifest, good)
    verified = verify([other, m], trusted)  # D2's material does not verify for D2 (it claims D1)
    assert signatures.evidence_of([other, m], verified) == Material(D1, m.classic_manifest, good)
    bundle = make_bundle(team, D1)
    m = Material(D1, bundles=(b"{}", bundle))
    verified = verify([m], trusted)
    assert signatures.evidence_of([m], verified) == Material(D1, bundles=(bundle,))
    assert signatures.evidence_of([Material(D2, bundles=(bundle,))], verified) is None


def test_payload_must_match_its_layer_digest(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(team, D1)
    (d,) = blobs
    with pytest.raises(Denied, match="does not match its digest"):
        verify([Material(D1, manifest, {d: classic_payload(D2, REPO)})], trusted)


def test_payload_over_the_limit_is_not_fetched(team: SigningKey, trusted: list[PublicKey]) -> None:
    body = classic_payload(D1, REPO, {"pad": "x" * 70000})
    manifest, blobs = classic(team, D1, payload=body)

    class Refuse(Mapping[str, bytes]):
        def __getitem__(self, k: str) -> bytes:
            raise AssertionError("fetched a payload over the limit")

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    with pytest.raises(Denied, match="exceeds the limit"):
        verify([Material(D1, manifest, Refuse())], trusted)
    assert verify([Material(D1, manifest, blobs)], trusted, signatures.Limits(max_payload_bytes=1 << 20))


def test_layer_without_signature_or_with_another_media_type(team: SigningKey, trusted: list[PublicKey]) -> None:
    body = classic_payload(D1, REPO)
    base = {"digest": oci.sha256_digest(body), "size": len(body)}
    blobs = {oci.sha256_digest(body): body}
    with pytest.raises(Denied, match=r"malformed signature: .*no dev\.cosignproject\.cosign/signature"):
        verify([Material(D1, raw_manifest([{**base, "mediaType": signatures.SIMPLESIGNING_MEDIA_TYPE}]), blobs)],
               trusted)
    with pytest.raises(Denied, match="no signature found"):
        verify([Material(D1, raw_manifest([{**base, "mediaType": "application/octet-stream"}]), blobs)], trusted)
    bad_b64 = {**base, "mediaType": signatures.SIMPLESIGNING_MEDIA_TYPE,
               "annotations": {signatures.SIGNATURE_ANNOTATION: "not base64!"}}
    with pytest.raises(Denied, match="not base64"):
        verify([Material(D1, raw_manifest([bad_b64]), blobs)], trusted)


def test_signed_payload_of_another_type_is_denied(team: SigningKey, trusted: list[PublicKey]) -> None:
    body = classic_payload(D1, REPO).replace(b"cosign container image signature", b"something else")
    manifest, blobs = classic(team, D1, payload=body)
    with pytest.raises(Denied, match="payload type"):
        verify([Material(D1, manifest, blobs)], trusted)


def test_signed_payload_with_duplicate_keys_is_denied(team: SigningKey, trusted: list[PublicKey]) -> None:
    body = classic_payload(D1, REPO)[:-1] + b',"critical":{}}'
    manifest, blobs = classic(team, D1, payload=body)
    with pytest.raises(Denied, match="duplicate key"):
        verify([Material(D1, manifest, blobs)], trusted)


@pytest.mark.parametrize("spelling", ["Critical", "CRITICAL", "cRiTiCaL"])
def test_signed_payload_with_a_field_twice_in_other_case_is_denied(team: SigningKey, trusted: list[PublicKey],
                                                                   spelling: str) -> None:
    """cosign's Go decoder reads ``Critical`` as ``critical`` (the last one wins): another digest than ours."""
    other = classic_payload(D2, REPO)
    body = classic_payload(D1, REPO)[:-1] + b',"' + spelling.encode() + b'":' + \
        other[len(b'{"critical":'):other.index(b',"optional"')] + b"}"
    manifest, blobs = classic(team, D1, payload=body)
    with pytest.raises(Denied, match="both set the field 'critical'"):
        verify([Material(D1, manifest, blobs)], trusted)


def test_signed_payload_in_other_case_is_read_as_go_reads_it(team: SigningKey, trusted: list[PublicKey]) -> None:
    body = classic_payload(D1, REPO).replace(b'"critical"', b'"Critical"').replace(b'"type"', b'"TYPE"')
    manifest, blobs = classic(team, D1, payload=body)
    assert verify([Material(D1, manifest, blobs)], trusted).digest == D1
    manifest, blobs = classic(team, D2, payload=body)
    with pytest.raises(Denied, match="another digest"):
        verify([Material(D2, manifest, blobs)], trusted)


def test_signed_payload_with_unknown_fields_is_read_as_cosign_reads_it(team: SigningKey,
                                                                       trusted: list[PublicKey]) -> None:
    """Fields cosign's payload type has not (anywhere) are ignored by its decoder and here alike."""
    body = classic_payload(D1, REPO).replace(b'"type":', b'"x-extra":{"docker-manifest-digest":"' + D2.encode()
                                             + b'"},"type":').replace(b'"optional":null', b'"optional":null,"z":[1]')
    manifest, blobs = classic(team, D1, payload=body)
    assert verify([Material(D1, manifest, blobs)], trusted).digest == D1


def test_missing_payload_blob_means_no_signature(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, _ = classic(team, D1)
    with pytest.raises(Denied, match=r"no signature found.*not available"):
        verify([Material(D1, manifest, {})], trusted)


def test_nothing_found_and_no_keys() -> None:
    with pytest.raises(Denied, match="no signature found"):
        verify([Material(D1)], [load_public_key(signing_key().public_pem(), "k")])
    with pytest.raises(Denied, match="no trusted keys"):
        verify([Material(D1)], [])


def test_signature_on_index_or_platform_manifest_counts(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(team, D2)
    v = verify([Material(D1), Material(D2, manifest, blobs)], trusted)
    assert v.digest == D2
    manifest, blobs = classic(team, D1)
    assert verify([Material(D1, manifest, blobs), Material(D2)], trusted).digest == D1


def test_platform_signature_does_not_count_for_another_material(team: SigningKey,
                                                                trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(team, D2)  # a signature for D2 found under D1's tag
    with pytest.raises(Denied, match="another digest"):
        verify([Material(D1, manifest, blobs)], trusted)


def test_unavailable_while_fetching_a_payload_is_not_a_denial(team: SigningKey, trusted: list[PublicKey]) -> None:
    manifest, _ = classic(team, D1)

    class Down(Mapping[str, bytes]):
        def __getitem__(self, k: str) -> bytes:
            raise Unavailable("registry down")

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    with pytest.raises(Unavailable):
        verify([Material(D1, manifest, Down())], trusted)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_arbitrary_bytes_are_only_ever_denied(manifest: bytes, bundle: bytes) -> None:
    key = load_public_key(_FUZZ_KEY.public_pem(), "k")
    with pytest.raises(Denied):
        verify([Material(D1, manifest, {}, (bundle,))], [key])


_FUZZ_KEY = signing_key()


# -- bundles ---------------------------------------------------------------------------------------


def test_bundle_verifies(team: SigningKey, trusted: list[PublicKey]) -> None:
    v = verify([Material(D1, bundles=(make_bundle(team, D1),))], trusted)
    assert (v.format, v.digest) == ("bundle", D1)
    assert signatures.verify_bundle(D1, make_bundle(team, D1), trusted).format == "bundle"


def test_bundle_whose_subject_is_another_image_is_denied(team: SigningKey, trusted: list[PublicKey]) -> None:
    with pytest.raises(Denied, match="for another image, " + D2):
        verify([Material(D1, bundles=(make_bundle(team, D2),))], trusted)


def test_bundle_by_untrusted_key_or_signature_without_pae(team: SigningKey, trusted: list[PublicKey]) -> None:
    with pytest.raises(Denied, match="untrusted"):
        verify([Material(D1, bundles=(make_bundle(signing_key(), D1),))], trusted)
    with pytest.raises(Denied, match="untrusted"):
        verify([Material(D1, bundles=(make_bundle(team, D1, sign_pae=False),))], trusted)


def test_bundle_with_wrong_payload_type_or_predicate(team: SigningKey, trusted: list[PublicKey]) -> None:
    with pytest.raises(Denied, match="not in-toto"):
        verify([Material(D1, bundles=(make_bundle(team, D1, payload_type="text/plain"),))], trusted)
    attestation = statement(D1, predicate_type="https://slsa.dev/provenance/v1")
    with pytest.raises(Denied, match="attestation, not an image signature"):
        verify([Material(D1, bundles=(make_bundle(team, D1, payload=attestation),))], trusted)


def test_keyless_bundle_is_not_accepted_by_keys(team: SigningKey, trusted: list[PublicKey]) -> None:
    b = make_bundle(team, D1, extra_material={"certificate": {"rawBytes": "AAAA"}})
    with pytest.raises(Denied, match="keyless"):
        verify([Material(D1, bundles=(b,))], trusted)


def test_bundle_limits(team: SigningKey, trusted: list[PublicKey]) -> None:
    good = make_bundle(team, D1)
    with pytest.raises(Denied, match="more than the limit"):
        verify([Material(D1, bundles=(good,))], trusted, signatures.Limits(max_bundle_bytes=100))
    doc = json.loads(good)
    doc["dsseEnvelope"]["signatures"] *= 17
    with pytest.raises(Denied, match="17 DSSE signatures"):
        verify([Material(D1, bundles=(json.dumps(doc).encode(),))], trusted)
    junk = (*(b"{}" for _ in range(40)), good)
    with pytest.raises(Denied, match=r"not a v0\.3 bundle.*and 30 more"):
        verify([Material(D1, bundles=junk)], trusted)


def test_good_bundle_after_bad_ones_and_classic_fallback(team: SigningKey, trusted: list[PublicKey]) -> None:
    assert verify([Material(D1, bundles=(b"junk", make_bundle(team, D2), make_bundle(team, D1)))], trusted)
    manifest, blobs = classic(team, D1)
    v = verify([Material(D1, manifest, blobs, (make_bundle(signing_key(), D1),))], trusted)
    assert v.format == "classic"


# -- signing (pure part) ---------------------------------------------------------------------------


def test_signature_manifest_appends_and_keeps_existing_layers(team: SigningKey) -> None:
    m1, _ = classic(team, D1)
    body = classic_payload(D1, REPO)
    sig = team.sign(body)
    m2, config = signing.signature_manifest(m1, body, sig)
    parsed = oci.parse_manifest(m2)
    assert len(parsed.layers) == 2
    assert parsed.layers[0] == oci.parse_manifest(m1).layers[0]
    assert parsed.config.digest == oci.sha256_digest(config)
    assert json.loads(config)["rootfs"]["diff_ids"] == [x.digest for x in parsed.layers]
    m3, _ = signing.signature_manifest(m2, body, sig)  # the same signature is not added twice
    assert len(oci.parse_manifest(m3).layers) == 2


def test_signature_manifest_layer_limit(team: SigningKey) -> None:
    m, _ = classic(team, D1)
    with pytest.raises(IntegrityError, match="limit is 1"):
        signing.signature_manifest(m, b"{}", b"sig", signatures.Limits(max_layers=1))


# -- cache -----------------------------------------------------------------------------------------


def test_cache_round_trip_and_offline_reverification(tmp_path: Path, team: SigningKey,
                                                     trusted: list[PublicKey]) -> None:
    manifest, blobs = classic(team, D1)
    signature_cache.store(tmp_path, Material(D1, manifest, blobs, (make_bundle(team, D1),)))
    assert signature_cache.load(tmp_path, D2) is None
    got = signature_cache.load(tmp_path, D1)
    assert got is not None
    assert got.classic_manifest == manifest
    assert dict(got.blobs) == blobs
    assert verify([got], trusted).digest == D1
    assert verify([Material(D1, got.classic_manifest, got.blobs)], trusted).format == "classic"


def test_cache_detects_substituted_content(tmp_path: Path, team: SigningKey) -> None:
    manifest, blobs = classic(team, D1)
    signature_cache.store(tmp_path, Material(D1, manifest, blobs))
    (d,) = blobs
    blob = tmp_path / "signatures" / "blobs" / "sha256" / d.removeprefix("sha256:")
    blob.write_bytes(classic_payload(D2, REPO))
    with pytest.raises(IntegrityError, match="content is"):
        signature_cache.load(tmp_path, D1)
    entry = tmp_path / "signatures" / "images" / "sha256" / (D1.removeprefix("sha256:") + ".json")
    entry.write_text(json.dumps({"digest": D2, "classic_manifest": None, "payloads": [], "bundles": []}))
    with pytest.raises(IntegrityError, match="corrupt"):
        signature_cache.load(tmp_path, D1)


def test_key_type_constant() -> None:
    assert ECDSA_P256 == "ecdsa-p256"
