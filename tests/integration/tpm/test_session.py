"""The TPM's production path (``shim.attest.tpm.device`` over tpm2-pytss's ESAPI) seen from the wire, on a real
swtpm behind a tap (tests/harness/faults.py): every quote and PCR read runs in an HMAC session salted to
the endorsement key, with parameter encryption where the command allows it; a response changed on the way
is refused; a TPM that goes away or stalls mid-command is unavailable (fail closed); nothing is left loaded
in a TPM that has no resource manager."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.attest.tpm import check
from shim.attest.tpm import operations as cli
from shim.attest.tpm.settings import parse
from shim.common.errors import Unavailable
from tests.harness import faults
from tests.harness import swtpm as swtpm_h
from tests.harness.swtpm import Swtpm

pytestmark = [pytest.mark.integration, pytest.mark.swtpm]

PCRS = [0, 7, 23]
CC_CREATE_PRIMARY, CC_START_AUTH_SESSION, CC_QUOTE, CC_PCR_READ = 0x131, 0x176, 0x158, 0x17E
CC_FLUSH_CONTEXT, CC_PCR_EXTEND = 0x165, 0x182
HANDLES = {CC_CREATE_PRIMARY: 1, CC_QUOTE: 1, CC_PCR_READ: 0, CC_PCR_EXTEND: 1}  # handles before the sessions
RS_PW, RH_NULL = 0x40000009, 0x40000007
ST_SESSIONS = 0x8002
ATTR_DECRYPT, ATTR_ENCRYPT, ATTR_AUDIT = 0x20, 0x40, 0x80
ALG_AES, ALG_CFB = 0x0006, 0x0043
TPMS_ATTEST_MAGIC = b"\xffTCG"


def section(tcti: str, **kw: Any) -> dict[str, Any]:
    return {"tcti": tcti, "pcrs": PCRS, "eventlog": "", "timeout": 10, **kw}


def code(frame: bytes) -> int:
    return int.from_bytes(frame[6:10], "big")


def first_session(command: bytes) -> tuple[int, int]:
    """(session handle, session attributes) of a command's first authorization."""
    assert int.from_bytes(command[:2], "big") == ST_SESSIONS, f"command 0x{code(command):x} carries no session"
    pos = 10 + 4 * HANDLES[code(command)] + 4  # header, handles, authorizationSize
    handle = int.from_bytes(command[pos : pos + 4], "big")
    nonce_size = int.from_bytes(command[pos + 4 : pos + 6], "big")
    return handle, command[pos + 6 + nonce_size]


def flip_last_parameter_byte(command_code: int) -> Callable[[bytes], bytes]:
    """Change the last byte of a response's parameters (a PCR value, a signature): what an interposer does."""
    def tamper(response: bytes) -> bytes:
        if int.from_bytes(response[6:10], "big") != 0:  # an error response has no parameters
            return response
        pos = 10 + 4 * (command_code == CC_CREATE_PRIMARY)
        end = pos + 4 + int.from_bytes(response[pos : pos + 4], "big")
        return response[: end - 1] + bytes([response[end - 1] ^ 0x01]) + response[end:]
    return tamper


@contextlib.contextmanager
def tapped(tpm: Swtpm, trigger: faults.TpmTap | faults.TpmCommands) -> Iterator[str]:
    """A ``[tpm] tcti`` that reaches ``tpm`` through a proxy applying ``trigger``."""
    port = swtpm_h.free_port_pair()
    with faults.SocketProxy(port, ("127.0.0.1", tpm.port), trigger), \
            faults.SocketProxy(port + 1, ("127.0.0.1", tpm.ctrl_port)):
        yield f"swtpm:host=127.0.0.1,port={port}"


def loaded(tpm: Swtpm) -> list[str]:
    """Transient objects and loaded sessions in ``tpm`` (tpm2-tools)."""
    if shutil.which("tpm2_getcap") is None:
        pytest.skip("tpm2_getcap is not installed (apt-get install tpm2-tools)")
    env = {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti, "TSS2_LOG": "all+NONE"}
    out: list[str] = []
    for cap in ("handles-transient", "handles-loaded-session"):
        r = subprocess.run(["tpm2_getcap", cap], env=env, capture_output=True, text=True, timeout=30, check=True)
        out += [line for line in r.stdout.split() if line.startswith("0x") or line.startswith("- 0x")]
    return out


@pytest.fixture
def recorded(swtpm: Swtpm, tmp_path: Path) -> Path:
    """A baseline of ``swtpm`` in ``tmp_path``, recorded through the production path."""
    assert cli.cmd_baseline_record(parse(section(swtpm.tcti)), tmp_path) == 0
    return tmp_path


def test_an_admission_quote_runs_in_a_salted_encrypted_session(swtpm: Swtpm, recorded: Path) -> None:
    nonce = os.urandom(32)
    tap = faults.TpmTap()
    with tapped(swtpm, tap) as tcti:
        result = check.run_tpm_check(parse(section(tcti)), recorded, nonce=nonce)
    assert result.name == "tpm"
    assert result.details["nonce"] == nonce.hex()

    codes = [code(c) for c in tap.commands]
    [start] = [c for c in tap.commands if code(c) == CC_START_AUTH_SESSION]
    tpm_key, bind = struct.unpack(">II", start[10:18])
    assert tpm_key != RH_NULL, "the session is salted to a key"
    assert bind == RH_NULL
    pos = 18 + 2 + int.from_bytes(start[18:20], "big")  # nonceCaller
    salt = int.from_bytes(start[pos : pos + 2], "big")
    assert salt > 0, "the salt is sent, encrypted to the endorsement key"
    pos += 2 + salt
    assert struct.unpack(">BHHH", start[pos : pos + 7]) == (0, ALG_AES, 128, ALG_CFB)  # HMAC session, AES-128-CFB
    session = None
    for c in tap.commands:
        if code(c) in (CC_QUOTE, CC_PCR_READ):
            handle, attrs = first_session(c)
            assert handle >> 24 == 0x02, f"0x{code(c):x} uses session 0x{handle:08x}, not an HMAC session"
            assert session in (None, handle)
            session = handle
            if code(c) == CC_PCR_READ:
                assert attrs & ATTR_AUDIT, "PCR_Read's response is HMAC'd"
            else:
                assert attrs & ATTR_DECRYPT, f"0x{code(c):x}'s command is not encrypted"
                assert attrs & ATTR_ENCRYPT, f"0x{code(c):x}'s response is not encrypted"
    assert CC_QUOTE in codes
    assert CC_PCR_READ not in codes, "the quote's signed digest is the baseline's: its PCRs are not read again"
    [quote] = [c for c in tap.commands if code(c) == CC_QUOTE]
    assert nonce not in quote, "the nonce went to the TPM in clear"
    [answer] = [r for c, r in zip(tap.commands, tap.responses, strict=True) if code(c) == CC_QUOTE]
    assert TPMS_ATTEST_MAGIC not in answer, "the quote came back in clear"
    # the empty password: only creating the EK the session is salted to, and the AK (docs/tpm.md)
    passwords = [code(c) for c in tap.commands if c[:2] == b"\x80\x02" and code(c) in HANDLES
                 and first_session(c)[0] == RS_PW]
    assert passwords == [CC_CREATE_PRIMARY, CC_CREATE_PRIMARY]


def test_a_quote_changed_on_the_way_is_refused(swtpm: Swtpm, recorded: Path) -> None:
    """An interposer flips one byte of the quote's signature: the response HMAC does not verify, the TPM is
    unavailable (the gate denies), and nothing is left loaded in the TPM."""
    tap = faults.TpmTap(code=CC_QUOTE, tamper=flip_last_parameter_byte(CC_QUOTE))
    with tapped(swtpm, tap) as tcti, pytest.raises(Unavailable, match="HMAC") as e:
        check.run_tpm_check(parse(section(tcti)), recorded)
    assert tap.tampered >= 1
    assert "changed it" in e.value.message
    assert e.value.exit_code == 69
    assert loaded(swtpm) == []


def test_a_pcr_read_changed_on_the_way_is_refused(swtpm: Swtpm) -> None:
    """``bacon baseline show --diff``, ``bacon status`` and the launch log read PCRs without a quote: the
    values are still the TPM's or nothing; the read runs in the session as an audit session."""
    tap = faults.TpmTap()
    with tapped(swtpm, tap) as tcti:
        cli.read_pcrs(parse(section(tcti)), "sha256", PCRS)
    [read] = [c for c in tap.commands if code(c) == CC_PCR_READ]
    handle, attrs = first_session(read)
    assert handle >> 24 == 0x02
    assert attrs & ATTR_AUDIT
    tap = faults.TpmTap(code=CC_PCR_READ, tamper=flip_last_parameter_byte(CC_PCR_READ))
    with tapped(swtpm, tap) as tcti, pytest.raises(Unavailable, match="HMAC"):
        cli.read_pcrs(parse(section(tcti)), "sha256", PCRS)
    assert tap.tampered == 1
    assert loaded(swtpm) == []


def test_a_changed_pcr_is_read_in_the_session_and_denied(spare_swtpm: Swtpm, tmp_path: Path) -> None:
    """When the quote's digest is not the baseline's, the PCRs are read (in the session) to name the one
    that changed."""
    from shim.attest.tpm.device import open_tpm
    from shim.common.errors import Denied

    assert cli.cmd_baseline_record(parse(section(spare_swtpm.tcti)), tmp_path) == 0
    with open_tpm(parse(section(spare_swtpm.tcti))) as dev:
        dev.extend(23, "sha256", b"\x23" * 32)
    tap = faults.TpmTap()
    with tapped(spare_swtpm, tap) as tcti, pytest.raises(Denied, match="PCR 23"):
        check.run_tpm_check(parse(section(tcti)), tmp_path)
    [read] = [c for c in tap.commands if code(c) == CC_PCR_READ]
    assert first_session(read)[1] & ATTR_AUDIT


def test_a_pcr_extend_alone_starts_no_session(swtpm: Swtpm) -> None:
    """A measured launch's extend is authorized by the PCR's empty password (docs/tpm.md: a changed digest
    breaks the launch log's replay); the read before it still runs in the session."""
    from shim.attest.tpm.device import open_tpm

    tap = faults.TpmTap()
    with tapped(swtpm, tap) as tcti, open_tpm(parse(section(tcti))) as dev:
        dev.extend(16, "sha256", b"\x11" * 32)
    assert [code(c) for c in tap.commands] == [CC_PCR_EXTEND]
    assert first_session(tap.commands[0])[0] == RS_PW
    tap = faults.TpmTap()
    with tapped(swtpm, tap) as tcti, open_tpm(parse(section(tcti))) as dev:
        before = dev.read_pcrs("sha256", [16])[16]
        dev.extend(16, "sha256", b"\x11" * 32)
        assert dev.read_pcrs("sha256", [16])[16] != before
    assert CC_START_AUTH_SESSION in [code(c) for c in tap.commands]
    assert loaded(swtpm) == []


def record_then_change(tpm: Swtpm, state: Path, at: int) -> None:
    """Record a baseline; when the fault is at PCR_Read, change PCR 23 so that the admission reads them."""
    from shim.attest.tpm.device import open_tpm

    assert cli.cmd_baseline_record(parse(section(tpm.tcti)), state) == 0
    if at == CC_PCR_READ:
        with open_tpm(parse(section(tpm.tcti))) as dev:
            dev.extend(23, "sha256", b"\x23" * 32)


@pytest.mark.parametrize("at", [CC_START_AUTH_SESSION, CC_CREATE_PRIMARY, CC_QUOTE, CC_PCR_READ])
def test_the_tpm_gone_mid_command_is_unavailable(spare_swtpm: Swtpm, tmp_path: Path, at: int) -> None:
    record_then_change(spare_swtpm, tmp_path, at)
    trigger = faults.TpmCommands(code=at, action=faults.CUT)
    started = time.monotonic()
    with tapped(spare_swtpm, trigger) as tcti, pytest.raises(Unavailable) as e:
        check.run_tpm_check(parse(section(tcti)), tmp_path)
    assert at in trigger.seen
    assert time.monotonic() - started < 5, "a cut connection is an answer, not a wait for the deadline"
    assert "TPM" in e.value.message
    assert e.value.hint


@pytest.mark.parametrize("at", [CC_START_AUTH_SESSION, CC_PCR_READ])
def test_a_tpm_that_stalls_mid_command_meets_the_deadline(spare_swtpm: Swtpm, tmp_path: Path, at: int) -> None:
    record_then_change(spare_swtpm, tmp_path, at)
    trigger = faults.TpmCommands(code=at, action=faults.STALL)
    started = time.monotonic()
    with tapped(spare_swtpm, trigger) as tcti, pytest.raises(Unavailable, match="did not answer within 2s"):
        check.run_tpm_check(parse(section(tcti, timeout=2)), tmp_path)
    assert at in trigger.seen
    assert time.monotonic() - started < 6


def test_the_attestation_key_of_another_tpm_is_denied(swtpm: Swtpm, spare_swtpm: Swtpm, recorded: Path) -> None:
    from shim.common.errors import Denied

    with pytest.raises(Denied, match="another TPM"):
        check.run_tpm_check(parse(section(spare_swtpm.tcti)), recorded)


def test_nothing_is_left_loaded_after_quotes_and_reads(swtpm: Swtpm, recorded: Path) -> None:
    for _ in range(3):
        check.run_tpm_check(parse(section(swtpm.tcti)), recorded)
        cli.read_pcrs(parse(section(swtpm.tcti)), "sha256", PCRS)
    assert loaded(swtpm) == []


def test_mssim_tcti_on_something_that_is_not_the_simulator_is_unavailable(swtpm: Swtpm) -> None:
    """swtpm answers TPM commands in the MS simulator's framing but not its platform commands: the mssim
    TCTI cannot start there, and says so (exit 69), with no traceback."""
    with pytest.raises(Unavailable, match="cannot reach the TPM at mssim"):
        cli.read_pcrs(parse(section(f"mssim:host=127.0.0.1,port={swtpm.port}")), "sha256", PCRS)


def test_a_device_that_is_not_a_tpm_is_unavailable(tmp_path: Path) -> None:
    """``device:`` naming a character device that is not a TPM (/dev/null answers nothing)."""
    with pytest.raises(Unavailable) as e:
        cli.read_pcrs(parse(section("device:/dev/null")), "sha256", PCRS)
    assert "/dev/null" in e.value.message
