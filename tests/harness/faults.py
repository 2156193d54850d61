"""Fault injectors for the fault-matrix tests: loopback proxies in front of the real services that pass
traffic through until a chosen moment, then stall (hold every byte, keep the connection open) or cut
(close it), and a loopback HTTP front for the real registry that answers chosen paths itself.

Nothing here imitates a service: every byte that is answered comes from the real containerd, swtpm or
registry, except what a rule deliberately injects (a 500, a redirect loop, bytes that do not match their
digest, a 2 GB body streamed lazily, a stall).

- :class:`SocketProxy` forwards a unix or TCP listener to an upstream address. ``trigger`` decides, frame by
  frame (a framer splits the client's byte stream), when to stall or cut: :class:`Http2Requests` counts
  gRPC calls (HTTP/2 HEADERS frames) to containerd, :class:`TpmCommands` reads the swtpm command channel
  (raw TPM 2.0 commands or the MS simulator's framing) and fires on a command code (``TPM2_CC_Quote``);
  :class:`TpmTap` keeps every command and response and can rewrite the responses to one command (an
  interposer on the TPM's channel).
- :class:`FaultRegistry` is an HTTP server on 127.0.0.1 that forwards to the real registry unless a rule
  answers first.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import proc

FORWARD, STALL, CUT = "forward", "stall", "cut"


class Framer:
    """Splits the client → server byte stream into messages; :meth:`feed` returns complete frames."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while True:
            n = self.next_size()
            if n is None or len(self.buf) < n:
                return out
            out.append(self.buf[:n])
            self.buf = self.buf[n:]

    def next_size(self) -> int | None:
        raise NotImplementedError


class Raw(Framer):
    def next_size(self) -> int | None:
        return len(self.buf) or None


class Http2Frames(Framer):
    """HTTP/2 from the client: the 24-byte connection preface, then 9-byte-headed frames."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self) -> None:
        super().__init__()
        self.preface_done = False

    def next_size(self) -> int | None:
        if not self.preface_done:
            if len(self.buf) < len(self.PREFACE):
                return None
            self.preface_done = True
            return len(self.PREFACE)
        if len(self.buf) < 9:
            return None
        return 9 + int.from_bytes(self.buf[:3], "big")


MSSIM_SEND_COMMAND = 8


class TpmFrames(Framer):
    """swtpm's TCP command channel, in either protocol it speaks: raw TPM 2.0 commands (tag u16,
    commandSize u32, command code u32, …; tpm2-tss's swtpm TCTI) or the MS simulator's (u32 8, locality
    u8, size u32, then the command; other u32 codes carry nothing; tpm2-tss's mssim TCTI)."""

    def next_size(self) -> int | None:
        if len(self.buf) < 6:
            return None
        first = int.from_bytes(self.buf[:4], "big")
        if first == MSSIM_SEND_COMMAND:
            return 9 + int.from_bytes(self.buf[5:9], "big") if len(self.buf) >= 9 else None
        if first < 0x100:
            return 4
        return max(6, int.from_bytes(self.buf[2:6], "big"))


def tpm_command_code(frame: bytes) -> int | None:
    if int.from_bytes(frame[:4], "big") == MSSIM_SEND_COMMAND:
        frame = frame[9:]
    return int.from_bytes(frame[6:10], "big") if len(frame) >= 10 else None


Trigger = Callable[[bytes], str]


@dataclass
class Http2Requests:
    """Let ``allow`` gRPC calls through (HEADERS frames opening a stream), then ``action`` on the next."""

    allow: int
    action: str = STALL
    seen: int = 0

    def framer(self) -> Framer:
        return Http2Frames()

    def __call__(self, frame: bytes) -> str:
        if len(frame) >= 9 and frame[3] == 0x1 and not frame.startswith(b"PRI "):
            self.seen += 1
            if self.seen > self.allow:
                return self.action
        return FORWARD


TPM2_CC_QUOTE = 0x158


@dataclass
class TpmCommands:
    """``action`` when the TPM command ``code`` is sent (``TPM2_CC_Quote``: the TPM dies mid-quote)."""

    code: int = TPM2_CC_QUOTE
    action: str = STALL
    seen: list[int] = field(default_factory=list)

    def framer(self) -> Framer:
        return TpmFrames()

    def __call__(self, frame: bytes) -> str:
        cc = tpm_command_code(frame)
        if cc is not None:
            self.seen.append(cc)
            if cc == self.code:
                return self.action
        return FORWARD


class TpmResponses(Framer):
    """swtpm's answers on the raw channel: tag u16, responseSize u32, …"""

    def next_size(self) -> int | None:
        return max(10, int.from_bytes(self.buf[2:6], "big")) if len(self.buf) >= 6 else None


@dataclass
class TpmTap:
    """Forward everything, keep every command and response, and rewrite the responses to command ``code``
    with ``tamper`` (an interposer on the TPM's channel: a bus, a socket, a resource manager)."""

    code: int | None = None
    tamper: Callable[[bytes], bytes] | None = None
    commands: list[bytes] = field(default_factory=list)
    responses: list[bytes] = field(default_factory=list)
    tampered: int = 0

    def framer(self) -> Framer:
        return TpmFrames()

    def response_framer(self) -> Framer:
        return TpmResponses()

    def __call__(self, frame: bytes) -> str:
        self.commands.append(frame)
        return FORWARD

    def on_response(self, frame: bytes) -> bytes:
        self.responses.append(frame)
        last = tpm_command_code(self.commands[-1]) if self.commands else None
        if self.tamper is not None and last == self.code:
            self.tampered += 1
            return self.tamper(frame)
        return frame


class Forever:
    """Forward everything."""

    def framer(self) -> Framer:
        return Raw()

    def __call__(self, frame: bytes) -> str:
        return FORWARD


class SocketProxy:
    """A listener (unix path or 127.0.0.1 port) that pumps each connection to ``upstream``; frames from
    the client pass ``trigger`` first. Once it says stall or cut, every connection (and every later one)
    is stalled or cut. Use as a context manager."""

    def __init__(self, listen: Path | int, upstream: Path | tuple[str, int], trigger: Http2Requests | TpmCommands |
                 TpmTap | Forever | None = None) -> None:
        self.upstream = upstream
        self.trigger = trigger or Forever()
        self.state = FORWARD
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stop = False
        if isinstance(listen, Path):
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(listen))
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(("127.0.0.1", listen))
        self.listener.listen(64)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self) -> SocketProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, Path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(self.upstream))
        else:
            s = socket.create_connection(self.upstream)
        return s

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.state == CUT:
                client.close()
                continue
            with self._lock:
                self._socks.append(client)
            if self.state == STALL:
                continue  # accepted, never answered
            try:
                up = self._connect_upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks.append(up)
            threading.Thread(target=self._pump, args=(client, up), daemon=True).start()

    def _fire(self, action: str) -> None:
        self.state = action
        self.fired.set()
        if action == CUT:
            with self._lock:
                for s in self._socks:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        s.close()

    def _pump(self, client: socket.socket, up: socket.socket) -> None:
        framer = self.trigger.framer()
        on_response = getattr(self.trigger, "on_response", None)
        answers = self.trigger.response_framer() if isinstance(self.trigger, TpmTap) else None
        try:
            while not self._stop:
                if self.state == STALL:
                    self.fired.wait()
                    threading.Event().wait(3600)  # hold the bytes and the connection
                    return
                r, _, _ = select.select([client, up], [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is up:
                        if self.state == FORWARD:
                            if answers is None or on_response is None:
                                client.sendall(data)
                            else:
                                for frame in answers.feed(data):
                                    client.sendall(on_response(frame))
                        continue
                    for frame in framer.feed(data):
                        if self.state == FORWARD:
                            action = self.trigger(frame)
                            if action != FORWARD:
                                self._fire(action)
                                break
                            up.sendall(frame)
        except (OSError, ValueError):  # ValueError: select on a socket closed by a cut
            return
        finally:
            if self.state != STALL:
                for s in (client, up):
                    with contextlib.suppress(OSError):
                        s.close()


# -- the registry -------------------------------------------------------------------------------------

@dataclass
class Answer:
    """What a rule answers: status, headers, and a body (bytes, or an iterator streamed lazily)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterator[bytes] = b""
    raw: Iterator[bytes] | None = None  # written as is instead of a status line, headers and body


Rule = Callable[[str, str], "Answer | str | None"]  # (method, path) -> Answer, STALL, or None: forward


def zeros(total: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    """``total`` zero bytes, produced lazily (a 2 GB body costs 64 KiB of memory)."""
    block = bytes(chunk)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block[:n]
        sent += n


def dribble(data: bytes, every: float) -> Iterator[bytes]:
    """``data`` one byte at a time, one byte every ``every`` seconds (a slowloris server)."""
    for i in range(len(data)):
        threading.Event().wait(every)
        yield data[i:i + 1]


class FaultRegistry:
    """An HTTP server on 127.0.0.1 in front of the real registry at ``upstream`` (host:port).

    ``rules`` are asked in order for each request; the first that answers decides; otherwise the request
    goes to the real registry and its answer comes back unchanged. ``requests`` records (method, path)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []  # every Authorization header received
        self.streamed = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                outer.requests.append((self.command, self.path))
                if self.headers.get("Authorization"):
                    outer.authorizations.append(self.headers["Authorization"])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                for rule in outer.rules:
                    ans = rule(self.command, self.path)
                    if ans is None:
                        continue
                    if ans == STALL:
                        threading.Event().wait(3600)
                        return
                    assert isinstance(ans, Answer)
                    self._answer(ans)
                    return
                self._forward(body)

            def _answer(self, ans: Answer) -> None:
                if ans.raw is not None:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        for chunk in ans.raw:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                    return
                self.send_response(ans.status)
                for k, v in ans.headers.items():
                    self.send_header(k, v)
                if isinstance(ans.body, bytes):
                    if "Content-Length" not in ans.headers:
                        self.send_header("Content-Length", str(len(ans.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(ans.body)
                    return
                if "Content-Length" not in ans.headers:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    for chunk in ans.body:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        outer.streamed += len(chunk)
                except OSError:
                    self.close_connection = True

            def _forward(self, body: bytes) -> None:
                conn = http.client.HTTPConnection(outer.upstream, timeout=30)
                try:
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=hdrs)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                        self.send_header(k, v)
                head_length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", head_length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.port = proc.free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def listening_but_dead(path: Path) -> socket.socket:
    """A unix socket file that exists and is bound, but whose listener never accepts: a hung daemon."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    return s


def stale_socket(path: Path) -> None:
    """A socket file whose daemon is gone (connection refused), as after a crash."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    assert os.path.exists(path)
