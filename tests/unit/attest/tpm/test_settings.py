"""The ``[tpm]`` table: defaults, TCTIs, PCR lists, and what is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shim.attest.tpm.settings import Tcti, parse, parse_pcrs, parse_tcti
from shim.common.errors import ConfigError, UsageError


def test_defaults() -> None:
    s = parse({})
    assert s.tcti == Tcti("device", "/dev/tpmrm0")
    assert s.pcrs == (0, 1, 2, 3, 4, 5, 7)
    assert s.bank == "sha256"
    assert s.digest_size == 32
    assert s.eventlog == Path("/sys/kernel/security/tpm0/binary_bios_measurements")
    assert s.selection == "sha256:0,1,2,3,4,5,7"


@pytest.mark.parametrize(("text", "tcti"), [
    ("device", Tcti("device", "/dev/tpmrm0")),
    ("device:/dev/tpm0", Tcti("device", "/dev/tpm0")),
    ("tabrmd", Tcti("tabrmd", "")),
    ("tabrmd:bus_name=com.intel.tss2.Tabrmd", Tcti("tabrmd", "bus_name=com.intel.tss2.Tabrmd")),
    ("swtpm:host=127.0.0.1,port=2321", Tcti("swtpm", "host=127.0.0.1,port=2321")),
    ("mssim", Tcti("mssim", "")),
])
def test_tctis(text: str, tcti: Tcti) -> None:
    assert parse_tcti(text) == tcti
    assert parse({"tcti": text}).tcti == tcti


@pytest.mark.parametrize("text", ["", "libtpms", "device:dev/tpm0", "swtpm:port=99999", "swtpm:host",
                                  "swtpm:user=x", 7])
def test_bad_tctis(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_tcti(text)


def test_pcr_lists() -> None:
    assert parse({"pcrs": [7, 0, 23]}).pcrs == (0, 7, 23)
    assert parse_pcrs("sha256:0,7", "--pcrs", UsageError) == (0, 7)
    with pytest.raises(UsageError, match="unknown PCR bank"):
        parse_pcrs("md5:0", "--pcrs", UsageError)
    with pytest.raises(UsageError, match="numbers separated by commas"):
        parse_pcrs("0,x", "--pcrs", UsageError)


@pytest.mark.parametrize("section", [
    {"pcrs": []}, {"pcrs": [24]}, {"pcrs": [1, 1]}, {"pcrs": [True]}, {"pcrs": "0,1"},
    {"bank": "sha1"}, {"bank": "md5"}, {"ak": "dsa"}, {"eventlog": "relative"}, {"eventlog": 3}, {"unknown": 1},
])
def test_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse(section)


def test_eventlog_can_be_disabled() -> None:
    assert parse({"eventlog": ""}).eventlog is None
