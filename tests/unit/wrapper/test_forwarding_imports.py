"""The forwarding path stays on the standard library: a deterministic check, not a timing.

`nerdctl images` (forwarded) is run in a fresh interpreter up to the exec, and the modules it loaded are
compared with the standard library's; the exec itself is replaced by a recorder. The same for an admission
served by a warm service (here a fake one that answers a plan): the wrapper is then only its thin client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from shim.service import wire

ROOT = Path(__file__).resolve().parents[3]

# Standard modules that cost milliseconds each to import (with what they pull in), measured with
# `python -X importtime`: the forwarding path does without them.
SLOW_STDLIB = ("dataclasses", "inspect", "pathlib", "asyncio", "logging", "email", "http", "urllib.request",
               "ssl", "subprocess", "typing", "tomllib", "re", "json", "socket", "enum", "collections", "datetime")

PROBE = r"""
import os, sys
before = set(sys.modules)  # what the interpreter itself loaded; the probe imports nothing else before the exec
cut = sys.argv.index("--")
SLOW_STDLIB = set(sys.argv[1:cut])
sys.argv = ["nerdctl", *sys.argv[cut + 1:]]
def fake_execve(path, argv, env):
    new = [m for m in sys.modules if m not in before]
    third = sorted(m for m in new if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "shim")
    slow = sorted(m for m in new if m in SLOW_STDLIB)
    ours = sorted(m for m in sys.modules if m.startswith("shim"))
    import json
    print(json.dumps({"argv": argv, "third_party": third, "shim": ours, "slow_stdlib": slow}))
    sys.stdout.flush()
    os._exit(0)
os.execve = fake_execve
from shim.wrapper.main import main
sys.exit(main())
"""


def run_probe(args: list[str], config: Path) -> dict[str, list[str]]:
    r = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + PROBE,
                        *SLOW_STDLIB, "--", *args],
                       capture_output=True, text=True,
                       env={"BACON_CONFIG": str(config), "PATH": "/usr/bin:/bin"}, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    out: dict[str, list[str]] = json.loads(r.stdout)
    return out


def config_for(tmp_path: Path, extra: str = "") -> Path:
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755, parents=True)
    etc.chmod(0o755)
    cfg = etc / "config.toml"
    cfg.write_text('level = "Low"\nnerdctl = "/bin/true"\n' + extra)
    cfg.chmod(0o644)
    return cfg


def test_forwarding_imports_only_the_standard_library(tmp_path: Path) -> None:
    for args in (["images"], ["version"], ["--namespace", "k8s.io", "ps", "-a"], ["logs", "-f", "x"],
                 ["exec", "-it", "x", "sh"]):  # exec: parsed, and no profile decision without its judged flags
        out = run_probe(args, config_for(tmp_path / "-".join(args).replace("/", "_")))
        assert out["argv"][0] == "/bin/true"
        assert out["third_party"] == [], f"{args}: forwarding imported {out['third_party']}"
        heavy_modules = ("shim.admission.gate", "shim.admission.context", "shim.admission.finding",
                         "shim.admission.image_checks", "shim.admission.plans", "shim.images.containerd", "shim._proto",
                         "shim.attest.tpm", "shim.attest.tdx", "shim.images.registry", "shim.images.credentials",
                         "shim.trust.signatures", "shim.trust.registry_signatures", "shim.admission.audit")
        heavy = [m for m in out["shim"] if m.startswith(heavy_modules)]
        assert heavy == [], f"{args}: forwarding imported {heavy}"
        assert out["slow_stdlib"] == [], f"{args}: forwarding imported {out['slow_stdlib']} (import time)"


def test_forwarded_argv_is_reserialized(tmp_path: Path) -> None:
    out = run_probe(["--namespace", "k8s.io", "ps", "-a"], config_for(tmp_path))
    assert out["argv"][1:] == ["--namespace=k8s.io", "ps", "-a"]


def test_a_served_admission_imports_only_the_light_standard_library(tmp_path: Path) -> None:
    """With a service answering, `nerdctl run` in the wrapper is parse, ask, exec: nothing of the gate, and
    neither ``socket`` nor ``json`` (the wire is ``_socket`` and NUL-separated fields)."""
    sock_path = tmp_path / "decide.sock"
    plan = wire.encode_plan("/bin/true", ["run", "--rm", "busybox@sha256:" + "a" * 64], [])

    def answer(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, wire.MAX_MESSAGE, 3)
            for fd in fds:
                os.close(fd)
            assert wire.decode_request(msg).args == ["run", "--rm", "busybox"]
            conn.send(plan)
            conn.settimeout(10)
            assert conn.recv(64) == wire.TAKEN  # the wrapper takes the plan up before carrying it out

    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(str(sock_path))
        listener.listen(1)
        t = threading.Thread(target=answer, args=(listener,), daemon=True)
        t.start()
        out = run_probe(["run", "--rm", "busybox"], config_for(tmp_path, f'[service]\nsocket = "{sock_path}"\n'))
        t.join(10)
    assert out["argv"] == ["/bin/true", "run", "--rm", "busybox@sha256:" + "a" * 64]
    assert out["third_party"] == []
    heavy = ("shim.admission.gate", "shim.admission.context", "shim.admission.finding", "shim.admission.image_checks",
             "shim.admission.plans", "shim.images.containerd", "shim.images.reference")
    assert [m for m in out["shim"] if m.startswith(heavy)] == []
    assert out["slow_stdlib"] == []
