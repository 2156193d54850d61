"""The warm decision service (``bacon serve``): admissions without paying Python's imports every time.

An admission in a fresh process spends about 95% of its time importing grpc, protobuf and cryptography
(``benchmarks``: ~200 ms, against ~15 ms for the decision itself). This root-only service imports them
once; for each request it **forks**, and the child, with the caller's environment, working directory,
umask and standard streams, runs exactly the wrapper's own decision (:func:`shim.wrapper.plan`: the same
configuration read, the same gate, the same audit line) and answers with the plan: the pinned argv for the
real nerdctl and the commands to run after it. The wrapper, a thin client here, carries the plan out
itself, in the operator's terminal. The fork gives every request a fresh process (no state shared
between decisions, nothing learnt from one caller used for another), from a parent that only accepts.

Trust runs both ways over ``SO_PEERCRED``: the service answers only callers with its own uid (root), and
the wrapper uses only a service with its own uid (:func:`request`), so nobody else can either ask or
answer. The socket is ``SOCK_SEQPACKET`` (one message each way, boundaries kept) in a directory only
root may write. When no service is configured or none is listening, the wrapper decides in its own
process, as before: the service changes how long a decision takes, never what it is.

``push`` (which signs after nerdctl returns) and ``bacon`` commands are not served.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from shim.errors import EXIT_INTERNAL, BaconError, ConfigError, Unavailable

PROTOCOL = 1
MAX_MESSAGE = 256 << 10  # argv + environment; larger requests are decided in the wrapper's own process
ANSWER_TIMEOUT = 600.0  # seconds; the gate bounds each step itself (registry, TPM), this bounds a stuck child
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(conn: socket.socket) -> int:
    _pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return int(uid)


# -- the client side (the wrapper; standard library only) --------------------------------------------------

def request(path: str, args: Sequence[str], environ: Mapping[str, str], cwd: str) -> dict[str, Any] | None:
    """Ask the service at ``path`` to decide ``args``. ``None`` when no service listens there (the caller
    decides itself). Raises :class:`ConfigError` when whoever listens is not this user (root), and
    :class:`Unavailable` when the service fails to answer."""
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    except OSError:
        return None
    with conn:
        try:
            conn.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as e:
            raise Unavailable(f"the decision service at {path} cannot be reached: {e.strerror}",
                              hint="restart it (bacon serve) or remove [service] socket from the configuration") from e
        uid = peer_uid(conn)
        if uid != os.geteuid():
            raise ConfigError(f"the decision service at {path} runs as uid {uid}, not as uid {os.geteuid()}: "
                              "refusing its answers", hint=f"stop whatever listens on {path}; only root may serve")
        umask = os.umask(0o022)
        os.umask(umask)
        payload = json.dumps({"v": PROTOCOL, "args": list(args), "env": dict(environ), "cwd": cwd,
                              "umask": umask}).encode()
        if len(payload) > MAX_MESSAGE:
            return None
        try:
            conn.settimeout(ANSWER_TIMEOUT)
            socket.send_fds(conn, [payload], [0, 1, 2])
            reply = conn.recv(MAX_MESSAGE)
        except TimeoutError as e:
            raise Unavailable(f"the decision service at {path} did not answer within {ANSWER_TIMEOUT:g}s",
                              hint="see its log (bacon serve); the command was not forwarded") from e
        except OSError as e:
            raise Unavailable(f"the decision service at {path} failed: {e.strerror}",
                              hint="see its log (bacon serve); the command was not forwarded") from e
    try:
        doc = json.loads(reply) if reply else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("v") != PROTOCOL:
        raise Unavailable(f"the decision service at {path} gave no answer (it may have crashed)",
                          hint="see its log (bacon serve); the command was not forwarded")
    return doc


# -- the service side --------------------------------------------------------------------------------------

PRELOAD = ("shim.gate", "shim.containerd", "shim.keys", "shim.signatures", "shim.registry", "shim.signing",
           "shim.admission", "shim.audit", "shim.records", "shim.signature_cache", "shim.imagewalk",
           "shim.config", "shim.tpm.check", "shim.tpm.wire", "shim.tpm.attest", "shim.tdx.check",
           "grpc._channel", "grpc._simple_stubs", "grpc.experimental")  # what grpc imports at its first channel


def preload() -> None:
    """Import what decisions use, once, before any fork (no gRPC channel, no thread: fork-safe)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


def _check_directory(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"the service socket's directory {directory} must belong to uid {os.geteuid()} and be "
                          "writable by nobody else", hint=f"chown root {directory} && chmod 0700 {directory}")


def listen(path: str) -> socket.socket:
    """A root-only SOCK_SEQPACKET socket at ``path`` (a stale one is replaced). Raises :class:`ConfigError`."""
    _check_directory(path)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"{path} exists and is not a socket", hint=f"remove {path} or choose another socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    old = os.umask(0o077)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def _answer(conn: socket.socket, doc: Mapping[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.send(json.dumps({"v": PROTOCOL, **doc}).encode())


def _decide(conn: socket.socket) -> None:
    """In the forked child: take the caller's request, become the caller's environment, decide, answer."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the child waits for its own children (credential helpers)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if peer_uid(conn) != os.geteuid():
        _answer(conn, {"error": f"bacon: denied: the decision service serves only uid {os.geteuid()}", "exit": 77})
        return
    msg, fds, flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 3)
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 3:
            raise ValueError("a truncated request, or not the caller's three standard streams")
        req = json.loads(msg)
        if not isinstance(req, dict) or req.get("v") != PROTOCOL:
            raise ValueError("not a request of this protocol")
        args, env, cwd, umask = req["args"], req["env"], req["cwd"], req["umask"]
        if not (isinstance(args, list) and all(isinstance(a, str) for a in args) and isinstance(env, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
                and isinstance(cwd, str) and isinstance(umask, int)):
            raise ValueError("ill-typed request")
    except (ValueError, KeyError) as e:
        for fd in fds:
            os.close(fd)
        _answer(conn, {"error": f"bacon: internal error: the decision service got a bad request: {e}",
                       "exit": EXIT_INTERNAL})
        return
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
        os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.umask(umask & 0o777)
    try:
        os.chdir(cwd)
        from shim import wrapper

        nerdctl, forward, then = wrapper.plan(args)
        _answer(conn, {"nerdctl": nerdctl, "forward": forward, "then": then})
    except BaconError as e:
        _answer(conn, {"error": e.render(), "exit": e.exit_code})
    except OSError as e:
        _answer(conn, {"error": f"bacon: unavailable: cannot enter {cwd}: {e.strerror}", "exit": 69})
    except Exception as e:  # noqa: BLE001 - fail closed on any bug, with a message, as the wrapper does
        _answer(conn, {"error": f"bacon: internal error: {type(e).__name__}: {e}", "exit": EXIT_INTERNAL})


def serve(path: str, *, log: Any = None) -> str:
    """Accept requests at ``path``, one forked child each, until SIGTERM or SIGINT (returned by name)."""
    out = log or sys.stderr
    preload()
    sock = listen(path)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: no zombies

    stopped_by = ["SIGINT"]

    def stop(_signum: int, _frame: object) -> None:
        stopped_by[0] = "SIGTERM"
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"bacon serve: deciding for uid {os.geteuid()} at {path} (pid {os.getpid()})", file=out, flush=True)
    try:
        while True:
            conn, _ = sock.accept()
            with conn:
                caller = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))[0]
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    try:
                        _decide(conn)
                    finally:
                        os._exit(0)
                print(f"bacon serve: request from pid {caller} decided by pid {pid}", file=out, flush=True)
    except KeyboardInterrupt:
        print(f"bacon serve: stopped by {stopped_by[0]}", file=out, flush=True)
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
    return stopped_by[0]
