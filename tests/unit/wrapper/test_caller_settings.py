"""The global settings a caller's environment hands nerdctl under sudo, judged as the flags they stand for.

nerdctl takes ``--cni-path`` from ``CNI_PATH``, ``--snapshotter`` from ``CONTAINERD_SNAPSHOTTER`` … when the
command line does not give them, and every setting from the nerdctl.toml ``NERDCTL_TOML`` names
(cmd/nerdctl/main.go, pkg/config/config.go). Before, the container profile judged only the command line: under
a sudo that keeps the caller's environment, ``CNI_PATH=/home/op/bin nerdctl run …`` made nerdctl run the
caller's programs as root although ``--cni-path=/home/op/bin`` was refused.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.admission.profiles import from_argv
from shim.admission.profiles.rules import Allowances, Settings, refusals_of
from shim.wrapper import argv as nargv
from shim.wrapper import main as wrapper_main
from shim.wrapper.nerdctl_env import caller_settings

SUDO = {"SUDO_USER": "nobody", "SUDO_UID": "65534", "SUDO_GID": "65534", "SUDO_COMMAND": "/usr/local/bin/nerdctl"}
BASELINE = Settings(profile="baseline", level="Low", allow=Allowances(), global_flags={})


def test_outside_sudo_the_environment_is_the_callers_own() -> None:
    assert caller_settings(set(), {"CNI_PATH": "/x", "CONTAINERD_SNAPSHOTTER": "native"}) == ()


def test_under_sudo_each_variable_stands_for_its_flag() -> None:
    env = {**SUDO, "CNI_PATH": "/home/op/cni", "NETCONFPATH": "/home/op/net.d", "CONTAINERD_SNAPSHOTTER": "native",
           "NERDCTL_BRIDGE_IP": "10.9.0.1", "NERDCTL_EXPERIMENTAL": "1",
           "CONTAINERD_ADDRESS": "/run/x.sock", "CONTAINERD_NAMESPACE": "x"}  # these two: pinned, not listed
    assert caller_settings(set(), env) == (
        ("snapshotter", "native", "$CONTAINERD_SNAPSHOTTER"), ("cni-path", "/home/op/cni", "$CNI_PATH"),
        ("cni-netconfpath", "/home/op/net.d", "$NETCONFPATH"), ("experimental", "1", "$NERDCTL_EXPERIMENTAL"),
        ("bridge-ip", "10.9.0.1", "$NERDCTL_BRIDGE_IP"))
    # the command line wins over the environment (nerdctl's precedence): the variable is then not read
    assert caller_settings({"cni-path"}, {**SUDO, "CNI_PATH": "/home/op/cni"}) == ()


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="bacon-caller-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as the caller needs root")
def test_under_sudo_the_callers_nerdctl_toml_stands_for_its_flags(readable_dir: Path) -> None:
    toml = readable_dir / "nerdctl.toml"
    toml.write_text('cni_path = "/home/op/cni"\nhosts_dir = ["/etc/containerd/certs.d", "/home/op/certs"]\n'
                    'selinux_enabled = false\nnamespace = "k8s.io"\ndebug = true\n')
    toml.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    env = {**SUDO, "SUDO_UID": str(nobody.pw_uid), "SUDO_GID": str(nobody.pw_gid), "NERDCTL_TOML": str(toml),
           "CNI_PATH": "/from/env"}
    got = caller_settings(set(), env)
    assert got == (
        ("cni-path", "/from/env", "$CNI_PATH"),  # the variable wins over the file, as in nerdctl
        ("hosts-dir", "/etc/containerd/certs.d", f"{toml}: hosts_dir"),
        ("hosts-dir", "/home/op/certs", f"{toml}: hosts_dir"),
        ("selinux-enabled", "false", f"{toml}: selinux_enabled"), ("debug", "true", f"{toml}: debug"))
    refused = refusals_of(from_argv.requested(nargv.parse(["run", "img"]), got), BASELINE)
    assert {r.rule for r in refused} == {"global-flags"}
    assert any(r.option.startswith("$CNI_PATH=/from/env") for r in refused)
    assert any(r.allow == '[global_flags] cni_path = ["/from/env"]' for r in refused)
    # without NERDCTL_TOML the file is root's own /etc/nerdctl/nerdctl.toml: the administrator's, not judged
    assert caller_settings(set(), {**SUDO}) == ()


@pytest.mark.parametrize(("argv", "env"), [
    (["run", "img"], {"CNI_PATH": "/home/op/cni"}),
    (["ps"], {"CNI_PATH": "/home/op/cni"}),
    (["network", "create", "n1"], {"NETCONFPATH": "/etc"}),
    (["pull", "img"], {"CONTAINERD_SNAPSHOTTER": "native"}),
])
def test_under_sudo_the_profile_refuses_them_as_it_refuses_the_flags(argv: list[str], env: dict[str, str]) -> None:
    inv = nargv.parse(argv)
    settings = caller_settings(set(), {**SUDO, **env})
    refused = refusals_of(from_argv.requested(inv, settings), BASELINE)
    assert [r.rule for r in refused] == ["global-flags"]
    ((_var, value),) = env.items()
    allowed = Settings(profile="baseline", level="Low", allow=Allowances(),
                       global_flags={settings[0][0]: frozenset({value})})
    assert refusals_of(from_argv.requested(inv, settings), allowed) == ()


def test_a_forwarded_command_asks_the_profile_when_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch,
                                                                            readable_dir: Path) -> None:
    for k in ("SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND", "DOAS_USER", "PKEXEC_UID", "NERDCTL_TOML",
              "CNI_PATH", "NETCONFPATH", "CONTAINERD_SNAPSHOTTER", "NERDCTL_HOST_GATEWAY_IP", "NERDCTL_BRIDGE_IP"):
        monkeypatch.delenv(k, raising=False)
    ps = nargv.parse(["ps"])
    monkeypatch.setenv("CNI_PATH", "/home/op/cni")
    assert not wrapper_main._caller_sets_globals(ps)  # outside sudo: the caller's own
    nobody = pwd.getpwnam("nobody")
    for k, v in {**SUDO, "SUDO_UID": str(nobody.pw_uid), "SUDO_GID": str(nobody.pw_gid)}.items():
        monkeypatch.setenv(k, v)
    assert wrapper_main._caller_sets_globals(ps)
    assert not wrapper_main._caller_sets_globals(nargv.parse(["--cni-path=/opt/cni/bin", "ps"]))  # the flag wins
    monkeypatch.delenv("CNI_PATH")
    monkeypatch.setenv("NERDCTL_EXPERIMENTAL", "1")  # allowed: costs nothing
    monkeypatch.setenv("CONTAINERD_ADDRESS", "/run/c.sock")  # pinned for admissions
    assert not wrapper_main._caller_sets_globals(ps)
    toml = readable_dir / "nerdctl.toml"
    monkeypatch.setenv("NERDCTL_TOML", str(toml))
    assert not wrapper_main._caller_sets_globals(ps)  # no such file: nerdctl reads none
    toml.write_text('namespace = "k8s.io"\ndebug = true\n')
    toml.chmod(0o644)
    assert not wrapper_main._caller_sets_globals(ps)  # only allowed settings
    toml.write_text('data_root = "/home/op/state"\n')
    if os.geteuid() == 0:
        assert wrapper_main._caller_sets_globals(ps)


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as the caller needs root")
def test_under_sudo_nerdctl_reads_the_sealed_copy_that_was_judged(readable_dir: Path) -> None:
    """The caller owns the file: judged, then swapped for one with `cni_path = …` before nerdctl read it, it
    would have passed. Now the wrapper reads it once as the caller and hands nerdctl (and the decision) a
    sealed copy of those bytes."""
    from shim.common.errors import ConfigError
    from shim.wrapper import inputs
    from shim.wrapper.exec import run_real

    toml = readable_dir / "nerdctl.toml"
    toml.write_text('namespace = "k8s.io"\n')
    toml.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    env = {**SUDO, "SUDO_UID": str(nobody.pw_uid), "SUDO_GID": str(nobody.pw_gid), "NERDCTL_TOML": str(toml)}
    [fd] = inputs.seal_nerdctl_toml(env)
    try:
        assert env["NERDCTL_TOML"] == f"/proc/self/fd/{fd}"
        assert inputs.seal_nerdctl_toml(env) == []  # already a sealed copy: kept
        toml.write_text('cni_path = "/home/op/cni"\n')  # the swap, after the decision read it
        assert caller_settings(set(), env) == ()  # the decision reads the copy
        expected = readable_dir / "expected"
        expected.write_text('namespace = "k8s.io"\n')
        # a nerdctl started as a child (pull then tag, build, push) inherits the copy and reads those bytes
        os.environ["NERDCTL_TOML"] = env["NERDCTL_TOML"]
        try:
            assert run_real("/bin/sh", ["-c", f'cmp -s "$NERDCTL_TOML" {expected}']) == 0
        finally:
            del os.environ["NERDCTL_TOML"]
    finally:
        os.close(fd)
    # outside sudo nothing changes; under sudo a path root sees nothing at becomes "" (nerdctl: no file)
    plain = {"NERDCTL_TOML": str(toml)}
    assert inputs.seal_nerdctl_toml(plain) == []
    assert plain["NERDCTL_TOML"] == str(toml)
    missing = {**env, "NERDCTL_TOML": str(readable_dir / "absent.toml")}
    assert inputs.seal_nerdctl_toml(missing) == []
    assert missing["NERDCTL_TOML"] == ""
    # a file the caller cannot read is a configuration error, not a silent pass
    toml.chmod(0o600)
    with pytest.raises(ConfigError, match="NERDCTL_TOML"):
        inputs.seal_nerdctl_toml({**env, "NERDCTL_TOML": str(toml)})
