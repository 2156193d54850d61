"""What the PCR selection covers of this boot, from the event log (a real systemd-boot log, Fedora 37), and
what `bacon status` says about it and about the attestation key's pin."""

from __future__ import annotations

from pathlib import Path

from shim.attest.tpm import operations as tpm_cli
from shim.attest.tpm.settings import coverage, parse

LOG = Path(__file__).resolve().parents[3] / "vectors" / "tpm" / "event-sd-boot-fedora37.bin"


def test_the_default_selection_leaves_out_what_the_boot_loader_measured(tmp_path: Path) -> None:
    s = tpm_cli.status(parse({"tcti": "device:/nonexistent/tpmrm0", "eventlog": str(LOG)}), tmp_path)
    cov = s["coverage"]
    assert cov["covered"] == [0, 1, 2, 3, 4, 5, 7]
    assert cov["uncovered"], cov  # systemd-boot measured more than PCRs 0-7: said, not silently left out
    assert set(cov["uncovered"]) <= {8, 9, 11, 12, 14}
    widened = tpm_cli.status(parse({"tcti": "device:/nonexistent/tpmrm0", "eventlog": str(LOG),
                              "pcrs": [0, 1, 2, 3, 4, 5, 7, *cov["uncovered"]]}), tmp_path)
    assert widened["coverage"]["uncovered"] == []


def test_without_an_event_log_the_later_stages_are_unknown() -> None:
    assert coverage((0, 1, 2, 3, 4, 5, 7), None) == {"covered": [0, 1, 2, 3, 4, 5, 7], "uncovered": [],
                                                      "unknown": [8, 9, 11, 12, 14]}


def test_status_says_what_the_attestation_key_pin_proves(tmp_path: Path) -> None:
    s = tpm_cli.status(parse({"tcti": "device:/nonexistent/tpmrm0", "eventlog": ""}), tmp_path)
    assert "trust on first use" in s["ak_trust"]
    assert "does not prove" in s["ak_trust"]
    assert "endorsement key" in s["ak_trust"]
