"""The OCI files read as runc reads them (shim.runtime.specfile): Go's encoding/json matches keys to fields
case-insensitively, so a key the gate would read exactly is refused when runc would read it otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shim.common.errors import Denied
from shim.runtime import gate as runtime_gate
from shim.runtime import specfile as runtime_specfile
from shim.runtime.specfile import SpecFileError, fold, loads, read


def test_fold_is_gos() -> None:
    assert fold("Capabilities") == "capabilities"
    assert fold("capabilitieſ") == "capabilities"  # U+017F, the long s
    assert fold("mas\u212aedPaths") == "maskedpaths"  # U+212A, the Kelvin sign
    assert fold("Ünknown") == "Ünknown"  # other letters only match themselves


@pytest.mark.parametrize("text", [
    '{"Process": {}}',
    '{"process": {"Capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}}',
    '{"process": {"capabilitieſ": {}}}',
    '{"process": {"nonewprivileges": false}}',  # lower case, but not as the field is spelled
    '{"process": {"apparmorprofile": "unconfined"}}',
    '{"process": {"noNewPrivileges": true, "nonewprivileges": false}}',
    '{"linux": {"mas\u212aedPaths": []}}',
    '{"process": {"user": {"UID": 0}}}',
    '{"hooks": {"PRESTART": []}}',
    '{"process": {}, "process": {}}',  # the last would win
    '{"process": {"capabilities": {}, "CAPABILITIES": {}}}',
    '{"args": [], "Args": []}',  # not a field the gate judges, but one field to runc twice
    '{"process": {"user": {"uid": NaN}}}',
    '{"x": Infinity}',
    "[]",
    '"process"',
    "{",
    '{"process": {}} {}',  # trailing data
])
def test_what_runc_could_read_otherwise_is_refused(text: str) -> None:
    with pytest.raises(SpecFileError):
        loads(text.encode())


def test_bad_utf8_is_refused() -> None:
    with pytest.raises(SpecFileError):
        loads(b'{"process": {"args": ["\xff"]}}')


def test_fields_spelled_as_runc_spells_them_are_read() -> None:
    spec = {"process": {"user": {"uid": 1000, "gid": 1000}, "capabilities": {"bounding": ["CAP_CHOWN"]},
                        "noNewPrivileges": True, "Args": ["sh"]},  # a key the gate does not judge: any case
            "annotations": {"io.example/Type": "x"}}
    assert loads(json.dumps(spec).encode()) == spec


def test_read_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    ok = tmp_path / "ok.json"
    ok.write_text('{"process": {}}')
    assert read(str(ok), 100) == {"process": {}}
    with pytest.raises(SpecFileError, match="larger than 10 bytes"):
        read(str(ok), 10)
    link = tmp_path / "link.json"
    link.symlink_to(ok)
    with pytest.raises(SpecFileError):
        read(str(link), 100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SpecFileError, match="not a regular file"):
        read(str(fifo), 100)  # and does not wait for a writer
    with pytest.raises(SpecFileError, match="not a regular file"):
        read(str(tmp_path), 100)
    with pytest.raises(SpecFileError):
        read(str(tmp_path / "missing.json"), 100)


def test_create_reads_config_json_as_runc_does(tmp_path: Path) -> None:
    """Before, {"Process": …} in config.json was not seen by the profile and runc ran it."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    caps = {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"]}
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "Process": {"capabilities": caps}}))
    with pytest.raises(Denied, match="'Process' is runc's 'process'") as e:
        runtime_gate.read_spec(bundle)
    assert e.value.check == "spec"
    assert {"process", "capabilities", "hooks", "mounts", "namespaces", "root"} <= runtime_specfile.FIELDS


def test_every_judged_field_spelled_otherwise_is_refused() -> None:
    for name in sorted(runtime_specfile.FIELDS):
        for variant in {name.upper(), name.lower(), name.capitalize(), name.swapcase(),
                        name.replace("s", "\u017f"), name.replace("k", "\u212a")} - {name}:
            with pytest.raises(SpecFileError, match="is runc's"):
                loads(json.dumps({variant: 1}).encode())
        assert loads(json.dumps({name: 1}).encode()) == {name: 1}
