"""shim.admission.records: what a record keeps of the checked layers, and how a kept record is read back
(records from before the layers were kept; malformed layers refused, not guessed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shim.admission import records
from shim.common.errors import IntegrityError
from shim.images import rootfs

A, B = ("sha256:" + c * 64 for c in "ab")
CHAIN = rootfs.chain_ids([A, B])


def write(state: Path, token: str, obj: dict[str, object]) -> None:
    d = state / "admissions"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    p = d / f"{token}.json"
    p.write_text(json.dumps(obj))
    os.chmod(p, 0o600)


def new(state: Path, layers: tuple[str, ...] | None) -> records.AdmissionRecord:
    return records.new_record(state, digest=A, image="registry.example/app:1", level="Low", address="/run/c.sock",
                              namespace="default", layers=layers)


def test_a_record_keeps_the_checked_layers(tmp_path: Path) -> None:
    rec = new(tmp_path, CHAIN)
    loaded = records.load(tmp_path, rec.token)
    assert loaded is not None
    assert loaded.layers == list(CHAIN)


def test_an_image_without_layers_is_kept_as_an_empty_chain_not_as_unknown(tmp_path: Path) -> None:
    rec = new(tmp_path, ())
    loaded = records.load(tmp_path, rec.token)
    assert loaded is not None
    assert loaded.layers == []


def test_a_record_written_before_the_layers_were_kept_still_loads(tmp_path: Path) -> None:
    rec = new(tmp_path, None)
    raw = json.loads((tmp_path / "admissions" / f"{rec.token}.json").read_text())
    del raw["layers"]
    write(tmp_path, rec.token, raw)
    loaded = records.load(tmp_path, rec.token)
    assert loaded is not None
    assert loaded.layers is None
    assert loaded.digest == A


@pytest.mark.parametrize("layers", [
    "sha256:" + "a" * 64, [A, 7], [A, "sha256:short"], ["sha512:" + "a" * 128], [A.upper()], {"0": A},
    [A + "\n"], [A] * (rootfs.MAX_LAYERS + 1),
])
def test_malformed_layers_make_the_record_malformed(tmp_path: Path, layers: object) -> None:
    rec = new(tmp_path, CHAIN)
    raw = json.loads((tmp_path / "admissions" / f"{rec.token}.json").read_text())
    raw["layers"] = layers
    write(tmp_path, rec.token, raw)
    with pytest.raises(IntegrityError, match="layers"):
        records.load(tmp_path, rec.token)


def test_the_most_layers_an_image_may_have_fit_in_a_record(tmp_path: Path) -> None:
    many = rootfs.chain_ids(["sha256:" + f"{i:064x}" for i in range(rootfs.MAX_LAYERS)])
    rec = new(tmp_path, many)
    loaded = records.load(tmp_path, rec.token)
    assert loaded is not None
    assert loaded.layers == list(many)
