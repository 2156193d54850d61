"""Apply the profile to a command line: which level's profile applies, the refusal as an operator reads it.

- ``run``/``create``/``start``/``restart``/``pull``: the level the admission found for the image (called
  by :mod:`shim.admission.plans` in the same decision, before anything is recorded or forwarded).
- ``exec``: the level of the container's admission record; a container without one (made by another
  client) gets ``restricted``.
- every other command (``push``, host-file commands, host-choosing global flags): the profile of the
  host's system level, since it starts no container of its own level.

The rules themselves are pure (:mod:`shim.admission.profiles.rules`); this module only picks the settings, builds the
denial and, for forwarded commands, audits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shim.admission.profiles.from_argv import requested
from shim.admission.profiles.rules import Refusal, Settings, refusals_of
from shim.common.config import Config
from shim.common.errors import Denied

if TYPE_CHECKING:
    from shim.wrapper.argv.model import Invocation


def judge(cfg: Config, inv: Invocation, level: str, *, host: bool = False,
          settings: Settings | None = None) -> tuple[Settings, tuple[Refusal, ...]]:
    """The settings for ``level`` and every refusal of ``inv`` under them: its global flags also as the
    caller's environment sets them under sudo (``CNI_PATH``, a ``NERDCTL_TOML`` of the caller's, …)."""
    from shim.wrapper.nerdctl_env import caller_settings

    s = settings or cfg.profiles.settings(level, host=host)
    given = {name for name, _ in (*inv.globals, *inv.opaque_globals)}
    return s, refusals_of(requested(inv, caller_settings(given)), s)


def denial(cfg: Config, settings: Settings, refused: Sequence[Refusal], *, why: str = "") -> Denied:
    """One denial for all refusals: each option with its rule, and every configuration line that would
    allow them (or the profile to choose)."""
    whose = "the host's system level" if settings.host else "level"
    lines = list(dict.fromkeys(r.allow for r in refused))
    msg = (f"the {settings.profile} profile of {whose} {settings.level}{why} refuses "
           + "; ".join(r.render() for r in refused))
    hint = (f"drop the option, or if this level may do it, add to {cfg.path}: " + " | ".join(lines)
            + " (docs/profiles.md explains each rule)")
    return Denied(msg, check="profile", hint=hint)


def audit_fields(settings: Settings, refused: Sequence[Refusal]) -> dict[str, Any]:
    """What the audit line records of the profile decision."""
    return {"profile": settings.profile, "profile_level": settings.level,
            "refused_options": [r.as_dict() for r in refused]}


def _exec_settings(cfg: Config, inv: Invocation) -> tuple[Settings, str]:
    """The settings for ``exec``: the container's recorded level, or restricted without a record."""
    from shim.admission import records
    from shim.images.containerd import Client
    from shim.wrapper.nerdctl_env import resolve

    name = inv.args[0]
    client = Client(resolve(inv.address, inv.namespace))
    try:
        container = client.find_container(name)
    finally:
        client.close()
    token = container.labels.get(records.LABEL)
    rec = records.load(cfg.state_dir, token) if token else None
    if rec is None or rec.container_id not in (None, container.id) or not rec.level:
        from shim.admission import levels

        system = levels.system_level(cfg)
        s = cfg.profiles.settings(system)
        return (Settings(profile="restricted", level=system, allow=s.allow, global_flags=s.global_flags),
                f" (container {name} has no admission record: restricted applies)")
    return cfg.profiles.settings(rec.level), f" (container {name})"


def check_forwarded(cfg: Config, inv: Invocation, argv: Sequence[str]) -> None:
    """Decide a command that is otherwise forwarded (exec, host-file commands, host-choosing global flags).
    Raises :class:`Denied` (audited) when the profile refuses it; audits the admission otherwise."""
    from shim.admission import audit, levels

    system = levels.system_level(cfg)
    why = ""
    if inv.command == "exec":
        settings, why = _exec_settings(cfg, inv)
    else:
        settings = cfg.profiles.settings(system, host=True)
    _, refused = judge(cfg, inv, settings.level, settings=settings)
    verdict = "denied" if refused else "admitted"
    fields = audit_fields(settings, refused)
    if refused:
        err = denial(cfg, settings, refused, why=why)
        audit.record(cfg.audit_log, argv=["nerdctl", *argv], verdict=verdict, image=None, digest=None,
                     level=settings.level, system_level=system, checks=[], reason=err.message,
                     failed_check="profile", **fields)
        raise err
    audit.record(cfg.audit_log, argv=["nerdctl", *argv], verdict=verdict, image=None, digest=None,
                 level=settings.level, system_level=system, checks=[], **fields)
