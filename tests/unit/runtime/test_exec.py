"""runc exec as the runtime gate reads and judges it (shim.runtime.argv, shim.runtime.exec,
shim.runtime.spec.process_request): pure parts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shim.admission.profiles.request import DEFAULT_CAPABILITIES
from shim.admission.profiles.rules import Settings, refusals_of
from shim.common.errors import Denied
from shim.runtime import argv as runtime_argv
from shim.runtime import exec as runtime_exec
from shim.runtime.argv import RuncUsage, parse
from shim.runtime.spec import exec_request, process_request

SHIM_EXEC = ["--root", "/run/containerd/runc/default", "--log", "/b/default/c1/log.json", "--log-format", "json",
             "exec", "--process", "/tmp/runc-process123", "--detach", "--pid-file", "/b/default/c1/e1.pid", "c1"]
DEFAULT = {k: [f"CAP_{c}" for c in sorted(DEFAULT_CAPABILITIES)] for k in ("bounding", "effective", "permitted")}


def test_the_shims_exec_is_read_as_runc_reads_it() -> None:
    call = parse(SHIM_EXEC)
    assert call.verb == "exec"
    assert call.container_id == "c1"
    assert call.command == []
    assert call.flags == {"process": "/tmp/runc-process123", "detach": "true", "pid-file": "/b/default/c1/e1.pid"}


def test_exec_flags_short_and_long_and_repeated() -> None:
    call = parse(["exec", "-t", "-u", "1000:1000", "-e", "A=1", "--env=B=2", "-c", "CAP_KILL", "--cap", "CAP_CHOWN",
                  "--no-new-privs=false", "-g", "10", "--cgroup", "cpu:x", "c1", "sh", "-c", "true"])
    assert call.container_id == "c1"
    assert call.command == ["sh", "-c", "true"]
    assert call.flags == {"tty": "true", "user": "1000:1000", "no-new-privs": "false"}
    assert call.lists == {"env": ["B=2", "A=1"], "cap": ["CAP_CHOWN", "CAP_KILL"], "additional-gids": ["10"],
                          "cgroup": ["cpu:x"]}


@pytest.mark.parametrize("argv", [
    ["exec", "--process", "/a", "--process", "/b", "c1"],
    ["exec", "-p", "/a", "--process", "/b", "c1"],  # one flag under two names
    ["exec", "-u", "0", "--user", "1000", "c1", "true"],
    ["exec", "--privileged", "c1", "true"],  # no such flag in runc 1.1
    ["exec", "--process"],
    ["exec"],
    ["exec", "--detach=maybe", "c1"],
    ["exec", "---process", "/a", "c1"],
])
def test_exec_argvs_runc_might_read_otherwise_are_refused(argv: list[str]) -> None:
    with pytest.raises(RuncUsage):
        parse(argv)


def test_the_launcher_sends_exec_to_the_gate(tmp_path: Path) -> None:
    """Before, exec went straight to the real runc."""
    real, gate = tmp_path / "real", tmp_path / "gate"
    for p, word in ((real, "REAL"), (gate, "GATE")):
        p.write_text(f"#!/bin/sh\necho {word}\n")
        p.chmod(0o755)
    launcher = tmp_path / "runc"
    launcher.write_text(runtime_argv.launcher(str(real), str(gate)))
    launcher.chmod(0o755)
    for argv in (SHIM_EXEC, ["exec", "c1", "sh"], ["--root", "/r", "exec", "-t", "c1", "sh"]):
        assert subprocess.run([str(launcher), *argv], capture_output=True, text=True).stdout == "GATE\n", argv
    assert "exec" in runtime_argv.DECIDED
    assert "exec" not in runtime_argv.PASS_THROUGH


# -- the process runc will start ---------------------------------------------------------------------------

BASE = {"args": ["sleep", "600"], "user": {"uid": 0, "gid": 0}, "capabilities": DEFAULT, "noNewPrivileges": True,
        "cwd": "/"}


def test_inline_flags_are_applied_as_runc_applies_them() -> None:
    p = runtime_exec.with_flags(BASE, {"user": "1000:10", "apparmor": "unconfined", "process-label": "a:b:c:d",
                                       "no-new-privs": "false"}, {"cap": ["CAP_SYS_ADMIN"]})
    assert p["user"] == {"uid": 1000, "gid": 10}
    assert p["apparmorProfile"] == "unconfined"
    assert p["selinuxLabel"] == "a:b:c:d"
    assert p["noNewPrivileges"] is False
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        assert "CAP_SYS_ADMIN" in p["capabilities"][kind]
    assert runtime_exec.with_flags(BASE, {"user": "1000"}, {})["user"] == {"uid": 1000, "gid": 0}
    assert BASE["user"] == {"uid": 0, "gid": 0}  # the container's own process is not changed


@pytest.mark.parametrize("user", ["root", "+0", "-1", "1000:", "1000:staff", "٣", " 0"])
def test_a_user_runc_would_read_otherwise_is_refused(user: str) -> None:
    with pytest.raises(Denied):
        runtime_exec.with_flags(BASE, {"user": user}, {})


def test_process_flags_beside_a_process_file_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(BASE))
    assert runtime_exec.exec_process(parse(["exec", "-p", str(f), "-d", "c1"]), BASE) == BASE
    for flags in (["-u", "1000"], ["--cap", "CAP_KILL"], ["--apparmor", "x"], ["--no-new-privs"], ["-e", "A=1"]):
        with pytest.raises(Denied, match="runc ignores them"):
            runtime_exec.exec_process(parse(["exec", *flags, "-p", str(f), "c1"]), BASE)


def test_inline_exec_starts_from_the_containers_process(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"process": BASE}))
    own = runtime_exec.container_process(str(tmp_path))
    p = runtime_exec.exec_process(parse(["exec", "-c", "CAP_NET_ADMIN", "c1", "sh"]), own)
    assert "CAP_NET_ADMIN" in p["capabilities"]["bounding"]
    with pytest.raises(Denied, match="needs a command"):
        runtime_exec.exec_process(parse(["exec", "c1"]), own)
    (tmp_path / "config.json").write_text(json.dumps({"Process": BASE}))
    with pytest.raises(Denied, match="runc's 'process'"):
        runtime_exec.container_process(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"process": "sh"}))
    with pytest.raises(Denied, match="has no process"):
        runtime_exec.container_process(str(tmp_path))


def test_namespace_of_a_containerd_bundle() -> None:
    assert runtime_exec.namespace_of("/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1", "c1") == "k8s.io"
    assert runtime_exec.namespace_of("/run/containerd/io.containerd.runtime.v2.task/k8s.io/c2", "c1") is None
    assert runtime_exec.namespace_of("/srv/bundles/default/c1", "c1") is None


# -- the profile on an exec's process ------------------------------------------------------------------------

def _refused(process: dict[str, object], profile: str) -> list[str]:
    return [r.rule for r in refusals_of(process_request(process), Settings(profile=profile, level="Low"))]


def test_an_exec_is_judged_on_what_its_process_asks() -> None:
    assert _refused(BASE, "baseline") == []
    assert _refused({**BASE, "noNewPrivileges": False}, "restricted") == ["run-as-non-root"]
    non_root = {**BASE, "user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": False}
    assert _refused(non_root, "restricted") == []  # exec starts no container: no nnp, no cap-drop required
    sys_admin = {**BASE, "capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}
    assert _refused(sys_admin, "baseline") == ["capabilities"]
    assert _refused(sys_admin, "privileged") == []
    assert _refused({**BASE, "apparmorProfile": "unconfined"}, "baseline") == ["apparmor"]
    assert _refused({**BASE, "selinuxLabel": "system_u:system_r:spc_t:s0"}, "baseline") == ["selinux"]


@pytest.mark.parametrize("process", [
    {"capabilities": "ALL"},
    {"capabilities": {"bounding": "CAP_SYS_ADMIN"}},
    {"capabilities": {"bounding": ["CAP_NOT_A_CAP"]}},
    {"user": "root"},
    {"user": {"uid": "0"}},
    {"user": {"uid": True}},
    {"user": {"uid": -1}},
    {"user": {"uid": 1 << 32}},
    {"selinuxLabel": "spc_t"},
])
def test_a_process_that_cannot_be_read_is_refused(process: dict[str, object]) -> None:
    assert "unknown" in _refused({**BASE, **process}, "baseline")


# -- an exec beyond its container's own process ------------------------------------------------------------

def _beyond(process: dict[str, object], container: dict[str, object], profile: str) -> list[str]:
    req = exec_request(process, container)
    return [r.rule for r in refusals_of(req, Settings(profile=profile, level="Low"))]


RESTRICTED_CONTAINER = {**BASE, "user": {"uid": 1000, "gid": 1000},
                        "capabilities": {k: ["CAP_NET_BIND_SERVICE"] for k in ("bounding", "effective", "permitted")},
                        "apparmorProfile": "bacon-default"}


def test_a_process_copied_from_its_container_asks_for_nothing_more() -> None:
    for container, profile in ((BASE, "baseline"), (RESTRICTED_CONTAINER, "restricted")):
        assert _beyond({**container, "args": ["sh"]}, container, profile) == []


@pytest.mark.parametrize(("change", "rule"), [
    # the default set back in a container that dropped it: beyond restricted (within baseline)
    ({"capabilities": DEFAULT}, "restricted-capabilities"),
    ({"capabilities": {"ambient": ["CAP_SETUID"]}}, "restricted-capabilities"),
    ({"noNewPrivileges": False}, "privilege-escalation"),
    ({"apparmorProfile": ""}, "apparmor"),  # none: unconfined, where the container is confined
    ({"apparmorProfile": "unconfined"}, "apparmor"),
    ({"apparmorProfile": "other"}, "apparmor"),
    ({"user": {"uid": 0, "gid": 0}}, "run-as-non-root"),
])
def test_an_exec_asking_beyond_its_restricted_container_is_refused(change: dict[str, object], rule: str) -> None:
    process = {**RESTRICTED_CONTAINER, **change}
    assert rule in _beyond(process, RESTRICTED_CONTAINER, "restricted")
    assert _beyond(process, RESTRICTED_CONTAINER, "privileged") == []


def test_under_baseline_an_exec_may_not_leave_its_containers_apparmor() -> None:
    confined = {**BASE, "apparmorProfile": "nerdctl-default"}
    assert _beyond({**confined, "apparmorProfile": ""}, confined, "baseline") == ["apparmor"]
    assert _beyond({**BASE, "capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}, BASE, "baseline") == ["capabilities"]
    assert _beyond({**BASE, "noNewPrivileges": False}, BASE, "baseline") == []  # restricted's rule
