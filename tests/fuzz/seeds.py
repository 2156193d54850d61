"""Write the seed corpus of every fuzz target into ``tests/fuzz/corpus/<target>/seed-*``.

``python -m tests.fuzz.seeds [--force]`` (from the repository root) writes the missing ``seed-*``
files (``--force``: all of them); inputs the fuzzers found (``found-*``, ``crash-*``) are kept. The
seeds come from the real vectors in ``tests/vectors`` and from the argv grammar table; signatures are
made with the fixed fuzz key, so the saved ones keep verifying.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shim.images import oci
from shim.trust import signatures, signing
from tests.fuzz import targets
from tests.fuzz.targets import SEP, VECTORS

D = "sha256:" + "ab" * 32


def _argv() -> list[bytes]:
    from tests.unit.wrapper.argv.test_table import CASES

    out = [b"\x00".join(a.encode("utf-8", "surrogateescape") for a in c[1]) for c in CASES]
    out.append("\x00".join(["run", "--mount", "type=image,source=alpine,target=/m", "-it", "busybox", "sh"]).encode())
    out.append("\x00".join(["--namespace=x", "container", "create", "--platform=linux/arm64", "alpine"]).encode())
    return out


def _reference() -> list[bytes]:
    refs = ["alpine", "busybox:1.36", "127.0.0.1:5000/app:1", "127.0.0.1:5000/team/app@" + D,
            "docker.io/library/alpine:latest@" + D, "index.docker.io/x/y", "localhost/x", "[::1]:5000/a/b:tag",
            "a.b_c/d", "Foo/bar", "ALPINE", D, "ab" * 32, "abc123", "sha512:" + "0" * 128,
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "ipfs://x", "oci-archive:///a.tar",
            "a" * 256, "a/" * 40 + "b", "x:" + "t" * 129]
    return [r.encode() for r in refs]


def _oci() -> list[bytes]:
    def desc(mt: str, **kw: object) -> dict[str, object]:
        return {"mediaType": mt, "digest": D, "size": 10, **kw}

    manifest = {"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
                "config": desc("application/vnd.oci.image.config.v1+json"),
                "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", annotations={"a": "b"})],
                "subject": desc(oci.MEDIA_OCI_MANIFEST), "annotations": {"k": "v"}}
    index = {"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": [
        desc(oci.MEDIA_OCI_MANIFEST, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        desc(oci.MEDIA_DOCKER_MANIFEST, platform={"os": "linux", "architecture": "amd64"})]}
    docs = [json.dumps(manifest).encode(), json.dumps(index).encode()]
    for label in ("High", "Mid", "Low", "high", "H\u0456gh", " Low", "Low\u200b"):
        docs.append(json.dumps({"architecture": "amd64", "os": "linux",
                                "config": {"Labels": {"policy": label, "other": "x"}}}).encode())
    docs.append(b'{"config":{"Labels":{"policy":"Low","policy":"High"}}}')
    docs.append(b'{"config":{"Labels":{"policy":"Low"},"labels":{"policy":"High"}}}')
    docs.append(b'{"config":{"Labels":{"policy":"Low"}},"Config":{"Labels":{"policy":"High"}}}')
    docs.append(b'{"config":{"Labels":null}}')
    docs.append(b"[" * 50 + b"]" * 50)
    return docs


def _signature() -> list[bytes]:
    from tests.harness.sigimages import make_bundle

    key = targets.fuzz_signing_key()
    manifest, _ = signing.signature_manifest(None, targets.CLASSIC_PAYLOAD, key.sign(targets.CLASSIC_PAYLOAD))
    bundle = make_bundle(key, targets.SIG_DIGEST, payload=targets.STATEMENT)
    other = signatures.classic_payload("sha256:" + "00" * 32, targets.SIG_REPO)
    wrong, _ = signing.signature_manifest(None, other, key.sign(other))
    referrers = json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": [
        {"mediaType": oci.MEDIA_OCI_MANIFEST, "digest": D, "size": 10, "artifactType": signatures.BUNDLE_MEDIA_TYPE}]})
    return [b"\x00" + manifest + SEP + targets.CLASSIC_PAYLOAD, b"\x01" + bundle, b"\x00" + wrong + SEP + other,
            b"\x02" + referrers.encode()]


def _tpm() -> list[bytes]:
    from tests.unit.attest.tpm.test_attest import NONCE, PCRS, craft_quote, ec_key, pem

    message, sig, ak, _, _ = targets.tpm_evidence()
    m2, s2 = craft_quote(NONCE, PCRS)
    return [message + SEP + sig + SEP + ak, message + SEP + sig, m2 + SEP + s2 + SEP + pem(ec_key())]


def _eventlog() -> list[bytes]:
    return [(VECTORS / "tpm" / "event-sd-boot-fedora37.bin").read_bytes()]


def _ccel() -> list[bytes]:
    return [(VECTORS / "tdx" / "ccel_data.dat").read_bytes()[:18432]]  # every event, a little padding


def _tdx() -> list[bytes]:
    d = VECTORS / "tdx"
    return [b"\x00" + (d / "tdx_quote").read_bytes(), b"\x00" + (d / "tdx_quote_outdated").read_bytes(),
            b"\x00" + (d / "cos-113-tdx-quote.dat").read_bytes(),
            b"\x01" + (d / "tdx_quote_collateral.json").read_bytes()]


SEEDS = {"argv": _argv, "reference": _reference, "oci": _oci, "signature": _signature, "tpm": _tpm,
         "eventlog": _eventlog, "ccel": _ccel, "tdx": _tdx}


def write(root: Path = targets.CORPUS, *, force: bool = False) -> None:
    """Write missing seeds (all of them with ``force``: ECDSA signatures differ at every run)."""
    for name, make in SEEDS.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(make()):
            path = d / f"seed-{i:03d}"
            if force or not path.exists():
                path.write_bytes(data)


if __name__ == "__main__":
    write(force="--force" in sys.argv[1:])
    sys.exit(0)
