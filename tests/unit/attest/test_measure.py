"""The [measure] table: where launches are extended, and which PCRs can never hold them (and why)."""

from __future__ import annotations

import pytest

from shim.attest import measure
from shim.common.errors import ConfigError


def test_off_unless_asked() -> None:
    assert not measure.parse({}).enabled
    s = measure.parse({"into": ["tpm", "rtmr"]})
    assert (s.tpm, s.rtmr, s.pcr) == (True, True, 14)


@pytest.mark.parametrize(("table", "words"), [
    ({"into": "tpm"}, "'into' must be a list"),
    ({"into": ["pcr"]}, "'into' must be a list"),
    ({"into": ["tpm"], "pcr": 7}, "firmware"),
    ({"into": ["tpm"], "pcr": 10}, "IMA"),
    ({"into": ["tpm"], "pcr": 16}, "reset"),
    ({"into": ["tpm"], "pcr": 23}, "reset"),
    ({"into": ["tpm"], "pcr": 20}, "locality 0"),
    ({"into": ["tpm"], "pcr": 24}, "0..23"),
    ({"into": ["tpm"], "pcr": True}, "0..23"),
    ({"into": ["tpm"], "measurements": "relative/dir"}, "absolute"),
    ({"into": ["tpm"], "bank": "sha1"}, "unknown key"),
])
def test_refused(table: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        measure.parse(table)


def test_the_launch_pcr_is_not_a_baseline_pcr() -> None:
    with pytest.raises(ConfigError, match="baseline"):
        measure.parse({"into": ["tpm"], "pcr": 14}, boot_pcrs=(0, 7, 14))
    assert measure.parse({"into": ["rtmr"], "pcr": 14}, boot_pcrs=(0, 7, 14)).rtmr  # no PCR extended then
