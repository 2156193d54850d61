"""A reader for the plain subset of TOML that BACON's configuration files are written in, or ``None``.

Written by hand although :mod:`tomllib` exists, for one reason: speed on the forwarding path. Importing
``tomllib`` (with ``re``, ``enum``, ``datetime`` and ``string``) costs about 5 ms, a third of the 15 ms a
forwarded ``nerdctl`` command may add (docs/design.md §6, the performance budget). This module imports nothing.

It is not a second TOML parser. :func:`loads` understands only what the shipped and generated
configurations use, line by line:

- blank lines and ``#`` comments;
- table headers ``[name]`` and ``[a.b]`` of bare keys, each table defined once;
- ``key = value`` with a bare key, where value is a basic string without escapes (``"…"``), a literal
  string (``'…'``), a decimal integer, ``true``/``false``, an array of those and of inline tables (over
  several lines, with comments and a trailing comma, as TOML allows), or an inline table;
- inline tables ``{ key = value, … }`` on one line, of bare keys whose values are scalars or arrays of
  scalars (the scoped ``[trust] keys`` and ``identities`` entries, docs/scopes.md);

and returns ``None`` for anything else: any other construct, any doubt (a duplicate key, a redefined
table, a control character, a carriage return, a nested inline table…). The caller then asks :mod:`tomllib`,
which decides, errors included. So the result is always either ``None`` or exactly what
``tomllib.loads`` returns for the same text; ``tests/unit/common/test_simpletoml.py`` checks this against
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


def _skip(text: str, i: int, newlines: bool) -> int:
    """The index after blanks from ``i``; inside an array (``newlines``) also after newlines and comments."""
    n = len(text)
    while i < n:
        c = text[i]
        if c in _WS or (newlines and c == "\n"):
            i += 1
        elif newlines and c == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
        else:
            break
    return i


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
        if "\n" in value or (c == '"' and "\\" in value):
            return None  # an unterminated line, or escapes: tomllib's business
        return value, end + 1
    end = i
    while end < len(text) and text[end] not in " \t#,]}\n":
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


def _array(text: str, i: int, tables: bool) -> tuple[Any, int] | None:
    """The array at ``text[i] == "["``: scalars and (``tables``) inline tables, over lines if need be."""
    items: list[Any] = []
    i += 1
    while True:
        i = _skip(text, i, True)
        if text.startswith("]", i):
            return items, i + 1
        got = _inline(text, i) if tables and text.startswith("{", i) else _scalar(text, i)
        if got is None:
            return None
        items.append(got[0])
        i = _skip(text, got[1], True)
        if text.startswith(",", i):
            i += 1
        elif not text.startswith("]", i):
            return None


def _inline(text: str, i: int) -> tuple[Any, int] | None:
    """The inline table at ``text[i] == "{"``: one line, bare keys, scalar or array-of-scalar values."""
    table: dict[str, Any] = {}
    i = _skip(text, i + 1, False)
    if text.startswith("}", i):
        return table, i + 1
    while True:
        j = i
        while j < len(text) and text[j] in _BARE:
            j += 1
        key = text[i:j]
        i = _skip(text, j, False)
        if not key or key in table or not text.startswith("=", i):
            return None  # no key, a duplicate, a dotted or quoted key
        i = _skip(text, i + 1, False)
        got = _array(text, i, False) if text.startswith("[", i) else _scalar(text, i)
        if got is None:
            return None
        table[key] = got[0]
        i = _skip(text, got[1], False)
        if text.startswith("}", i):
            return table, i + 1
        if not text.startswith(",", i):
            return None
        i = _skip(text, i + 1, False)


def _value(text: str, i: int) -> tuple[Any, int] | None:
    if text.startswith("[", i):
        return _array(text, i, True)
    if text.startswith("{", i):
        return _inline(text, i)
    return _scalar(text, i)


def _rest_is_comment(text: str, i: int, end: int) -> bool:
    rest = text[i:end].lstrip(_WS)
    return not rest or rest.startswith("#")


def loads(text: str) -> dict[str, Any] | None:
    """``text`` as ``tomllib.loads`` would read it, or ``None`` when it is outside the subset."""
    if not _CONTROL.isdisjoint(text):
        return None
    root: dict[str, Any] = {}
    table = root
    headers: set[tuple[str, ...]] = set()
    pos, n = 0, len(text)
    while pos < n:
        nl = text.find("\n", pos)
        eol = n if nl < 0 else nl
        p = _skip(text, pos, False)
        if p >= eol or text[p] == "#":
            pos = eol + 1
            continue
        if text[p] == "[":
            end = text.find("]", p, eol)
            if text.startswith("[[", p) or end < 0 or not _rest_is_comment(text, end + 1, eol):
                return None
            path = tuple(text[p + 1:end].split("."))
            if not all(map(_is_bare, path)) or path in headers:
                return None
            headers.add(path)
            table = root
            for part in path:
                nxt = table.setdefault(part, {})
                if not isinstance(nxt, dict):
                    return None  # a key that already holds a value (or an array)
                table = nxt
            pos = eol + 1
            continue
        eq = text.find("=", p, eol)
        if eq < 0:
            return None
        key = text[p:eq].rstrip(_WS)
        if not _is_bare(key) or key in table:
            return None
        got = _value(text, _skip(text, eq + 1, False))
        if got is None:
            return None
        nl = text.find("\n", got[1])  # an array may have ended on a later line
        eol = n if nl < 0 else nl
        if not _rest_is_comment(text, got[1], eol):
            return None
        table[key] = got[0]
        pos = eol + 1
    return root
