"""The admission gate end to end: the `nerdctl` wrapper against the real containerd, registry and images,
with the nerdctl stand-in recording what it is handed (and really running the containers through ctr).

For every kind of image (signed / unsigned / untrusted key / tag moved after signing / label above the
system level / malformed label / missing label) and every way in (`pull`, `run` of a local image,
`run --pull=always`, `create` + `start`), the decision is right, and the stand-in receives a pinned argv
or nothing at all.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.harness.images import Image
from tests.harness.images import pull as ctr_pull
from tests.integration.otherfs_fixture import otherfs  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    forwarded: list[list[str]]

    @property
    def first_line(self) -> str:
        return self.stderr.splitlines()[0] if self.stderr else ""


def nerdctl(host: Host, *args: str, timeout: float = 120) -> Result:
    before = host.calls.read_text().splitlines() if host.calls.exists() else []
    r = subprocess.run([*host.wrapper, *args], env=host.env(), capture_output=True, text=True, timeout=timeout)
    after = host.calls.read_text().splitlines() if host.calls.exists() else []
    calls = [json.loads(line)["argv"][1:] for line in after[len(before):]]
    return Result(r.returncode, r.stdout, r.stderr, calls)


def audit_lines(host: Host) -> list[dict[str, object]]:
    if not host.audit_log.exists():
        return []
    return [json.loads(line) for line in host.audit_log.read_text().splitlines()]


def assert_denied(r: Result, image: str, check: str, digest: str | None = None) -> None:
    assert r.rc == 77, (r.rc, r.stderr)
    assert r.first_line.startswith("bacon: denied: "), r.stderr
    assert image in r.first_line, r.first_line
    assert f"check {check} failed" in r.first_line, r.first_line
    if digest:
        assert digest in r.first_line, r.first_line
    assert r.forwarded == [], "a denied command must not reach nerdctl"


def g(host: Host) -> list[str]:
    return [f"--address={host.containerd.socket}", "--namespace=default"]


# -- admissions ---------------------------------------------------------------------------------------

def test_run_local_signed_low_image_is_admitted_pinned_and_runs(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    r = nerdctl(gate_host, "run", "--rm", img.ref)
    assert r.rc == 0, r.stderr
    assert "hello-from-low" in r.stdout  # the container really ran
    [fwd] = r.forwarded
    assert fwd[:2] == g(gate_host)
    assert fwd[2] == "run"
    assert "--pull=never" in fwd
    assert fwd[fwd.index("--") + 1] == img.digest  # pinned: nerdctl cannot pick anything else
    assert any(a.startswith("--label=bacon/admission=") for a in fwd)
    [line] = audit_lines(gate_host)
    assert line["verdict"] == "admitted"
    assert line["digest"] == img.digest
    assert line["level"] == "Low"


def test_run_multi_platform_index_checks_index_and_runs_host_manifest(gate_host: Host, signed: Signed) -> None:
    img = signed["multi"]
    r = nerdctl(gate_host, "run", "--rm", img.ref)
    assert r.rc == 0, r.stderr
    assert "hello-from-low" in r.stdout
    assert r.forwarded[0][-1] == img.digest


def test_run_pull_always_resolves_at_the_registry(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    r = nerdctl(gate_host, "run", "--pull=always", "--rm", img.ref)
    assert r.rc == 0, r.stderr
    [fwd] = r.forwarded
    assert "--pull=missing" in fwd
    assert fwd[fwd.index("--") + 1] == img.pinned


def test_pull_then_run_offline_from_kept_signatures(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    r = nerdctl(gate_host, "pull", img.ref)
    assert r.rc == 0, r.stderr
    assert r.forwarded[0][-2:] == ["--", img.pinned]
    assert r.forwarded[1][-3:] == ["tag", img.pinned, img.ref]  # the tag now points at what was checked
    gate_host.registry.stop()
    try:
        r = nerdctl(gate_host, "run", "--rm", img.ref)
        assert r.rc == 0, r.stderr
        assert "hello-from-low" in r.stdout
    finally:
        restart_registry(gate_host)


def restart_registry(host: Host) -> None:
    from tests.harness import proc

    reg = host.registry
    reg.process = proc.start(list(reg.process.args), reg.log)  # type: ignore[arg-type]
    proc.wait_for(reg.alive, "docker-registry", proc=reg.process, log=reg.log)


def test_create_then_start(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    r = nerdctl(gate_host, "create", "--name", "gate-create-start", img.ref)
    assert r.rc == 0, r.stderr
    cid = r.stdout.strip().splitlines()[-1]
    r = nerdctl(gate_host, "start", "gate-create-start")
    assert r.rc == 0, r.stderr
    # the full ID that was checked, not the name (a rename before nerdctl's lookup would swap the container)
    assert r.forwarded[0][-2:] == ["--", cid]
    verdicts = [line["verdict"] for line in audit_lines(gate_host)]
    assert verdicts == ["admitted", "admitted"]


# -- denials ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "check"), [
    ("unsigned", "signature"), ("untrusted", "signature"), ("moved", "signature"),
    ("nolabel", "level"), ("badlabel", "level"), ("lookalike", "level"), ("high", "level"), ("mid", "level"),
])
def test_denied_on_pull(gate_host: Host, signed: Signed, name: str, check: str) -> None:
    img = signed[name]
    r = nerdctl(gate_host, "pull", img.ref)
    assert_denied(r, img.ref, check, img.digest)
    [line] = audit_lines(gate_host)
    assert line["verdict"] == "denied"
    assert line["failed_check"] == check


@pytest.mark.parametrize(("name", "check"), [
    ("unsigned", "signature"), ("untrusted", "signature"), ("moved", "signature"),
    ("nolabel", "level"), ("badlabel", "level"), ("lookalike", "level"), ("high", "level"),
])
@pytest.mark.parametrize("how", ["local", "always"])
def test_denied_on_run(gate_host: Host, signed: Signed, name: str, check: str, how: str) -> None:
    img = signed[name]
    if how == "local":
        ctr_pull(gate_host.containerd, img)
        r = nerdctl(gate_host, "run", "--rm", img.ref)
    else:
        r = nerdctl(gate_host, "run", "--pull=always", "--rm", img.ref)
    assert_denied(r, img.ref, check, img.digest)


def test_lookalike_label_is_shown_with_its_code_points(gate_host: Host, signed: Signed) -> None:
    r = nerdctl(gate_host, "pull", signed["lookalike"].ref)
    assert "U+0456" in r.stderr


def test_start_of_a_container_created_behind_the_wrappers_back(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    gate_host.containerd.ctr("containers", "create", "--label", "nerdctl/name=sneaky", img.ref, "sneaky-id-1")
    try:
        r = nerdctl(gate_host, "start", "sneaky")
        assert_denied(r, img.ref, "record")
    finally:
        gate_host.containerd.ctr("containers", "rm", "sneaky-id-1", check=False)


def test_restart_forwards_the_ids_it_checked(gate_host: Host, signed: Signed) -> None:
    ids = []
    for name in ("gate-ids-a", "gate-ids-b"):
        r = nerdctl(gate_host, "create", "--name", name, signed["low"].ref)
        assert r.rc == 0, r.stderr
        ids.append(r.stdout.strip().splitlines()[-1])
    r = nerdctl(gate_host, "restart", "gate-ids-a", ids[1][:12])
    assert r.rc == 0, r.stderr
    assert r.forwarded[0][-3:] == ["--", *ids]
    for cid in ids:
        gate_host.containerd.ctr("tasks", "rm", "-f", cid, check=False)
        gate_host.containerd.ctr("containers", "rm", cid, check=False)


def test_start_of_a_recorded_container_over_other_content_is_denied(gate_host: Host, signed: Signed,
                                                                    otherfs: Image) -> None:  # noqa: F811
    """What a `create` that lost a race leaves (a name moved between the check and nerdctl's lookup): the
    record of the checked digest on a container whose rootfs holds other layers. Before, the record alone
    admitted its start. (Content with the same layers and another configuration is not caught here:
    see shim.admission.finding.pinned.)"""
    r = nerdctl(gate_host, "create", "--name", "gate-holder", signed["low"].ref)
    assert r.rc == 0, r.stderr
    holder = r.stdout.strip().splitlines()[-1]
    info = json.loads(gate_host.containerd.ctr("containers", "info", holder).stdout)
    token = info["Labels"]["bacon/admission"]
    gate_host.containerd.ctr("containers", "create", "--label", "nerdctl/name=gate-raced", "--label",
                             f"bacon/admission={token}", otherfs.ref, "gate-raced-1")
    try:
        r = nerdctl(gate_host, "start", "gate-raced")
        assert r.rc == 77, r.stderr
        assert "check rootfs failed" in r.first_line, r.stderr
        assert r.forwarded == []
    finally:
        gate_host.containerd.ctr("containers", "rm", holder, "gate-raced-1", check=False)


def test_forged_admission_label_is_refused(gate_host: Host, signed: Signed) -> None:
    r = nerdctl(gate_host, "run", "--label", "bacon/admission=" + "0" * 32, "--rm", signed["low"].ref)
    assert_denied(r, signed["low"].ref, "argv")


def test_start_after_level_lowered_is_denied(gate_host: Host, signed: Signed) -> None:
    img = signed["low"]
    r = nerdctl(gate_host, "create", "--name", "gate-level-drop", img.ref)
    assert r.rc == 0, r.stderr
    trusted_config(gate_host, signed.trusted, extra='[levels.Low]\nrequire = ["signature", "tpm"]\n')
    r = nerdctl(gate_host, "start", "gate-level-drop")
    assert_denied(r, img.ref, "tpm")


def test_forged_local_name_cannot_divert_the_pinned_lookup(gate_host: Host, signed: Signed) -> None:
    low, high = signed["low"], signed["high"]
    # A record *named* like the digest we pin to, pointing at other content (what `nerdctl tag` allows).
    gate_host.containerd.ctr("images", "tag", "--force", high.ref, f"docker.io/library/{low.digest}")
    try:
        r = nerdctl(gate_host, "run", "--rm", low.ref)
        assert_denied(r, low.ref, "image")
        assert "forged" in r.stderr or "point elsewhere" in r.stderr
    finally:
        gate_host.containerd.ctr("images", "rm", f"docker.io/library/{low.digest}", check=False)


def test_missing_config_is_a_clear_error(gate_host: Host, signed: Signed, tmp_path: Path) -> None:
    r = subprocess.run([*gate_host.wrapper, "images"], env=gate_host.env(BACON_CONFIG=str(tmp_path / "no.toml")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78
    assert "does not exist" in r.stderr


# -- forwarding and refusals ----------------------------------------------------------------------------

def test_version_and_images_are_forwarded_to_the_real_nerdctl(gate_host: Host, signed: Signed) -> None:
    r = nerdctl(gate_host, "version")
    assert r.rc == 0, r.stderr
    assert "stand-in" in r.stdout
    assert "Server:" in r.stdout
    assert r.forwarded == [["version"]]
    r = nerdctl(gate_host, "--namespace", "default", "images")
    assert r.rc == 0, r.stderr
    assert signed["low"].ref in r.stdout
    assert r.forwarded == [["--namespace=default", "images"]]
    assert audit_lines(gate_host) == []  # forwarding decides nothing


def test_real_nerdctls_exit_status_is_passed_through(gate_host: Host) -> None:
    r = nerdctl(gate_host, "rm", "no-such-container")
    assert r.rc == 1
    assert r.forwarded == [["rm", "no-such-container"]]


@pytest.mark.parametrize("args", [
    ["compose", "up"],
    ["run", "--rootfs", "/tmp", "/bin/sh"],
    ["run", "oci-archive:///tmp/x.tar"],
    ["pull", "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"],
    ["frobnicate"],
    ["run", "--no-such-flag", "alpine"],
])
def test_refusals_forward_nothing(gate_host: Host, args: list[str]) -> None:
    r = nerdctl(gate_host, *args)
    assert r.rc in (64, 77), (r.rc, r.stderr)
    assert r.stderr.startswith("bacon: "), r.stderr
    assert r.forwarded == []


def test_a_global_flag_that_swallows_the_next_token_is_parsed_as_nerdctl_does(gate_host: Host, signed: Signed) -> None:
    # `--bridge-ip images` is a flag and its value: the command is `run`, which is gated, not `images`.
    # (--bridge-ip is accepted only with a value the configuration names: see test_profiles.py)
    trusted_config(gate_host, signed.trusted, extra='[global_flags]\nbridge_ip = ["images"]\n')
    r = nerdctl(gate_host, "--bridge-ip", "images", "run", "--rm", signed["low"].ref)
    assert r.rc == 0, r.stderr
    [fwd] = r.forwarded
    assert "--bridge-ip=images" in fwd
    assert fwd[fwd.index("--bridge-ip=images") + 1:][2] == "run"
    assert fwd[-1] == signed["low"].digest
