"""Hypothesis strategies shared by the fuzz properties: byte-level mutations of a seed, and JSON."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff",
                b"\x00\x00\x00\x80", b"\x00\x00\x00\x00", struct.pack("<I", 0x10000), struct.pack(">H", 0xFFFF),
                struct.pack("<I", 48), struct.pack("<H", 0x000C))


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, *, max_ops: int = 4, focus: tuple[int, int] | None = None) -> bytes:
    """``seed`` with 1..max_ops mutations (bit flips, byte sets, interesting values, inserts, deletes,
    truncation, duplication); ``focus`` (start, end) keeps positions in that range."""
    b = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        lo, hi = focus if focus is not None else (0, len(b))
        hi = min(hi, len(b))
        op = draw(st.sampled_from(("flip", "set", "value", "insert", "delete", "truncate", "dup")))
        if not b or lo >= hi:
            b += draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(lo, hi - 1))
        if op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            b[i] = draw(st.integers(0, 255))
        elif op == "value":
            v = draw(st.sampled_from(_INTERESTING))
            b[i : i + len(v)] = v
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del b[i : i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del b[i:]
        else:
            n = draw(st.integers(1, 32))
            b[i:i] = b[i : i + n]
    return bytes(b)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def case_variants(name: str) -> st.SearchStrategy[str]:
    """Spellings of a JSON key that Go's decoder matches to the struct field ``name``."""
    def spell(flags: list[int]) -> str:
        out = []
        for c, f in zip(name, flags, strict=True):
            if f == 1:
                c = c.swapcase()
            elif f == 2 and c in "sS":
                c = "\u017f"
            elif f == 2 and c in "kK":
                c = "\u212a"
            out.append(c)
        return "".join(out)

    return st.lists(st.integers(0, 2), min_size=len(name), max_size=len(name)).map(spell)
