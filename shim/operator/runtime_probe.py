"""``bacon status``'s line on the second layer: does the containerd the runtime gate serves actually run it?

containerd's runc shim runs the first ``runc`` on containerd's own ``PATH`` unless a runtime names its
binary (docs/runtime.md). So the line looks where containerd looks, not where the operator's shell does:

- which process listens on containerd's socket (``SO_PEERCRED`` of a connection to it), and its ``PATH``
  (``/proc/PID/environ``);
- the first ``runc`` on that ``PATH``: BACON's launcher (:func:`shim.operator.enable_runtime.is_launcher`),
  or another runc, which every container then runs unchecked;
- the real runc the gate execs (``[runtime] runc``): when it cannot run, every ``create`` is refused;
- a ``BinaryName`` in containerd's own configuration (``--config``, else ``/etc/containerd/config.toml``):
  containerd's shim runs that binary instead of the ``runc`` on ``PATH``, so the containers of that runtime
  (the CRI's, for Kubernetes) do not meet the gate.

:func:`judge` is pure; :func:`look` does the reads. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml"
MAX_ENVIRON = 1 << 20
MAX_CONFIG = 1 << 20


@dataclass(frozen=True)
class Seen:
    """What the line is judged from."""

    containerd: str  # its socket
    pid: int
    path: str | None  # containerd's PATH; None: it has none (then the shim finds no runc on it)
    first_runc: str | None  # the first runc on that PATH
    first_is_gate: bool
    real_runc: str  # [runtime] runc
    real_runc_runs: bool  # an executable file that is not the launcher
    binary_names: tuple[tuple[str, str], ...] = ()  # (where in containerd's configuration, BinaryName)
    config_note: str | None = None  # why containerd's configuration could not be read, if it could not

    def details(self) -> dict[str, Any]:
        return {"containerd": self.containerd, "pid": self.pid, "path": self.path, "runc": self.first_runc,
                "gate": self.first_is_gate, "real_runc": self.real_runc, "real_runc_runs": self.real_runc_runs,
                "binary_names": [{"where": w, "binary": b} for w, b in self.binary_names],
                "containerd_config": self.config_note}


ENABLE = "sudo bacon enable --runtime"


def judge(seen: Seen) -> tuple[str, str, str | None]:
    """The line's state (``ok``, ``warn``, ``fail``), its summary and its fix."""
    where = f"containerd (pid {seen.pid}, {seen.containerd})"
    if not seen.first_is_gate:
        found = f"runs {seen.first_runc}" if seen.first_runc else "finds no runc on its PATH"
        return ("warn", f"not enabled: {where} {found}, not BACON's gate: containers made by ctr, a nerdctl called "
                f"by its path or the CRI are not checked", ENABLE)
    if not seen.real_runc_runs:
        return ("fail", f"{where} runs BACON's gate ({seen.first_runc}), but the real runc {seen.real_runc} cannot "
                "run: every container is refused", 'install runc, or set [runtime] runc = "/path/to/runc"')
    if seen.binary_names:
        named = ", ".join(f"{w} = {b}" for w, b in seen.binary_names)
        return ("warn", f"{where} runs BACON's gate ({seen.first_runc}), but its configuration names a runc binary "
                f"({named}): that runtime's containers do not meet the gate",
                "remove BinaryName from containerd's configuration (then restart containerd), or point it at "
                f"{seen.first_runc}")
    return ("ok", f"{where} runs BACON's gate ({seen.first_runc}) before the real runc {seen.real_runc}", None)


def binary_names(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every non-empty ``BinaryName`` in containerd's configuration, with where it is (dotted)."""
    for key, value in table.items():
        here = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from binary_names(value, here)
        elif key == "BinaryName" and isinstance(value, str) and value:
            yield prefix, value


def config_argument(cmdline: Sequence[str]) -> str | None:
    """containerd's ``--config``/``-c`` from its command line (Go's flag syntax), if it has one."""
    for i, arg in enumerate(cmdline):
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name in ("config", "c"):
            if eq:
                return value
            return cmdline[i + 1] if i + 1 < len(cmdline) else None
    return None


def _peer_pid(path: str, timeout: float) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[0])


def _read(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _containerd_config(pid: int) -> tuple[tuple[tuple[str, str], ...], str | None]:
    cmdline = [a.decode(errors="replace") for a in _read(f"/proc/{pid}/cmdline", MAX_ENVIRON).split(b"\0") if a]
    chosen = config_argument(cmdline[1:]) or DEFAULT_CONTAINERD_CONFIG
    if not chosen.startswith("/"):
        chosen = os.path.join(os.readlink(f"/proc/{pid}/cwd"), chosen)
    try:
        table = tomllib.loads(_read(chosen, MAX_CONFIG).decode())
    except FileNotFoundError:
        return (), None if chosen == DEFAULT_CONTAINERD_CONFIG else f"{chosen} does not exist"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return (), f"cannot read {chosen}: {e}"
    return tuple(binary_names(table)), None


def look(containerd: str, real_runc: str, timeout: float = 2.0) -> Seen:
    """Look at the containerd listening at ``containerd``. Raises ``OSError`` when it cannot be seen."""
    from shim.operator.enable_runtime import is_launcher

    pid = _peer_pid(containerd, timeout)
    environ = dict(e.split(b"=", 1) for e in _read(f"/proc/{pid}/environ", MAX_ENVIRON).split(b"\0") if b"=" in e)
    path = environ[b"PATH"].decode(errors="replace") if b"PATH" in environ else None
    first = shutil.which("runc", path=path) if path else None
    runs = (os.path.isfile(real_runc) and os.access(real_runc, os.X_OK) and not is_launcher(Path(real_runc)))
    names, note = _containerd_config(pid)
    return Seen(containerd=containerd, pid=pid, path=path, first_runc=first,
                first_is_gate=first is not None and is_launcher(Path(first)), real_runc=real_runc,
                real_runc_runs=runs, binary_names=names, config_note=note)
