"""The check every configuration table shares: it is a table, and it holds only the keys its reader knows
(a misspelt key is an error at load, exit 78, never a setting silently ignored). Standard library only."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from shim.common.errors import ConfigError


def known_table(section: Any, where: str, known: Collection[str], hint: str | None = None) -> Mapping[str, Any]:
    """``section`` itself when it is a table of known keys; else :class:`ConfigError` naming ``where`` and the
    unknown keys (``hint``, when given, says what the table holds; else its keys are listed)."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}",
                          hint=hint or f"known: {', '.join(sorted(known))}")
    return section
