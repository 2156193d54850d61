"""Files opened on the operator's behalf (shim.wrapper.callerfiles, shim.wrapper.caller): regular files only, bounded,
timed, and under sudo with the caller's permissions. Run as root (as the integration tests are), with
``nobody`` as the sudo caller: sudo itself is not installed here, it only sets SUDO_UID/SUDO_GID."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.common.errors import Denied, Unavailable
from shim.wrapper import argv as nargv
from shim.wrapper import caller, callerfiles, inputs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")

NOBODY = pwd.getpwnam("nobody")
SUDO = {"SUDO_UID": str(NOBODY.pw_uid), "SUDO_GID": str(NOBODY.pw_gid), "SUDO_USER": "nobody",
        "SUDO_COMMAND": "/usr/bin/nerdctl"}


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter (pytest's tmp_path is under a 0700 directory for root)."""
    d = Path(tempfile.mkdtemp(prefix="bacon-callerfiles-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_regular_file_is_read(open_dir: Path) -> None:
    f = open_dir / "labels"
    f.write_bytes(b"a=b\n")
    f.chmod(0o644)
    assert callerfiles.read(str(f), what="--label-file") == b"a=b\n"
    assert callerfiles.read(str(f), what="--label-file", environ=SUDO) == b"a=b\n"


@pytest.mark.parametrize(("path", "says"), [("/dev/zero", "a character device"), ("/dev/null", "a character device"),
                                            ("/", "a directory")])
def test_devices_and_directories_are_refused(path: str, says: str) -> None:
    with pytest.raises(Denied, match=says):
        callerfiles.read(path, what="--label-file")


def test_a_fifo_is_refused_without_waiting_for_a_writer(open_dir: Path) -> None:
    fifo = open_dir / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(Denied, match="FIFO"):
        callerfiles.read(str(fifo), what="--env-file")
    assert time.monotonic() - start < 2


def test_a_large_file_is_refused(open_dir: Path) -> None:
    f = open_dir / "big"
    f.write_bytes(b"x" * 101)
    with pytest.raises(Denied, match="larger than 100 bytes"):
        callerfiles.read(str(f), what="--env-file", max_bytes=100)
    assert callerfiles.read(str(f), what="--env-file", max_bytes=101) == b"x" * 101


def test_a_symlink_is_refused(open_dir: Path) -> None:
    target = open_dir / "t"
    target.write_text("a=b\n")
    link = open_dir / "l"
    link.symlink_to(target)
    with pytest.raises(Denied, match="symbolic link"):
        callerfiles.read(str(link), what="--label-file")


def test_the_time_bound_kills_the_reader(open_dir: Path) -> None:
    f = open_dir / "f"
    f.write_text("a=b\n")
    with pytest.raises(Unavailable, match="longer than 0s"):
        callerfiles.read(str(f), what="--env-file", timeout=0)


def test_under_sudo_a_file_only_root_may_read_is_refused(open_dir: Path) -> None:
    secret = open_dir / "secret"
    secret.write_text("ROOT_ONLY=1\n")
    secret.chmod(0o600)
    assert callerfiles.read(str(secret), what="--env-file") == b"ROOT_ONLY=1\n"  # root, not under sudo
    with pytest.raises(Denied, match="cannot be opened with your permissions"):
        callerfiles.read(str(secret), what="--env-file", environ=SUDO)
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    (private / "f").write_text("a=b\n")
    (private / "f").chmod(0o644)
    with pytest.raises(Denied, match="permissions"):
        callerfiles.read(str(private / "f"), what="--env-file", environ=SUDO)


def test_the_callers_groups_count(open_dir: Path) -> None:
    f = open_dir / "group-readable"
    f.write_text("a=b\n")
    os.chown(f, 0, NOBODY.pw_gid)
    f.chmod(0o640)
    assert callerfiles.read(str(f), what="--env-file", environ=SUDO) == b"a=b\n"


def test_the_wrappers_own_descriptors_are_out_of_reach(open_dir: Path) -> None:
    secret = open_dir / "secret"
    secret.write_text("ROOT_ONLY=1\n")
    secret.chmod(0o600)
    fd = os.open(secret, os.O_RDONLY)  # inheritable, as a root-opened file in the wrapper might be
    try:
        for environ in (SUDO, {}):
            with pytest.raises(Denied, match="cannot be opened"):
                callerfiles.read(f"/proc/self/fd/{fd}", what="--env-file", environ=environ)
    finally:
        os.close(fd)


def test_open_fd_creates_with_the_callers_ownership(open_dir: Path) -> None:
    open_dir.chmod(0o1777)
    fd = callerfiles.open_fd(str(open_dir / "cid"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644,
                             what="--cidfile", environ=SUDO)
    try:
        st = os.fstat(fd)
        assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)
    open_dir.chmod(0o755)
    with pytest.raises(Denied, match="permissions"):
        callerfiles.open_fd(str(open_dir / "cid2"), os.O_WRONLY | os.O_CREAT, what="--cidfile", environ=SUDO)


@pytest.mark.parametrize("environ", [{"SUDO_UID": "x", "SUDO_GID": "0"}, {"SUDO_UID": "65534"},
                                     {"SUDO_USER": "nobody"}, {"DOAS_USER": "no-such-user-here"},
                                     {"PKEXEC_UID": "-1"}])
def test_a_launcher_variable_naming_no_user_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(Denied, match="cannot tell whose files"):
        caller.identity(environ)


def test_doas_and_pkexec_are_under_sudo_too() -> None:
    assert caller.under_sudo({"DOAS_USER": "nobody"})
    assert caller.under_sudo({"PKEXEC_UID": "65534"})
    assert caller.identity({"DOAS_USER": "nobody"}) == caller.identity({"PKEXEC_UID": str(NOBODY.pw_uid)})
    assert not caller.under_sudo({})
    assert caller.identity({}) is None


def test_an_adopted_set_uid_caller_is_under_sudo_and_reads_as_itself(open_dir: Path) -> None:
    secret = open_dir / "secret"
    secret.write_text("x\n")
    secret.chmod(0o600)
    try:
        caller.adopt(caller.Credentials(NOBODY.pw_uid, 0, NOBODY.pw_gid, 0, ()))
        assert caller.under_sudo({})
        with pytest.raises(Denied, match="permissions"):
            callerfiles.read(str(secret), what="--env-file", environ={})
    finally:
        caller._adopted = None


def test_materialize_hands_nerdctl_sealed_copies(open_dir: Path) -> None:
    env = open_dir / "env"
    env.write_text("A=1\n")
    env.chmod(0o644)
    inv = nargv.parse(["run", f"--env-file={env},{env}", "--label-file", str(env), "img"])
    new, fds = inputs.materialize(inv, environ=SUDO)
    try:
        assert len(fds) == 1
        assert fds[0] >= inputs.FIRST_FD
        assert new.flags == (("env-file", f"/proc/self/fd/{fds[0]},/proc/self/fd/{fds[0]}"),
                             ("label-file", f"/proc/self/fd/{fds[0]}"))
        assert os.get_inheritable(fds[0])
        assert Path(f"/proc/self/fd/{fds[0]}").read_text() == "A=1\n"
        assert inputs.read_copy(f"/proc/self/fd/{fds[0]}", what="--label-file") == b"A=1\n"
        with pytest.raises(PermissionError):  # sealed: nobody changes what was read
            os.write(fds[0], b"B=2\n")
        assert stat.S_ISREG(os.fstat(fds[0]).st_mode)
    finally:
        for fd in fds:
            os.close(fd)
