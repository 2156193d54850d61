"""Keyless admission end to end: a keyless Sigstore bundle (made by the test Sigstore instance,
tests/harness/sigstore_fakes.py) stored as an OCI referrer at the real registry, found and verified by the
`nerdctl` wrapper with ``[trust] identities`` and ``trusted_root`` configured; the nerdctl stand-in receives
the pinned argv (and runs the container through ctr)."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest

from shim.images import oci
from shim.images import registry as registry_client
from shim.trust import signatures
from tests.conftest import Host, Signed, trusted_config
from tests.harness import images as images_h
from tests.harness import sigimages
from tests.harness.sigstore_fakes import FakeSigstore
from tests.integration.test_gate import assert_denied, audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

ISSUER = "https://accounts.example.com"
_count = itertools.count()


def push_keyless(host: Host, signed: Signed, bundle_for: FakeSigstore, identity: str) -> images_h.Image:
    """The ``unsigned`` image's content in a repository of its own, with a keyless bundle for its digest
    stored as cosign 3 stores one (manifest by digest, listed under the referrers fallback tag)."""
    img = images_h.push(signed.images.layout, host.registry, "unsigned", repo_path=f"bacon/keyless-{next(_count)}")
    repo = registry_client.Repository.of(img.repo)
    bundle = bundle_for.sign_dsse(sigimages.statement(img.digest), identity, ISSUER)
    with registry_client.Client(insecure={repo.host}) as client:
        subject = client.get_manifest(repo, img.digest)
        manifest = sigimages.bundle_manifest(bundle, img.digest, len(subject.data), subject.media_type)
        client.push_blob(repo, sigimages.EMPTY_CONFIG)
        client.push_blob(repo, bundle)
        client.put_manifest(repo, oci.sha256_digest(manifest), manifest, oci.MEDIA_OCI_MANIFEST)
        index = sigimages.referrers_index([(manifest, signatures.BUNDLE_MEDIA_TYPE)])
        client.put_manifest(repo, signatures.referrers_tag(img.digest), index, oci.MEDIA_OCI_INDEX)
    return img


@pytest.fixture(scope="module")
def sigstore() -> FakeSigstore:
    return FakeSigstore()


def keyless_config(host: Host, signed: Signed, sigstore: FakeSigstore, identity: str) -> None:
    root = host.root / "etc" / "trusted_root.json"
    root.write_bytes(sigstore.trusted_root_json())
    root.chmod(0o644)
    host.write_config(
        f'level = "Low"\nnerdctl = "{host.standin}"\nstate_dir = "{host.state_dir}"\n'
        f'audit_log = "{host.audit_log}"\n'
        f'[trust]\nkeys = ["{signed.trusted.public}"]\n'
        f'identities = [{{ issuer = "{ISSUER}", subject = "{identity}" }}]\ntrusted_root = "{root}"\n'
        f'[registry]\ninsecure = ["{host.registry.host}"]\n')


def test_keyless_signed_image_is_admitted_and_the_signer_audited(host: Host, signed: Signed,
                                                                 sigstore: FakeSigstore) -> None:
    img = push_keyless(host, signed, sigstore, "ops@example.com")
    keyless_config(host, signed, sigstore, "ops@example.com")
    r = nerdctl(host, "pull", img.ref)
    assert r.rc == 0, r.stderr
    assert r.forwarded[0][-2:] == ["--", f"{img.repo}@{img.digest}"]
    [line] = audit_lines(host)
    assert line["verdict"] == "admitted"
    checks = line["checks"]
    assert isinstance(checks, list)
    [sig] = [c for c in checks if c["check"] == "signature"]
    assert sig["format"] == "keyless bundle", sig
    assert (sig["identity"], sig["issuer"]) == ("ops@example.com", ISSUER), sig
    # run: decided from the signature kept at pull, verified again.
    r = nerdctl(host, "run", "--rm", img.ref)
    assert r.rc == 0, r.stderr
    assert "hello-from" in r.stdout
    # explained: the signer, not a key.
    v = subprocess.run([*host.bacon, "verify", img.ref], env=host.env(), capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr
    assert f"[pass] signature keyless bundle signature on {img.digest} by ops@example.com (issuer {ISSUER})" \
        in v.stdout, v.stdout


def test_keyless_signed_image_is_denied_for_another_identity(host: Host, signed: Signed,
                                                             sigstore: FakeSigstore) -> None:
    img = push_keyless(host, signed, sigstore, "intruder@example.com")
    keyless_config(host, signed, sigstore, "ops@example.com")
    r = nerdctl(host, "pull", img.ref)
    assert_denied(r, img.ref, "signature", img.digest)
    assert "intruder@example.com" in r.stderr
    assert "does not verify for a trusted identity" in r.stderr


def test_keyless_signature_is_not_trusted_without_identities(host: Host, signed: Signed,
                                                             sigstore: FakeSigstore) -> None:
    img = push_keyless(host, signed, sigstore, "ops@example.com")
    trusted_config(host, signed.trusted)
    r = nerdctl(host, "pull", img.ref)
    assert_denied(r, img.ref, "signature", img.digest)
    assert "no keyless identities are configured" in r.stderr


def test_malformed_trusted_root_denies_and_says_why(host: Host, signed: Signed, sigstore: FakeSigstore) -> None:
    img = push_keyless(host, signed, sigstore, "ops@example.com")
    keyless_config(host, signed, sigstore, "ops@example.com")
    (host.root / "etc" / "trusted_root.json").write_text(json.dumps({"mediaType": "nope"}))
    r = nerdctl(host, "pull", img.ref)
    # A trusted root that cannot be used is the configuration's fault: 78, naming the file (shim/admission/decision.py).
    assert r.rc == 78, r.stderr
    assert r.forwarded == []
    assert "trusted root" in r.stderr
    assert "has media type 'nope'" in r.stderr


def test_keyless_admission_through_the_service(host: Host, signed: Signed, sigstore: FakeSigstore) -> None:
    """With identities configured, `bacon serve` loads sigstore before forking; its worker decides as the
    wrapper does alone: the right signer admitted, another refused."""
    from tests.integration.test_service import Served

    served = Served(host)
    img = push_keyless(host, signed, sigstore, "ops@example.com")
    other = push_keyless(host, signed, sigstore, "intruder@example.com")
    keyless_config(host, signed, sigstore, "ops@example.com")
    host.config.write_text(host.config.read_text() + f'[service]\nsocket = "{served.socket}"\n')
    served.start()
    try:  # the refusal first: both repositories hold the same content, and an admitted digest stays admitted
        r = nerdctl(host, "pull", other.ref)
        assert_denied(r, other.ref, "signature", other.digest)
        assert "intruder@example.com" in r.stderr
        r = nerdctl(host, "pull", img.ref)
        assert r.rc == 0, r.stderr
        assert r.forwarded[0][-2:] == ["--", f"{img.repo}@{img.digest}"]
        assert served.requests() == 2
    finally:
        served.stop()
