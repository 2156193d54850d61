"""What a container's OCI spec may ask for at the runtime gate, asked for by clients other than the wrapper:
``ctr run``'s options (real containerd, real runc, the harness's signed images), a hand-written spec
(``ctr run --config``), and a spec an API client wrote on a container of a signed image (given to the
launcher as containerd's shim calls it). Each refused one is something the real runc would have run: a
privileged level admits it, and the test shows what it gives the container."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shim.common.errors import EXIT_DENIED
from tests.conftest import Signed
from tests.harness import runtime as runtime_h
from tests.integration.test_runtime_gate import Gated, assert_refused, ctr, gated  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "oci-spec"
PRIVILEGED_LOW = '[levels.Low]\nrequire = ["signature"]\nprofile = "privileged"\n'


@pytest.mark.parametrize(("name", "options", "words"), [
    # a proc outside /proc: nothing masked in it, /proc/sys writable (the host's kernel.core_pattern)
    ("procmount", ["--mount", "type=proc,src=proc,dst=/hostproc,options=rw"], "proc outside /proc"),
    ("sysfs", ["--mount", "type=sysfs,src=sysfs,dst=/sys2,options=rw"], "sysfs"),
    ("cgroupfs", ["--mount", "type=cgroup,src=cgroup,dst=/cg,options=rw"], "writable cgroups"),
    # the host's mount namespace: runc would mount the container's filesystems there
    ("hostmnt", ["--with-ns", "mount:/proc/1/ns/mnt"], "mount namespace /proc/1/ns/mnt"),
    # an existing cgroup: joined (runc 1.1 only warns), its limits set, its processes killed with the task
    ("cgroup", ["--cgroup", "/system.slice"], "the cgroup '/system.slice'"),
    ("propagation", ["--rootfs-propagation", "rshared"], "rootfsPropagation 'rshared'"),
    ("nopivot", ["--no-pivot"], "--no-pivot"),
    ("rdt", ["--rdt-class", "bacon-test"], "Intel RDT"),
    ("systemd", ["--annotation", "org.systemd.property.DeviceAllow=/dev/kmsg rwm"], "org.systemd.property"),
])
def test_ctr_run_options_the_profile_refuses(gated: Gated, signed: Signed, name: str, options: list[str],  # noqa: F811
                                             words: str) -> None:
    gated.configure(signed)  # Low's profile: baseline
    cid = f"rts-{name}"
    rc, out, err = ctr(gated, "run", "--rm", *options, signed["low"].ref, cid, "/bin/echo", "ran")
    try:
        assert "ran" not in out
        line = assert_refused(gated, rc, err, "profile", cid)
        assert words in err, err
        assert "profile baseline (level Low)" in str(line["reason"]), line
        assert "to allow it:" in err, err  # the hint names the configuration line
    finally:
        ctr(gated, "containers", "rm", cid)


def test_a_proc_outside_proc_was_the_hosts_kernel_settings_to_write(gated: Gated, signed: Signed) -> None:  # noqa: F811
    """What the refusal above prevents, under a level whose profile is privileged: in the container's own
    /proc, /proc/sys is read-only; in a second proc mounted elsewhere it is writable."""
    gated.configure(signed, runtime=PRIVILEGED_LOW)
    # each writes the value it read back (the host's own: nothing changes)
    script = ("v=$(cat /proc/sys/kernel/core_pattern); "
              "echo \"$v\" 2>/dev/null >/proc/sys/kernel/core_pattern || echo masked-ro; "
              "echo \"$v\" >/hostproc/sys/kernel/core_pattern && echo hostproc-writable")
    rc, out, err = ctr(gated, "run", "--rm", "--mount", "type=proc,src=proc,dst=/hostproc,options=rw",
                       signed["low"].ref, "rts-proc-priv", "/bin/sh", "-c", script)
    assert rc == 0, err
    assert "masked-ro" in out, out
    assert "hostproc-writable" in out, out


def test_a_device_is_admitted_by_its_allowance_and_refused_without(gated: Gated, signed: Signed) -> None:  # noqa: F811
    gated.configure(signed)
    rc, _, err = ctr(gated, "run", "--rm", "--device", "/dev/kmsg", signed["low"].ref, "rts-dev", "/bin/true")
    assert_refused(gated, rc, err, "profile", "rts-dev")
    assert "/dev/kmsg" in err, err
    gated.configure(signed, runtime='[levels.Low]\nrequire = ["signature"]\n[levels.Low.allow]\n'
                                    'devices = ["/dev/kmsg"]\n')
    rc, out, err = ctr(gated, "run", "--rm", "--device", "/dev/kmsg", signed["low"].ref, "rts-dev2",
                       "/bin/echo", "ran")
    assert rc == 0, err
    assert "ran" in out


def test_a_hand_written_spec_names_no_image_and_is_refused(gated: Gated, signed: Signed, tmp_path: Path) -> None:  # noqa: F811
    """``ctr run --config`` gives containerd a whole OCI spec and no image (no snapshot): nothing to admit."""
    gated.configure(signed)
    spec = json.loads((VECTORS / "ctr-default.json").read_text())
    spec["process"].update(args=["/bin/echo", "ran"], terminal=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(spec))
    rc, out, err = ctr(gated, "run", "--rm", "--config", str(config), "rts-config")
    try:
        assert "ran" not in out
        assert_refused(gated, rc, err, "image", "rts-config")
    finally:
        ctr(gated, "containers", "rm", "rts-config")


# -- a spec an API client wrote on a container of a signed image ----------------------------------------

def _bundle(g: Gated, cid: str) -> Path:
    return g.containerd.root.parent / "state" / "io.containerd.runtime.v2.task" / "default" / cid


def _create_as_the_shim(g: Gated, cid: str, spec: dict[str, Any]) -> tuple[int, str]:
    """``runc create`` as containerd's shim calls it, on a bundle holding ``spec``, for a container containerd
    made from the signed Low image: what the shim does for an API client that sent that spec."""
    bundle = _bundle(g, cid)
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(spec))
    env = {**os.environ, "TTRPC_ADDRESS": f"{g.containerd.socket}.ttrpc"}
    r = subprocess.run([str(g.launcher), "--root", "/run/containerd/runc/default", "--log", str(bundle / "log.json"),
                        "--log-format", "json", "create", "--bundle", str(bundle), "--pid-file",
                        str(bundle / "init.pid"), cid], cwd=bundle, env=env, capture_output=True, text=True,
                       timeout=60)
    log = (bundle / "log.json").read_text() if (bundle / "log.json").exists() else ""
    return r.returncode, log + r.stderr


def _spec(cid: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((VECTORS / "ctr-default.json").read_text())
    spec["linux"]["cgroupsPath"] = f"/default/{cid}"
    return spec


@pytest.mark.parametrize(("name", "change", "words"), [
    ("nomnt", lambda s: s["linux"].__setitem__(
        "namespaces", [n for n in s["linux"]["namespaces"] if n["type"] != "mount"]), "no mount namespace"),
    ("rw-procsys", lambda s: s["linux"].__setitem__("readonlyPaths", []), "/proc/irq, /proc/sys,"),
    ("kcore", lambda s: s["linux"]["maskedPaths"].remove("/proc/kcore"), "no /proc/kcore"),
    ("blockdevs", lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "access": "rwm"}),
     "b *:* rwm"),
    ("unified", lambda s: s["linux"]["resources"].__setitem__("unified", {"cgroup.procs": "1"}), "raw cgroup files"),
    ("foldedkey", lambda s: s["linux"].__setitem__("ReadonlyPaths", []), "are one field to runc"),
])
def test_a_spec_written_through_containerds_api_is_judged(gated: Gated, signed: Signed, name: str, change: Any,  # noqa: F811
                                                          words: str) -> None:
    gated.configure(signed)
    cid = f"rts-api-{name}"
    assert ctr(gated, "containers", "create", signed["low"].ref, cid)[0] == 0
    try:
        spec = _spec(cid)
        change(spec)
        rc, said = _create_as_the_shim(gated, cid, spec)
        assert rc == EXIT_DENIED, said
        assert "bacon: denied:" in said, said
        assert words in said, said
        line = gated.runtime_lines()[-1]
        assert line["verdict"] == "denied", line
        assert line["container"] == cid, line
    finally:
        import shutil

        shutil.rmtree(_bundle(gated, cid), ignore_errors=True)
        ctr(gated, "containers", "rm", cid)


# -- runc's other verbs and runtimes -----------------------------------------------------------------------

def test_a_checkpoint_written_where_the_client_says_is_refused(gated: Gated, signed: Signed,  # noqa: F811
                                                               tmp_path: Path) -> None:
    """``ctr tasks checkpoint --image-path DIR``: containerd hands runc the client's directory, where CRIU
    writes as root. (Debian's runc finds no CRIU here: a checkpoint the gate lets through fails on that.)"""
    gated.configure(signed)  # the system level Mid: baseline
    cid = "rts-ckpt"
    assert ctr(gated, "run", "-d", signed["low"].ref, cid, "sleep", "600")[0] == 0
    target = tmp_path / "criu-images"
    target.mkdir()
    try:
        rc, _, err = ctr(gated, "tasks", "checkpoint", "--image-path", str(target), cid)
        assert rc != 0
        assert "bacon: denied:" in err, err
        assert f"runc checkpoint --image-path {target}" in err, err
        assert 'host_files = ["checkpoint"]' in err, err  # the hint
        line = gated.runtime_lines()[-1]
        assert (line["verdict"], line["command"], line["container"]) == ("denied", "checkpoint", cid), line
        # Where containerd chooses itself (its temporary directory, the bundle): the gate lets runc run.
        rc, _, err = ctr(gated, "tasks", "checkpoint", cid)
        assert "bacon: denied" not in err, err
        assert "criu" in err.lower(), err
        # An allowance for the level lets the client choose.
        gated.configure(signed, runtime='[levels.Mid]\nrequire = ["signature"]\n[levels.Mid.allow]\n'
                                        'host_files = ["checkpoint"]\n')
        rc, _, err = ctr(gated, "tasks", "checkpoint", "--image-path", str(target), cid)
        assert "bacon: denied" not in err, err
    finally:
        runtime_h.remove_task(gated.containerd, cid)


def test_containerds_other_runc_shims_meet_the_gate(gated: Gated, signed: Signed) -> None:  # noqa: F811
    """``ctr run --runtime``: the v1 runc shim finds the gate as runc as the v2 one does; the legacy v1
    runtime keeps its bundles elsewhere, and the gate refuses what it cannot place."""
    gated.configure(signed)
    rc, _, err = ctr(gated, "run", "--rm", "--runtime", "io.containerd.runc.v1", signed["unsigned"].ref, "rts-v1u",
                     "/bin/true")
    assert_refused(gated, rc, err, "signature", "rts-v1u")
    rc, out, err = ctr(gated, "run", "--rm", "--runtime", "io.containerd.runc.v1", signed["low"].ref, "rts-v1",
                       "/bin/echo", "ran")
    assert rc == 0, err
    assert "ran" in out
    rc, out, err = ctr(gated, "run", "--rm", "--runtime", "io.containerd.runtime.v1.linux", signed["low"].ref,
                       "rts-legacy", "/bin/echo", "ran")
    try:
        assert "ran" not in out
        assert_refused(gated, rc, err, "runtime", "rts-legacy")
    finally:
        ctr(gated, "containers", "rm", "rts-v1u", "rts-v1", "rts-legacy")


def test_restricted_needs_a_seccomp_profile_in_the_spec(gated: Gated, signed: Signed) -> None:  # noqa: F811
    """Kubernetes' restricted requires a seccomp profile; ctr sets none unless --seccomp (nerdctl always does).
    A spec that meets restricted's other requirements is refused without one, and passes the gate with one."""
    gated.configure(signed, runtime='[levels.Low]\nrequire = ["signature"]\nprofile = "restricted"\n')
    for cid, seccomp in (("rts-noseccomp", None), ("rts-seccomp", {"defaultAction": "SCMP_ACT_ERRNO"})):
        assert ctr(gated, "containers", "create", signed["low"].ref, cid)[0] == 0
        try:
            spec = _spec(cid)
            spec["process"]["user"] = {"uid": 1000, "gid": 1000}
            spec["process"]["capabilities"] = {k: ["CAP_NET_BIND_SERVICE"] for k in ("bounding", "effective",
                                                                                     "permitted")}
            spec["process"]["noNewPrivileges"] = True
            if seccomp is not None:
                spec["linux"]["seccomp"] = seccomp
            rc, said = _create_as_the_shim(gated, cid, spec)
            if seccomp is None:
                assert rc == EXIT_DENIED, said
                assert "seccomp-required" in said, said
            else:  # the gate lets runc run it (which fails on this empty rootfs)
                assert "bacon: denied" not in said, said
        finally:
            import shutil

            shutil.rmtree(_bundle(gated, cid), ignore_errors=True)
            ctr(gated, "containers", "rm", cid)


def test_an_allowed_host_path_is_judged_where_its_links_lead(gated: Gated, signed: Signed,  # noqa: F811
                                                             tmp_path: Path) -> None:
    """An allowance for a directory the operator can write: a symbolic link in it to /etc was bound (runc
    follows it on the host), read-write."""
    allowed = tmp_path / "data"
    (allowed / "plain").mkdir(parents=True)
    (allowed / "link").symlink_to("/etc")
    gated.configure(signed, runtime=f'[levels.Low]\nrequire = ["signature"]\n[levels.Low.allow]\n'
                                    f'host_paths = ["{allowed}:rw"]\n')
    rc, out, err = ctr(gated, "run", "--rm", "--mount", f"type=bind,src={allowed}/plain,dst=/mnt,options=rbind:rw",
                       signed["low"].ref, "rts-plain", "/bin/echo", "ran")
    assert rc == 0, err
    assert "ran" in out
    rc, out, err = ctr(gated, "run", "--rm", "--mount", f"type=bind,src={allowed}/link,dst=/mnt,options=rbind:rw",
                       signed["low"].ref, "rts-link", "/bin/ls", "/mnt/passwd")
    try:
        assert "passwd" not in out
        assert_refused(gated, rc, err, "profile", "rts-link")
        assert f"{allowed}/link, which is /etc" in err, err
    finally:
        ctr(gated, "containers", "rm", "rts-link")


def test_a_runc_root_another_user_can_change_is_refused(gated: Gated, signed: Signed) -> None:  # noqa: F811
    """``ctr run --runc-root DIR``: runc keeps the container's state there (its init's PID, the namespaces
    ``runc exec`` joins). In a directory its owner (not root) can rename entries in, that state can be
    replaced by a forged one naming the host's init: ``ctr task exec`` would then run in the host's
    namespaces. Refused at create; a root-only root passes."""
    import secrets
    import shutil

    gated.configure(signed)
    base = Path(f"/tmp/rts-runc-{secrets.token_hex(3)}")
    base.mkdir(mode=0o700)
    try:
        os.chown(base, 65534, 65534)  # nobody's
        rc, out, err = ctr(gated, "run", "--rm", "--runc-root", str(base / "default"), signed["low"].ref,
                           "rts-runcroot", "/bin/echo", "ran")
        try:
            assert "ran" not in out
            line = assert_refused(gated, rc, err, "runtime", "rts-runcroot")
            assert "--root" in str(line["reason"]), line
        finally:
            ctr(gated, "containers", "rm", "rts-runcroot")
        os.chown(base, 0, 0)
        rc, out, err = ctr(gated, "run", "--rm", "--runc-root", str(base / "default"), signed["low"].ref,
                           "rts-runcroot2", "/bin/echo", "ran")
        assert rc == 0, err
        assert "ran" in out
    finally:
        shutil.rmtree(base, ignore_errors=True)
