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
    # restricted asks more than ctr gives by default (it sets noNewPrivileges): a non-root user, no capabilities,
    # a seccomp profile (ctr run --seccomp)
    assert set(refused(spec("default"), "restricted")) == {"restricted-capabilities", "run-as-non-root",
                                                           "seccomp-required"}
    with_seccomp = spec("default")
    with_seccomp["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    assert "seccomp-required" not in refused(with_seccomp, "restricted")
    with_seccomp["linux"]["seccomp"] = "default"
    assert "unknown" in refused(with_seccomp)


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


# -- what a client other than ctr's defaults can write (a hand-written spec, containerd's API, ctr's options) --

def _launch(cid: str = "default", namespace: str = "default", no_pivot: bool = False) -> runtime_spec.Launch:
    return runtime_spec.Launch(namespace=namespace, container_id=cid, no_pivot=no_pivot)


def judged(s: dict[str, Any], profile: str = "baseline", allow: Allowances | None = None,
           launch: runtime_spec.Launch | None = None, host_device: Any = None) -> list[str]:
    settings = Settings(profile=profile, level="Low", allow=allow or Allowances())
    req = runtime_spec.requested(s, never_host, host_device or (lambda path: None), launch or _launch())
    return [r.rule for r in rules.refusals_of(req, settings)]


def test_ctrs_specs_as_the_gate_sees_them_with_their_container() -> None:
    assert judged(spec("default")) == []
    for name in ("default", "privileged", "hostnet", "mount"):
        assert judged(spec(name), "privileged", launch=_launch(name)) == []


def _without(key: str, path: str) -> Any:
    return lambda s: s["linux"].__setitem__(key, [p for p in s["linux"][key] if p != path])


@pytest.mark.parametrize(("change", "rule"), [
    # no mount namespace: runc mounts into the host's and only chroots (SYS_CHROOT is in the default set)
    (lambda s: s["linux"].__setitem__("namespaces", [n for n in s["linux"]["namespaces"] if n["type"] != "mount"]),
     "host-namespaces"),
    # a proc elsewhere than /proc is masked nowhere: the host's /proc/sys/kernel/core_pattern to write
    (lambda s: s["mounts"].append({"type": "proc", "source": "proc", "destination": "/hostproc"}), "proc-mount"),
    (lambda s: s["mounts"].append({"type": "proc", "source": "proc", "destination": "/proc/../hp"}), "proc-mount"),
    (lambda s: s["mounts"].append({"type": "sysfs", "source": "sysfs", "destination": "/hs", "options": ["ro"]}),
     "proc-mount"),
    (lambda s: [m.__setitem__("options", ["nosuid"]) for m in s["mounts"] if m["type"] == "sysfs"], "proc-mount"),
    (lambda s: s["mounts"].append({"type": "cgroup", "source": "cgroup", "destination": "/sys/fs/cgroup"}),
     "cgroups"),
    (lambda s: s["linux"].__setitem__("readonlyPaths", []), "proc-mount"),
    (_without("readonlyPaths", "/proc/sys"), "proc-mount"),
    (_without("maskedPaths", "/proc/kcore"), "proc-mount"),
    (lambda s: s["linux"].__setitem__("readonlyPaths", "/proc/sys"), "unknown"),
    # device cgroup rules beyond containerd's defaults: MKNOD (a default capability) makes the node
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "access": "rwm"}), "devices"),
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 11,
                                                          "access": "r"}), "devices"),
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "a", "major": -1, "minor": -1}),
     "devices"),
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "x", "access": "rwm"}), "unknown"),
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "major": "8"}), "unknown"),
    (lambda s: s["linux"]["resources"]["devices"].append({"allow": "yes", "type": "c", "major": 1, "minor": 3}),
     "unknown"),
    # cgroups: another cgroup than containerd's could be an existing one (joined, limited, killed with the task)
    (lambda s: s["linux"].__setitem__("cgroupsPath", "/system.slice"), "cgroups"),
    (lambda s: s["linux"].__setitem__("cgroupsPath", "/default/../system.slice/default"), "cgroups"),
    (lambda s: s["linux"].__setitem__("cgroupsPath", 7), "unknown"),
    (lambda s: s["linux"]["resources"].__setitem__("unified", {"cgroup.procs": "1"}), "cgroups"),
    (lambda s: s["linux"].__setitem__("intelRdt", {"closID": "x"}), "cgroups"),
    (lambda s: s.__setitem__("annotations", {"org.systemd.property.DeviceAllow": "'/dev/sda rwm'"}), "annotations"),
    (lambda s: s["linux"].__setitem__("rootfsPropagation", "rshared"), "unknown"),
    (lambda s: s["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/tmp/l"}),
     "seccomp"),
])
def test_each_further_privilege_a_spec_can_ask_for_is_refused_under_baseline(change: Any, rule: str) -> None:
    s = spec("default")
    change(s)
    assert rule in judged(s)
    assert judged(s, "privileged") == []


@pytest.mark.parametrize("change", [
    lambda s: s["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "access": "m"}),  # mknod only
    lambda s: s["linux"]["resources"]["devices"].append({"allow": False, "type": "a", "access": "rwm"}),
    lambda s: s["linux"].__setitem__("rootfsPropagation", "rslave"),
    lambda s: s["linux"].__setitem__("readonlyPaths", ["/proc"]),  # a parent covers its paths
    lambda s: s.__setitem__("annotations", {"io.kubernetes.cri.container-type": "container"}),
    lambda s: s["linux"].__setitem__("cgroupsPath", "default"),  # under the shim's own cgroup
    lambda s: s["mounts"].append({"type": "tmpfs", "source": "tmpfs", "destination": "/scratch"}),
])
def test_what_containerd_and_kubelet_write_is_not_refused(change: Any) -> None:
    s = spec("default")
    change(s)
    assert judged(s) == []


def test_dockerds_cgroups_pass_only_in_its_namespace() -> None:
    s = spec("default")
    for path in ("/docker/c1", "system.slice:docker:c1"):
        s["linux"]["cgroupsPath"] = path
        assert judged(s, launch=_launch("c1", "moby")) == [], path
        assert judged(s, launch=_launch("c1", "default")) == ["cgroups"], path
    s["linux"]["cgroupsPath"] = "/docker/other"
    assert judged(s, launch=_launch("c1", "moby")) == ["cgroups"]


def test_kubelets_cgroups_pass_only_in_its_namespace() -> None:
    s = spec("default")
    cid = "0123abcd"
    for path in (f"/kubepods/besteffort/pod1234/{cid}", f"kubepods-besteffort-pod1234.slice:cri-containerd:{cid}"):
        s["linux"]["cgroupsPath"] = path
        assert judged(s, launch=_launch(cid, "k8s.io")) == [], path
        assert judged(s, launch=_launch(cid, "default")) == ["cgroups"], path
    for path in (f"/kubepods/../system.slice/{cid}", f"system.slice:cri-containerd:{cid}", "/kubepods/other",
                 f"kubepods.slice:session:{cid}"):
        s["linux"]["cgroupsPath"] = path
        assert judged(s, launch=_launch(cid, "k8s.io")) == ["cgroups"], path


def test_a_device_node_is_allowed_by_path_only_when_it_is_that_paths_host_device() -> None:
    s = spec("default")
    s["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    s["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                               "access": "rwm"})
    fuse = Allowances(devices=frozenset({"/dev/fuse"}))
    hosts = {"/dev/fuse": ("c", 10, 229)}
    assert judged(s, allow=fuse, host_device=hosts.get) == []  # ctr --device /dev/fuse, allowed
    # the same path, but the node runc would make is the host's disk
    s["linux"]["devices"] = [{"path": "/dev/fuse", "type": "b", "major": 254, "minor": 0}]
    s["linux"]["resources"]["devices"][-1] = {"allow": True, "type": "b", "major": 254, "minor": 0, "access": "rwm"}
    assert judged(s, allow=fuse, host_device=hosts.get) == ["devices"]


def test_no_pivot_is_refused_but_under_privileged() -> None:
    assert judged(spec("default"), launch=_launch(no_pivot=True)) == ["unknown"]
    assert judged(spec("default"), "privileged", launch=_launch(no_pivot=True)) == []


# -- a wrapper-admitted container: what nerdctl adds is not judged, the rest is --------------------------

NERDCTL = "/usr/local/libexec/bacon/nerdctl"
DATA = "/var/lib/nerdctl/1935db59"


def _nerdctls(cid: str = "c0ffee") -> dict[str, Any]:
    s = spec("default")
    args = [NERDCTL, "--data-root=/var/lib/nerdctl", "--address=/run/containerd/containerd.sock", "internal",
            "oci-hook"]
    s["hooks"] = {"createRuntime": [{"path": NERDCTL, "args": [*args, "createRuntime"]}],
                  "poststop": [{"path": NERDCTL, "args": [*args, "postStop"]}]}
    s["mounts"] += [
        {"type": "bind", "source": f"{DATA}/etchosts/default/{cid}/hosts", "destination": "/etc/hosts",
         "options": ["bind", "rprivate"]},
        {"type": "bind", "source": f"{DATA}/containers/default/{cid}/resolv.conf",
         "destination": "/etc/resolv.conf", "options": ["bind", "rprivate"]},
        {"type": "bind", "source": f"{DATA}/containers/default/{cid}/hostname", "destination": "/etc/hostname",
         "options": ["bind", "rprivate"]},
        {"type": "bind", "source": f"{DATA}/volumes/default/data/_data", "destination": "/data",
         "options": ["rbind", "rw"]},
    ]
    s["linux"]["cgroupsPath"] = f"system.slice:nerdctl:{cid}"
    return s


def test_what_nerdctl_adds_to_a_container_is_not_judged() -> None:
    s = _nerdctls()
    assert set(judged(s, launch=_launch("c0ffee"))) == {"host-code", "host-paths"}  # as any other client's
    own = runtime_spec.nerdctls_own(s, NERDCTL, "default", "c0ffee")
    assert judged(own, launch=_launch("c0ffee")) == []
    # under another data root, only when the configuration accepts it (--data-root, [global_flags])
    moved = json.loads(json.dumps(s).replace("/var/lib/nerdctl/", "/srv/nerdctl/"))
    assert judged(runtime_spec.nerdctls_own(moved, NERDCTL, "default", "c0ffee"), launch=_launch("c0ffee")) != []
    own = runtime_spec.nerdctls_own(moved, NERDCTL, "default", "c0ffee", ("/var/lib/nerdctl", "/srv/nerdctl"))
    assert judged(own, launch=_launch("c0ffee")) == []


def test_only_nerdctls_own_hooks_and_files_are_left_out() -> None:
    """Each case is another client's hook or mount, spelled close to nerdctl's own."""
    cases: list[Any] = [
        lambda s: s["hooks"]["createRuntime"].append({"path": "/tmp/evil", "args": [
            "/tmp/evil", "internal", "oci-hook", "createRuntime"]}),
        lambda s: s["hooks"].__setitem__("prestart", [{"path": NERDCTL, "args": [NERDCTL, "run", "x"]}]),
        lambda s: s["mounts"].append({"type": "bind", "source": f"{DATA}/containers/default/other/hosts",
                                      "destination": "/x", "options": ["rbind"]}),
        lambda s: s["mounts"].append({"type": "bind", "source": f"{DATA}/containers/k8s.io/c0ffee/hosts",
                                      "destination": "/x", "options": ["rbind"]}),
        lambda s: s["mounts"].append({"type": "bind", "source": f"{DATA}/containers/default/c0ffee/../../../../..",
                                      "destination": "/x", "options": ["rbind"]}),
        lambda s: s["mounts"].append({"type": "bind", "source": "/var/lib/nerdctl/notahash/volumes/default/v/_data",
                                      "destination": "/x", "options": ["rbind"]}),
        lambda s: s["mounts"].append({"type": "bind", "source": "/", "destination": "/host", "options": ["rbind"]}),
        # the client's own directory shaped as nerdctl's: container root would leave setuid-root programs in it
        lambda s: s["mounts"].append({"type": "bind", "source": "/home/op/1935db59/volumes/default/v/_data",
                                      "destination": "/v", "options": ["rbind", "rw"]}),
        lambda s: s["mounts"].append({"type": "bind", "source": "/tmp/1935db59/containers/default/c0ffee/hosts",
                                      "destination": "/etc/hosts", "options": ["rbind", "rw"]}),
        lambda s: s["mounts"].append({"type": "bind", "source": f"{DATA}/volumes/default/v/_data/sub",
                                      "destination": "/v", "options": ["rbind", "rw"]}),
    ]
    for case in cases:
        s = _nerdctls()
        case(s)
        own = runtime_spec.nerdctls_own(s, NERDCTL, "default", "c0ffee")
        assert judged(own, launch=_launch("c0ffee")) != [], case


# Mounts shaped exactly as nerdctl writes them (containerd/nerdctl, pkg/mountutil/mountutil.go: a volume's
# type is DefaultMountType, "none" on Linux (mountutil_linux.go), with "rbind"; pkg/cmd/container/run_mount.go:
# an image's VOLUME as {"type": "none", options ["rbind"]}; pkg/ipcutil/ipcutil.go: --ipc shareable binds
# <state dir>/shm; pkg/containerutil/container_network_manager.go: --net container:<id> binds that container's
# network files and joins its namespace by /proc/<pid>/ns/net; pkg/cmd/container/create.go: --init binds
# exec.LookPath("tini") read-only at /sbin/tini and prepends "/sbin/tini --").

def _volume(name: str, dest: str, *options: str) -> dict[str, Any]:
    return {"type": "none", "source": f"{DATA}/volumes/default/{name}/_data", "destination": dest,
            "options": [*options, "rbind"]}


@pytest.mark.parametrize("mount", [
    _volume("data", "/data"),  # -v data:/data
    _volume("data", "/data", "ro"),  # -v data:/data:ro
    _volume("4f1c2a9e" * 8, "/var/lib/postgresql/data"),  # -v /var/lib/postgresql/data, an image's VOLUME
])
def test_nerdctls_volumes_as_it_writes_them_are_its_own(mount: dict[str, Any]) -> None:
    s = _nerdctls()
    s["mounts"].append(mount)
    assert judged(runtime_spec.nerdctls_own(s, NERDCTL, "default", "c0ffee"), launch=_launch("c0ffee")) == []


def test_nerdctls_ipc_and_network_files_of_a_joined_container_are_its_own() -> None:
    s = _nerdctls()
    s["mounts"].append({"type": "bind", "source": f"{DATA}/containers/default/c0ffee/shm", "destination": "/dev/shm",
                        "options": ["rbind", "nosuid", "noexec", "nodev"]})  # --ipc shareable
    assert judged(runtime_spec.nerdctls_own(s, NERDCTL, "default", "c0ffee"), launch=_launch("c0ffee")) == []

    joined = _nerdctls()  # --net container:web --ipc container:web
    joined["mounts"] = [m for m in joined["mounts"] if not m["destination"].startswith("/etc/")]
    for path, dest in (("etchosts/default/beef/hosts", "/etc/hosts"), ("containers/default/beef/hostname",
                       "/etc/hostname"), ("containers/default/beef/resolv.conf", "/etc/resolv.conf"),
                       ("containers/default/beef/shm", "/dev/shm")):
        joined["mounts"].append({"type": "bind", "source": f"{DATA}/{path}", "destination": dest,
                                 "options": ["bind", "rprivate"]})
    namespaces = {"network": "/proc/4242/ns/net", "ipc": "/proc/4242/ns/ipc"}
    linked = json.loads(json.dumps(joined))
    linked["linux"]["namespaces"] = [{**ns, "path": namespaces[ns["type"]]} if ns["type"] in namespaces else ns
                                     for ns in linked["linux"]["namespaces"]]
    assert judged(runtime_spec.nerdctls_own(linked, NERDCTL, "default", "c0ffee"), launch=_launch("c0ffee")) == []
    # without joining its namespaces, another container's files are host paths
    assert "host-paths" in judged(runtime_spec.nerdctls_own(joined, NERDCTL, "default", "c0ffee"),
                                  launch=_launch("c0ffee"))


def test_nerdctls_init_is_its_own_only_as_it_writes_it() -> None:
    s = _nerdctls()
    s["process"]["args"] = ["/sbin/tini", "--", *s["process"]["args"]]
    tini = {"destination": "/sbin/tini", "type": "bind", "source": "/usr/bin/tini", "options": ["bind", "ro"]}
    s["mounts"].insert(0, tini)
    assert judged(runtime_spec.nerdctls_own(s, NERDCTL, "default", "c0ffee"), launch=_launch("c0ffee")) == []
    cases: list[Any] = [
        lambda s: s["mounts"][0].__setitem__("source", "/home/op/tini"),  # not where nerdctl's PATH leads
        lambda s: s["mounts"][0].__setitem__("options", ["bind"]),  # writable
        lambda s: s["mounts"][0].__setitem__("destination", "/bin/sh"),
        lambda s: s["process"].__setitem__("args", s["process"]["args"][2:]),  # not run under it
        lambda s: s["mounts"][0].__setitem__("source", "/usr/bin/sh"),
    ]
    for case in cases:
        other = json.loads(json.dumps(s))
        case(other)
        assert "host-paths" in judged(runtime_spec.nerdctls_own(other, NERDCTL, "default", "c0ffee"),
                                      launch=_launch("c0ffee")), case


def test_nerdctls_files_are_its_own_only_on_their_destination() -> None:
    for path, dest in (("containers/default/c0ffee/resolv.conf", "/etc/hosts"),
                       ("containers/default/c0ffee/hosts", "/etc/hosts"),
                       ("containers/default/c0ffee/shm", "/srv"),
                       ("containers/default/beef/resolv.conf", "/etc/resolv.conf")):
        s = _nerdctls()
        s["mounts"].append({"type": "none", "source": f"{DATA}/{path}", "destination": dest, "options": ["rbind"]})
        assert "host-paths" in judged(runtime_spec.nerdctls_own(s, NERDCTL, "default", "c0ffee"),
                                      launch=_launch("c0ffee")), path
    typeless = _nerdctls()  # a "none" mount that binds nothing is not nerdctl's
    typeless["mounts"].append({"type": "none", "source": f"{DATA}/volumes/default/v/_data", "destination": "/v"})
    assert judged(runtime_spec.nerdctls_own(typeless, NERDCTL, "default", "c0ffee"), launch=_launch("c0ffee")) != []


def test_a_bind_mount_is_judged_where_its_links_lead() -> None:
    s = spec("default")
    s["mounts"].append({"type": "bind", "source": "/srv/data/link", "destination": "/mnt", "options": ["rbind"]})
    allow = Allowances(host_paths=(("/srv/data", True),))
    links = {"/srv/data/link": "/etc"}
    req = runtime_spec.requested(s, never_host, resolve=lambda p: links.get(p, p))
    got = rules.refusals_of(req, Settings(profile="baseline", level="Low", allow=allow))
    assert [r.rule for r in got] == ["host-paths"]
    assert "/srv/data/link, which is /etc" in got[0].option
    assert "/etc" in got[0].allow  # the allowance that would admit it names where it leads
    req = runtime_spec.requested(s, never_host, resolve=lambda p: p)  # not a link: allowed
    assert rules.refusals_of(req, Settings(profile="baseline", level="Low", allow=allow)) == ()


def test_a_mount_namespace_is_not_joined_by_path() -> None:
    s = spec("default")
    s["linux"]["namespaces"] = [n if n["type"] != "mount" else {"type": "mount", "path": "/proc/4242/ns/mnt"}
                                for n in s["linux"]["namespaces"]]
    assert judged(s) == ["unknown"]
    assert judged(s, "privileged") == []
