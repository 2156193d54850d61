"""The runtime gate at ``runc exec``: a new process in a running container goes through the profile of the
level that container was admitted at, whatever client asked for it (``ctr task exec``, a CRI exec, a
nerdctl called by its path).

1. The container: runc's own state for it (``<runc root>/<id>/state.json``) names its bundle; what the gate
   kept at ``create`` for that bundle (:mod:`shim.runtime.decided`) gives the level it was admitted at.
   A container without it (made before the gate was enabled, or without the gate) gets ``restricted`` under
   the host's system level, as the wrapper's ``exec`` into a container without an admission record.
2. The process runc will start: the process file (``--process``, what containerd's shim writes: read as
   runc reads it, :mod:`shim.runtime.specfile`), or without one the container's own process from its
   ``config.json`` with ``exec``'s flags applied as runc applies them (``--cap`` adds to every set,
   ``--user uid[:gid]``, ``--apparmor``, ``--process-label``, ``--no-new-privs``). Flags that change the
   process given together with ``--process`` (runc ignores them then) are refused.
3. The profile's rules (:mod:`shim.admission.profiles.rules`) on what that process asks for beyond the
   container's own process (:func:`shim.runtime.spec.exec_request`): capabilities it does not have (under
   ``restricted`` none but ``NET_BIND_SERVICE``), AppArmor other than the container's, ``noNewPrivileges``
   dropped where the container has it, the user under ``restricted``, SELinux labels; anything
   unreadable is refused.

A refusal (or a failure to decide) is audited with ``"layer": "runtime"`` and reaches the client as one
``bacon: denied: …`` line (``ctr: OCI runtime exec failed: bacon: denied: …``). An admitted ``exec`` is not
audited (health checks exec every few seconds); its container's admission is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shim.common.errors import BaconError, Denied
from shim.runtime import argv as runtime_argv
from shim.runtime import decided as runtime_decided

LAYER = "runtime"
MAX_PROCESS = 4 << 20  # bytes of a process file read
DEFAULT_RUNC_ROOT = "/run/runc"  # runc's --root when none is given (as root)
# exec's flags that change the process runc starts from the container's own (ignored with --process)
PROCESS_FLAGS = ("cwd", "user", "process-label", "apparmor", "no-new-privs", "tty", "env", "cap",
                 "additional-gids")
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def with_flags(process: Mapping[str, Any], flags: Mapping[str, str],
               lists: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The container's ``process`` with ``runc exec``'s inline flags applied as runc 1.1 applies them. Pure.
    Raises :class:`Denied` for a ``--user`` runc would read otherwise (only ``uid[:gid]`` in digits)."""
    p = dict(process)
    if flags.get("apparmor"):
        p["apparmorProfile"] = flags["apparmor"]
    if flags.get("process-label"):
        p["selinuxLabel"] = flags["process-label"]
    caps = list(lists.get("cap", ()))
    if caps:
        old = p.get("capabilities")
        old = old if isinstance(old, dict) else {}
        p["capabilities"] = {**old, **{k: [*(old.get(k) or []), *caps] for k in CAPABILITY_SETS}}
    if "no-new-privs" in flags:
        p["noNewPrivileges"] = flags["no-new-privs"] == "true"
    user = flags.get("user")
    if user:
        uid, colon, gid = user.partition(":")
        if not uid.isascii() or not uid.isdigit() or (colon and (not gid.isascii() or not gid.isdigit())):
            raise Denied(f"runc exec --user {user!r} is not uid[:gid] in digits", check="spec")
        old_user = p.get("user")
        p["user"] = {**(old_user if isinstance(old_user, dict) else {}), "uid": int(uid),
                     **({"gid": int(gid)} if colon else {})}
    return p


def container_process(bundle: str) -> dict[str, Any]:
    """The container's own process: its bundle's ``config.json``'s ``process``. Raises :class:`Denied`."""
    from shim.runtime import specfile as runtime_specfile

    config = os.path.join(bundle, "config.json")
    try:
        spec = runtime_specfile.read(config, MAX_PROCESS)
    except runtime_specfile.SpecFileError as e:
        raise Denied(f"cannot read the container's OCI spec {config}: {e}", check="spec") from e
    process = spec.get("process")
    if not isinstance(process, dict):
        raise Denied(f"the container's OCI spec {config} has no process", check="spec")
    return process


def exec_process(call: runtime_argv.Call, own: Mapping[str, Any]) -> dict[str, Any]:
    """The process ``runc exec`` will start (see the module's docstring), ``own`` being the container's own.
    Raises :class:`Denied`."""
    from shim.runtime import specfile as runtime_specfile

    path = call.flags.get("process")
    if path is not None:
        given = [f"--{f}" for f in PROCESS_FLAGS if f in call.flags or f in call.lists]
        if given:
            raise Denied(f"runc exec --process with {', '.join(given)}: runc ignores them, the gate reads "
                         "one process", check="spec", hint="put them in the process file")
        try:
            return runtime_specfile.read(path, MAX_PROCESS)
        except runtime_specfile.SpecFileError as e:
            raise Denied(f"cannot read exec's process file {path}: {e}", check="spec") from e
    if not call.command:
        raise Denied("runc exec without --process needs a command", check="spec")
    return with_flags(own, call.flags, call.lists)


def namespace_of(bundle: str, container_id: str) -> str | None:
    """The containerd namespace of a bundle containerd's shim made (``…/<TASK_DIR>/<namespace>/<id>``)."""
    from shim.runtime.gate import TASK_DIR

    b = Path(os.path.normpath(bundle))
    if b.name != container_id or b.parent.parent.name != TASK_DIR or not b.parent.name:
        return None
    return b.parent.name


def settings_for(cfg: Any, kept: runtime_decided.Kept | None, container_id: str) -> tuple[Any, str]:
    """The profile settings for an exec into the container, and the words the refusal adds."""
    from shim.admission import levels
    from shim.admission.profiles.rules import Settings

    if kept is not None:
        return cfg.profiles.settings(kept.level), f" (container {container_id})"
    s = cfg.profiles.settings(levels.system_level(cfg))
    return (Settings(profile="restricted", level=s.level, allow=s.allow, global_flags=s.global_flags),
            f" (container {container_id} was not admitted by the runtime gate: restricted applies)")


def plan(args: Sequence[str]) -> tuple[str, list[str]]:
    """Decide the ``runc exec`` in ``args``: the real runc and the argv to exec it with. Raises
    :class:`BaconError` (a :class:`Denied` for a refusal), after auditing it."""
    from shim.admission.profiles import enforce, rules
    from shim.common import config
    from shim.runtime import spec as runtime_spec

    call = runtime_argv.parse(args)
    if call.verb != "exec":
        raise Denied(f"runc {call.verb or '(no verb)'} is not an exec", check=LAYER)
    cfg = config.load()
    s = cfg.runtime
    if call.flags.get("help") == "true":  # runc prints exec's help
        return s.runc, list(args)
    namespace: str | None = None
    kept: runtime_decided.Kept | None = None
    settings: Any = None
    try:
        bundle = runtime_decided.bundle_of(call.globals.get("root") or DEFAULT_RUNC_ROOT, call.container_id)
        namespace = namespace_of(bundle, call.container_id)
        if namespace is not None:
            kept = runtime_decided.find(cfg.state_dir, namespace, call.container_id, bundle)
        own = container_process(bundle)
        process = exec_process(call, own)
        settings, why = settings_for(cfg, kept, call.container_id)
        refused = rules.refusals_of(runtime_spec.exec_request(process, own), settings)
        if refused:
            d = enforce.denial(cfg, settings, refused, why=why)
            raise Denied(d.message, check="profile", hint=d.hint, image=kept.image if kept else None,
                         digest=kept.digest if kept else None)
    except BaconError as e:
        _audit_denied(cfg, args, call.container_id, namespace, kept, settings, e)
        raise
    return s.runc, list(args)


def _audit_denied(cfg: Any, args: Sequence[str], container_id: str, namespace: str | None,
                  kept: runtime_decided.Kept | None, settings: Any, e: BaconError) -> None:
    from shim.admission import audit, levels

    try:
        audit.record(cfg.audit_log, argv=["runc", *args], verdict="denied", image=kept.image if kept else None,
                     digest=kept.digest if kept else None, level=settings.level if settings is not None else None,
                     system_level=levels.system_level(cfg), checks=[], reason=e.message,
                     failed_check=e.check if isinstance(e, Denied) else LAYER, error=type(e).__name__,
                     layer=LAYER, command="exec", container=container_id, namespace=namespace,
                     **({"profile": settings.profile} if settings is not None else {}))
    except BaconError as audit_error:
        print(f"bacon: the refusal could not be audited: {audit_error.message}", file=sys.stderr)
