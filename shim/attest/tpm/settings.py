"""The ``[tpm]`` table of the configuration: parsed once, refused when ill-typed or unknown.

```toml
[tpm]
tcti = "device:/dev/tpmrm0"     # or "device" (= /dev/tpmrm0), "tabrmd", "tabrmd:bus_name=…",
                                # "swtpm:host=127.0.0.1,port=2321", "mssim:host=…,port=…"
pcrs = [0, 1, 2, 3, 4, 5, 7]    # the PCRs recorded, quoted and compared; unset: 0-5, 7 and the later boot
                                # stages (8, 9, 11, 12, 14) the event log shows (default_selection)
bank = "sha256"                 # sha256 | sha384 | sha512 (SHA-1 is refused)
ak = "ecc256"                   # the attestation key: ecc256 (ECDSA P-256) | rsa2048 (RSASSA)
eventlog = "/sys/kernel/security/tpm0/binary_bios_measurements"   # "" = do not use an event log
timeout = 30                    # seconds an admission waits for a quote before it is denied
unpinned_ek = "warn"            # a baseline recorded before the EK was pinned: "warn" (admit, report it) | "deny"
```

Standard library only: the admission path parses this before it decides whether it needs the TPM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.common.errors import ConfigError, UsageError
from shim.common.tables import known_table

WHERE = "[tpm]"
DEFAULT_TCTI = "device:/dev/tpmrm0"
DEFAULT_PCRS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 7)
DEFAULT_BANK = "sha256"
DEFAULT_EVENTLOG = Path("/sys/kernel/security/tpm0/binary_bios_measurements")
PCR_COUNT = 24
BANKS: Mapping[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}  # name -> digest size
AK_KINDS = ("ecc256", "rsa2048")
TCTI_NAMES = ("device", "tabrmd", "swtpm", "mssim")
KNOWN_KEYS = frozenset({"tcti", "pcrs", "bank", "ak", "eventlog", "timeout", "unpinned_ek"})
UNPINNED_EK = ("warn", "deny")  # docs/tpm.md, "The endorsement key pin", says why "warn" is the default
DEFAULT_TIMEOUT = 30.0  # seconds an admission waits for the TPM's quote (a TPM can stall for good)
MAX_TIMEOUT = 600.0


@dataclass(frozen=True)
class Tcti:
    """A TCTI as tpm2-tss loads it: ``name`` (``device``, ``tabrmd``, ``swtpm``, ``mssim``) and its ``conf``."""

    name: str
    conf: str

    def __str__(self) -> str:
        return f"{self.name}:{self.conf}" if self.conf else self.name


@dataclass(frozen=True)
class TpmSettings:
    tcti: Tcti = Tcti("device", "/dev/tpmrm0")
    pcrs: tuple[int, ...] = DEFAULT_PCRS
    bank: str = DEFAULT_BANK
    ak: str = "ecc256"
    eventlog: Path | None = DEFAULT_EVENTLOG
    timeout: float = DEFAULT_TIMEOUT
    pcrs_configured: bool = False  # [tpm] pcrs set: exactly these; else the default widened by the event log
    unpinned_ek: str = "warn"  # a baseline without the EK: "warn" (admit, reported) or "deny"

    @property
    def digest_size(self) -> int:
        return BANKS[self.bank]

    @property
    def selection(self) -> str:
        """The PCR selection in tpm2-tools syntax, e.g. ``sha256:0,1,2,3,4,5,7``."""
        return format_selection(self.bank, self.pcrs)


def format_selection(bank: str, pcrs: Sequence[int]) -> str:
    return f"{bank}:{','.join(str(p) for p in sorted(pcrs))}"


def parse_tcti(value: object, where: str = WHERE) -> Tcti:
    """``name[:conf]`` → :class:`Tcti`. Raises :class:`ConfigError`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} 'tcti' must be a non-empty string, got {value!r}",
                          hint=f'e.g. tcti = "{DEFAULT_TCTI}" or "swtpm:host=127.0.0.1,port=2321"')
    name, _, conf = value.strip().partition(":")
    if name not in TCTI_NAMES:
        raise ConfigError(f"{where} 'tcti' names an unknown TCTI {name!r}",
                          hint=f"use one of {', '.join(TCTI_NAMES)}, e.g. \"{DEFAULT_TCTI}\"")
    if name == "device":
        conf = conf or "/dev/tpmrm0"
        if not conf.startswith("/"):
            raise ConfigError(f"{where} 'tcti' device must be an absolute path, got {conf!r}",
                              hint=f'e.g. tcti = "{DEFAULT_TCTI}"')
    if name in ("swtpm", "mssim") and conf:
        for part in conf.split(","):
            key, eq, val = part.partition("=")
            if not eq or key not in ("host", "port") or not val:
                raise ConfigError(f"{where} 'tcti' {name} options must be host=…,port=…, got {conf!r}")
            if key == "port" and not (val.isdigit() and 0 < int(val) < 65535):
                raise ConfigError(f"{where} 'tcti' port must be 1..65534, got {val!r}")
    if any(c in conf for c in "\x00\n"):
        raise ConfigError(f"{where} 'tcti' contains control characters")
    return Tcti(name, conf)


def parse_pcrs(value: object, where: str, error: type[ConfigError] | type[UsageError] = ConfigError) -> tuple[int, ...]:
    """A non-empty list of distinct PCR indices 0..23 (ints, or a ``"0,1,7"`` string), sorted."""
    items: list[object]
    if isinstance(value, str):
        text = value.strip()
        if ":" in text:
            bank, _, text = text.partition(":")
            if bank not in BANKS:
                raise error(f"{where}: unknown PCR bank {bank!r} (use {', '.join(BANKS)})")
        items = []
        for tok in text.split(","):
            tok = tok.strip()
            if not tok.isdigit():
                raise error(f"{where}: PCR list must be numbers separated by commas, got {value!r}",
                            hint="e.g. 0,1,2,3,4,5,7")
            items.append(int(tok))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise error(f"{where}: PCRs must be a list of numbers 0..23, got {value!r}")
    if not items:
        raise error(f"{where}: the PCR list is empty", hint="e.g. pcrs = [0, 1, 2, 3, 4, 5, 7]")
    out: set[int] = set()
    for p in items:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < PCR_COUNT:
            raise error(f"{where}: PCR {p!r} is not a number 0..{PCR_COUNT - 1}")
        if p in out:
            raise error(f"{where}: PCR {p} is listed twice")
        out.add(p)
    return tuple(sorted(out))


def parse_bank(value: object, where: str = WHERE) -> str:
    if value not in BANKS:
        raise ConfigError(f"{where} 'bank' must be one of {', '.join(BANKS)}, got {value!r}",
                          hint="SHA-1 PCRs are not accepted; use the sha256 bank")
    assert isinstance(value, str)
    return value


def parse(section: Mapping[str, Any]) -> TpmSettings:
    """Parse the ``[tpm]`` table (``{}`` when absent: every default). Raises :class:`ConfigError`."""
    known_table(section, WHERE, KNOWN_KEYS)
    ak = section.get("ak", "ecc256")
    if ak not in AK_KINDS:
        raise ConfigError(f"{WHERE} 'ak' must be one of {', '.join(AK_KINDS)}, got {ak!r}")
    eventlog_value = section.get("eventlog", str(DEFAULT_EVENTLOG))
    eventlog: Path | None
    if eventlog_value == "":
        eventlog = None
    elif isinstance(eventlog_value, str) and eventlog_value.startswith("/"):
        eventlog = Path(eventlog_value)
    else:
        raise ConfigError(f"{WHERE} 'eventlog' must be an absolute path or \"\", got {eventlog_value!r}")
    timeout = section.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(f"{WHERE} 'timeout' must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {timeout!r}")
    unpinned_ek = section.get("unpinned_ek", "warn")
    if unpinned_ek not in UNPINNED_EK:
        raise ConfigError(f"{WHERE} 'unpinned_ek' must be \"warn\" or \"deny\", got {unpinned_ek!r}",
                          hint="\"deny\" refuses admissions while the baseline does not pin the TPM's endorsement key")
    pcrs = section.get("pcrs", list(DEFAULT_PCRS))
    if not isinstance(pcrs, list):
        raise ConfigError(f"{WHERE} 'pcrs' must be a list of numbers 0..{PCR_COUNT - 1}, got {pcrs!r}",
                          hint="e.g. pcrs = [0, 1, 2, 3, 4, 5, 7]")
    return TpmSettings(
        tcti=parse_tcti(section.get("tcti", DEFAULT_TCTI)),
        pcrs=parse_pcrs(pcrs, f"{WHERE} 'pcrs'"),
        bank=parse_bank(section.get("bank", DEFAULT_BANK)),
        ak=str(ak),
        eventlog=eventlog,
        timeout=float(timeout),
        pcrs_configured="pcrs" in section,
        unpinned_ek=str(unpinned_ek),
    )


# What each PCR holds on a PC (TCG PC Client Platform Firmware Profile; the Linux TPM PCR registry for 8-14).
BOOT_STAGES: dict[int, str] = {
    0: "firmware code", 1: "firmware configuration", 2: "option ROMs", 3: "option ROM configuration",
    4: "boot loader (EFI applications)", 5: "boot configuration (GPT, boot variables)", 7: "Secure Boot policy",
    8: "GRUB commands and kernel command line", 9: "files GRUB loaded (kernel, initrd)",
    11: "unified kernel image (systemd-stub)", 12: "kernel command line and credentials (systemd-stub)",
    14: "shim's MOK certificates and hashes",
}


def coverage(selected: tuple[int, ...] | list[int], measured: set[int] | None) -> dict[str, list[int]]:
    """Which boot stages the selection covers (pure): ``covered`` (selected), ``uncovered`` (measured by
    this boot, per its event log, but not selected: changing them changes nothing BACON compares), and
    ``unknown`` (stages 8-14 not selected when there is no event log to tell whether this boot uses them)."""
    chosen = set(selected)
    covered = sorted(p for p in BOOT_STAGES if p in chosen)
    if measured is None:
        return {"covered": covered, "uncovered": [], "unknown": sorted(p for p in BOOT_STAGES if p not in chosen
                                                                       and p >= 8)}
    return {"covered": covered, "uncovered": sorted(p for p in measured if p in BOOT_STAGES and p not in chosen),
            "unknown": []}


LATER_STAGES = (8, 9, 11, 12, 14)  # what boot loaders measure after PCRs 0-7 (see BOOT_STAGES)


def default_selection(measured: set[int] | None, exclude: Sequence[int] = ()) -> tuple[int, ...]:
    """The PCRs to record when ``[tpm] pcrs`` is not set (pure): :data:`DEFAULT_PCRS`, and every later boot
    stage this boot's event log shows was measured (kernel, initrd, command line, MOK), except ``exclude``
    (the launch PCR of measured launches, extended after boot)."""
    extra = {p for p in LATER_STAGES if measured and p in measured and p not in exclude}
    return tuple(sorted(set(DEFAULT_PCRS) | extra))


def effective(settings: TpmSettings, recorded: Sequence[int] | None, exclude: Sequence[int] = ()) -> TpmSettings:
    """The selection a check quotes and compares: ``[tpm] pcrs`` when set; else what the baseline recorded
    (chosen from the event log by :func:`default_selection` at record time), never less than the default,
    and never a PCR in ``exclude``: the launch PCR of measured launches, which every admitted launch
    extends after boot (a baseline recorded before ``[measure]`` was turned on may hold it; comparing it
    would refuse every admission after the first launch). Its boot part is checked by ``bacon evidence
    verify``, which replays the boot log and then the launch log into it."""
    if settings.pcrs_configured or not recorded:
        return settings
    from dataclasses import replace

    return replace(settings, pcrs=tuple(sorted((set(recorded) | set(DEFAULT_PCRS)) - set(exclude))))

