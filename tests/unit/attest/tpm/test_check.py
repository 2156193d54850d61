"""The ``tpm`` decision over data: crafted quotes against a baseline, without a TPM."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from shim.attest.tpm import attest, check, eventlog
from shim.attest.tpm import baseline as bl
from shim.attest.tpm import ek as ek_pin
from shim.attest.tpm import operations as cli
from shim.attest.tpm.device import Quote
from shim.attest.tpm.settings import parse
from shim.common.errors import ConfigError, Denied, IntegrityError, NotFound, Unavailable, UsageError
from tests.unit.attest.tpm.test_attest import craft_quote, ec_key, pem

VECTORS = Path(__file__).parents[3] / "vectors" / "tpm"
LOG = (VECTORS / "event-sd-boot-fedora37.bin").read_bytes()
REPLAYED = eventlog.replay(eventlog.parse(LOG))
PCRS = {p: REPLAYED.get(p, bytes(32)) for p in (0, 1, 2, 3, 4, 5, 7)}
NONCE = b"\x42" * 32
SETTINGS = parse({"tcti": "swtpm:host=127.0.0.1,port=2321"})


def fingerprint(seed: int = 0) -> str:
    return attest.fingerprint(ec_key(seed).public_key())


def baseline(pcrs: dict[int, bytes] | None = None, seed: int = 0, with_log: bool = True) -> bl.Baseline:
    return bl.build(bank="sha256", pcrs=pcrs or PCRS, recorded_at="2025-01-01T00:00:00Z", tcti="swtpm",
                    ak_fingerprint=fingerprint(seed), ak_pem=pem(ec_key(seed)).decode(),
                    eventlog_path=Path("/log") if with_log else None, eventlog_bytes=LOG if with_log else None)


def quote(pcrs: dict[int, bytes] | None = None, nonce: bytes = NONCE, seed: int = 0) -> Quote:
    pcrs = pcrs or PCRS
    message, sig = craft_quote(nonce, pcrs, ec_key(seed))
    return Quote(message=message, signature=sig, ak_pem=pem(ec_key(seed)), ak_tss=b"", pcrs=dict(pcrs))


def test_matching_quote_passes() -> None:
    r = check.judge_quote(SETTINGS, baseline(), quote(), NONCE)
    assert r.name == "tpm"
    assert "sha256:0,1,2,3,4,5,7 match the baseline of 2025-01-01T00:00:00Z" in r.summary
    assert r.details["nonce"] == NONCE.hex()
    assert r.details["pcrs"]["7"] == PCRS[7].hex()


def test_changed_pcr_is_denied_naming_it_old_and_new() -> None:
    now = dict(PCRS)
    now[7] = hashlib.sha256(b"other db").digest()
    with pytest.raises(Denied) as e:
        check.judge_quote(SETTINGS, baseline(), quote(now), NONCE, log_bytes=LOG)
    err = e.value
    assert err.check == "tpm"
    assert err.message.startswith(f"PCR 7 changed: {PCRS[7].hex()[:16]}… → {now[7].hex()[:16]}…")
    assert err.hint is not None
    assert "bacon baseline record" in err.hint
    # the log still replays to the old value: it says the PCR moved after boot
    assert "extended after boot" in err.hint
    assert "bacon: denied: image - digest -: check tpm failed: PCR 7 changed" in err.render()


def test_several_changed_pcrs_are_all_named() -> None:
    now = dict(PCRS)
    now[0], now[4] = b"\x00" * 31 + b"\x01", b"\x44" * 32
    with pytest.raises(Denied, match=r"PCR 0 changed: .*; PCR 4 changed: "):
        check.judge_quote(SETTINGS, baseline(), quote(now), NONCE)


def test_event_log_differences_are_explained() -> None:
    # The baseline was recorded from a log whose PCR 7 'db' event differed; now the log has the real one.
    base = baseline(pcrs={**PCRS, 7: b"\x77" * 32})
    assert base.eventlog is not None
    ev7 = list(base.eventlog.events[7])
    ev7[3] = (ev7[3][0], "00" * 32, "old db")
    base = bl.Baseline(**{**base.__dict__, "eventlog": bl.EventLogRecord(
        path="/log", replay_matches={}, events={**base.eventlog.events, 7: ev7})})
    with pytest.raises(Denied) as e:
        check.judge_quote(SETTINGS, base, quote(), NONCE, log_bytes=LOG)
    hint = e.value.hint or ""
    assert "events differing from the baseline's log for PCR 7:" in hint
    assert "'db'" in hint
    assert "'SecureBoot'" not in hint


def test_another_ak_is_denied() -> None:
    with pytest.raises(Denied, match="another TPM, or its endorsement hierarchy was cleared"):
        check.judge_quote(SETTINGS, baseline(seed=1), quote(), NONCE)


def test_wrong_nonce_is_denied() -> None:
    with pytest.raises(Denied, match="does not verify: the quote is for nonce"):
        check.judge_quote(SETTINGS, baseline(), quote(nonce=b"\x00" * 32), NONCE)


def test_altered_quote_is_denied() -> None:
    q = quote()
    flipped = bytearray(q.message)
    flipped[-1] ^= 1
    with pytest.raises(Denied, match="signature does not verify"):
        check.judge_quote(SETTINGS, baseline(), Quote(bytes(flipped), q.signature, q.ak_pem, b"", q.pcrs), NONCE)


def test_values_not_those_quoted_are_denied() -> None:
    q = quote()
    with pytest.raises(Denied, match="PCR digest"):
        check.judge_quote(SETTINGS, baseline(), Quote(q.message, q.signature, q.ak_pem, b"", {**q.pcrs, 1: bytes(32)}),
                     NONCE)


def test_baseline_must_cover_the_configured_pcrs_and_bank() -> None:
    base = baseline(pcrs={p: v for p, v in PCRS.items() if p != 7})
    with pytest.raises(Denied, match="no value for PCR 7"):
        check.judge_quote(SETTINGS, base, quote(), NONCE)
    with pytest.raises(Denied, match="holds the sha256 bank"):
        check.judge_quote(parse({"bank": "sha384"}), baseline(), quote(), NONCE)


def test_missing_baseline_is_denied_before_touching_the_tpm(tmp_path: Path) -> None:
    with pytest.raises(Denied) as e:
        check.run_tpm_check(parse({"tcti": "swtpm:host=127.0.0.1,port=9"}), tmp_path)
    assert "no TPM baseline recorded" in e.value.message
    assert e.value.hint is not None
    assert "sudo bacon baseline record" in e.value.hint


def test_on_a_host_without_a_tpm_the_denial_says_so_not_record_a_baseline(tmp_path: Path) -> None:
    """`bacon baseline record` cannot work where there is no TPM: the hint must not send the operator there."""
    with pytest.raises(Denied) as e:
        check.run_tpm_check(parse({"tcti": "device:/nonexistent/tpm"}), tmp_path)
    assert "this host has no TPM (/nonexistent/tpm does not exist)" in e.value.message
    assert e.value.hint is not None
    assert "baseline record" not in e.value.hint
    assert "host with a TPM" in e.value.hint


def test_unsafe_baseline_is_denied(tmp_path: Path) -> None:
    bl.write(tmp_path, baseline()).chmod(0o666)
    with pytest.raises(Denied, match=r"cannot be trusted: .*writable by others"):
        check.run_tpm_check(parse({}), tmp_path)


def test_no_tpm_is_unavailable(tmp_path: Path) -> None:
    bl.write(tmp_path, baseline())
    with pytest.raises(Unavailable, match="no TPM: /nonexistent/tpmrm0 does not exist") as e:
        check.run_tpm_check(parse({"tcti": "device:/nonexistent/tpmrm0"}), tmp_path)
    assert e.value.exit_code == 69


def test_nonce_parsing() -> None:
    assert cli.parse_nonce("0xABcd") == b"\xab\xcd"
    for bad in ("", "xyz", "00" * 65):
        with pytest.raises(UsageError):
            cli.parse_nonce(bad)


def test_secure_boot_state(tmp_path: Path) -> None:
    assert cli.secure_boot_state(tmp_path) == "unknown"
    var = tmp_path / cli.SECURE_BOOT_VAR
    var.write_bytes(b"\x06\x00\x00\x00\x01")
    assert cli.secure_boot_state(tmp_path) == "enabled"
    var.write_bytes(b"\x06\x00\x00\x00\x00")
    assert cli.secure_boot_state(tmp_path) == "disabled"


def test_status_without_tpm_reports_instead_of_raising(tmp_path: Path) -> None:
    s = cli.status(parse({"tcti": "device:/nonexistent/tpmrm0"}), tmp_path, efivars=tmp_path)
    assert s["present"] is False
    assert s["secure_boot"] == "unknown"
    assert "no TPM" in s["error"]
    assert s["baseline"]["recorded"] is False
    assert [r["state"] for r in s["pcrs"]] == ["unknown"] * 7
    assert any("not available" in line for line in cli.format_status(s))
    with pytest.raises(ConfigError, match="'pcrs' must be a list"):  # refused at load: never reaches status
        parse({"pcrs": 3})


def test_baseline_show_without_or_with_unsafe_baseline(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no TPM baseline recorded"):
        cli.cmd_baseline_show(parse({}), tmp_path, json_out=False, diff=False)
    bl.write(tmp_path, baseline()).chmod(0o644 | 0o020)
    with pytest.raises(IntegrityError, match="writable by others"):
        cli.cmd_baseline_show(parse({}), tmp_path, json_out=False, diff=False)


def test_baseline_show_prints_the_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bl.write(tmp_path, baseline())
    assert cli.cmd_baseline_show(parse({}), tmp_path, json_out=False, diff=False) == 0
    out = capsys.readouterr().out
    assert f"PCR 7      {PCRS[7].hex()}  (event log replays to it)" in out
    assert cli.cmd_baseline_show(parse({}), tmp_path, json_out=True, diff=False) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["baseline"]["pcrs"]["7"] == PCRS[7].hex()


# --- the endorsement key pin --------------------------------------------------------------------------------

EK_KEYS = json.loads((VECTORS / "ek-swtpm.json").read_text())["keys"]


def ek_of(i: int) -> ek_pin.EkIdentity:
    return ek_pin.identity(bytes.fromhex(EK_KEYS[i]["public"]), EK_KEYS[i]["pem"])


def pinned_baseline(i: int = 0) -> bl.Baseline:
    return replace(baseline(), ek=ek_of(i))


def test_a_quote_in_a_session_salted_to_the_pinned_ek_passes_and_says_so() -> None:
    r = check.judge_quote(SETTINGS, pinned_baseline(), replace(quote(), ek=ek_of(0)), NONCE)
    assert r.details["ek_pinned"] is True
    assert r.details["ek"] == EK_KEYS[0]["name"]
    assert f"EK {ek_of(0).short}" in r.summary


def test_a_quote_in_a_session_salted_to_another_ek_is_denied() -> None:
    with pytest.raises(Denied) as e:
        check.judge_quote(SETTINGS, pinned_baseline(0), replace(quote(), ek=ek_of(1)), NONCE)
    assert e.value.check == "tpm"
    assert e.value.exit_code == 77
    assert "presents endorsement key" in e.value.message
    assert e.value.hint is not None
    assert "sudo bacon baseline record" in e.value.hint


def test_a_quote_without_its_ek_under_a_pin_is_denied() -> None:
    with pytest.raises(Denied, match="presented no endorsement key"):
        check.judge_quote(SETTINGS, pinned_baseline(), quote(), NONCE)


def test_an_unpinned_baseline_admits_and_reports_it_by_default() -> None:
    r = check.judge_quote(SETTINGS, baseline(), replace(quote(), ek=ek_of(1)), NONCE)
    assert r.details["ek_pinned"] is False
    assert r.details["ek"] == "EK not pinned; re-record the baseline to pin it"
    assert "EK not pinned; re-record the baseline to pin it" in r.summary


def test_an_unpinned_baseline_is_denied_when_the_configuration_says_so(tmp_path: Path) -> None:
    strict = parse({"tcti": "swtpm:host=127.0.0.1,port=9", "unpinned_ek": "deny"})
    with pytest.raises(Denied, match=r"EK not pinned; re-record the baseline to pin it .*unpinned_ek") as e:
        check.judge_quote(strict, baseline(), replace(quote(), ek=ek_of(0)), NONCE)
    assert e.value.hint is not None
    assert "bacon baseline record" in e.value.hint
    bl.write(tmp_path, baseline())  # and before the TPM is asked anything (nothing listens on port 9)
    with pytest.raises(Denied, match="EK not pinned"):
        check.run_tpm_check(strict, tmp_path)
    assert check.judge_quote(strict, pinned_baseline(), replace(quote(), ek=ek_of(0)), NONCE).details["ek_pinned"]


@pytest.mark.parametrize("value", ["allow", "", True, 1, ["deny"]])
def test_unpinned_ek_setting_is_checked(value: object) -> None:
    with pytest.raises(ConfigError, match="unpinned_ek") as e:
        parse({"unpinned_ek": value})
    assert e.value.exit_code == 78
    assert parse({}).unpinned_ek == "warn"
    assert parse({"unpinned_ek": "deny"}).unpinned_ek == "deny"


def test_a_malformed_ek_in_the_baseline_is_denied_before_touching_the_tpm(tmp_path: Path) -> None:
    doc = {**bl.to_json(pinned_baseline()), "ek": None}
    path = bl.path_for(tmp_path)
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    with pytest.raises(Denied) as e:
        check.run_tpm_check(parse({"tcti": "swtpm:host=127.0.0.1,port=9"}), tmp_path)
    assert e.value.exit_code == 77
    assert "endorsement key is malformed" in e.value.message
    assert e.value.hint is not None
    assert "bacon baseline record" in e.value.hint
    with pytest.raises(IntegrityError, match="endorsement key is malformed"):
        cli.cmd_baseline_show(SETTINGS, tmp_path, json_out=False, diff=False)


def test_baseline_show_names_the_pinned_ek_or_says_it_is_not(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bl.write(tmp_path, pinned_baseline())
    cli.cmd_baseline_show(SETTINGS, tmp_path, json_out=False, diff=False)
    assert f"EK         {EK_KEYS[0]['name']}" in capsys.readouterr().out
    bl.write(tmp_path, baseline())
    cli.cmd_baseline_show(SETTINGS, tmp_path, json_out=False, diff=False)
    assert "EK         EK not pinned; re-record the baseline to pin it" in capsys.readouterr().out


def test_re_recording_says_what_happened_to_the_pin() -> None:
    assert cli.repin_note("none", ek_of(0)) is None
    assert cli.repin_note(ek_of(0), ek_of(0)) is None
    assert cli.repin_note("unpinned", ek_of(0)) == (f"EK pinned: {EK_KEYS[0]['name']} "
                                                    "(the replaced baseline did not pin one)")
    note = cli.repin_note(ek_of(0), ek_of(1))
    assert note is not None
    assert note.startswith(f"EK CHANGED: the replaced baseline pinned {EK_KEYS[0]['name']}, this TPM presents "
                           f"{EK_KEYS[1]['name']}")
