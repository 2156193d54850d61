"""The runtime gate's client (what the runc launcher runs for every create) stays light: a pass-through
verb and a create decided by a (fake) warm service load only the standard library's cheap modules and
BACON's stdlib-only ones, up to the exec of the real runc. A deterministic check, not a timing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shim.runtime import main as runtime_client
from shim.service import wire
from tests.unit.wrapper.test_forwarding_imports import SLOW_STDLIB

ROOT = Path(__file__).resolve().parents[3]

PROBE = r"""
import os, sys
before = set(sys.modules)
cut = sys.argv.index("--")
SLOW = set(sys.argv[1:cut])
args = sys.argv[cut + 1:]
def fake_execv(path, argv):
    new = [m for m in sys.modules if m not in before]
    third = sorted(m for m in new if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "shim")
    slow = sorted(m for m in new if m in SLOW)
    import json
    print(json.dumps({"path": path, "argv": argv, "third_party": third, "slow_stdlib": slow}))
    sys.stdout.flush()
    os._exit(0)
os.execv = fake_execv
from shim.runtime.main import main
sys.exit(main(args))
"""


def probe(args: list[str], config: Path) -> dict[str, object]:
    env = {"PATH": "/usr/bin:/bin", "BACON_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-S", "-c", PROBE, *SLOW_STDLIB, "--", *args], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def write_config(tmp_path: Path, extra: str = "") -> Path:
    tmp_path.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text(f'level = "Low"\nnerdctl = "/bin/true"\n[runtime]\nrunc = "/bin/true"\n{extra}')
    config.chmod(0o644)
    return config


def test_a_pass_through_verb_loads_nothing_slow(tmp_path: Path) -> None:
    got = probe(["--root", "/r", "state", "c1"], write_config(tmp_path))
    assert got["path"] == "/bin/true"
    assert got["argv"] == ["/bin/true", "--root", "/r", "state", "c1"]
    assert got["third_party"] == []
    assert got["slow_stdlib"] == []


@pytest.mark.parametrize("create", [
    ["--root", "/r", "create", "--bundle", "/b/io.containerd.runtime.v2.task/ns/c1", "c1"],
    ["--root", "/r", "--log", "/l", "exec", "--process", "/tmp/runc-process1", "--detach", "c1"],  # exec alike
])
def test_a_served_create_loads_nothing_slow(tmp_path: Path, create: list[str]) -> None:
    sock_path = tmp_path / "decide.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(str(sock_path))
    server.listen(1)
    seen: list[list[str]] = []

    def serve() -> None:
        conn, _ = server.accept()
        msg, fds, _flags, _addr = socket.recv_fds(conn, wire.MAX_MESSAGE, 8)
        for fd in fds:
            os.close(fd)
        seen.append(wire.decode_request(msg).args)
        conn.send(wire.encode_plan("/bin/true", create, []))
        conn.recv(64)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        got = probe(create, write_config(tmp_path, f'[service]\nsocket = "{sock_path}"\n'))
    finally:
        t.join(timeout=30)
        server.close()
    assert seen == [[runtime_client.MARKER, *create]]
    assert got["argv"] == ["/bin/true", *create]
    assert got["third_party"] == []
    assert got["slow_stdlib"] == []
