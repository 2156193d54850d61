"""The wire between the wrapper and the warm decision service (:mod:`shim.service.server`): one request, one
answer, and the wrapper's side of it.

This is on the path of every served admission, whose whole budget is cosign's own verify (about 40 ms),
so it imports nothing but the built-in ``_socket``: ``socket`` (enum, selectors) and ``json`` (re) cost
8-14 ms each to import, as much as the rest of the wrapper. For the same reason the messages are fields
separated by NUL, which argv, environment strings and paths cannot contain, rather than JSON:

- request: ``bacon-request-2``, cwd, umask, the caller's real and effective uid and gid, G and G
  supplementary groups, F and F descriptor numbers (the wrapper's sealed copies of input files,
  :mod:`shim.wrapper.inputs`), N and N arguments, the environment as ``KEY=VALUE`` fields, and ``end``; the
  caller's standard streams and then the F copies travel with it (``SCM_RIGHTS``). The service checks the
  ids against the kernel's (``SO_PEERCRED``, ``/proc/PID/status``) and decides for them;
- answer: ``bacon-answer-1``, ``plan``, the real nerdctl, N, N arguments, M, M commands each as K and K
  arguments, and ``end``; or ``bacon-answer-1``, ``error``, the exit status, and the message (the rest).

- then the wrapper's ``bacon-taken-1`` (:data:`TAKEN`): it has the plan and carries it out. A plan not
  taken up (the wrapper died or left) is audited as abandoned and its admission record removed.

``end`` makes a message cut short (a truncated read) an error, not a shorter plan.

Text is UTF-8 with ``surrogateescape``, so arguments that are not UTF-8 arrive unchanged. Decoding is
strict: anything else is a :class:`ValueError`, and the wrapper then refuses (nothing is forwarded).
"""

from __future__ import annotations

import _socket
import os
import sys

from shim.common.errors import ConfigError, NoPermission, Unavailable

TYPE_CHECKING = False  # typing and collections are not imported at run time: import cost
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

REQUEST = "bacon-request-2"
ANSWER = "bacon-answer-1"
TAKEN = b"bacon-taken-1"
MAX_INPUTS = 64  # sealed input copies passed with a request (each --label-file/--env-file path)
MAX_MESSAGE = 256 << 10  # argv + environment; larger requests are decided in the wrapper's own process
ANSWER_TIMEOUT = 600.0  # seconds; the gate bounds each step itself (registry, TPM), this bounds a stuck child
_MAX_COUNT = 100_000
_END = "end"

Plan = tuple[str, list[str], list[list[str]]]  # the real nerdctl, its argv, the commands after it


def _encode(fields: Sequence[str]) -> bytes:
    if any("\0" in f for f in fields):
        raise ValueError("a field holds a NUL character")
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def _decode(data: bytes, maxsplit: int = -1) -> list[str]:
    return data.decode("utf-8", "surrogateescape").split("\0", maxsplit)


class _Fields:
    """Reads counted lists off decoded fields; any shortfall or leftover is a ValueError."""

    def __init__(self, fields: list[str], start: int) -> None:
        self.fields, self.at = fields, start

    def take(self) -> str:
        if self.at >= len(self.fields):
            raise ValueError("the message ends early")
        self.at += 1
        return self.fields[self.at - 1]

    def count(self, limit: int = _MAX_COUNT) -> int:
        text = self.take()
        if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > limit:
            raise ValueError(f"not a count: {text[:20]!r}")
        return int(text)

    def strings(self) -> list[str]:
        n = self.count()
        if self.at + n > len(self.fields):
            raise ValueError("the message ends early")
        self.at += n
        return self.fields[self.at - n:self.at]

    def end(self) -> None:
        if self.at != len(self.fields):
            raise ValueError("the message has trailing fields")


class Request:
    """What the wrapper asks: its arguments, environment, working directory and umask, its credentials
    (real uid, effective uid, real gid, effective gid, supplementary groups) and the numbers its sealed
    input copies have in its process."""

    __slots__ = ("args", "creds", "cwd", "env", "inputs", "umask")

    def __init__(self, args: list[str], env: dict[str, str], cwd: str, umask: int,
                 creds: tuple[int, int, int, int, tuple[int, ...]], inputs: tuple[int, ...]) -> None:
        self.args, self.env, self.cwd, self.umask, self.creds, self.inputs = args, env, cwd, umask, creds, inputs


def encode_request(args: Sequence[str], environ: Mapping[str, str], cwd: str, umask: int,
                   creds: tuple[int, int, int, int, Sequence[int]], inputs: Sequence[int] = ()) -> bytes:
    ruid, euid, rgid, egid, groups = creds
    return _encode([REQUEST, cwd, str(umask), str(ruid), str(euid), str(rgid), str(egid),
                    str(len(groups)), *map(str, groups), str(len(inputs)), *map(str, inputs),
                    str(len(args)), *args, *(f"{k}={v}" for k, v in environ.items()), _END])


def decode_request(data: bytes) -> Request:
    """The request in ``data``. Raises ValueError."""
    fields = _decode(data)
    if fields[0] != REQUEST:
        raise ValueError("not a request of this protocol (restart bacon serve after upgrading BACON)")
    r = _Fields(fields, 1)
    cwd = r.take()
    umask = r.count()
    ruid, euid, rgid, egid = (r.count((1 << 32) - 1) for _ in range(4))
    groups = tuple(_number(g) for g in r.strings())
    inputs = tuple(_number(n) for n in r.strings())
    if len(inputs) > MAX_INPUTS:
        raise ValueError(f"more than {MAX_INPUTS} input copies")
    args = r.strings()
    if fields[-1] != _END:
        raise ValueError("the request ends early")
    env: dict[str, str] = {}
    for entry in fields[r.at:-1]:
        key, eq, value = entry.partition("=")
        if not key or not eq or key in env:
            raise ValueError(f"not an environment entry: {entry[:40]!r}")
        env[key] = value
    return Request(args, env, cwd, umask, (ruid, euid, rgid, egid, groups), inputs)


def _number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) >= 1 << 32:
        raise ValueError(f"not an id: {text[:20]!r}")
    return int(text)


def encode_plan(nerdctl: str, forward: Sequence[str], then: Sequence[Sequence[str]]) -> bytes:
    fields = [ANSWER, "plan", nerdctl, str(len(forward)), *forward, str(len(then))]
    for command in then:
        fields += [str(len(command)), *command]
    return _encode([*fields, _END])


def encode_error(message: str, exit_code: int) -> bytes:
    head = _encode([ANSWER, "error", str(exit_code), ""])
    return head + message.replace("\0", "\\0").encode("utf-8", "surrogateescape")


def decode_answer(data: bytes) -> Plan | tuple[int, str]:
    """A plan, or (exit status, message) for a refusal or failure. Raises ValueError."""
    head = _decode(data, 3)
    if head[0] != ANSWER or len(head) < 2:
        raise ValueError("not an answer of this protocol")
    if head[1] == "error":
        if len(head) != 4 or not (head[2].isascii() and head[2].isdigit()) or not 0 < int(head[2]) < 256:
            raise ValueError("a malformed error answer")
        return int(head[2]), head[3]
    if head[1] != "plan":
        raise ValueError(f"an unknown answer {head[1][:20]!r}")
    r = _Fields(_decode(data), 2)
    nerdctl = r.take()
    forward = r.strings()
    then = [r.strings() for _ in range(r.count())]
    if r.take() != _END:
        raise ValueError("the answer does not end where it should")
    r.end()
    return nerdctl, forward, then


def peer_uid(conn: _socket.socket) -> int:
    """The uid at the other end of a connected unix socket (``SO_PEERCRED``: struct ucred pid, uid, gid)."""
    cred = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[4:8], sys.byteorder)


def listener_uid(path: str, timeout: float) -> int:
    """The uid of whatever listens at ``path`` (a connection, no request). Raises OSError."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        conn.settimeout(timeout)
        conn.connect(path)
        return peer_uid(conn)
    finally:
        conn.close()


def request(path: str, args: Sequence[str], environ: Mapping[str, str], cwd: str,
            inputs: Sequence[int] = ()) -> Plan | tuple[int, str] | None:
    """Ask the service at ``path`` to decide ``args``: its plan, or (exit status, message). ``None`` when no
    service listens there (the caller decides itself). Raises :class:`ConfigError` when whoever listens is
    not this user (root), and :class:`Unavailable` when the service fails to answer."""
    try:
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            conn.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except PermissionError as e:
            raise NoPermission(f"you (uid {os.geteuid()}) may not use the decision service at {path}: it is "
                               "root's, and so is every decision", hint="run nerdctl with sudo") from e
        except OSError as e:
            raise Unavailable(f"the decision service at {path} cannot be reached: {e.strerror}",
                              hint="restart it (bacon serve) or remove [service] socket from the configuration") from e
        uid = peer_uid(conn)
        if uid != os.geteuid():
            raise ConfigError(f"the decision service at {path} runs as uid {uid}, not as uid {os.geteuid()}: "
                              "refusing its answers", hint=f"stop whatever listens on {path}; only root may serve")
        umask = os.umask(0o022)
        os.umask(umask)
        try:
            creds = (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups())
            payload = encode_request(args, environ, cwd, umask, creds, inputs)
        except ValueError:
            return None
        if len(payload) > MAX_MESSAGE:
            return None
        if len(inputs) > MAX_INPUTS:
            return None
        streams = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, *inputs))  # C ints
        try:
            conn.settimeout(ANSWER_TIMEOUT)
            conn.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, streams)])
            reply = conn.recv(MAX_MESSAGE)
            answer = decode_answer(reply)
            if len(answer) == 3:
                conn.send(TAKEN)  # EPIPE: the service gave up on this plan (and audited it abandoned)
        except ValueError as e:
            raise Unavailable(f"the decision service at {path} gave no answer it could read (it may have crashed: "
                              f"{e})", hint="see its log (bacon serve); the command was not forwarded") from e
        except TimeoutError as e:
            raise Unavailable(f"the decision service at {path} did not answer within {ANSWER_TIMEOUT:g}s",
                              hint="see its log (bacon serve); the command was not forwarded") from e
        except OSError as e:
            raise Unavailable(f"the decision service at {path} failed: {e.strerror}",
                              hint="see its log (bacon serve); the command was not forwarded") from e
    finally:
        conn.close()
    return answer
