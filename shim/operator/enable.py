"""``bacon enable`` / ``bacon disable``: put the wrapper in front of the real nerdctl, and take it away.

``enable`` for a PATH location (default ``/usr/local/bin/nerdctl``):

1. **observe** (:func:`observe`) what is there: nothing, a regular file (sha256, mode, owner, times), a
   symlink (its text, what it resolves to), the wrapper already, or something else;
2. **plan** (:func:`plan_enable`, pure): the wrapper already there → nothing to do; a real nerdctl → it
   goes aside to the configured ``nerdctl =`` path (or, when the configuration names PATH itself, to
   ``LIBEXEC/nerdctl``, and the configuration is pointed there); nothing → the configured real nerdctl
   must already exist; anything else (a directory, a file that is not executable) → refused;
3. **record** what was there in ``<state_dir>/enabled/<id>.json`` (atomically) *before* touching anything;
4. **apply** so that the real nerdctl is never without a name: a hard link (across file systems, a copy
   with the same bytes, mode, owner and times, checked by sha256) is made at the aside path first, then
   PATH is replaced by a symlink to this package's ``nerdctl`` entry point in one ``os.replace``.

An interrupted enable leaves the real nerdctl at PATH (and maybe a second name for it aside); running
``enable`` again finishes it, ``disable`` undoes it. ``disable`` restores exactly what the record says
was there (same bytes, mode, owner, times; the same symlink text; or nothing), refuses when PATH is no
longer the wrapper (someone installed something else since) or when the real nerdctl aside has changed,
puts the configuration's ``nerdctl =`` back when enable changed it, and removes the directories enable
made for the aside path (``/usr/local/libexec/bacon``) when nothing else is in them.

Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shim.common import atomicfile, strictjson, trustedfile
from shim.common.errors import BaconError, ConfigError, UsageError

DEFAULT_TARGET = Path("/usr/local/bin/nerdctl")
DEFAULT_LIBEXEC = Path("/usr/local/libexec/bacon")
RECORD_DIR = "enabled"
MAX_RECORD = 1 << 20  # bytes of an enable record (JSON)
WRAPPER_MARKER = b"shim.wrapper.main"  # in the console script pip writes for our `nerdctl` entry point
HEAD = 4096

NOTHING, FILE, SYMLINK, WRAPPER, OTHER = "nothing", "file", "symlink", "wrapper", "other"


@dataclass(frozen=True)
class Found:
    """What is at a path, as far as enable and disable care."""

    path: str
    kind: str  # NOTHING, FILE, SYMLINK, WRAPPER, OTHER
    executable: bool = False
    sha256: str | None = None  # FILE: its bytes; SYMLINK: the bytes of what it resolves to
    mode: int | None = None  # permission bits (with set-id bits) of the file or of the symlink itself
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    mtime_ns: int | None = None
    link: str | None = None  # SYMLINK: the link text, as it was
    resolved: str | None = None  # SYMLINK: the final target
    note: str = ""  # OTHER: what it is

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Found:
        fields = Found.__dataclass_fields__
        if not isinstance(doc, Mapping) or not isinstance(doc.get("path"), str) or doc.get("kind") not in (
                NOTHING, FILE, SYMLINK, WRAPPER, OTHER):
            raise ValueError("not a description of a path")
        return Found(**{k: v for k, v in doc.items() if k in fields})

    def same_content(self, other: Found) -> bool:
        """Same bytes, mode and owner (what disable must give back)."""
        return (self.sha256, self.mode, self.uid, self.gid) == (other.sha256, other.mode, other.uid, other.gid)

    def describe(self) -> str:
        if self.kind == NOTHING:
            return "nothing"
        if self.kind == FILE:
            return f"a file (sha256 {(self.sha256 or '')[:16]}…, mode {self.mode or 0:o}, uid {self.uid})"
        if self.kind == SYMLINK:
            return f"a symlink to {self.link}"
        if self.kind == WRAPPER:
            return "the BACON wrapper"
        return self.note or "something else"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def is_wrapper(path: str | Path) -> bool:
    """True when ``path`` (after symlinks) is this package's ``nerdctl`` entry point (or a copy of one)."""
    try:
        real = os.path.realpath(path)
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return WRAPPER_MARKER in os.read(fd, HEAD)
    except OSError:
        return False
    finally:
        os.close(fd)


def entry_point() -> Path | None:
    """The ``nerdctl`` console script installed with this package (next to the interpreter), if any."""
    candidate = Path(sys.executable).parent / "nerdctl"
    return candidate if is_wrapper(candidate) else None


def observe(path: Path) -> Found:
    """What is at ``path`` now. Never follows a symlink for the description of the link itself."""
    p = str(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return Found(p, NOTHING)
    if is_wrapper(p):
        return Found(p, WRAPPER, executable=True)
    mode = stat.S_IMODE(st.st_mode)
    common: dict[str, Any] = {"mode": mode, "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(p)
        resolved = os.path.realpath(p)
        try:
            tst = os.stat(resolved)
        except OSError:
            return Found(p, SYMLINK, link=link, resolved=resolved, **common)
        regular = stat.S_ISREG(tst.st_mode)
        return Found(p, SYMLINK, link=link, resolved=resolved,
                     executable=regular and bool(tst.st_mode & 0o111) and os.access(resolved, os.X_OK),
                     sha256=sha256_file(resolved) if regular else None, size=tst.st_size, **common)
    if stat.S_ISREG(st.st_mode):
        return Found(p, FILE, executable=bool(mode & 0o111), sha256=sha256_file(p), size=st.st_size, **common)
    what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
    return Found(p, OTHER, note=what, **common)


# --- planning (pure) -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnablePlan:
    """What enable will do. ``action`` is ``already`` (nothing) or ``install``."""

    action: str
    target: Path
    found: Found
    real: Path  # the real nerdctl the configuration names afterwards
    wrapper: Path | None = None
    aside: Path | None = None  # where the real nerdctl gets a second name (None: it stays where it is)
    aside_found: Found | None = None
    aside_created: bool = False  # enable creates the aside path (disable removes it again)
    config_before: str | None = None  # the configuration's `nerdctl =` when enable changes it
    config_after: str | None = None
    notes: tuple[str, ...] = ()


def _same_real(found: Found, aside: Found) -> bool:
    """Does ``aside`` already give the real nerdctl in ``found`` a second name (an earlier, interrupted enable)?"""
    if found.kind == FILE:
        return aside.kind == FILE and found.same_content(aside)
    if found.kind == SYMLINK:
        return aside.kind == SYMLINK and aside.resolved == found.resolved
    return False


def plan_enable(found: Found, target: Path, configured: Path, libexec: Path, wrapper: Path | None,
                aside_found: Found | None) -> EnablePlan:
    """Decide what enable does. ``aside_found`` is :func:`observe` of the path the real nerdctl would go to
    (``configured``, or ``libexec/nerdctl`` when ``configured`` is ``target``). Raises :class:`ConfigError`."""
    if found.kind == WRAPPER:
        return EnablePlan("already", target, found, real=configured)
    if wrapper is None:
        raise ConfigError(f"cannot find this package's nerdctl entry point next to {sys.executable}",
                          hint="install BACON (the .deb, or `pip install .` into a root-owned virtualenv) and run "
                               "its own `bacon`")
    if found.kind == OTHER:
        raise ConfigError(f"{target} is {found.note}, not an executable: refusing to replace it",
                          hint="pass --path with the location of the nerdctl that operators run")
    if found.kind in (FILE, SYMLINK) and not found.executable:
        what = "a dangling symlink" if found.kind == SYMLINK and found.sha256 is None and not found.size else (
            "not executable")
        raise ConfigError(f"{target} is {what}, not a working nerdctl: refusing to replace it",
                          hint=f"install the real nerdctl at {target} (mode 0755) or point --path elsewhere")
    if found.kind == FILE and found.uid is not None and found.mode is not None:
        reason = trustedfile.unsafe_stat(os.stat_result((found.mode | stat.S_IFREG, 0, 0, 0, found.uid, 0, 0, 0, 0, 0)))
        if reason:
            raise ConfigError(f"{target} {reason}: moved aside as the real nerdctl, it would run as root for whoever "
                              "can change it; refusing", hint=f"check it is the real nerdctl, then chown root:root "
                              f"{target} && chmod 0755 {target}")
    config_names_target = os.path.normpath(configured) == os.path.normpath(target)
    if found.kind == NOTHING:
        if config_names_target:
            raise ConfigError(f"there is no nerdctl at {target}, and the configuration names {target} as the "
                              "real nerdctl", hint=f"install nerdctl at {target} first, then run `bacon enable`")
        if aside_found is None or aside_found.kind == NOTHING or not aside_found.executable:
            raise ConfigError(f"there is no nerdctl at {target}, and the configured real nerdctl {configured} is "
                              "missing or not executable",
                              hint=f"install nerdctl at {target} (enable moves it aside) or at {configured}")
        if aside_found.kind == WRAPPER:
            raise ConfigError(f"the configured real nerdctl {configured} is the BACON wrapper itself",
                              hint="set `nerdctl =` in the configuration to the real binary")
        return EnablePlan("install", target, found, real=configured, wrapper=wrapper,
                          notes=(f"nothing was at {target}; the real nerdctl stays at {configured}",))
    if (found.kind == SYMLINK and not config_names_target and aside_found is not None
            and aside_found.kind == FILE and found.resolved == os.path.realpath(configured)):
        return EnablePlan("install", target, found, real=configured, wrapper=wrapper,
                          notes=(f"{target} pointed at the configured real nerdctl {configured}, which stays there",))
    aside = libexec / "nerdctl" if config_names_target else configured
    if os.path.normpath(aside) == os.path.normpath(target):
        raise ConfigError(f"--libexec {libexec} would put the real nerdctl at {target} itself",
                          hint="choose another --libexec directory")
    if aside_found is not None and aside_found.kind == WRAPPER:
        raise ConfigError(f"the configured real nerdctl {aside} is the BACON wrapper itself",
                          hint="set `nerdctl =` in the configuration to the real binary's future place, "
                               f"e.g. {DEFAULT_LIBEXEC / 'nerdctl'}")
    created = aside_found is None or aside_found.kind == NOTHING
    if not created and aside_found is not None and not _same_real(found, aside_found):
        raise ConfigError(f"both {target} and {aside} hold something, and they differ ({target}: "
                          f"{found.describe()}; {aside}: {aside_found.describe()})",
                          hint=f"remove the one you do not want, or point `nerdctl =` in the configuration at "
                               f"{target} and use --libexec to choose where it goes")
    return EnablePlan("install", target, found, real=aside, wrapper=wrapper, aside=aside, aside_found=aside_found,
                      aside_created=created,
                      config_before=str(configured) if config_names_target else None,
                      config_after=str(aside) if config_names_target else None)


# --- records ---------------------------------------------------------------------------------------------

@dataclass
class Record:
    """What enable found at ``target`` and did; ``phase`` is ``enabling`` until the wrapper is in place."""

    target: str
    found: Found
    phase: str
    wrapper: str
    aside: str | None = None
    aside_created: bool = False
    config_path: str | None = None
    config_before: str | None = None
    config_after: str | None = None
    dirs_created: list[str] = field(default_factory=list)  # made for the aside path, deepest last
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["found"] = self.found.to_json()
        doc["version"] = 1
        return doc

    @staticmethod
    def from_json(doc: Any) -> Record:
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ValueError("unknown record format")
        fields = Record.__dataclass_fields__
        values = {k: v for k, v in doc.items() if k in fields}
        values["found"] = Found.from_json(doc.get("found", {}))
        if not isinstance(values.get("target"), str) or values.get("phase") not in ("enabling", "enabled"):
            raise ValueError("record lacks target or phase")
        return Record(**values)


def record_path(state_dir: Path, target: Path) -> Path:
    digest = hashlib.sha256(os.path.normpath(target).encode()).hexdigest()[:16]
    return state_dir / RECORD_DIR / f"{digest}.json"


def save_record(state_dir: Path, rec: Record) -> Path:
    path = record_path(state_dir, Path(rec.target))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomicfile.write(path, (json.dumps(rec.to_json(), indent=2) + "\n").encode(), mode=0o600)
    return path


R = TypeVar("R")


def read_record(path: Path, target: Path, parse: Callable[[Any], R]) -> R | None:
    """The enable record at ``path`` (for ``target``) as ``parse`` makes it from its JSON, or None when there is
    none. It is a trusted file (:mod:`shim.common.trustedfile`; no symlink). Raises :class:`ConfigError`."""
    if not os.path.lexists(path):
        return None
    hint = f"inspect and remove {path}, then restore {target} by hand"
    try:
        raw = trustedfile.read(path, "the enable record", max_size=MAX_RECORD, symlink=False)
    except ConfigError as e:
        raise ConfigError(e.message, hint=hint) from e
    try:
        return parse(strictjson.loads(raw, max_size=MAX_RECORD))
    except (ValueError, TypeError) as e:  # strictjson.Invalid is a ValueError
        raise ConfigError(f"the enable record {path} is unreadable: {e}", hint=hint) from e


def load_record(state_dir: Path, target: Path) -> Record | None:
    """The record for ``target``, or None. Raises :class:`ConfigError` when it is unsafe or unreadable."""
    path = record_path(state_dir, target)
    rec = read_record(path, target, Record.from_json)
    if rec is not None and os.path.normpath(rec.target) != os.path.normpath(target):
        raise ConfigError(f"the enable record {path} is for {rec.target}, not {target}")
    return rec


# --- the configuration's `nerdctl =` ------------------------------------------------------------------------

_NERDCTL_LINE = re.compile(r"""^(\s*nerdctl\s*=\s*)("(?:[^"\\]|\\.)*"|'[^']*')(.*)$""")
_TABLE = re.compile(r"^\s*\[")


def set_config_nerdctl(text: str, value: str) -> str:
    """The configuration text with its top-level ``nerdctl =`` set to ``value`` (other lines untouched).
    Raises :class:`ConfigError` when the result would not parse to the same configuration otherwise."""
    lines = text.splitlines(keepends=True)
    new_line = f"nerdctl = {json.dumps(value)}\n"
    done = False
    for i, line in enumerate(lines):
        if _TABLE.match(line):
            lines.insert(i, new_line)
            done = True
            break
        m = _NERDCTL_LINE.match(line.rstrip("\n"))
        if m:
            lines[i] = m.group(1) + json.dumps(value) + m.group(3) + ("\n" if line.endswith("\n") else "")
            done = True
            break
    if not done:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(new_line)
    out = "".join(lines)
    try:
        before, after = tomllib.loads(text), tomllib.loads(out)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cannot change `nerdctl =` in the configuration safely: {e}",
                          hint=f'set `nerdctl = "{value}"` by hand') from e
    before["nerdctl"] = value
    if before != after:
        raise ConfigError("cannot change `nerdctl =` in the configuration safely (it is not a plain top-level "
                          "line)", hint=f'set `nerdctl = "{value}"` by hand')
    return out


def rewrite_config_nerdctl(config_path: Path, value: str) -> None:
    """Set ``nerdctl =`` in the configuration file, atomically, keeping its mode and owner."""
    from shim.common.config import read_trusted_file

    text = read_trusted_file(config_path).decode("utf-8")
    st = os.stat(config_path)
    atomicfile.write(config_path, set_config_nerdctl(text, value).encode(), mode=stat.S_IMODE(st.st_mode),
                     owner=(st.st_uid, st.st_gid))


# --- applying ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _tmp_name(directory: Path, stem: str) -> Iterator[Path]:
    tmp = directory / f".{stem}.bacon-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _copy_file(src: Path, dst: Path, found: Found) -> None:
    """A second name for the file ``src`` at ``dst``: a hard link, or across file systems a copy with the same
    bytes, owner, mode and times. Atomic at ``dst``; checked against ``found``."""
    dst.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with _tmp_name(dst.parent, dst.name) as tmp:
        try:
            os.link(src, tmp)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            rfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    while chunk := os.read(rfd, 1 << 20):
                        os.write(wfd, chunk)
                    os.fchown(wfd, found.uid if found.uid is not None else 0, found.gid if found.gid is not None else 0)
                    os.fchmod(wfd, found.mode if found.mode is not None else 0o755)
                    os.fsync(wfd)
                finally:
                    os.close(wfd)
            finally:
                os.close(rfd)
            if found.mtime_ns is not None:
                os.utime(tmp, ns=(found.mtime_ns, found.mtime_ns))
        copy = observe(tmp)
        if not found.same_content(copy):
            raise BaconError(f"the copy of {src} at {tmp} does not match it (sha256/mode/owner); nothing changed")
        os.replace(tmp, dst)
    atomicfile.fsync_directory(dst.parent)


def _symlink(link: str, dst: Path, uid: int | None = None, gid: int | None = None) -> None:
    dst.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with _tmp_name(dst.parent, dst.name) as tmp:
        os.symlink(link, tmp)
        if uid is not None and gid is not None:
            os.lchown(tmp, uid, gid)
        os.replace(tmp, dst)
    atomicfile.fsync_directory(dst.parent)


def missing_dirs(directory: Path) -> list[str]:
    """The directories that do not exist yet from the top down to ``directory`` (what creating it makes)."""
    out: list[str] = []
    d = directory
    while not os.path.lexists(d) and d != d.parent:
        out.insert(0, str(d))
        d = d.parent
    return out


def remove_dirs_created(rec: Record) -> list[str]:
    """Remove the directories enable made for the aside path (``/usr/local/libexec/bacon``), deepest first,
    each only when empty: whatever someone else put there stays, and so does its directory."""
    removed = []
    for d in reversed(rec.dirs_created):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                break
            raise
        removed.append(d)
    return removed


def apply_enable(plan: EnablePlan, state_dir: Path, config_path: Path) -> Path:
    """Carry out an ``install`` plan. Returns the record's path. Raises :class:`BaconError` (with the real
    nerdctl still reachable at the target or aside, and the record saying which)."""
    assert plan.action == "install"
    assert plan.wrapper is not None
    rec = Record(target=str(plan.target), found=plan.found, phase="enabling", wrapper=str(plan.wrapper),
                 aside=str(plan.aside) if plan.aside else None, aside_created=plan.aside_created,
                 config_path=str(config_path) if plan.config_after else None,
                 config_before=plan.config_before, config_after=plan.config_after)
    if plan.aside is not None:
        rec.dirs_created = missing_dirs(plan.aside.parent)
    previous = load_record(state_dir, plan.target)
    if previous is not None and previous.phase == "enabling" and previous.found == plan.found:
        rec.aside_created = previous.aside_created  # finishing an interrupted enable: keep what it knew
        rec.dirs_created = previous.dirs_created or rec.dirs_created
    try:
        path = save_record(state_dir, rec)
    except OSError as e:
        raise BaconError(f"cannot record what is at {plan.target} in {state_dir}: {e.strerror or e}; nothing changed",
                         hint="run as root; the state directory must be writable by root") from e
    try:
        if plan.aside is not None and not (plan.aside_found and _same_real(plan.found, plan.aside_found)):
            if plan.found.kind == FILE:
                _copy_file(plan.target, plan.aside, plan.found)
            else:
                assert plan.found.resolved is not None
                _symlink(plan.found.resolved, plan.aside)
        if plan.config_after is not None:
            rewrite_config_nerdctl(config_path, plan.config_after)
        _symlink(str(plan.wrapper), plan.target)
    except OSError as e:
        raise BaconError(f"enable failed: {e}; {plan.target} still holds {plan.found.describe()}",
                         hint=f"fix the cause and run `bacon enable` again, or `bacon disable` (record {path})") from e
    rec.phase = "enabled"
    save_record(state_dir, rec)
    return path


@dataclass(frozen=True)
class DisablePlan:
    """What disable will do: ``nothing`` (no record, no wrapper), ``restore`` or ``cleanup`` (an enable
    that never replaced the target: only the aside name and the configuration are undone)."""

    action: str
    target: Path
    record: Record | None
    current: Found
    aside_current: Found | None = None


def plan_disable(target: Path, rec: Record | None, current: Found, aside_current: Found | None,
                 record_file: Path | None = None) -> DisablePlan:
    """Decide what disable does (pure). Raises :class:`ConfigError` when it cannot restore safely."""
    if rec is None:
        if current.kind == WRAPPER:
            raise ConfigError(f"{target} is the BACON wrapper, but nothing records what it replaced",
                              hint=f"put the real nerdctl back by hand (e.g. `mv <real nerdctl> {target}`)")
        return DisablePlan("nothing", target, None, current)
    original = rec.found
    untouched = (current.kind == original.kind == NOTHING
                 or (current.kind == FILE == original.kind and current.same_content(original))
                 or (current.kind == SYMLINK == original.kind and current.link == original.link))
    if rec.phase == "enabling" and untouched:
        return DisablePlan("cleanup", target, rec, current, aside_current)
    if current.kind != WRAPPER:
        raise ConfigError(f"{target} is no longer the BACON wrapper ({current.describe()}); leaving it as it is",
                          hint=f"if that is intended, remove the record {record_file or 'in <state_dir>/enabled/'}")
    if original.kind == FILE and (rec.aside is None or aside_current is None or aside_current.kind != FILE
                                  or not original.same_content(aside_current)):
            raise ConfigError(f"the real nerdctl that was at {target} is not at {rec.aside} as recorded "
                              f"(found {aside_current.describe() if aside_current else 'nothing'}); the wrapper "
                              "stays", hint=f"put a nerdctl at {target} by hand")
    return DisablePlan("restore", target, rec, current, aside_current)


def apply_disable(plan: DisablePlan, state_dir: Path) -> None:
    """Carry out a ``restore`` or ``cleanup`` plan, then drop the record. Raises :class:`BaconError`."""
    rec = plan.record
    assert rec is not None
    assert plan.action in ("restore", "cleanup")
    target = plan.target
    original = rec.found
    try:
        if plan.action == "restore":
            if original.kind == FILE:
                assert rec.aside is not None
                _copy_file(Path(rec.aside), target, original)
            elif original.kind == SYMLINK:
                assert original.link is not None
                _symlink(original.link, target, original.uid, original.gid)
            elif original.kind == NOTHING and is_wrapper(target):
                os.unlink(target)
                atomicfile.fsync_directory(target.parent)
            restored = observe(target)
            ok = (restored.kind == original.kind
                  and (original.kind != FILE or original.same_content(restored))
                  and (original.kind != SYMLINK or restored.link == original.link))
            if not ok:
                raise BaconError(f"{target} does not match the record after restoring it ({restored.describe()})")
        if rec.aside_created and rec.aside is not None and plan.aside_current is not None:
            aside = Path(rec.aside)
            same_file = (original.kind == FILE and plan.aside_current.kind == FILE
                         and original.same_content(plan.aside_current))
            if same_file or (original.kind == SYMLINK and os.path.islink(aside)):
                os.unlink(aside)
                remove_dirs_created(rec)
        if rec.config_path and rec.config_before is not None and rec.config_after is not None:
            from shim.common import config as bconfig

            with contextlib.suppress(ConfigError):
                if str(bconfig.load(Path(rec.config_path)).nerdctl) == rec.config_after:
                    rewrite_config_nerdctl(Path(rec.config_path), rec.config_before)
    except OSError as e:
        raise BaconError(f"disable failed: {e}", hint=f"the record {record_path(state_dir, target)} is kept; fix the "
                                                      "cause and run `bacon disable` again") from e
    record_path(state_dir, target).unlink()
    atomicfile.fsync_directory(record_path(state_dir, target).parent)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"{what} needs root", hint=f"sudo bacon {what}")
