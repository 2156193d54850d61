"""The ``[runtime]`` table of the configuration (the runtime gate's), parsed once at load:

```toml
[runtime]
runc = "/usr/sbin/runc"                           # the real runc, absolute
containerd = "/run/containerd/containerd.sock"   # containerd's socket; unset: the one that started the shim
```

Standard library only, and light: the configuration is parsed on every decided command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shim.common.errors import ConfigError
from shim.common.tables import known_table

DEFAULT_RUNC = "/usr/sbin/runc"
KNOWN_KEYS = frozenset({"runc", "containerd"})


@dataclass(frozen=True)
class Settings:
    """``[runtime]`` in BACON's configuration."""

    runc: str = DEFAULT_RUNC  # the real runc, absolute
    containerd: str | None = None  # containerd's socket; None: the one that started the shim


def settings(section: Mapping[str, Any], where: str) -> Settings:
    """The ``[runtime]`` table (``{}`` when absent) of the configuration at ``where``. Raises :class:`ConfigError`."""
    known_table(section, f"{where}: [runtime]", KNOWN_KEYS,
                hint="[runtime] knows runc (the real runc, absolute) and containerd (its socket)")
    runc = section.get("runc", DEFAULT_RUNC)
    containerd = section.get("containerd")
    for key, value in (("runc", runc), ("containerd", containerd)):
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise ConfigError(f"{where}: [runtime] {key} must be an absolute path, got {value!r}")
    return Settings(runc=runc, containerd=containerd)
