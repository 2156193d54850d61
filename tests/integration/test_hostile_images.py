"""Hostile images and signature material, second round (``test_hostile`` has the first): what an attacker who
can push anything to a repository of the real registry, or load anything into the real containerd, makes
BACON read, decided through the `nerdctl` wrapper end to end, each with the control that the same path
admits the honest variant.

- ``policy`` label keys that only look like ``policy`` (``POLICY``, fullwidth, a trailing space, a
  zero-width character), beside the real key or alone: denied, where the exact key alone decided before.
- A signature manifest padded with junk layers of 60 KiB payloads before the real signature: the smallest
  payloads are tried first, at most 1 MiB of them is fetched, and only what verified is kept.
- A reference by a sha512 or sha384 digest (nerdctl's grammar takes them): refused as uncheckable (77).
- A local record whose content is not an image BACON reads (Docker schema 1, an unknown media type, an
  index's bytes under a manifest's type): denied naming the record and what is wrong (was "not present").
- An index offering a platform whose name holds terminal escapes and a line break: the refusal shows them
  escaped (every message BACON prints goes through ``shim.common.errors.printable``).
- Labels outside ``config.Labels`` and signatures of an index or a manifest count only for what they cover.
- A signed config of 8 MiB (under its size limit) that is mostly ``{},{},…``: denied before it is parsed
  (every untrusted JSON document is bounded in values, ``shim.common.strictjson``).
- A stored index listing a second amd64 manifest whose content is not in containerd: refused (64), with the
  way out.
- An index that lists one nested index many times over, several levels deep: a few kilobytes whose full
  walk is tens of thousands of documents (containerd itself follows one entry per level).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

import pytest

from shim.images import oci
from shim.images import registry as registry_client
from shim.trust import signatures
from tests.conftest import Host, Signed, sign_image
from tests.harness import images as images_h
from tests.harness import localcontent
from tests.harness.images import Image
from tests.harness.images import pull as ctr_pull
from tests.integration.refusals import assert_refused, audit_lines, configure, wrapper
from tests.integration.test_hostile import Forge, decide_by, raw

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

QUICK = 20
AMD64 = {"os": "linux", "architecture": "amd64"}


def _index(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": entries}).encode()


@dataclass
class Nested:
    """Four levels of indexes, each listing the level below 12 times, over the harness's Low manifest: 12**4
    (20,736) paths to one manifest. The top index is signed at the registry."""

    image: Image
    bodies: list[bytes]  # innermost first


@pytest.fixture(scope="module")
def nested_many_times(signed: Signed) -> Nested:
    layout, reg = signed.images.layout, signed.images.registry
    path = "hostile/nested-many-times"
    images_h.push(layout, reg, "low", repo_path=path, tag="low")
    low = images_h._ref_descriptor(layout, "low")
    entry: dict[str, object] = {"mediaType": low["mediaType"], "digest": low["digest"], "size": low["size"],
                                "platform": AMD64}
    repo = registry_client.Repository(reg.host, path)
    bodies = []
    with registry_client.Client(insecure={reg.host}) as c:
        for level in range(4):
            body = _index([entry] * 12)
            digest = c.put_manifest(repo, "v1" if level == 3 else oci.sha256_digest(body), body, oci.MEDIA_OCI_INDEX)
            entry = {"mediaType": oci.MEDIA_OCI_INDEX, "digest": digest, "size": len(body), "platform": AMD64}
            bodies.append(body)
    img = Image(name=path, ref=f"{reg.host}/{path}:v1", digest=str(entry["digest"]))
    sign_image(img, signed.trusted)
    return Nested(img, bodies)


def load_nested(host: Host, nested: Nested) -> None:
    """The indexes into containerd as they are (``ctr images pull`` would follow all 20,736 paths itself),
    over the Low manifest ``ctr`` pulled."""
    low = nested.image.ref.rsplit(":", 1)[0] + ":low"
    ctr_pull(host.containerd, low)
    localcontent.create_image(host.containerd, nested.image.ref, oci.MEDIA_OCI_INDEX, nested.image.digest,
                              len(nested.bodies[-1]))
    for body in reversed(nested.bodies):  # top-down: each is referred to before it is written
        localcontent.ingest(host.containerd, body, children=[json.loads(body)["manifests"][0]["digest"]])


def test_an_index_listing_one_index_many_times_is_decided_quickly(gate_host: Host, signed: Signed,
                                                                   nested_many_times: Nested) -> None:
    """Before, the stored index's walk (every manifest the matcher accepts must pass) followed every entry
    and read 20,736 manifests and configs from containerd: `run` took minutes. Each digest is walked once:
    one candidate, the signed Low manifest, admitted."""
    configure(gate_host, signed.trusted)
    load_nested(gate_host, nested_many_times)
    img = nested_many_times.image
    r = wrapper(gate_host, "run", "--rm", img.ref, timeout=60)
    assert r.rc == 0, r.stderr
    assert r.seconds < QUICK, r.seconds
    [line] = audit_lines(gate_host.audit_log)
    assert (line["verdict"], line["level"], line["digest"]) == ("admitted", "Low", img.digest)
    assert r.forwarded[0][-1] == img.digest  # the stored index, by its digest


# -- label keys that look like policy -------------------------------------------------------------------

@pytest.fixture(scope="module")
def forge(signed: Signed) -> Forge:
    return Forge(signed.images.layout, signed.images.registry.host, signed.trusted)


KEY_LOOKALIKES = {"upper-case": "POLICY", "capital": "Policy", "fullwidth": "\uff50olicy",
                  "trailing-space": "policy ", "zero-width": "poli\u200bcy"}


@pytest.fixture(scope="module")
def key_lookalikes(forge: Forge) -> dict[str, Image]:
    """Each beside the real ``policy=Low``, saying High."""
    return {k: forge.variant(f"key-{k}", raw(b'"policy":"Low"', b'"policy":"Low",' + json.dumps(v).encode()
                                             + b':"High"')) for k, v in KEY_LOOKALIKES.items()}


@pytest.mark.parametrize("how", ["pull", "local"])
@pytest.mark.parametrize("case", list(KEY_LOOKALIKES))
def test_a_label_key_that_looks_like_policy_is_denied(gate_host: Host, signed: Signed,
                                                      key_lookalikes: dict[str, Image], case: str, how: str) -> None:
    """Before, a Low host admitted these as Low: only the exact key was read, and ``POLICY=High`` ignored."""
    configure(gate_host, signed.trusted)
    img = key_lookalikes[case]
    r = decide_by(gate_host, img, how)
    assert_refused(r, gate_host, rc=77, says="looks like 'policy' but is not", within=QUICK, check="level")
    assert img.digest in r.first_line
    assert repr(KEY_LOOKALIKES[case]) in r.stderr


def test_a_lookalike_key_alone_does_not_take_the_default_level(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """With ``default_level = "Low"``, an image saying ``Policy=High`` was a Low image (no exact key)."""
    configure(gate_host, signed.trusted, top='default_level = "Low"\n')
    img = forge.variant("key-alone", raw(b'"policy":"Low"', b'"Policy":"High"'))
    r = wrapper(gate_host, "pull", img.ref)
    assert_refused(r, gate_host, rc=77, says="'Policy'", within=QUICK, check="level")
    # The control: the exact key on the same path.
    img = forge.variant("key-exact-low", raw(b'"policy":"Low"', b'"policy":"Low","org.example.policy":"High"'))
    r = wrapper(gate_host, "pull", img.ref)
    assert r.rc == 0, r.stderr


# -- signature material by the megabyte ----------------------------------------------------------------

def _pad_signature_manifest(forge: Forge, img: Image, junk: int, size: int) -> None:
    """``junk`` layers of distinct ``size``-byte payloads with made-up signatures, before the real layer."""
    repo = registry_client.Repository.of(img.ref)
    with forge.client() as c:
        doc = json.loads(c.get_manifest(repo, signatures.sig_tag(img.digest)).data)
        layers = []
        for i in range(junk):
            payload = json.dumps({"critical": {}, "optional": {"pad": str(i) + "x" * size}}).encode()[:size]
            layers.append({"mediaType": signatures.SIMPLESIGNING_MEDIA_TYPE, "size": len(payload),
                           "digest": c.push_blob(repo, payload),
                           "annotations": {signatures.SIGNATURE_ANNOTATION: base64.b64encode(os.urandom(70)).decode()}})
        doc["layers"] = layers + doc["layers"]
        c.put_manifest(repo, signatures.sig_tag(img.digest), json.dumps(doc).encode(), oci.MEDIA_OCI_MANIFEST)


def _kept_blobs(host: Host) -> int:
    d = host.state_dir / "signatures" / "blobs" / "sha256"
    return len(os.listdir(d)) if d.is_dir() else 0


def test_junk_layers_before_the_signature_are_neither_fetched_nor_kept(gate_host: Host, signed: Signed,
                                                                        forge: Forge) -> None:
    """Before, all 100 junk payloads (6 MB) were fetched, held and then kept in the signature cache, which
    every later `run` of the image read back whole. The small real payload is tried first; only it and the
    signature manifest are kept."""
    configure(gate_host, signed.trusted)
    img = forge.variant("sig-padded", raw(b'"policy":"Low"', b'"policy":"Low"'))
    _pad_signature_manifest(forge, img, junk=100, size=60 << 10)
    before = _kept_blobs(gate_host)
    r = wrapper(gate_host, "pull", img.ref)
    assert r.rc == 0, r.stderr
    assert _kept_blobs(gate_host) - before <= 2, "only the .sig manifest and the payload that verified"
    ctr_pull(gate_host.containerd, img)
    r = wrapper(gate_host, "run", "--rm", "--pull=never", img.ref)  # from the kept material
    assert r.rc == 0, r.stderr


def test_junk_layers_over_the_payload_total_are_not_tried(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """Only junk: 20 payloads of 60 KiB, more than the 1 MiB that is fetched in total; the rest are not
    tried, and the denial says so."""
    configure(gate_host, signed.trusted)
    img = forge.variant("sig-only-junk", raw(b'"policy":"Low"', b'"policy":"Low"'), sign=False)
    repo = registry_client.Repository.of(img.ref)
    with forge.client() as c:  # an empty .sig manifest to pad
        manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST, "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": c.push_blob(repo, b"{}")},
            "layers": []}).encode()
        c.put_manifest(repo, signatures.sig_tag(img.digest), manifest, oci.MEDIA_OCI_MANIFEST)
    _pad_signature_manifest(forge, img, junk=20, size=60 << 10)
    r = wrapper(gate_host, "pull", img.ref)
    assert_refused(r, gate_host, rc=77, says="more than 1048576 bytes", within=QUICK, check="signature")


def test_payload_fetches_are_bounded_in_total_whatever_sizes_are_declared(signed: Signed, forge: Forge) -> None:
    """The verifier's per-layer checks use the sizes a manifest declares; the fetches themselves stop at 64 KiB
    each and 1 MiB together (before, each fetch could take 64 KiB, for up to 1000 layers)."""
    from shim.common.errors import IntegrityError
    from shim.trust.registry_signatures import LazyBlobs

    repo = registry_client.Repository(forge.registry_host, "hostile/lazy-total")
    limits = signatures.DEFAULT_LIMITS
    with forge.client() as c:
        digests = [c.push_blob(repo, (b"%d" % i).ljust(60 << 10, b"x")) for i in range(20)]
        blobs = LazyBlobs(c, repo, limits.max_payload_bytes, limits.max_payload_total)
        got = [blobs[d] for d in digests[:17]]
        with pytest.raises(IntegrityError, match="exceeds the limit"):
            blobs[digests[17]]
    assert sum(map(len, got)) <= limits.max_payload_total


# -- digests of other algorithms ---------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["sha512", "sha384"])
@pytest.mark.parametrize("verb", ["pull", "run"])
def test_a_reference_by_another_digest_algorithm_is_refused(gate_host: Host, signed: Signed, algorithm: str,
                                                            verb: str) -> None:
    """The real digest of the signed Low manifest, in sha512 or sha384: before, the registry's answer to it
    came back as "not found" (64) or as the registry failing (69)."""
    import hashlib

    configure(gate_host, signed.trusted)
    low = signed["low"]
    manifest = images_h._blob(signed.images.layout, low.digest)
    ref = f"{low.ref.rsplit(':', 1)[0]}@{algorithm}:{hashlib.new(algorithm, manifest).hexdigest()}"
    r = wrapper(gate_host, verb, *(["--rm"] if verb == "run" else []), ref)
    assert_refused(r, gate_host, rc=77, says=f"by a {algorithm} digest; BACON checks images by sha256 digest only",
                   within=QUICK, check="image")


# -- local records whose content BACON cannot read as an image ---------------------------------------------

SCHEMA1 = json.dumps({"schemaVersion": 1, "name": "hostile/schema1", "tag": "v1", "architecture": "amd64",
                      "fsLayers": [], "history": []}).encode()


def _local_oddity(host: Host, signed: Signed, case: str) -> tuple[str, str]:
    """An image record, under a name the registry does not have, whose target BACON cannot read as an image:
    (name, what the refusal must say)."""
    low = images_h._ref_descriptor(signed.images.layout, "low")
    low_body = images_h._blob(signed.images.layout, str(low["digest"]))
    name = f"{signed.images.registry.host}/hostile/local-{case}:v1"
    if case == "schema1":
        media, body, says = "application/vnd.docker.distribution.manifest.v1+prettyjws", SCHEMA1, "neither an index"
    elif case == "octet-stream":
        media, body, says = "application/octet-stream", low_body, "neither an index"
    else:  # an index's bytes under a manifest's media type
        media, body, says = oci.MEDIA_OCI_MANIFEST, _index([{**low, "platform": AMD64}]), "expected an image manifest"
    ctr_pull(host.containerd, signed["low"])  # the Low manifest's content, kept by its own record
    localcontent.create_image(host.containerd, name, media, oci.sha256_digest(body), len(body))
    localcontent.ingest(host.containerd, body)
    return name, says


@pytest.mark.parametrize("pull", ["never", "missing"])
@pytest.mark.parametrize("case", ["schema1", "octet-stream", "index-as-manifest"])
def test_a_local_image_that_cannot_be_read_is_denied_with_the_reason(gate_host: Host, signed: Signed, case: str,
                                                                     pull: str) -> None:
    """Before, such a record was skipped without a word and the command said the image was not present
    (locally, or in the registry: 64), though `nerdctl images` lists it."""
    configure(gate_host, signed.trusted)
    name, says = _local_oddity(gate_host, signed, case)
    r = wrapper(gate_host, "run", "--rm", f"--pull={pull}", name)
    assert_refused(r, gate_host, rc=77, says=says, within=QUICK, check="image")
    assert f"local image {name}" in r.stderr


# -- what an image says, on the operator's terminal ----------------------------------------------------------

def test_terminal_escapes_and_line_breaks_in_an_index_are_shown_escaped(gate_host: Host, signed: Signed) -> None:
    """An index offering only a platform whose architecture holds an escape sequence and a line break: the
    refusal lists what it offers. Before, the bytes reached the terminal as they were (the screen cleared, and
    a second ``bacon: hint:`` line of the attacker's words)."""
    configure(gate_host, signed.trusted)
    layout, reg = signed.images.layout, signed.images.registry
    path = "hostile/escapes"
    images_h.push(layout, reg, "low", repo_path=path, tag="low")
    low = images_h._ref_descriptor(layout, "low")
    arch = "arm64\x1b[2J\x1b]0;owned\x07\nbacon: hint: sudo bacon policy set High"
    entry = {"mediaType": low["mediaType"], "digest": low["digest"], "size": low["size"],
             "platform": {"os": "linux", "architecture": arch}}
    repo = registry_client.Repository(reg.host, path)
    with registry_client.Client(insecure={reg.host}) as c:
        c.put_manifest(repo, "v1", _index([entry]), oci.MEDIA_OCI_INDEX)
    r = wrapper(gate_host, "pull", f"{reg.host}/{path}:v1")
    assert_refused(r, gate_host, rc=64, says="it offers: linux/arm64\\x1b[2J\\x1b]0;owned\\x07", within=QUICK)
    assert "\x1b" not in r.stderr
    assert "\x07" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("bacon: hint:")] == [
        "bacon: hint: pass --platform for one it offers"]


# -- where the level is read ------------------------------------------------------------------------------------

def test_only_config_labels_give_the_level(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """``policy=Low`` in Docker's legacy ``container_config.Labels`` and in a top-level ``Labels`` (fields Go's
    image config has not, so containerd and nerdctl ignore them) beside ``config.Labels`` saying High."""
    configure(gate_host, signed.trusted)

    def rewrite(config: bytes) -> bytes:
        assert config.startswith(b"{")
        assert b'"policy":"Low"' in config
        config = config.replace(b'"policy":"Low"', b'"policy":"High"', 1)
        return b'{"container_config":{"Labels":{"policy":"Low"}},"Labels":{"policy":"Low"},' + config[1:]

    img = forge.variant("legacy-labels", rewrite)
    for how in ("pull", "local"):
        r = decide_by(gate_host, img, how)
        assert_refused(r, gate_host, rc=77, says="level High (its policy label)", within=QUICK, check="level")


# -- index and platform signatures -------------------------------------------------------------------------------

def test_an_index_signature_covers_only_what_it_lists(gate_host: Host, signed: Signed) -> None:
    """The index lists the Low manifest and is signed; the High manifest in the same repository is not listed
    (and not signed itself): asked for by its digest, it is denied; the index's own choice is admitted. And the
    other way: an unsigned index whose chosen manifest is signed is admitted, pinned to that manifest."""
    configure(gate_host, signed.trusted, level="High", extra='[levels.High]\nrequire = ["signature"]\n'
                                                              '[levels.Mid]\nrequire = ["signature"]\n')
    layout, reg = signed.images.layout, signed.images.registry
    path = "hostile/index-scope"
    for name in ("low", "high"):
        images_h.push(layout, reg, name, repo_path=path, tag=name)
    low, high = (images_h._ref_descriptor(layout, n) for n in ("low", "high"))
    repo = registry_client.Repository(reg.host, path)
    with registry_client.Client(insecure={reg.host}) as c:
        c.put_manifest(repo, "v1", _index([{**low, "platform": AMD64}]), oci.MEDIA_OCI_INDEX)
        index_digest = c.resolve(repo, "v1")
    sign_image(Image(name=path, ref=f"{reg.host}/{path}:v1", digest=index_digest), signed.trusted)
    r = wrapper(gate_host, "pull", f"{reg.host}/{path}@{high['digest']}")
    assert_refused(r, gate_host, rc=77, says="no signature found", within=QUICK, check="signature")
    r = wrapper(gate_host, "run", "--rm", "--pull=always", f"{reg.host}/{path}:v1")
    assert r.rc == 0, r.stderr
    assert r.forwarded[0][-1] == f"{reg.host}/{path}@{low['digest']}"

    path = "hostile/platform-signed"
    images_h.push(layout, reg, "low", repo_path=path, tag="low")
    repo = registry_client.Repository(reg.host, path)
    with registry_client.Client(insecure={reg.host}) as c:
        c.put_manifest(repo, "v1", _index([{**low, "platform": AMD64}]), oci.MEDIA_OCI_INDEX)
    sign_image(Image(name=path, ref=f"{reg.host}/{path}:low", digest=str(low["digest"])), signed.trusted)
    r = wrapper(gate_host, "run", "--rm", "--pull=always", f"{reg.host}/{path}:v1")
    assert r.rc == 0, r.stderr
    assert r.forwarded[0][-1] == f"{reg.host}/{path}@{low['digest']}"


# -- documents whose parse would cost hundreds of megabytes -------------------------------------------------------

def test_a_config_of_millions_of_values_is_denied(gate_host: Host, signed: Signed, forge: Forge) -> None:
    """A signed image whose 8 MiB config (under the limit on its size) is mostly ``{},{},…`` (under a key Go's
    decoder ignores): before, it was admitted, after the wrapper had grown by some 400 MB of dicts to read it."""
    configure(gate_host, signed.trusted)
    pad = b'"padding":[' + b"{}," * ((8 << 20) // 3 - 2000) + b"{}],"
    img = forge.variant("config-of-millions", lambda config: b"{" + pad + config[1:])
    for how in ("pull", "local"):
        r = decide_by(gate_host, img, how)
        assert_refused(r, gate_host, rc=77, says="more than 200000 values", within=QUICK)
        assert img.digest in r.first_line


def test_a_stored_index_listing_a_manifest_whose_content_is_missing_is_refused(gate_host: Host,
                                                                               signed: Signed) -> None:
    """The record's index lists the Low manifest (here) and a second amd64 manifest whose content containerd
    does not have: nerdctl's matcher could take either, so it cannot be decided; refused with the way out."""
    configure(gate_host, signed.trusted)
    layout, reg = signed.images.layout, signed.images.registry
    path = "hostile/missing-content"
    images_h.push(layout, reg, "low", repo_path=path, tag="low")
    low = images_h._ref_descriptor(layout, "low")
    other = json.loads(images_h._blob(layout, str(low["digest"])))
    other["annotations"] = {"org.example.copy": os.urandom(8).hex()}  # content nobody pulled
    other_body = json.dumps(other).encode()
    repo = registry_client.Repository(reg.host, path)
    index = _index([{**low, "platform": AMD64},
                    {"mediaType": oci.MEDIA_OCI_MANIFEST, "digest": oci.sha256_digest(other_body),
                     "size": len(other_body), "platform": AMD64}])
    with registry_client.Client(insecure={reg.host}) as c:
        c.put_manifest(repo, oci.sha256_digest(other_body), other_body, oci.MEDIA_OCI_MANIFEST)
        c.put_manifest(repo, "v1", index, oci.MEDIA_OCI_INDEX)
    img = Image(name=path, ref=f"{reg.host}/{path}:v1", digest=oci.sha256_digest(index))
    sign_image(img, signed.trusted)
    ctr_pull(gate_host.containerd, f"{reg.host}/{path}:low")
    localcontent.create_image(gate_host.containerd, img.ref, oci.MEDIA_OCI_INDEX, img.digest, len(index))
    localcontent.ingest(gate_host.containerd, index, children=[str(low["digest"])])
    r = wrapper(gate_host, "run", "--rm", img.ref)
    assert_refused(r, gate_host, rc=64, says="whose content is not here", within=QUICK)
    assert "pull the image again through the nerdctl wrapper" in r.stderr
