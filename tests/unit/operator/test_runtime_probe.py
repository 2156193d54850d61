"""shim.operator.runtime_probe, pure: the status line on the runtime gate, judged from what containerd runs."""

from __future__ import annotations

import tomllib

import pytest

from shim.operator import runtime_probe as rp


def seen(**kw: object) -> rp.Seen:
    base: dict[str, object] = {"containerd": "/run/containerd/containerd.sock", "pid": 42,
                               "path": "/usr/local/sbin:/usr/sbin", "first_runc": "/usr/local/sbin/runc",
                               "first_is_gate": True, "real_runc": "/usr/sbin/runc", "real_runc_runs": True}
    base.update(kw)
    return rp.Seen(**base)  # type: ignore[arg-type]


def test_a_containerd_that_runs_the_gate_is_ok() -> None:
    state, summary, fix = rp.judge(seen())
    assert state == "ok"
    assert fix is None
    assert "/usr/local/sbin/runc" in summary
    assert "/usr/sbin/runc" in summary
    assert "pid 42" in summary


@pytest.mark.parametrize("first", ["/usr/sbin/runc", None])
def test_a_containerd_that_runs_another_runc_is_not_enabled(first: str | None) -> None:
    state, summary, fix = rp.judge(seen(first_runc=first, first_is_gate=False))
    assert state == "warn"
    assert fix == rp.ENABLE
    assert "not enabled" in summary
    assert "not checked" in summary


def test_a_gate_whose_real_runc_cannot_run_fails() -> None:
    state, summary, fix = rp.judge(seen(real_runc_runs=False))
    assert state == "fail"
    assert fix is not None
    assert "[runtime] runc" in fix
    assert "every container is refused" in summary


def test_a_runtime_that_names_its_binary_is_said_to_bypass_the_gate() -> None:
    where = 'plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runc.options'
    state, summary, fix = rp.judge(seen(binary_names=((where, "/opt/runc"),)))
    assert state == "warn"
    assert fix is not None
    assert "BinaryName" in fix
    assert "/opt/runc" in summary
    assert "do not meet the gate" in summary


def test_binary_names_are_found_wherever_they_are() -> None:
    table = tomllib.loads('''
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "/opt/bin/runc"
  SystemdCgroup = true
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.empty.options]
  BinaryName = ""
''')
    assert list(rp.binary_names(table)) == [
        ("plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runc.options", "/opt/bin/runc")]


@pytest.mark.parametrize(("cmdline", "want"), [
    (["--config", "/etc/c.toml"], "/etc/c.toml"), (["-c", "/etc/c.toml"], "/etc/c.toml"),
    (["--config=/etc/c.toml"], "/etc/c.toml"), (["-config=/x.toml", "--log-level", "debug"], "/x.toml"),
    (["--log-level", "debug"], None), (["--config"], None), ([], None),
])
def test_containerds_config_flag_is_read_as_go_reads_it(cmdline: list[str], want: str | None) -> None:
    assert rp.config_argument(cmdline) == want
