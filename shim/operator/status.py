"""Where the host stands, for ``bacon status`` and ``bacon doctor``: probes, the model, and its rendering.

Each probe looks at one thing (the configuration, the system level, the trusted keys, Secure Boot, the
TPM, TDX, containerd, the real nerdctl, the state directory and audit log, the wrapper on PATH, the
decision service, the runtime gate in front of containerd's runc) and
returns an :class:`Item`. Probes run at the same time, each in a daemon thread with a deadline: one that
raises becomes a failed item with the error, one that does not answer in time becomes a failed item
"did not answer within N s". Nothing here raises and nothing waits longer than the deadline.

The rest is pure: which items are *needed* (the configuration, containerd, the real nerdctl and the audit
log always; the trusted keys, the TPM and TDX when a level the host admits requires ``signature``,
``tpm`` or ``tdx``), whether each level's requirements are met, the text, the JSON, and the exit status:
0 when every needed item is ok, 1 when one is not, 78 when the configuration cannot be used.

The TPM and TDX parts reuse ``shim.attest.tpm.operations.status`` and ``shim.attest.tdx.operations.status``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shim.common import config as bconfig
from shim.common.errors import EXIT_CONFIG, BaconError, ConfigError

OK, FAIL, WARN, INFO = "ok", "fail", "warn", "info"
EXIT_NOT_READY = 1
ALWAYS = "always"  # an item every admission needs
DEFAULT_TIMEOUT = 10.0
EFI = Path("/sys/firmware/efi")
CHECK_ITEMS = {"signature": "keys", "tpm": "tpm", "tdx": "tdx"}  # requirement -> the item that satisfies it
DEFAULT_FIXES = {  # for a failure whose error carries no hint of its own: every failed line says what to do
    "config": "fix the file named above (`bacon doctor` re-checks it); an example: {config_reference}",
    "level": "sudo bacon policy set High|Mid|Low",
    "keys": "fix or remove the key in [trust] keys",
    "tpm": "check [tpm] tcti and the TPM device, then `bacon baseline show --diff`",
    "tdx": "check [tdx] and that this is a TDX guest; `bacon tdx collateral refresh` for the collateral",
    "containerd": "start containerd, or point at its socket with --address or CONTAINERD_ADDRESS",
    "nerdctl": "install the real nerdctl at the configured `nerdctl =` path (sudo bacon enable does it)",
    "state": "make the state directory and the audit log's directory root-owned and writable by root",
}


@dataclass(frozen=True)
class Item:
    """One line of the report. ``requirement`` says what needs it (``always``, ``signature``, ``tpm``,
    ``tdx``, or None: informative); ``needed`` is filled in from the host's levels by :func:`build`."""

    key: str
    label: str
    state: str  # OK, FAIL, WARN, INFO
    summary: str
    fix: str | None = None
    requirement: str | None = None
    needed: bool = False
    lines: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "state": self.state, "needed": self.needed,
                "requirement": self.requirement, "summary": self.summary, "fix": self.fix,
                "details": dict(self.details)}


@dataclass(frozen=True)
class LevelRow:
    level: str
    requires: tuple[str, ...]
    admitted: bool  # at or below the system level
    met: bool
    missing: tuple[str, ...]
    profile: str = "baseline"  # the container profile of this level

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "requires": list(self.requires), "admitted": self.admitted, "met": self.met,
                "missing": list(self.missing), "profile": self.profile}


@dataclass(frozen=True)
class Report:
    config_path: str
    config_ok: bool
    system_level: str | None
    level_source: str | None
    needed_checks: tuple[str, ...]
    items: tuple[Item, ...]
    levels: tuple[LevelRow, ...]

    @property
    def problems(self) -> list[Item]:
        return [i for i in self.items if i.needed and i.state == FAIL]

    @property
    def exit_status(self) -> int:
        if not self.config_ok:
            return EXIT_CONFIG
        return EXIT_NOT_READY if self.problems else 0

    def item(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.exit_status == 0, "exit_status": self.exit_status, "config": self.config_path,
                "system_level": self.system_level, "level_source": self.level_source,
                "needed_checks": list(self.needed_checks), "items": [i.to_json() for i in self.items],
                "levels": [r.to_json() for r in self.levels],
                "profiles": {r.level: r.profile for r in reversed(self.levels)},
                "problems": [{"key": i.key, "summary": i.summary, "fix": i.fix} for i in self.problems]}


# --- the pure part ---------------------------------------------------------------------------------------

def _default_fix(key: str) -> str | None:
    from shim.common import docs

    fix = DEFAULT_FIXES.get(key)
    return fix.format(config_reference=docs.config_reference()) if fix else None


def needed_checks(cfg: bconfig.Config | None, system_level: str | None) -> tuple[str, ...]:
    """The checks some level the host admits requires (every level at or below the system level)."""
    if cfg is None or system_level is None:
        return ("signature",)
    admitted = bconfig.LEVELS[: bconfig.LEVELS.index(system_level) + 1]
    return tuple(sorted({c for lvl in admitted for c in bconfig.require_for(cfg, lvl)}))


def level_rows(cfg: bconfig.Config | None, system_level: str | None, items: Sequence[Item]) -> tuple[LevelRow, ...]:
    if cfg is None:
        return ()
    state = {i.key: i.state for i in items}
    rows = []
    for lvl in reversed(bconfig.LEVELS):
        requires = tuple(bconfig.require_for(cfg, lvl))
        # a warning is met (the check passes; e.g. a TPM baseline that does not pin the EK yet)
        missing = tuple(c for c in requires if state.get(CHECK_ITEMS.get(c, c)) not in (OK, WARN))
        admitted = system_level is not None and bconfig.LEVELS.index(lvl) <= bconfig.LEVELS.index(system_level)
        rows.append(LevelRow(lvl, requires, admitted, not missing, missing, cfg.profiles.profile(lvl)))
    return tuple(rows)


def build(config_path: Path, cfg: bconfig.Config | None, system_level: str | None, level_source: str | None,
          items: Sequence[Item]) -> Report:
    """The report: which items are needed, the level table. Pure."""
    checks = needed_checks(cfg, system_level)
    marked = tuple(replace(i, needed=i.requirement == ALWAYS or (i.requirement in checks),
                           fix=i.fix or (_default_fix(i.key) if i.state in (FAIL, WARN) else None))
                   for i in items)
    return Report(config_path=str(config_path), config_ok=cfg is not None, system_level=system_level,
                  level_source=level_source, needed_checks=checks, items=marked,
                  levels=level_rows(cfg, system_level, marked))


def _mark(i: Item) -> str:
    if i.state == OK:
        return "ok"
    if i.state == FAIL:
        return "FAIL" if i.needed else "-"
    return "warn" if i.state == WARN else ""


def _not_needed_note(i: Item, r: Report) -> str:
    if i.state == FAIL and not i.needed and i.requirement not in (None, ALWAYS):
        if r.system_level is None:
            return "  (needed? unknown without the system level)"
        return f"  (not needed: no level up to {r.system_level} requires {i.requirement})"
    return ""


def format_status(r: Report) -> list[str]:
    """The one-screen text of ``bacon status``."""
    out = []
    for i in r.items:
        out.append(f"  {_mark(i):<5} {i.label:<14} {i.summary}{_not_needed_note(i, r)}")
        out.extend(f"                       {line}" for line in i.lines)
        if i.state in (FAIL, WARN) and i.fix:
            out.append(f"                       fix: {i.fix}")
    if r.levels:
        out.append("levels")
        for row in r.levels:
            where = "admitted here" if row.admitted else "refused here "
            met = "requirements met" if row.met else "NOT met: " + ", ".join(row.missing) + " missing"
            out.append(f"  {row.level:<5} {where}  profile {row.profile:<10}  requires {', '.join(row.requires):<24} "
                       f"{met}")
    out.append(_verdict(r))
    return out


def format_doctor(r: Report) -> list[str]:
    """One line per requirement: ok or missing, and how to fix it."""
    out = []
    for i in r.items:
        if i.state == INFO:
            continue
        word = {OK: "ok", WARN: "warn"}.get(i.state, "missing" if i.needed else "absent")
        line = f"{word:<8} {i.label:<14} {i.summary}{_not_needed_note(i, r)}"
        if i.state in (FAIL, WARN) and i.fix:
            line += f"; fix: {i.fix}"
        out.append(line)
    out.append(_verdict(r))
    return out


def _verdict(r: Report) -> str:
    if not r.config_ok:
        return "result: the configuration cannot be used (exit 78); fix it first"
    if r.problems:
        return (f"result: NOT READY: {len(r.problems)} needed item(s) fail: "
                + ", ".join(i.label for i in r.problems) + " (exit 1)")
    return f"result: ready: everything level {r.system_level} needs is in place"


# --- probes (IO, bounded) ---------------------------------------------------------------------------------

Probe = Callable[[], Item]


@dataclass(frozen=True)
class ProbeSpec:
    key: str
    label: str
    requirement: str | None
    run: Probe


def run_probes(specs: Sequence[ProbeSpec], timeout: float, shown_timeout: float | None = None) -> list[Item]:
    """Run every probe at once, each in a daemon thread; wait at most ``timeout`` seconds in all. A probe
    that raises or does not finish in time becomes a failed item. Order follows ``specs``."""
    results: dict[str, Item] = {}
    lock = threading.Lock()

    def runner(spec: ProbeSpec) -> None:
        try:
            item = spec.run()
        except BaconError as e:
            item = Item(spec.key, spec.label, FAIL, e.message, e.hint, spec.requirement)
        except Exception as e:  # noqa: BLE001 - a probe's bug is reported as its line, never a crash
            item = Item(spec.key, spec.label, FAIL, f"probe failed: {type(e).__name__}: {e}",
                        "please report this", spec.requirement)
        with lock:
            results[spec.key] = item

    threads = []
    for spec in specs:
        t = threading.Thread(target=runner, args=(spec,), name=f"probe-{spec.key}", daemon=True)
        t.start()
        threads.append(t)
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out = []
    with lock:
        for spec in specs:
            out.append(results.get(spec.key) or Item(
                spec.key, spec.label, FAIL, f"did not answer within {shown_timeout or timeout:g} s",
                "find out what hangs (the device, socket or provider named in the configuration)", spec.requirement))
    return out


def probe_config(path: Path) -> tuple[bconfig.Config | None, Item]:
    try:
        cfg = bconfig.load(path)
    except BaconError as e:
        return None, Item("config", "configuration", FAIL, e.message.removeprefix("configuration "), e.hint, ALWAYS)
    return cfg, Item("config", "configuration", OK, f"{path} (owned by root, writable only by root)",
                     requirement=ALWAYS)


def probe_level(cfg: bconfig.Config) -> tuple[str | None, str | None, Item]:
    from shim.admission import levels

    try:
        origin = levels.level_origin(cfg)
    except BaconError as e:
        return None, None, Item("level", "system level", FAIL, e.message, e.hint, ALWAYS)
    source = str(origin.override) + " (bacon policy set)" if origin.override else str(cfg.path)
    if origin.shadowed:
        return origin.level, source, Item(
            "level", "system level", WARN, f"{origin.level} ({origin.describe()})",
            f"sudo bacon policy reset (the configuration's {origin.configured} applies), or "
            f"sudo bacon policy set {origin.level} and set level = \"{origin.level}\" in {cfg.path} too",
            ALWAYS, details=origin.to_json())
    return origin.level, source, Item("level", "system level", OK, f"{origin.level} ({origin.describe()})",
                                      requirement=ALWAYS, details=origin.to_json())


def probe_keys(cfg: bconfig.Config) -> Item:
    """The trusted keys load, and, when keyless identities are trusted, so does their Sigstore root."""
    from shim.trust import keys

    if not cfg.trusted_keys and not cfg.identities:
        return Item("keys", "trusted keys", FAIL, "no trusted keys or identities configured: every image is refused",
                    'add the team\'s public key: [trust] keys = ["/etc/bacon/keys/team.pub"]', "signature")
    lines, rows, bad = [], [], []
    for path in cfg.trusted_keys:
        try:
            (k,) = keys.load_trusted_keys([path], cfg.key_types)
        except BaconError as e:
            bad.append(e)
            lines.append(f"error {path}: {e.message}")
            rows.append({"path": str(path), "ok": False, "error": e.message})
            continue
        lines.append(f"ok    {path}  {k.key_type} {k.key_id}")
        rows.append({"path": str(path), "ok": True, "key_type": k.key_type, "key_id": k.key_id})
    if cfg.identities:
        try:
            if cfg.trusted_root is None:
                raise ConfigError("[trust] identities are set but no trusted_root",
                                  hint="name the Sigstore trusted_root.json in [trust] trusted_root")
            from shim.trust import keyless

            keyless.load_verifier(cfg.trusted_root)
            lines.append(f"ok    trusted root {cfg.trusted_root}")
        except BaconError as e:
            bad.append(e)
            lines.append(f"error trusted root {cfg.trusted_root}: {e.message}")
        lines.extend(f"      identity {ident.name}" for ident in cfg.identities)
    details = {"keys": rows, "identities": [ident.name for ident in cfg.identities],
               "trusted_root": str(cfg.trusted_root) if cfg.trusted_root else None}
    signers = f"{len(rows)} key(s)" + (f" and {len(cfg.identities)} keyless identit(ies)" if cfg.identities else "")
    if bad:
        return Item("keys", "trusted keys", FAIL,
                    f"{len(bad)} of the trust settings ({signers}) cannot be loaded: admissions that need them fail",
                    bad[0].hint or "fix or remove the key in [trust] keys", "signature", lines=tuple(lines),
                    details=details)
    return Item("keys", "trusted keys", OK, f"{signers} loaded", requirement="signature", lines=tuple(lines),
                details=details)


def probe_scopes(cfg: bconfig.Config) -> Item:
    """Which trusted signers are scoped (docs/scopes.md); a warning for each that vouches for anything."""
    from shim.trust import signers

    lines = [f"{'any  ' if k.scope.unscoped else 'scope'} {k.name}: {k.scope.describe()}" for k in cfg.key_entries]
    lines += [f"{'any  ' if i.scope.unscoped else 'scope'} {i.signer_name}: {i.scope.describe()}"
              for i in cfg.identities]
    lines += [f"rule  {r.describe()}" for r in cfg.requirements]
    unscoped = signers.unscoped_signers(cfg)
    details = {"unscoped": unscoped, "requirements": [r.describe() for r in cfg.requirements]}
    if unscoped:
        return Item("scopes", "signer scopes", WARN,
                    f"{len(unscoped)} trusted signer(s) unscoped: each may vouch for any repository at any level "
                    f"({', '.join(unscoped)})",
                    "give each [trust] keys/identities entry repositories and max_level (docs/scopes.md)",
                    lines=tuple(lines), details=details)
    if not cfg.key_entries and not cfg.identities:
        return Item("scopes", "signer scopes", INFO, "no trusted signers", details=details)
    return Item("scopes", "signer scopes", OK, "every trusted signer is scoped", lines=tuple(lines), details=details)


def probe_signing(cfg: bconfig.Config) -> Item:
    """What `nerdctl push` and `bacon sign` sign with, and whether they ask for its password."""
    details = {"key": str(cfg.signing_key) if cfg.signing_key else None, "unattended": cfg.signing_unattended}
    if cfg.signing_key is None:
        return Item("signing", "signing", INFO, "no [signing] key: nerdctl push is refused", details=details)
    if cfg.signing_unattended:
        return Item("signing", "signing", WARN,
                    f"[signing] unattended = true: anyone allowed to run the wrapper can sign with "
                    f"{cfg.signing_key} if it has no password",
                    "remove unattended = true and give the key a password (cosign generate-key-pair), so that "
                    "signing needs it each time", details=details)
    return Item("signing", "signing", OK, f"{cfg.signing_key}, with its password asked at each push or sign "
                                          "(a prompt on a terminal, or COSIGN_PASSWORD)", details=details)


def probe_secure_boot(efi: Path = EFI) -> Item:
    from shim.attest import secureboot

    if not efi.is_dir():
        return Item("secure_boot", "Secure Boot", INFO, "not an EFI boot (no /sys/firmware/efi)",
                    details={"state": "not-efi"})
    reading = secureboot.read(efi / "efivars")
    if reading.state == secureboot.ENABLED:
        return Item("secure_boot", "Secure Boot", OK, "enabled", details={"state": "enabled"})
    if reading.state == secureboot.DISABLED:
        return Item("secure_boot", "Secure Boot", WARN, "disabled",
                    "enable Secure Boot in the firmware setup, then re-record the PCR baseline "
                    "(sudo bacon baseline record)", details={"state": "disabled"})
    fix = {secureboot.NO_EFIVARFS: "mount -t efivarfs efivarfs /sys/firmware/efi/efivars",
           secureboot.NO_VARIABLE: "check the firmware setup for Secure Boot support"}.get(reading.why)
    summary = f"EFI boot, but {reading.why}" if reading.why == secureboot.NO_EFIVARFS else f"unknown: {reading.why}"
    return Item("secure_boot", "Secure Boot", WARN, summary, fix, details={"state": "unknown"})


def _unconfigured(key: str, label: str) -> Item:
    """A probe that needs the configuration (which TPM, which TD settings) when it cannot be used: nothing
    is asked of the host with settings the operator did not write."""
    return Item(key, label, FAIL, "unknown: the configuration cannot be read", "fix the configuration first", key)


def probe_tpm(cfg: bconfig.Config | None) -> Item:
    from shim.attest.tpm import operations as tpm_operations

    if cfg is None:
        return _unconfigured("tpm", "TPM")
    launch_pcr = cfg.measure.pcr if cfg.measure.tpm else None
    s = tpm_operations.status(cfg.tpm, Path(cfg.state_dir), launch_pcr=launch_pcr)
    s.pop("secure_boot", None)  # reported by its own probe
    where = f" ({s['tcti']})" if s.get("tcti") else ""
    lines = tuple(f"PCR {r['pcr']:<2} {r['state']:<11} current {(r['current'] or '-')[:16]}  "
                  f"baseline {(r['baseline'] or '-')[:16]}" for r in s["pcrs"]
                  if r["state"] != "match" and (r["current"] or r["baseline"]))  # the matching ones: in --json
    from shim.attest.tpm.settings import BOOT_STAGES

    cov = s.get("coverage") or {}
    lines += tuple(f"{word:<9} PCR {p:<2} {BOOT_STAGES[p]}" for word, key in
                   (("covered", "covered"), ("UNCOVERED", "uncovered"), ("unknown", "unknown"))
                   for p in cov.get(key, ()))
    if cov.get("uncovered"):
        lines += (f"this boot measured PCR {', '.join(map(str, cov['uncovered']))}, which [tpm] pcrs leaves out: "
                  "a change there is not seen; `sudo bacon baseline record` adds them when [tpm] pcrs is not set "
                  "(else list them there and re-record)",)
    lines += (f"attestation key: {s['ak_trust']}",)
    base = s["baseline"]
    if base.get("recorded"):
        lines += (f"endorsement key: {'pinned ' if base['ek_pinned'] else ''}{base['ek']}",)
    if not s["present"]:
        return Item("tpm", "TPM", FAIL, f"not available{where}: {s['error']}", s.get("hint") or
                    "enable the TPM in firmware, or set [tpm] tcti", "tpm", details=s)
    if base.get("error"):
        return Item("tpm", "TPM", FAIL, f"present{where}, but the baseline is unusable: {base['error']}",
                    "fix its owner/mode (root, 0600) or re-record it: sudo bacon baseline record", "tpm", lines=lines,
                    details=s)
    if not base["recorded"]:
        return Item("tpm", "TPM", FAIL, f"present{where}, no PCR baseline recorded ({base['path']})",
                    "on a known-good boot: sudo bacon baseline record", "tpm", lines=lines, details=s)
    if s["error"]:
        return Item("tpm", "TPM", FAIL, f"present{where}: {s['error']}", s.get("hint"), "tpm", lines=lines, details=s)
    if not s["matches_baseline"]:
        changed = [str(r["pcr"]) for r in s["pcrs"] if r["state"] != "match"]
        return Item("tpm", "TPM", FAIL, f"present{where}: PCR {', '.join(changed)} differ from the baseline "
                    f"recorded {base.get('recorded_at')}",
                    "`bacon baseline show --diff` explains; if this boot is trusted: sudo bacon baseline record",
                    "tpm", lines=lines, details=s)
    matched = (f"present{where}: PCRs {s['bank']}:{','.join(str(r['pcr']) for r in s['pcrs'])} "
               f"match the baseline recorded {base.get('recorded_at')}")
    if not base["ek_pinned"]:  # a baseline recorded before EKs were pinned (docs/tpm.md)
        from shim.attest.tpm.ek import UNPINNED, UNPINNED_HINT

        denies = base.get("unpinned_ek") == "deny"
        return Item("tpm", "TPM", FAIL if denies else WARN,
                    f"{matched}, but {UNPINNED}" + (" ([tpm] unpinned_ek = \"deny\": admissions are denied)"
                                                     if denies else ""),
                    "on a known-good boot: sudo bacon baseline record" if denies else UNPINNED_HINT, "tpm",
                    lines=lines, details=s)
    return Item("tpm", "TPM", OK, matched, requirement="tpm", lines=lines, details=s)


def probe_tdx(cfg: bconfig.Config | None, now: int | None = None) -> Item:
    from shim.attest.tdx import collateral
    from shim.attest.tdx import operations as tdx_operations

    if cfg is None:
        return _unconfigured("tdx", "TDX")
    s = tdx_operations.status(cfg.tdx)
    if s["provider"] != "tdx_guest":
        from shim.attest.tdx.configfs import HINT_NOT_GUEST

        root = s.get("configfs_root")
        if s["provider"]:
            what = f"the configfs-tsm provider is {s['provider']!r}, not tdx_guest"
        elif root and not os.path.isdir(root):
            what = f"no configfs-tsm report directory {root}"
        else:
            what = s["error"] or "no quote provider"
        return Item("tdx", "TDX", FAIL, f"not a TDX guest ({what})", HINT_NOT_GUEST, "tdx", details=s)
    lines = []
    mismatched = []
    for name, m in (s.get("measurements") or {}).items():
        mark = {True: "= reference", False: "≠ reference", None: "(no reference)"}[m["match"]]
        lines.append(f"{name:<6} {m['current'][:32]}…  {mark}")
        if m["match"] is False:
            mismatched.append(name)
    try:
        parsed = cfg.tdx
        window = collateral.validity_window(collateral.load(parsed.collateral))
        collateral.require_current(window, int(time.time()) if now is None else now)
        s["collateral_valid_until"] = collateral.iso(window.end)
        lines.append(f"collateral {parsed.collateral} valid until {collateral.iso(window.end)}")
    except BaconError as e:
        return Item("tdx", "TDX", FAIL, f"TDX guest, but its collateral cannot be used: {e.message}",
                    e.hint or collateral.HINT_REFRESH, "tdx", lines=tuple(lines), details=s)
    if s.get("not_compared"):
        lines.append(f"not compared: {', '.join(s['not_compared'])} (no reference value)"
                     + (f"; [tdx] require_reference leaves out {', '.join(s['opted_out'])}" if s.get("opted_out")
                        else ""))
    if s.get("missing_reference"):
        return Item("tdx", "TDX", FAIL, f"TDX guest, but [tdx.reference] lacks {', '.join(s['missing_reference'])}: "
                    "every TDX admission is refused (78)", "copy the values from `bacon tdx verify` on a known-good TD "
                    "into [tdx.reference] (or narrow [tdx] require_reference, knowingly)", "tdx", lines=tuple(lines),
                    details=s)
    if mismatched:
        return Item("tdx", "TDX", FAIL, f"TDX guest: {', '.join(mismatched)} differ from [tdx.reference]",
                    "check the TD's firmware and boot chain; update [tdx.reference] if the change is intended",
                    "tdx", lines=tuple(lines), details=s)
    src = f", measurements from {s['source']}" if s.get("source") else ""
    return Item("tdx", "TDX", OK, f"TDX guest (provider tdx_guest{src})", requirement="tdx", lines=tuple(lines),
                details=s)


def probe_containerd(address: str | None, namespace: str | None, timeout: float) -> Item:
    from shim.images.containerd import Client
    from shim.wrapper.nerdctl_env import resolve

    target = resolve(address, namespace)
    with Client(target, timeout=timeout) as c:
        version, revision = c.version()
    return Item("containerd", "containerd", OK, f"{version} at {target.address} (namespace {target.namespace})",
                requirement=ALWAYS, details={"address": target.address, "namespace": target.namespace,
                                              "version": version, "revision": revision})


def probe_nerdctl(cfg: bconfig.Config | None) -> Item:
    from shim.operator import enable as en

    path = cfg.nerdctl if cfg else Path("/usr/local/libexec/bacon/nerdctl")
    label = "real nerdctl"
    fix = f"install the real nerdctl at {path} (or `sudo bacon enable` moves it there), or set `nerdctl =`"
    try:
        st = os.stat(path)
    except OSError as e:
        return Item("nerdctl", label, FAIL, f"{path}: {e.strerror}", fix, ALWAYS)
    if en.is_wrapper(path):
        return Item("nerdctl", label, FAIL, f"{path} is the BACON wrapper itself, not the real nerdctl",
                    "set `nerdctl =` in the configuration to the real binary", ALWAYS)
    from shim.wrapper.exec import check_real_nerdctl

    try:
        check_real_nerdctl(path)  # what the wrapper and the service check before running it
    except ConfigError as e:
        return Item("nerdctl", label, FAIL, f"{e.message}: it runs as root, so whoever can change it bypasses "
                    "every check; the wrapper refuses it (78)", e.hint or fix, ALWAYS)
    return Item("nerdctl", label, OK, f"{path} (executable, root-owned)", requirement=ALWAYS,
                details={"path": str(path), "size": st.st_size})


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def probe_state(cfg: bconfig.Config) -> Item:
    """The state directory (level, baseline, admission records) and the audit log: the gate fails closed
    when it cannot write its audit line."""
    label = "state, audit"
    problems: list[tuple[str, str]] = []
    state = Path(cfg.state_dir)
    from shim.common import trustedfile

    try:
        trustedfile.check_directory(state, "the state directory")  # as the gate checks it
    except ConfigError as e:
        problems.append((e.message, e.hint or f"chown root:root {state} && chmod 0755 {state}"))
    log = Path(cfg.audit_log)
    if os.path.islink(log):
        problems.append((f"audit log {log} is a symlink (refused)", f"replace {log} by a regular file"))
    elif os.geteuid() == 0:
        where = log if log.exists() else _nearest_existing(log.parent)
        if not os.access(where, os.W_OK):
            problems.append((f"audit log {log} cannot be written ({where} is not writable): every admission "
                             "is refused", f"make {where} writable by root (read-only file system? full?)"))
    if problems:
        return Item("state", label, FAIL, "; ".join(p for p, _ in problems), problems[0][1], ALWAYS)
    return Item("state", label, OK, f"{state}; audit log {log}", requirement=ALWAYS,
                details={"state_dir": str(state), "audit_log": str(log)})


def probe_wrapper() -> Item:
    import shutil

    from shim.operator import enable as en

    first = shutil.which("nerdctl")
    if first is None:
        return Item("wrapper", "wrapper", WARN, "no nerdctl on PATH", f"sudo bacon enable --path {en.DEFAULT_TARGET}")
    if en.is_wrapper(first):
        return Item("wrapper", "wrapper", OK, f"nerdctl on PATH ({first}) is the BACON wrapper",
                    details={"path": first})
    return Item("wrapper", "wrapper", WARN, f"nerdctl on PATH ({first}) is not the BACON wrapper: nothing is checked",
                f"sudo bacon enable --path {first}", details={"path": first})


def probe_service(cfg: bconfig.Config | None) -> Item:
    """Whether the warm decision service answers where the configuration says (a connection, no request)."""
    from shim.service import wire

    label = "decision service"
    if cfg is None:
        return Item("service", label, INFO, "unknown: the configuration cannot be read")
    path = cfg.service_socket
    if path is None:
        return Item("service", label, INFO, "not configured: each admission loads the gate in the wrapper's "
                    "process (about 5x slower, the same decision)",
                    '[service] socket = "/run/bacon/decide.sock" in the configuration, and run bacon serve')
    try:
        uid = wire.listener_uid(path, timeout=2.0)
    except OSError as e:
        return Item("service", label, WARN, f"not running at {path} ({e.strerror or e}): admissions are decided "
                    "in the wrapper's process (slower, the same decision)",
                    "sudo systemctl start bacon (Debian package), or run sudo bacon serve", details={"socket": path})
    if uid != os.geteuid():
        return Item("service", label, FAIL, f"uid {uid} listens at {path}: the wrapper refuses its answers, every "
                    "served admission fails (exit 78)", f"stop whatever listens on {path}; only root may serve",
                    ALWAYS, details={"socket": path, "uid": uid})
    return Item("service", label, OK, f"listening at {path}", details={"socket": path, "uid": uid})


def probe_runtime(cfg: bconfig.Config | None, address: str | None, namespace: str | None) -> Item:
    """Whether the containerd the runtime gate serves runs it (:mod:`shim.operator.runtime_probe`)."""
    from shim.operator import runtime_probe
    from shim.wrapper.nerdctl_env import resolve

    label = "runtime gate"
    if cfg is None:
        return Item("runtime", label, INFO, "unknown: the configuration cannot be read")
    socket_path = cfg.runtime.containerd or resolve(address, namespace).address
    try:
        seen = runtime_probe.look(socket_path, cfg.runtime.runc)
    except OSError as e:
        return Item("runtime", label, INFO, f"unknown: cannot see the containerd at {socket_path} "
                    f"({e.strerror or e}); run bacon status as root", details={"containerd": socket_path})
    state, summary, fix = runtime_probe.judge(seen)
    return Item("runtime", label, state, summary, fix, details=seen.details())


def collect(config_path: Path, *, address: str | None = None, namespace: str | None = None,
            timeout: float = DEFAULT_TIMEOUT, efi: Path = EFI) -> Report:
    """Probe the host and build the report. Never raises for what it finds; bounded by ``timeout`` (the
    configuration is read first, in its own bounded probe, since every other probe reads it)."""
    start = time.monotonic()
    loaded: dict[str, bconfig.Config] = {}

    def config_probe() -> Item:
        cfg, item = probe_config(config_path)
        if cfg is not None:
            loaded["cfg"] = cfg
        return item

    items = run_probes([ProbeSpec("config", "configuration", ALWAYS, config_probe)], timeout)
    cfg = loaded.get("cfg") if items[0].state == OK else None
    level = source = None
    if cfg is not None:
        level_cfg = cfg
        found: dict[str, str | None] = {}

        def level_probe() -> Item:
            found["level"], found["source"], item = probe_level(level_cfg)
            return item

        items += run_probes([ProbeSpec("level", "system level", ALWAYS, level_probe)],
                            max(0.5, timeout - (time.monotonic() - start)), timeout)
        level, source = found.get("level"), found.get("source")

    def keys_probe() -> Item:
        if cfg is None:
            return Item("keys", "trusted keys", FAIL, "unknown: the configuration cannot be read",
                        "fix the configuration first", "signature")
        return probe_keys(cfg)

    specs = [
        ProbeSpec("keys", "trusted keys", "signature", keys_probe),
        ProbeSpec("secure_boot", "Secure Boot", None, lambda: probe_secure_boot(efi)),
        ProbeSpec("tpm", "TPM", "tpm", lambda: probe_tpm(cfg)),
        ProbeSpec("tdx", "TDX", "tdx", lambda: probe_tdx(cfg)),
        ProbeSpec("containerd", "containerd", ALWAYS, lambda: probe_containerd(address, namespace, timeout)),
        ProbeSpec("nerdctl", "real nerdctl", ALWAYS, lambda: probe_nerdctl(cfg)),
    ]
    if cfg is not None:
        state_cfg = cfg
        specs.append(ProbeSpec("state", "state, audit", ALWAYS, lambda: probe_state(state_cfg)))
        specs.insert(1, ProbeSpec("scopes", "signer scopes", None, lambda: probe_scopes(state_cfg)))
        specs.insert(2, ProbeSpec("signing", "signing", None, lambda: probe_signing(state_cfg)))
    specs.append(ProbeSpec("wrapper", "wrapper", None, probe_wrapper))
    specs.append(ProbeSpec("service", "decision service", None, lambda: probe_service(cfg)))
    specs.append(ProbeSpec("runtime", "runtime gate", None, lambda: probe_runtime(cfg, address, namespace)))
    items.extend(run_probes(specs, max(0.5, timeout - (time.monotonic() - start)), timeout))
    return build(config_path, cfg, level, source, items)
