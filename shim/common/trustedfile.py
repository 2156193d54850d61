"""Whether a file BACON executes or trusts may be trusted: one rule, for every such file.

The configuration, the real nerdctl, trusted keys and roots, the TPM baseline, the system level, the TDX
reference collateral, the state directory and what is kept in it: whoever can change one of them decides
what BACON admits, or runs code as root. Each is therefore checked the same way before it is used:

- the file is owned by root (or by the effective user, when BACON does not run as root) and is writable by
  nobody else (no group or other write bit); a *private* file (keys, records) is not even readable by others;
- every directory on the way to it, from ``/``, is owned by root (or the effective user) and writable by
  nobody else — except a root-owned sticky directory such as ``/tmp``, where nobody may rename or remove
  another's entry;
- a symlink on the way is followed only inside such a tree: the directory holding it is checked (only
  whoever may write it can replace the link), then the whole path it points to, from ``/``. A symlink out
  of a root-owned tree therefore fails on the first unsafe directory of its target. Where a symlink is
  not wanted at all (the configuration file itself), ``symlink=False`` refuses it.

Anything else is a :class:`shim.common.errors.ConfigError` (exit 78) that names the file, the part of its path at
fault, and the command that fixes it. :func:`problem` gives the same verdict as text, for ``bacon status``
and ``doctor``, so that they agree with the wrapper and the service on every file.

Opening is done on the resolved path with ``O_NOFOLLOW``, and the descriptor is checked again
(``fstat``), so a file swapped between the walk and the open is caught.

Standard library only, no ``pathlib``: the wrapper checks the real nerdctl with it on the forwarding path.
"""

from __future__ import annotations

import os
import stat

from shim.common.errors import ConfigError, NoPermission

TYPE_CHECKING = False  # typing is not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    StrPath = str | os.PathLike[str]

MAX_SYMLINKS = 40  # as the kernel (ELOOP)


def _owners() -> tuple[int, int]:
    return (0, os.geteuid())


def unsafe_stat(st: os.stat_result, *, private: bool = False, sticky: bool = True) -> str | None:
    """Why a file or directory with status ``st`` may not be trusted, or ``None`` (pure). ``sticky=False``
    refuses a shared sticky directory too (a directory whose entries BACON replaces must be its own)."""
    if st.st_uid not in _owners():
        return f"is owned by uid {st.st_uid}, not by root"
    mode = stat.S_IMODE(st.st_mode)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if sticky and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0:
            return None  # /tmp and the like: nobody may replace another's entry
        return f"is writable by others (mode {mode:o})"
    if private and st.st_mode & 0o077:
        return f"is readable by others (mode {mode:o}), and it must be private to root"
    return None


def _fix(path: str, reason: str, *, private: bool = False, directory: bool = False) -> str:
    if "owned by uid" in reason:
        return f"chown root:root {path} (and check what was put there)"
    if private:
        return f"chmod 0600 {path}"
    return f"chmod go-w {path}" if directory or "writable" in reason else f"chmod 0644 {path}"


def _no_permission(what: str, name: str, e: OSError) -> NoPermission:
    return NoPermission(f"you (uid {os.geteuid()}) may not read the {what} {name}: {e.strerror}",
                        hint=f"run the command with sudo (or, as root, make it readable: chmod 0644 {name})")


def resolve(path: StrPath, what: str, *, symlink: bool = True, directory: bool = False,
            missing_hint: str | None = None) -> str:
    """The real path of ``path`` after checking every directory on the way and every symlink followed (the
    file itself is left to the caller; a ``directory`` is checked too). Raises :class:`ConfigError` naming
    ``what`` and ``path``."""
    name = os.fspath(path)
    if not os.path.isabs(name):
        raise ConfigError(f"{what} {name} is not an absolute path")
    pending = [c for c in name.split("/") if c]
    done = "/"
    hops = 0
    st = os.lstat("/")
    while True:
        reason = unsafe_stat(st)
        if reason:
            shown = "" if done == name else f": the directory {done} on its path"
            raise ConfigError(f"{what} {name}{shown} {reason}", hint=_fix(done, reason, directory=True))
        while pending and pending[0] in (".", ".."):
            if pending.pop(0) == "..":
                done = os.path.dirname(done)
        if not pending:
            if directory:
                return done
            raise ConfigError(f"{what} {name} is a directory, not a file")
        nxt = os.path.join(done, pending.pop(0))
        try:
            st = os.lstat(nxt)
        except FileNotFoundError as e:
            raise ConfigError(f"{what} {name} does not exist" + (f" ({nxt} is missing)" if nxt != name else ""),
                              hint=missing_hint or f"install {name}, or correct the configuration") from e
        except PermissionError as e:
            raise _no_permission(what, name, e) from e
        except OSError as e:
            raise ConfigError(f"cannot inspect {what} {name} ({nxt}): {e.strerror}") from e
        if stat.S_ISLNK(st.st_mode):
            if not symlink and not pending:
                raise ConfigError(f"{what} {name} is a symlink", hint=f"replace {name} by a regular file")
            hops += 1
            if hops > MAX_SYMLINKS:
                raise ConfigError(f"{what} {name}: too many levels of symlinks")
            target = os.readlink(nxt)
            pending = [c for c in target.split("/") if c] + pending
            if target.startswith("/"):
                done = "/"
            st = os.lstat(done)
            continue
        if stat.S_ISDIR(st.st_mode):
            done = nxt
            continue
        if pending or directory:
            raise ConfigError(f"{what} {name}: {nxt} is not a directory")
        return nxt


def open_checked(path: StrPath, what: str, *, private: bool = False, symlink: bool = True,
                 missing_hint: str | None = None) -> int:
    """A read-only descriptor on the file at ``path``, which passed every check. Raises :class:`ConfigError`."""
    real = resolve(path, what, symlink=symlink, missing_hint=missing_hint)
    name = os.fspath(path)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except PermissionError as e:
        raise _no_permission(what, name, e) from e
    except OSError as e:
        raise ConfigError(f"cannot open {what} {name}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {name} is not a regular file")
        reason = unsafe_stat(st, private=private)
        if reason:
            shown = name if real == name else f"{name} (-> {real})"
            raise ConfigError(f"{what} {shown} {reason}", hint=_fix(real, reason, private=private))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(path: StrPath, what: str, *, max_size: int = 1 << 20, private: bool = False, symlink: bool = True,
         missing_hint: str | None = None) -> bytes:
    """The content of a trusted file (at most ``max_size`` bytes). Raises :class:`ConfigError`."""
    fd = open_checked(path, what, private=private, symlink=symlink, missing_hint=missing_hint)
    try:
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_size:
                raise ConfigError(f"{what} {os.fspath(path)} is larger than {max_size} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_executable(path: StrPath, what: str, *, missing_hint: str | None = None) -> str:
    """A program BACON runs as root: checked like a trusted file, and executable. Returns its real path."""
    fd = open_checked(path, what, missing_hint=missing_hint)
    os.close(fd)
    if not os.access(path, os.X_OK):
        raise ConfigError(f"{what} {os.fspath(path)} is not executable", hint=f"chmod 0755 {os.fspath(path)}")
    return os.path.realpath(path)


def check_directory(path: StrPath, what: str) -> None:
    """A directory whose entries decide (the state directory): it and its path checked like a trusted
    file's. A missing one is fine (it is created on first write). Raises :class:`ConfigError`."""
    if not os.path.lexists(path):
        return
    resolve(path, what, directory=True)


def problem(path: StrPath, what: str, *, private: bool = False, executable: bool = False,
            symlink: bool = True) -> str | None:
    """The same verdict as :func:`read` / :func:`check_executable`, as text (``None``: trusted)."""
    try:
        if executable:
            check_executable(path, what)
        else:
            os.close(open_checked(path, what, private=private, symlink=symlink))
    except ConfigError as e:
        return e.message
    return None
