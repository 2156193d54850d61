"""The profile decision over parsed command lines: every Pod Security Standards control and every host-code
path BACON adds, refused under baseline and restricted and admitted under privileged; ordinary runs
admitted under baseline; restricted's requirements; allowances; the configuration's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.admission.profiles import from_argv
from shim.admission.profiles.request import Ask, Requested
from shim.admission.profiles.rules import RULES, Allowances, Refusal, Settings, refusals_of
from shim.common import config as bconfig
from shim.common.errors import ConfigError
from shim.wrapper.argv import parse


def refusals(argv: list[str], profile: str, allow: Allowances | None = None,
             global_flags: dict[str, frozenset[str]] | None = None) -> tuple[Refusal, ...]:
    req = from_argv.requested(parse(argv))
    return refusals_of(req, Settings(profile=profile, level="Low", allow=allow or Allowances(),
                                global_flags=global_flags or {}))


# (argv, the rule that refuses it). Each PSS control, then each place nerdctl runs host code or touches
# host files as root.
ESCALATIONS: list[tuple[list[str], str]] = [
    (["run", "--privileged", "img"], "privileged"),
    (["run", "--pid=host", "img"], "host-namespaces"),
    (["run", "--ipc=host", "img"], "host-namespaces"),
    (["run", "--network=host", "img"], "host-namespaces"),
    (["run", "--net", "host", "img"], "host-namespaces"),
    (["run", "--network=ns:/proc/1/ns/net", "img"], "host-namespaces"),
    (["run", "--uts=host", "img"], "host-namespaces"),
    (["run", "--cgroupns=host", "img"], "host-namespaces"),
    (["run", "--cap-add=ALL", "img"], "capabilities"),
    (["run", "--cap-add", "SYS_ADMIN", "img"], "capabilities"),
    (["run", "--cap-add=cap_sys_ptrace", "img"], "capabilities"),
    (["run", "-v", "/:/host", "img"], "host-paths"),
    (["run", "-v", "/etc:/etc:ro", "img"], "host-paths"),
    (["run", "-v", "./here:/x", "img"], "host-paths"),
    (["run", "--mount", "type=bind,src=/etc,dst=/x", "img"], "host-paths"),
    (["run", "--mount", "TYPE=bind,SOURCE=/,Target=/x,readonly", "img"], "host-paths"),
    (["run", "--security-opt", "seccomp=/p.json", "--security-opt", "seccomp=unconfined", "--security-opt",
      "seccomp=/p.json", "img"], "unknown"),  # nerdctl: de-duplicated, then the last: unconfined
    (["run", "--security-opt", "no-new-privileges", "--security-opt", "no-new-privileges=false", "img"], "unknown"),
    (["run", "--mount", "type=volume,src=/var/lib,dst=/x", "img"], "host-paths"),
    (["run", "--device", "/dev/mem", "img"], "devices"),
    (["run", "--gpus", "all", "img"], "devices"),
    (["run", "--security-opt", "seccomp=unconfined", "img"], "seccomp"),
    (["run", "--security-opt", "seccomp=/etc/shadow", "img"], "seccomp"),
    (["run", "--security-opt", "apparmor=unconfined", "img"], "apparmor"),
    (["run", "--security-opt", "label=disable", "img"], "selinux"),
    (["run", "--security-opt", "label=type:spc_t", "img"], "selinux"),
    (["run", "--security-opt", "label=user:system_u", "img"], "selinux"),
    (["run", "--security-opt", "systempaths=unconfined", "img"], "proc-mount"),
    (["run", "--sysctl", "kernel.core_pattern=|/tmp/x", "img"], "sysctls"),
    (["run", "--sysctl", "net.ipv4.ip_forward=1", "img"], "sysctls"),
    (["run", "--runtime=/any/program", "img"], "runtime"),
    (["run", "--runtime=crun", "img"], "runtime"),
    (["run", "--log-driver=binary:///any/program", "img"], "log-driver"),
    (["run", "--log-opt", "log-path=/etc/cron.d/x", "img"], "log-options"),
    (["run", "--cidfile", "/etc/ld.so.preload", "img"], "host-files"),
    (["run", "--pidfile", "/etc/passwd", "img"], "host-files"),
    (["run", "--annotation", "run.oci.handler=krun", "img"], "annotations"),
    (["run", "--cgroup-parent", "/", "img"], "cgroups"),
    (["run", "--security-opt", "writable-cgroups=true", "img"], "cgroups"),
    (["run", "--init-binary", "/usr/bin/anything", "--init", "img"], "host-code"),
    (["run", "--volumes-from", "other", "img"], "host-code"),
    (["run", "--verify=cosign", "--cosign-key=/root/key", "img"], "host-code"),
    (["run", "--security-opt", "mystery=1", "img"], "unknown"),
    (["run", "--pid", "weird", "img"], "unknown"),
    (["--cni-path=/any/dir", "run", "img"], "global-flags"),
    (["--cni-netconfpath=/tmp/net", "ps"], "global-flags"),
    (["--data-root=/etc", "rm", "x"], "global-flags"),
    (["--hosts-dir=/root", "pull", "img"], "global-flags"),
    (["--cdi-spec-dirs=/tmp/cdi", "run", "img"], "global-flags"),
    (["--address=/tmp/other.sock", "ps"], "global-flags"),
    (["--snapshotter=native", "run", "img"], "global-flags"),
    (["internal", "oci-hook", "createRuntime"], "host-code"),
    (["cp", "/etc/shadow", "ctr:/x"], "host-files"),
    (["container", "cp", "ctr:/x", "/etc/cron.d/x"], "host-files"),
    (["save", "-o", "/etc/passwd", "img"], "host-files"),
    (["save", "--output=/etc/passwd", "img"], "host-files"),
    (["image", "save", "-qo/x", "img"], "host-files"),
    (["load", "-i", "/root/backup.tar"], "host-files"),
    (["export", "-o", "/etc/x", "ctr"], "host-files"),
    (["import", "/root/backup.tar", "x"], "host-files"),
    (["build", "-f", "-", "/etc"], "host-files"),
    (["build", "--secret", "id=x,src=/etc/shadow", "."], "host-files"),
    (["build", "--allow", "security.insecure", "."], "host-files"),
    (["compose", "-f", "/etc/shadow", "config"], "host-files"),
    (["exec", "--privileged", "ctr", "sh"], "privileged"),
    (["pull", "--verify=cosign", "img"], "host-code"),
    (["push", "--sign=cosign", "--cosign-key=/root/k", "img"], "host-code"),
    (["start", "--checkpoint-dir", "/root", "ctr"], "host-files"),
    (["apparmor", "unload", "nerdctl-default"], "host-code"),
    (["ipfs", "registry", "serve"], "host-code"),
]


@pytest.mark.parametrize(("argv", "rule"), ESCALATIONS, ids=[" ".join(a) for a, _ in ESCALATIONS])
def test_escalations_are_refused_under_baseline_and_restricted_and_admitted_under_privileged(
        argv: list[str], rule: str) -> None:
    for profile in ("baseline", "restricted"):
        got = refusals(argv, profile)
        assert rule in {r.rule for r in got}, (profile, got)
        r = next(r for r in got if r.rule == rule)
        assert (r.profile, r.level) == (profile, "Low")
        assert r.allow.startswith(("[levels.Low", "[global_flags]")), r.allow
    assert refusals(argv, "privileged") == ()


def test_every_rule_is_exercised() -> None:
    used = {rule for _, rule in ESCALATIONS}
    # restricted's own, and one only an OCI spec can break (nerdctl always sets a seccomp profile)
    assert set(RULES) - used == {"run-as-non-root", "privilege-escalation", "restricted-capabilities",
                                 "seccomp-required"}


ORDINARY = [
    ["run", "--rm", "img"],
    ["run", "-d", "--name", "web", "-p", "8080:80", "-P", "--expose", "90", "img"],
    ["run", "-v", "data:/var/lib/data", "-v", "/anon", "--mount", "type=volume,src=vol,dst=/v", "img"],
    ["run", "--tmpfs", "/tmp", "--mount", "type=tmpfs,dst=/t", "img"],
    ["run", "-e", "A=1", "--env", "B=2", "-l", "team=a", "img", "sh", "-c", "echo hi"],
    ["run", "--env-file", "app.env", "--label-file=labels", "img"],  # read as the caller (shim.wrapper.inputs)
    ["run", "--cap-drop", "NET_RAW", "--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE", "img"],
    ["run", "--read-only", "--user", "1000:1000", "-w", "/app", "img"],
    ["run", "--user", "nobody", "--memory", "256m", "--cpus", "1", "--pids-limit", "100", "img"],
    ["run", "--network", "bridge", "--network=container:other", "--ipc=private", "--pid=container:x", "img"],
    ["run", "--security-opt", "no-new-privileges", "--security-opt", "apparmor=my-profile", "img"],
    ["run", "--security-opt", "label=type:container_t", "--security-opt", "label=level:s0:c1", "img"],
    ["run", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0", "img"],
    ["run", "--log-driver=json-file", "--log-opt", "max-size=10m", "--runtime=io.containerd.runc.v2", "img"],
    ["run", "--mount", "type=image,source=other,target=/o", "img"],
    ["--namespace=team", "--debug", "run", "img"],
    ["exec", "-it", "-w", "/", "-e", "A=1", "ctr", "sh"],
    ["exec", "--user", "0", "ctr", "id"],
    ["exec", "--env-file", "app.env", "ctr", "env"],  # read as the caller (shim.wrapper.inputs)
    ["save", "img"], ["load"], ["export", "ctr"],
    ["ps", "-a"], ["logs", "-f", "ctr"], ["images"], ["rm", "-f", "ctr"], ["network", "ls"],
    ["apparmor", "ls"], ["pull", "img"], ["push", "img"], ["start", "-a", "ctr"], ["restart", "ctr"],
]


@pytest.mark.parametrize("argv", ORDINARY, ids=[" ".join(a) for a in ORDINARY])
def test_ordinary_commands_are_admitted_under_baseline(argv: list[str]) -> None:
    assert refusals(argv, "baseline") == ()


def test_restricted_requires_a_non_root_user_no_new_privileges_and_dropped_capabilities() -> None:
    ok = ["run", "--user=1000", "--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE", "--security-opt",
          "no-new-privileges=true", "img"]
    assert refusals(ok, "restricted") == ()
    got = {r.rule for r in refusals(["run", "img"], "restricted")}
    assert got == {"run-as-non-root", "privilege-escalation", "restricted-capabilities"}
    for user in ("0", "root", "0:1000", "nobody", ""):
        rules = {r.rule for r in refusals(["run", f"--user={user}", "--cap-drop=ALL", "--security-opt",
                                           "no-new-privileges", "img"], "restricted")}
        assert rules == {"run-as-non-root"}, user
    # exec into a running container: judged on what it asks
    assert {r.rule for r in refusals(["exec", "-u", "root", "c", "id"], "restricted")} == {"run-as-non-root"}
    assert refusals(["exec", "c", "id"], "restricted") == ()
    assert refusals(["exec", "-u", "1000", "c", "id"], "restricted") == ()


def test_allowances_are_narrow() -> None:
    allow = Allowances(host_paths=(("/srv/data", False), ("/var/cache/app", True)),
                       capabilities=frozenset({"NET_ADMIN"}), devices=frozenset({"/dev/fuse"}),
                       sysctls=frozenset({"net.core.somaxconn"}),
                       runtimes=frozenset({"io.containerd.kata.v2"}), log_drivers=frozenset({"syslog"}),
                       host_files=frozenset({"cidfile"}))
    assert refusals(["run", "-v", "/srv/data:/d:ro", "-v", "/srv/data/sub:/s:ro", "-v", "/var/cache/app:/c",
                     "--cap-add=NET_ADMIN", "--device=/dev/fuse", "--sysctl=net.core.somaxconn=1024",
                     "--runtime=io.containerd.kata.v2", "--log-driver=syslog", "--cidfile=/tmp/cid", "img"],
                    "baseline", allow) == ()
    for argv in (["run", "-v", "/srv/data:/d", "img"],  # read-only allowance, asked read-write
                 ["run", "-v", "/srv/database:/d:ro", "img"],  # a sibling with a common prefix
                 ["run", "-v", "/srv:/d:ro", "img"],  # the parent
                 ["run", "-v", "/srv/data/../../etc:/d:ro", "img"],  # out of it again
                 ["run", "-v", "/srv/data/./..:/d:ro", "img"],
                 ["run", "--mount", "type=bind,src=/srv/data//..,dst=/d,readonly", "img"],
                 ["run", "--cap-add=NET_ADMIN", "--cap-add=SYS_ADMIN", "img"],
                 ["run", "--device=/dev/fuse2", "img"],
                 ["run", "--pidfile=/tmp/p", "img"]):
        assert refusals(argv, "baseline", allow), argv
    assert refusals(["--cni-path=/opt/cni/bin", "run", "img"], "baseline",
                    global_flags={"cni-path": frozenset({"/opt/cni/bin"})}) == ()
    got = refusals(["--hosts-dir=/etc/containerd/certs.d,/root", "run", "img"], "baseline",
                   global_flags={"hosts-dir": frozenset({"/etc/containerd/certs.d"})})
    assert [r.allow for r in got] == ['[global_flags] hosts_dir = ["/root"]']


def test_a_refusal_names_the_option_profile_rule_and_the_line_that_would_allow_it() -> None:
    [r] = refusals(["run", "--cap-add", "SYS_ADMIN", "img"], "baseline")
    assert r.option == "--cap-add=SYS_ADMIN"
    assert (r.rule, r.profile) == ("capabilities", "baseline")
    assert r.allow == '[levels.Low.allow] capabilities = ["SYS_ADMIN"]'
    [r] = refusals(["run", "--privileged", "img"], "baseline")
    assert r.allow == '[levels.Low] profile = "privileged"'
    [r] = refusals(["run", "-v", "/srv:/srv", "img"], "baseline")
    assert r.allow == '[levels.Low.allow] host_paths = ["/srv:rw"]'


def test_the_same_rules_apply_to_a_record_built_from_an_oci_spec() -> None:
    """What a runtime gate builds from config.json (no argv) is judged by the same function."""
    req = Requested(privileged=None,
                    host_namespaces=(Ask("pid", "linux.namespaces (no pid namespace)"),),
                    capabilities=frozenset({"CHOWN", "SYS_ADMIN"}),
                    capability_sources=("process.capabilities.bounding",),
                    host_paths=(Ask("/", "mounts[/host] (bind)", read_only=True),),
                    user=Ask("0", "process.user.uid"))
    rules = {r.rule for r in refusals_of(req, Settings(profile="baseline"))}
    assert rules == {"host-namespaces", "capabilities", "host-paths"}
    assert refusals_of(req, Settings(profile="privileged")) == ()
    assert "run-as-non-root" in {r.rule for r in refusals_of(req, Settings(profile="restricted"))}


def test_an_unknown_profile_is_refused() -> None:
    [r] = refusals_of(Requested(), Settings(profile="lenient"))
    assert r.rule == "unknown"


def _cfg(tmp_path: Path, text: str) -> bconfig.Config:
    import tomllib

    return bconfig.parse(tomllib.loads('nerdctl = "/usr/bin/nerdctl"\n' + text), tmp_path / "config.toml")


def test_configuration_profiles_default_to_baseline(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, '[levels.Low]\nprofile = "restricted"\n[levels.High]\nprofile = "privileged"\n'
                         '[levels.Mid.allow]\nhost_paths = ["/srv/data", "/var/cache:rw"]\n'
                         'capabilities = ["cap_net_admin"]\n'
                         '[global_flags]\ncni_path = ["/opt/cni/bin"]\n')
    p = cfg.profiles
    assert (p.profile("Low"), p.profile("Mid"), p.profile("High")) == ("restricted", "baseline", "privileged")
    assert cfg.require["Low"] == ("signature",)  # a level table without require keeps the default
    mid = p.settings("Mid")
    assert mid.allow.host_paths == (("/srv/data", False), ("/var/cache", True))
    assert mid.allow.capabilities == frozenset({"NET_ADMIN"})
    assert p.global_flags == {"cni-path": frozenset({"/opt/cni/bin"})}


@pytest.mark.parametrize(("text", "names"), [
    ('[levels.Low]\nprofile = "lenient"\n', "[levels.Low] profile"),
    ('[levels.Low]\nprofle = "baseline"\n', "profle"),
    ('[levels.Low.allow]\nhostpaths = ["/x"]\n', "hostpaths"),
    ('[levels.Low.allow]\nhost_paths = ["relative"]\n', "host_paths"),
    ('[levels.Low.allow]\nhost_paths = ["/a/../etc"]\n', "host_paths"),
    ('[levels.Low.allow]\ncapabilities = ["ALL"]\n', "capabilities"),
    ('[levels.Low.allow]\ncapabilities = ["CAP_TIME_TRAVEL"]\n', "capabilities"),
    ('[levels.Low.allow]\nhost_files = ["everything"]\n', "host_files"),
    ('[levels.Low.allow]\ndevices = "/dev/fuse"\n', "devices"),
    ('[global_flags]\nnamespace = ["x"]\n', "namespace"),
    ('[global_flags]\ncni_path = "/opt/cni/bin"\n', "cni_path"),
])
def test_bad_profile_settings_are_configuration_errors_naming_the_key(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as e:
        _cfg(tmp_path, text)
    assert names in e.value.message
