"""The warm decision service (`bacon serve`) end to end: the wrapper asks it, carries out its plan, and
decides itself when it is gone; the decisions, the pinned argv and the audit lines are the ones the wrapper
makes alone (tests/integration/test_gate.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim import service
from shim.errors import ConfigError
from tests.conftest import Host, Signed, trusted_config
from tests.integration.test_gate import assert_denied, audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


class Served:
    def __init__(self, host: Host) -> None:
        self.socket = host.root / "run" / "decide.sock"
        self.log = host.root / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = host

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*self.host.bacon, "serve"], env=self.host.env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "bacon serve did not listen in 30 s"
            time.sleep(0.05)

    def requests(self) -> int:
        return self.log.read_text().count("request from pid")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)


@pytest.fixture
def served(gate_host: Host, signed: Signed) -> Iterator[Served]:
    s = Served(gate_host)
    trusted_config(gate_host, signed.trusted, extra=f'[service]\nsocket = "{s.socket}"\n')
    s.start()
    yield s
    if s.proc and s.proc.poll() is None:
        s.stop()


def test_admitted_through_the_service_pinned_and_run(served: Served, signed: Signed) -> None:
    low = signed["low"]
    r = nerdctl(served.host, "run", "--rm", low.ref)
    assert r.rc == 0, r.stderr
    assert "hello-from-low" in r.stdout  # the container ran in the caller's terminal, not the service's
    [argv] = r.forwarded
    assert argv[-1].endswith(low.digest)  # pinned (local: the bare digest, remote: repo@digest)
    assert served.requests() == 1
    [line] = audit_lines(served.host)
    assert line["verdict"] == "admitted"


def test_denied_through_the_service_says_why(served: Served, signed: Signed) -> None:
    img = signed["unsigned"]
    r = nerdctl(served.host, "pull", img.ref)
    assert_denied(r, img.ref, "signature", img.digest)
    assert served.requests() == 1
    assert [line["verdict"] for line in audit_lines(served.host)] == ["denied"]


def test_pull_then_tag_and_create_then_start(served: Served, signed: Signed) -> None:
    low = signed["low"]
    r = nerdctl(served.host, "pull", low.ref)
    assert r.rc == 0, r.stderr
    assert [a[-2] if a[-3:-2] == ["tag"] else a[0] for a in r.forwarded][-1]  # pull, then tag, both run
    assert any("tag" in a for a in r.forwarded), r.forwarded
    assert nerdctl(served.host, "create", "--name", "served-create", low.ref).rc == 0
    r = nerdctl(served.host, "start", "served-create")
    assert r.rc == 0, r.stderr
    assert served.requests() == 3


def test_the_callers_environment_decides_not_the_services(served: Served, signed: Signed) -> None:
    """The child takes the caller's environment: a namespace chosen by the caller is the one checked."""
    low = signed["low"]
    r = nerdctl(served.host, "--namespace", "other-ns", "run", "--rm", low.ref)
    assert r.rc == 0, r.stderr
    assert "--namespace=other-ns" in r.forwarded[0]


def test_without_a_service_the_wrapper_decides_itself(served: Served, signed: Signed) -> None:
    assert served.stop() == 0
    assert not served.socket.exists()
    r = nerdctl(served.host, "run", "--rm", signed["low"].ref)
    assert r.rc == 0, r.stderr
    r = nerdctl(served.host, "run", "--rm", signed["unsigned"].ref)
    assert r.rc == 77


def test_a_listener_of_another_uid_is_refused(gate_host: Host, signed: Signed) -> None:
    """Whoever answers on the socket must be root: another uid's listener gets no request and gives no plan."""
    directory = Path(tempfile.mkdtemp(prefix="bacon-other-", dir="/tmp"))
    os.chmod(directory, 0o777)  # noqa: S103 - let uid 65534 bind here (a directory BACON would refuse)
    path = directory / "decide.sock"
    listener = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
         "import socket,sys,os; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1]); "
         "os.chmod(sys.argv[1], 0o666); s.listen(); print('ready', flush=True)\n"
         "while True:\n c,_=s.accept()\n"
         " try: c.send(b'{\"v\":1,\"nerdctl\":\"x\",\"forward\":[\"evil\"],\"then\":[]}')\n"
         " except OSError: pass",
         str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError, match="runs as uid 65534"):
            service.request(str(path), ["run", "x"], {}, "/")
        trusted_config(gate_host, signed.trusted, extra=f'[service]\nsocket = "{path}"\n')
        r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
        assert r.rc == 78, r.stderr
        assert "runs as uid 65534" in r.stderr
        assert r.forwarded == []
    finally:
        listener.kill()
        listener.wait()
        shutil.rmtree(directory, ignore_errors=True)


def test_the_service_serves_only_its_own_uid(gate_host: Host, signed: Signed) -> None:
    """A caller of another uid gets a denial, not a decision (run through setpriv as uid 65534; the socket is
    opened to it for this test: BACON makes it 0600)."""
    directory = Path(tempfile.mkdtemp(prefix="bacon-svc-", dir="/tmp"))
    os.chmod(directory, 0o755)  # noqa: S103 - traversable by uid 65534, writable by root only
    s = Served(gate_host)
    s.socket = directory / "decide.sock"
    trusted_config(gate_host, signed.trusted, extra=f'[service]\nsocket = "{s.socket}"\n')
    s.start()
    try:
        assert stat.S_IMODE(s.socket.stat().st_mode) == 0o600
        os.chmod(s.socket, 0o666)  # noqa: S103
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
             "import socket,sys; c=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c.connect(sys.argv[1]);"
             "socket.send_fds(c,[b'{}'],[0,1,2]); print(c.recv(65536).decode())", str(s.socket)],
            capture_output=True, text=True, timeout=30)
        answer = json.loads(r.stdout)
        assert answer["exit"] == 77
        assert "serves only uid 0" in answer["error"]
    finally:
        s.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_garbage_requests_are_answered_not_crashed_on(served: Served) -> None:
    for payload, fds in ((b"not json", [0, 1, 2]), (b'{"v": 1}', [0, 1, 2]), (b'{"v": 1, "args": []}', [])):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
            c.connect(str(served.socket))
            socket.send_fds(c, [payload], fds)
            answer = json.loads(c.recv(65536))
        assert answer["exit"] == 70, answer
        assert "bad request" in answer["error"]
    assert served.proc is not None
    assert served.proc.poll() is None  # the service is still there
