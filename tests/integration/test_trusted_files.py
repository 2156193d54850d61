"""Files BACON executes or trusts, checked like its configuration (shim/common/trustedfile.py), and the same
verdict everywhere: the wrapper (forwarded and gated commands), the decision service, `bacon doctor`.

The unprivileged user is uid 65534 (nobody): it owns the file, or a directory on its path, or the tree a
symlink leads into. Each of these let that user run code as root (the real nerdctl) or choose the key
that signs admissions; before, only `doctor` warned (about the binary, not the key) and everything ran."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.harness.proc import wait_for
from tests.integration.test_gate import audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to an unprivileged user")]

NOBODY = 65534


def _key_in_etc(host: Host, signed: Signed) -> Path:
    keys = host.root / "etc" / "keys"
    keys.mkdir(mode=0o755, exist_ok=True)
    key = keys / "team.pub"
    shutil.copy(signed.trusted.public, key)
    key.chmod(0o644)
    return key


def _configure(host: Host, signed: Signed, *, nerdctl_path: Path | None = None, extra: str = "") -> Path:
    key = _key_in_etc(host, signed)
    trusted_config(host, signed.trusted, extra=extra)
    text = host.config.read_text().replace(str(signed.trusted.public), str(key))
    if nerdctl_path is not None:
        text = text.replace(f'nerdctl = "{host.standin}"', f'nerdctl = "{nerdctl_path}"')
    host.write_config(text)
    return key


def nerdctl_owned_by_nobody(host: Host, signed: Signed) -> tuple[str, str]:
    _configure(host, signed)
    os.chown(host.standin, NOBODY, NOBODY)
    return "nerdctl", str(host.standin)


def nerdctl_in_a_directory_of_nobody(host: Host, signed: Signed) -> tuple[str, str]:
    _configure(host, signed)
    os.chown(host.standin.parent, NOBODY, NOBODY)
    return "nerdctl", str(host.standin.parent)


def nerdctl_through_a_symlink_out_of_the_root_tree(host: Host, signed: Signed) -> tuple[str, str]:
    theirs = host.root / "home" / "eve"
    theirs.mkdir(parents=True)
    os.chown(theirs, NOBODY, NOBODY)
    real = theirs / "nerdctl"
    shutil.copy2(host.standin, real)  # root-owned, 0755: only its directory is theirs
    link = host.root / "etc" / "nerdctl-link"
    link.symlink_to(real)
    _configure(host, signed, nerdctl_path=link)
    return "nerdctl", str(theirs)


def key_owned_by_nobody(host: Host, signed: Signed) -> tuple[str, str]:
    key = _configure(host, signed)
    os.chown(key, NOBODY, NOBODY)
    return "keys", str(key)


def key_in_a_directory_others_may_write(host: Host, signed: Signed) -> tuple[str, str]:
    key = _configure(host, signed)
    key.parent.chmod(0o777)
    return "keys", str(key.parent)


UNSAFE: list[Callable[[Host, Signed], tuple[str, str]]] = [
    nerdctl_owned_by_nobody, nerdctl_in_a_directory_of_nobody, nerdctl_through_a_symlink_out_of_the_root_tree,
    key_owned_by_nobody, key_in_a_directory_others_may_write]


@pytest.mark.parametrize("make_unsafe", UNSAFE, ids=[f.__name__ for f in UNSAFE])
def test_an_unsafe_file_is_refused_by_the_wrapper_and_failed_by_doctor(
        gate_host: Host, signed: Signed, make_unsafe: Callable[[Host, Signed], tuple[str, str]]) -> None:
    item, named = make_unsafe(gate_host, signed)
    r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
    assert r.rc == 78, r.stderr
    assert named in r.stderr, r.stderr
    assert r.stderr.startswith("bacon: config: "), r.stderr
    assert r.forwarded == []
    assert [line["verdict"] for line in audit_lines(gate_host)] in ([], ["error"])
    if item == "nerdctl":  # a forwarded command runs it as root too
        ps = nerdctl(gate_host, "ps")
        assert ps.rc == 78, ps.stderr
        assert named in ps.stderr
        assert ps.forwarded == []
    d = subprocess.run([*gate_host.bacon, "doctor", "--json"], env=gate_host.env(), capture_output=True, text=True,
                       timeout=120)
    doc = json.loads(d.stdout)
    assert d.returncode == 1, d.stdout
    [found] = [i for i in doc["items"] if i["key"] == item]
    assert found["state"] == "fail", found
    assert named in json.dumps(found), found


def test_the_service_refuses_what_the_wrapper_refuses(gate_host: Host, signed: Signed) -> None:
    sock = gate_host.root / "run" / "decide.sock"
    key = _configure(gate_host, signed, extra=f'[service]\nsocket = "{sock}"\n')
    log = gate_host.root / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([*gate_host.bacon, "serve"], env=gate_host.env(), stdout=out, stderr=out)
    try:
        wait_for(sock.exists, "bacon serve", timeout=30, proc=proc, log=log)
        assert nerdctl(gate_host, "run", "--rm", signed["low"].ref).rc == 0
        os.chown(key, NOBODY, NOBODY)
        r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
        assert r.rc == 78, r.stderr
        assert str(key) in r.stderr
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert "request" in events  # decided by the service, not the wrapper alone
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_root_owned_tree_with_a_symlink_inside_it_is_trusted(gate_host: Host, signed: Signed) -> None:
    """Symlinks are fine inside root's tree (Debian's alternatives, /usr/local/bin -> /opt/...)."""
    opt = gate_host.root / "opt" / "nerdctl-2"
    opt.mkdir(parents=True)
    shutil.copy2(gate_host.standin, opt / "nerdctl")
    link = gate_host.root / "etc" / "nerdctl"
    link.symlink_to(opt / "nerdctl")
    _configure(gate_host, signed, nerdctl_path=link)
    r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
    assert r.rc == 0, r.stderr
