"""The PCR baseline file: round trip, atomic root-only write, refusal of unsafe or corrupt files, diff."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from shim.attest.tpm import baseline as bl

VECTORS = Path(__file__).parents[3] / "vectors" / "tpm"
PCRS = {0: bytes(32), 7: b"\x07" * 32}


def sample(**kw: object) -> bl.Baseline:
    args: dict[str, object] = dict(bank="sha256", pcrs=PCRS, recorded_at="2025-01-01T00:00:00Z", tcti="device",
                                   ak_fingerprint="sha256:ab", ak_pem="PEM", eventlog_path=None, eventlog_bytes=None)
    args.update(kw)
    return bl.build(**args)  # type: ignore[arg-type]


def test_round_trip_and_mode(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = bl.write(state, sample())
    assert path == state / "tpm-baseline.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert bl.load(state) == sample()
    assert [p.name for p in state.iterdir()] == ["tpm-baseline.json"]  # no temporary file left


def test_rewrite_replaces(tmp_path: Path) -> None:
    bl.write(tmp_path, sample())
    bl.write(tmp_path, sample(pcrs={1: b"\x01" * 32}))
    loaded = bl.load(tmp_path)
    assert loaded is not None
    assert loaded.pcrs == {1: b"\x01" * 32}


def test_missing_is_none(tmp_path: Path) -> None:
    assert bl.load(tmp_path) is None


def test_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    bl.write(tmp_path, sample())
    (tmp_path / "tpm-baseline.json").rename(real)
    (tmp_path / "tpm-baseline.json").symlink_to(real)
    with pytest.raises(bl.BaselineError, match="symlink"):
        bl.load(tmp_path)


def test_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = bl.write(tmp_path, sample())
    path.chmod(0o620)
    with pytest.raises(bl.BaselineError, match="writable by others"):
        bl.load(tmp_path)
    path.chmod(0o600)
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(bl.BaselineError, match=r"directory .* on its path is writable by others"):
            bl.load(tmp_path)
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = bl.write(tmp_path, sample())
    os.chown(path, 1234, 1234)
    with pytest.raises(bl.BaselineError, match="owned by uid 1234"):
        bl.load(tmp_path)


@pytest.mark.parametrize("doc", [
    "not json", json.dumps({"version": 2}), json.dumps({"version": 1, "bank": "sha1"}),
    json.dumps({**bl.to_json(sample()), "pcrs": {"0": "00"}}),
    json.dumps({**bl.to_json(sample()), "pcrs": {"24": "00" * 32}}),
    json.dumps({**bl.to_json(sample()), "ak": None}),
    json.dumps({**bl.to_json(sample()), "eventlog": {"path": "/x", "events": {"0": [[1, 2]]}}}),
])
def test_corrupt_is_refused(tmp_path: Path, doc: str) -> None:
    path = bl.path_for(tmp_path)
    path.write_text(doc)
    path.chmod(0o600)
    with pytest.raises(bl.BaselineError):
        bl.load(tmp_path)


def test_diff_names_each_changed_pcr() -> None:
    current = {0: bytes(32), 7: b"\x08" * 32, 9: b"\x09" * 32}
    changes = bl.diff(PCRS, current, [0, 7, 9])
    assert [(c.pcr, c.old, c.new) for c in changes] == [(7, b"\x07" * 32, b"\x08" * 32), (9, None, b"\x09" * 32)]
    assert changes[0].describe() == f"PCR 7 changed: {'07' * 8}… → {'08' * 8}…"
    assert bl.diff(PCRS, PCRS, [0, 7]) == []


def test_build_with_the_real_event_log(tmp_path: Path) -> None:
    log_path = VECTORS / "event-sd-boot-fedora37.bin"
    from shim.attest.tpm import eventlog

    replayed = eventlog.replay(eventlog.parse(log_path.read_bytes()))
    pcrs = {p: replayed[p] for p in (0, 1, 2, 3, 4, 5, 7)}
    pcrs[5] = b"\x55" * 32  # this one no longer matches its log
    base = sample(pcrs=pcrs, eventlog_path=log_path, eventlog_bytes=log_path.read_bytes())
    assert base.eventlog is not None
    assert base.eventlog.replay_matches == {0: True, 1: True, 2: True, 3: True, 4: True, 5: False, 7: True}
    assert [e[2].split()[-1] for e in base.eventlog.events[7]][:2] == ["'SecureBoot'", "'PK'"]
    bl.write(tmp_path, base)
    assert bl.load(tmp_path) == base


def test_build_records_eventlog_errors() -> None:
    base = sample(eventlog_path=Path("/nope"), eventlog_bytes=None, eventlog_error="no event log at /nope")
    assert base.eventlog == bl.EventLogRecord(path="/nope", error="no event log at /nope")
    base = sample(eventlog_path=Path("/bad"), eventlog_bytes=b"\x00" * 40)
    assert base.eventlog is not None
    assert base.eventlog.error is not None


# --- the endorsement key pin --------------------------------------------------------------------------------

EK_KEYS = json.loads((VECTORS / "ek-swtpm.json").read_text())["keys"]


def real_ek(i: int = 0) -> object:
    from shim.attest.tpm import ek

    return ek.identity(bytes.fromhex(EK_KEYS[i]["public"]), EK_KEYS[i]["pem"])


def test_the_ek_is_recorded_and_read_back(tmp_path: Path) -> None:
    base = sample(ek=real_ek())
    bl.write(tmp_path, base)
    doc = json.loads((tmp_path / "tpm-baseline.json").read_text())
    assert doc["ek"]["name"] == EK_KEYS[0]["name"]
    assert doc["ek"]["public"] == EK_KEYS[0]["public"]
    loaded = bl.load(tmp_path)
    assert loaded == base
    assert loaded is not None
    assert loaded.ek == real_ek()


def test_a_baseline_recorded_before_ek_pins_loads_unpinned(tmp_path: Path) -> None:
    """The file an older BACON wrote (no 'ek' key at all) keeps loading; the check reports it."""
    doc = bl.to_json(sample())
    assert "ek" not in doc
    (tmp_path / "tpm-baseline.json").write_text(json.dumps(doc))
    (tmp_path / "tpm-baseline.json").chmod(0o600)
    loaded = bl.load(tmp_path)
    assert loaded is not None
    assert loaded.ek is None


@pytest.mark.parametrize("ek_value", [
    None,  # "ek": null is not "no ek": a pin removed by hand is refused, not read as an old baseline
    {},
    "000b" + "00" * 32,
    {"name": EK_KEYS[1]["name"], "public": EK_KEYS[0]["public"], "pem": EK_KEYS[0]["pem"]},
    {"name": EK_KEYS[0]["name"], "public": EK_KEYS[0]["public"][:-2], "pem": EK_KEYS[0]["pem"]},
])
def test_a_malformed_ek_makes_the_baseline_unusable(tmp_path: Path, ek_value: object) -> None:
    doc = {**bl.to_json(sample(ek=real_ek())), "ek": ek_value}
    (tmp_path / "tpm-baseline.json").write_text(json.dumps(doc))
    (tmp_path / "tpm-baseline.json").chmod(0o600)
    with pytest.raises(bl.BaselineError, match="endorsement key is malformed"):
        bl.load(tmp_path)
