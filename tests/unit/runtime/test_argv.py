"""runc's argv as the runtime gate reads it (shim.runtime.argv), and the shell launcher checked against
that reading on the same argvs: a verb goes straight to the real runc only when both say it may."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shim.runtime import argv as runtime_argv
from shim.runtime.argv import RuncUsage, parse

SHIM_CREATE = ["--root", "/run/containerd/runc/default", "--log", "/b/default/c1/log.json", "--log-format", "json",
               "create", "--bundle", "/b/default/c1", "--pid-file", "/b/default/c1/init.pid", "c1"]


def test_the_shims_create_is_read_as_runc_reads_it() -> None:
    call = parse(SHIM_CREATE)
    assert call.verb == "create"
    assert call.container_id == "c1"
    assert call.flags["bundle"] == "/b/default/c1"
    assert call.globals == {"root": "/run/containerd/runc/default", "log": "/b/default/c1/log.json",
                            "log-format": "json"}


@pytest.mark.parametrize("argv", [
    ["-root=/r", "-systemd-cgroup", "create", "-b", "/b/ns/c1", "c1"],
    ["--debug=false", "run", "--detach", "--bundle=/b/ns/c1", "--", "c1"],
    ["create", "--no-pivot", "--no-new-keyring", "--console-socket", "/s", "--preserve-fds", "2", "c1"],
])
def test_flag_spellings_go_accepts(argv: list[str]) -> None:
    call = parse(argv)
    assert call.container_id == "c1"
    assert call.verb in ("create", "run")


@pytest.mark.parametrize("argv", [
    ["create", "--bundle", "/b", "c1", "--pid-file", "/p"],  # urfave/cli would move the flag: not read here
    ["create", "--unknown-flag", "c1"],
    ["create", "-b", "/a", "--bundle", "/b", "c1"],
    ["create", "--bundle", "/a", "--bundle", "/b", "c1"],
    ["create"],
    ["create", "c1", "c2"],
    ["--future-global", "create", "c1"],
    ["---root", "/r", "create", "c1"],
    ["--debug=maybe", "create", "c1"],
    ["restore", "--image-path", "/i", "c1"],
    ["create", "--bundle"],
])
def test_what_runc_might_read_otherwise_is_refused(argv: list[str]) -> None:
    with pytest.raises(RuncUsage):
        parse(argv)


def test_other_verbs_are_not_read_further() -> None:
    assert parse(["--root", "/r", "state", "c1"]).verb == "state"
    assert parse(["--version"]).verb == ""
    assert parse(["delete", "--force", "c1"]).args == ["--force", "c1"]


# -- the launcher against the parser ------------------------------------------------------------------

CASES = [
    SHIM_CREATE,
    ["--root", "/r", "--log", "/l", "--log-format", "json", "start", "c1"],
    ["--root", "/r", "state", "c1"],
    ["--root=/r", "delete", "--force", "c1"],
    ["-root", "/r", "-log", "/l", "kill", "c1", "9"],
    ["--debug", "--systemd-cgroup", "exec", "--process", "/p.json", "c1"],
    ["--root", "create", "state"],  # the value of --root is "create", the verb is state
    ["--root", "/r", "run", "c1"],
    ["--log-format", "start", "create", "c1"],
    ["--unknown", "state", "c1"],
    ["--", "state", "c1"],
    ["-", "state"],
    ["--version"],
    ["--help", "state"],
    ["restore", "c1"],
    ["--root", "/r", "checkpoint", "--image-path", "/etc", "c1"],  # CRIU writes as root: the gate decides
    ["--root"],
    [],
    ["State", "c1"],
    ["--debug", "false", "state", "c1"],
]


def _expected(argv: list[str]) -> str:
    try:
        call = parse(argv)
    except RuncUsage:
        return "GATE"
    return "REAL" if call.verb in runtime_argv.PASS_THROUGH else "GATE"


def test_the_launcher_passes_through_exactly_what_the_parser_passes_through(tmp_path: Path) -> None:
    real, gate = tmp_path / "real", tmp_path / "gate"
    for p, word in ((real, "REAL"), (gate, "GATE")):
        p.write_text(f'#!/bin/sh\necho {word} "$#" "$@"\n')
        p.chmod(0o755)
    launcher = tmp_path / "runc"
    launcher.write_text(runtime_argv.launcher(str(real), str(gate), {"BACON_CONFIG": "/x y/'quoted'"}))
    launcher.chmod(0o755)
    for argv in CASES:
        out = subprocess.run([str(launcher), *argv], capture_output=True, text=True, check=True).stdout.split()
        # Whichever it runs, it gets the argv unchanged.
        assert out[1:] == [str(len(argv)), *argv], argv
        want = _expected(argv)
        # The launcher may send more to the gate (which reads it fully), never more to the real runc.
        assert out[0] == want or (out[0] == "GATE" and want == "REAL"), (argv, out[0], want)
    assert subprocess.run([str(launcher), "state", "c1"], capture_output=True, text=True).stdout.startswith("REAL")
    assert subprocess.run([str(launcher), "checkpoint", "c1"], capture_output=True, text=True).stdout.startswith("GATE")


def test_the_launcher_gives_the_gate_its_environment_only(tmp_path: Path) -> None:
    real, gate = tmp_path / "real", tmp_path / "gate"
    for p in (real, gate):
        p.write_text('#!/bin/sh\necho "${BACON_CONFIG-unset}"\n')
        p.chmod(0o755)
    launcher = tmp_path / "runc"
    launcher.write_text(runtime_argv.launcher(str(real), str(gate), {"BACON_CONFIG": "/x y/'q'"}))
    launcher.chmod(0o755)
    assert subprocess.run([str(launcher), *SHIM_CREATE], capture_output=True, text=True).stdout == "/x y/'q'\n"
    assert subprocess.run([str(launcher), "state", "c1"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}).stdout == "unset\n"


def test_checkpoint_goes_to_the_gate_and_is_read_as_runc_reads_it() -> None:
    argv = ["--root", "/run/containerd/runc/default", "checkpoint", "--image-path", "/tmp/i", "--work-path=/w",
            "--leave-running", "--empty-ns", "network", "c1"]
    call = parse(argv)
    assert call.verb in runtime_argv.DECIDED
    assert call.verb not in runtime_argv.PASS_THROUGH
    assert (call.container_id, call.flags["image-path"], call.flags["work-path"]) == ("c1", "/tmp/i", "/w")
    assert call.lists == {"empty-ns": ["network"]}
    for bad in (["checkpoint", "--image-path", "/a", "--image-path", "/b", "c1"],  # which one would runc take?
                ["checkpoint", "--no-such-flag", "c1"], ["checkpoint", "c1", "c2"], ["checkpoint"]):
        with pytest.raises(RuncUsage):
            parse(bad)
