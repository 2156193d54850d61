"""Strict JSON for input BACON does not control: one reading, so that no parser of ours is laxer than another.

What arrives as JSON from outside — image manifests, indexes and configs, signature payloads and bundles,
the OCI runtime spec, Intel's collateral and Trust Authority answers, an evidence bundle, admission and
enable records, the TPM baseline, the audit log — is read by :func:`loads` (or :func:`load_object`):

- bounded size, checked before parsing (the caller names its limit);
- UTF-8 only (RFC 8259), as Go's decoder (containerd, nerdctl) reads it; ``json.loads`` would also take
  UTF-16/32 from bytes;
- a duplicate key anywhere is refused: two parsers may keep different copies, and a decision must not
  depend on which one;
- ``NaN``, ``Infinity`` and ``-Infinity`` are refused (not JSON; Go refuses them);
- arrays and objects nested at most ``max_depth`` deep (default :data:`MAX_DEPTH`), so that nothing that
  walks the document later recurses without bound;
- at most ``max_values`` values in arrays and objects (default :data:`MAX_VALUES`), counted before parsing:
  a Python object costs some 60 bytes against a JSON value's 2 or 3, so the 8 MiB an image config may be,
  as ``[{},{},…]``, made some 400 MB of dicts.

Every refusal is an :class:`Invalid` (a ``ValueError``) whose text is a phrase that follows the document's
name: ``raise Denied(f"the OCI spec {path} {e}")`` reads "the OCI spec … is not JSON: duplicate key 'root'".

Built on the standard ``json`` module, imported only when a document is read: importing this module costs
nothing on the wrapper's forwarding path or in the service client, which must not load ``json``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (import cost)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    ObjectCheck = Callable[[list[tuple[str, Any]]], None]

MAX_DEPTH = 64  # far above any document BACON reads (an OCI spec or a bundle nests fewer than 10 levels)
# Far above any document BACON reads (an index of 1000 entries, a signature manifest of 1000 layers: some
# 10,000), and some 12 MB of Python objects at most.
MAX_VALUES = 200_000


class Invalid(ValueError):
    """Why a JSON document is refused, as a phrase that follows its name (``f"{what} {e}"``)."""


def loads(data: bytes | str, *, max_size: int, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES,
          check_object: ObjectCheck | None = None) -> Any:
    """The JSON value in ``data`` (at most ``max_size`` bytes; characters for a ``str``; at most ``max_values``
    values in its arrays and objects). ``check_object``, when given, sees each object's members first (in
    order) and may refuse them with an :class:`Invalid` of its own, which is raised as it is. Raises
    :class:`Invalid`."""
    if len(data) > max_size:
        raise Invalid(f"is {len(data)} bytes, more than the limit of {max_size}")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Invalid(f"is not JSON: not UTF-8 (byte {e.start})") from e
    else:
        text = data
    if _values(text, max_values) > max_values:
        raise Invalid(f"is not JSON BACON reads: more than {max_values} values")
    import json

    hook = _unique_keys if check_object is None else _checked(check_object)
    try:
        doc = json.loads(text, object_pairs_hook=hook, parse_constant=_no_constant)
    except Invalid:
        raise
    except RecursionError as e:
        raise Invalid(f"is not JSON BACON reads: nested more than {max_depth} deep") from e
    except ValueError as e:
        raise Invalid(f"is not JSON: {e}") from e
    # a document holds at most as many levels as it has opening brackets: count them before walking it
    if text.count("[") + text.count("{") > max_depth and _deeper_than(doc, max_depth):
        raise Invalid(f"is not JSON BACON reads: nested more than {max_depth} deep")
    return doc


def load_object(data: bytes | str, *, max_size: int, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES,
                check_object: ObjectCheck | None = None) -> dict[str, Any]:
    """:func:`loads`, and the value must be a JSON object. Raises :class:`Invalid`."""
    doc = loads(data, max_size=max_size, max_depth=max_depth, max_values=max_values, check_object=check_object)
    if not isinstance(doc, dict):
        raise Invalid("is not a JSON object")
    return doc


def _values(text: str, limit: int) -> int:
    """At least the number of values in arrays and objects (each follows a ``[``, ``{`` or ``,``), at most the
    count of those characters: the quick count, and only when it is high, the count outside strings."""
    quick = text.count(",") + text.count("[") + text.count("{")
    if quick <= limit:
        return quick
    import re

    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)  # a string that does not end leaves the rest: json refuses it
    return bare.count(",") + bare.count("[") + bare.count("{")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find the first key seen twice, for the message
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate key {k!r}")
            seen.add(k)
    return out


def _checked(check: ObjectCheck) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        check(pairs)
        return _unique_keys(pairs)

    return hook


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(doc: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
