"""Who the caller is: the process credentials a decision is taken for, whether the caller's environment
may be trusted (``under_sudo``), and whose identity opens files on the caller's behalf (``identity``).

Normally the credentials are this process's own. A ``bacon serve`` worker decides for another process:
it :func:`adopt`\\ s the caller's credentials (checked against ``SO_PEERCRED`` and ``/proc``, see
:mod:`shim.service.server`) before anything else, so every question below gets the same answer in the worker as
in the wrapper's own process. A worker serves one request and exits: adopting is for the rest of it.

Standard library only (``os``, and ``pwd`` when an identity is looked up): this is on the forwarding path.
"""

from __future__ import annotations

import os

from shim.common.errors import Denied

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Mapping

# Variables set by the launchers that run a command as root for another user. sudo sets SUDO_*; doas sets
# DOAS_USER; pkexec sets PKEXEC_UID. Any of them means: the environment is the caller's, not root's.
SUDO_VARIABLES = ("SUDO_UID", "SUDO_USER", "SUDO_COMMAND", "SUDO_GID", "DOAS_USER", "PKEXEC_UID")


class Credentials:
    """Real and effective uid and gid, and the supplementary groups, of the process decided for."""

    __slots__ = ("egid", "euid", "groups", "rgid", "ruid")

    def __init__(self, ruid: int, euid: int, rgid: int, egid: int, groups: tuple[int, ...]) -> None:
        self.ruid, self.euid, self.rgid, self.egid, self.groups = ruid, euid, rgid, egid, groups

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and other.fields() == self.fields()

    def __hash__(self) -> int:
        return hash(self.fields())

    def __repr__(self) -> str:
        return "Credentials(ruid={}, euid={}, rgid={}, egid={}, groups={})".format(*self.fields())

    def fields(self) -> tuple[int, int, int, int, tuple[int, ...]]:
        return self.ruid, self.euid, self.rgid, self.egid, self.groups


class Identity:
    """Whose permissions a file is opened with: a uid, a primary gid and supplementary groups."""

    __slots__ = ("gid", "groups", "uid")

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        self.uid, self.gid, self.groups = uid, gid, groups

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and (other.uid, other.gid, other.groups) == (self.uid, self.gid, self.groups)

    def __hash__(self) -> int:
        return hash((self.uid, self.gid, self.groups))

    def __repr__(self) -> str:
        return f"Identity(uid={self.uid}, gid={self.gid}, groups={self.groups})"


_adopted: Credentials | None = None


def own() -> Credentials:
    """This process's credentials."""
    return Credentials(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), tuple(os.getgroups()))


def adopt(creds: Credentials) -> None:
    """Decide, from now on in this process, for a caller with ``creds`` (a service worker, once)."""
    global _adopted
    _adopted = creds


def credentials() -> Credentials:
    """The credentials decided for: the adopted caller's, or this process's own."""
    return _adopted if _adopted is not None else own()


def under_sudo(environ: Mapping[str, str] | None = None) -> bool:
    """True when the caller's environment must not be trusted: sudo, doas, pkexec, or a set-uid/set-gid
    start (real and effective ids differ)."""
    env = os.environ if environ is None else environ
    c = credentials()
    if c.ruid != c.euid or c.rgid != c.egid:
        return True
    return any(k in env for k in SUDO_VARIABLES)


def _named(uid: int, gid: int | None) -> Identity:
    import pwd

    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return Identity(uid, uid if gid is None else gid, ())  # no entry: no supplementary groups to add
    primary = pw.pw_gid if gid is None else gid
    return Identity(uid, primary, tuple(os.getgrouplist(pw.pw_name, primary)))


def _number(env: Mapping[str, str], key: str) -> int:
    text = env[key]
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise Denied(f"{key}={text[:20]!r} is not a user or group id: cannot tell whose files to read",
                     check="caller", hint="run the command through sudo itself")
    return int(text)


def identity(environ: Mapping[str, str] | None = None) -> Identity | None:
    """Whose permissions files read or written on the caller's behalf get; ``None``: this process's own
    (it is not root, or root is the caller). Under a set-uid start the real ids; under sudo ``SUDO_UID``
    and ``SUDO_GID`` (sudo sets both; the groups are that user's); under doas ``DOAS_USER``; under pkexec
    ``PKEXEC_UID``.

    Raises:
        Denied: a launcher's variable names no valid user (fail closed rather than read as root).
    """
    env = os.environ if environ is None else environ
    c = credentials()
    if c.euid != 0:
        return None  # the effective user opens nothing the caller could not (they are the caller, or less)
    if c.ruid != c.euid or c.rgid != c.egid:
        return Identity(c.ruid, c.rgid, c.groups)
    if "SUDO_UID" in env or "SUDO_GID" in env:
        if "SUDO_UID" not in env or "SUDO_GID" not in env:
            raise Denied("only one of SUDO_UID and SUDO_GID is set: cannot tell whose files to read",
                         check="caller", hint="run the command through sudo itself")
        return _named(_number(env, "SUDO_UID"), _number(env, "SUDO_GID"))
    if "PKEXEC_UID" in env:
        return _named(_number(env, "PKEXEC_UID"), None)
    if "DOAS_USER" in env:
        import pwd

        try:
            pw = pwd.getpwnam(env["DOAS_USER"])
        except KeyError:
            raise Denied(f"DOAS_USER={env['DOAS_USER'][:40]!r} is no user: cannot tell whose files to read",
                         check="caller", hint="run the command through doas itself") from None
        return _named(pw.pw_uid, pw.pw_gid)
    if "SUDO_USER" in env or "SUDO_COMMAND" in env:
        raise Denied("SUDO_USER or SUDO_COMMAND is set without SUDO_UID and SUDO_GID: cannot tell whose files "
                     "to read", check="caller", hint="run the command through sudo itself")
    return None
