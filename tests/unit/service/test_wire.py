"""The wire between the wrapper and `bacon serve` (shim.service.wire): exact round trips, and anything
else a ValueError, never another exception and never a plan the service did not send."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.service import wire
from tests.fuzz.profile import fuzz

_ARG = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12) | st.sampled_from(
    ["", "=", "a=b", "\udcff", "caf\udce9", "--", "-", "sha256:" + "a" * 64])
_KEY = st.text(st.characters(codec="utf-8", exclude_characters="\0="), min_size=1, max_size=8)


CREDS = (1000, 0, 1000, 0, (4, 27))
_ID = st.integers(0, (1 << 32) - 1)


def _fields(r: wire.Request) -> tuple[object, ...]:
    return r.args, r.env, r.cwd, r.umask, r.creds, r.inputs


@fuzz(300)
@given(st.lists(_ARG, max_size=8), st.dictionaries(_KEY, _ARG, max_size=6), _ARG, st.integers(0, 0o777),
       st.tuples(_ID, _ID, _ID, _ID, st.lists(_ID, max_size=4).map(tuple)), st.lists(_ID, max_size=4).map(tuple))
def test_requests_round_trip(args: list[str], env: dict[str, str], cwd: str, umask: int,
                             creds: tuple[int, int, int, int, tuple[int, ...]], inputs: tuple[int, ...]) -> None:
    got = wire.decode_request(wire.encode_request(args, env, cwd, umask, creds, inputs))
    assert _fields(got) == (args, env, cwd, umask, creds, inputs)


@pytest.mark.parametrize("bad", ["-1", "4294967296", "1e3", "", "\u0661"])
def test_credentials_that_are_not_ids_are_refused(bad: str) -> None:
    good = wire.encode_request(["run", "x"], {}, "/", 18, CREDS)
    broken = good.replace(b"\x001000\x000\x00", ("\x00" + bad + "\x000\x00").encode(), 1)
    assert broken != good
    with pytest.raises(ValueError, match=r"not a count|not an id"):
        wire.decode_request(broken)


@fuzz(300)
@given(_ARG, st.lists(_ARG, max_size=8), st.lists(st.lists(_ARG, max_size=5), max_size=3))
def test_plans_round_trip(nerdctl: str, forward: list[str], then: list[list[str]]) -> None:
    assert wire.decode_answer(wire.encode_plan(nerdctl, forward, then)) == (nerdctl, forward, then)


@pytest.mark.parametrize("message", ["bacon: denied: x", "", "a\0b", "line\nline", "\udcff", "bacon-answer-1\0plan"])
def test_refusals_round_trip_and_never_read_as_a_plan(message: str) -> None:
    assert wire.decode_answer(wire.encode_error(message, 77)) == (77, message.replace("\0", "\\0"))


def test_arguments_that_are_not_utf8_arrive_unchanged() -> None:
    args = ["run", b"\xff\xfe".decode("utf-8", "surrogateescape")]
    assert wire.decode_request(wire.encode_request(args, {}, "/", 0, CREDS)).args == args


def test_a_nul_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="NUL"):
        wire.encode_request(["a\0b"], {}, "/", 0, CREDS)
    with pytest.raises(ValueError, match="NUL"):
        wire.encode_plan("/bin/true", ["x\0--privileged"], [])


PLAN = wire.encode_plan("/usr/bin/nerdctl", ["run", "--rm", "img@sha256:" + "a" * 64], [["tag", "a", "b"]])
REQUEST = wire.encode_request(["run", "x"], {"PATH": "/bin", "HOME": "/root"}, "/", 18, CREDS)


@pytest.mark.parametrize("data", [
    b"", b"\0", b"bacon-answer-1", b"bacon-answer-2\0plan\0/x\x000\x000", b"bacon-answer-1\0plan",
    b"bacon-answer-1\0plan\0/x", b"bacon-answer-1\0plan\0/x\x002\0run", b"bacon-answer-1\0plan\0/x\x001\0run",
    b"bacon-answer-1\0plan\0/x\x000\x000\0extra", b"bacon-answer-1\0plan\0/x\x00-1\x000",
    b"bacon-answer-1\0plan\0/x\x00\xd9\xa1\x000", b"bacon-answer-1\0plan\0/x\x00999999999\x000",
    b"bacon-answer-1\0error\x000\0msg", b"bacon-answer-1\0error\x00256\0msg", b"bacon-answer-1\0error\0x\0msg",
    b"bacon-answer-1\0error\x0077", b"bacon-answer-1\0maybe\0/x", PLAN[:-1], PLAN[:-4], PLAN + b"\0",
    PLAN + b"\0end", REQUEST,
])
def test_malformed_answers_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails for its own reason; ValueError is the contract
        wire.decode_answer(data)


@pytest.mark.parametrize("data", [
    b"", b"bacon-request-1", b"bacon-request-1\0/", b"bacon-request-1\0/\x0018\x003\0run",
    b"bacon-request-1" + REQUEST[15:], b"bacon-request-3" + REQUEST[15:],
    REQUEST[:-4], REQUEST + b"\0end", REQUEST[:-4] + b"\0NOEQUALS\0end", REQUEST[:-4] + b"\0=value\0end",
    REQUEST[:-4] + b"\0PATH=/again\0end", b"bacon-request-1\0/\0x\x000\0end", PLAN,
])
def test_malformed_requests_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - as above
        wire.decode_request(data)


@fuzz(500)
@given(st.binary(max_size=200) | st.sampled_from([PLAN, REQUEST]).flatmap(
    lambda b: st.tuples(st.integers(0, len(b)), st.binary(max_size=4)).map(lambda t: b[:t[0]] + t[1] + b[t[0]:])))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    for decode in (wire.decode_answer, wire.decode_request):
        with contextlib.suppress(ValueError):
            decode(data)
