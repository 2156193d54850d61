"""A reader for the plain subset of TOML that BACON's configuration files are written in, or ``None``.

Written by hand although :mod:`tomllib` exists, for one reason: speed on the forwarding path. Importing
``tomllib`` (with ``re``, ``enum``, ``datetime`` and ``string``) costs about 5 ms, a third of the 15 ms a
forwarded ``nerdctl`` command may add (docs/design.md §6, the performance budget). This module imports nothing.

It is not a second TOML parser. :func:`loads` understands only what the shipped and generated
configurations use, line by line:

- blank lines and ``#`` comments;
- table headers ``[name]`` and ``[a.b]`` of bare keys, each table defined once;
- ``key = value`` with a bare key, where value is a basic string without escapes (``"…"``), a literal
  string (``'…'``), a decimal integer, ``true``/``false``, or a one-line array of those;

and returns ``None`` for anything else: any other construct, any doubt (a duplicate key, a redefined
table, a control character, a carriage return, a multi-line array…). The caller then asks :mod:`tomllib`,
which decides, errors included. So the result is always either ``None`` or exactly what
``tomllib.loads`` returns for the same text; ``tests/unit/test_simpletoml.py`` checks this against
``tomllib`` on generated documents, and ``tests/fuzz`` on arbitrary ones.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (import cost)
if TYPE_CHECKING:
    from typing import Any

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
# Control characters other than tab and newline (TOML forbids them in comments and strings, and a
# carriage return would need TOML's line-ending rules): their presence sends the text to tomllib.
_CONTROL = frozenset([*map(chr, range(0, 9)), *map(chr, range(11, 32)), "\x7f"])
_WS = " \t"
_MAX_INT_DIGITS = 18  # always within TOML's 64-bit integers


def _is_bare(key: str) -> bool:
    return bool(key) and _BARE.issuperset(key)


def _scalar(text: str, i: int) -> tuple[Any, int] | None:
    """The scalar value starting at ``text[i]`` and the index after it, or ``None``."""
    if i >= len(text):
        return None
    c = text[i]
    if c in "\"'":
        if text.startswith(c * 3, i):
            return None  # a multi-line string
        end = text.find(c, i + 1)
        if end < 0:
            return None
        value = text[i + 1:end]
        if c == '"' and "\\" in value:
            return None  # escapes: tomllib's business
        return value, end + 1
    end = i
    while end < len(text) and text[end] not in " \t#,]":
        end += 1
    word = text[i:end]
    if word == "true":
        return True, end
    if word == "false":
        return False, end
    digits = word[1:] if word.startswith("-") else word
    if (digits and len(digits) <= _MAX_INT_DIGITS and _DIGITS.issuperset(digits)
            and (digits == "0" or digits[0] != "0")):
        return int(word), end
    return None


def _value(text: str, i: int) -> tuple[Any, int] | None:
    if not text.startswith("[", i):
        return _scalar(text, i)
    items: list[Any] = []
    i += 1
    while True:
        while i < len(text) and text[i] in _WS:
            i += 1
        if text.startswith("]", i):
            return items, i + 1
        got = _scalar(text, i)
        if got is None:
            return None
        items.append(got[0])
        i = got[1]
        while i < len(text) and text[i] in _WS:
            i += 1
        if text.startswith(",", i):
            i += 1
        elif not text.startswith("]", i):
            return None


def _rest_is_comment(text: str, i: int) -> bool:
    rest = text[i:].lstrip(_WS)
    return not rest or rest.startswith("#")


def loads(text: str) -> dict[str, Any] | None:
    """``text`` as ``tomllib.loads`` would read it, or ``None`` when it is outside the subset."""
    if not _CONTROL.isdisjoint(text):
        return None
    root: dict[str, Any] = {}
    table = root
    headers: set[tuple[str, ...]] = set()
    for raw in text.split("\n"):
        line = raw.lstrip(_WS)
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            end = line.find("]")
            if line.startswith("[[") or end < 0 or not _rest_is_comment(line, end + 1):
                return None
            path = tuple(line[1:end].split("."))
            if not all(map(_is_bare, path)) or path in headers:
                return None
            headers.add(path)
            table = root
            for part in path:
                nxt = table.setdefault(part, {})
                if not isinstance(nxt, dict):
                    return None  # a key that already holds a value (or an array)
                table = nxt
            continue
        eq = line.find("=")
        if eq < 0:
            return None
        key = line[:eq].rstrip(_WS)
        if not _is_bare(key) or key in table:
            return None
        start = eq + 1
        while start < len(line) and line[start] in _WS:
            start += 1
        got = _value(line, start)
        if got is None or not _rest_is_comment(line, got[1]):
            return None
        table[key] = got[0]
    return root
