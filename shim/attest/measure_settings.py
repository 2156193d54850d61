"""The ``[measure]`` table of the configuration (what :mod:`shim.attest.measure` does with it), parsed once at
load and refused when ill-typed or unknown:

```toml
[measure]
into = ["tpm"]      # where launches are extended: "tpm" (the PCR below, in the [tpm] bank, through
                    # [tpm] tcti) and/or "rtmr" (RTMR3, in an Intel TDX guest); [] or no table: not measured
pcr = 14            # the launch PCR. 14 by default: the TCG PC Client profile gives PCRs 8-15 to the OS;
                    # of those, the Linux TPM PCR registry has 10 for IMA and 11, 12, 13 and 15 for systemd
                    # (boot phases, credentials, system extensions, machine id / LUKS keys), all extended
                    # while the system runs; 8, 9 and 14 are boot-time only (grub, initrd, shim's MOK list),
                    # measured before BACON starts, so the launch log continues from the boot log's value of
                    # PCR 14. 16 and 23 are refused (any software may reset them: the log could be erased
                    # from the PCR), and 17-22 (DRTM: not extendable from locality 0).
measurements = "/sys/devices/virtual/misc/tdx_guest/measurements"   # the kernel's TD measurement files
```

The PCR must not be one of ``[tpm] pcrs`` (the boot baseline would stop matching after the first launch).

Standard library only, and light: the configuration is parsed on every decided command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.common.errors import ConfigError
from shim.common.tables import known_table

WHERE = "[measure]"
KNOWN_KEYS = frozenset({"into", "pcr", "measurements"})
TARGETS = ("tpm", "rtmr")
DEFAULT_PCR = 14
DEFAULT_MEASUREMENTS = Path("/sys/devices/virtual/misc/tdx_guest/measurements")
REFUSED_PCRS: Mapping[int, str] = {
    **{p: "firmware measures it (TCG PC Client: PCRs 0-7 belong to the platform)" for p in range(8)},
    10: "IMA extends it while the system runs",
    16: "it is the debug PCR: any software can reset it and erase the launches",
    23: "it is the application PCR: any software can reset it and erase the launches",
    **{p: "it is a DRTM PCR: it cannot be extended from locality 0" for p in range(17, 23)},
}


@dataclass(frozen=True)
class MeasureSettings:
    tpm: bool = False
    rtmr: bool = False
    pcr: int = DEFAULT_PCR
    measurements: Path = DEFAULT_MEASUREMENTS

    @property
    def enabled(self) -> bool:
        return self.tpm or self.rtmr


def parse(section: Mapping[str, Any], boot_pcrs: Sequence[int] = ()) -> MeasureSettings:
    """The ``[measure]`` table (``{}`` when absent: not measured). Raises :class:`ConfigError`."""
    known_table(section, WHERE, KNOWN_KEYS)
    into = section.get("into", [])
    if not isinstance(into, list) or not all(t in TARGETS for t in into):
        raise ConfigError(f"{WHERE} 'into' must be a list of {', '.join(map(repr, TARGETS))}, got {into!r}",
                          hint='into = ["tpm"] (add "rtmr" in an Intel TDX guest)')
    pcr = section.get("pcr", DEFAULT_PCR)
    if isinstance(pcr, bool) or not isinstance(pcr, int) or not 0 <= pcr < 24:
        raise ConfigError(f"{WHERE} 'pcr' must be a PCR number 0..23, got {pcr!r}", hint=f"pcr = {DEFAULT_PCR}")
    if pcr in REFUSED_PCRS:
        raise ConfigError(f"{WHERE} 'pcr' = {pcr} cannot hold launches: {REFUSED_PCRS[pcr]}",
                          hint=f"pcr = {DEFAULT_PCR} (see the comment in the shipped configuration)")
    if "tpm" in into and pcr in boot_pcrs:
        raise ConfigError(f"{WHERE} 'pcr' = {pcr} is also one of [tpm] pcrs: the boot baseline would stop "
                          "matching after the first launch", hint=f"remove {pcr} from [tpm] pcrs or choose another")
    measurements = section.get("measurements", str(DEFAULT_MEASUREMENTS))
    if not isinstance(measurements, str) or not measurements.startswith("/"):
        raise ConfigError(f"{WHERE} 'measurements' must be an absolute path, got {measurements!r}")
    return MeasureSettings(tpm="tpm" in into, rtmr="rtmr" in into, pcr=pcr, measurements=Path(measurements))
