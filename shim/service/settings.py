"""The ``[service]`` table of the configuration, parsed once at load:

```toml
[service]
socket = "/run/bacon/decide.sock"   # where `bacon serve` listens and the wrapper asks; no table: no service
```

The wrapper reads the socket alone on its fast path (:func:`shim.common.configfile.service_socket`, the same
check); this is the whole table, for every other reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shim.common import configfile
from shim.common.tables import known_table

KNOWN_KEYS = frozenset({"socket"})


@dataclass(frozen=True)
class ServiceSettings:
    socket: str | None = None  # where the warm decision service listens; None: none configured


def parse(table: Mapping[str, Any], where: str) -> ServiceSettings:
    """``[service]`` of the whole configuration ``table`` read from ``where``. Raises :class:`ConfigError`."""
    if "service" in table:
        known_table(table["service"], f"{where}: [service]", KNOWN_KEYS,
                    hint='[service] has only socket, e.g. socket = "/run/bacon/decide.sock"')
    return ServiceSettings(socket=configfile.service_socket(table, where))
