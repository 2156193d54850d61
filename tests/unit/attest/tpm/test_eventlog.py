"""The TCG2 event log: the real Fedora 37 systemd-boot log replays to the PCRs tpm2-tools expects; hostile
logs are refused, never crash or hang the parser."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.attest.tpm import eventlog

VECTORS = Path(__file__).parents[3] / "vectors" / "tpm"
LOG = VECTORS / "event-sd-boot-fedora37.bin"


def expected_pcrs() -> dict[int, bytes]:
    """The ``pcrs: sha256:`` table at the end of tpm2-tools' YAML for the log (``tpm2_eventlog`` output)."""
    text = (VECTORS / "event-sd-boot-fedora37.bin.yaml").read_text()
    tail = text[text.rindex("\npcrs:") :]
    out = {int(m[1]): bytes.fromhex(m[2]) for m in re.finditer(r"^\s+(\d+)\s*:\s*0x([0-9a-f]{64})\s*$", tail, re.M)}
    assert len(out) == 10
    return out


def test_real_log_replays_to_expected_pcrs() -> None:
    log = eventlog.parse(LOG.read_bytes())
    assert log.banks == {"sha256": 32}
    assert log.startup_locality == 0
    assert len(log.events) == 27
    assert eventlog.replay(log, "sha256") == expected_pcrs()


def test_explain_names_the_events_of_a_pcr() -> None:
    log = eventlog.parse(LOG.read_bytes())
    pcr7 = expected_pcrs()[7]
    ex = eventlog.explain(log, 7, pcr7)
    assert ex.log_matches
    names = [eventlog.efi_variable_name(e.data) for e in ex.events]
    assert names == ["SecureBoot", "PK", "KEK", "db", "dbx", ""]
    text = "\n".join(ex.lines())
    assert "'SecureBoot'" in text
    assert "EV_SEPARATOR" in text


def test_explain_against_reference_reports_from_first_divergence() -> None:
    log = eventlog.parse(LOG.read_bytes())
    ref = [(e.event_type, e.digests["sha256"].hex()) for e in eventlog.measured(log, 7)]
    ref[3] = (ref[3][0], "00" * 32)  # the baseline's db differed
    ex = eventlog.explain(log, 7, b"\x01" * 32, reference=ref)
    assert not ex.log_matches
    assert [e.seq for e in ex.events] == [7, 8, 9]
    assert "not to its current value" in ex.lines()[0]


def test_explain_same_as_reference_has_no_events() -> None:
    log = eventlog.parse(LOG.read_bytes())
    ref = [(e.event_type, e.digests["sha256"].hex()) for e in eventlog.measured(log, 4)]
    ex = eventlog.explain(log, 4, expected_pcrs()[4], reference=ref)
    assert ex.events == ()
    assert ex.lines()[-1].startswith("  (none: the log is the baseline's")


def _spec_event(algs: list[tuple[int, int]]) -> bytes:
    spec = b"Spec ID Event03\x00" + struct.pack("<IBBBB", 0, 0, 2, 0, 2) + struct.pack("<I", len(algs))
    spec += b"".join(struct.pack("<HH", a, s) for a, s in algs) + b"\x00"
    return struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(spec)) + spec


def _event(pcr: int, etype: int, digests: list[tuple[int, bytes]], data: bytes) -> bytes:
    out = struct.pack("<III", pcr, etype, len(digests))
    out += b"".join(struct.pack("<H", a) + d for a, d in digests)
    return out + struct.pack("<I", len(data)) + data


def test_startup_locality_and_two_banks() -> None:
    d1, d256 = hashlib.sha1(b"x", usedforsecurity=False).digest(), hashlib.sha256(b"x").digest()
    log_bytes = (_spec_event([(0x0004, 20), (0x000B, 32)])
                 + _event(0, 3, [(0x0004, bytes(20)), (0x000B, bytes(32))], b"StartupLocality\x00\x03")
                 + _event(0, 8, [(0x0004, d1), (0x000B, d256)], b"ver")
                 + _event(4, 3, [(0x0004, bytes(20)), (0x000B, bytes(32))], b"ignored")
                 + b"\xff" * 16)  # padding
    log = eventlog.parse(log_bytes)
    assert log.startup_locality == 3
    start = bytes(31) + b"\x03"
    assert eventlog.replay(log, "sha256") == {0: hashlib.sha256(start + d256).digest()}
    assert eventlog.replay(log, "sha1") == {0: hashlib.sha1(bytes(19) + b"\x03" + d1, usedforsecurity=False).digest()}
    with pytest.raises(eventlog.EventLogError, match="no sha384"):
        eventlog.replay(log, "sha384")


@pytest.mark.parametrize(("blob", "match"), [
    (b"", "truncated"),
    (struct.pack("<II", 0, 8) + bytes(24), "TPM 1.2"),
    (struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", 16) + b"Spec ID Event02\x00", "Spec ID Event03"),
    (_spec_event([(0x000B, 20)]), "size 20"),
    (_spec_event([(0x000B, 32)]) + _event(24, 1, [(0x000B, bytes(32))], b""), "PCR 24"),
    (_spec_event([(0x000B, 32)]) + _event(1, 1, [(0x000C, bytes(48))], b""), "undeclared"),
    (_spec_event([(0x000B, 32)]) + _event(1, 1, [(0x000B, bytes(32))], b"abc")[:-1], "truncated"),
    (_spec_event([(0x000B, 32)]) + struct.pack("<III", 1, 1, 5), "5 digests"),
])
def test_malformed_logs_are_refused(blob: bytes, match: str) -> None:
    with pytest.raises(eventlog.EventLogError, match=match):
        eventlog.parse(blob)


def test_every_truncation_of_the_real_log_is_refused_or_shorter() -> None:
    data = LOG.read_bytes()
    full = len(eventlog.parse(data).events)
    for n in range(len(data)):
        try:
            log = eventlog.parse(data[:n])
        except eventlog.EventLogError:
            continue
        assert len(log.events) < full


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=2610))
def test_corrupted_logs_never_crash(junk: bytes, at: int) -> None:
    data = bytearray(LOG.read_bytes())
    data[at : at + len(junk)] = junk
    try:
        log = eventlog.parse(bytes(data))
        eventlog.replay(log, "sha256")
    except eventlog.EventLogError:
        pass


def test_read_log_missing_says_so(tmp_path: Path) -> None:
    with pytest.raises(eventlog.EventLogError, match="no event log"):
        eventlog.read_log(tmp_path / "binary_bios_measurements")
