"""The CCEL event log: parsed, replayed to the quote's RTMRs, and used to explain a mismatch."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.attest.tdx import ccel
from shim.attest.tdx.settings import intel_root_ca
from shim.attest.tdx.verify import parse

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "tdx"
LOG = (VECTORS / "ccel_data.dat").read_bytes()


def quoted_rtmrs() -> tuple[bytes, ...]:
    return parse((VECTORS / "cos-113-tdx-quote.dat").read_bytes()).measurements.rtmr


def test_replay_gives_the_rtmrs_of_the_quote() -> None:
    events = ccel.parse(LOG)
    assert len(events) == 43
    assert ccel.replay(events) == quoted_rtmrs()


def test_no_action_events_are_skipped_and_the_spec_id_is_not_an_event() -> None:
    events = ccel.parse(LOG)
    assert all(e.seq == i + 1 for i, e in enumerate(events))
    assert {e.mr_index for e in events} <= {0, 1, 2, 3, 4}


def test_explain_lists_the_events_of_the_register() -> None:
    events = ccel.parse(LOG)
    rt = quoted_rtmrs()
    exp = ccel.explain(events, 2, rt[2])
    assert exp.log_matches_quote
    assert [e.rtmr for e in exp.events] == [2] * len(exp.events)
    text = "\n".join(exp.lines(limit=100))
    assert "kernel_cmdline" in text
    assert "EV_IPL" in text


def test_explain_against_a_reference_log_names_the_diverging_event() -> None:
    events = ccel.parse(LOG)
    cmdline = next(e for e in events if e.type_name == "EV_IPL" and b"kernel_cmdline" in e.data)
    changed = [
        ccel.Event(e.seq, e.mr_index, e.event_type, b"\x01" * 48, e.data) if e is cmdline else e for e in events
    ]
    rt = ccel.replay(changed)
    exp = ccel.explain(changed, cmdline.rtmr or 0, rt[cmdline.rtmr or 0], reference_events=events)
    assert exp.against_reference_log
    assert exp.log_matches_quote
    assert exp.events[0].seq == cmdline.seq
    assert "differing from the reference log" in exp.lines()[0]


def test_explain_says_when_the_log_does_not_replay_to_the_quote() -> None:
    events = ccel.parse(LOG)
    exp = ccel.explain(events, 0, b"\x42" * 48)
    assert not exp.log_matches_quote
    assert "not to the quoted value" in exp.lines()[0]


@pytest.mark.parametrize("cut", [10, 40, 100, 0x4600])
def test_truncated_log_is_refused_or_shorter_never_wrong(cut: int) -> None:
    try:
        events = ccel.parse(LOG[:cut])
    except ccel.EventLogError:
        return
    assert len(events) < 43


def test_a_log_without_sha384_is_refused() -> None:
    bad = bytearray(LOG)
    struct.pack_into("<H", bad, 0x3C, 0x0099)  # the only algorithm: an unknown one of 48 bytes
    with pytest.raises(ccel.EventLogError, match="does not carry sha384"):
        ccel.parse(bytes(bad))


def test_not_an_event_log() -> None:
    with pytest.raises(ccel.EventLogError):
        ccel.parse(intel_root_ca().der)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=0x300))
def test_hostile_bytes_only_ever_raise_event_log_error(noise: bytes, at: int) -> None:
    data = LOG[:at] + noise
    with contextlib.suppress(ccel.EventLogError):
        ccel.parse(data)
