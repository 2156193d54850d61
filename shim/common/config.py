"""BACON's configuration: what it says (where it is and whether it may be trusted: :mod:`shim.common.configfile`).

Every table is parsed here, at load, into frozen settings (a bad value is a :class:`ConfigError`, exit 78,
naming the key, before anything is asked of a TPM, a TD or containerd). Each area owns the parser of its own
table, and reads its settings from :class:`Config`: ``[tpm]`` :mod:`shim.attest.tpm.settings` (``cfg.tpm``),
``[tdx]`` :mod:`shim.attest.tdx.settings` (``cfg.tdx``), ``[measure]`` :mod:`shim.attest.measure_settings`
(``cfg.measure``), ``[runtime]`` :mod:`shim.runtime.settings` (``cfg.runtime``), ``[service]``
:mod:`shim.service.settings` (``cfg.service``), ``[policy]`` :mod:`shim.operator.policy_settings`
(``cfg.policy``), the profile keys of ``[levels.*]`` and ``[global_flags]``
:mod:`shim.admission.profiles.settings` (``cfg.profiles``).

Standard library only, and no file read beyond the configuration itself (the files it names are read where
they are used). A forwarded command needs only :mod:`shim.common.configfile`; commands that are decided
parse the whole table here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shim.admission.profiles.settings import ProfileConfig
from shim.admission.profiles.settings import parse as parse_profiles
from shim.attest import measure_settings
from shim.attest.measure_settings import MeasureSettings
from shim.attest.tdx import settings as tdx_settings
from shim.attest.tdx.settings import TdxSettings
from shim.attest.tpm import settings as tpm_settings
from shim.attest.tpm.settings import TpmSettings
from shim.common import configfile
from shim.common.configfile import read_trusted_file as read_trusted_file  # re-exported: callers use config's name
from shim.common.configfile import under_sudo as under_sudo
from shim.common.errors import ConfigError
from shim.common.tables import known_table
from shim.operator import policy_settings
from shim.operator.policy_settings import PolicySettings
from shim.runtime import settings as runtime_settings
from shim.service import settings as service_settings
from shim.service.settings import ServiceSettings
from shim.trust import scopes

T = TypeVar("T")
DEFAULT_PATH = Path(configfile.DEFAULT_PATH)
LEVELS: tuple[str, ...] = ("Low", "Mid", "High")  # ascending
KNOWN_CHECKS: frozenset[str] = frozenset({"signature", "tpm", "tdx"})
KEY_TYPES: frozenset[str] = frozenset({"ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa", "ed25519"})
DEFAULT_REQUIRE: Mapping[str, tuple[str, ...]] = {
    "High": ("signature", "tpm", "tdx"),
    "Mid": ("signature", "tpm"),
    "Low": ("signature",),
}
UNRECORDED_START_POLICIES = ("deny", "check-image")
TOP_KEYS = frozenset({
    "level", "nerdctl", "state_dir", "audit_log", "default_level", "unrecorded_start",
    "trust", "registry", "levels", "tpm", "tdx", "signing", "policy", "service", "measure", "global_flags",
    "runtime",
})  # fmt: skip
LEVEL_KEYS = frozenset({"require", "profile", "allow"})
REGISTRY_KEYS = frozenset({"insecure", "endpoints"})
IDENTITY_KEYS = frozenset({"issuer", "subject", "subject_regexp", "name", "repositories", "max_level"})
KEY_ENTRY_KEYS = frozenset({"path", "name", "repositories", "max_level"})
REQUIREMENT_KEYS = frozenset({"repositories", "signers"})
TRUST_KEYS = frozenset({"keys", "key_types", "identities", "trusted_root", "require"})
SIGNING_KEYS = frozenset({"key", "unattended"})
SCOPE_EXAMPLE = ('keys = [{ path = "/etc/bacon/keys/team.pub", name = "team", '
                 'repositories = ["registry.example/team/*"], max_level = "Low" }]')


@dataclass(frozen=True)
class TrustedIdentity:
    """A keyless signer to trust: the OIDC ``issuer`` (exact) and either the certificate's ``subject``
    (exact, one of its SANs: an email or URI) or ``subject_regexp`` (a Python regular expression that must
    match a whole SAN; cosign's ``--certificate-identity-regexp`` is unanchored, ours is anchored)."""

    issuer: str
    subject: str | None = None
    subject_regexp: str | None = None
    alias: str | None = None  # ``name =``: what [trust] require calls it
    scope: scopes.Scope = scopes.UNSCOPED

    @property
    def name(self) -> str:
        shown = self.subject if self.subject is not None else f"~{self.subject_regexp}"
        return f"{shown} (issuer {self.issuer})"

    @property
    def signer_name(self) -> str:
        """The name policy uses: ``name =`` if given, else :attr:`name`."""
        return self.alias or self.name


@dataclass(frozen=True)
class TrustedKey:
    """A ``[trust] keys`` entry: the public key file, the name policy uses (``name =``, else the path)
    and its scope (:mod:`shim.trust.scopes`)."""

    path: Path
    name: str
    scope: scopes.Scope = scopes.UNSCOPED


@dataclass(frozen=True)
class Config:
    """The parsed configuration. ``path`` is where it was read from."""

    path: Path
    level: str
    nerdctl: Path
    state_dir: Path = Path("/var/lib/bacon")
    audit_log: Path = Path("/var/log/bacon/audit.jsonl")
    default_level: str = "High"
    trusted_keys: tuple[Path, ...] = ()
    insecure_registries: frozenset[str] = frozenset()
    require: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_REQUIRE))
    unrecorded_start: str = "deny"
    signing_key: Path | None = None
    key_types: frozenset[str] = frozenset({"ecdsa-p256"})
    registry_endpoints: Mapping[str, str] = field(default_factory=dict)
    identities: tuple[TrustedIdentity, ...] = ()
    trusted_root: Path | None = None
    profiles: ProfileConfig = field(default_factory=ProfileConfig)  # [levels.*] profile/allow, [global_flags]
    key_entries: tuple[TrustedKey, ...] = ()  # [trust] keys with names and scopes (trusted_keys: their paths)
    requirements: tuple[scopes.Requirement, ...] = ()  # [trust] require
    signing_unattended: bool = False  # [signing] unattended: a key without a password may sign
    tpm: TpmSettings = field(default_factory=TpmSettings)  # [tpm]
    tdx: TdxSettings = field(default_factory=TdxSettings)  # [tdx]
    measure: MeasureSettings = field(default_factory=MeasureSettings)  # [measure]
    runtime: runtime_settings.Settings = field(default_factory=runtime_settings.Settings)  # [runtime]
    service: ServiceSettings = field(default_factory=ServiceSettings)  # [service]
    policy: PolicySettings = field(default_factory=PolicySettings)  # [policy]

    @property
    def service_socket(self) -> str | None:
        """``[service] socket``: where ``bacon serve`` listens (``None``: no service configured)."""
        return self.service.socket


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the configuration is read from (``BACON_CONFIG`` is honoured only outside sudo)."""
    return Path(configfile.config_path(environ))


def _str(table: Mapping[str, Any], key: str, default: str | None, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _abs_path(table: Mapping[str, Any], key: str, default: str | None, where: str) -> Path:
    p = Path(_str(table, key, default, where))
    if not p.is_absolute():
        raise ConfigError(f"{where}: '{key}' must be an absolute path, got {str(p)!r}")
    return p


def _str_list(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return list(value)


def _identities(trust: Mapping[str, Any], where: str) -> tuple[TrustedIdentity, ...]:
    value = trust.get("identities", [])
    example = '{ issuer = "https://accounts.example.com", subject = "ops@example.com" }'
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'identities' must be a list of tables", hint=f"identities = [{example}]")
    out = []
    for i, item in enumerate(value):
        at = f"{where} identities[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{at} must be a table", hint=f"identities = [{example}]")
        known_table(item, at, IDENTITY_KEYS, hint="an identity has issuer and one of subject, subject_regexp")
        issuer = item.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError(f"{at}: 'issuer' (the OIDC issuer URL, matched exactly) is required",
                              hint=f"identities = [{example}]")
        if ("subject" in item) == ("subject_regexp" in item):
            raise ConfigError(f"{at}: give exactly one of 'subject' and 'subject_regexp'")
        subject, pattern = item.get("subject"), item.get("subject_regexp")
        if "subject" in item and (not isinstance(subject, str) or not subject):
            raise ConfigError(f"{at}: 'subject' must be a non-empty string (an email or URI)")
        if "subject_regexp" in item:
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"{at}: 'subject_regexp' must be a non-empty string")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"{at}: 'subject_regexp' is not a valid regular expression: {e}") from e
        alias = _alias(item, at)
        out.append(TrustedIdentity(issuer=issuer, subject=subject, subject_regexp=pattern, alias=alias,
                                   scope=_scope(item, at)))
    return tuple(out)


def _alias(item: Mapping[str, Any], at: str) -> str | None:
    if "name" not in item:
        return None
    name = item["name"]
    if not isinstance(name, str) or not name or len(name) > 128 or not name.isprintable():
        raise ConfigError(f"{at}: 'name' must be a short printable string (what [trust] require calls this "
                          f"signer), got {name!r}")
    return name


def _patterns(value: object, at: str, key: str) -> tuple[scopes.Pattern, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{at}: '{key}' must be a non-empty list of repository patterns",
                          hint='e.g. repositories = ["registry.example/team/*"] (* within a path component, '
                               '** across them)')
    out = []
    for v in value:
        try:
            out.append(scopes.parse_pattern(v))
        except ValueError as e:
            raise ConfigError(f"{at}: '{key}': {e}",
                              hint='write REGISTRY/PATH globs such as "registry.example/team/*"') from e
    return tuple(out)


def _scope(item: Mapping[str, Any], at: str) -> scopes.Scope:
    """``repositories`` and ``max_level`` of a key or identity entry (both optional)."""
    repos = _patterns(item["repositories"], at, "repositories") if "repositories" in item else None
    max_level = parse_level(item["max_level"], f"{at} 'max_level'") if "max_level" in item else None
    return scopes.Scope(repositories=repos, max_level=max_level)


def _key_entries(trust: Mapping[str, Any], where: str) -> tuple[TrustedKey, ...]:
    value = trust.get("keys", [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'keys' must be a list of strings (key paths) or tables", hint=SCOPE_EXAMPLE)
    out = []
    for i, item in enumerate(value):
        at = f"{where} keys[{i}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise ConfigError(f"{at} must be a path or a table", hint=SCOPE_EXAMPLE)
        known_table(item, at, KEY_ENTRY_KEYS, hint="a key entry has path and optionally name, repositories, max_level")
        path = item.get("path")
        if not isinstance(path, str) or not path or not Path(path).is_absolute():
            raise ConfigError(f"{where}: [trust] keys must be absolute paths, got {path!r}", hint=SCOPE_EXAMPLE)
        out.append(TrustedKey(path=Path(path), name=_alias(item, at) or path, scope=_scope(item, at)))
    return tuple(out)


def _requirements(trust: Mapping[str, Any], where: str, names: Sequence[str]) -> tuple[scopes.Requirement, ...]:
    value = trust.get("require", [])
    example = 'require = [{ repositories = ["registry.example/prod/**"], signers = ["release"] }]'
    if not isinstance(value, list):
        raise ConfigError(f"{where}: 'require' must be a list of tables", hint=example)
    out = []
    for i, item in enumerate(value):
        at = f"{where} require[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{at} must be a table", hint=example)
        known_table(item, at, REQUIREMENT_KEYS, hint="a requirement has repositories and signers")
        if "repositories" not in item or "signers" not in item:
            raise ConfigError(f"{at}: needs both 'repositories' and 'signers'", hint=example)
        signers = item["signers"]
        if not isinstance(signers, list) or not signers or not all(isinstance(x, str) for x in signers):
            raise ConfigError(f"{at}: 'signers' must be a non-empty list of signer names", hint=example)
        missing = [x for x in signers if x not in names]
        if missing:
            raise ConfigError(f"{at}: 'signers' names no [trust] key or identity called {', '.join(missing)}",
                              hint="give the key or identity that name (name = \"release\") or use its path; "
                                   f"known: {', '.join(names) or 'none'}")
        out.append(scopes.Requirement(repositories=_patterns(item["repositories"], at, "repositories"),
                                      signers=tuple(signers)))
    return tuple(out)


def parse_level(value: object, where: str) -> str:
    if value not in LEVELS:
        raise ConfigError(f"{where}: level must be one of {', '.join(LEVELS)}, got {value!r}")
    assert isinstance(value, str)
    return value


def parse(data: Mapping[str, Any], path: Path) -> Config:
    """Build a :class:`Config` from parsed TOML, refusing unknown or ill-typed values."""
    where = str(path)
    known_table(data, where, TOP_KEYS)
    trust = known_table(data.get("trust", {}), f"{where}: [trust]", TRUST_KEYS)
    registry = known_table(data.get("registry", {}), f"{where}: [registry]", REGISTRY_KEYS)
    levels = data.get("levels", {})
    if not isinstance(levels, dict):
        raise ConfigError(f"{where}: [levels] must be a table")
    signing = known_table(data.get("signing", {}), f"{where}: [signing]", SIGNING_KEYS)
    require: dict[str, tuple[str, ...]] = dict(DEFAULT_REQUIRE)
    for lvl, table in levels.items():
        parse_level(lvl, f"{where} [levels]")
        known_table(table, f"{where}: [levels.{lvl}]", LEVEL_KEYS,
                    hint="a level has require, profile and an allow table")
        if "require" not in table:
            continue
        checks = _str_list(table, "require", f"{where} [levels.{lvl}]")
        bad = sorted(set(checks) - KNOWN_CHECKS)
        if bad:
            raise ConfigError(
                f"{where}: [levels.{lvl}] require names unknown check(s) {', '.join(bad)}",
                hint=f"known checks: {', '.join(sorted(KNOWN_CHECKS))}",
            )
        if "signature" not in checks:
            raise ConfigError(f"{where}: [levels.{lvl}] require must include 'signature'")
        require[lvl] = tuple(checks)
    unrecorded = data.get("unrecorded_start", "deny")
    if unrecorded not in UNRECORDED_START_POLICIES:
        raise ConfigError(f"{where}: unrecorded_start must be one of {', '.join(UNRECORDED_START_POLICIES)}")
    key_entries = _key_entries(trust, f"{where} [trust]")
    keys = tuple(k.path for k in key_entries)
    signing_key = _abs_path(signing, "key", None, f"{where} [signing]") if "key" in signing else None
    unattended = signing.get("unattended", False)
    if not isinstance(unattended, bool):
        raise ConfigError(f"{where}: [signing] unattended must be true or false, got {unattended!r}",
                          hint="leave it out (false) so that signing needs the key's password each time")
    key_types = frozenset(_str_list(trust, "key_types", f"{where} [trust]") or ["ecdsa-p256"])
    if key_types - KEY_TYPES:
        unknown_types = ", ".join(sorted(key_types - KEY_TYPES))
        raise ConfigError(f"{where}: [trust] key_types names unknown type(s) {unknown_types}",
                          hint=f"known: {', '.join(sorted(KEY_TYPES))}")
    identities = _identities(trust, f"{where} [trust]")
    names = [k.name for k in key_entries] + [i.signer_name for i in identities]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: [trust] signer name(s) used twice: {', '.join(dup)}",
                          hint="each key and identity needs its own name (and each key file is listed once)")
    requirements = _requirements(trust, f"{where} [trust]", names)
    trusted_root = _abs_path(trust, "trusted_root", None, f"{where} [trust]") if "trusted_root" in trust else None
    if identities and trusted_root is None:
        raise ConfigError(f"{where}: [trust] identities need a trusted_root (a Sigstore trusted_root.json)",
                          hint='set [trust] trusted_root = "/etc/bacon/trusted_root.json"')
    endpoints = registry.get("endpoints", {})
    if not isinstance(endpoints, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in endpoints.items()):
        raise ConfigError(f"{where}: [registry] endpoints must be a table of host = \"api-host[:port]\"")
    profiles = parse_profiles(levels, data.get("global_flags", {}), where)
    tpm = _attest_table(tpm_settings.parse, data.get("tpm", {}), where)
    return Config(
        path=path,
        level=parse_level(data.get("level", "Low"), where),
        nerdctl=_abs_path(data, "nerdctl", configfile.DEFAULT_NERDCTL, where),
        state_dir=_abs_path(data, "state_dir", "/var/lib/bacon", where),
        audit_log=_abs_path(data, "audit_log", "/var/log/bacon/audit.jsonl", where),
        default_level=parse_level(data.get("default_level", "High"), f"{where} default_level"),
        trusted_keys=keys,
        insecure_registries=frozenset(_str_list(registry, "insecure", f"{where} [registry]")),
        require=require,
        unrecorded_start=str(unrecorded),
        signing_key=signing_key,
        key_types=key_types,
        registry_endpoints=dict(endpoints),
        identities=identities,
        trusted_root=trusted_root,
        profiles=profiles,
        key_entries=key_entries,
        requirements=requirements,
        signing_unattended=unattended,
        tpm=tpm,
        tdx=_attest_table(tdx_settings.parse_table, data.get("tdx", {}), where),
        measure=_attest_table(lambda t: measure_settings.parse(t, tpm.pcrs), data.get("measure", {}), where),
        runtime=runtime_settings.settings(data.get("runtime", {}), where),
        service=service_settings.parse(data, where),
        policy=policy_settings.parse(data.get("policy", {}), where),
    )


def _attest_table(parse_table: Callable[[Any], T], section: Any, where: str) -> T:
    """A table parsed by its area's parser (whose messages name the table and the key, ``[tpm] 'timeout' …``),
    its errors prefixed with the configuration's path."""
    try:
        return parse_table(section)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e.message}", hint=e.hint) from e


def load(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Find, check and parse the configuration. Raises :class:`ConfigError`."""
    chosen = path or config_path(environ)
    return parse(configfile.read_table(chosen), chosen)


def load_readable(path: Path | None = None) -> Config | None:
    """The configuration, or ``None`` when there is none this process can read and trust (for the tools that
    work without one, such as ``bacon tdx verify``); one that is read but wrong is a :class:`ConfigError`."""
    chosen = path or config_path()
    try:
        table = configfile.read_table(chosen)
    except ConfigError:
        return None
    return parse(table, chosen)


def require_for(config: Config, level: str) -> Sequence[str]:
    """The checks a container of ``level`` needs on this host."""
    return config.require.get(level, DEFAULT_REQUIRE[level])
