"""``shim.attest.tpm.wire`` (direct commands) against the real swtpm, next to tpm2-pytss's ESAPI on the same TPM:
the same AK, the same PCR values, a quote that verifies. (The rest of tests/integration/tpm runs through
the wire path too: ``open_tpm`` uses it for ``swtpm:``.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from shim.attest.tpm import attest, device
from shim.attest.tpm.settings import Tcti, TpmSettings, parse
from shim.common.errors import Unavailable
from tests.harness.swtpm import Swtpm

pytestmark = [pytest.mark.integration, pytest.mark.swtpm]
PCRS = (0, 7, 23)


@contextmanager
def esapi(tcti: Tcti) -> Iterator[device.Device]:
    pytest.importorskip("tpm2_pytss")
    from tpm2_pytss import ESAPI, TCTILdr

    e = ESAPI(TCTILdr(tcti.name, tcti.conf))
    try:
        yield device.Device(e, tcti)
    finally:
        e.close()


@pytest.mark.parametrize("ak", ["ecc256", "rsa2048"])
def test_wire_and_esapi_agree(swtpm: Swtpm, ak: str) -> None:
    settings = parse({"tcti": swtpm.tcti, "pcrs": list(PCRS), "ak": ak, "eventlog": ""})
    nonce = os.urandom(32)
    with device.open_tpm(settings) as dev:
        assert isinstance(dev, device.WireDevice)
        ours = dev.quote(settings.bank, PCRS, nonce, ak)
    with esapi(settings.tcti) as dev2:
        theirs = dev2.quote(settings.bank, PCRS, nonce, ak)
    assert (ours.ak_pem, ours.ak_tss, ours.pcrs) == (theirs.ak_pem, theirs.ak_tss, theirs.pcrs)
    key = attest.load_public_key(ours.ak_pem)
    att = attest.verify_quote(ours.message, ours.signature, key, nonce=nonce, pcrs=ours.pcrs, bank=settings.bank)
    assert att.extra_data == nonce


def test_wire_refused_connection_is_unavailable(spare_swtpm: Swtpm) -> None:
    tcti = spare_swtpm.tcti
    spare_swtpm.stop()
    with pytest.raises(Unavailable, match="cannot reach the TPM"), device.open_tpm(TpmSettings(tcti=Tcti(
            "swtpm", tcti.split(":", 1)[1]))):
        pass
