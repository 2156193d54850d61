"""Files opened on the operator's behalf (``--label-file``, ``--env-file``, and whatever else the wrapper
reads or creates for them): with the caller's permissions, regular files only, bounded, within a time.

Under sudo the wrapper is root; the operator is not. A file the wrapper opens for them must be one they
could open themselves, or the wrapper reads ``/etc/shadow`` for anyone who asks. So the open happens in a
**forked child** that first drops to the caller's identity (:func:`shim.wrapper.caller.identity`: supplementary
groups, then gid, then uid, all three of real, effective and saved) and closes every descriptor it
inherited (``/proc/self/fd/N`` must not reach the wrapper's own open files). The child opens with
``O_NOFOLLOW | O_NONBLOCK`` (a symlink as the last component is refused; a FIFO or a device does not
block the open), checks with ``fstat`` that it holds a regular file (FIFOs, devices, sockets and
directories are refused: ``/dev/zero`` never ends, a FIFO never answers), and either reads at most
``max_bytes`` (:func:`read`) or hands the descriptor back over a socket pair (:func:`open_fd`). The parent
waits at most ``timeout`` seconds (an NFS or FUSE file can hang any open or read) and kills the child then.

A fork rather than ``setfsuid`` in a thread: the supplementary groups are process-wide in glibc, and a
child that dies leaves nothing half-changed in the wrapper. Outside sudo (no other identity to take)
the same child opens the file as this process, with the same checks.

API (each raises :class:`~shim.common.errors.Denied` with ``check="input"`` naming the file and the fix, or
:class:`~shim.common.errors.Unavailable` when the time runs out):

- ``read(path, what=…)`` → the bytes of a regular file (at most :data:`MAX_BYTES`);
- ``open_fd(path, flags, mode, what=…)`` → a descriptor opened as the caller (``O_CLOEXEC``; the caller
  closes it), e.g. to create a file the operator asked for (``--cidfile``) with their ownership;
- ``sealed_copy(data, name)`` → an in-memory file (memfd) holding ``data``, sealed against any change and
  inherited across ``exec``: nerdctl reads ``/proc/self/fd/N`` instead of the operator's path, so it
  reads exactly what the wrapper read, as the caller (see :mod:`shim.wrapper.inputs`).

Standard library only (``os``, ``select``, ``_socket``, ``fcntl``; no ``socket`` module): it runs on the
path of every served admission.
"""

from __future__ import annotations

import os
import stat

from shim.common.errors import Denied, Unavailable
from shim.wrapper import caller

TYPE_CHECKING = False  # typing and collections are not imported at run time: import cost
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_BYTES = 1 << 20  # what --label-file / --env-file may hold: far above any real one
TIMEOUT = 5.0  # seconds for the open and the read together
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _drop(identity: caller.Identity | None) -> None:
    if identity is None:
        return
    os.setgroups(list(identity.groups))
    os.setresgid(identity.gid, identity.gid, identity.gid)
    os.setresuid(identity.uid, identity.uid, identity.uid)


def _child(sock: object, path: str, flags: int, mode: int, identity: caller.Identity | None, max_bytes: int,
           hand_back: bool) -> None:
    """In the forked child: drop, open, check, then read and send, or send the descriptor. Never returns."""
    import _socket

    assert isinstance(sock, _socket.socket)
    try:
        keep = sock.fileno()
        os.closerange(0, keep)
        os.closerange(keep + 1, max(os.sysconf("SC_OPEN_MAX"), 1 << 20))  # close_range(2): one call
        _drop(identity)
        try:
            fd = os.open(path, flags | _OPEN_FLAGS, mode)
            st = os.fstat(fd)
        except OSError as e:
            sock.sendall(f"errno {e.errno}\n".encode())
            return
        if not stat.S_ISREG(st.st_mode):
            sock.sendall(f"kind {_kind(st.st_mode)}\n".encode())
            return
        if hand_back:
            sock.sendmsg([b"fd\n"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])
            return
        if st.st_size > max_bytes:
            sock.sendall(f"size {st.st_size}\n".encode())
            return
        chunks, total = [], 0
        while total <= max_bytes:
            try:
                chunk = os.read(fd, min(1 << 16, max_bytes + 1 - total))
            except BlockingIOError:
                continue  # a regular file opened O_NONBLOCK may still say so on some filesystems
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            sock.sendall(f"size {total}\n".encode())
            return
        sock.sendall(b"ok\n" + b"".join(chunks))
    except BaseException:  # noqa: BLE001 - the parent sees a short answer and refuses
        os._exit(1)
    finally:
        os._exit(0)


def _run(path: str, *, what: str, flags: int, mode: int, max_bytes: int, timeout: float, hand_back: bool,
         environ: Mapping[str, str] | None) -> tuple[bytes, int | None]:
    import _socket
    import contextlib
    import select
    import signal
    import time

    identity = caller.identity(environ)
    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            parent.close()
            _child(child, path, flags, mode, identity, max_bytes, hand_back)
        child.close()
        data, fds = bytearray(), list[int]()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([parent], [], [], left)[0]:
                    for fd in fds:
                        os.close(fd)
                    raise Unavailable(f"reading {what} {path} took longer than {timeout:g}s (a hung network or "
                                      "FUSE file system?)", hint="copy the file to a local disk and name the copy")
                msg, anc, _flags, _addr = parent.recvmsg(1 << 16, 64, _socket.MSG_CMSG_CLOEXEC)
                for level, kind, payload in anc:
                    if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                        fds += [int.from_bytes(payload[i:i + 4], "little") for i in range(0, len(payload) - 3, 4)]
                if not msg:
                    break
                data += msg
                if len(data) > max_bytes + 64:
                    raise Denied(f"{what} {path} is larger than {max_bytes} bytes", check="input")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # ended already (a zombie until reaped) unless it hung
            os.waitpid(pid, 0)
    finally:
        parent.close()
    head, _, body = bytes(data).partition(b"\n")
    return _outcome(path, what, head.decode("ascii", "replace"), body, fds, max_bytes, hand_back)


def _outcome(path: str, what: str, head: str, body: bytes, fds: list[int], max_bytes: int,
             hand_back: bool) -> tuple[bytes, int | None]:
    word, _, arg = head.partition(" ")
    fd = fds[0] if len(fds) == 1 else None
    if word == "fd" and hand_back and fd is not None and not body:
        return b"", fd
    for extra in fds:
        os.close(extra)
    if word == "ok" and not hand_back:
        return body, None
    if word == "errno" and arg.isdigit():
        import errno

        code = int(arg)
        if code == errno.ELOOP:
            reason = "is a symbolic link (name the file it points to)"
        elif code in (errno.EACCES, errno.EPERM):
            reason = "cannot be opened with your permissions (the wrapper opens it as you, not as root)"
        else:
            reason = f"cannot be opened: {os.strerror(code)}"
        raise Denied(f"{what} {path} {reason}", check="input", hint=f"name a regular file you can read as {what}")
    if word == "kind":
        raise Denied(f"{what} {path} is {arg}, not a regular file", check="input",
                     hint=f"name a regular file as {what} (copy the content into one)")
    if word == "size":
        raise Denied(f"{what} {path} is larger than {max_bytes} bytes", check="input",
                     hint=f"{what} holds short text; name a smaller file")
    raise Denied(f"{what} {path} could not be read (the reading process failed)", check="input",
                 hint="try again; if it persists, report it with the command line")


def read(path: str, *, what: str, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT,
         environ: Mapping[str, str] | None = None) -> bytes:
    """The content of the regular file ``path``, opened as the caller (``what`` names it in messages,
    e.g. ``"--label-file"``). Raises Denied or Unavailable (module docstring)."""
    data, _ = _run(path, what=what, flags=os.O_RDONLY, mode=0, max_bytes=max_bytes, timeout=timeout,
                   hand_back=False, environ=environ)
    return data


def open_fd(path: str, flags: int, mode: int = 0o600, *, what: str, timeout: float = TIMEOUT,
            environ: Mapping[str, str] | None = None) -> int:
    """A descriptor for the regular file ``path`` opened with ``flags`` (``O_CREAT`` … allowed) as the
    caller, close-on-exec; the caller of this function closes it. Raises Denied or Unavailable."""
    _, fd = _run(path, what=what, flags=flags, mode=mode, max_bytes=0, timeout=timeout, hand_back=True,
                 environ=environ)
    assert fd is not None
    return fd


def sealed_copy(data: bytes, name: str) -> int:
    """A memfd holding ``data``, sealed (no write, grow, shrink or new seal) and inherited across exec."""
    import fcntl

    fd = os.memfd_create(name, os.MFD_ALLOW_SEALING)  # no MFD_CLOEXEC: the real nerdctl reads it
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_sealed_copy(fd: int) -> bool:
    """True when ``fd`` is a memfd sealed as :func:`sealed_copy` seals it (its content cannot change)."""
    import fcntl

    want = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & want == want
    except OSError:
        return False
