"""The runtime gate (the second layer) end to end: a private containerd whose runc shim finds BACON's
``runc`` launcher first on its PATH, the real runc behind it, images from the harness registry, and
clients that are not the wrapper (``ctr``) as well as the wrapper (through the nerdctl stand-in)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Host, Signed, make_host, trusted_config
from tests.harness import images as images_h
from tests.harness import otherfs as otherfs_h
from tests.harness import runtime as runtime_h
from tests.harness.containerd import Containerd
from tests.harness.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


@dataclass
class Gated:
    host: Host
    containerd: Containerd
    otherfs: images_h.Image
    launcher: Path  # BACON's runc launcher, first on containerd's PATH

    def configure(self, signed: Signed, level: str = "Mid", runtime: str = "") -> None:
        trusted_config(self.host, signed.trusted, level=level,
                       extra=f'[runtime]\nrunc = "/usr/sbin/runc"\n{runtime}')

    def audit(self) -> list[dict[str, Any]]:
        log = self.host.audit_log
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def runtime_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.audit() if line.get("layer") == "runtime"]


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, registry: Registry, signed: Signed) -> Iterator[Gated]:
    root = Path(str(tmp_path_factory.mktemp("rt")))
    # Short socket paths: a unix socket path is at most 108 bytes.
    work = Path(f"/tmp/bacon-rt-{secrets.token_hex(3)}")
    work.mkdir()
    c = None
    try:
        config = root / "host" / "etc" / "config.toml"
        launcher = runtime_h.install_launcher(work / "bin", config)
        c = runtime_h.start(work, work / "bin")
        host = make_host(root / "host", c, registry, level="Mid")
        assert host.config == config
        for name in ("low", "unsigned", "high"):
            images_h.pull(c, signed[name])
        other = otherfs_h.build_and_push(signed.images.layout, work, registry, name="otherfs-rt")
        images_h.pull(c, other)
        yield Gated(host=host, containerd=c, otherfs=other, launcher=launcher)
    finally:
        if c is not None:
            c.stop()
        runtime_h.remove(work)


def ctr(g: Gated, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    r = g.containerd.ctr(*args, check=False, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def assert_refused(g: Gated, rc: int, err: str, check: str, cid: str) -> dict[str, Any]:
    assert rc != 0, err
    assert "bacon: denied:" in err, err
    assert f"check {check} failed" in err, err
    line = g.runtime_lines()[-1]
    assert line["verdict"] == "denied", line
    assert line["failed_check"] == check, line
    assert line["container"] == cid, line
    # Nothing left running: the shim removed the task it could not create.
    assert cid not in ctr(g, "tasks", "ls")[1]
    return line


def _wrapper_create(g: Gated, name: str, ref: str) -> tuple[str, str]:
    """``nerdctl create`` through the wrapper: the container's ID and its admission record's token."""
    import subprocess

    h = g.host
    r = subprocess.run([*h.wrapper, "create", "--name", name, ref], env=h.env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip().splitlines()[-1]
    return cid, json.loads(ctr(g, "containers", "info", cid)[1])["Labels"]["bacon/admission"]


def test_ctr_run_of_an_unsigned_image_is_refused(gated: Gated, signed: Signed) -> None:
    gated.configure(signed)
    rc, out, err = ctr(gated, "run", "--rm", signed["unsigned"].ref, "rt-unsigned", "/bin/echo", "ran")
    assert "ran" not in out
    assert_refused(gated, rc, err, "signature", "rt-unsigned")
    assert "rt-unsigned" not in ctr(gated, "containers", "ls")[1]


def test_ctr_run_of_a_signed_low_image_on_a_mid_host_runs(gated: Gated, signed: Signed) -> None:
    gated.configure(signed, level="Mid")
    rc, out, err = ctr(gated, "run", "--rm", signed["low"].ref, "rt-low", "/bin/echo", "ran-under-gate")
    assert rc == 0, err
    assert "ran-under-gate" in out
    line = gated.runtime_lines()[-1]
    assert line["verdict"] == "admitted", line
    assert line["how"] == "admission", line
    assert [c["check"] for c in line["checks"]] == ["signature", "level"], line


def test_ctr_run_of_an_image_above_the_host_level_is_refused(gated: Gated, signed: Signed) -> None:
    gated.configure(signed, level="Mid")
    rc, _, err = ctr(gated, "run", "--rm", signed["high"].ref, "rt-high", "/bin/true")
    assert_refused(gated, rc, err, "level", "rt-high")


def test_a_signed_images_name_over_another_images_rootfs_is_refused(gated: Gated, signed: Signed) -> None:
    gated.configure(signed)
    low = signed["low"]
    alias = f"{low.repo}:rt-retagged"
    ctr(gated, "images", "tag", "--force", gated.otherfs.ref, alias)
    try:
        assert ctr(gated, "containers", "create", alias, "rt-retagged")[0] == 0
        ctr(gated, "images", "tag", "--force", low.ref, alias)  # the name now points at signed content
        rc, _, err = ctr(gated, "tasks", "start", "rt-retagged")
        assert_refused(gated, rc, err, "rootfs", "rt-retagged")
    finally:
        ctr(gated, "containers", "rm", "rt-retagged")
        ctr(gated, "images", "rm", alias)


def test_a_wrapper_admitted_container_runs_on_its_record(gated: Gated, signed: Signed) -> None:
    import subprocess

    gated.configure(signed)
    h = gated.host
    r = subprocess.run([*h.wrapper, "run", "--rm", signed["low"].ref], env=h.env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "hello-from-low" in r.stdout
    wrapper_line, runtime_line = [line for line in gated.audit() if line.get("verdict") == "admitted"][-2:]
    assert wrapper_line["layer"] == "wrapper", wrapper_line
    assert runtime_line["layer"] == "runtime", runtime_line
    assert runtime_line["how"] == "record", runtime_line
    # No second full admission: the only check at the runtime is the wrapper's record.
    assert [c["check"] for c in runtime_line["checks"]] == ["record"], runtime_line
    assert runtime_line["digest"] == signed["low"].digest


def test_a_copied_admission_label_does_not_admit_another_container(gated: Gated, signed: Signed) -> None:
    gated.configure(signed)
    orig, token = _wrapper_create(gated, "rt-orig", signed["low"].ref)
    assert ctr(gated, "tasks", "start", orig)[0] == 0  # binds the record to this container
    try:
        # Another client copies the label onto a container of unsigned content.
        ctr(gated, "containers", "create", "--label", f"bacon/admission={token}", signed["unsigned"].ref, "rt-copy")
        rc, _, err = ctr(gated, "tasks", "start", "rt-copy")
        assert_refused(gated, rc, err, "record", "rt-copy")
    finally:
        ctr(gated, "tasks", "rm", "-f", orig)
        ctr(gated, "containers", "rm", orig, "rt-copy")


def test_a_recorded_container_over_other_content_is_refused(gated: Gated, signed: Signed) -> None:
    """What a `run` that lost a race would leave: the wrapper's record (for the signed digest) on a container
    whose rootfs nerdctl made from other layers, because a name moved between the check and its lookup.
    Before, the record alone admitted it."""
    gated.configure(signed)
    holder, token = _wrapper_create(gated, "rt-holder", signed["low"].ref)
    try:
        ctr(gated, "containers", "create", "--label", f"bacon/admission={token}", gated.otherfs.ref, "rt-raced")
        rc, _, err = ctr(gated, "tasks", "start", "rt-raced")
        assert_refused(gated, rc, err, "rootfs", "rt-raced")
    finally:
        ctr(gated, "containers", "rm", holder, "rt-raced")


def test_a_root_outside_the_bundle_is_refused(gated: Gated, signed: Signed, tmp_path: Path) -> None:
    gated.configure(signed)
    hostdir = tmp_path / "hostroot"
    (hostdir / "bin").mkdir(parents=True)
    rc, _, err = ctr(gated, "run", "--rm", "--rootfs", str(hostdir), "rt-rootfs", "/bin/true")
    assert_refused(gated, rc, err, "spec", "rt-rootfs")


def test_a_gate_that_cannot_reach_containerd_refuses(gated: Gated, signed: Signed) -> None:
    gated.configure(signed, runtime='containerd = "/nonexistent/containerd.sock"\n')
    rc, _, err = ctr(gated, "run", "--rm", signed["low"].ref, "rt-nocontainerd", "/bin/true")
    assert_refused(gated, rc, err, "runtime", "rt-nocontainerd")


def test_ctr_run_privileged_of_a_signed_image_is_refused_under_baseline(gated: Gated, signed: Signed) -> None:
    gated.configure(signed)  # no profile configured: baseline
    rc, out, err = ctr(gated, "run", "--rm", "--privileged", signed["low"].ref, "rt-priv", "/bin/echo", "ran")
    assert "ran" not in out
    line = assert_refused(gated, rc, err, "profile", "rt-priv")
    assert "privileged" in str(line["reason"]), line
    assert "profile baseline" in err, err


def test_ctr_run_net_host_is_refused_and_a_privileged_level_admits_it(gated: Gated, signed: Signed) -> None:
    gated.configure(signed)
    rc, _, err = ctr(gated, "run", "--rm", "--net-host", signed["low"].ref, "rt-nethost", "/bin/true")
    assert_refused(gated, rc, err, "profile", "rt-nethost")
    gated.configure(signed, runtime='[levels.Low]\nrequire = ["signature"]\nprofile = "privileged"\n')
    rc, out, err = ctr(gated, "run", "--rm", "--net-host", signed["low"].ref, "rt-nethost2", "/bin/echo", "ran")
    assert rc == 0, err
    assert "ran" in out


@pytest.fixture
def tpm_for_gated(tmp_path: Path) -> Iterator[Any]:
    from tests.harness import swtpm as swtpm_h

    if swtpm_h.binary() is None:
        pytest.skip("swtpm is not installed (apt-get install swtpm)")
    t = swtpm_h.start(Path(str(tmp_path)), "swtpm")
    yield t
    t.stop()


@pytest.mark.swtpm
def test_a_launch_admitted_at_the_runtime_is_measured_before_runc_runs(gated: Gated, signed: Signed,
                                                                       tpm_for_gated: Any) -> None:
    from shim.attest import cel, launchlog, launchreplay
    from tests.integration.test_measured_launch import pcr_value

    tpm = tpm_for_gated
    gated.configure(signed, runtime=f'[tpm]\ntcti = "{tpm.tcti}"\n[measure]\ninto = ["tpm"]\n')
    log = launchlog.log_path(gated.host.state_dir)
    log.unlink(missing_ok=True)
    rc, out, err = ctr(gated, "run", "--rm", signed["low"].ref, "rt-measured", "/bin/echo", "measured-ran")
    assert rc == 0, err
    assert "measured-ran" in out
    parsed = cel.parse(log.read_bytes())
    rep = launchreplay.replay(launchreplay.decode(parsed.records), cel.PCR, 14, "sha256", bytes(32), pcr_value(tpm))
    (event,) = [e.event for e in rep.launched]
    assert event.source == "runtime"
    assert event.digest == signed["low"].digest
    assert event.container_id == "rt-measured"
    assert event.profile == "baseline"  # the profile its level runs under
    assert event.argv[0] == "runc"
    assert gated.runtime_lines()[-1]["measured"]


def test_the_gate_asks_bacon_serve_when_it_listens(gated: Gated, signed: Signed) -> None:
    from tests.integration.test_service import Served

    served = Served(gated.host)
    gated.configure(signed, runtime=f'[service]\nsocket = "{served.socket}"\n')
    served.start()
    try:
        rc, out, err = ctr(gated, "run", "--rm", signed["low"].ref, "rt-served", "/bin/echo", "served-ran")
        assert rc == 0, err
        assert "served-ran" in out
        assert served.requests() == 1
        line = gated.runtime_lines()[-1]
        assert line["verdict"] == "admitted", line
        assert line["how"] == "admission", line
        rc, _, err = ctr(gated, "run", "--rm", signed["unsigned"].ref, "rt-served-no", "/bin/true")
        assert_refused(gated, rc, err, "signature", "rt-served-no")
        assert served.requests() == 2
        # A worker imported everything these decisions use before its request came (server.PRELOAD).
        imported = [e["modules"] for e in served.events() if e["event"] == "imported while deciding"]
        assert imported == [], imported
    finally:
        served.stop()
    # Nothing listens any more: the gate decides in its own process, the same way.
    rc, _, err = ctr(gated, "run", "--rm", signed["unsigned"].ref, "rt-unserved", "/bin/true")
    assert_refused(gated, rc, err, "signature", "rt-unserved")


def test_a_copied_label_on_other_content_is_refused_even_before_the_admitted_container_starts(
        gated: Gated, signed: Signed) -> None:
    gated.configure(signed)
    victim, token = _wrapper_create(gated, "rt-victim", signed["low"].ref)
    try:
        # Another client copies the fresh label onto a container of other content and starts it first.
        ctr(gated, "containers", "create", "--label", f"bacon/admission={token}", gated.otherfs.ref, "rt-thief")
        rc, _, err = ctr(gated, "tasks", "start", "rt-thief")
        assert_refused(gated, rc, err, "rootfs", "rt-thief")
        # The record was not claimed: the container the wrapper admitted still runs on it.
        rc, _, err = ctr(gated, "tasks", "start", victim)
        assert rc == 0, err
    finally:
        ctr(gated, "tasks", "rm", "-f", victim)
        ctr(gated, "containers", "rm", victim, "rt-thief")


def _record_path(g: Gated, token: str) -> Path:
    return g.host.state_dir / "admissions" / f"{token}.json"


def test_the_wrapper_keeps_the_checked_layers_in_its_record(gated: Gated, signed: Signed) -> None:
    from shim.images import rootfs
    from shim.images.containerd import Client
    from shim.wrapper.nerdctl_env import Target

    gated.configure(signed)
    cid, token = _wrapper_create(gated, "rt-layers", signed["low"].ref)
    try:
        client = Client(Target(address=str(gated.containerd.socket), namespace="default"))
        try:
            config = client.read_blob(client.resolve_image(signed["low"].ref).config_digest, 1 << 20)
        finally:
            client.close()
        kept = json.loads(_record_path(gated, token).read_text())["layers"]
        assert kept == list(rootfs.layer_chain(config))
        assert kept, "the image has layers"
    finally:
        ctr(gated, "containers", "rm", cid)


def test_a_wrapper_admitted_container_is_checked_on_its_kept_layers_without_its_image(
        gated: Gated, signed: Signed) -> None:
    """The record's layers are what the gate checks: the image need not be resolved again (here it is gone,
    which the gate used to refuse), and the container still passes only on those layers."""
    gated.configure(signed)
    cid, _ = _wrapper_create(gated, "rt-noimage", signed["low"].ref)
    try:
        ctr(gated, "images", "rm", signed["low"].ref)
        rc, _, err = ctr(gated, "tasks", "start", cid)
        assert rc == 0, err
        line = gated.runtime_lines()[-1]
        assert (line["verdict"], line["how"], line["container"]) == ("admitted", "record", cid), line
    finally:
        ctr(gated, "tasks", "rm", "-f", cid)
        ctr(gated, "containers", "rm", cid)
        images_h.pull(gated.containerd, signed["low"])


def test_kept_layers_of_other_content_refuse_the_container(gated: Gated, signed: Signed) -> None:
    """A record (root's) whose layers are not the container's: refused on the rootfs, whatever it names."""
    gated.configure(signed)
    cid, token = _wrapper_create(gated, "rt-otherlayers", signed["low"].ref)
    path = _record_path(gated, token)
    rec = json.loads(path.read_text())
    rec["layers"] = [*rec["layers"], "sha256:" + "e" * 64]  # one layer more than the container has
    path.write_text(json.dumps(rec))
    try:
        rc, _, err = ctr(gated, "tasks", "start", cid)
        assert_refused(gated, rc, err, "rootfs", cid)
    finally:
        ctr(gated, "containers", "rm", cid)


def test_a_record_from_before_the_layers_were_kept_resolves_the_image_again(gated: Gated, signed: Signed) -> None:
    gated.configure(signed)
    cid, token = _wrapper_create(gated, "rt-oldrec", signed["low"].ref)
    path = _record_path(gated, token)
    rec = json.loads(path.read_text())
    del rec["layers"]
    path.write_text(json.dumps(rec))
    try:
        # On other content, the old record is refused on the rootfs of the image it names ...
        ctr(gated, "containers", "create", "--label", f"bacon/admission={token}", gated.otherfs.ref, "rt-oldthief")
        rc, _, err = ctr(gated, "tasks", "start", "rt-oldthief")
        assert_refused(gated, rc, err, "rootfs", "rt-oldthief")
        # ... and the container the wrapper admitted runs on it.
        rc, _, err = ctr(gated, "tasks", "start", cid)
        assert rc == 0, err
        line = gated.runtime_lines()[-1]
        assert (line["verdict"], line["how"], line["container"]) == ("admitted", "record", cid), line
    finally:
        ctr(gated, "tasks", "rm", "-f", cid)
        ctr(gated, "containers", "rm", cid, "rt-oldthief")


def test_a_copied_label_on_the_same_image_with_a_privileged_spec_is_refused(gated: Gated, signed: Signed,
                                                                            tmp_path: Path) -> None:
    """The record admits a command line the wrapper judged, not whatever spec carries its label: a client
    that copies the label of a container the wrapper created (not yet started) onto its own container of the
    same image, with --privileged, was admitted on the record, unjudged."""
    gated.configure(signed)  # Low: baseline
    plain, token = _wrapper_create(gated, "rt-plain", signed["low"].ref)
    try:
        # a directory of the client's own, shaped as a nerdctl volume's (what nerdctl binds is not judged)
        own = tmp_path / "1935db59" / "volumes" / "default" / "v" / "_data"
        own.mkdir(parents=True)
        for cid, options in (("rt-copy-priv", ["--privileged"]), ("rt-copy-hostnet", ["--net-host"]),
                             ("rt-copy-proc", ["--mount", "type=proc,src=proc,dst=/hostproc"]),
                             ("rt-copy-vol", ["--mount", f"type=bind,src={own},dst=/v,options=rbind:rw"])):
            rc, out, err = ctr(gated, "run", "--rm", *options, "--label", f"bacon/admission={token}",
                               signed["low"].ref, cid, "/bin/echo", "ran")
            assert "ran" not in out
            line = assert_refused(gated, rc, err, "profile", cid)
            assert line["digest"] == signed["low"].digest, line
            ctr(gated, "containers", "rm", cid)
        # The record was not claimed by the refused copies: the container the wrapper admitted starts on it.
        rc, _, err = ctr(gated, "tasks", "start", plain)
        assert rc == 0, err
        line = gated.runtime_lines()[-1]
        assert line["verdict"] == "admitted", line
        assert line["how"] == "record", line
    finally:
        ctr(gated, "tasks", "rm", "-f", plain)
        ctr(gated, "containers", "rm", plain, "rt-copy-priv", "rt-copy-hostnet", "rt-copy-proc", "rt-copy-vol")

def test_status_says_whether_containerd_runs_the_gate(gated: Gated, signed: Signed, containerd: Containerd) -> None:
    import subprocess

    gated.configure(signed)
    h = gated.host

    def runtime_item(address: Path) -> dict[str, Any]:
        r = subprocess.run([*h.bacon, "status", "--json", "--address", str(address)], env=h.env(),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode in (0, 1), r.stderr
        return next(i for i in json.loads(r.stdout)["items"] if i["key"] == "runtime")

    item = runtime_item(gated.containerd.socket)
    assert item["state"] == "ok", item
    assert item["details"]["runc"] == str(gated.launcher)
    assert item["details"]["gate"] is True
    # A containerd whose PATH finds the real runc first: not enabled, and the fix says how.
    item = runtime_item(containerd.socket)
    assert item["state"] == "warn", item
    assert item["details"]["gate"] is False
    assert "not enabled" in item["summary"]
    assert item["fix"] == "sudo bacon enable --runtime"
    # containerd's own configuration naming a runc binary: that runtime bypasses the gate.
    config = gated.containerd.config
    before = config.read_bytes()
    try:
        config.write_text(before.decode() + '\n[plugins."io.containerd.runtime.v1.linux"]\n  runtime = "runc"\n'
                          '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
                          '  BinaryName = "/usr/sbin/runc"\n')
        item = runtime_item(gated.containerd.socket)
        assert item["state"] == "warn", item
        assert "/usr/sbin/runc" in item["summary"]
        assert "do not meet the gate" in item["summary"]
    finally:
        config.write_bytes(before)
