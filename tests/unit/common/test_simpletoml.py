"""``shim.common.simpletoml`` against ``tomllib``: ``loads`` returns ``None`` or exactly what ``tomllib.loads`` returns
(same types, same key order), and ``None`` whenever tomllib raises (``tests.fuzz.targets.check_simpletoml``).
The shipped and generated configurations must stay in the subset: they are the forwarding path's fast case.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.common import simpletoml
from shim.operator.enable import set_config_nerdctl
from tests.fuzz import targets
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import mutated

ROOT = Path(__file__).resolve().parents[3]
PACKAGED = (ROOT / "packaging" / "deb" / "config.toml").read_text()
TMP = "/tmp/pytest-of-ci/pytest-7/test_gate_0"


def check(doc: str) -> dict[str, object] | None:
    return targets.check_simpletoml(doc)


def raises(doc: str) -> bool:
    try:
        tomllib.loads(doc)
    except Exception:  # noqa: BLE001 -- whatever tomllib refuses
        return True
    return False


def trusted_config(level: str = "Low", extra: str = "", root: str = TMP, key: str = "/tmp/w/keys/trusted.pub",
                   registry: str = "127.0.0.1:5000") -> str:
    """The text ``tests/conftest.py::trusted_config`` writes."""
    return (f'level = "{level}"\nnerdctl = "{root}/libexec/nerdctl"\nstate_dir = "{root}/state"\n'
            f'audit_log = "{root}/log/audit.jsonl"\n'
            f'[trust]\nkeys = ["{key}"]\n'
            f'[registry]\ninsecure = ["{registry}"]\n' + extra)


# --- the fast path: shipped and generated configurations ---------------------------------------------------

FAST = {
    "packaged": PACKAGED,
    "packaged-enabled": set_config_nerdctl(PACKAGED, "/usr/local/libexec/bacon/nerdctl.real"),
    "host": (f'level = "Low"\nnerdctl = "{TMP}/libexec/nerdctl"\nstate_dir = "{TMP}/state"\n'
             f'audit_log = "{TMP}/log/audit.jsonl"\n[registry]\ninsecure = ["127.0.0.1:5000"]\n'),
    "trusted": trusted_config(),
    "trusted-high": trusted_config("High"),
    "trusted-tpm": trusted_config(extra='[tpm]\ntcti = "device:/nonexistent/tpmrm0"\n'),
    "trusted-swtpm": trusted_config(extra='[tpm]\ntcti = "swtpm:host=127.0.0.1,port=2321"\npcrs = [0, 1, 2, 7]\n'),
    "trusted-service": trusted_config(extra=f'[service]\nsocket = "{TMP}/run/decide.sock"\n'),
    "trusted-levels": trusted_config("High", '[levels.High]\nrequire = ["signature", "tpm", "tdx"]\n'
                                             '[levels.Mid]\nrequire = ["signature"]\n'),
    "trusted-all": trusted_config("Mid", '[tpm]\ntcti = "tabrmd"\npcrs = [0, 1, 2, 3, 4, 5, 7]\nbank = "sha256"\n'
                                         f'[service]\nsocket = "{TMP}/run/decide.sock"\n'
                                         '[levels.High]\nrequire = ["signature", "tpm"]\n'
                                         '[policy]\nrunning_above_level = "stop"\n'),
    "trusted-ipv6": trusted_config(registry="[::1]:5000", key="/tmp/w/k\u00e9ys/trusted.pub"),
    "refusals": (f'level = "Low"\nnerdctl = "{TMP}/libexec/nerdctl"\nstate_dir = "{TMP}/state"\n'
                 f'audit_log = "{TMP}/log/audit.jsonl"\n[registry]\ninsecure = ["127.0.0.1:5000", "localhost:5001"]\n'),
    "operator-comment": f'level = "Low"\nnerdctl = "{TMP}/aside"   # the real one\nstate_dir = "{TMP}/state"\n',
    "no-final-newline": 'level = "Low"\n[trust]\nkeys = []',
}


@pytest.mark.parametrize("doc", FAST.values(), ids=FAST.keys())
def test_shipped_and_generated_configurations_take_the_fast_path(doc: str) -> None:
    got = simpletoml.loads(doc)
    assert got is not None
    assert targets.same_toml(got, tomllib.loads(doc))


def test_the_packaged_configuration_reads_as_expected() -> None:
    got = simpletoml.loads(PACKAGED)
    assert got is not None
    assert got["levels"]["High"]["require"] == ["signature", "tpm", "tdx"]
    assert "pcrs" not in got["tpm"]  # unset: chosen from the event log at baseline record
    assert got["trust"]["keys"] == []


def test_scoped_and_keyless_configurations_take_the_fast_path() -> None:
    """Scoped keys and identities (docs/scopes.md) are inline tables in arrays, often over several lines."""
    doc = trusted_config().replace(
        "[registry]", 'identities = [{ issuer = "https://i.example", subject = "ops@example.com" }]\n[registry]')
    assert check(doc) is not None
    shipped = PACKAGED.splitlines()
    start = shipped.index("# keys = [")
    end = next(i for i in range(start, len(shipped)) if shipped[i].startswith("# require = "))
    example = "\n".join(line.removeprefix("# ") for line in shipped[start:end + 1])
    got = simpletoml.loads(PACKAGED.replace("keys = []\n", example + "\n", 1))
    assert got is not None
    assert targets.same_toml(got, tomllib.loads(PACKAGED.replace("keys = []\n", example + "\n", 1)))
    assert got["trust"]["keys"][0]["repositories"] == ["registry.example/team/*"]
    assert got["trust"]["require"] == [{"repositories": ["registry.example/prod/**"], "signers": ["release"]}]


@pytest.mark.parametrize(("doc", "expected"), [
    ("k = [\n  1,\n  2, # two\n]\n", {"k": [1, 2]}),
    ("k = [ # c\n]", {"k": []}),
    ("k = [\n{ a = 1 },\n{ b = [\"x\"] }\n] # end\nz = 1", {"k": [{"a": 1}, {"b": ["x"]}], "z": 1}),
    ("k = {}", {"k": {}}),
    ("k = { a = 1, b = 'x' }", {"k": {"a": 1, "b": "x"}}),
    ("k = {a=1}", {"k": {"a": 1}}),
    ("k = { a = [1,\n2] }", {"k": {"a": [1, 2]}}),
    ("k = { a = 1, }", None),
    ("k = { a = 1\n}", None),
    ("k = { a = 1, a = 2 }", None),
    ("k = { a.b = 1 }", None),
    ('k = { "a" = 1 }', None),
    ("k = { a = { b = 1 } }", None),
    ("k = [\n1\n", None),
    ("k = [1]\n]", None),
    ("k = [1] x", None),
    ("k = [\n1 # c ]\n", None),
    ('k = "a\nb"', None),
    ("k = [\"a\n\"]", None),
    ("k = [1,\n[a]\n]", None),
    ("k = [\n]\n[t]\nx = {}\n", {"k": [], "t": {"x": {}}}),
    ("k = 1}", None),
    ("k = {}}", None),
    ("k = [{}]", {"k": [{}]}),
])
def test_inline_tables_and_arrays_over_lines(doc: str, expected: dict[str, object] | None) -> None:
    got = check(doc)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert targets.same_toml(got, expected)


# --- tricky cases: None, or tomllib's table ----------------------------------------------------------------

# (document, expected): a dict when the subset must read it, None when it must be left to tomllib.
TABLE: list[tuple[str, dict[str, object] | None]] = [
    # structure
    ("", {}),
    ("   \n\t\n\n", {}),
    ("# only a comment", {}),
    ("x = 1\nx = 1\n", None),
    ("x = 1\nx = 2\n", None),
    ("[a]\n[a]\n", None),
    ("[a]\nx = 1\n[b]\n[a]\ny = 2\n", None),
    ("[a.b]\n[a]\n", {"a": {"b": {}}}),
    ("[a.b]\nx = 1\n[a]\ny = 2\n", {"a": {"b": {"x": 1}, "y": 2}}),
    ("[a.b]\n[a]\nb = 1\n", None),
    ("[a]\nb = 1\n[a.b]\n", None),
    ("[a]\nb = [1]\n[a.b]\n", None),
    ("a = 1\n[a]\n", None),
    ("a = 1\n[a.b]\n", None),
    ("a = []\n[a]\n", None),
    ("[a.b.c]\n[a.b]\n[a]\n", {"a": {"b": {"c": {}}}}),
    ("[a.b]\n[a.b]\n", None),
    ("[A]\n[a]\n", {"A": {}, "a": {}}),
    ("[a]]\n", None),
    ("[a\n", None),
    ("[]\n", None),
    ("[a..b]\n", None),
    ("[a.]\n", None),
    ("[.a]\n", None),
    ("[ a ]\n", None),
    ("[a . b]\n", None),
    ("[\ta]\n", None),
    ('["a"]\n', None),
    ("[[aot]]\nx = 1\n", None),
    ("[[aot]]\n[[aot]]\n", None),
    ("[a] x = 1\n", None),
    ("[a]#c\n", {"a": {}}),
    ("[a] # c\nx = 1 # d\n", {"a": {"x": 1}}),
    ("  [a]\n\tx = 1\n", {"a": {"x": 1}}),
    ("\tx\t=\t1\t\n", {"x": 1}),
    # keys
    ("= 1\n", None),
    ("x =\n", None),
    ("x\n", None),
    ("x = \n", None),
    ('"x" = 1\n', None),
    ("'x' = 1\n", None),
    ('"" = 1\n', None),
    ("a.b = 1\n", None),
    ("a . b = 1\n", None),
    ("a b = 1\n", None),
    ("1 = 1\n-_ = 2\ntrue = false\n", {"1": 1, "-_": 2, "true": False}),
    ("x == 1\n", None),
    ("\u00e9 = 1\n", None),
    # values
    ("x = true false\n", None),
    ("x = 1 2\n", None),
    ('x = "a""b"\n', None),
    ("x = 'a''b'\n", None),
    ('x = "a"b\n', None),
    ("x = True\n", None),
    ("x = truex\n", None),
    ("x = +1\n", None),
    ("x = 01\n", None),
    ("x = -01\n", None),
    ("x = 00\n", None),
    ("x = -0\n", {"x": 0}),
    ("x = 0\n", {"x": 0}),
    ("x = --1\n", None),
    ("x = -\n", None),
    ("x = 1_000\n", None),
    ("x = 0x1f\n", None),
    ("x = 0o7\n", None),
    ("x = 0b1\n", None),
    ("x = 1.5\n", None),
    ("x = 1e3\n", None),
    ("x = inf\n", None),
    ("x = nan\n", None),
    ("x = 1.\n", None),
    ("x = 1979-05-27\n", None),
    ("x = 1979-05-27T07:32:00Z\n", None),
    ("x = 07:32:00\n", None),
    ("x = 123456789012345678\n", {"x": 123456789012345678}),
    ("x = -123456789012345678\n", {"x": -123456789012345678}),
    ("x = 1234567890123456789\n", None),
    ("x = 9223372036854775808\n", None),
    ("x = " + "1" * 5000 + "\n", None),
    ("x = 1#c\n", {"x": 1}),
    ("x = true#c\n", {"x": True}),
    ('x = "a"#c\n', {"x": "a"}),
    ("x = [1]#c\n", {"x": [1]}),
    ("x = 1,\n", None),
    ("x = 1]\n", None),
    ("x = { a = 1 }\n", {"x": {"a": 1}}),
    ("x = {}\n", {"x": {}}),
    # strings
    ('x = "a#b" # c\n', {"x": "a#b"}),
    ("x = 'a#b'#c\n", {"x": "a#b"}),
    ('x = "it\'s"\n', {"x": "it's"}),
    ("x = 'say \"hi\"'\n", {"x": 'say "hi"'}),
    ("x = 'C:\\dir\\n'\n", {"x": "C:\\dir\\n"}),
    ('x = "a\\"b"\n', None),
    ('x = "a\\nb"\n', None),
    ('x = "\\u00e9"\n', None),
    ('x = "a\\q"\n', None),
    ('x = "a\\\n', None),
    ('x = ""\n', {"x": ""}),
    ("x = ''\n", {"x": ""}),
    ('x = """a"""\n', None),
    ("x = '''a'''\n", None),
    ('x = """\na\n"""\n', None),
    ("x = '''\na'''\n", None),
    ('x = "a\n', None),
    ("x = 'a\n", None),
    ('x = "\n"\n', None),
    ('x = "a\tb"\n', {"x": "a\tb"}),
    ("x = 'a\tb'\n", {"x": "a\tb"}),
    ('x = "\u00e9\u4e2d\U0001f600"\n', {"x": "\u00e9\u4e2d\U0001f600"}),
    ('x = "\u00a0"\n', {"x": "\u00a0"}),
    ('x = "\x85\u2028"\n', {"x": "\x85\u2028"}),
    # arrays
    ("x = []\n", {"x": []}),
    ("x = [ ]\n", {"x": []}),
    ("x = [1,]\n", {"x": [1]}),
    ("x = [ 1 , 2 , ]\n", {"x": [1, 2]}),
    ("x = [\t1\t,\t]\n", {"x": [1]}),
    ("x = [,]\n", None),
    ("x = [1,,2]\n", None),
    ("x = [,1]\n", None),
    ("x = [1 2]\n", None),
    ("x = [1\n", None),
    ("x = [\n1]\n", {"x": [1]}),
    ("x = [\n  1,\n]\n", {"x": [1]}),
    ("x = [1, # c\n]\n", {"x": [1]}),
    ("x = [[1], [2]]\n", None),
    ("x = [[]]\n", None),
    ("x = [1]]\n", None),
    ("x = [1] 2\n", None),
    ('x = [1, "a", true, \'b\']\n', {"x": [1, "a", True, "b"]}),
    ('x = ["]", "[", ","]\n', {"x": ["]", "[", ","]}),
    ("x = [{ a = 1 }]\n", {"x": [{"a": 1}]}),
    ("x = [1.5]\n", None),
    # comments
    ("x = 1 # \u00e9 \u4e2d\n", {"x": 1}),
    ("# \ufeff\n", {}),
    ("#\tx\n", {}),
    ("# a\x00b\n", None),
    ("# a\x01b\n", None),
    ("# a\x7fb\n", None),
    ("# a\x1fb\n", None),
    ("#\x0b\n", None),
    ("#\x0c\n", None),
    ('x = "a\x00b"\n', None),
    ('x = "a\x7fb"\n', None),
    ("x = 'a\x01b'\n", None),
    ("x = 1\x7f\n", None),
    ("\x00", None),
    # line endings and encoding
    ("x = 1\r\ny = 2\r\n", None),
    ("x = 1\r\n", None),
    ("x = 1\ry = 2\n", None),
    ("\r\n", None),
    ("x = 1\n\n\n", {"x": 1}),
    ("\ufeffx = 1\n", None),
    ("\ufeff", None),
    ("x = 1\u2028y = 2\n", None),
    ("\u00a0x = 1\n", None),
    ("x\u00a0= 1\n", None),
    ("x = 1\u3000\n", None),
    ("x = '\udcff'\n", {"x": "\udcff"}),
]


@pytest.mark.parametrize(("doc", "expected"), TABLE, ids=[repr(d)[:60] for d, _ in TABLE])
def test_tricky_documents(doc: str, expected: dict[str, object] | None) -> None:
    got = check(doc)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert targets.same_toml(got, expected)


def test_tomllib_raising_means_none_in_the_table() -> None:
    # the table's None cases include tomllib's refusals: those must be None for simpletoml too
    refused = [d for d, _ in TABLE if raises(d)]
    assert len(refused) > 40
    assert all(simpletoml.loads(d) is None for d in refused)


def test_booleans_are_not_integers() -> None:
    assert not targets.same_toml({"x": True}, {"x": 1})
    assert not targets.same_toml({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert not targets.same_toml([0], [False])


# --- properties ----------------------------------------------------------------------------------------------

_KEYS = ("a", "b", "x", "k", "level", "keys", "-", "_", "1", "A")
_BAD_KEYS = ('"a"', "'a'", "a.b", "a .b", "a b", "", '""', "\u00e9", "a\u00a0", "a#", "[a]", "=", '"a.b"')
_STRINGS = ('""', "''", '"a"', "'a'", '"a b"', '"/tmp/x"', '"a#b"', "'a#b'", '"it\'s"', "'say \"hi\"'",
            '"\u00e9"', '"\\""', '"\\n"', '"\\u00e9"', '"\\x"', "'\\'", '"a', "'a", '"""a"""', "'''a'''", '"""',
            "'''", '"a""b"', '"\t"', '"\x00"', '"\x7f"', '"\x1b"', '"\ufeff"', '"\udcff"')
_NUMBERS = ("0", "1", "-1", "-0", "+0", "+1", "01", "-01", "00", "1_000", "0x1f", "0o7", "0b1", "1.5", "-1.5",
            "1e3", "1E-3", "inf", "-inf", "nan", "+nan", "1.", ".5", "123456789012345678", "-123456789012345678",
            "1234567890123456789", "9223372036854775807", "9223372036854775808", "1" * 30, "1979-05-27",
            "1979-05-27T07:32:00Z", "1979-05-27 07:32:00", "07:32:00", "true", "false", "True", "tru", "truex")
_OTHER = ("[]", "[ ]", "[1,]", "[1, 2]", "[,]", "[1,,2]", "[[1]]", "[[]]", "[1", "[1 2]", '["a", 1, true]',
          "['a',]", "[\n", "[1]]", "{}", "{ a = 1 }", "{a=1,}", "[{ a = 1 }]", "", " ", "=", "x", "#")
_VALUES = st.sampled_from(_STRINGS + _NUMBERS + _OTHER)
_TRAILERS = st.sampled_from(("", "", " ", "\t", "#", " # c", "#c\u00e9", ",", "]", " x", " 1", "\x00", "\x7f", "\\"))
_WS = st.sampled_from(("", " ", "  ", "\t", " \t", "\u00a0", "\u3000"))
_SEPARATORS = st.sampled_from(("\n", "\n", "\n", "\n", "\r\n", "\r", "", "\n\n", " ", "\u2028", "\x0b"))


_KEY: st.SearchStrategy[str] = st.sampled_from(_KEYS * 4 + _BAD_KEYS)  # mostly good keys, from a small pool: duplicates


@st.composite
def _array(draw: st.DrawFn, items: st.SearchStrategy[str]) -> str:
    parts = draw(st.lists(items, max_size=4))
    ws = draw(_WS)
    seps = [draw(st.sampled_from((",", ", ", " ,", ",,", " ", ""))) for _ in parts]
    body = "".join(p + (s if i < len(parts) - 1 else draw(st.sampled_from(("", ",", " , ", ",,"))))
                   for i, (p, s) in enumerate(zip(parts, seps, strict=True)))
    return "[" + ws + body + ws + draw(st.sampled_from(("]", "]", "]", "", "]]")))


@st.composite
def _key_value(draw: st.DrawFn) -> str:
    value: str = draw(st.one_of(_VALUES, _array(_VALUES), _array(st.one_of(_VALUES, _array(_VALUES)))))
    eq = draw(st.sampled_from((" = ", "=", "\t=\t", " =", "= ", " == ", " ")))
    return draw(_WS) + draw(_KEY) + eq + value + draw(_TRAILERS)


@st.composite
def _header(draw: st.DrawFn) -> str:
    path = draw(st.lists(st.sampled_from(("a", "b", "x", "levels", "High", "k", "1", '"a"', " a ", "", "a b")),
                         min_size=1, max_size=3))
    dot = draw(st.sampled_from((".", ".", " . ", "..")))
    brackets = draw(st.sampled_from((("[", "]"), ("[", "]"), ("[", "]"), ("[[", "]]"), ("[", ""), ("[", "]]"),
                                     ("[ ", " ]"))))
    return draw(_WS) + brackets[0] + dot.join(path) + brackets[1] + draw(_TRAILERS)


_JUNK = st.text(alphabet="[]=\"'#,.{}\\\t \n\r\x00\x7f\ufeff\u00e9-_+0aAtrue:", max_size=12)
_LINES = st.one_of(_key_value(), _key_value(), _header(), st.sampled_from(("", "#", "# c", "  # \u00e9")), _JUNK,
                   st.text(max_size=8))


@st.composite
def grammar_documents(draw: st.DrawFn) -> str:
    """Lines drawn from valid and near-valid fragments, joined by random separators: many duplicates."""
    lines = draw(st.lists(_LINES, max_size=10))
    return "".join(line + draw(_SEPARATORS) for line in lines)


@fuzz(1000)
@given(grammar_documents())
def test_grammar_documents_are_none_or_tomllibs(doc: str) -> None:
    check(doc)


@fuzz(500)
@given(st.one_of(st.text(max_size=60), st.text(alphabet="ab1=[]\"'# \n.,\t-{}", max_size=40)))
def test_random_text_is_none_or_tomllibs(doc: str) -> None:
    check(doc)


# The subset itself: well-formed, unique keys and tables. Keys and table names come from different pools, so
# no key can collide with a table; headers are unique; keys are unique within their table.
_TABLE_NAMES = ("trust", "registry", "tpm", "service", "levels", "High", "Mid", "t", "T", "t-1")
_SUB_TABLE = st.sampled_from(_TABLE_NAMES)
_SUB_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-", min_size=1, max_size=8).filter(
    lambda k: k not in _TABLE_NAMES)
_CONTROLS = [*map(chr, range(0, 9)), *map(chr, range(10, 32)), "\x7f"]
_SUB_SCALARS = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters=[*_CONTROLS, '"', "\\"]), max_size=12)
    .map(lambda s: f'"{s}"'),
    st.text(st.characters(codec="utf-8", exclude_characters=[*_CONTROLS, "'"]), max_size=12)
    .map(lambda s: f"'{s}'"),
    st.integers(-(10**18) + 1, 10**18 - 1).map(str),
    st.sampled_from(("true", "false", "-0")),
)
_SUB_WS = st.sampled_from(("", " ", "  ", "\t"))


_ARRAY_WS = st.sampled_from(("", " ", "\t", "\n", "\n  ", " # c\n", "\n# [x] {y}\n  "))  # arrays span lines


@st.composite
def _sub_array(draw: st.DrawFn, items: st.SearchStrategy[str], ws: st.SearchStrategy[str]) -> str:
    values = draw(st.lists(items, max_size=4))
    if not values:
        return "[" + draw(ws) + "]"
    seps = [draw(ws) + "," + draw(ws) for _ in values]
    body = "".join(v + s for v, s in zip(values, seps, strict=True))
    if not draw(st.booleans()):
        body = body[: body.rindex(",")]  # no trailing comma
    return "[" + draw(ws) + body + draw(ws) + "]"


@st.composite
def _sub_inline(draw: st.DrawFn) -> str:
    keys = draw(st.lists(_SUB_KEYS, unique=True, max_size=4))
    values = [draw(st.one_of(_SUB_SCALARS, _sub_array(_SUB_SCALARS, _SUB_WS))) for _ in keys]
    pairs = [k + draw(_SUB_WS) + "=" + draw(_SUB_WS) + v for k, v in zip(keys, values, strict=True)]
    return "{" + draw(_SUB_WS) + (draw(_SUB_WS) + "," + draw(_SUB_WS)).join(pairs) + draw(_SUB_WS) + "}"


@st.composite
def _sub_value(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        return draw(_SUB_SCALARS)
    if kind == 3:
        return draw(_sub_array(_SUB_SCALARS, _ARRAY_WS))
    if kind == 4:
        return draw(_sub_inline())
    return draw(_sub_array(st.one_of(_SUB_SCALARS, _sub_inline()), _ARRAY_WS))


@st.composite
def _sub_table(draw: st.DrawFn) -> list[str]:
    out = []
    for key in draw(st.lists(_SUB_KEYS, unique=True, max_size=5)):
        eq = draw(_SUB_WS) + "=" + draw(_SUB_WS)
        comment = draw(st.sampled_from(("", " # c", "#c", "\t# \u00e9 \"'[]=")))
        out.append(draw(_SUB_WS) + key + eq + draw(_sub_value()) + comment)
        if not draw(st.integers(0, 4)):
            out.append(draw(st.sampled_from(("", "#", "# a comment", "  \t", "\t# [x]"))))
    return out


@st.composite
def subset_documents(draw: st.DrawFn) -> str:
    lines = draw(_sub_table())
    paths = draw(st.lists(st.lists(_SUB_TABLE, min_size=1, max_size=3).map(".".join), unique=True, max_size=5))
    for path in paths:
        lines.append(draw(_SUB_WS) + "[" + path + "]" + draw(st.sampled_from(("", " # c", "#"))))
        lines += draw(_sub_table())
    return "\n".join(lines) + draw(st.sampled_from(("", "\n")))


@fuzz(300)
@given(subset_documents())
def test_subset_documents_take_the_fast_path(doc: str) -> None:
    got = check(doc)
    assert got is not None, doc


@fuzz(400)
@given(subset_documents().flatmap(lambda d: mutated(d.encode(), max_ops=3)))
def test_mutated_subset_documents_are_none_or_tomllibs(data: bytes) -> None:
    targets.plain_toml(data)


@fuzz(300)
@given(st.sampled_from([p.read_bytes() for p in targets.corpus("simpletoml")]).flatmap(mutated))
def test_mutated_seed_documents(data: bytes) -> None:
    targets.plain_toml(data)
