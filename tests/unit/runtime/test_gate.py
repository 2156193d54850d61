"""The runtime gate's own rules, over data: which containerd container a create is for, what the OCI
spec's root may be, which containerd to ask, the [runtime] section, and the refusal line containerd
hands back to its client (runc's --log file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shim.common.errors import ConfigError, Denied
from shim.runtime import argv as runtime_argv
from shim.runtime import gate as runtime_gate
from shim.runtime import main as runtime_client

BUNDLE = "/run/containerd/io.containerd.runtime.v2.task/team/c1"


def call(*argv: str) -> runtime_argv.Call:
    return runtime_argv.parse(list(argv))


def test_the_namespace_is_the_bundles_parent() -> None:
    at = runtime_gate.where(call("--root", "/run/containerd/runc/team", "create", "--bundle", BUNDLE, "c1"), "/")
    assert (at.namespace, at.container_id, str(at.bundle)) == ("team", "c1", BUNDLE)
    assert runtime_gate.where(call("create", "c1"), BUNDLE).bundle == Path(BUNDLE)  # runc: the cwd


@pytest.mark.parametrize("argv", [
    ("create", "--bundle", BUNDLE, "c2"),  # the bundle is another container's
    ("--root", "/run/containerd/runc/other", "create", "--bundle", BUNDLE, "c1"),
    ("create", "--bundle", "/c1", "c1"),
    ("create", "--bundle", "/tmp/team/c1", "c1"),
])
def test_a_create_that_is_not_a_containerd_task_is_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(Denied) as e:
        runtime_gate.where(call(*argv), "/")
    assert e.value.check == "runtime"


@pytest.mark.parametrize("path", ["rootfs", BUNDLE + "/rootfs", "./rootfs"])
def test_the_spec_root_is_the_bundles_rootfs(path: str) -> None:
    runtime_gate.check_spec({"root": {"path": path}}, Path(BUNDLE))


@pytest.mark.parametrize("spec", [{}, {"root": None}, {"root": {"path": "/"}}, {"root": {"path": "../rootfs"}},
                                  {"root": {"path": "rootfs/.."}}, {"root": {"path": 1}}, {"root": "rootfs"}])
def test_any_other_root_is_refused(spec: dict[str, object]) -> None:
    with pytest.raises(Denied) as e:
        runtime_gate.check_spec(spec, Path(BUNDLE))
    assert e.value.check == "spec"


def test_which_containerd_is_asked() -> None:
    s = runtime_gate.Settings(runc="/usr/sbin/runc", containerd=None)
    assert runtime_gate.containerd_address(s, {"TTRPC_ADDRESS": "/run/x/c.sock.ttrpc"}) == "/run/x/c.sock"
    assert runtime_gate.containerd_address(s, {"TTRPC_ADDRESS": "relative.ttrpc"}) == runtime_gate.DEFAULT_CONTAINERD
    assert runtime_gate.containerd_address(s, {}) == runtime_gate.DEFAULT_CONTAINERD
    configured = runtime_gate.Settings(runc="/usr/sbin/runc", containerd="/c.sock")
    assert runtime_gate.containerd_address(configured, {"TTRPC_ADDRESS": "/x.ttrpc"}) == "/c.sock"


@pytest.mark.parametrize("section", [{"runc": "runc"}, {"containerd": "c.sock"}, {"runc": 1}, {"other": "/x"}])
def test_the_runtime_section_is_checked(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        runtime_gate.settings(section, "/etc/bacon/config.toml")


def test_a_refusal_is_written_where_containerd_reads_runcs_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.json"
    runtime_client.report({"log": str(log), "log-format": "json"}, "bacon: denied: image x: check signature failed: no")
    line = json.loads(log.read_text())
    assert line["level"] == "error"
    assert line["msg"] == "bacon: denied: image x: check signature failed: no"
    assert capsys.readouterr().err.startswith("bacon: denied:")
    text = tmp_path / "log.txt"
    runtime_client.report({"log": str(text)}, 'bacon: denied: "quoted"')
    assert 'level=error msg="bacon: denied: \\"quoted\\""' in text.read_text()


def test_an_argv_the_gate_cannot_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime_client.main(["create", "--unknown", "c1"]) == 77
    assert capsys.readouterr().err.startswith("bacon: denied: check runtime failed:")


def test_a_create_outside_a_containerd_bundle_is_refused_and_audited(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path.chmod(0o755)
    config = tmp_path / "config.toml"
    audit_log = tmp_path / "audit.jsonl"
    config.write_text(f'level = "Low"\nnerdctl = "/bin/true"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'audit_log = "{audit_log}"\n[runtime]\nrunc = "/bin/true"\n')
    config.chmod(0o644)
    monkeypatch.setenv("BACON_CONFIG", str(config))
    with pytest.raises(Denied):
        runtime_gate.plan(["create", "--bundle", "/tmp/nowhere/c1", "c1"])
    (line,) = [json.loads(x) for x in audit_log.read_text().splitlines()]
    assert line["verdict"] == "denied"
    assert line["layer"] == "runtime"
    assert line["failed_check"] == "runtime"
    assert line["container"] == "c1"


@pytest.mark.parametrize(("spec", "says"), [
    (b'{"root": {"path": "rootfs"}, "root": {"path": "/"}}', "duplicate key 'root'"),  # which one would runc use?
    (b'{"root": {"path": "rootfs"}, "process": {"oomScoreAdj": NaN}}', "NaN is not JSON"),
    (b'{"root": {"path": "rootfs"}, "x": ' + b"[" * 200 + b"]" * 200 + b"}", "nested more than 64 deep"),
    (b"[]", "is not a JSON object"),
    (b'{"root": {"path": "rootfs"}} ' + b" " * runtime_gate.MAX_SPEC, "larger than"),
])
def test_the_spec_is_read_strictly(tmp_path: Path, spec: bytes, says: str) -> None:
    (tmp_path / "config.json").write_bytes(spec)
    with pytest.raises(Denied, match=says) as e:
        runtime_gate.read_spec(tmp_path)
    assert e.value.check == "spec"
    assert str(tmp_path / "config.json") in e.value.message
