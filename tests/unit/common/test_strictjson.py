"""shim.common.strictjson: one strict reading of untrusted JSON (size, UTF-8, duplicate keys, NaN, depth)."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.common import strictjson
from shim.common.strictjson import Invalid


def test_a_plain_document_is_read() -> None:
    assert strictjson.loads(b'{"a": [1, 2.5, "x", null, true], "b": {}}', max_size=100) == \
        {"a": [1, 2.5, "x", None, True], "b": {}}
    assert strictjson.loads("[]", max_size=2) == []
    assert strictjson.load_object(b'{"k": "v"}', max_size=10) == {"k": "v"}


@pytest.mark.parametrize("doc", [b'{"a": 1, "a": 2}', b'{"x": {"a": 1, "a": 1}}', b'[{"k": 1, "k": 1}]',
                                 b'{"a": 1, "\\u0061": 2}'])
def test_a_duplicate_key_anywhere_is_refused(doc: bytes) -> None:
    with pytest.raises(Invalid, match=r"is not JSON: duplicate key 'a'|is not JSON: duplicate key 'k'"):
        strictjson.loads(doc, max_size=1000)


@pytest.mark.parametrize("doc", [b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"[1, NaN]"])
def test_nan_and_infinity_are_refused(doc: bytes) -> None:
    with pytest.raises(Invalid, match=r"is not JSON: .*Infinity is not JSON|is not JSON: NaN is not JSON"):
        strictjson.loads(doc, max_size=1000)


def test_oversize_is_refused_before_parsing() -> None:
    with pytest.raises(Invalid, match=r"^is 11 bytes, more than the limit of 10$"):
        strictjson.loads(b'"123456789"', max_size=10)
    assert strictjson.loads(b'"12345678"', max_size=10) == "12345678"
    with pytest.raises(Invalid, match="more than the limit"):
        strictjson.load_object("{" * 100, max_size=10)  # not parsed at all


@pytest.mark.parametrize("depth", [65, 100, 5000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    for doc in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(Invalid, match="nested more than 64 deep"):
            strictjson.loads(doc, max_size=1 << 20)


def test_nesting_up_to_the_limit_is_read() -> None:
    doc = "[" * 64 + "]" * 64
    assert strictjson.loads(doc, max_size=1000) is not None
    with pytest.raises(Invalid, match="nested more than 3 deep"):
        strictjson.loads('{"a": [[{}]]}', max_size=100, max_depth=3)
    assert strictjson.loads('{"a": [[1]]}', max_size=100, max_depth=3) == {"a": [[1]]}
    assert strictjson.loads('["[[[[", "{{{{{{"]', max_size=100, max_depth=1) == ["[[[[", "{{{{{{"]


@pytest.mark.parametrize("doc", [b"[" + b"{}," * 200_000 + b"{}]", b"[" + b"0," * 200_000 + b"0]",
                                 b'{"a":[' + b"[]," * 100_000 + b'[]],"b":[' + b'"x",' * 100_000 + b'"x"]}'])
def test_too_many_values_are_refused_before_parsing(doc: bytes) -> None:
    """Before, 8 MiB of ``[{},{},…]`` (what an image config may be) became some 400 MB of dicts."""
    with pytest.raises(Invalid, match="more than 200000 values"):
        strictjson.loads(doc, max_size=len(doc))


def test_values_are_counted_outside_strings() -> None:
    brackets = '"' + "[{," * 100_000 + '"'  # 300,000 structural characters, all in one string
    doc = '{"a": ' + brackets + r', "b": "\\", "c": "\\\"[,"}'
    assert strictjson.loads(doc, max_size=len(doc))["c"] == '\\"[,'
    doc = "[" + "0," * 199_999 + "0]"  # exactly the limit
    assert len(strictjson.loads(doc, max_size=len(doc))) == 200_000
    assert strictjson.loads("[1,2,3]", max_size=10, max_values=3) == [1, 2, 3]
    with pytest.raises(Invalid, match="more than 2 values"):
        strictjson.loads("[1,2,3]", max_size=10, max_values=2)


@pytest.mark.parametrize("doc", [b"\xff{}", '{"a": 1}'.encode("utf-16"), '["x"]'.encode("utf-32")])
def test_only_utf8(doc: bytes) -> None:
    with pytest.raises(Invalid, match=r"not UTF-8|is not JSON"):
        strictjson.loads(doc, max_size=1000)


@pytest.mark.parametrize("doc", [b"", b"{", b"[1,]", b"{'a': 1}", b'{"a": 1} x', b'"\x01"'])
def test_malformed(doc: bytes) -> None:
    with pytest.raises(Invalid, match=r"^is not JSON: "):
        strictjson.loads(doc, max_size=1000)


@pytest.mark.parametrize("doc", [b"[]", b"1", b'"x"', b"null"])
def test_load_object_wants_an_object(doc: bytes) -> None:
    with pytest.raises(Invalid, match=r"^is not a JSON object$"):
        strictjson.load_object(doc, max_size=1000)


def test_the_refusal_is_a_value_error_that_reads_after_a_name() -> None:
    with pytest.raises(ValueError, match="JSON object") as e:
        strictjson.load_object(b"[]", max_size=10)
    assert isinstance(e.value, Invalid)
    assert f"the OCI spec /b/config.json {e.value}" == "the OCI spec /b/config.json is not a JSON object"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_read_or_refused_with_invalid(data: bytes) -> None:
    with contextlib.suppress(Invalid):
        strictjson.loads(data, max_size=150)


def test_importing_it_does_not_import_json() -> None:
    code = "import sys; import shim.common.strictjson; print('json' in sys.modules)"
    r = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                       capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "False"


def test_a_callers_object_check_sees_each_object_and_its_refusal_is_kept() -> None:
    seen: list[list[str]] = []

    def check(pairs: list[tuple[str, object]]) -> None:
        seen.append([k for k, _ in pairs])
        if any(k.lower() != k for k, _ in pairs):
            raise Invalid("has a key in capitals")

    assert strictjson.loads('{"a": {"b": 1}}', max_size=100, check_object=check) == {"a": {"b": 1}}
    assert seen == [["b"], ["a"]]
    with pytest.raises(Invalid, match=r"^has a key in capitals$"):
        strictjson.loads('{"a": {"B": 1}}', max_size=100, check_object=check)
    with pytest.raises(Invalid, match="duplicate key 'a'"):  # still checked after the caller's check
        strictjson.loads('{"a": 1, "a": 1}', max_size=100, check_object=check)
