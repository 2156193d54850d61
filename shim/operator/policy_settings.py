"""The ``[policy]`` table of the configuration (what ``bacon policy set`` does), parsed once at load:

```toml
[policy]
running_above_level = "keep"   # running containers above a newly set level: keep (listed), list or stop
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shim.common.errors import ConfigError
from shim.common.tables import known_table

RUNNING_ABOVE_LEVEL = ("keep", "list", "stop")
KNOWN_KEYS = frozenset({"running_above_level"})


@dataclass(frozen=True)
class PolicySettings:
    running_above_level: str = "keep"


def parse(section: Mapping[str, Any], where: str) -> PolicySettings:
    """The ``[policy]`` table (``{}`` when absent) of the configuration at ``where``. Raises :class:`ConfigError`."""
    known_table(section, f"{where}: [policy]", KNOWN_KEYS)
    running = section.get("running_above_level", "keep")
    if running not in RUNNING_ABOVE_LEVEL:
        raise ConfigError(f"{where}: [policy] running_above_level must be one of {', '.join(RUNNING_ABOVE_LEVEL)}, "
                          f"got {running!r}", hint='running_above_level = "keep"')
    return PolicySettings(running_above_level=str(running))
