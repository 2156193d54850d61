"""``bacon enable --runtime`` / ``disable --runtime`` on a temporary root: the launcher installed where
containerd's PATH finds it first, the real runc recorded in the configuration, a real containerd whose
``ctr run`` then meets the gate, and after ``disable`` the root byte-identical and ``ctr run`` back to
the real runc alone."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from shim.operator import enable_runtime as er
from tests.conftest import Host, Signed, trusted_config
from tests.harness import images as images_h
from tests.harness import runtime as runtime_h

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


def tree(root: Path) -> dict[str, tuple[bytes | str, int, int, int]]:
    out: dict[str, tuple[bytes | str, int, int, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = os.lstat(p)
            content: bytes | str = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
            out[str(p.relative_to(root))] = (content, st.st_mode, st.st_uid, st.st_gid)
    return out


def bacon(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.bacon, *args], env=host.env(), capture_output=True, text=True, timeout=120)


def test_enable_runtime_installs_a_working_gate_and_disable_leaves_the_host_byte_identical(
        gate_host: Host, signed: Signed, tmp_path: Path) -> None:
    host = gate_host
    trusted_config(host, signed.trusted)
    root = Path(str(tmp_path)) / "root"
    (root / "usr" / "local").mkdir(parents=True)  # sbin does not exist yet: enable makes it, disable removes it
    target = root / "usr" / "local" / "sbin" / "runc"
    watched = [root, host.config.parent]
    before = [tree(p) for p in watched]
    config_before = host.config.read_bytes()

    r = bacon(host, "enable", "--runtime", "--path", str(target), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["action"] == "installed"
    assert doc["real_runc"] == "/usr/sbin/runc"
    assert er.is_launcher(target)
    assert os.stat(target).st_mode & 0o777 == 0o755
    assert host.config.read_bytes().startswith(config_before)
    assert 'runc = "/usr/sbin/runc"' in host.config.read_text()
    again = bacon(host, "enable", "--runtime", "--path", str(target))
    assert again.returncode == 0, again.stderr
    assert "already enabled" in again.stdout

    # A pass-through verb reaches the real runc; containerd's ctr run meets the gate.
    state = subprocess.run([str(target), "--root", str(tmp_path / "runc-root"), "state", "nope"],
                           capture_output=True, text=True, timeout=30)
    assert "does not exist" in state.stderr or "not exist" in state.stderr, state.stderr
    work = Path(f"/tmp/bacon-rte-{secrets.token_hex(3)}")
    work.mkdir()
    c = runtime_h.start(work, target.parent, {"BACON_CONFIG": str(host.config)})
    try:
        for name in ("low", "unsigned"):
            images_h.pull(c, signed[name])
        refused = c.ctr("run", "--rm", signed["unsigned"].ref, "rte-unsigned", "/bin/true", check=False)
        assert refused.returncode != 0
        assert "bacon: denied:" in refused.stderr, refused.stderr
        ok = c.ctr("run", "--rm", signed["low"].ref, "rte-low", "/bin/echo", "gated-and-ran", check=False)
        assert ok.returncode == 0, ok.stderr
        assert "gated-and-ran" in ok.stdout

        d = bacon(host, "disable", "--runtime", "--path", str(target))
        assert d.returncode == 0, d.stderr
        assert [tree(p) for p in watched] == before
        assert host.config.read_bytes() == config_before
        assert not (host.state_dir / "enabled").exists() or not any((host.state_dir / "enabled").iterdir())
        # The gate is gone: the same unsigned image now runs on the real runc alone.
        free = c.ctr("run", "--rm", signed["unsigned"].ref, "rte-free", "/bin/echo", "ungated", check=False)
        assert free.returncode == 0, free.stderr
        assert "ungated" in free.stdout
    finally:
        c.stop()
        runtime_h.remove(work)
    audit = [json.loads(x) for x in host.audit_log.read_text().splitlines()]
    assert [a["verdict"] for a in audit if a.get("verdict", "").endswith("-runtime")] == ["enable-runtime",
                                                                                         "disable-runtime"]
    assert "nothing recorded" in bacon(host, "disable", "--runtime", "--path", str(target)).stdout


def test_enable_runtime_refuses_to_replace_what_is_there(gate_host: Host, signed: Signed, tmp_path: Path) -> None:
    host = gate_host
    trusted_config(host, signed.trusted)
    target = Path(str(tmp_path)) / "sbin" / "runc"
    target.parent.mkdir()
    target.write_bytes(b"#!/bin/sh\nexec /usr/sbin/runc \"$@\"\n")
    config_before = host.config.read_bytes()
    r = bacon(host, "enable", "--runtime", "--path", str(target))
    assert r.returncode == 78, r.stderr
    assert "already there" in r.stderr
    assert target.read_bytes() == b"#!/bin/sh\nexec /usr/sbin/runc \"$@\"\n"
    assert host.config.read_bytes() == config_before


def test_disable_runtime_refuses_when_the_launcher_was_changed(gate_host: Host, signed: Signed, tmp_path: Path) -> None:
    host = gate_host
    trusted_config(host, signed.trusted)
    target = Path(str(tmp_path)) / "sbin" / "runc"
    assert bacon(host, "enable", "--runtime", "--path", str(target)).returncode == 0
    target.write_text(target.read_text() + "# edited\n")
    r = bacon(host, "disable", "--runtime", "--path", str(target))
    assert r.returncode != 0
    assert "no longer the launcher" in r.stderr
    assert target.exists()
