"""The runtime gate at ``runc checkpoint``: CRIU, run by runc as root, writes its image files (and its work
files) into the directories it is told (``--image-path``, ``--work-path``; ``--parent-path`` is read), and
containerd hands runc the path its client chose (``ctr tasks checkpoint --image-path /etc``). Those files
are the host's, written as root for the client: under a profile other than ``privileged`` (the host's
system level's, as for the wrapper's ``checkpoint``) only the places containerd chooses itself pass:

- the container's bundle (``<state>/io.containerd.runtime.v2.task/<namespace>/<id>``, where the shim keeps
  CRIU's work files), found in runc's own state of the container;
- a directory containerd made for the checkpoint (``os.MkdirTemp(…, "ctd-checkpoint")``: named
  ``ctd-checkpoint<digits>``, root's, mode 0700, empty, not a symbolic link).

Anything else is refused (rule ``host-files``, allowed by ``[levels.LEVEL.allow] host_files =
["checkpoint"]``) and audited. ``runc --criu PATH`` (the runc options' ``CriuPath``) must be an executable
trusted as BACON's own files (root's, writable by nobody else along its path), whatever the profile: runc
runs it as root. runc's ``restore`` is refused by the gate whatever the profile (:mod:`shim.runtime.argv`).
docs/runtime.md.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from shim.admission.profiles.request import Ask, Requested
from shim.common.errors import BaconError, Denied
from shim.runtime import argv as runtime_argv
from shim.runtime import decided as runtime_decided

LAYER = "runtime"
PATH_FLAGS = ("image-path", "work-path", "parent-path")
DEFAULT_RUNC_ROOT = "/run/runc"
_CONTAINERDS_TEMP = re.compile(r"ctd-checkpoint[0-9]+")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def containerds_temp(path: str) -> bool:
    """Whether ``path`` is a directory containerd made for a checkpoint (see the module's docstring)."""
    if not _CONTAINERDS_TEMP.fullmatch(os.path.basename(path)):
        return False
    try:
        st = os.lstat(path)
        empty = not os.listdir(path)
    except OSError:
        return False
    return (st.st_mode & 0o170000) == 0o040000 and st.st_uid == 0 and st.st_mode & 0o077 == 0 and empty


def requested(call: runtime_argv.Call, bundle: str) -> Requested:
    """What the checkpoint asks for of the host: each path flag outside the places containerd chooses."""
    asks = []
    for flag in PATH_FLAGS:
        value = call.flags.get(flag)
        if not value:
            continue
        path = os.path.normpath(value if value.startswith("/") else os.path.join(os.getcwd(), value))
        if _under(path, bundle) or (flag == "image-path" and containerds_temp(path)):
            continue
        asks.append(Ask("checkpoint", f"runc checkpoint --{flag} {value}", read_only=flag == "parent-path"))
    return Requested(host_files=tuple(asks), starts_container=False)


def criu_binary(path: str | None) -> None:
    """``runc --criu PATH`` (the runc options' ``CriuPath``, a client's choice): runc runs it as root to
    checkpoint. It must be trusted as the real nerdctl is (:mod:`shim.common.trustedfile`). Raises
    :class:`Denied`."""
    from shim.common import trustedfile
    from shim.common.errors import ConfigError

    if path is None:
        return
    try:
        trustedfile.check_executable(path, "CRIU (runc --criu)")
    except ConfigError as e:
        raise Denied(f"{e.message}: runc would run it as root", check=LAYER,
                     hint="leave the runc options' CriuPath unset (runc finds criu on its PATH)") from e


def plan(args: Sequence[str]) -> tuple[str, list[str]]:
    """Decide the ``runc checkpoint`` in ``args``: the real runc and the argv. Raises :class:`BaconError`
    (a :class:`Denied` for a refusal), after auditing it."""
    from shim.admission import levels
    from shim.admission.profiles import enforce, rules
    from shim.common import config

    call = runtime_argv.parse(args)
    if call.verb != "checkpoint":
        raise Denied(f"runc {call.verb or '(no verb)'} is not a checkpoint", check=LAYER)
    cfg = config.load()
    if call.flags.get("help") == "true":
        return cfg.runtime.runc, list(args)
    settings: Any = None
    try:
        criu_binary(call.globals.get("criu"))
        if not any(call.flags.get(f) for f in PATH_FLAGS):
            return cfg.runtime.runc, list(args)
        bundle = os.path.normpath(runtime_decided.bundle_of(call.globals.get("root") or DEFAULT_RUNC_ROOT,
                                                            call.container_id))
        settings = cfg.profiles.settings(levels.system_level(cfg), host=True)
        refused = rules.refusals_of(requested(call, bundle), settings)
        if refused:
            raise enforce.denial(cfg, settings, refused, why=f" (checkpoint of container {call.container_id})")
    except BaconError as e:
        _audit_denied(cfg, args, call.container_id, settings, e)
        raise
    return cfg.runtime.runc, list(args)


def _audit_denied(cfg: Any, args: Sequence[str], container_id: str, settings: Any, e: BaconError) -> None:
    from shim.admission import audit, levels

    try:
        audit.record(cfg.audit_log, argv=["runc", *args], verdict="denied", image=None, digest=None,
                     level=settings.level if settings is not None else None, system_level=levels.system_level(cfg),
                     checks=[], reason=e.message, failed_check=e.check if isinstance(e, Denied) else LAYER,
                     error=type(e).__name__, layer=LAYER, command="checkpoint", container=container_id,
                     **({"profile": settings.profile} if settings is not None else {}))
    except BaconError as audit_error:
        print(f"bacon: the refusal could not be audited: {audit_error.message}", file=sys.stderr)
