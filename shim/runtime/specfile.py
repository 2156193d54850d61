"""Reading the JSON files runc reads (a bundle's ``config.json``, ``exec``'s process file) as runc reads them:
bounded, without following a symbolic link, and strict about the keys the gate judges. Standard library only.

runc decodes them with Go's ``encoding/json``, which matches an object's key to a struct field
case-insensitively, folding the Kelvin sign to ``k`` and the long s to ``s`` as well: runc reads
``{"Process": …}`` or ``{"capabilitieſ": …}`` as ``process``/``capabilities``, and when two keys match one
field the last wins. Python's ``json`` reads keys exactly, so a key spelled so would reach runc unseen by the
gate. :mod:`shim.common.strictjson` parses (bounded, UTF-8, no duplicate key, no ``NaN``/``Infinity``, which Go
refuses, bounded depth); this module adds the one thing no JSON library offers, Go's key folding: it refuses
any key that runc would read as one of the fields the gate judges (:data:`FIELDS`) but is not spelled as that
field, and any object with two keys runc could read as one. docs/runtime.md.
"""

from __future__ import annotations

import os

from shim.common import strictjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The OCI runtime spec's field names the gate reads (shim.runtime.spec, shim.runtime.gate.check_spec).
FIELDS = frozenset({
    "root", "path", "process", "user", "uid", "gid", "capabilities", "bounding", "effective", "inheritable",
    "permitted", "ambient", "apparmorProfile", "selinuxLabel", "noNewPrivileges", "linux", "namespaces", "type",
    "maskedPaths", "mounts", "source", "destination", "options", "devices", "resources", "allow", "major", "minor",
    "hooks", "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", "seccomp",
    "defaultAction", "sysctl", "readonlyPaths", "access", "cgroupsPath", "unified", "intelRdt", "annotations",
    "rootfsPropagation",
})


MAX_FILE = 16 << 20  # bytes: runc's largest such file is its state.json


class SpecFileError(ValueError):
    """A file the gate cannot read as runc would."""


def fold(key: str) -> str:
    """``key`` as Go's ``encoding/json`` compares it to a field name: ASCII case folded, the Kelvin sign
    (U+212A) as ``k``, the long s (U+017F) as ``s``."""
    if key.isascii():
        return key.lower()
    return "".join("k" if c == "\u212a" else "s" if c == "\u017f" else c.lower() if c.isascii() else c for c in key)


_CANONICAL = {fold(name): name for name in FIELDS}


def _object(pairs: list[tuple[str, Any]]) -> None:
    # the common case, quickly: every key a field as spelled, or lower case and no field's variant (two keys
    # spelled alike are strictjson's to refuse)
    if all(k in FIELDS or (k.islower() and k.isascii() and k not in _CANONICAL) for k, _ in pairs):
        return
    seen: dict[str, str] = {}
    for key, _ in pairs:
        folded = fold(key)
        if folded in seen:
            raise strictjson.Invalid(f"the keys {seen[folded]!r} and {key!r} are one field to runc (the last would "
                                     "win)")
        seen[folded] = key
        canonical = _CANONICAL.get(folded)
        if canonical is not None and canonical != key:
            raise strictjson.Invalid(f"the key {key!r} is runc's {canonical!r}: spell it {canonical!r}")


def loads(raw: bytes, limit: int = MAX_FILE) -> dict[str, Any]:
    """Parse ``raw`` (one JSON object, at most ``limit`` bytes) strictly (:mod:`shim.common.strictjson`, and
    Go's key folding). Raises :class:`SpecFileError`."""
    try:
        return strictjson.load_object(raw, max_size=limit, check_object=_object)
    except strictjson.Invalid as e:
        raise SpecFileError(str(e)) from None


def read(path: str, limit: int) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (at most ``limit`` bytes; a symbolic link is not followed).
    Raises :class:`SpecFileError` (``OSError``'s reason included)."""
    return loads(read_bytes(path, limit), limit)


def read_bytes(path: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` (a symbolic link is not followed; a FIFO
    or device is not waited on). Raises :class:`SpecFileError`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if (st.st_mode & 0o170000) != 0o100000:  # S_ISREG, without importing stat
                raise SpecFileError("not a regular file")
            if st.st_size > limit:
                raise SpecFileError(f"larger than {limit} bytes")
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, min(limit + 1 - size, max(st.st_size + 1 - size, 1 << 16)))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as e:
        raise SpecFileError(e.strerror or str(e)) from None
    if size > limit:
        raise SpecFileError(f"larger than {limit} bytes")
    return b"".join(chunks)
