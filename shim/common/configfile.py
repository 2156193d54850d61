"""Where BACON's configuration is, whether it may be trusted, and its raw TOML table.

The file is TOML at ``/etc/bacon/config.toml``; ``BACON_CONFIG`` may name another one only when the
process is not running under sudo (nor set-uid), so a caller cannot bring their own rules to a root
wrapper. The file, and every directory on its path, must be owned by root (or by the effective user, when
not root) and writable by nobody else (:mod:`shim.common.trustedfile`); a symlink is refused. Anything else is a
:class:`ConfigError`.

This is all a forwarded command needs (plus the real nerdctl's path), so it is kept light: standard
library only, and neither ``pathlib`` nor ``dataclasses`` (together about 15 ms of every forwarded
command), nor ``typing`` or ``tomllib`` when the file is plain (:mod:`shim.common.simpletoml`). What the
table says is :mod:`shim.common.config`'s business.
"""

from __future__ import annotations

import os

from shim.common import docs, simpletoml, trustedfile
from shim.common.errors import ConfigError

TYPE_CHECKING = False  # typing and collections are not imported at run time: the forwarding path's import cost
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_PATH = "/etc/bacon/config.toml"
DEFAULT_NERDCTL = "/usr/local/libexec/bacon/nerdctl"
MAX_SIZE = 1 << 20

if TYPE_CHECKING:
    StrPath = str | os.PathLike[str]


def under_sudo(environ: Mapping[str, str] | None = None) -> bool:
    """True when the caller's environment must not be trusted (:func:`shim.wrapper.caller.under_sudo`: sudo, doas,
    pkexec, or a set-uid/set-gid start, judged on the credentials decided for)."""
    from shim.wrapper import caller

    return caller.under_sudo(environ)


def config_path(environ: Mapping[str, str] | None = None) -> str:
    """Where the configuration is read from (``BACON_CONFIG`` is honoured only outside sudo)."""
    env = os.environ if environ is None else environ
    chosen = env.get("BACON_CONFIG")
    if chosen and not under_sudo(env):
        return chosen
    return DEFAULT_PATH


def read_trusted_file(path: StrPath, what: str = "configuration") -> bytes:
    """Read a file that decides what is trusted (:mod:`shim.common.trustedfile`: owned by root, writable by nobody
    else along its whole path); the file itself may not be a symlink."""
    return trustedfile.read(path, what, max_size=MAX_SIZE, symlink=False,
                            missing_hint=f"install /etc/bacon/config.toml (see {docs.config_reference()}) or, outside "
                            "sudo, set BACON_CONFIG")


def read_table(path: StrPath) -> dict[str, Any]:
    """The configuration file at ``path``, checked (:func:`read_trusted_file`) and parsed as TOML: by
    :mod:`shim.common.simpletoml` when the text is in its plain subset (no import), else by :mod:`tomllib`."""
    raw = read_trusted_file(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{os.fspath(path)} is not valid TOML: {e}",
                          hint="fix the file; `bacon doctor` checks it") from e
    table = simpletoml.loads(text)
    if table is not None:
        return table
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{os.fspath(path)} is not valid TOML: {e}",
                          hint="fix the file; `bacon doctor` checks it") from e


def real_nerdctl(table: Mapping[str, Any], path: StrPath) -> str:
    """The configured real nerdctl (``nerdctl =``), an absolute path. Raises :class:`ConfigError`."""
    value = table.get("nerdctl", DEFAULT_NERDCTL)
    if not isinstance(value, str) or not value or not os.path.isabs(value):
        raise ConfigError(f"{os.fspath(path)}: 'nerdctl' must be an absolute path, got {value!r}")
    return value


def service_socket(table: Mapping[str, Any], path: StrPath) -> str | None:
    """The warm decision service's socket (``[service] socket``), or ``None`` when none is configured."""
    section = table.get("service")
    if section is None:
        return None
    value = section.get("socket") if isinstance(section, dict) else None
    if not isinstance(value, str) or not os.path.isabs(value):
        raise ConfigError(f"{os.fspath(path)}: [service] socket must be an absolute path, got {value!r}",
                          hint='[service]\nsocket = "/run/bacon/decide.sock"')
    return value
