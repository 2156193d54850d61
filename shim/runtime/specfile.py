"""Reading the JSON files runc reads (a bundle's ``config.json``, ``exec``'s process file) as runc reads them:
bounded, without following a symbolic link, and strict about the keys the gate judges. Standard library only.

runc decodes them with Go's ``encoding/json``, which matches an object's key to a struct field
case-insensitively, folding the Kelvin sign to ``k`` and the long s to ``s`` as well: runc reads
``{"Process": …}`` or ``{"capabilitieſ": …}`` as ``process``/``capabilities``, and when two keys match one
field the last wins. Python's ``json`` reads keys exactly, so a key spelled so would reach runc unseen by the
gate. The standard library's ``json`` parses; this module adds the one thing no JSON library offers, Go's key
folding: it refuses any key that runc would read as one of the fields the gate judges (:data:`FIELDS`) but is
not spelled as that field, and any object with two keys runc could read as one. ``NaN`` and ``Infinity``
(which Go refuses) are refused too. docs/runtime.md.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The OCI runtime spec's field names the gate reads (shim.runtime.spec, shim.runtime.gate.check_spec).
FIELDS = frozenset({
    "root", "path", "process", "user", "uid", "gid", "capabilities", "bounding", "effective", "inheritable",
    "permitted", "ambient", "apparmorProfile", "selinuxLabel", "noNewPrivileges", "linux", "namespaces", "type",
    "maskedPaths", "mounts", "source", "destination", "options", "devices", "resources", "allow", "major", "minor",
    "hooks", "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", "seccomp",
    "defaultAction", "sysctl",
})


class SpecFileError(ValueError):
    """A file the gate cannot read as runc would."""


def fold(key: str) -> str:
    """``key`` as Go's ``encoding/json`` compares it to a field name: ASCII case folded, the Kelvin sign
    (U+212A) as ``k``, the long s (U+017F) as ``s``."""
    if key.isascii():
        return key.lower()
    return "".join("k" if c == "\u212a" else "s" if c == "\u017f" else c.lower() if c.isascii() else c for c in key)


_CANONICAL = {fold(name): name for name in FIELDS}


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    # the common case, quickly: every key a field as spelled, or lower case and no field's variant
    if len(obj) == len(pairs) and all(k in FIELDS or (k.islower() and k.isascii() and k not in _CANONICAL)
                                      for k in obj):
        return obj
    seen: dict[str, str] = {}
    for key, _ in pairs:
        folded = fold(key)
        if folded in seen:
            raise SpecFileError(f"the keys {seen[folded]!r} and {key!r} are one field to runc (the last would win)")
        seen[folded] = key
        canonical = _CANONICAL.get(folded)
        if canonical is not None and canonical != key:
            raise SpecFileError(f"the key {key!r} is runc's {canonical!r}: spell it {canonical!r}")
    return obj


def _constant(name: str) -> Any:
    raise SpecFileError(f"{name} is not JSON")


def loads(raw: bytes) -> dict[str, Any]:
    """Parse ``raw`` (one JSON object) strictly. Raises :class:`SpecFileError`."""
    try:
        value = json.loads(raw, object_pairs_hook=_object, parse_constant=_constant)
    except ValueError as e:  # SpecFileError is a ValueError; json's own errors and bad UTF-8 are too
        raise SpecFileError(str(e)) from None
    if not isinstance(value, dict):
        raise SpecFileError("not a JSON object")
    return value


def read(path: str, limit: int) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (at most ``limit`` bytes; a symbolic link is not followed).
    Raises :class:`SpecFileError` (``OSError``'s reason included)."""
    return loads(read_bytes(path, limit))


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
