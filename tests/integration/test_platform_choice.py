"""Platform choice end to end (docs/platforms.md): real multi-platform indexes written to the real registry
(os.features, nested indexes, platform-less entries), signed, and run through the wrapper on a Low host.
The wrapper must decide on the manifest containerd's matcher takes and hand nerdctl that manifest's digest;
for a stored index it must check every manifest the matcher accepts.

Each index puts a ``Low`` and a ``High`` amd64 manifest where the old choice (strict equality, nested
indexes and features ignored) and containerd's differ, so a wrong choice shows as a wrong decision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.images import oci
from shim.images import registry as registry_client
from tests.conftest import Host, Signed, sign_image
from tests.harness import images as images_h
from tests.harness.images import pull as ctr_pull
from tests.integration.test_gate import assert_denied, audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

AMD64: dict[str, object] = {"os": "linux", "architecture": "amd64"}
EROFS: dict[str, object] = {**AMD64, "os.features": ["erofs"]}
NO_OS: dict[str, object] = {"architecture": "amd64"}


class Indexes:
    """Writes indexes over the harness's ``low`` and ``high`` manifests into fresh repositories."""

    def __init__(self, signed: Signed) -> None:
        self.signed = signed
        self.layout = signed.images.layout
        self.registry = signed.images.registry
        self.client = registry_client.Client(insecure={self.registry.host})
        self.n = 0

    def manifest(self, name: str) -> dict[str, object]:
        """The descriptor of harness image ``name`` (a single amd64 manifest)."""
        d = images_h._ref_descriptor(self.layout, name)
        return {"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"]}

    def put(self, repo_path: str, entries: list[tuple[dict[str, object], dict[str, object] | None]],
            tag: str | None = None) -> dict[str, object]:
        body = json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": [
            {**d, **({"platform": p} if p is not None else {})} for d, p in entries]}).encode()
        repo = registry_client.Repository(self.registry.host, repo_path)
        digest = self.client.put_manifest(repo, tag or oci.sha256_digest(body), body, oci.MEDIA_OCI_INDEX)
        return {"mediaType": oci.MEDIA_OCI_INDEX, "digest": digest, "size": len(body)}

    def repo(self) -> str:
        self.n += 1
        path = f"bacon/platforms{self.n}"
        for name in ("low", "high"):  # the manifests and their blobs, into this repository
            images_h.push(self.layout, self.registry, name, repo_path=path, tag=name)
        return path

    def signed_index(self, path: str, entries: list[tuple[dict[str, object], dict[str, object] | None]]
                     ) -> images_h.Image:
        top = self.put(path, entries, tag="v1")
        img = images_h.Image(name=path, ref=f"{self.registry.host}/{path}:v1", digest=str(top["digest"]))
        sign_image(img, self.signed.trusted)  # the index alone is signed
        return img


@pytest.fixture
def indexes(signed: Signed) -> Iterator[Indexes]:
    ix = Indexes(signed)
    yield ix
    ix.client.close()


def digest_of(ix: Indexes, name: str) -> str:
    return str(ix.manifest(name)["digest"])


def assert_admitted_and_pinned(r_rc: int, stderr: str, forwarded: list[list[str]], pin: str) -> None:
    assert r_rc == 0, stderr
    [fwd] = forwarded
    assert fwd[fwd.index("--") + 1] == pin, fwd


def test_plain_entry_is_taken_over_an_erofs_entry_listed_first(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("low"), EROFS), (indexes.manifest("high"), AMD64)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", img.ref)
    assert_denied(r, img.ref, "level")  # containerd takes the plain High entry, not the erofs Low one


def test_the_chosen_platform_manifest_is_what_nerdctl_is_handed(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("high"), EROFS), (indexes.manifest("low"), AMD64)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", img.ref)
    low = digest_of(indexes, "low")
    assert_admitted_and_pinned(r.rc, r.stderr, r.forwarded, f"{img.repo}@{low}")
    assert "hello-from-low" in r.stdout
    [line] = audit_lines(gate_host)
    assert line["digest"] == img.digest  # the signed index is what was verified
    rec = next((gate_host.state_dir / "admissions").glob("*.json"))
    assert json.loads(rec.read_text())["index_digest"] == img.digest


def test_erofs_entry_is_taken_when_it_is_the_only_one(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("low"), EROFS)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", img.ref)
    assert_admitted_and_pinned(r.rc, r.stderr, r.forwarded, f"{img.repo}@{digest_of(indexes, 'low')}")


def test_nested_index_is_walked_into(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    inner = indexes.put(path, [(indexes.manifest("high"), AMD64)])
    img = indexes.signed_index(path, [(inner, AMD64), (indexes.manifest("low"), AMD64)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", img.ref)
    assert_denied(r, img.ref, "level")  # containerd walks into the nested index first: High


def test_entry_with_no_os_is_the_hosts(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("low"), NO_OS), (indexes.manifest("high"), AMD64)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", img.ref)
    assert_admitted_and_pinned(r.rc, r.stderr, r.forwarded, f"{img.repo}@{digest_of(indexes, 'low')}")


def test_platform_less_entry_sorts_last(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("high"), None), (indexes.manifest("low"), AMD64)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", img.ref)
    assert_admitted_and_pinned(r.rc, r.stderr, r.forwarded, f"{img.repo}@{digest_of(indexes, 'low')}")


def test_platform_spec_with_features_is_understood(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("low"), EROFS), (indexes.manifest("high"), AMD64)])
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", "--platform=linux(+erofs)/amd64", img.ref)
    assert_admitted_and_pinned(r.rc, r.stderr, r.forwarded, f"{img.repo}@{digest_of(indexes, 'low')}")
    r = nerdctl(gate_host, "run", "--rm", "--pull=always", "--platform=linux(5.15)", img.ref)
    assert_denied(r, img.ref, "level")  # an OS alone: the host's architecture, the plain High entry


def test_start_after_a_pinned_run_checks_the_signed_index(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("high"), EROFS), (indexes.manifest("low"), AMD64)])
    r = nerdctl(gate_host, "create", "--pull=always", "--name", f"plat-{indexes.n}", img.ref)
    assert r.rc == 0, r.stderr
    r = nerdctl(gate_host, "start", f"plat-{indexes.n}")
    assert r.rc == 0, r.stderr


def test_stored_index_every_manifest_the_matcher_accepts_must_pass(gate_host: Host, indexes: Indexes,
                                                                   tmp_path: Path) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("low"), AMD64), (indexes.manifest("high"), AMD64)])
    gate_host.containerd.ctr("images", "pull", "--plain-http", "--all-platforms", img.ref)
    r = nerdctl(gate_host, "run", "--rm", img.ref)
    # containerd takes the first (Low) here, but the stored index is forwarded by its digest and chosen
    # again by nerdctl: the High one it also accepts must pass too.
    assert_denied(r, img.ref, "level")
    assert "High" in r.stderr


def test_stored_index_with_one_accepted_manifest_runs(gate_host: Host, indexes: Indexes) -> None:
    path = indexes.repo()
    img = indexes.signed_index(path, [(indexes.manifest("low"), AMD64),
                                      (indexes.manifest("high"), {"os": "linux", "architecture": "arm64"})])
    ctr_pull(gate_host.containerd, img)
    r = nerdctl(gate_host, "run", "--rm", img.ref)
    assert_admitted_and_pinned(r.rc, r.stderr, r.forwarded, img.digest)
    assert "hello-from-low" in r.stdout
