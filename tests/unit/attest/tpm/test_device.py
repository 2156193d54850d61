"""``shim.attest.tpm.device``, the one TPM backend (tpm2-pytss's ESAPI), without a TPM: what it reads from a PCR
selection, what it answers when the library or the TPM is missing, and that nothing in ``shim`` speaks the
TPM's wire protocol by hand (the swtpm tests, tests/integration/tpm, run it against a TPM)."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest

from shim.attest.tpm import device
from shim.attest.tpm.settings import parse
from shim.common.errors import EXIT_UNAVAILABLE, Unavailable

pytss = pytest.importorskip("tpm2_pytss")
from tpm2_pytss.constants import TPM2_ALG  # noqa: E402
from tpm2_pytss.types import TPML_PCR_SELECTION, TPMS_PCR_SELECTION  # noqa: E402

SHIM = Path(__file__).resolve().parents[4] / "shim"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_selected_reads_the_pcrs_of_the_bank() -> None:
    assert device.selected("sha256", TPML_PCR_SELECTION.parse("sha256:0,7,23")) == [0, 7, 23]
    empty_other = TPMS_PCR_SELECTION(hash=TPM2_ALG.SHA384, sizeofSelect=3, pcrSelect=b"\0\0\0")
    ours = TPMS_PCR_SELECTION(hash=TPM2_ALG.SHA256, sizeofSelect=3, pcrSelect=b"\x81\0\x80")
    assert device.selected("sha256", TPML_PCR_SELECTION([empty_other, ours])) == [0, 7, 23]


def test_selected_refuses_values_of_another_bank() -> None:
    with pytest.raises(Unavailable, match="another PCR bank"):
        device.selected("sha256", TPML_PCR_SELECTION.parse("sha384:0"))


@pytest.mark.parametrize("tcti", ["swtpm", "mssim"])
def test_a_simulator_that_is_not_there_is_unavailable(tcti: str) -> None:
    settings = parse({"tcti": f"{tcti}:host=127.0.0.1,port={closed_port()}"})
    with pytest.raises(Unavailable, match=f"cannot reach the TPM at {tcti}:") as e, device.open_tpm(settings):
        pass
    assert e.value.exit_code == EXIT_UNAVAILABLE
    assert "start the TPM simulator" in (e.value.hint or "")


def test_a_device_that_does_not_exist_is_unavailable(tmp_path: Path) -> None:
    settings = parse({"tcti": f"device:{tmp_path / 'tpmrm0'}"})
    with pytest.raises(Unavailable, match="does not exist"), device.open_tpm(settings):
        pass


def test_without_tpm2_pytss_every_tcti_answers_with_the_line_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's device and swtpm were spoken to without the library; now every TCTI needs it, and its
    absence is 69 with the install line, not a traceback (70) and not a silent pass."""
    for name in [m for m in sys.modules if m == "tpm2_pytss" or m.startswith("tpm2_pytss.")]:
        monkeypatch.setitem(sys.modules, name, None)
    for tcti in ("swtpm:host=127.0.0.1,port=2321", "device:/dev/null", "mssim", "tabrmd"):
        with pytest.raises(Unavailable) as e, device.open_tpm(parse({"tcti": tcti})):
            pass
        assert e.value.exit_code == EXIT_UNAVAILABLE
        assert "pip install '.[tpm]'" in (e.value.hint or ""), e.value.hint


def test_no_module_marshals_tpm_commands_by_hand() -> None:
    """A TPM command begins with TPM_ST_NO_SESSIONS (0x8001) or TPM_ST_SESSIONS (0x8002) and a password
    authorization names TPM_RS_PW (0x40000009): none of them appears in shim/ (tpm2-pytss builds commands;
    shim/attest/tpm/attest.py only parses what the TPM signed)."""
    pattern = re.compile(r"0x0*800[12]\b|0x40000009|\\x80\\x0[12]|ST_(NO_)?SESSIONS|RS_PW", re.IGNORECASE)
    found = [f"{p.relative_to(SHIM)}:{n}" for p in SHIM.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
