"""Fuzzing signature material (``tests.fuzz.targets.check_classic``/``check_bundle``): genuine classic
``.sig`` manifests, simple-signing payloads and Sigstore bundles made with the fixed fuzz key, mutated at
the byte level and at the JSON level. Each is Denied or verified, and a verification is only ever of a
message the key really signed, for the digest admitted. Mutated signature bytes never verify."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.common.errors import Denied, IntegrityError
from shim.images import oci
from shim.trust import signatures, signing
from tests.fuzz import targets
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import json_values, mutated
from tests.harness.sigimages import make_bundle


@cache
def genuine() -> tuple[bytes, bytes, bytes]:
    """(classic .sig manifest, its payload, a bundle), all signed by the fuzz key for SIG_DIGEST: the saved
    seeds, so that the mutations (derandomized) start from the same bytes on every run."""
    classic, bundle = (targets.CORPUS / "signature" / "seed-000").read_bytes(), (
        targets.CORPUS / "signature" / "seed-001").read_bytes()
    manifest, _, payload = classic[1:].partition(targets.SEP)
    assert payload == targets.CLASSIC_PAYLOAD
    return manifest, payload, bundle[1:]


def test_genuine_material_verifies() -> None:
    manifest, payload, bundle = genuine()
    m = signatures.Material(targets.SIG_DIGEST, manifest, {oci.sha256_digest(payload): payload}, (bundle,))
    assert signatures.verify([m], targets.fuzz_trusted()).format == signatures.BUNDLE
    targets.check_classic(manifest, payload)
    targets.check_bundle(bundle)


@fuzz(300)
@given(st.data())
def test_mutated_classic_bytes(data: st.DataObject) -> None:
    manifest, payload, _ = genuine()
    if data.draw(st.booleans()):
        manifest = data.draw(mutated(manifest))
    else:
        payload = data.draw(mutated(payload))
    targets.check_classic(manifest, payload)


@fuzz(300)
@given(st.data())
def test_mutated_bundle_bytes(data: st.DataObject) -> None:
    targets.check_bundle(data.draw(mutated(genuine()[2])))


def _set(doc: Any, path: list[Any], value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


_PAYLOAD_EDITS = st.sampled_from([
    (["critical", "image", "docker-manifest-digest"], "sha256:" + "00" * 32),
    (["critical", "image", "docker-manifest-digest"], targets.SIG_DIGEST.upper()),
    (["critical", "image", "docker-manifest-digest"], [targets.SIG_DIGEST]),
    (["critical", "type"], "cosign container image signature "),
    (["critical", "type"], None),
    (["critical", "identity", "docker-reference"], "127.0.0.1:5000/other"),
    (["optional"], {"a": "b"}),
    (["critical"], "x"),
])


@fuzz(200)
@given(_PAYLOAD_EDITS, st.booleans())
def test_re_signed_payload_edits_are_judged_on_the_claimed_digest(edit: tuple[list[Any], Any], resign: bool) -> None:
    """A payload changed at the JSON level: unsigned, it never verifies; re-signed by the key, it
    verifies only if it still claims exactly the digest (the target checks the rest)."""
    doc = json.loads(targets.CLASSIC_PAYLOAD)
    _set(doc, edit[0], edit[1])
    payload = json.dumps(doc, separators=(",", ":")).encode()
    key = targets.fuzz_signing_key()
    sig = key.sign(payload if resign else targets.CLASSIC_PAYLOAD)
    manifest, _ = signing.signature_manifest(None, payload, sig)
    blobs = {oci.sha256_digest(payload): payload}
    try:
        v = signatures.verify([signatures.Material(targets.SIG_DIGEST, manifest, blobs)], targets.fuzz_trusted())
    except Denied:
        return
    claimed = doc["critical"]["image"]["docker-manifest-digest"]
    assert resign
    assert claimed == targets.SIG_DIGEST
    assert doc["critical"]["type"] == signatures.CLAIM_TYPE
    assert v.digest == targets.SIG_DIGEST


_BUNDLE_EDITS = st.sampled_from([
    ["mediaType"], ["verificationMaterial"], ["dsseEnvelope", "payloadType"], ["dsseEnvelope", "payload"],
    ["dsseEnvelope", "signatures"], ["dsseEnvelope", "signatures", 0], ["dsseEnvelope", "signatures", 0, "sig"],
    ["dsseEnvelope"],
])


@fuzz(300)
@given(_BUNDLE_EDITS, json_values)
def test_bundle_json_edits(path: list[Any], value: Any) -> None:
    doc = json.loads(genuine()[2])
    _set(doc, path, value)
    targets.check_bundle(json.dumps(doc).encode())


_STATEMENT_EDITS = st.sampled_from([
    (["subject", 0, "digest", "sha256"], "00" * 32), (["subject", 0, "digest", "sha256"], [targets.SIG_DIGEST]),
    (["subject"], []), (["subject", 0, "digest"], {"sha512": "00"}), (["predicateType"], "https://slsa.dev/x"),
    (["_type"], "https://in-toto.io/Statement/v2"), (["subject", 0], None),
])


@fuzz(100)
@given(_STATEMENT_EDITS)
def test_re_signed_statement_edits(edit: tuple[list[Any], Any]) -> None:
    doc = json.loads(targets.STATEMENT)
    _set(doc, edit[0], edit[1])
    body = json.dumps(doc).encode()
    bundle = make_bundle(targets.fuzz_signing_key(), targets.SIG_DIGEST, payload=body)
    with pytest.raises(Denied):
        signatures.verify([signatures.Material(targets.SIG_DIGEST, bundles=(bundle,))], targets.fuzz_trusted())


@fuzz(300)
@given(st.data())
def test_mutated_signature_bytes_never_verify(data: st.DataObject) -> None:
    """Flip, truncate, extend or rewrite the DER signature (classic annotation or DSSE sig): denied."""
    manifest, payload, bundle = genuine()
    classic = data.draw(st.booleans())
    if classic:
        doc = json.loads(manifest)
        ann = doc["layers"][0]["annotations"]
        sig = base64.b64decode(ann[signatures.SIGNATURE_ANNOTATION])
    else:
        doc = json.loads(bundle)
        sig = base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
    bad = data.draw(mutated(sig).filter(lambda b: b != sig))
    if classic:
        ann[signatures.SIGNATURE_ANNOTATION] = base64.b64encode(bad).decode()
        material = signatures.Material(targets.SIG_DIGEST, json.dumps(doc).encode(),
                                       {oci.sha256_digest(payload): payload})
    else:
        doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bad).decode()
        material = signatures.Material(targets.SIG_DIGEST, bundles=(json.dumps(doc).encode(),))
    with pytest.raises(Denied, match=r"signed only by untrusted keys|malformed"):
        signatures.verify([material], targets.fuzz_trusted())


# -- regressions: JSON values of the wrong type where a string is looked up in a set -------------------------


@pytest.mark.parametrize("edit", [("mediaType", []), ("mediaType", {}), ("statement _type", [])])
def test_unhashable_json_values_are_denied_not_crashes(edit: tuple[str, Any]) -> None:
    field, value = edit
    if field == "statement _type":
        doc = json.loads(targets.STATEMENT)
        doc["_type"] = value
        bundle = make_bundle(targets.fuzz_signing_key(), targets.SIG_DIGEST, payload=json.dumps(doc).encode())
    else:
        d = json.loads(genuine()[2])
        d[field] = value
        bundle = json.dumps(d).encode()
    with pytest.raises(Denied, match="malformed signature"):
        signatures.verify([signatures.Material(targets.SIG_DIGEST, bundles=(bundle,))], targets.fuzz_trusted())


@pytest.mark.parametrize("doc", [b'{"mediaType":[],"schemaVersion":2,"config":{},"layers":[]}',
                                 b'{"mediaType":{},"manifests":[]}'])
def test_unhashable_media_types_in_manifests_are_integrity_errors(doc: bytes) -> None:
    for parse in (oci.parse_manifest, oci.parse_index):
        with pytest.raises(IntegrityError):
            parse(doc)


@pytest.mark.parametrize("respell", [(b'"size":239,"digest"', b'"size":239,"digesT"'), (b'"layers"', b'"Layers"')])
def test_appending_to_a_sig_manifest_spelled_unlike_cosign_is_refused(respell: tuple[bytes, bytes]) -> None:
    """Regression (atheris): a .sig manifest whose layer says "digesT" (Go reads it as digest) made
    signature_manifest raise KeyError; "Layers" would have dropped the existing signatures."""
    manifest = genuine()[0]
    odd = manifest.replace(*respell)
    assert odd != manifest
    with pytest.raises(IntegrityError, match="does not spell its layers as cosign does"):
        signing.signature_manifest(odd, b"{}", b"sig")
