"""Hostile images and signature material, second round (``test_hostile`` has the first): what an attacker who
can push anything to a repository of the real registry, or load anything into the real containerd, makes
BACON read, decided through the `nerdctl` wrapper end to end, each with the control that the same path
admits the honest variant.

- An index that lists one nested index many times over, several levels deep: a few kilobytes whose full
  walk is tens of thousands of documents (containerd itself follows one entry per level).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from shim.images import oci
from shim.images import registry as registry_client
from tests.conftest import Host, Signed, sign_image
from tests.harness import images as images_h
from tests.harness import localcontent
from tests.harness.images import Image
from tests.harness.images import pull as ctr_pull
from tests.integration.refusals import audit_lines, configure, wrapper

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
