"""Measured launches: each admitted launch is logged (:mod:`shim.attest.launchlog`) and extended into the launch
PCR and, in a TD, into RTMR3, before the container's command is carried out.

The API for every part of BACON that launches (the nerdctl wrapper, the runtime gate):

    measured = measure.launches(cfg, [LaunchEvent(...), ...])   # None when [measure] is off

It returns only once every register holds the launches; it raises :class:`shim.common.errors.Denied`
(``check="measure"``) when they could not be logged or extended, and the launch must then not happen.

The ``[measure]`` table and its rules: :mod:`shim.attest.measure_settings`.
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
from shim.attest.measure_settings import MeasureSettings, parse
from shim.common.errors import BaconError, Denied

RTMR = 3
RTMR_FILE = f"rtmr{RTMR}:sha384"
RTMR_SIZE = 48
CHECK = "measure"
__all__ = ["LaunchEvent", "MeasureSettings", "Measured", "launches", "now", "parse"]


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
    """Log and extend ``events`` (see the module). ``cfg``: a :class:`shim.common.config.Config` (its ``tpm``,
    ``measure`` and ``state_dir``). ``None`` when ``[measure]`` does not ask for measurements. Raises
    :class:`Denied` (check ``measure``)."""
    tpm_settings, s = cfg.tpm, cfg.measure
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
    tpm_settings, s = cfg.tpm, cfg.measure
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
