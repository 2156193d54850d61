"""Measured launches: each admitted launch is logged (:mod:`shim.attest.launchlog`) and extended into the launch
PCR and, in a TD, into RTMR3, before the container's command is carried out.

The API for every part of BACON that launches (the nerdctl wrapper, the runtime gate):

    measured = measure.launches(cfg, [LaunchEvent(...), ...])   # None when [measure] is off

It returns only once every register holds the launches; it raises :class:`shim.common.errors.Denied`
(``check="measure"``) when they could not be logged or extended, and the launch must then not happen.

The ``[measure]`` table:

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
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shim.attest import cel, launchlog
from shim.attest.launchlog import LaunchEvent
from shim.common.errors import BaconError, ConfigError, Denied
from shim.common.tables import known_table

WHERE = "[measure]"
KNOWN_KEYS = frozenset({"into", "pcr", "measurements"})
TARGETS = ("tpm", "rtmr")
DEFAULT_PCR = 14
DEFAULT_MEASUREMENTS = Path("/sys/devices/virtual/misc/tdx_guest/measurements")
RTMR = 3
RTMR_FILE = f"rtmr{RTMR}:sha384"
RTMR_SIZE = 48
REFUSED_PCRS: Mapping[int, str] = {
    **{p: "firmware measures it (TCG PC Client: PCRs 0-7 belong to the platform)" for p in range(8)},
    10: "IMA extends it while the system runs",
    16: "it is the debug PCR: any software can reset it and erase the launches",
    23: "it is the application PCR: any software can reset it and erase the launches",
    **{p: "it is a DRTM PCR: it cannot be extended from locality 0" for p in range(17, 23)},
}
CHECK = "measure"
__all__ = ["LaunchEvent", "MeasureSettings", "Measured", "launches", "now", "parse"]


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


def now() -> str:
    """The time a launch is measured at, RFC 3339 UTC with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Measured:
    """Where the launches went: the log and the records appended to it (two per launch in a TD)."""

    path: Path
    records: tuple[cel.Record, ...] = field(default=())
    ms: float = 0.0  # how long logging and extending took (what measuring adds to an admission)
    cpu_ms: float = 0.0  # of which this process's CPU time (the rest: waiting for the TPM, the disk, the CPU)

    def to_json(self) -> dict[str, Any]:
        records = [{"recnum": r.recnum, "register": r.register, **{b: d.hex() for b, d in r.digests.items()}}
                   for r in self.records]
        return {"log": str(self.path), "ms": round(self.ms, 3), "cpu_ms": round(self.cpu_ms, 3), "records": records}


# -- the registers (IO) ---------------------------------------------------------------------------------

def read_rtmr(directory: Path) -> bytes:
    """RTMR3's value from the kernel's measurement file. Raises ``OSError``."""
    fd = os.open(directory / RTMR_FILE, os.O_RDONLY | os.O_CLOEXEC)
    try:
        value = os.pread(fd, RTMR_SIZE + 1, 0)
    finally:
        os.close(fd)
    if len(value) != RTMR_SIZE:
        raise OSError(f"{directory / RTMR_FILE} gave {len(value)} bytes, not {RTMR_SIZE}")
    return value


def extend_rtmr(directory: Path, digest: bytes) -> None:
    """Extend RTMR3 by a SHA-384 digest: write exactly 48 bytes to its file. Raises ``OSError``."""
    fd = os.open(directory / RTMR_FILE, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.write(fd, digest) != RTMR_SIZE:
            raise OSError(f"short write to {directory / RTMR_FILE}")
    finally:
        os.close(fd)


def launches(cfg: Any, events: Sequence[LaunchEvent]) -> Measured | None:
    """Log and extend ``events`` (see the module). ``cfg``: a :class:`shim.common.config.Config`. ``None`` when
    ``[measure]`` does not ask for measurements. Raises :class:`Denied` (check ``measure``)."""
    from shim.attest.tpm.settings import parse as parse_tpm

    tpm_section = cfg.sections.get("tpm", {})
    tpm_settings = parse_tpm(tpm_section)
    s = parse(cfg.sections.get("measure", {}), tpm_settings.pcrs)
    if not s.enabled or not events:
        return None
    path = launchlog.log_path(Path(cfg.state_dir))
    started, cpu = time.perf_counter(), time.process_time()
    try:
        measured = _measure(s, tpm_settings, path, events)
        return replace(measured, ms=(time.perf_counter() - started) * 1000, cpu_ms=(time.process_time() - cpu) * 1000)
    except Denied:
        raise
    except (BaconError, OSError, cel.CelError) as e:
        message = e.message if isinstance(e, BaconError) else (getattr(e, "strerror", None) or str(e))
        hint = e.hint if isinstance(e, BaconError) else None
        raise Denied(f"the launch could not be measured: {message}", check=CHECK,
                     image=events[0].image, digest=events[0].digest,
                     hint=hint or f"check the TPM ([tpm] tcti), {s.measurements} in a TD, and {path}; "
                                  "or turn measuring off ([measure] into = [])") from e


def warm_up(cfg: Any) -> None:
    """What a freshly forked worker of ``bacon serve`` pays on its first measurement (copy-on-write faults
    on the code and data measuring touches, the boot id, a worker thread, a TPM connection and a PCR read),
    paid before any request, without writing the log or extending anything. Raises what it meets (the
    service ignores it: the request meets it again and reports it)."""
    from shim.attest.tpm.check import within_deadline
    from shim.attest.tpm.settings import parse as parse_tpm

    tpm_settings = parse_tpm(cfg.sections.get("tpm", {}))
    s = parse(cfg.sections.get("measure", {}), tpm_settings.pcrs)
    if not s.enabled:
        return
    launchlog.log_path(Path(cfg.state_dir))
    event = LaunchEvent(source="wrapper", command="run", image="warm-up.invalid/none", digest="sha256:" + "0" * 64,
                        signer="-", level="Low", argv=("nerdctl",), time=now())
    for bank, register in ((tpm_settings.bank, cel.PCR), ("sha384", cel.CCMR)):
        content = launchlog.encode_event(event, bytes(cel.SIZES[bank]))
        d = cel.content_digest(cel.CONTENT_BACON_LAUNCH, content, bank)
        record = cel.encode(0, register, 4, {bank: d}, cel.CONTENT_BACON_LAUNCH, content)
        launchlog.decode_event(cel.parse(record).records[0])
        cel.extend(d, d, bank)
    if s.tpm:  # a PCR read in its session: the command path, off the request's time
        from shim.attest.tpm.device import open_tpm

        def read() -> None:
            with open_tpm(tpm_settings) as dev:
                dev.read_pcrs(tpm_settings.bank, [s.pcr])

        within_deadline(tpm_settings, read)
    else:
        within_deadline(tpm_settings, lambda: None)


def _measure(s: MeasureSettings, tpm_settings: Any, path: Path, events: Sequence[LaunchEvent]) -> Measured:
    from shim.attest.tpm.check import within_deadline

    def work() -> Measured:
        with ExitStack() as stack:
            dev = None
            if s.tpm:
                from shim.attest.tpm.device import open_tpm

                dev = stack.enter_context(open_tpm(tpm_settings))
            bank = tpm_settings.bank

            pcr_key, rtmr_key = f"pcr{s.pcr}:{bank}", f"rtmr{RTMR}"

            def build(recnum: int, known: Mapping[str, bytes]) -> launchlog.Built:
                # the registers' values: as the last append left them, else read (a record came after it,
                # its extend failed, or this is the first launch)
                pcr_value = b""
                if dev is not None:
                    pcr_value = known.get(pcr_key) or dev.read_pcrs(bank, [s.pcr])[s.pcr]
                rtmr_value = (known.get(rtmr_key) or read_rtmr(s.measurements)) if s.rtmr else b""
                out: list[bytes] = []
                for ev in events:
                    if dev is not None:
                        content = launchlog.encode_event(ev, pcr_value)
                        d = cel.content_digest(cel.CONTENT_BACON_LAUNCH, content, bank)
                        out.append(cel.encode(recnum + len(out), cel.PCR, s.pcr, {bank: d},
                                              cel.CONTENT_BACON_LAUNCH, content))
                        pcr_value = cel.extend(pcr_value, d, bank)
                    if s.rtmr:
                        content = launchlog.encode_event(ev, rtmr_value)
                        d = cel.content_digest(cel.CONTENT_BACON_LAUNCH, content, "sha384")
                        out.append(cel.encode(recnum + len(out), cel.CCMR, RTMR + 1, {"sha384": d},
                                              cel.CONTENT_BACON_LAUNCH, content))
                        rtmr_value = cel.extend(rtmr_value, d, "sha384")
                after = {**({pcr_key: pcr_value} if dev is not None else {}),
                         **({rtmr_key: rtmr_value} if s.rtmr else {})}
                return out, after

            def extend(records: Sequence[cel.Record]) -> None:
                for r in records:
                    if r.register_type == cel.PCR:
                        assert dev is not None
                        dev.extend(s.pcr, bank, r.digests[bank])
                    else:
                        extend_rtmr(s.measurements, r.digests["sha384"])

            appended = launchlog.append(path, build, extend)
            return Measured(path=appended.path, records=tuple(appended.records))

    if not s.tpm:
        return work()
    # tpm2-tss waits for the TPM without a deadline: the work runs in shim.common.deadline's worker thread
    return within_deadline(tpm_settings, work)
