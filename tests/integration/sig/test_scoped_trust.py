"""Scoped signers through the wrapper (issue 15) against the real registry, containerd and cosign: a key
scoped to ``team/*`` up to ``Low`` admits ``team/app`` at ``Low`` only; a repository that requires the
release key refuses a team-key signature; a signature made by the real cosign is judged the same way."""

from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shim.images import registry as registry_client
from shim.trust import signatures, signing
from shim.trust.keys import load_signing_key
from tests.conftest import Host, KeyPair, Signed, make_keypair, sign_image
from tests.harness import images as images_h
from tests.integration.sig.conftest import CosignKeys
from tests.integration.sig.test_cosign_interop import cosign_sign

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.cosign]


@dataclass
class Scoped:
    host: Host
    team: KeyPair
    release: KeyPair
    suffix: str
    layout: Path  # the session's OCI layout of the harness images

    def push(self, name: str, repo: str, tag: str = "v1") -> images_h.Image:
        """The layout's ``name`` image at ``<registry>/<repo>-<suffix>:<tag>``, unsigned."""
        return images_h.push(self.layout, self.host.registry, name, repo_path=f"{repo}-{self.suffix}", tag=tag)


def write_scoped_config(host: Host, team: Path, release: Path, extra_keys: str = "", team_glob: str = "team/*") -> None:
    reg = host.registry.host
    host.write_config(
        f'level = "Mid"\nnerdctl = "{host.standin}"\nstate_dir = "{host.state_dir}"\n'
        f'audit_log = "{host.audit_log}"\n'
        "[trust]\nkeys = [\n"
        f'  {{ path = "{team}", name = "team", repositories = ["{reg}/{team_glob}"], max_level = "Low" }},\n'
        f'  {{ path = "{release}", name = "release", max_level = "High" }},\n' + extra_keys +
        "]\n"
        f'require = [{{ repositories = ["{reg}/prod/*"], signers = ["release"] }}]\n'
        f'[registry]\ninsecure = ["{reg}"]\n'
        '[levels.Mid]\nrequire = ["signature"]\n'
    )


@pytest.fixture
def scoped(host: Host, signed: Signed, tmp_path: Path) -> Scoped:
    keydir = Path(str(tmp_path)) / "keys"
    s = Scoped(host=host, team=make_keypair(keydir, "team"), release=make_keypair(keydir, "release"),
               suffix=secrets.token_hex(3), layout=signed.images.layout)
    write_scoped_config(host, s.team.public, s.release.public)
    return s


def pull(host: Host, image: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.wrapper, "pull", image], env=host.env(), capture_output=True, text=True, timeout=180)


def last_audit(host: Host) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(host.audit_log.read_text().splitlines()[-1])
    return line


def test_a_team_key_admits_its_repositories_up_to_its_level_only(scoped: Scoped) -> None:
    host, reg = scoped.host, scoped.host.registry.host
    team_low = scoped.push("low", "team/app", "low")
    team_mid = scoped.push("mid", "team/app", "mid")
    other_low = scoped.push("low", "other/app")
    for img in (team_low, team_mid, other_low):
        sign_image(img, scoped.team)

    ok = pull(host, team_low.ref)
    assert ok.returncode == 0, ok.stderr
    checks = {c["check"]: c for c in last_audit(host)["checks"]}
    assert checks["signature"]["signer"] == "team"
    assert checks["scope"]["passed"] is True

    other = pull(host, other_low.ref)
    assert other.returncode == 77, other.stderr
    first = other.stderr.splitlines()[0]
    assert first.startswith(f"bacon: denied: image {other_low.ref} digest {other_low.digest}"), first
    assert "check signature failed" in first
    assert "no signer whose scope covers this image" in first
    assert (f"signed by team (key {scoped.team.public}), whose scope ({reg}/team/* up to Low) does not cover "
            f"repository {reg}/other/app-{scoped.suffix}") in first

    mid = pull(host, team_mid.ref)  # the host's level (Mid) admits Mid: only the signer's scope refuses it
    assert mid.returncode == 77, mid.stderr
    first = mid.stderr.splitlines()[0]
    assert "check scope failed" in first, first
    assert (f"the image is level Mid, above what its signer team (key {scoped.team.public}) may vouch for "
            f"(scope {reg}/team/* up to Low)") in first
    assert last_audit(host)["failed_check"] == "scope"


def test_a_repository_that_requires_the_release_key_refuses_the_team_key(scoped: Scoped) -> None:
    host, reg = scoped.host, scoped.host.registry.host
    write_scoped_config(host, scoped.team.public, scoped.release.public, team_glob="**")  # team covers prod/ too
    prod = scoped.push("low", "prod/app")
    sign_image(prod, scoped.team)
    r = pull(host, prod.ref)
    assert r.returncode == 77, r.stderr
    assert (f"signed by team (key {scoped.team.public}), but {reg}/prod/* requires a signature by release"
            in r.stderr.splitlines()[0])

    sign_image(prod, scoped.release)  # now the release key has signed it as well
    ok = pull(host, prod.ref)
    assert ok.returncode == 0, ok.stderr
    sig = next(c for c in last_audit(host)["checks"] if c["check"] == "signature")
    assert sig["signer"] == "release"


def test_a_signature_made_by_the_real_cosign_is_scoped_the_same(scoped: Scoped, cosign_exe: str,
                                                                 cosign_keys: CosignKeys) -> None:
    host, reg = scoped.host, scoped.host.registry.host
    write_scoped_config(host, scoped.team.public, scoped.release.public,
                        f'  {{ path = "{cosign_keys.pub}", name = "ci", repositories = ["{reg}/ci/*"], '
                        'max_level = "Low" },\n')
    ci_low = scoped.push("low", "ci/app")
    elsewhere = scoped.push("low", "team/app")
    for img in (ci_low, elsewhere):
        cosign_sign(cosign_exe, cosign_keys, img.pinned)
    assert pull(host, ci_low.ref).returncode == 0
    r = pull(host, elsewhere.ref)
    assert r.returncode == 77
    assert f"signed by ci (key {cosign_keys.pub}), whose scope ({reg}/ci/* up to Low)" in r.stderr


def test_the_payloads_docker_reference_widens_no_scope(scoped: Scoped) -> None:
    """A team-key signature whose payload names ``team/app`` as its docker-reference, on an image in
    ``other/app``: the signature binds the digest (cosign checks no docker-reference either), and the scope
    is judged on the repository asked for, never on what the payload names."""
    img = scoped.push("low", "other/app")
    repo = registry_client.Repository.of(img.ref)
    key = load_signing_key(scoped.team.private.read_bytes(), "team")
    claimed = f"{scoped.host.registry.host}/team/app-{scoped.suffix}"
    payload = signatures.classic_payload(img.digest, claimed)
    manifest, config = signing.signature_manifest(None, payload, key.sign(payload))
    with registry_client.Client(insecure={repo.host}) as c:
        c.push_blob(repo, payload)
        c.push_blob(repo, config)
        c.put_manifest(repo, signatures.sig_tag(img.digest), manifest, "application/vnd.oci.image.manifest.v1+json")
    r = pull(scoped.host, img.ref)
    assert r.returncode == 77, r.stderr
    assert "no signer whose scope covers this image" in r.stderr
    # The control: the same signature for the image in the team repository it names is admitted.
    team_img = scoped.push("low", "team/app")
    sign_image(team_img, scoped.team)
    r = pull(scoped.host, team_img.ref)
    assert r.returncode == 0, r.stderr
