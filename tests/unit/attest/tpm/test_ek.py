"""The endorsement key's identity (``shim.attest.tpm.ek``): its TPM name as tpm2-tools computes it for a real
swtpm's EK, the baseline's ``ek`` object refused when malformed or inconsistent, and the comparison."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.attest.tpm import ek
from shim.common.errors import EXIT_DENIED
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import mutated

VECTORS = Path(__file__).parents[3] / "vectors" / "tpm"
KEYS: list[dict[str, str]] = json.loads((VECTORS / "ek-swtpm.json").read_text())["keys"]


def real(i: int = 0) -> ek.EkIdentity:
    return ek.identity(bytes.fromhex(KEYS[i]["public"]), KEYS[i]["pem"])


@pytest.mark.parametrize("i", range(len(KEYS)))
def test_the_name_is_the_one_tpm2_tools_reads_from_the_tpm(i: int) -> None:
    assert ek.name_of(bytes.fromhex(KEYS[i]["public"])) == KEYS[i]["name"]


def test_two_tpms_have_two_names() -> None:
    assert real(0).name != real(1).name


def test_a_name_covers_the_whole_public_area_not_only_the_key() -> None:
    public = bytearray(bytes.fromhex(KEYS[0]["public"]))
    public[4] ^= 0x01  # objectAttributes: same key, another object
    assert ek.name_of(bytes(public)) != KEYS[0]["name"]


def test_other_name_algorithms() -> None:
    public = bytes.fromhex(KEYS[0]["public"])
    sha384 = public[:2] + b"\x00\x0c" + public[4:]
    assert ek.name_of(sha384) == "000c" + hashlib.sha384(sha384).hexdigest()
    with pytest.raises(ek.EkError, match="0x0004 is not accepted"):
        ek.name_of(public[:2] + b"\x00\x04" + public[4:])  # SHA-1
    with pytest.raises(ek.EkError, match="bytes"):
        ek.name_of(b"\x00\x23")
    with pytest.raises(ek.EkError, match="bytes"):
        ek.name_of(public + bytes(ek.MAX_PUBLIC))


def test_json_round_trip() -> None:
    assert ek.from_json(ek.to_json(real())) == real()
    assert ek.to_json(real())["name"] == KEYS[0]["name"]


def _with(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = ek.to_json(real())
    doc.update(kw)
    return doc


@pytest.mark.parametrize(("doc", "why"), [
    (None, "exactly"),
    ([], "exactly"),
    ({"name": KEYS[0]["name"]}, "exactly"),
    ({**ek.to_json(real()), "extra": 1}, "exactly"),
    (_with(name=1), "strings"),
    (_with(public="zz"), "not hex"),
    (_with(public=""), "bytes"),
    (_with(name=KEYS[1]["name"]), "is not the name of"),  # a name swapped in, the public area left
    (_with(public=KEYS[1]["public"]), "is not the name of"),
    (_with(name=KEYS[0]["name"].upper()), "is not the name of"),
    (_with(pem="PEM"), "not a PEM"),
])
def test_a_malformed_or_inconsistent_record_is_refused(doc: object, why: str) -> None:
    with pytest.raises(ek.EkError, match=why):
        ek.from_json(doc)


def test_the_same_ek_passes_and_no_pin_is_not_judged() -> None:
    ek.judge(real(0), real(0).name, "swtpm")
    ek.judge(None, real(1).name, "swtpm")  # a baseline from before pins: the caller reports it
    ek.judge(None, None, "swtpm")


def test_another_ek_is_a_mismatch_with_the_fix() -> None:
    with pytest.raises(ek.EkMismatch) as e:
        ek.judge(real(0), real(1).name, "swtpm:host=127.0.0.1,port=1")
    assert e.value.exit_code == EXIT_DENIED
    assert real(1).short in e.value.message
    assert real(0).short in e.value.message
    assert "swtpm:host=127.0.0.1,port=1" in e.value.message
    assert e.value.hint is not None
    assert "bacon baseline record" in e.value.hint


def test_no_ek_seen_under_a_pin_is_a_mismatch() -> None:
    with pytest.raises(ek.EkMismatch, match="presented no endorsement key"):
        ek.judge(real(0), None, "swtpm")


def test_describe() -> None:
    assert ek.describe(None) == {"ek_pinned": False, "ek": "EK not pinned; re-record the baseline to pin it"}
    assert ek.describe(real()) == {"ek_pinned": True, "ek": KEYS[0]["name"]}


@fuzz(300)
@given(st.data())
def test_a_mutated_public_area_never_keeps_the_name_nor_raises_another_error(data: st.DataObject) -> None:
    """Whatever the bytes, the record either is refused with :class:`ek.EkError` or names exactly them."""
    public = data.draw(mutated(bytes.fromhex(KEYS[0]["public"])))
    doc = {**ek.to_json(real()), "public": public.hex()}
    try:
        ek.from_json(doc)
    except ek.EkError:
        return
    assert public == bytes.fromhex(KEYS[0]["public"])  # only the unmutated area keeps the name
