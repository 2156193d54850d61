"""The ``[tdx]`` table of the configuration: parsed once, refused when ill-typed or unknown.

```toml
[tdx]
configfs_root = "/sys/kernel/config/tsm/report"      # configfs-tsm report directory
accept_tcb_status = ["UpToDate"]                     # others must be listed explicitly
collateral = "/var/lib/bacon/tdx/collateral.json"    # local cache, refreshed by `bacon tdx collateral refresh`
pccs_url = "https://pccs.example:8081"               # Intel PCS (default) or a PCCS
root_ca = "/etc/bacon/tdx/test-root.der"             # ONLY for tests: default is Intel SGX Root CA
ccel = "/sys/firmware/acpi/tables/data/CCEL"         # event log used to explain an RTMR mismatch
reference_ccel = "/etc/bacon/tdx/reference-ccel.bin" # optional: a known-good log to diff against
busy_retries = 3                                     # bounded retries while inblob says EBUSY
busy_wait = 1.0                                      # seconds between them
timeout = 30                                         # seconds any command waits for a TD quote
require_reference = ["mrtd", "rtmr0", "rtmr1", "rtmr2"]  # the default: an admission needs these four
[tdx.reference]                                      # hex, 48 bytes each; only the listed ones are compared
mrtd = "…"
rtmr0 = "…"   # rtmr1, rtmr2, rtmr3, mrconfigid, mrowner, mrownerconfig
[tdx.trust_authority]                                # optional remote appraisal, off by default
enabled = false
url = "https://api.trustauthority.example"
api_key_file = "/etc/bacon/tdx/ita.key"              # owned by root, mode 0600
root_ca = "/etc/bacon/tdx/ita-root.pem"              # ITA's token signing root, pinned (no default)
policy_ids = []                                      # ITA policies that must match
# jwks_url (default {url}/certs), token_signing_alg ("PS384" or "RS256"), timeout (seconds)
```

What a TD's measurements cover (docs/attestation.md): MRTD the initial TD memory (the virtual firmware),
RTMR0 the firmware's configuration, RTMR1 the OS loader, kernel and initrd, RTMR2 the kernel command line,
RTMR3 runtime measurements. An admission requires reference values for MRTD and RTMR0-2 by default
(:data:`REQUIRED_REFERENCE`); ``require_reference`` may narrow that, explicitly (``mrtd`` always stays),
and every place that shows a TDX result says which measurements were not compared.

The Intel SGX Root CA ships inside the package and is checked against its published SHA-256 fingerprint
each time it is loaded; a ``root_ca`` file is read only when the configuration names one (tests), and
is then reported as a test root everywhere the result is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from shim.common.errors import ConfigError
from shim.common.tables import known_table

WHERE = "[tdx]"
INTEL_ROOT_SHA256 = "44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3"
INTEL_ROOT_NAME = "Intel SGX Root CA"
DEFAULT_CONFIGFS_ROOT = Path("/sys/kernel/config/tsm/report")
DEFAULT_COLLATERAL = Path("/var/lib/bacon/tdx/collateral.json")
DEFAULT_CCEL = Path("/sys/firmware/acpi/tables/data/CCEL")
DEFAULT_PCS_URL = "https://api.trustedservices.intel.com"
TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
)  # "Revoked" is never acceptable
REFERENCE_FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner", "mrownerconfig")
REQUIRED_REFERENCE = ("mrtd", "rtmr0", "rtmr1", "rtmr2")  # firmware, its configuration, kernel+initrd, cmdline
BOOT_MEASUREMENTS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
MEASUREMENT_SIZE = 48
KNOWN_KEYS = frozenset({
    "configfs_root", "accept_tcb_status", "collateral", "pccs_url", "root_ca", "ccel", "reference_ccel",
    "busy_retries", "busy_wait", "max_quote_size", "reference", "trust_authority", "require_reference", "timeout",
})  # fmt: skip
TA_KEYS = frozenset({"enabled", "url", "api_key_file", "root_ca", "policy_ids", "timeout", "jwks_url",
                     "token_signing_alg"})
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class RootCa:
    """The trust anchor for quotes and collateral: DER, a display name, and whether it is a test root."""

    der: bytes
    name: str
    is_test: bool
    sha256: str


@dataclass(frozen=True)
class TrustAuthoritySettings:
    enabled: bool = False
    url: str = ""
    api_key_file: Path | None = None
    root_ca: Path | None = None
    policy_ids: tuple[str, ...] = ()
    timeout: float = 10.0
    jwks_url: str = ""
    token_signing_alg: str = "PS384"  # noqa: S105 - an algorithm name, not a secret


@dataclass(frozen=True)
class TdxSettings:
    root_ca_path: Path | None = None  # [tdx] root_ca: a test root; None: the packaged Intel SGX Root CA
    configfs_root: Path = DEFAULT_CONFIGFS_ROOT
    accept_tcb_status: frozenset[str] = frozenset({"UpToDate"})
    collateral: Path = DEFAULT_COLLATERAL
    pccs_url: str = DEFAULT_PCS_URL
    ccel: Path = DEFAULT_CCEL
    reference_ccel: Path | None = None
    busy_retries: int = 3
    busy_wait: float = 1.0
    max_quote_size: int = 64 * 1024
    reference: Mapping[str, bytes] = field(default_factory=dict)
    trust_authority: TrustAuthoritySettings = field(default_factory=TrustAuthoritySettings)
    require_reference: tuple[str, ...] = REQUIRED_REFERENCE
    timeout: float = 30.0
    anchor: RootCa | None = field(default=None, repr=False)  # the root when already read (:func:`parse`) or given

    @cached_property
    def root_ca(self) -> RootCa:
        """The trust anchor: :attr:`anchor`, else read on first use (the file the table names is read as
        [trust] keys are: when used). Raises :class:`ConfigError` (missing, unsafe or altered)."""
        if self.anchor is not None:
            return self.anchor
        return _load_test_root(self.root_ca_path) if self.root_ca_path else intel_root_ca()

    @property
    def missing_reference(self) -> tuple[str, ...]:
        """Required reference values that ``[tdx.reference]`` lacks (an admission is then refused, 78)."""
        return tuple(f for f in self.require_reference if f not in self.reference)

    @property
    def not_compared(self) -> tuple[str, ...]:
        """The TD's boot measurements that are not compared with anything (no reference value)."""
        return tuple(f for f in BOOT_MEASUREMENTS if f not in self.reference)

    @property
    def opted_out(self) -> tuple[str, ...]:
        """Measurements required by default that ``require_reference`` explicitly leaves out."""
        return tuple(f for f in REQUIRED_REFERENCE if f not in self.require_reference)


def intel_root_ca() -> RootCa:
    """The Intel SGX Root CA shipped in this package, refused unless its fingerprint is the published one."""
    import hashlib
    from importlib import resources  # here, not at the top: the configuration's load does without it

    der = resources.files("shim.attest.tdx").joinpath("intel_sgx_root_ca.der").read_bytes()
    fp = hashlib.sha256(der).hexdigest().upper()
    if fp != INTEL_ROOT_SHA256:
        raise ConfigError(
            f"the packaged Intel SGX Root CA has SHA-256 {fp}, expected {INTEL_ROOT_SHA256}",
            hint="reinstall bacon: shim/attest/tdx/intel_sgx_root_ca.der was altered",
        )
    return RootCa(der=der, name=INTEL_ROOT_NAME, is_test=False, sha256=fp)


def _load_test_root(path: Path) -> RootCa:
    import hashlib

    from shim.common import trustedfile

    der = trustedfile.read(path, "[tdx] root_ca")
    fp = hashlib.sha256(der).hexdigest().upper()
    if fp == INTEL_ROOT_SHA256:
        return RootCa(der=der, name=INTEL_ROOT_NAME, is_test=False, sha256=fp)
    return RootCa(der=der, name=f"TEST root {path} (sha256 {fp[:16]}…)", is_test=True, sha256=fp)


def _path(table: Mapping[str, Any], key: str, default: Path | None, where: str = WHERE) -> Path | None:
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value or not Path(value).is_absolute():
        raise ConfigError(f"{where} '{key}' must be an absolute path, got {value!r}")
    return Path(value)


def _url(value: object, key: str, where: str = WHERE) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ConfigError(f"{where} '{key}' must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _secure_url(value: object, key: str, why: str, where: str = WHERE) -> str:
    """An https URL (plain http only to this host's loopback, for a local stand-in): for anything that carries
    a credential or decides trust, so that nobody on the network path can read or answer it."""
    url = _url(value, key, where)
    if url.startswith("http://"):
        from urllib.parse import urlsplit  # here: the configuration's load does without it

    if url.startswith("http://") and urlsplit(url).hostname not in LOOPBACK_HOSTS:
        raise ConfigError(f"{where} '{key}' must be https ({why}), got {url}",
                          hint=f"use https://{url.removeprefix('http://')}")
    return url


def _number(table: Mapping[str, Any], key: str, default: float, lo: float, hi: float, where: str = WHERE) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{where} '{key}' must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def parse_hex_measurement(value: object, name: str) -> bytes:
    """A 48-byte measurement from hex (case-insensitive, optional 0x). Raises :class:`ConfigError`."""
    if not isinstance(value, str):
        raise ConfigError(f"{WHERE} reference {name} must be a hex string, got {value!r}")
    text = value.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError as e:
        raise ConfigError(f"{WHERE} reference {name} is not hex: {value!r}") from e
    if len(raw) != MEASUREMENT_SIZE:
        raise ConfigError(
            f"{WHERE} reference {name} must be {MEASUREMENT_SIZE} bytes ({2 * MEASUREMENT_SIZE} hex digits), "
            f"got {len(raw)}",
            hint="copy the value from `bacon tdx verify --quote FILE --collateral FILE`",
        )
    return raw


def _trust_authority(value: object) -> TrustAuthoritySettings:
    where = f"{WHERE}.trust_authority"
    if value is None:
        return TrustAuthoritySettings()
    value = known_table(value, where, TA_KEYS)
    enabled = value.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where} 'enabled' must be true or false")
    if not enabled:
        return TrustAuthoritySettings()
    if "url" not in value or "api_key_file" not in value or "root_ca" not in value:
        raise ConfigError(f"{where}: 'url', 'api_key_file' and 'root_ca' are required when enabled",
                          hint="root_ca is the PEM of Intel Trust Authority's root CA, which BACON pins")
    policy_ids = value.get("policy_ids", [])
    if not isinstance(policy_ids, list) or not all(isinstance(p, str) for p in policy_ids):
        raise ConfigError(f"{where} 'policy_ids' must be a list of strings")
    alg = value.get("token_signing_alg", "PS384")
    if alg not in ("PS384", "RS256"):
        raise ConfigError(f"{where} 'token_signing_alg' must be PS384 or RS256, got {alg!r}")
    url = _secure_url(value["url"], "url", "the API key is sent to it", where)
    return TrustAuthoritySettings(
        enabled=True,
        url=url,
        api_key_file=_path(value, "api_key_file", None, where),
        root_ca=_path(value, "root_ca", None, where),
        policy_ids=tuple(policy_ids),
        timeout=_number(value, "timeout", 10.0, 0.1, 120.0, where),
        jwks_url=(_secure_url(value["jwks_url"], "jwks_url", "its keys decide which tokens are trusted", where)
                  if "jwks_url" in value else url + "/certs"),
        token_signing_alg=str(alg),
    )


def parse(section: Mapping[str, Any]) -> TdxSettings:
    """:func:`parse_table`, and the root CA read now (the packaged Intel one, or a configured test root).
    Raises :class:`ConfigError`."""
    settings = parse_table(section)
    return replace(settings, anchor=settings.root_ca)


def parse_table(section: Mapping[str, Any]) -> TdxSettings:
    """Parse the ``[tdx]`` table (``{}`` when absent), reading no file (the root CA is read on first use:
    :attr:`TdxSettings.root_ca`). Raises :class:`ConfigError`."""
    known_table(section, WHERE, KNOWN_KEYS)
    statuses = section.get("accept_tcb_status", ["UpToDate"])
    if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) for s in statuses):
        raise ConfigError(f"{WHERE} 'accept_tcb_status' must be a non-empty list of strings")
    bad = sorted(set(statuses) - set(TCB_STATUSES))
    if bad:
        raise ConfigError(
            f"{WHERE} 'accept_tcb_status' names {', '.join(bad)}, which cannot be accepted",
            hint=f"choose from {', '.join(TCB_STATUSES)} (Revoked is never accepted)",
        )
    ref_table = known_table(section.get("reference", {}), f"{WHERE}.reference", REFERENCE_FIELDS,
                            hint=f"known: {', '.join(REFERENCE_FIELDS)}")
    reference = {k: parse_hex_measurement(ref_table[k], k) for k in REFERENCE_FIELDS if k in ref_table}
    required = section.get("require_reference", list(REQUIRED_REFERENCE))
    if (not isinstance(required, list) or not all(isinstance(f, str) and f in REFERENCE_FIELDS for f in required)
            or "mrtd" not in required):
        raise ConfigError(f"{WHERE} 'require_reference' must list reference fields and include mrtd, got {required!r}",
                          hint=f"the default is {list(REQUIRED_REFERENCE)}; fields: {', '.join(REFERENCE_FIELDS)}")
    root_path = _path(section, "root_ca", None)
    retries = _number(section, "busy_retries", 3, 0, 100)
    if retries != int(retries):
        raise ConfigError(f"{WHERE} 'busy_retries' must be an integer")
    pccs = section.get("pccs_url", DEFAULT_PCS_URL)
    return TdxSettings(
        root_ca_path=root_path,
        configfs_root=_path(section, "configfs_root", DEFAULT_CONFIGFS_ROOT) or DEFAULT_CONFIGFS_ROOT,
        accept_tcb_status=frozenset(statuses),
        collateral=_path(section, "collateral", DEFAULT_COLLATERAL) or DEFAULT_COLLATERAL,
        pccs_url=_secure_url(pccs, "pccs_url", "its collateral decides which TCB levels are current"),
        ccel=_path(section, "ccel", DEFAULT_CCEL) or DEFAULT_CCEL,
        reference_ccel=_path(section, "reference_ccel", None),
        busy_retries=int(retries),
        busy_wait=_number(section, "busy_wait", 1.0, 0.0, 60.0),
        max_quote_size=int(_number(section, "max_quote_size", 64 * 1024, 1024, 1 << 20)),
        reference=reference,
        trust_authority=_trust_authority(section.get("trust_authority")),
        require_reference=tuple(dict.fromkeys(required)),
        timeout=_number(section, "timeout", 30.0, 0.1, 600.0),
    )
