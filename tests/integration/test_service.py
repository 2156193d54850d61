"""The warm decision service (`bacon serve`) end to end: the wrapper asks it, carries out its plan, and
decides itself when it is gone; the decisions, the pinned argv and the audit lines are the ones the wrapper
makes alone (tests/integration/test_gate.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shim.common.errors import ConfigError
from shim.service import server as service
from shim.service import wire
from tests.conftest import Host, Signed, trusted_config
from tests.harness.proc import wait_for
from tests.integration.test_gate import assert_denied, audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


CREDS = (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), tuple(os.getgroups()))  # this process's own


class Served:
    def __init__(self, host: Host) -> None:
        self.socket = host.root / "run" / "decide.sock"
        self.log = host.root / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = host

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*self.host.bacon, "serve"], env=self.host.env(), stdout=log, stderr=log)
        wait_for(self.socket.exists, "bacon serve", timeout=30, proc=self.proc, log=self.log)

    def events(self) -> list[dict[str, object]]:
        """The service's operational log: every line a JSON object (shim/service/log.py)."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def requests(self) -> int:
        return sum(1 for e in self.events() if e["event"] == "request")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"bacon serve did not stop; its log:\n{self.log.read_text()}") from None


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
    # The worker imported everything the decision uses before the request came (server.PRELOAD).
    imported = [e["modules"] for e in served.events() if e["event"] == "imported while deciding"]
    assert imported == [], imported
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
         " try: c.send(b'bacon-answer-1\\x00plan\\x00/bin/sh\\x001\\x00evil\\x000\\x00end')\n"
         " except OSError: pass",
         str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError, match="runs as uid 65534"):
            wire.request(str(path), ["run", "x"], {}, "/")
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
             "socket.send_fds(c,[b'bacon-request-1'],[0,1,2]); print(c.recv(65536).hex())", str(s.socket)],
            capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (r.stdout, r.stderr, s.log.read_text())
        answer = wire.decode_answer(bytes.fromhex(r.stdout))
        assert answer == (77, "bacon: denied: the decision service serves only uid 0")
    finally:
        s.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_garbage_requests_are_answered_not_crashed_on(served: Served) -> None:
    valid = wire.encode_request(["run", "--rm", "x"], {"PATH": "/bin"}, "/", 0o22, (0, 0, 0, 0, ()))
    for payload, fds in ((b"not a request", [0, 1, 2]), (b"bacon-request-1\0/\x0018", [0, 1, 2]),
                         (b"bacon-request-1\0/\0" + b"18\x003\0run\0end", [0, 1, 2]), (valid[:-4], [0, 1, 2]),
                         (valid[:-4] + b"\0NOEQUALS\0end", [0, 1, 2]),
                         (b"\xff\xfe" * 100, [0, 1, 2]), (valid, []), (valid, [0])):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
            c.connect(str(served.socket))
            socket.send_fds(c, [payload], fds)
            answer = wire.decode_answer(c.recv(65536))
        assert answer[0] == 70, (payload, answer)
        assert "bad request" in str(answer[1])
    assert served.proc is not None
    assert served.proc.poll() is None  # the service is still there


@pytest.mark.parametrize("args", [["run", "--rootfs", "/srv/x", "sh"], ["pull", "oci-archive:/tmp/x.tar"],
                                  ["run", "--rm", "library/UPPER"]])
def test_argv_refusals_through_the_service_match_the_wrappers_own(served: Served, signed: Signed,
                                                                   args: list[str]) -> None:
    """The service classifies too (the client only parses): its refusal is the in-process one, byte for byte."""
    through = nerdctl(served.host, *args)
    assert served.requests() == 1
    assert served.stop() == 0
    alone = nerdctl(served.host, *args)
    assert (through.rc, through.stderr, through.forwarded) == (alone.rc, alone.stderr, alone.forwarded)
    assert through.rc in (64, 77)
    assert through.forwarded == []


def test_help_of_a_gated_command_is_forwarded_by_the_service(served: Served) -> None:
    r = nerdctl(served.host, "run", "--help")
    assert r.forwarded == [["run", "--help=true"]]  # re-serialized, as the wrapper forwards it itself
    assert served.requests() == 1  # (the stand-in itself prints no help: its exit status is not the point)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def test_workers_are_spare_one_per_request_and_stopped_with_the_service(served: Served, signed: Signed) -> None:
    assert served.proc is not None
    deadline = time.monotonic() + 20
    while len(_children(served.proc.pid)) < service.SPARE_WORKERS:
        assert time.monotonic() < deadline, "the service did not fork its spare workers"
        time.sleep(0.05)
    for _ in range(3):
        assert nerdctl(served.host, "run", "--rm", signed["low"].ref).rc == 0
    deciders = {int(str(e["worker"])) for e in served.events() if e["event"] == "request"}
    assert len(deciders) == 3  # three requests, three processes
    while len(_children(served.proc.pid)) < service.SPARE_WORKERS:  # each used worker has been replaced
        assert time.monotonic() < deadline + 20
        time.sleep(0.05)
    workers = _children(served.proc.pid)
    assert not workers & deciders  # a worker serves once
    assert served.stop() == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]
              for w in workers):
        assert time.monotonic() < deadline, "idle workers outlived the service"
        time.sleep(0.05)


def _service_item(host: Host) -> tuple[int, dict[str, object]]:
    r = subprocess.run([*host.bacon, "status", "--json"], env=host.env(), capture_output=True, text=True, timeout=60)
    items = [i for i in json.loads(r.stdout)["items"] if i["key"] == "service"]
    assert len(items) == 1, r.stdout
    return r.returncode, items[0]


def test_status_says_whether_the_service_answers(served: Served, signed: Signed) -> None:
    rc_up, up = _service_item(served.host)
    assert up["state"] == "ok", up
    assert str(served.socket) in str(up["summary"])
    assert served.requests() == 0  # looking is not asking
    assert served.stop() == 0
    rc_down, down = _service_item(served.host)
    assert down["state"] == "warn", down
    assert "bacon serve" in str(down["fix"])
    assert rc_down == rc_up  # informative: the wrapper decides alone, the same decision
    trusted_config(served.host, signed.trusted)
    _, unset = _service_item(served.host)
    assert unset["state"] == "info", unset


def test_a_stop_in_the_middle_of_forking_workers_is_not_lost(gate_host: Host, signed: Signed) -> None:
    """Connections that ask nothing use up workers as fast as the service can fork them; a SIGTERM sent in
    the middle still stops it, idle workers included."""
    for attempt in range(3):
        s = Served(gate_host)
        s.socket = gate_host.root / f"run{attempt}" / "decide.sock"
        trusted_config(gate_host, signed.trusted, extra=f'[service]\nsocket = "{s.socket}"\n')
        s.start()
        done = threading.Event()

        def churn(path: str = str(s.socket), done: threading.Event = done) -> None:
            while not done.is_set():
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
                    c.connect(path)

        t = threading.Thread(target=churn, daemon=True)
        t.start()
        time.sleep(0.3 + 0.2 * attempt)
        try:
            assert s.stop() == 0
        finally:
            done.set()
            t.join(10)


def _records(host: Host) -> list[Path]:
    directory = host.state_dir / "admissions"
    return sorted(directory.glob("*.json")) if directory.exists() else []


@pytest.mark.parametrize("leaves", ["before the answer", "after reading the plan"])
def test_a_caller_that_leaves_mid_decision_is_audited_abandoned_and_leaves_no_record(
        served: Served, signed: Signed, leaves: str) -> None:
    """The decision is made (and audited) while the caller is gone: its plan is never run, so the audit says
    abandoned and no admission record is left that a later `start` could claim."""
    payload = wire.encode_request(["create", signed["low"].ref], served.host.env(), "/", 0o22, CREDS)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
        c.connect(str(served.socket))
        socket.send_fds(c, [payload], [0, 1, 2])
        if leaves == "after reading the plan":
            c.settimeout(60)
            answer = wire.decode_answer(c.recv(wire.MAX_MESSAGE))
            assert len(answer) == 3, answer
    wait_for(lambda: len(audit_lines(served.host)) == 2, "the abandoned decision's audit line", timeout=60)
    verdicts = [line["verdict"] for line in audit_lines(served.host)]
    assert verdicts == ["admitted", "abandoned"], verdicts
    abandoned = audit_lines(served.host)[1]
    assert len(abandoned["removed_records"]) == 1  # type: ignore[arg-type]
    assert _records(served.host) == []
    assert not served.host.calls.exists() or not served.host.calls.read_text().strip()  # nothing ran
    r = nerdctl(served.host, "create", signed["low"].ref)  # a caller that stays: its record is kept
    assert r.rc == 0, r.stderr
    assert len(_records(served.host)) == 1


def test_idle_connections_hold_a_worker_only_briefly(served: Served, signed: Signed) -> None:
    """Connections that never send a request (any root process can open them) used to hold each pre-forked
    worker for 30 s: eight of them delayed an admission by a minute."""
    idle = []
    try:
        for _ in range(2 * service.SPARE_WORKERS):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            c.connect(str(served.socket))
            idle.append(c)
        started = time.monotonic()
        r = nerdctl(served.host, "run", "--rm", signed["low"].ref)
        elapsed = time.monotonic() - started
    finally:
        for c in idle:
            c.close()
    assert r.rc == 0, r.stderr
    assert elapsed < 4 * service.REQUEST_TIMEOUT + 10, elapsed
    assert any(e["event"] == "idle connection closed" for e in served.events())


ASK_AS = r"""
import _socket, json, os, sys
from shim.service import wire
ruid, claimed, args, env = json.loads(sys.argv[2])
os.setresuid(ruid, 0, 0)  # a set-uid start: real uid the caller's, effective root
groups = tuple(os.getgroups())
creds = (*claimed, groups) if claimed else (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), groups)
c = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
c.connect(sys.argv[1])
streams = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
c.sendmsg([wire.encode_request(args, env, "/", 0o22, creds)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, streams)])
print(c.recv(wire.MAX_MESSAGE).hex())
"""


def _ask_as(served: Served, ruid: int, claimed: tuple[int, int, int, int] | None, args: list[str]) -> object:
    env = served.host.env()
    r = subprocess.run([sys.executable, "-c", ASK_AS, str(served.socket), json.dumps([ruid, claimed, args, env])],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return wire.decode_answer(bytes.fromhex(r.stdout))


def test_a_set_uid_caller_is_decided_as_under_sudo(served: Served, signed: Signed) -> None:
    """Real uid 65534, effective root, no SUDO_* variable: in the wrapper's own process that is "under
    sudo" (BACON_CONFIG ignored); the service decides the same from the credentials the kernel reports
    (before, it looked at SUDO_* alone and took the caller's BACON_CONFIG)."""
    answer = _ask_as(served, 65534, None, ["run", "--rm", signed["low"].ref])
    assert isinstance(answer, tuple)
    assert len(answer) == 2, answer
    assert "/etc/bacon/config.toml" in str(answer[1]), answer
    # the same request from root itself is decided with BACON_CONFIG, and admitted
    plan = _ask_as(served, 0, None, ["run", "--rm", signed["low"].ref])
    assert isinstance(plan, tuple)
    assert len(plan) == 3, plan


@pytest.mark.parametrize("claimed", [(0, 0, 0, 0), (65534, 65534, 0, 0), (65534, 0, 65534, 0)])
def test_credentials_the_kernel_does_not_confirm_are_refused(served: Served, signed: Signed,
                                                             claimed: tuple[int, int, int, int]) -> None:
    answer = _ask_as(served, 65534, claimed, ["run", "--rm", signed["low"].ref])
    assert isinstance(answer, tuple)
    assert answer[0] == 70, answer
    assert "bad request" in str(answer[1]), answer
    assert "kernel" in str(answer[1]), answer
    assert served.proc is not None
    assert served.proc.poll() is None


def test_served_input_files_are_the_callers_copies(served: Served, signed: Signed) -> None:
    """The wrapper's sealed copies of --env-file/--label-file travel with the request: the service's
    label check and nerdctl read the same bytes."""
    d = Path(tempfile.mkdtemp(prefix="bacon-served-inputs-"))
    try:
        d.chmod(0o755)
        (d / "labels").write_text("bacon/admission=forged\n")
        r = nerdctl(served.host, "create", "--label-file", str(d / "labels"), signed["low"].ref)
        assert r.rc == 77, r.stderr
        assert "bacon/ namespace" in r.stderr, r.stderr
        (d / "env").write_text("A=1\n")
        r = nerdctl(served.host, "run", "--rm", "--env-file", str(d / "env"), "--label-file", str(d / "env"),
                    signed["low"].ref)
        assert r.rc == 0, r.stderr
        assert served.requests() == 2
        read = json.loads(served.host.calls.read_text().splitlines()[-1])["read"]
        assert list(read.values()) == ["A=1\n"]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_operational_log_is_json_lines_through_start_decisions_worker_exits_and_stop(
        served: Served, signed: Signed) -> None:
    """`bacon serve` logs through structlog, one JSON object a line on standard error (journald's, under
    systemd): its start, each request, a failed decision (a directory the worker cannot enter: 69), each
    worker's exit, its stop. An admission is not logged as a failure; the audit line is unchanged."""
    assert served.proc is not None
    r = nerdctl(served.host, "run", "--rm", signed["low"].ref)
    assert r.rc == 0, r.stderr
    payload = wire.encode_request(["create", signed["low"].ref], served.host.env(), "/nonexistent-bacon-cwd", 0o22,
                                  CREDS)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
        c.connect(str(served.socket))
        socket.send_fds(c, [payload], [0, 1, 2])
        c.settimeout(60)
        answer = wire.decode_answer(c.recv(wire.MAX_MESSAGE))
    assert answer[0] == 69, answer
    wait_for(lambda: sum(e["event"] == "worker exited" for e in served.events()) >= 2, "two workers' exits",
             timeout=30)
    assert served.stop() == 0
    events = served.events()  # every line is one JSON object
    for e in events:
        assert {"event", "level", "time"} <= set(e), e
        assert datetime.fromisoformat(str(e["time"])).utcoffset() == timedelta(0), e
    started, stopped = events[0], events[-1]
    assert (started["event"], started["level"], started["pid"]) == ("service started", "info", served.proc.pid)
    assert (started["socket"], started["workers"]) == (str(served.socket), service.SPARE_WORKERS)
    assert (stopped["event"], stopped["signal"]) == ("service stopped", "SIGTERM")
    requests = [e for e in events if e["event"] == "request"]
    assert len(requests) == 2
    [failed] = [e for e in events if e["event"] == "decision failed"]
    assert (failed["level"], failed["exit_code"]) == ("error", 69)
    assert failed["caller_pid"] == os.getpid()
    assert "cannot enter /nonexistent-bacon-cwd" in str(failed["message"])
    exits = [e for e in events if e["event"] == "worker exited"]
    assert {int(str(e["worker"])) for e in exits} >= {int(str(e["worker"])) for e in requests}
    assert all((e["status"], e["level"]) == (0, "info") for e in exits)
    [line] = audit_lines(served.host)  # the admission's audit line, as the wrapper writes it alone
    assert line["verdict"] == "admitted"
    assert list(line)[-2:] == ["event", "time"]
