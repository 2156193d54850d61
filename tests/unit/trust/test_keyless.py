"""Keyless signatures: Sigstore bundles with a Fulcio certificate, verified offline for configured identities.

Real data (tests/vectors/sigstore, from sigstore-python's test assets): a keyless DSSE bundle from Sigstore's
staging instance and the trusted roots around it. It verifies cryptographically for its own identity, and is
then refused because it signs SLSA provenance for a file, not an image. Bundles that admit an image are made
by a test Sigstore instance (tests/harness/sigstore_fakes.py). Also: the ``[trust]`` configuration, the
statement checks shared by key and keyless bundles, classic keyless ``.sig`` layers, and that sigstore is
imported only on the keyless path."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shim.common import config
from shim.common.config import TrustedIdentity
from shim.common.errors import ConfigError, Denied
from shim.trust import keyless, signatures, signing
from shim.trust.keys import SigningKey, load_public_key
from shim.trust.signatures import KeylessTrust, Limits, Material, classic_payload, verify, verify_bundle
from tests.harness.sigimages import make_bundle, statement
from tests.harness.sigstore_fakes import FakeSigstore

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "tests" / "vectors" / "sigstore"
REAL_BUNDLE = (VECTORS / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
REAL_SUBJECT = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
REAL_IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
                 "extremely-dangerous-oidc-beacon.yml@refs/heads/main")
REAL_ISSUER = "https://token.actions.githubusercontent.com"
OPS = TrustedIdentity(issuer="https://accounts.example.com", subject="ops@example.com")
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def root_file(tmp_path: Path, data: bytes | dict[str, Any], name: str = "trusted_root.json") -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    p.chmod(0o644)
    return p


@pytest.fixture
def staging_root(tmp_path: Path) -> Path:
    return root_file(tmp_path, (VECTORS / "staging" / "trusted_root.json").read_bytes())


def real_trust(root: Path, *identities: TrustedIdentity) -> KeylessTrust:
    return KeylessTrust(identities or (TrustedIdentity(issuer=REAL_ISSUER, subject=REAL_IDENTITY),), root)


@pytest.fixture(scope="module")
def fake() -> FakeSigstore:
    return FakeSigstore()


@pytest.fixture
def fake_root(tmp_path: Path, fake: FakeSigstore) -> Path:
    return root_file(tmp_path, fake.trusted_root_json(), "fake_root.json")


# -- the real staging bundle ---------------------------------------------------------------------------


def test_real_bundle_verifies_for_its_identity_then_is_refused_as_not_an_image_signature(staging_root: Path) -> None:
    verifier = keyless.load_verifier(staging_root)
    payload_type, payload, signer = keyless.verify_dsse(REAL_BUNDLE, verifier, real_trust(staging_root).identities)
    assert payload_type == signatures.INTOTO_PAYLOAD_TYPE
    assert json.loads(payload)["predicateType"] == "https://slsa.dev/provenance/v1"
    assert (signer.identity, signer.issuer) == (REAL_IDENTITY, REAL_ISSUER)
    with pytest.raises(Denied, match=r"no signature found.*signed by https://github\.com/sigstore-conformance/"
                                     r".*(issuer https://token\.actions\.githubusercontent\.com).*"
                                     r"'https://slsa\.dev/provenance/v1' is an attestation"):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(staging_root))


def test_real_bundle_verifies_for_an_anchored_regexp(staging_root: Path) -> None:
    rule = TrustedIdentity(issuer=REAL_ISSUER, subject_regexp=r"https://github\.com/sigstore-conformance/.*@refs/heads/main")
    _, _, signer = keyless.verify_dsse(REAL_BUNDLE, keyless.load_verifier(staging_root), [OPS, rule])
    assert (signer.identity, signer.rule) == (REAL_IDENTITY, rule)
    # cosign's regexp would match a prefix; ours must match the whole SAN.
    prefix = TrustedIdentity(issuer=REAL_ISSUER, subject_regexp=r"https://github\.com/sigstore-conformance/")
    with pytest.raises(keyless.Rejected, match="does not verify for a trusted identity"):
        keyless.verify_dsse(REAL_BUNDLE, keyless.load_verifier(staging_root), [prefix])


@pytest.mark.parametrize("rule", [
    TrustedIdentity(issuer=REAL_ISSUER, subject="ops@example.com"),
    TrustedIdentity(issuer="https://accounts.example.com", subject=REAL_IDENTITY),
    TrustedIdentity(issuer=REAL_ISSUER + "/", subject=REAL_IDENTITY),
    TrustedIdentity(issuer="https://accounts.example.com", subject_regexp=".*"),
], ids=["other-subject", "other-issuer", "issuer-not-exact", "regexp-other-issuer"])
def test_real_bundle_refused_for_another_identity(staging_root: Path, rule: TrustedIdentity) -> None:
    with pytest.raises(Denied, match=r"signed only by untrusted keys or identities: .*\(keyless\) does not verify "
                                     r"for a trusted identity \(signer https://github\.com/sigstore-conformance/"):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(staging_root, rule))


def _flip_b64(value: str, at: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper(path: str, at: int) -> Callable[[dict[str, Any]], None]:
    def go(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        key: int | str = int(last) if isinstance(node, list) else last
        node[key] = _flip_b64(node[key], at)
    return go


TAMPERINGS = {
    "dsse-signature": _tamper("dsseEnvelope.signatures.0.sig", 20),
    "dsse-payload-first": _tamper("dsseEnvelope.payload", 0),
    "dsse-payload-last": _tamper("dsseEnvelope.payload", -1),
    "certificate": _tamper("verificationMaterial.certificate.rawBytes", 300),
    "certificate-sct": _tamper("verificationMaterial.certificate.rawBytes", -120),
    "log-body": _tamper("verificationMaterial.tlogEntries.0.canonicalizedBody", 40),
    "inclusion-proof": _tamper("verificationMaterial.tlogEntries.0.inclusionProof.hashes.3", 5),
    "root-hash": _tamper("verificationMaterial.tlogEntries.0.inclusionProof.rootHash", 5),
    "timestamp": _tamper("verificationMaterial.timestampVerificationData.rfc3161Timestamps.0.signedTimestamp", -30),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_real_bundle_refused_when_a_byte_is_flipped(staging_root: Path, tamper: Callable[[dict[str, Any]], None]
                                                    ) -> None:
    doc = json.loads(REAL_BUNDLE)
    tamper(doc)
    with pytest.raises(Denied, match=r"signed only by untrusted keys or identities|malformed signature") as e:
        verify_bundle(REAL_SUBJECT, json.dumps(doc).encode(), [], keyless=real_trust(staging_root))
    assert "attestation" not in str(e.value)  # refused before its statement is looked at


def test_real_bundle_refused_when_the_checkpoint_is_altered(staging_root: Path) -> None:
    doc = json.loads(REAL_BUNDLE)
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["checkpoint"]["envelope"] = proof["checkpoint"]["envelope"].replace("\n4026479\n", "\n4026480\n", 1)
    with pytest.raises(Denied, match="checkpoint"):
        verify_bundle(REAL_SUBJECT, json.dumps(doc).encode(), [], keyless=real_trust(staging_root))


def test_real_bundle_refused_by_a_trusted_root_without_its_ca(tmp_path: Path) -> None:
    staging = json.loads((VECTORS / "staging" / "trusted_root.json").read_bytes())
    production = json.loads((VECTORS / "production" / "trusted_root.json").read_bytes())
    staging["certificateAuthorities"] = production["certificateAuthorities"]
    with pytest.raises(Denied, match="failed to build timestamp certificate chain"):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(root_file(tmp_path, staging)))


@pytest.mark.parametrize("root", ["production/trusted_root.json",
                                  "staging-tuf/ed6a9cf4e7c2e3297a4b5974fce0d17132f03c63512029d7aa3a402b43acab49"
                                  ".trusted_root.json"], ids=["production", "older-staging"])
def test_real_bundle_refused_by_other_real_trusted_roots(tmp_path: Path, root: str) -> None:
    path = root_file(tmp_path, (VECTORS / root).read_bytes())
    with pytest.raises(Denied, match=r"\(keyless\) does not verify for a trusted identity"):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(path))


def _mutate(doc: dict[str, Any], rnd: random.Random) -> None:
    """Delete, replace or alter one random member of a bundle document."""
    paths: list[list[str | int]] = []

    def walk(node: Any, at: list[str | int]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            paths.append([*at, k])
            walk(v, [*at, k])

    walk(doc, [])
    path = rnd.choice(paths)
    parent: Any = doc
    for k in path[:-1]:
        parent = parent[k]
    last, roll = path[-1], rnd.random()
    if roll < 0.2:
        parent.pop(last)
    elif roll < 0.4:
        parent[last] = rnd.choice([None, 0, -1, "", [], {}, "AAAA", 10**30])
    elif isinstance(parent[last], str) and parent[last]:
        v = parent[last]
        i = rnd.randrange(len(v))
        parent[last] = v[:i] + rnd.choice("AB/+=0z") + v[i + 1:]
    else:
        parent[last] = "AAAA"


def test_mutated_bundles_are_only_ever_denied(staging_root: Path, fake: FakeSigstore, fake_root: Path) -> None:
    """Whatever is broken in a keyless bundle, the answer is a denial: never an admission, never a crash."""
    rnd = random.Random(20260513)
    good = fake.sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com")
    cases = [(REAL_BUNDLE, REAL_SUBJECT, real_trust(staging_root)), (good, D1, KeylessTrust((OPS,), fake_root))]
    for n in range(200):
        raw, digest, trust = cases[n % 2]
        doc = json.loads(raw)
        for _ in range(rnd.randint(1, 3)):
            _mutate(doc, rnd)
        if doc == json.loads(raw):
            continue  # a character replaced by itself (the fixture's keys are new each run): nothing broken
        with pytest.raises(Denied):
            verify_bundle(digest, json.dumps(doc).encode(), [], keyless=trust)


# -- trusted root: a configuration error, not a denial ----------------------------------------------------


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: b"not json", "is not JSON"),
    (lambda d: {**d, "mediaType": "application/json"}, "has media type 'application/json'"),
    (lambda d: {**d, "certificateAuthorities": []}, r"lists no certificate authority \(Fulcio\)"),
    (lambda d: {k: v for k, v in d.items() if k != "tlogs"}, r"lists no transparency log \(Rekor\)"),
    (lambda d: {**d, "ctlogs": []}, "lists no certificate transparency log"),
    (lambda d: {**d, "tlogs": [{"baseUrl": 7}]}, "is not a usable Sigstore trusted root"),
], ids=["not-json", "media-type", "no-ca", "no-tlogs", "no-ctlogs", "bad-tlog"])
def test_malformed_trusted_root_is_a_config_error(tmp_path: Path, change: Callable[[dict[str, Any]], Any],
                                                  match: str) -> None:
    base = json.loads((VECTORS / "staging" / "trusted_root.json").read_bytes())
    path = root_file(tmp_path, change(base))
    with pytest.raises(ConfigError, match=match):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(path))


def test_missing_or_unsafe_trusted_root_is_a_config_error(tmp_path: Path, staging_root: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(tmp_path / "absent.json"))
    staging_root.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by others"):
        verify_bundle(REAL_SUBJECT, REAL_BUNDLE, [], keyless=real_trust(staging_root))


def test_trusted_root_is_not_read_without_a_keyless_bundle(tmp_path: Path, fake: FakeSigstore) -> None:
    team = SigningKey("team", "ecdsa-p256", ec.generate_private_key(ec.SECP256R1()))
    pub = load_public_key(team.public_pem(), "team.pub")
    v = verify_bundle(D1, make_bundle(team, D1), [pub], keyless=KeylessTrust((OPS,), tmp_path / "absent.json"))
    assert v.key == pub


# -- the positive path, with a test Sigstore instance -----------------------------------------------------


def test_keyless_cosign_signature_admits_the_digest(fake: FakeSigstore, fake_root: Path) -> None:
    bundle = fake.sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com")
    v = verify([Material(D1, bundles=(bundle,))], [], keyless=KeylessTrust((OPS,), fake_root))
    assert (v.digest, v.format) == (D1, signatures.KEYLESS_BUNDLE)
    r = v.check_result()
    assert r.summary == (f"keyless bundle signature on {D1} by ops@example.com (issuer https://accounts.example.com)")
    assert r.details == {"format": "keyless bundle", "signed_digest": D1, "identity": "ops@example.com",
                         "issuer": "https://accounts.example.com",
                         "trusted_identity": "ops@example.com (issuer https://accounts.example.com)"}
    with pytest.raises(TypeError, match="keyless"):
        _ = v.key


def test_keyless_regexp_identity(fake: FakeSigstore, fake_root: Path) -> None:
    uri = "https://ci.example.com/team/app/.ci/release.yml@refs/heads/main"
    bundle = fake.sign_dsse(statement(D1), uri, "https://ci.example.com/oidc")
    rule = TrustedIdentity(issuer="https://ci.example.com/oidc", subject_regexp=r"https://ci\.example\.com/team/.*")
    v = verify_bundle(D1, bundle, [], keyless=KeylessTrust((OPS, rule), fake_root))
    assert v.check_result().details["identity"] == uri
    with pytest.raises(Denied, match="does not verify for a trusted identity"):
        verify_bundle(D1, bundle, [], keyless=KeylessTrust(
            (TrustedIdentity(issuer="https://ci.example.com/oidc", subject_regexp=r"https://ci\.example\.com/team"),),
            fake_root))


def test_keyless_signature_for_another_digest(fake: FakeSigstore, fake_root: Path) -> None:
    bundle = fake.sign_dsse(statement(D2), "ops@example.com", "https://accounts.example.com")
    with pytest.raises(Denied, match=r"signature for another digest: .*signed by ops@example\.com .*for another "
                                     f"image, {D2}"):
        verify_bundle(D1, bundle, [], keyless=KeylessTrust((OPS,), fake_root))


def test_keyless_from_another_sigstore_instance(fake_root: Path) -> None:
    stranger = FakeSigstore()
    bundle = stranger.sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com")
    with pytest.raises(Denied, match="signed only by untrusted keys or identities"):
        verify_bundle(D1, bundle, [], keyless=KeylessTrust((OPS,), fake_root))


def test_keyless_for_a_wrong_payload_type_or_tampered_payload(fake: FakeSigstore, fake_root: Path) -> None:
    trust = KeylessTrust((OPS,), fake_root)
    odd = fake.sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com",
                         payload_type="application/json")
    with pytest.raises(Denied, match="is not in-toto"):
        verify_bundle(D1, odd, [], keyless=trust)
    doc = json.loads(fake.sign_dsse(statement(D2), "ops@example.com", "https://accounts.example.com"))
    doc["dsseEnvelope"]["payload"] = base64.b64encode(statement(D1)).decode()  # re-pointed at D1
    with pytest.raises(Denied, match="signed only by untrusted"):
        verify_bundle(D1, json.dumps(doc).encode(), [], keyless=trust)


def test_keyless_without_identities_is_refused_without_sigstore(fake: FakeSigstore) -> None:
    team = SigningKey("team", "ecdsa-p256", ec.generate_private_key(ec.SECP256R1()))
    bundle = fake.sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com")
    with pytest.raises(Denied, match="no keyless identities are configured"):
        verify([Material(D1, bundles=(bundle,))], [load_public_key(team.public_pem(), "team.pub")])


def test_no_keys_and_no_identities() -> None:
    with pytest.raises(Denied, match="no trusted keys or keyless identities are configured"):
        verify([Material(D1, bundles=(b"{}",))], [])


def test_keyless_and_key_bundles_side_by_side(fake: FakeSigstore, fake_root: Path) -> None:
    team = SigningKey("team", "ecdsa-p256", ec.generate_private_key(ec.SECP256R1()))
    pub = load_public_key(team.public_pem(), "team.pub")
    stranger = FakeSigstore().sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com")
    v = verify([Material(D1, bundles=(stranger, make_bundle(team, D1)))], [pub],
               keyless=KeylessTrust((OPS,), fake_root))
    assert v.format == signatures.BUNDLE
    assert v.key == pub


# -- the statement checks, shared by key and keyless bundles ----------------------------------------------


@pytest.mark.parametrize(("payload_type", "payload", "match"), [
    ("application/json", statement(D1), "is not in-toto"),
    (signatures.INTOTO_PAYLOAD_TYPE, b"[]", "not a JSON object"),
    (signatures.INTOTO_PAYLOAD_TYPE, b'{"_type": "x"}', "not an in-toto statement"),
    (signatures.INTOTO_PAYLOAD_TYPE, statement(D1, predicate_type="https://slsa.dev/provenance/v1"),
     "signed by SIGNER, but its predicate 'https://slsa.dev/provenance/v1' is an attestation"),
    (signatures.INTOTO_PAYLOAD_TYPE, json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [],
                                                 "predicateType": signatures.COSIGN_SIGN_PREDICATE}).encode(),
     "no subject"),
    (signatures.INTOTO_PAYLOAD_TYPE, statement(D2), f"signed by SIGNER for another image, {D2}"),
])
def test_statement_check(payload_type: str, payload: bytes, match: str) -> None:
    with pytest.raises(signatures._Reject, match=match):
        signatures._check_statement(D1, payload_type, payload, "SIGNER", Limits(), "bundle 0")


def test_statement_check_passes_and_limits_subjects() -> None:
    signatures._check_statement(D1, signatures.INTOTO_PAYLOAD_TYPE, statement(D1), "SIGNER", Limits(), "b")
    with pytest.raises(signatures._Reject, match="too many"):
        signatures._check_statement(D1, signatures.INTOTO_PAYLOAD_TYPE, statement(D1), "SIGNER",
                                    Limits(max_subjects=0), "b")


# -- classic keyless .sig layers ------------------------------------------------------------------------


def test_classic_keyless_layer_is_refused_with_a_resign_hint() -> None:
    ephemeral = SigningKey("ephemeral", "ecdsa-p256", ec.generate_private_key(ec.SECP256R1()))
    team = SigningKey("team", "ecdsa-p256", ec.generate_private_key(ec.SECP256R1()))
    body = classic_payload(D1, "127.0.0.1:5000/bacon/low")
    manifest, _ = signing.signature_manifest(None, body, ephemeral.sign(body))
    doc = json.loads(manifest)
    doc["layers"][0]["annotations"].update({
        signatures.CERTIFICATE_ANNOTATION: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        "dev.sigstore.cosign/bundle": json.dumps({"SignedEntryTimestamp": "AAAA", "Payload": {}}),
    })
    from shim.images import oci

    with pytest.raises(Denied, match=r"unsupported signature format: .*layer 0 is a keyless signature in "
                                     r"cosign's classic \.sig format") as e:
        verify([Material(D1, classic_manifest=json.dumps(doc).encode(), blobs={oci.sha256_digest(body): body})],
               [load_public_key(team.public_pem(), "team.pub")])
    assert e.value.hint is not None
    assert "--new-bundle-format" in e.value.hint


# -- configuration ---------------------------------------------------------------------------------------


def parse(trust: dict[str, Any]) -> config.Config:
    return config.parse({"trust": trust}, Path("/etc/bacon/config.toml"))


def test_config_identities_and_trusted_root() -> None:
    c = parse({"identities": [{"issuer": "https://accounts.example.com", "subject": "ops@example.com"},
                              {"issuer": "https://ci.example.com", "subject_regexp": r"https://ci\.example\.com/.*"}],
               "trusted_root": "/etc/bacon/trusted_root.json"})
    assert c.identities == (OPS, TrustedIdentity("https://ci.example.com", None, r"https://ci\.example\.com/.*"))
    assert c.trusted_root == Path("/etc/bacon/trusted_root.json")
    assert parse({}).identities == ()
    assert parse({}).trusted_root is None


@pytest.mark.parametrize(("trust", "match"), [
    ({"identities": {"issuer": "x"}}, "'identities' must be a list of tables"),
    ({"identities": ["ops@example.com"], "trusted_root": "/r.json"}, r"identities\[0\] must be a table"),
    ({"identities": [{"subject": "ops@example.com"}], "trusted_root": "/r.json"}, "'issuer' .* is required"),
    ({"identities": [{"issuer": "https://a.example.com"}], "trusted_root": "/r.json"}, "exactly one of"),
    ({"identities": [{"issuer": "https://a.example.com", "subject": "a", "subject_regexp": "a"}],
      "trusted_root": "/r.json"}, "exactly one of"),
    ({"identities": [{"issuer": "https://a.example.com", "subject": ""}], "trusted_root": "/r.json"},
     "'subject' must be a non-empty string"),
    ({"identities": [{"issuer": "https://a.example.com", "subject_regexp": "("}], "trusted_root": "/r.json"},
     "not a valid regular expression"),
    ({"identities": [{"issuer": "https://a.example.com", "subject": "a", "san": "b"}], "trusted_root": "/r.json"},
     "unknown key"),
    ({"identities": [{"issuer": "https://a.example.com", "subject": "a"}]}, "need a trusted_root"),
    ({"trusted_root": "trusted_root.json"}, "must be an absolute path"),
])
def test_config_identity_errors(trust: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse(trust)


# -- sigstore stays off the other paths -------------------------------------------------------------------

PROBE = r"""
import json, sys
from cryptography.hazmat.primitives.asymmetric import ec
from shim.images import oci
from shim.trust import signing
from shim.common.config import TrustedIdentity
from shim.trust.keys import SigningKey, load_public_key
from shim.trust.signatures import KeylessTrust, Material, classic_payload, verify
from tests.harness.sigimages import make_bundle
D1 = "sha256:" + "1" * 64
team = SigningKey("team", "ecdsa-p256", ec.generate_private_key(ec.SECP256R1()))
pub = load_public_key(team.public_pem(), "team.pub")
trust = KeylessTrust((TrustedIdentity("https://accounts.example.com", "ops@example.com"),), "/nonexistent")
body = classic_payload(D1, "127.0.0.1:5000/bacon/low")
manifest, _ = signing.signature_manifest(None, body, team.sign(body))
verify([Material(D1, bundles=(make_bundle(team, D1),))], [pub], keyless=trust)
verify([Material(D1, classic_manifest=manifest, blobs={oci.sha256_digest(body): body})], [pub], keyless=trust)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("sigstore", "pydantic", "shim"))))
"""


def test_key_admissions_do_not_import_sigstore() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stdout)
    assert not [m for m in loaded if m.startswith(("sigstore", "pydantic", "shim.trust.keyless"))], loaded


def test_keyless_signers_are_scoped_like_keys(fake: FakeSigstore, fake_root: Path, tmp_path: Path) -> None:
    """Issue 15: an identity's repositories and max_level, and [trust] require, judge keyless bundles as
    they judge keys (the same shim.trust.scopes rules, the same denial naming the signer)."""
    from shim.admission import decision as admission
    from shim.admission.checks import CheckResult
    from shim.trust import signers as trustpolicy

    conf = tmp_path / "etc"
    conf.mkdir(mode=0o755)
    cfg_path = conf / "config.toml"
    cfg_path.write_text(
        'level = "High"\nnerdctl = "/x"\n[trust]\n'
        f'trusted_root = "{fake_root}"\n'
        'identities = [{ issuer = "https://accounts.example.com", subject = "ops@example.com", name = "ops", '
        'repositories = ["registry.example/ops/*"], max_level = "Mid" }]\n')
    cfg = config.load(cfg_path)
    bundle = fake.sign_dsse(statement(D1), "ops@example.com", "https://accounts.example.com")
    trust = KeylessTrust(cfg.identities, fake_root)
    m = [Material(D1, bundles=(bundle,))]
    v = verify(m, [], keyless=trust, judge=trustpolicy.judge_for(cfg, "registry.example/ops/app"))
    details = v.check_result().details
    assert (details["signer"], details["signer_max_level"]) == ("ops", "Mid")
    with pytest.raises(Denied, match=r"signed by ops \(ops@example\.com \(issuer https://accounts\.example\.com\)\), "
                                     r"whose scope \(registry\.example/ops/\* up to Mid\) does not cover repository "
                                     r"registry\.example/dev/app"):
        verify(m, [], keyless=trust, judge=trustpolicy.judge_for(cfg, "registry.example/dev/app"))
    high = admission.decide_admission(image="i", digest=D1, system_level="High", default_level="High",
                            require={"High": ("signature",)}, signature=lambda: CheckResult("signature", "s", details),
                            labels=lambda: {"policy": "High"}, host_checks={})
    assert isinstance(high.denial, Denied)
    assert high.denial.check == "scope"
