"""What a user who is not root is told: a permission problem says it is one and says ``sudo``, never "no
decision has been logged", "start containerd" or "restart the decision service". Each command runs as an
unprivileged account this module creates (useradd) against a host laid out as the Debian package lays it
out: the audit log's directory root:adm 2750, the state directory root's, the service's socket directory
root's 0700."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Host, make_host
from tests.harness import containerd as containerd_h
from tests.harness import registry as registry_h

pytestmark = [pytest.mark.integration, pytest.mark.containerd]

USER = "bacon-optest"
LINE = ('{"verdict": "denied", "user": "root", "uid": 0, "image": "127.0.0.1:5000/team/app:1", '
        '"event": "decision", "time": "2026-12-01T08:00:00Z"}\n')


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.skip("needs root (useradd, and files only root may read)")
    made = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True)
        made = True
    opened = _let_others_reach(_site_packages())
    try:
        yield pwd.getpwnam(USER)
    finally:
        for d, mode in opened:
            d.chmod(mode)
    if made:
        subprocess.run(["userdel", USER], check=False, capture_output=True)


@pytest.fixture
def nr_host(workdir: Path, containerd: containerd_h.Containerd, registry: registry_h.Registry) -> Iterator[Host]:
    """A host whose files every user may reach (under the session's 0755 work directory, not pytest's
    root-only tmp_path), its audit log as the package makes it."""
    host = make_host(workdir / f"nr-{uuid.uuid4().hex[:8]}", containerd, registry)
    logdir = host.audit_log.parent
    logdir.mkdir()
    os.chown(logdir, 0, grp.getgrnam("adm").gr_gid)
    logdir.chmod(0o2750)
    host.audit_log.write_text(LINE)
    os.chown(host.audit_log, 0, grp.getgrnam("adm").gr_gid)
    host.audit_log.chmod(0o640)
    yield host
    shutil.rmtree(host.root, ignore_errors=True)


ROOT = Path(__file__).resolve().parents[2]


def _site_packages() -> Path:
    return Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def _let_others_reach(path: Path) -> list[tuple[Path, int]]:
    """The test environment's libraries must be reachable by the unprivileged user: tox makes its work
    directory (``.tox``) 0700. Add search permission (o+x, nothing else) on each directory above ``path``
    that lacks it, for this module only; returns what to restore."""
    changed = []
    for d in [path, *path.parents]:
        mode = d.stat().st_mode & 0o7777
        if not mode & 0o001:
            d.chmod(mode | 0o001)
            changed.append((d, mode))
    return changed


def command(module: str) -> list[str]:
    """``bacon`` (``shim.operator.cli``) or the wrapper (``shim.wrapper.main``) as another user can start it: the test
    virtualenv's interpreter may live where only root may go (pyenv under /root), so Debian's python3 of the
    same minor version runs this checkout with the virtualenv's libraries."""
    site = _site_packages()
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                           text=True, check=False) if os.path.exists(python) else None
    if probe is None or probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        python = sys.executable
    return [python, "-I", "-c", f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(site)!r}]; "
            f"from {module} import main; sys.exit(main())"]


def as_user(user: pwd.struct_passwd, argv: list[str], env: dict[str, str], groups: tuple[str, ...] = (),
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**env, "HOME": "/tmp", "USER": user.pw_name, "LOGNAME": user.pw_name}
    if argv[0] == "bacon":
        argv = [*command("shim.operator.cli"), *argv[1:]]
    elif argv[0] == "nerdctl":
        argv = [*command("shim.wrapper.main"), *argv[1:]]
    return subprocess.run(argv, env=env, user=user.pw_uid, group=user.pw_gid,
                          extra_groups=[grp.getgrnam(g).gr_gid for g in groups], capture_output=True, text=True,
                          timeout=timeout, cwd="/")


def assert_says_permission_and_sudo(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 69, r.stdout + r.stderr
    assert "bacon: permission denied:" in r.stderr, r.stderr
    assert "sudo" in r.stderr, r.stderr


def test_audit_when_the_log_cannot_be_read_says_permission_not_nothing_logged(
        user: pwd.struct_passwd, nr_host: Host) -> None:
    r = as_user(user, ["bacon", "audit"], nr_host.env())
    assert_says_permission_and_sudo(r)
    assert "no decision has been logged" not in r.stderr
    # --follow fails at once instead of waiting for a log it could never read.
    r = as_user(user, ["bacon", "audit", "--follow"], nr_host.env(), timeout=20)
    assert_says_permission_and_sudo(r)
    # The directory may be searched but the file is root's alone: the same.
    nr_host.audit_log.parent.chmod(0o2755)
    nr_host.audit_log.chmod(0o600)
    r = as_user(user, ["bacon", "audit", "-f"], nr_host.env(), timeout=20)
    assert_says_permission_and_sudo(r)
    # Group adm may read it, as the package's directory and logrotate's `create 0640 root adm` intend.
    nr_host.audit_log.chmod(0o640)
    r = as_user(user, ["bacon", "audit", "--json"], nr_host.env(), groups=("adm",))
    assert r.returncode == 0, r.stderr
    assert [e["image"] for e in json.loads(r.stdout)["entries"]] == ["127.0.0.1:5000/team/app:1"]


def test_status_names_an_unreadable_containerd_socket_as_a_permission_problem(
        user: pwd.struct_passwd, nr_host: Host) -> None:
    r = as_user(user, ["bacon", "status", "--json", "--timeout", "15"], nr_host.env())
    item = {i["key"]: i for i in json.loads(r.stdout)["items"]}["containerd"]
    assert item["state"] == "fail"
    assert "may not" in item["summary"], item
    assert "sudo" in item["fix"], item
    assert "start containerd" not in item["fix"], item
    r = as_user(user, ["bacon", "version"], nr_host.env())
    assert_says_permission_and_sudo(r)
    assert r.stdout.startswith("bacon ")


def test_nerdctl_run_as_a_user_blames_permissions_not_the_decision_service(
        user: pwd.struct_passwd, nr_host: Host) -> None:
    run = nr_host.root / "run"
    run.mkdir(mode=0o700)  # as bacon.service's RuntimeDirectory=
    nr_host.write_config(nr_host.config.read_text() + f'[service]\nsocket = "{run}/decide.sock"\n')
    r = as_user(user, ["nerdctl", "run", "--rm", "127.0.0.1:5000/team/app:1"], nr_host.env())
    assert_says_permission_and_sudo(r)
    assert "restart" not in r.stderr, r.stderr


def test_a_configuration_the_user_may_not_read_says_permission_and_sudo(user: pwd.struct_passwd,
                                                                         nr_host: Host) -> None:
    nr_host.config.chmod(0o600)
    r = as_user(user, ["bacon", "policy", "show"], nr_host.env())
    assert_says_permission_and_sudo(r)
    assert str(nr_host.config) in r.stderr
