"""Hostile images and signatures, through the `nerdctl` wrapper end to end: real images (the harness's
busybox layout, configs rewritten byte for byte where a tool would not write them), pushed to the real
registry, signed by the trusted key, and decided both from the registry (`pull`) and from containerd
(`run` of the local record).

- ``policy`` labels that look right but are not exactly ``High``/``Mid``/``Low`` (look-alike letters,
  padding, case, fullwidth, zero-width): denied on a High host, where any real level is admitted.
- Configs two JSON readers may read differently: a duplicated ``policy`` key, ``labels`` next to
  ``Labels`` and ``Config`` next to ``config`` (Go reads struct fields case-insensitively, last one wins,
  maps merge): containerd and nerdctl would see ``High``; BACON refuses the config rather than pick one.
- Container labels (``-l policy=…``, ``--label-file``) do not change the decision: the level is the image
  config's.
- Signatures: a signed payload for another digest, a signature manifest of 1,001 layers, an RSA or P-384
  key where P-256 is configured, a bundle whose DSSE subject is another image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.images import oci
from shim.images import registry as registry_client
from shim.trust import signatures, signing
from shim.trust.keys import load_signing_key
from tests.conftest import Host, KeyPair, Signed, sign_image
from tests.harness import sigimages
from tests.harness.images import Image, _ref_descriptor
from tests.harness.images import pull as ctr_pull
from tests.integration.refusals import Run, assert_refused, audit_lines, configure, wrapper
from tests.integration.sig.test_registry_signatures import push_bundle

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

QUICK = 20
HIGH_HOST = '[levels.High]\nrequire = ["signature"]\n[levels.Mid]\nrequire = ["signature"]\n'


@dataclass
class Forge:
    """Pushes variants of the layout's ``low`` image whose config bytes are rewritten."""

    layout: Path
    registry_host: str
    key: KeyPair

    def client(self) -> registry_client.Client:
        return registry_client.Client(insecure={self.registry_host})

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    def variant(self, name: str, rewrite: Callable[[bytes], bytes], sign: bool = True) -> Image:
        base = _ref_descriptor(self.layout, "low")
        manifest = json.loads(self.blob(str(base["digest"])))
        config = rewrite(self.blob(manifest["config"]["digest"]))
        manifest["config"] = {**manifest["config"], "digest": oci.sha256_digest(config), "size": len(config)}
        body = json.dumps(manifest, separators=(",", ":")).encode()
        repo = registry_client.Repository(self.registry_host, f"hostile/{name}")
        with self.client() as c:
            for layer in manifest["layers"]:
                c.push_blob(repo, self.blob(layer["digest"]))
            c.push_blob(repo, config)
            digest = c.put_manifest(repo, "v1", body, oci.MEDIA_OCI_MANIFEST)
        img = Image(name=name, ref=f"{repo}:v1", digest=digest)
        if sign:
            sign_image(img, self.key)
        return img


def relabel(value: str) -> Callable[[bytes], bytes]:
    def rewrite(config: bytes) -> bytes:
        assert b'"policy":"Low"' in config
        return config.replace(b'"policy":"Low"', b'"policy":' + json.dumps(value).encode(), 1)

    return rewrite


def raw(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def rewrite(config: bytes) -> bytes:
        assert old in config, config
        return config.replace(old, new, 1)

    return rewrite


@pytest.fixture(scope="module")
def forge(signed: Signed) -> Forge:
    return Forge(signed.images.layout, signed.images.registry.host, signed.trusted)


LOOKALIKES = {
    "cyrillic-i": "Hіgh",        # U+0456
    "leading-space": " High",
    "trailing-space": "High ",
    "lower-case": "high",
    "upper-case": "HIGH",
    "fullwidth": "Ｌow",         # U+FF2C
    "zero-width": "Low\u200b",
    "nbsp": "Low\u00a0",
    "newline": "Low\n",
}


@pytest.fixture(scope="module")
def lookalikes(forge: Forge) -> dict[str, Image]:
    return {k: forge.variant(f"label-{k}", relabel(v)) for k, v in LOOKALIKES.items()}


def decide_by(host: Host, img: Image, how: str) -> Run:
    """``pull`` decides from the registry; ``local`` runs the image after ``ctr`` put it in containerd."""
    if how == "pull":
        return wrapper(host, "pull", img.ref)
    ctr_pull(host.containerd, img)
    return wrapper(host, "run", "--rm", img.ref)


@pytest.mark.parametrize("how", ["pull", "local"])
@pytest.mark.parametrize("case", list(LOOKALIKES))
def test_lookalike_policy_labels_are_denied_on_a_high_host(gate_host: Host, signed: Signed,
                                                           lookalikes: dict[str, Image], case: str, how: str) -> None:
    configure(gate_host, signed.trusted, level="High", extra=HIGH_HOST)
    img = lookalikes[case]
    r = decide_by(gate_host, img, how)
    assert_refused(r, gate_host, rc=77, says="the image's policy label is", within=QUICK, check="level")
    assert img.digest in r.first_line
    assert repr(LOOKALIKES[case]) in r.stderr  # shown exactly, with any odd code points named
    [line] = audit_lines(gate_host.audit_log)
    assert (line["verdict"], line["failed_check"]) == ("denied", "level")


def test_exact_label_is_admitted_on_the_same_path(gate_host: Host, signed: Signed, forge: Forge) -> None:
    # The control: the same rewrite with the exact spelling is admitted, so the denials above are the label's.
    configure(gate_host, signed.trusted, level="High", extra=HIGH_HOST)
    img = forge.variant("label-exact", relabel("High"))
    r = wrapper(gate_host, "pull", img.ref)
    assert r.rc == 0, r.stderr


TWO_READINGS = {
    # Go's encoding/json (containerd, nerdctl) keeps the last value: High. Python's json too, but a
    # second parser elsewhere might keep the first; BACON refuses.
    "duplicate-policy-key": raw(b'"policy":"Low"', b'"policy":"Low","policy":"High"'),
    # Go matches struct fields case-insensitively and merges maps: nerdctl sees policy=High.
    "labels-beside-Labels": raw(b'"Labels":{', b'"labels":{"policy":"High"},"Labels":{'),
    "Config-beside-config": raw(b'"config":{', b'"Config":{"Labels":{"policy":"High"}},"config":{'),
    # U+017F (long s) folds to "s" in Go's field matching: "Label\u017f" is Labels.
    "long-s-Labels": raw(b'"Labels":{', '"Label\u017f":{"policy":"High"},"Labels":{'.encode()),
}


@pytest.fixture(scope="module")
def two_readings(forge: Forge) -> dict[str, Image]:
    return {k: forge.variant(k.lower(), f) for k, f in TWO_READINGS.items()}


@pytest.mark.parametrize("how", ["pull", "local"])
@pytest.mark.parametrize("case", list(TWO_READINGS))
def test_configs_with_two_readings_are_refused(gate_host: Host, signed: Signed, two_readings: dict[str, Image],
                                               case: str, how: str) -> None:
    configure(gate_host, signed.trusted)  # a Low host: BACON reading "Low" would admit
    img = two_readings[case]
    r = decide_by(gate_host, img, how)
    assert_refused(r, gate_host, rc=77, says=("duplicate key", "both set the field"), within=QUICK)
    assert img.digest in r.first_line


# -- container labels do not count --------------------------------------------------------------------

@pytest.mark.parametrize("flags", [["-l", "policy=Low"], ["--label", "policy=Low"], ["--label=policy=Low"],
                                   ["label-file"]])
def test_container_policy_label_does_not_lower_an_images_level(gate_host: Host, signed: Signed, tmp_path: Path,
                                                               flags: list[str]) -> None:
    configure(gate_host, signed.trusted)
    if flags == ["label-file"]:
        lf = Path(str(tmp_path)) / "labels"
        lf.write_text("policy=Low\n")
        flags = ["--label-file", str(lf)]
    high = signed["high"]
    r = wrapper(gate_host, "run", *flags, "--rm", high.ref)
    assert_refused(r, gate_host, rc=77, says="level High (its policy label)", within=QUICK, check="level")


def test_container_policy_label_does_not_raise_an_images_level(gate_host: Host, signed: Signed) -> None:
    configure(gate_host, signed.trusted)
    r = wrapper(gate_host, "create", "-l", "policy=High", signed["low"].ref)
    assert r.rc == 0, r.stderr
    [line] = audit_lines(gate_host.audit_log)
    assert line["level"] == "Low"
    gate_host.containerd.ctr("containers", "rm", r.stdout.strip(), check=False)


# -- image mounts read as nerdctl reads them ------------------------------------------------------------

@pytest.mark.parametrize("spelling", [
    "type=image,source={u},target=/x,type=volume",  # nerdctl: an image mount (type=volume changes nothing)
    "type=image,src=low-decoy,source={u},target=/x",  # nerdctl: the last source; another reader: the first
    "type=volume,TYPE=image,source={u},target=/x",
])
def test_an_image_mount_with_two_readings_is_refused(gate_host: Host, signed: Signed, spelling: str) -> None:
    """Before, the wrapper read the last ``type=`` (volume) and let the unsigned image through, unchecked and
    unpinned, while nerdctl mounted it."""
    configure(gate_host, signed.trusted)
    mount = spelling.format(u=signed["unsigned"].ref)
    r = wrapper(gate_host, "run", "--rm", "--mount", mount, signed["low"].ref)
    assert_refused(r, gate_host, rc=64, says="given twice", within=QUICK)


def test_an_image_mount_in_upper_case_keys_is_checked(gate_host: Host, signed: Signed) -> None:
    configure(gate_host, signed.trusted)
    r = wrapper(gate_host, "run", "--rm", "--mount", f"TYPE=image,SOURCE={signed['unsigned'].ref},Target=/x",
                signed["low"].ref)
    assert_refused(r, gate_host, rc=77, says=signed["unsigned"].digest, within=QUICK, check="signature")


# -- signatures -----------------------------------------------------------------------------------------

def _repo(img: Image) -> registry_client.Repository:
    return registry_client.Repository.of(img.ref)


def test_signed_payload_claiming_another_digest(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """A valid signature by the trusted key, for the high image's digest, put under the low variant's
    .sig tag (what copying a signature between images gives)."""
    configure(gate_host, signed.trusted)
    victim = forge.variant("payload-other-digest", relabel("Low"), sign=False)
    key = load_signing_key(signed.trusted.private.read_bytes(), "trusted")
    payload = signatures.classic_payload(signed["high"].digest, str(_repo(victim)))
    manifest, config = signing.signature_manifest(None, payload, key.sign(payload))
    with forge.client() as c:
        c.push_blob(_repo(victim), payload)
        c.push_blob(_repo(victim), config)
        c.put_manifest(_repo(victim), signatures.sig_tag(victim.digest), manifest, oci.MEDIA_OCI_MANIFEST)
    r = wrapper(gate_host, "pull", victim.ref)
    assert_refused(r, gate_host, rc=77, says="signature for another digest", within=QUICK, check="signature")
    assert signed["high"].digest in r.stderr


def test_signature_manifest_with_1001_layers(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """1,001 copies of a valid signature layer: over cosign's limit of 1000, refused before any is tried."""
    configure(gate_host, signed.trusted)
    img = forge.variant("sig-1001", relabel("Low"))
    with forge.client() as c:
        doc = json.loads(c.get_manifest(_repo(img), signatures.sig_tag(img.digest)).data)
        doc["layers"] = doc["layers"] * 1001
        c.put_manifest(_repo(img), signatures.sig_tag(img.digest), json.dumps(doc).encode(), oci.MEDIA_OCI_MANIFEST)
    r = wrapper(gate_host, "pull", img.ref)
    assert_refused(r, gate_host, rc=77, says="1001 layers, more than the limit of 1000", within=QUICK,
                   check="signature")


def _keypair(directory: Path, name: str, kind: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = rsa.generate_private_key(65537, 3072) if kind == "rsa" else ec.generate_private_key(ec.SECP384R1())
    directory.mkdir(parents=True, exist_ok=True)
    priv, pub = directory / f"{name}.key", directory / f"{name}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(priv, pub)


@pytest.mark.parametrize(("kind", "key_type"), [("rsa", "rsa"), ("p384", "ecdsa-p384")])
def test_trusted_key_of_another_type_than_configured(gate_host: Host, signed: Signed, forge: Forge,
                                                     tmp_path: Path, kind: str, key_type: str) -> None:
    """The image is validly signed by the key in [trust] keys; the key is RSA or P-384 while the host
    accepts P-256 only (the default key_types): the trust configuration is wrong, nothing is admitted."""
    pair = _keypair(Path(str(tmp_path)) / "keys", kind, kind)
    img = forge.variant(f"key-{kind}", relabel("Low"), sign=False)
    sign_image(img, pair)
    configure(gate_host, pair)
    r = wrapper(gate_host, "pull", img.ref)
    assert r.rc in (77, 78), r.stderr
    assert_refused(r, gate_host, rc=r.rc, says=f"is an {key_type} key; this host accepts only ecdsa-p256",
                   within=QUICK)
    # The control: with the type allowed, the same key and signature admit it.
    gate_host.write_config(gate_host.config.read_text().replace(
        "[trust]\n", f'[trust]\nkey_types = ["ecdsa-p256", "{key_type}"]\n', 1))
    r = wrapper(gate_host, "pull", img.ref)
    assert r.rc == 0, r.stderr


def test_bundle_whose_subject_is_another_image(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """A Sigstore bundle stored as the image's referrer, signed by the trusted key, whose in-toto subject
    is the high image: a signature of that image, not of this one."""
    configure(gate_host, signed.trusted)
    img = forge.variant("bundle-other-subject", relabel("Low"), sign=False)
    key = load_signing_key(signed.trusted.private.read_bytes(), "trusted")
    with forge.client() as c:
        push_bundle(c, img, sigimages.make_bundle(key, signed["high"].digest))
    r = wrapper(gate_host, "pull", img.ref)
    assert_refused(r, gate_host, rc=77, says="for another image", within=QUICK, check="signature")
    assert signed["high"].digest in r.stderr
