"""Where nerdctl would connect: containerd address and namespace (docs/nerdctl.md §2).

Precedence as in nerdctl: command line > environment > ``nerdctl.toml`` > default. An environment
variable replaces the TOML value whenever it is set, even to "". The TOML file is ``$NERDCTL_TOML``
whenever that is set (set to "", no file: nerdctl opens the path "", which does not exist), else
``/etc/nerdctl/nerdctl.toml`` when root, else ``${XDG_CONFIG_HOME:-~/.config}/nerdctl/nerdctl.toml``;
nerdctl decodes it strictly, so an unknown key is an error here too (docs/nerdctl.md §2).

The gate passes the resolved values to the real nerdctl explicitly (``--address=…``, ``--namespace=…``),
so the binary connects exactly where the checks were made, whatever its environment says.

Standard library only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.common.errors import ConfigError, UsageError
from shim.common.tables import known_table

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "default"
TOML_KEYS = frozenset({
    "address", "namespace", "snapshotter", "cni_path", "cni_netconfpath", "data_root", "cgroup_manager",
    "insecure_registry", "hosts_dir", "experimental", "host_gateway_ip", "bridge_ip", "kube_hide_dupe",
    "cdi_spec_dirs", "userns_remap", "dns", "dns_opts", "dns_search", "disable_hc_systemd",
    "selinux_enabled", "debug", "debug_full",
})


@dataclass(frozen=True)
class Target:
    """The containerd socket path and namespace nerdctl would use."""

    address: str
    namespace: str


def toml_path(environ: Mapping[str, str]) -> Path | None:
    """The TOML file nerdctl reads, or ``None`` for none (``NERDCTL_TOML`` set to ""). nerdctl takes the
    variable whenever it is set (``os.LookupEnv``), so "" does not fall back to the default file."""
    if "NERDCTL_TOML" in environ:
        value = environ["NERDCTL_TOML"]
        return Path(value) if value else None
    if os.geteuid() == 0:
        return Path("/etc/nerdctl/nerdctl.toml")
    xdg = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "/")) / ".config")
    return Path(xdg) / "nerdctl" / "nerdctl.toml"


def load_toml(environ: Mapping[str, str]) -> Mapping[str, Any]:
    """nerdctl's TOML configuration, read as the caller (its path comes from the caller's environment):
    a regular file, bounded, within a time (:mod:`shim.wrapper.callerfiles`); none there is an empty table."""
    from shim.common.errors import Denied, Unavailable

    path = toml_path(environ)
    if path is None or not os.path.lexists(path):
        return {}
    from shim.wrapper import inputs

    try:  # under sudo the wrapper has made it a sealed copy (inputs.seal_nerdctl_toml)
        raw = inputs.read_copy(str(path), what="nerdctl's configuration", environ=environ)
    except (Denied, Unavailable) as e:
        raise ConfigError(e.message, hint="point NERDCTL_TOML at a regular file you can read, or unset it") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"nerdctl's configuration {path} is not valid TOML: {e}") from e
    return known_table(data, f"nerdctl's configuration {path}", TOML_KEYS,
                       hint=f"nerdctl would refuse it too; it knows {', '.join(sorted(TOML_KEYS))}")


def normalize_address(address: str) -> str:
    """nerdctl strips ``unix://`` and refuses any other scheme."""
    if address.startswith("unix://"):
        address = address[len("unix://"):]
    elif "://" in address:
        raise UsageError(f"unsupported containerd address {address!r}: only unix sockets are supported")
    if not address:
        raise UsageError("empty containerd address")
    return address


def resolve(cli_address: str | None, cli_namespace: str | None,
            environ: Mapping[str, str] | None = None) -> Target:
    """The address and namespace for this invocation (``cli_*`` from the parsed argv, or ``None``)."""
    env = os.environ if environ is None else environ
    toml: Mapping[str, Any] | None = None

    def pick(cli: str | None, env_name: str, key: str, default: str) -> str:
        nonlocal toml
        if cli is not None:
            return cli
        if env_name in env:
            return env[env_name]
        if toml is None:
            toml = load_toml(env)
        value = toml.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"nerdctl.toml: {key} must be a string")
        return value

    address = pick(cli_address, "CONTAINERD_ADDRESS", "address", DEFAULT_ADDRESS)
    namespace = pick(cli_namespace, "CONTAINERD_NAMESPACE", "namespace", DEFAULT_NAMESPACE)
    if not namespace:
        raise UsageError("empty containerd namespace")
    return Target(normalize_address(address), namespace)


def caller_settings(given: Collection[str],
                    environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str, str], ...]:
    """The global settings a caller's environment hands nerdctl under sudo (or doas, pkexec), as
    (flag, value, where): for each global flag the command line does not give (``given``), the variable
    nerdctl reads for it (``CNI_PATH``, ``NETCONFPATH``, ``CONTAINERD_SNAPSHOTTER``, …) or else the key of the
    nerdctl.toml that ``NERDCTL_TOML`` names. They choose what nerdctl runs and where it keeps state as
    the flags do, so the container profile judges them as flags (docs/profiles.md). Outside sudo nothing:
    the environment is the caller's own to choose, as ``BACON_CONFIG`` is. The address and namespace are
    not listed: an admission is made in the containerd they name and hands nerdctl both explicitly.

    Raises:
        ConfigError: the nerdctl.toml ``NERDCTL_TOML`` names cannot be read or is not nerdctl's.
    """
    from shim.wrapper.argv.grammar import ENV_FLAGS, PINNED_GLOBALS, TOML_FLAGS
    from shim.wrapper.caller import under_sudo

    env = os.environ if environ is None else environ
    if not under_sudo(env):
        return ()
    out: list[tuple[str, str, str]] = []
    taken = set(given) | set(PINNED_GLOBALS)
    for var, name in ENV_FLAGS.items():
        if var in env and name not in taken:
            out.append((name, env[var], f"${var}"))
            taken.add(name)
    if env.get("NERDCTL_TOML"):  # unset: root's own /etc/nerdctl/nerdctl.toml, the administrator's choice
        path = env["NERDCTL_TOML"]
        for key, value in load_toml(env).items():
            flag = TOML_FLAGS.get(key)
            if flag is None or flag in taken:
                continue
            values = value if isinstance(value, list) else [value]
            for v in values:
                text = ("true" if v else "false") if isinstance(v, bool) else str(v)
                out.append((flag, text, f"{path}: {key}"))
    return tuple(out)
