"""Files read on the operator's behalf (``run``/``create`` ``--label-file`` and ``--env-file``): regular
files only, bounded, within a time, and under sudo with the caller's permissions; nerdctl (the stand-in,
which reads both files as nerdctl does) is handed sealed copies of exactly what the wrapper read.

sudo is simulated as in test_sudo_env.py (real and effective uid 0, SUDO_* naming ``nobody``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Host, Signed
from tests.integration.refusals import assert_refused, calls, config_text, configure, wrapper
from tests.integration.test_sudo_env import QUICK, System, as_sudo
from tests.integration.test_sudo_env import system as system  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter (pytest's tmp_path is under a 0700 directory for root)."""
    d = Path(tempfile.mkdtemp(prefix="bacon-inputs-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _read_by_nerdctl(host: Host) -> dict[str, str]:
    out: dict[str, str] = json.loads(calls(host)[-1])["read"]
    return out


@pytest.mark.parametrize("flag", ["--label-file", "--env-file"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory", "symlink"])
def test_files_that_are_not_regular_are_refused_quickly(gate_host: Host, signed: Signed, open_dir: Path,
                                                        flag: str, kind: str) -> None:
    configure(gate_host, signed.trusted)
    path = open_dir / "input"
    if kind == "fifo":
        os.mkfifo(path)  # before: the wrapper waited for a writer for ever
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        path.symlink_to("/etc/hostname")
    else:
        path = Path(kind)  # before: read until MemoryError
    r = wrapper(gate_host, "run", "--rm", f"{flag}={path}", signed["low"].ref, timeout=QUICK + 10)
    assert_refused(r, gate_host, rc=77, says=f"{flag} {path}", within=QUICK, check="input")


def test_a_large_file_is_refused(gate_host: Host, signed: Signed, open_dir: Path) -> None:
    configure(gate_host, signed.trusted)
    big = open_dir / "labels"
    big.write_bytes(b"a=b\n" * (1 << 19))
    r = wrapper(gate_host, "run", "--rm", "--label-file", str(big), signed["low"].ref)
    assert_refused(r, gate_host, rc=77, says="larger than", within=QUICK, check="input")


def test_nerdctl_reads_the_copy_the_wrapper_checked(gate_host: Host, signed: Signed, open_dir: Path) -> None:
    configure(gate_host, signed.trusted)
    env, labels = open_dir / "env", open_dir / "labels"
    env.write_text("GREETING=hello\n")
    labels.write_text("team=blue\n")
    r = wrapper(gate_host, "run", "--rm", "--env-file", str(env), f"--label-file={labels},{labels}",
                signed["low"].ref)
    assert r.rc == 0, r.stderr
    [argv] = r.forwarded
    files = [a for a in argv if a.startswith(("--env-file=", "--label-file="))]
    assert all("/proc/self/fd/" in a and str(open_dir) not in a for a in files), files
    assert sorted(_read_by_nerdctl(gate_host).values()) == ["GREETING=hello\n", "team=blue\n"]


def test_under_sudo_files_the_caller_cannot_read_are_refused(gate_host: Host, signed: Signed, system: System,
                                                             open_dir: Path) -> None:
    secret = open_dir / "secret"
    secret.write_text("ROOT_PASSWORD=hunter2\n")
    secret.chmod(0o600)
    for flag in ("--env-file", "--label-file"):
        r = as_sudo(gate_host, system, "run", "--rm", flag, str(secret), signed["low"].ref)
        # before: forwarded, and nerdctl (root) read the file into the container
        assert_refused(r, gate_host, rc=77, says="cannot be opened with your permissions", within=QUICK,
                       check="input")


def test_under_sudo_files_the_caller_can_read_are_handed_over(gate_host: Host, signed: Signed, system: System,
                                                              open_dir: Path) -> None:
    mine = open_dir / "env"
    mine.write_text("MINE=1\n")
    mine.chmod(0o644)
    r = as_sudo(gate_host, system, "run", "--rm", "--env-file", str(mine), signed["low"].ref)
    assert r.rc == 0, r.stderr
    assert list(_read_by_nerdctl(gate_host).values()) == ["MINE=1\n"]
    assert str(mine) not in " ".join(r.forwarded[0])


def test_a_label_file_cannot_claim_an_admission_through_a_bom(gate_host: Host, signed: Signed,
                                                              open_dir: Path) -> None:
    configure(gate_host, signed.trusted)
    lf = open_dir / "labels"
    lf.write_bytes(b"\xef\xbb\xbfbacon/admission=forged\n")  # docker/cli drops a leading UTF-8 BOM
    r = wrapper(gate_host, "create", "--label-file", str(lf), signed["low"].ref)
    assert_refused(r, gate_host, rc=77, says="sets a label in the bacon/ namespace", within=QUICK)


def test_under_sudo_exec_env_files_are_read_as_the_caller(gate_host: Host, signed: Signed, tmp_path: Path,
                                                         open_dir: Path) -> None:
    """`exec` is forwarded, and nerdctl (root) read its --env-file: before, a root-only file reached it.
    (The profile of level Low is privileged here; baseline admits `exec --env-file` too, since it is read as
    the caller: test_profiles.py.)"""
    system = System(Path(str(tmp_path)) / "etc", config_text(gate_host, signed.trusted,
                                                             extra='[levels.Low]\nprofile = "privileged"\n'))
    configure(gate_host, signed.trusted)
    made = wrapper(gate_host, "create", "--name", "exec-target", signed["low"].ref)
    assert made.rc == 0, made.stderr
    secret = open_dir / "secret"
    secret.write_text("ROOT_PASSWORD=hunter2\n")
    secret.chmod(0o600)
    r = as_sudo(gate_host, system, "exec", "--env-file", str(secret), "exec-target", "env")
    assert_refused(r, gate_host, rc=77, says="cannot be opened with your permissions", within=QUICK, check="input")
    secret.chmod(0o644)
    r = as_sudo(gate_host, system, "exec", "--env-file", str(secret), "exec-target", "env")
    assert len(r.forwarded) == 1, r.stderr
    [argv] = r.forwarded
    assert any(a.startswith("--env-file=/proc/self/fd/") for a in argv), argv
    assert list(_read_by_nerdctl(gate_host).values()) == ["ROOT_PASSWORD=hunter2\n"]
