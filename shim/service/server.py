"""The warm decision service (``bacon serve``): admissions without paying Python's imports every time.

An admission in a fresh process spends about 95% of its time importing grpc, protobuf and cryptography
(``benchmarks``: ~200 ms, against ~15 ms for the decision itself). This root-only service imports them
once, then keeps a few **pre-forked workers** (:data:`SPARE_WORKERS`) waiting in ``accept``. Each worker
serves exactly one request and exits; the service forks a fresh one as each exits. Forked before any
request, a worker has already paid what a new process pays on its first decision (gRPC's start-up,
copy-on-write faults on the code a decision touches: about 10 ms) by warming up on the service's own
configuration (:func:`_warm_up`: a containerd query that matches nothing, the trusted keys), so the
request only pays for its decision.

For its request, a worker takes the caller's environment, working directory, umask and standard streams,
runs exactly the wrapper's own decision (:func:`shim.wrapper.main.plan`: the same configuration read, the same
gate, the same audit line) and answers with the plan: the argv for the real nerdctl, pinned, and the
commands to run after it. The wrapper, a thin client here (:mod:`shim.service.wire`), carries the plan
out itself, in the operator's terminal. One process per request: no state is shared between decisions,
and nothing learnt from one caller is used for another.

Trust runs both ways over ``SO_PEERCRED``: the service answers only callers with its own uid (root), and
the wrapper uses only a service with its own uid, so nobody else can either ask or answer. The caller
sends its real and effective ids and groups; the worker checks them against the kernel's (``SO_PEERCRED``
and ``/proc/PID/status``) and adopts them (:func:`shim.wrapper.caller.adopt`), so "under sudo" (a set-uid start,
sudo, doas, pkexec) and whose permissions open input files are decided exactly as in the wrapper's own
process, never from the environment alone. The socket is
``SOCK_SEQPACKET`` (one message each way, boundaries kept) in a directory only root may write. When no
service is configured or none is listening, the wrapper decides in its own process, as before: the
service changes how long a decision takes, never what it is.

``push`` (which signs after nerdctl returns) and ``bacon`` commands are not served.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import stat
import sys
import time
from typing import TextIO

from shim.common import trustedfile
from shim.common.errors import EXIT_INTERNAL, BaconError, ConfigError, printable
from shim.service import log as servicelog
from shim.service import wire

SPARE_WORKERS = 4  # workers waiting for a request; each serves one, then a fresh one is forked
# Seconds a connection may hold a worker before it sends its request. The wrapper sends as soon as it is
# connected, so this only has to cover a busy machine's scheduling; idle connections (anyone with root can
# open them) then cannot keep every worker from admissions for long.
REQUEST_TIMEOUT = 3.0
ACK_TIMEOUT = 10.0  # seconds for the wrapper to take up a plan it was sent (:func:`_delivered`)
RESPAWN_PAUSE = 0.2  # seconds before replacing a worker that failed without serving (no fork storm)


PRELOAD = ("shim.admission.gate", "shim.admission.context", "shim.admission.finding", "shim.admission.image_checks",
           "shim.admission.plans", "shim.runtime.gate", "shim.runtime.spec", "shim.runtime.exec",
           "shim.runtime.decided", "shim.runtime.specfile", "shim.admission.profiles.enforce", "shim.images.rootfs",
           "shim.images.containerd", "shim.trust.keys", "shim.trust.signers", "shim.wrapper.callerfiles",
           "shim.trust.signatures", "shim.images.registry", "shim.images.credentials",
           "shim.trust.registry_signatures", "shim.trust.signing", "shim.admission.decision", "shim.admission.audit",
           "shim.admission.records", "shim.trust.cache", "shim.images.imagewalk", "shim.common.config",
           "shim.wrapper.main", "shim.wrapper.nerdctl_env", "shim.attest.tpm.check", "shim.attest.tpm.attest",
           "shim.attest.tdx.check", "shim.attest.measure", "shim.attest.launchlog", "shim.attest.cel",
           "shim.attest.tpm.device", "shim.common.deadline", "shim.wrapper.inputs", "shim.runtime.checkpoint",
           "shim.runtime.main",
           "grpc._channel", "grpc._simple_stubs", "grpc.experimental",  # what grpc imports at its first channel
           "cryptography.hazmat.backends.openssl",  # imported at the first signature check
           "encodings.idna")  # socket.getaddrinfo encodes a host name (the registry's) with it


def preload() -> None:
    """Import what decisions use, once, before any fork (no gRPC channel, no thread: fork-safe); with
    keyless identities in the service's own configuration, sigstore too (about 0.4 s of each decision)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from shim.attest.tpm.device import load_tss

    with contextlib.suppress(BaconError):  # without the tpm extra, a TPM check answers why (exit 69)
        load_tss()  # tpm2-pytss: paid here once, not by each decision
    from shim.common import config

    with contextlib.suppress(BaconError):
        if config.load().identities:
            importlib.import_module("shim.trust.keyless")


def _check_directory(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if trustedfile.unsafe_stat(st, sticky=False):  # the stale socket in it is replaced on start
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


def _answer(conn: socket.socket, message: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.send(message)


def _delivered(conn: socket.socket, plan: bytes) -> bool:
    """Send ``plan`` and wait for the wrapper to take it up (:data:`shim.service.wire.TAKEN`). False when
    the caller is gone or silent: the decision was then abandoned, not carried out.

    On a timeout the connection is shut down before a last look for the message, so the answer is the
    same at both ends: a wrapper whose message arrived in time carries the plan out; one whose message
    came too late gets EPIPE, and refuses."""
    try:
        conn.send(plan)
        conn.settimeout(ACK_TIMEOUT)
        return conn.recv(64) == wire.TAKEN
    except TimeoutError:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
            conn.setblocking(False)
            return conn.recv(64) == wire.TAKEN
        return False
    except OSError:
        return False


def proc_credentials(pid: int) -> tuple[int, int, int, int, tuple[int, ...]]:
    """(real uid, effective uid, real gid, effective gid, groups) of process ``pid``, from the kernel
    (``/proc/PID/status``). Raises OSError or ValueError."""
    fields: dict[str, list[str]] = {}
    with open(f"/proc/{pid}/status", "rb") as f:  # bytes: a text file's codec lookup is an import in a worker
        for line in f:
            key, _, rest = line.decode("ascii", "replace").partition(":")
            fields[key] = rest.split()
    uid, gid = fields["Uid"], fields["Gid"]
    return int(uid[0]), int(uid[1]), int(gid[0]), int(gid[1]), tuple(sorted(int(g) for g in fields["Groups"]))


def check_caller(conn: socket.socket, sent: tuple[int, int, int, int, tuple[int, ...]]) -> None:
    """The credentials a caller sent must be its own: its effective ids are the kernel's ``SO_PEERCRED``
    (taken at ``connect``), and all of them are ``/proc/PID/status``'s for the peer's pid, so a caller
    can neither hide a set-uid start nor claim another's. Raises ValueError."""
    pid, uid, gid = struct_ucred(conn)
    ruid, euid, rgid, egid, groups = sent
    if (euid, egid) != (uid, gid):
        raise ValueError(f"the caller says euid {euid}, egid {egid}; the kernel says {uid}, {gid}")
    try:
        kernel = proc_credentials(pid)
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"cannot read the credentials of pid {pid}: {e}") from None
    if kernel != (ruid, euid, rgid, egid, tuple(sorted(groups))):
        raise ValueError(f"the caller's credentials {sent} are not the kernel's {kernel} for pid {pid}")


def struct_ucred(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the peer of a connected unix socket (``SO_PEERCRED``)."""
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return tuple(int.from_bytes(cred[i:i + 4], sys.byteorder) for i in (0, 4, 8))  # type: ignore[return-value]


def _place_inputs(numbers: tuple[int, ...], received: list[int]) -> None:
    """Put the caller's sealed input copies at the numbers they have in the caller (``/proc/self/fd/N``
    then names the same file here). Raises ValueError."""
    from shim.wrapper import callerfiles, inputs

    if len(numbers) != len(received):
        raise ValueError("the request's input copies do not match the descriptors sent")
    for number, fd in zip(numbers, received, strict=True):
        if number < inputs.FIRST_FD or not callerfiles.is_sealed_copy(fd):
            raise ValueError(f"input copy {number} is not a sealed copy at or above {inputs.FIRST_FD}")
        try:
            os.fstat(number)
        except OSError:
            os.dup2(fd, number)
            os.close(fd)
            continue
        raise ValueError(f"descriptor {number} is already in use in the worker")


def _serve_request(conn: socket.socket, log: servicelog.Log) -> None:
    """In a worker: take the caller's request, become the caller's environment, decide, answer; a failed
    or slow decision is logged (:func:`shim.service.log.decision`)."""
    conn.settimeout(REQUEST_TIMEOUT)
    try:
        msg, fds, flags, _addr = socket.recv_fds(conn, wire.MAX_MESSAGE, 3 + wire.MAX_INPUTS)
    except TimeoutError:
        log.warning("idle connection closed", timeout=REQUEST_TIMEOUT)
        return
    conn.settimeout(None)
    if not msg and not fds:
        return  # closed without asking (`bacon status` looking whether the service is there)
    caller_pid = struct_ucred(conn)[0]
    log.info("request", caller_pid=caller_pid, worker=os.getpid())
    loaded = frozenset(sys.modules)  # what the decision imports is missing from PRELOAD: said after the answer
    started = time.monotonic()
    answered: list[tuple[int | None, str, float]] = []  # (exit code or None for a plan, message, when sent)
    try:
        _answer_request(conn, log, caller_pid, msg, fds, flags, answered)
    finally:
        code, message, sent = answered[0] if answered else (EXIT_INTERNAL, "no answer", time.monotonic())
        servicelog.decision(log, sent - started, code, caller_pid=caller_pid,
                            **({"message": message} if code is not None else {}))
        imported = sys.modules.keys() - loaded
        if imported:
            log.info("imported while deciding", modules=sorted(imported)[:40], caller_pid=caller_pid)


def _answer_request(conn: socket.socket, log: servicelog.Log, caller_pid: int, msg: bytes, fds: list[int],
                    flags: int, answered: list[tuple[int | None, str, float]]) -> None:
    from shim.wrapper import caller

    def error(message: str, code: int) -> None:
        answered.append((code, message, time.monotonic()))
        _answer(conn, wire.encode_error(message, code))

    def plan(data: bytes) -> bool:
        answered.append((None, "", time.monotonic()))
        return _delivered(conn, data)

    if wire.peer_uid(conn) != os.geteuid():  # read first, so that the caller gets this answer, not EPIPE
        for fd in fds:
            os.close(fd)
        error(f"bacon: denied: the decision service serves only uid {os.geteuid()}", 77)
        return
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) < 3:
            raise ValueError("a truncated request, or not the caller's three standard streams")
        req = wire.decode_request(msg)
        check_caller(conn, req.creds)
        _place_inputs(req.inputs, fds[3:])
    except (ValueError, UnicodeError) as e:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        error(f"bacon: internal error: the decision service got a bad request: {e}", EXIT_INTERNAL)
        return
    for i, fd in enumerate(fds[:3]):
        os.dup2(fd, i)
        os.close(fd)
    caller.adopt(caller.Credentials(*req.creds))
    os.environ.clear()
    os.environ.update(req.env)
    os.umask(req.umask & 0o777)
    cwd = req.cwd
    try:
        os.chdir(cwd)
        from shim.runtime import main as runtime_client
        from shim.wrapper import main as wrapper

        if req.args[:1] == [runtime_client.MARKER]:  # the runtime gate (create, exec: shim.runtime.main)
            from shim.runtime import gate as runtime_gate

            runc, args = runtime_gate.plan(req.args[1:])
            if not plan(wire.encode_plan(runc, args, [])):
                log.warning("decision abandoned", caller_pid=caller_pid, runtime=True)
            return
        nerdctl, forward, then = wrapper.plan(req.args)
        if not plan(wire.encode_plan(nerdctl, forward, then)):
            log.warning("decision abandoned", caller_pid=caller_pid, audited="abandoned")
            wrapper.abandon(req.args, forward)
    except BaconError as e:
        error(e.render(), e.exit_code)
    except OSError as e:
        error(f"bacon: unavailable: cannot enter {cwd}: {e.strerror}", 69)
    except Exception as e:  # noqa: BLE001 - fail closed on any bug, with a message, as the wrapper does
        error(f"bacon: internal error: {type(e).__name__}: {printable(str(e))}", EXIT_INTERNAL)


def _warm_up() -> None:
    """Before any request: what a new process pays on its first decision, paid on the service's own
    configuration. Read-only (the trusted keys; on the containerd sockets a request will most likely use, the
    runtime gate's and nerdctl's default, a query that matches nothing and a blob that is not there, their
    channels then left connected for it: :func:`shim.images.containerd.warm_channel`); whatever fails here
    is left for the request to meet and report."""
    from shim.common import config
    from shim.images.containerd import warm_channel
    from shim.runtime.gate import containerd_address
    from shim.trust import keys
    from shim.wrapper.nerdctl_env import resolve

    with contextlib.suppress(Exception):
        cfg = config.load()
        with contextlib.suppress(Exception):
            keys.load_trusted_keys(list(cfg.trusted_keys), allowed=cfg.key_types)
        for address in {containerd_address(cfg.runtime, os.environ), resolve(None, None).address}:
            with contextlib.suppress(Exception):
                warm_channel(address)
        if cfg.measure.enabled:
            from shim.attest import measure

            with contextlib.suppress(Exception):
                measure.warm_up(cfg)


_STOPS = {signal.SIGTERM, signal.SIGINT}


def _spawn(sock: socket.socket, log: servicelog.Log, running: set[int], wakeup: tuple[int, int]) -> None:
    """Fork a worker into ``running``. Stops wait (blocked) while it forks, so that the child cannot run
    the service's handlers before it has its own."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS | {signal.SIGCHLD})
    try:
        pid = os.fork()
        if pid == 0:
            _worker(sock, log, mask, wakeup)
        running.add(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _worker(sock: socket.socket, log: servicelog.Log, mask: set[int | signal.Signals], wakeup: tuple[int, int]) -> None:
    """A pre-forked worker: warm up, serve one request, exit (never returns)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for fd in wakeup:
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # idle: the service's stop ends it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # it waits for its own children (credential helpers)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _warm_up()
        conn, _ = sock.accept()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # deciding: finish (each step has its own deadline)
        sock.close()
        with conn:
            _serve_request(conn, log)
        code = 0
    except KeyboardInterrupt:
        code = 130
    except BaseException as e:  # noqa: BLE001 - a worker never returns into the service's loop
        with contextlib.suppress(Exception):
            log.error("worker failed", worker=os.getpid(), error=f"{type(e).__name__}: {e}")
    finally:
        os._exit(code)


def _reap(running: set[int], log: servicelog.Log) -> bool:
    """Collect (and log) the workers that have ended; True if one failed (ended other than with status 0)."""
    failed = False
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        running.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        (log.warning if code else log.info)("worker exited", worker=pid, status=code)
        failed = failed or code != 0
    return failed


def serve(path: str, *, stream: TextIO | None = None, workers: int = SPARE_WORKERS) -> str:
    """Serve requests at ``path`` with ``workers`` pre-forked workers until SIGTERM or SIGINT (returned by
    name). On stop, idle workers end; a worker in the middle of a decision finishes it.

    Signal handlers only note what arrived; the loop sleeps in ``select`` on the wakeup pipe that the
    interpreter writes for every signal as it arrives, so a stop is seen whatever the loop was doing (a
    handler raising instead could fire inside ``fork``'s Python hooks, where exceptions are dropped).

    The service's operational log goes to ``stream`` (standard error by default) as JSON lines
    (:mod:`shim.service.log`)."""
    # A descriptor of its own: a worker puts the caller's standard streams at 0, 1 and 2 (:func:`_serve_request`)
    log = servicelog.logger(os.fdopen(os.dup((stream or sys.stderr).fileno()), "w", buffering=1, encoding="utf-8"))
    preload()
    sock = listen(path)
    running: set[int] = set()
    stops: list[str] = []
    wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wakeup[1], warn_on_full_buffer=False)
    for sig in _STOPS:
        signal.signal(sig, lambda signum, _frame: stops.append(signal.Signals(signum).name))
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)  # delivered: it wakes the loop
    log.info("service started", uid=os.geteuid(), socket=path, pid=os.getpid(), workers=workers)
    try:
        while not stops:
            while len(running) < workers and not stops:
                _spawn(sock, log, running, wakeup)
            select.select([wakeup[0]], [], [])
            with contextlib.suppress(BlockingIOError):
                while os.read(wakeup[0], 512):
                    pass
            if _reap(running, log) and not stops:
                time.sleep(RESPAWN_PAUSE)
        log.info("service stopped", signal=stops[0])
    finally:
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        signal.set_wakeup_fd(-1)
        for fd in wakeup:
            os.close(fd)
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
    return stops[0] if stops else "SIGINT"
