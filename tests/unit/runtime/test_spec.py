"""What an OCI spec asks for, read for the container profiles (shim.runtime.spec), on the specs Debian's
ctr 1.6 really writes (tests/vectors/oci-spec) and on hostile ones, judged by the profile rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shim.admission.profiles import rules
from shim.admission.profiles.rules import Allowances, Settings
from shim.runtime import spec as runtime_spec

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "oci-spec"


def spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((VECTORS / f"ctr-{name}.json").read_text())
    return loaded


def never_host(kind: str, path: str) -> bool:
    return False


def refused(s: dict[str, Any], profile: str = "baseline", allow: Allowances | None = None) -> list[str]:
    settings = Settings(profile=profile, level="Low", allow=allow or Allowances())
    return [r.rule for r in rules.refusals_of(runtime_spec.requested(s, never_host), settings)]


def test_ctrs_default_spec_is_an_ordinary_container() -> None:
    assert refused(spec("default")) == []
    # restricted asks more than ctr gives by default (it sets noNewPrivileges): a non-root user, no capabilities
    assert set(refused(spec("default"), "restricted")) == {"restricted-capabilities", "run-as-non-root"}


def test_ctr_privileged_is_refused_as_privileged() -> None:
    got = refused(spec("privileged"))
    assert got[0] == "privileged"
    assert {"capabilities", "devices", "proc-mount"} <= set(got)
    assert refused(spec("privileged"), "privileged") == []


def test_ctr_net_host_shares_the_hosts_network_and_binds_host_files() -> None:
    got = refused(spec("hostnet"))
    assert "host-namespaces" in got
    assert "host-paths" in got


def test_a_bind_mount_is_a_host_path_and_an_allowance_admits_it_read_only() -> None:
    assert refused(spec("mount")) == ["host-paths"]
    assert refused(spec("mount"), allow=Allowances(host_paths=(("/etc", False),))) == []
    rw = spec("mount")
    for m in rw["mounts"]:
        if m["type"] == "bind":
            m["options"] = ["rbind", "rw"]
    assert refused(rw, allow=Allowances(host_paths=(("/etc", False),))) == ["host-paths"]


def test_a_namespace_joined_by_path_is_the_hosts_when_it_is_inits() -> None:
    s = spec("default")
    s["linux"]["namespaces"] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                                {"type": "network", "path": "/proc/1/ns/net"}]
    req = runtime_spec.requested(s, lambda kind, path: path == "/proc/1/ns/net")
    assert [a.value for a in req.host_namespaces] == ["network"]
    other = runtime_spec.requested(s, never_host)  # another container's (a pod's sandbox)
    assert other.host_namespaces == ()


@pytest.mark.parametrize(("change", "rule"), [
    (lambda s: s.setdefault("hooks", {}).setdefault("prestart", []).append({"path": "/usr/bin/evil"}), "host-code"),
    (lambda s: s["mounts"].append({"type": "ext4", "source": "/dev/sda1", "destination": "/mnt"}), "unknown"),
    (lambda s: s["linux"].setdefault("devices", []).append({"path": "/dev/sda", "type": "b"}), "devices"),
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "access": "rwm"}), "devices"),
    (lambda s: s["process"].__setitem__("apparmorProfile", "unconfined"), "apparmor"),
    (lambda s: s["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW"}), "seccomp"),
    (lambda s: s["linux"].__setitem__("sysctl", {"kernel.core_pattern": "|/x"}), "sysctls"),
    (lambda s: s["linux"].__setitem__("maskedPaths", []), "proc-mount"),
    (lambda s: s["process"]["capabilities"]["ambient"].append("CAP_SYS_ADMIN"), "capabilities"),
    (lambda s: s["process"]["capabilities"]["bounding"].append("CAP_NOT_A_CAP"), "unknown"),
    (lambda s: s["linux"].__setitem__("namespaces", [{"type": "mount"}]), "host-namespaces"),
])
def test_each_privilege_a_spec_can_ask_for_is_refused_under_baseline(change: Any, rule: str) -> None:
    s = spec("default")
    s["process"]["capabilities"].setdefault("ambient", [])
    change(s)
    assert rule in refused(s)


def test_a_malformed_spec_asks_for_nothing_it_cannot_be_refused_for() -> None:
    for s in ({}, {"process": [], "linux": "x", "mounts": {}}, {"linux": {"namespaces": [{"type": 1}]}}):
        got = refused(s)  # never raises
        assert "host-namespaces" in got or "unknown" in got
