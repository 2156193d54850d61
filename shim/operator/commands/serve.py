"""``bacon serve``: the warm decision service (:mod:`shim.service.server`); ``bacon serve --stop`` stops the one
listening at the socket, for hosts without a service manager (the Debian package's prerm uses it where
systemd does not run, so that removing the package leaves no ``bacon serve`` running)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

from shim.common import config as bconfig
from shim.common.errors import ConfigError, NoPermission, Unavailable

STOP_WAIT = 100.0  # seconds: a worker in the middle of a decision finishes it (each step has a deadline)


def listener(path: str) -> tuple[int, int] | None:
    """(pid, uid) of the process that listens at ``path`` (``SO_PEERCRED``: set when it called listen), or
    None when nothing listens there."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        conn.settimeout(5.0)
        try:
            conn.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except PermissionError as e:
            raise NoPermission(f"you may not reach the decision service at {path}",
                               hint="sudo bacon serve --stop") from e
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    finally:
        conn.close()
    return int.from_bytes(cred[0:4], sys.byteorder), int.from_bytes(cred[4:8], sys.byteorder)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def stop(path: str, wait: float = STOP_WAIT) -> str:
    """SIGTERM the ``bacon serve`` listening at ``path`` and wait for it to end; what happened, in words."""
    found = listener(path)
    if found is None:
        return f"no bacon serve listens at {path}"
    pid, uid = found
    if uid != os.geteuid():
        raise ConfigError(f"uid {uid} listens at {path}, not this user: not stopping it",
                          hint=f"find it with `ss -xlp | grep {path}`")
    argv = _cmdline(pid)
    if "serve" not in argv or not any(os.path.basename(a) == "bacon" or a.endswith("shim.operator.cli") for a in argv):
        raise ConfigError(f"pid {pid} listens at {path} but is not bacon serve ({' '.join(argv) or 'gone'})",
                          hint="stop it by hand")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while os.path.exists(f"/proc/{pid}") and _cmdline(pid) == argv:
        if time.monotonic() > deadline:
            raise Unavailable(f"bacon serve (pid {pid}) did not stop within {wait:g}s of SIGTERM",
                              hint=f"kill -KILL {pid}")
        time.sleep(0.1)
    return f"stopped bacon serve (pid {pid}) at {path}"


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = bconfig.load()
    path = args.socket or cfg.service_socket
    if not path:
        if args.stop:
            print("no [service] socket in the configuration: nothing to stop")
            return 0
        raise ConfigError("no socket to serve on", hint='set [service] socket = "/run/bacon/decide.sock" in '
                                                        "/etc/bacon/config.toml, or pass --socket PATH")
    if args.stop:
        print(stop(path))
        return 0
    from shim.service import server as service

    return 130 if service.serve(path) == "SIGINT" else 0
