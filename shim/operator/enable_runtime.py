"""``bacon enable --runtime`` / ``disable --runtime``: BACON's runtime gate as ``runc`` ahead of the real one.

containerd's runc shim runs the first ``runc`` on containerd's ``PATH``; under Debian's unit (no ``PATH``
set: systemd's default) ``/usr/local/sbin`` comes before ``/usr/sbin``, where Debian's runc is
(docs/runtime.md). ``enable --runtime``:

1. finds the real runc: the configuration's ``[runtime] runc`` when it names one, else the first ``runc``
   on systemd's default ``PATH`` after the launcher's own directory;
2. refuses when something other than BACON's launcher is at the launcher's path (it would be the runc
   containerd runs today: move it, or choose another path);
3. records what it will change (nothing at the path, the configuration's exact bytes) in
   ``<state_dir>/enabled/runtime-<id>.json`` before changing anything;
4. writes ``[runtime] runc = "<real runc>"`` into the configuration (when it does not say so already),
   then the launcher (``shim.runtime.argv.launcher``, mode 0755), each atomically.

``disable --runtime`` puts back exactly what was there: no file at the path (and no directory enable
made), the configuration's bytes, mode and owner as they were. It refuses when the launcher or the
configuration changed since (someone else's change is not undone blindly). New containers meet the gate
at once; running containers' later verbs go through the launcher to the real runc.

Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import stat
import sys
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shim.common import atomicfile
from shim.common.errors import BaconError, ConfigError
from shim.operator import enable as en
from shim.runtime import argv as runtime_argv

DEFAULT_TARGET = Path("/usr/local/sbin/runc")
# systemd's default PATH for services (Debian's containerd.service sets none)
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAUNCHER_MARKER = "BACON's runtime gate"


@dataclass
class RuntimeRecord:
    target: str
    real_runc: str
    gate: str
    launcher_sha256: str
    config_path: str
    config_before: str  # base64 of the configuration's bytes before enable
    config_after_sha256: str
    config_mode: int
    config_uid: int
    config_gid: int
    created_dirs: list[str] = field(default_factory=list)
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(doc: Any) -> RuntimeRecord:
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ValueError("unknown record format")
        return RuntimeRecord(**{k: v for k, v in doc.items() if k in RuntimeRecord.__dataclass_fields__})


def record_path(state_dir: Path, target: Path) -> Path:
    digest = hashlib.sha256(os.path.normpath(target).encode()).hexdigest()[:16]
    return state_dir / en.RECORD_DIR / f"runtime-{digest}.json"


def gate_program() -> Path:
    """The ``bacon-runtime`` installed with this package, next to the interpreter."""
    return Path(sys.executable).parent / "bacon-runtime"


def is_launcher(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and LAUNCHER_MARKER.encode() in os.read(fd, 512)
    finally:
        os.close(fd)


def find_real_runc(target: Path, configured: str | None) -> str:
    """The real runc: configured, else the first ``runc`` after ``target``'s directory on systemd's PATH."""
    if configured:
        candidate = configured
    else:
        dirs = SYSTEMD_PATH.split(":")
        here = os.path.normpath(target.parent)
        after = dirs[dirs.index(here) + 1:] if here in dirs else dirs
        found = shutil.which("runc", path=":".join(d for d in after if os.path.normpath(d) != here))
        if found is None:
            raise ConfigError("no runc found on systemd's default PATH after " + here,
                              hint='install runc (apt-get install runc), or set [runtime] runc = "/path/to/runc"')
        candidate = found
    if os.path.normpath(candidate) == os.path.normpath(target) or is_launcher(Path(candidate)):
        raise ConfigError(f"the real runc {candidate} is the gate's own launcher path",
                          hint="set [runtime] runc to the real runc binary")
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise ConfigError(f"the real runc {candidate} is not an executable file",
                          hint='install runc, or set [runtime] runc = "/path/to/runc"')
    return candidate


def config_with_runtime(text: str, real_runc: str) -> str:
    """The configuration with ``[runtime] runc`` naming ``real_runc`` (a table appended at the end; the
    rest untouched). Checked by parsing both: nothing else may change."""
    before = tomllib.loads(text)
    runtime = before.get("runtime")
    if isinstance(runtime, dict) and runtime.get("runc") == real_runc:
        return text
    if runtime is not None:
        raise ConfigError("the configuration has a [runtime] table that does not name the real runc",
                          hint=f'set runc = "{real_runc}" in its [runtime] table, then run enable again')
    out = text + ("" if not text or text.endswith("\n") else "\n")
    out += f"\n# Written by `bacon enable --runtime` (`bacon disable --runtime` removes it)\n[runtime]\n" \
           f"runc = {json.dumps(real_runc)}\n"
    after = tomllib.loads(out)
    if after.pop("runtime", None) != {"runc": real_runc} or after != before:
        raise ConfigError("cannot add [runtime] to the configuration safely",
                          hint=f'add [runtime] runc = "{real_runc}" by hand')
    return out


@dataclass(frozen=True)
class Enabled:
    action: str  # "installed" | "already"
    target: Path
    real_runc: str
    record: Path | None


def enable(target: Path, config_path: Path, state_dir: Path, gate: Path | None = None,
           before_change: Callable[[str], None] | None = None) -> Enabled:
    """Install the launcher at ``target``; ``before_change(real_runc)`` is called (to audit) just before the
    first change."""
    from shim.common.config import read_trusted_file

    gate = gate or gate_program()
    if not (gate.is_file() and os.access(gate, os.X_OK)):
        raise ConfigError(f"the runtime gate {gate} is missing", hint="reinstall BACON (it installs bacon-runtime)")
    raw = read_trusted_file(config_path)
    text = raw.decode("utf-8")
    table = tomllib.loads(text)
    section = table.get("runtime")
    configured = section.get("runc") if isinstance(section, dict) else None
    real = find_real_runc(target, configured if isinstance(configured, str) else None)
    launcher = runtime_argv.launcher(real, str(gate)).encode()
    rec_path = record_path(state_dir, target)
    found = en.observe(target)
    if is_launcher(target):
        if rec_path.exists() and en.sha256_file(target) == hashlib.sha256(launcher).hexdigest():
            return Enabled("already", target, real, rec_path)
        raise ConfigError(f"{target} is a BACON runtime launcher this host has no matching record of",
                          hint=f"remove {target} by hand, then run `bacon enable --runtime` again")
    if found.kind != en.NOTHING:
        raise ConfigError(f"{target} is already there ({found.describe()}): it would be the runc containerd "
                          "runs now", hint="move it (and name it in [runtime] runc), or pass another --path")
    new_text = config_with_runtime(text, real)
    st = os.stat(config_path)
    created = [str(p) for p in reversed(target.parents) if not p.exists()]
    rec = RuntimeRecord(target=str(target), real_runc=real, gate=str(gate),
                        launcher_sha256=hashlib.sha256(launcher).hexdigest(), config_path=str(config_path),
                        config_before=base64.b64encode(raw).decode(),
                        config_after_sha256=hashlib.sha256(new_text.encode()).hexdigest(),
                        config_mode=stat.S_IMODE(st.st_mode), config_uid=st.st_uid, config_gid=st.st_gid,
                        created_dirs=created)
    if before_change is not None:
        before_change(real)
    rec_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomicfile.write(rec_path, (json.dumps(rec.to_json(), indent=2) + "\n").encode(), mode=0o600)
    if new_text != text:
        atomicfile.write(config_path, new_text.encode(), mode=rec.config_mode, owner=(st.st_uid, st.st_gid))
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    atomicfile.write(target, launcher, mode=0o755, owner=(0, 0))
    return Enabled("installed", target, real, rec_path)


def load_record(state_dir: Path, target: Path) -> RuntimeRecord | None:
    return en.read_record(record_path(state_dir, target), target, RuntimeRecord.from_json)


def disable(target: Path, state_dir: Path) -> RuntimeRecord | None:
    """Undo :func:`enable` for ``target``; ``None`` when there is nothing recorded."""
    rec = load_record(state_dir, target)
    if rec is None:
        return None
    config_path = Path(rec.config_path)
    present = target.exists() or target.is_symlink()
    if present and (not is_launcher(target) or en.sha256_file(target) != rec.launcher_sha256):
        raise BaconError(f"{target} is no longer the launcher `bacon enable --runtime` installed; not removing it",
                             hint=f"inspect {target}; remove it by hand if it is to go, then "
                                  f"{record_path(state_dir, target)}")
    before = base64.b64decode(rec.config_before)
    current = en.sha256_file(config_path)
    if current not in (rec.config_after_sha256, hashlib.sha256(before).hexdigest()):
        raise BaconError(f"the configuration {config_path} changed since `bacon enable --runtime`; not "
                         "putting back the old one over it",
                         hint="remove its [runtime] table by hand, then remove " + str(record_path(state_dir, target)))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    atomicfile.write(config_path, before, mode=rec.config_mode, owner=(rec.config_uid, rec.config_gid))
    for d in reversed(rec.created_dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)  # only when empty
    os.unlink(record_path(state_dir, target))
    return rec
