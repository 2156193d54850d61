"""The configuration's profile keys, validated at load (a bad one is a configuration error naming the key).

```toml
[levels.Low]
profile = "restricted"             # privileged | baseline | restricted; baseline when unset
[levels.Mid.allow]                 # exceptions, each exact
host_paths = ["/srv/data", "/var/cache/app:rw"]   # read-only unless ":rw"
capabilities = ["NET_ADMIN"]
devices = ["/dev/fuse"]
seccomp_profiles = ["/etc/bacon/seccomp/app.json"]
sysctls = ["net.core.somaxconn"]
runtimes = ["io.containerd.kata.v2"]
log_drivers = ["syslog"]
log_options = ["syslog-address"]
host_files = ["cidfile"]           # options/commands that read or write host files as root
annotations = ["org.example.team"]
[global_flags]                     # nerdctl global flags accepted only with these values
cni_path = ["/opt/cni/bin"]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shim.admission.profiles import classes
from shim.admission.profiles.request import ALL_CAPABILITIES
from shim.admission.profiles.rules import DEFAULT_PROFILE, PROFILES, Allowances, Settings
from shim.common.errors import ConfigError
from shim.common.tables import known_table

ALLOW_KEYS = ("host_paths", "capabilities", "devices", "seccomp_profiles", "sysctls", "runtimes", "log_drivers",
              "log_options", "host_files", "annotations")
HOST_FILE_NAMES = frozenset({"env-file", "label-file", "cidfile", "pidfile", "checkpoint-dir", "cp", "save", "load",
                             "export", "import", "build", "builder", "compose", "checkpoint", "convert", "encrypt",
                             "decrypt"})
CHECKED_GLOBALS = tuple(sorted(n for n, c in classes.GLOBAL_FLAGS.items() if c == "checked"))


@dataclass(frozen=True)
class ProfileConfig:
    """Each level's profile and allowances, and the accepted values of nerdctl's host-choosing globals."""

    profiles: Mapping[str, str] = field(default_factory=dict)
    allow: Mapping[str, Allowances] = field(default_factory=dict)
    global_flags: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def profile(self, level: str) -> str:
        return self.profiles.get(level, DEFAULT_PROFILE)

    def settings(self, level: str, *, host: bool = False) -> Settings:
        return Settings(profile=self.profile(level), level=level, allow=self.allow.get(level, Allowances()),
                        global_flags=self.global_flags, host=host)


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of non-empty strings")
    return list(value)


def _host_paths(values: list[str], where: str) -> tuple[tuple[str, bool], ...]:
    out = []
    for v in values:
        path, _, mode = v.rpartition(":") if v.endswith((":rw", ":ro")) else (v, "", "")
        if not path.startswith("/") or "/../" in path + "/" or "/./" in path + "/" or "//" in path:
            raise ConfigError(f"{where}: host_paths entry {v!r} must be a normalized absolute path",
                              hint='e.g. host_paths = ["/srv/data", "/var/cache/app:rw"]')
        out.append((path.rstrip("/") or "/", mode == "rw"))
    return tuple(out)


def _allowances(value: object, where: str) -> Allowances:
    table = known_table(value, where, ALLOW_KEYS, hint=f"known: {', '.join(ALLOW_KEYS)}")
    caps = [c.upper().removeprefix("CAP_") for c in _strings(table, "capabilities", where)]
    bad = sorted(set(caps) - ALL_CAPABILITIES)
    if bad:
        raise ConfigError(f"{where}: capabilities names unknown capability(ies) {', '.join(bad)}",
                          hint="write them as Linux names them, e.g. NET_ADMIN (ALL is not an allowance)")
    files = _strings(table, "host_files", where)
    bad = sorted(set(files) - HOST_FILE_NAMES)
    if bad:
        raise ConfigError(f"{where}: host_files names unknown option(s) or command(s) {', '.join(bad)}",
                          hint=f"known: {', '.join(sorted(HOST_FILE_NAMES))}")
    for key in ("devices", "seccomp_profiles"):
        for v in _strings(table, key, where):
            if key == "seccomp_profiles" and not v.startswith("/"):
                raise ConfigError(f"{where}: {key} entry {v!r} must be an absolute path")
    return Allowances(
        host_paths=_host_paths(_strings(table, "host_paths", where), where),
        capabilities=frozenset(caps),
        devices=frozenset(_strings(table, "devices", where)),
        seccomp_profiles=frozenset(_strings(table, "seccomp_profiles", where)),
        sysctls=frozenset(_strings(table, "sysctls", where)),
        runtimes=frozenset(_strings(table, "runtimes", where)),
        log_drivers=frozenset(_strings(table, "log_drivers", where)),
        log_options=frozenset(_strings(table, "log_options", where)),
        host_files=frozenset(files),
        annotations=frozenset(_strings(table, "annotations", where)),
    )


def parse(levels: Mapping[str, Any], global_flags: object, where: str) -> ProfileConfig:
    """The profile keys of ``[levels.*]`` and ``[global_flags]``. Raises :class:`ConfigError`."""
    profiles: dict[str, str] = {}
    allow: dict[str, Allowances] = {}
    for lvl, table in levels.items():
        if "profile" in table:
            value = table["profile"]
            if value not in PROFILES:
                raise ConfigError(f"{where}: [levels.{lvl}] profile must be one of {', '.join(PROFILES)}, "
                                  f"got {value!r}", hint=f'[levels.{lvl}] profile = "baseline"')
            profiles[lvl] = str(value)
        if "allow" in table:
            allow[lvl] = _allowances(table["allow"], f"{where}: [levels.{lvl}.allow]")
    if not isinstance(global_flags, dict):
        raise ConfigError(f"{where}: [global_flags] must be a table")
    gf: dict[str, frozenset[str]] = {}
    for key in global_flags:
        name = key.replace("_", "-")
        if name not in CHECKED_GLOBALS:
            raise ConfigError(f"{where}: [global_flags] {key} is not a global flag BACON limits",
                              hint=f"known: {', '.join(n.replace('-', '_') for n in CHECKED_GLOBALS)}")
        gf[name] = frozenset(_strings(global_flags, key, f"{where}: [global_flags]"))
    return ProfileConfig(profiles=profiles, allow=allow, global_flags=gf)
