"""The launch log: CEL-TLV records, the append protocol (lock, torn tail, write ahead of the extend) and the
replay that names the record where a log and its register part ways.

The register here is a value in the test (a PCR is ``H(value ‖ digest)`` whatever holds it); the swtpm and
the kernel-shaped RTMR files are used by ``tests/integration/test_measured_launch.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.attest import cel, launchlog, launchreplay
from shim.attest.launchlog import LaunchEvent
from shim.common.errors import ConfigError

PCR = 14


def event(n: int, **kw: object) -> LaunchEvent:
    base: dict[str, object] = dict(source="wrapper", command="run", image=f"registry.example/app{n}:1",
                                   digest="sha256:" + f"{n:02x}" * 32, signer="key:abc", level="Low",
                                   argv=("nerdctl", "run", "--rm", f"app{n}"), time=f"2026-01-01T00:00:0{n}Z")
    base.update(kw)
    return LaunchEvent(**base)  # type: ignore[arg-type]


class Register:
    """A PCR's arithmetic: starts at zeros, extended by SHA-256 digests."""

    def __init__(self) -> None:
        self.value = bytes(32)

    def extend(self, digest: bytes) -> None:
        self.value = cel.extend(self.value, digest, "sha256")


def launch(path: Path, reg: Register, *events: LaunchEvent, fail: bool = False) -> list[cel.Record]:
    reads: list[bytes] = []

    def build(recnum: int, known: Mapping[str, bytes]) -> launchlog.Built:
        prior = known.get("pcr") or reg.value  # a register read only when the last append left no value
        if "pcr" not in known:
            reads.append(prior)
        out: list[bytes] = []
        for ev in events:
            content = launchlog.encode_event(ev, prior)
            d = cel.content_digest(cel.CONTENT_BACON_LAUNCH, content, "sha256")
            out.append(cel.encode(recnum + len(out), cel.PCR, PCR, {"sha256": d}, cel.CONTENT_BACON_LAUNCH, content))
            prior = cel.extend(prior, d, "sha256")
        return out, {"pcr": prior}

    def extend(records: Sequence[cel.Record]) -> None:
        if fail:
            raise OSError("the TPM said no")
        for r in records:
            reg.extend(r.digests["sha256"])

    records = launchlog.append(path, build, extend).records
    READS.append(len(reads))
    return records


READS: list[int] = []


def verify(log: bytes, reg: Register) -> launchreplay.Replay:
    parsed = cel.parse(log)
    assert parsed.torn == 0
    entries = launchreplay.decode(parsed.records)
    return launchreplay.replay(entries, cel.PCR, PCR, "sha256", bytes(32), reg.value)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "launches" / "boot.cel"


def test_launches_replay_to_the_register(log: Path) -> None:
    reg = Register()
    for n in range(3):
        launch(log, reg, event(n))
    launch(log, reg, event(3, command="start", container_id="c" * 64), event(4))
    r = verify(log.read_bytes(), reg)
    assert [e.event.image for e in r.launched] == [f"registry.example/app{n}:1" for n in range(5)]
    assert r.launched[3].event.container_id == "c" * 64
    assert r.launched[0].event.argv == ("nerdctl", "run", "--rm", "app0")
    assert [e.record.recnum for e in r.launched] == [0, 1, 2, 3, 4]
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_a_record_is_cel_as_go_eventlog_reads_it(log: Path) -> None:
    reg = Register()
    (rec,) = launch(log, reg, event(1))
    raw = log.read_bytes()
    assert raw[:13] == bytes([0]) + struct.pack(">I", 8) + struct.pack(">Q", 0)  # recnum TLV
    assert raw[13:19] == bytes([1]) + struct.pack(">I", 1) + bytes([PCR])  # PCR index TLV
    assert raw[19] == 3
    assert raw[24] == 0x0B
    assert reg.value == cel.extend(bytes(32), rec.digests["sha256"], "sha256")


def test_a_failed_extend_leaves_a_record_reported_as_not_extended(log: Path) -> None:
    reg = Register()
    launch(log, reg, event(0))
    with pytest.raises(OSError, match="the TPM said no"):
        launch(log, reg, event(1), fail=True)
    launch(log, reg, event(2))
    r = verify(log.read_bytes(), reg)
    assert [e.record.recnum for e in r.launched] == [0, 2]
    assert [e.record.recnum for e in r.not_extended] == [1]
    with pytest.raises(OSError, match="the TPM said no"):
        launch(log, reg, event(3), fail=True)  # the last record, never extended
    r = verify(log.read_bytes(), reg)
    assert [e.record.recnum for e in r.not_extended] == [1, 3]


def test_a_torn_append_is_cut_off_and_never_counted(log: Path) -> None:
    reg = Register()
    launch(log, reg, event(0))
    whole = log.read_bytes()
    with log.open("ab") as f:  # a crash in the middle of the next append
        f.write(whole[:37])
    parsed = cel.parse(log.read_bytes())
    assert len(parsed.records) == 1
    assert parsed.torn == 37
    launch(log, reg, event(1))
    r = verify(log.read_bytes(), reg)
    assert [e.record.recnum for e in r.launched] == [0, 1]


def test_a_stale_or_lying_hint_is_not_trusted(log: Path) -> None:
    reg = Register()
    launch(log, reg, event(0))
    launch(log, reg, event(1))
    log.with_suffix(".next").write_text("00000000000000000005 00000000000000000009\n")
    launch(log, reg, event(2))
    assert [e.record.recnum for e in verify(log.read_bytes(), reg).launched] == [0, 1, 2]


def three(log: Path) -> tuple[Register, list[cel.Record], bytes]:
    reg = Register()
    recs = [launch(log, reg, event(n))[0] for n in range(3)]
    return reg, recs, log.read_bytes()


def chunks(raw: bytes, recs: list[cel.Record]) -> list[bytes]:
    bounds = [r.offset for r in recs] + [len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def renumber(blobs: list[bytes]) -> bytes:
    """Records re-numbered 0, 1, … as a careful forger would."""
    out = b""
    for i, b in enumerate(blobs):
        out += b[:5] + struct.pack(">Q", i) + b[13:]
    return out


def test_a_removed_record_is_named(log: Path) -> None:
    reg, recs, raw = three(log)
    blobs = chunks(raw, recs)
    with pytest.raises(launchreplay.ReplayError, match=r"record #1 is missing"):
        verify(blobs[0] + blobs[2], reg)
    with pytest.raises(launchreplay.ReplayError, match=r"breaks at record #1 \(run registry.example/app2"):
        verify(renumber([blobs[0], blobs[2]]), reg)
    with pytest.raises(launchreplay.ReplayError, match=r"last record, record #1 .*app1"):
        verify(blobs[0] + blobs[1], reg)  # the newest record dropped


def test_a_reordered_record_is_named(log: Path) -> None:
    reg, recs, raw = three(log)
    blobs = chunks(raw, recs)
    with pytest.raises(launchreplay.ReplayError, match=r"record #2 comes before record #1: the records were reordered"):
        verify(blobs[0] + blobs[2] + blobs[1], reg)
    with pytest.raises(launchreplay.ReplayError, match=r"breaks at record #1 \(run registry.example/app2"):
        verify(renumber([blobs[0], blobs[2], blobs[1]]), reg)


def test_a_changed_record_is_named(log: Path) -> None:
    reg, recs, raw = three(log)
    edited = raw.replace(b"registry.example/app1:1", b"registry.example/appX:1")
    with pytest.raises(launchreplay.ReplayError, match=r"record #1 \(run registry.example/appX:1.*edited"):
        verify(edited, reg)
    # the forger also recomputes the digest: the next record's prior no longer follows
    blobs = chunks(raw, recs)
    entry = launchlog.decode_event(recs[1])
    content = launchlog.encode_event(event(1, image="registry.example/evil:1"), entry.prior)
    d = cel.content_digest(cel.CONTENT_BACON_LAUNCH, content, "sha256")
    forged = cel.encode(1, cel.PCR, PCR, {"sha256": d}, cel.CONTENT_BACON_LAUNCH, content)
    with pytest.raises(launchreplay.ReplayError, match=r"breaks at record #2 .*after record #1 \(run registry.exa"
                                                       r"mple/evil:1"):
        verify(blobs[0] + forged + blobs[2], reg)


def test_an_extend_outside_the_log_is_found(log: Path) -> None:
    reg, _recs, raw = three(log)
    reg.extend(bytes(32))
    with pytest.raises(launchreplay.ReplayError, match=r"extended without a record"):
        verify(raw, reg)


@pytest.mark.parametrize("blob", [b"\x00\x00\x00\x00\x08" + bytes(8) + b"\x05\x00\x00\x00\x01\x0e" * 3,
                                  b"\x07" * 40, bytes(5) + b"\xff" * 30])
def test_malformed_logs_are_refused_or_torn(blob: bytes) -> None:
    try:
        parsed = cel.parse(blob)
    except cel.CelError:
        return
    assert parsed.torn > 0
    assert not parsed.records


def test_the_log_must_be_roots_alone(log: Path) -> None:
    reg = Register()
    launch(log, reg, event(0))
    os.chmod(log, 0o666)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(ConfigError, match="writable by root alone"):
        launch(log, reg, event(1))


def test_the_register_is_read_only_when_the_last_append_left_no_value(log: Path) -> None:
    reg = Register()
    READS.clear()
    launch(log, reg, event(0))
    launch(log, reg, event(1))
    with pytest.raises(OSError, match="the TPM said no"):
        launch(log, reg, event(2), fail=True)  # its value is not vouched for: the next append reads
    launch(log, reg, event(3))
    launch(log, reg, event(4))
    assert READS == [1, 0, 1, 0]  # (the failed append is not counted: it raised)
    assert [e.record.recnum for e in verify(log.read_bytes(), reg).launched] == [0, 1, 3, 4]
    reg.extend(bytes(32))  # something outside BACON extends the PCR between launches
    launch(log, reg, event(5))
    with pytest.raises(launchreplay.ReplayError, match="extended without a record"):
        verify(log.read_bytes(), reg)


@given(st.binary(max_size=600))
@settings(max_examples=400, deadline=None)
def test_any_bytes_parse_to_whole_records_or_a_refusal(blob: bytes) -> None:
    try:
        parsed = cel.parse(blob)
    except cel.CelError:
        return
    assert parsed.length + parsed.torn == len(blob)
    with contextlib.suppress(launchreplay.ReplayError):
        launchreplay.decode(parsed.records)


@given(st.integers(min_value=0, max_value=300), st.binary(min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_a_real_log_with_bytes_flipped_never_verifies_as_the_same_launches(at: int, noise: bytes) -> None:
    reg = Register()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "boot.cel"
        launch(path, reg, event(0))
        launch(path, reg, event(1))
        raw = path.read_bytes()
    at = at % len(raw)
    damaged = raw[:at] + bytes(b ^ n for b, n in zip(raw[at:], noise, strict=False)) + raw[at + len(noise):]
    if damaged == raw:
        return
    try:
        parsed = cel.parse(damaged)
        rep = launchreplay.replay(launchreplay.decode(parsed.records), cel.PCR, PCR, "sha256", bytes(32), reg.value)
    except (cel.CelError, launchreplay.ReplayError):
        return
    # a flip that still verifies can only be in bytes no digest covers (none, but a TLV length trick would show)
    assert [e.event for e in rep.launched] == [event(0), event(1)]
