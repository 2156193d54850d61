"""A private containerd whose runc shim finds BACON's runtime gate as ``runc`` (ahead of the real one on
its PATH), as `bacon enable --runtime` arranges on a host. The shim inherits containerd's environment and
runs the first ``runc`` on that PATH (checked against Debian's containerd 1.6: docs/runtime.md)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from shim.runtime import argv as runtime_argv
from tests.harness import containerd as containerd_h
from tests.harness import proc


def gate_program() -> str:
    exe = Path(sys.executable).parent / "bacon-runtime"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: pip install -e . installs bin/bacon-runtime")
    return str(exe)


def install_launcher(bindir: Path, config: Path, real_runc: str | None = None) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    real = real_runc or shutil.which("runc", path="/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/runc"
    launcher = bindir / "runc"
    launcher.write_text(runtime_argv.launcher(real, gate_program(), {"BACON_CONFIG": str(config)}))
    launcher.chmod(0o755)
    return launcher


def start(workdir: Path, bindir: Path, extra_env: dict[str, str] | None = None) -> containerd_h.Containerd:
    """containerd with ``bindir`` first on its PATH (its own root, state and socket under ``workdir``), and
    ``extra_env`` in its environment (which its shims, and so runc, inherit)."""
    base = workdir / "containerd"
    root, state = base / "root", base / "state"
    for d in (root, state):
        d.mkdir(parents=True, exist_ok=True)
    sock = base / "containerd.sock"
    cfg = base / "config.toml"
    cfg.write_text(containerd_h.CONFIG.format(root=root, state=state, sock=sock))
    log = base / "containerd.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACON_")}
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env.update(extra_env or {})
    p = proc.start(["containerd", "--config", str(cfg)], log, env=env)
    c = containerd_h.Containerd(socket=sock, root=root, process=p, log=log, config=cfg)
    proc.wait_for(lambda: proc.unix_open(sock), "containerd", proc=p, log=log)
    return c


def remove(work: Path) -> None:
    """Remove a gated containerd's directory after :meth:`Containerd.stop` (its shims may still be leaving)."""
    import time

    for _ in range(20):
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists():
            return
        time.sleep(0.25)


def remove_task(c: containerd_h.Containerd, cid: str) -> None:
    """Kill container ``cid``'s task and remove it and the container (its shim takes a moment to let go)."""
    import time

    c.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
    for _ in range(50):
        if c.ctr("tasks", "rm", cid, check=False).returncode == 0:
            break
        time.sleep(0.1)
    c.ctr("containers", "rm", cid, check=False)
