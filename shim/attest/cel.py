"""TCG Canonical Event Log (CEL) in its TLV encoding, as Google's Confidential Space launcher writes it.

A record is four TLVs back to back (type: 1 byte, length: 4 bytes big-endian, value):

- ``0`` recnum: the record number, 8 bytes big-endian, counting from 0 across the whole log;
- the register: ``1`` (a TPM PCR) or ``108`` (a confidential-computing measurement register, CCMR: the
  index is the RTMR's + 1, so RTMR3 is 4, as in the UEFI CC event log), 1 byte;
- ``3`` digests: nested TLVs, each typed by the TPM algorithm id (``0x0B`` SHA-256, ``0x0C`` SHA-384)
  holding that digest of the content;
- the content: one TLV whose type says what it is (:data:`CONTENT_BACON_LAUNCH` for BACON's launches).

The register is extended with the digest of the whole content TLV (type, length and value), and a
replay is ``R = H(R ‖ digest)`` from the register's starting value, record by record. ``108`` is not in
the CEL specification; it is what go-eventlog reads for an RTMR record, so a log with RTMR records
parses there too. See docs/measured-launches.md.

Hand-written: no maintained Python package reads or writes CEL-TLV (the readers are Go); the format is
a few dozen lines of struct packing. Every length is bounded by the buffer, so a hostile log is refused
(:class:`CelError`) or stops at the last whole record, never read out of bounds.

Pure: functions over bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

RECNUM, PCR, NV_INDEX, DIGESTS = 0, 1, 2, 3
CCMR = 108  # go-eventlog's register type for an RTMR record (not in the CEL specification)
CONTENT_BACON_LAUNCH = 0xBA  # not reserved in the CEL specification (Confidential Space's COS events use 80)
ALG_IDS: Mapping[str, int] = {"sha256": 0x0B, "sha384": 0x0C, "sha512": 0x0D}
ALG_NAMES: Mapping[int, str] = {v: k for k, v in ALG_IDS.items()}
SIZES: Mapping[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}
MAX_CONTENT = 1 << 20
MAX_RECORDS = 1_000_000
_HEAD = struct.Struct(">BI")


class CelError(ValueError):
    """The log is not CEL-TLV as BACON writes it (the message names the record and byte offset)."""


@dataclass(frozen=True)
class Record:
    """One CEL record: number, register kind (:data:`PCR` or :data:`CCMR`) and index, digests by bank
    name, the content's type and value, and where it starts in the log."""

    recnum: int
    register_type: int
    index: int
    digests: Mapping[str, bytes]
    content_type: int
    content: bytes
    offset: int = 0

    @property
    def register(self) -> str:
        """``PCR 14`` or ``RTMR3``: how a record's register is named to people."""
        return f"PCR {self.index}" if self.register_type == PCR else f"RTMR{self.index - 1}"

    def content_tlv(self) -> bytes:
        return tlv(self.content_type, self.content)


def tlv(kind: int, value: bytes) -> bytes:
    return _HEAD.pack(kind, len(value)) + value


def content_digest(content_type: int, content: bytes, bank: str) -> bytes:
    """The digest a record's register is extended with: H(the whole content TLV)."""
    return hashlib.new(bank, tlv(content_type, content)).digest()


def encode(recnum: int, register_type: int, index: int, digests: Mapping[str, bytes], content_type: int,
           content: bytes) -> bytes:
    """One record, ready to append."""
    if register_type not in (PCR, CCMR) or not 0 <= index < 256:
        raise CelError(f"register type {register_type} index {index} cannot be encoded")
    inner = b"".join(tlv(ALG_IDS[b], d) for b, d in sorted(digests.items()))
    return (tlv(RECNUM, struct.pack(">Q", recnum)) + tlv(register_type, bytes([index])) + tlv(DIGESTS, inner)
            + tlv(content_type, content))


def split_tlvs(data: bytes, what: str) -> list[tuple[int, bytes]]:
    """Nested TLVs that fill ``data`` exactly. Raises :class:`CelError`."""
    out: list[tuple[int, bytes]] = []
    off = 0
    while off < len(data):
        if off + 5 > len(data):
            raise CelError(f"{what}: a TLV header is cut off at byte {off}")
        kind, size = _HEAD.unpack_from(data, off)
        if off + 5 + size > len(data):
            raise CelError(f"{what}: a {size}-byte TLV overruns at byte {off}")
        out.append((kind, data[off + 5 : off + 5 + size]))
        off += 5 + size
    return out


def _next_tlv(log: bytes, off: int) -> tuple[int, bytes, int] | None:
    """(type, value, next offset), or None when the log ends inside this TLV."""
    if off + 5 > len(log):
        return None
    kind, size = _HEAD.unpack_from(log, off)
    if size > MAX_CONTENT or off + 5 + size > len(log):
        return None
    return kind, log[off + 5 : off + 5 + size], off + 5 + size


@dataclass(frozen=True)
class Parsed:
    """Whole records, and how many bytes they fill (``torn`` bytes after them are an unfinished record)."""

    records: tuple[Record, ...]
    length: int
    torn: int


def parse(log: bytes, *, start: int = 0, first_recnum: int | None = None) -> Parsed:
    """Parse from byte ``start``: whole records in order; an incomplete last record is reported as
    ``torn`` (a crash in the middle of an append), anything else malformed raises :class:`CelError`."""
    records: list[Record] = []
    off = start
    while off < len(log):
        if len(records) >= MAX_RECORDS:
            raise CelError(f"more than {MAX_RECORDS} records")
        at = off
        fields: list[tuple[int, bytes]] = []
        for _ in range(4):
            got = _next_tlv(log, off)
            if got is None:
                break
            kind, value, off = got
            fields.append((kind, value))
        if len(fields) < 4:
            return Parsed(tuple(records), at, len(log) - at)
        records.append(_record(fields, at, len(records) + (first_recnum or 0)))
    return Parsed(tuple(records), off, 0)


def _record(fields: Sequence[tuple[int, bytes]], at: int, position: int) -> Record:
    where = f"record #{position} (byte {at})"
    (k0, v0), (k1, v1), (k2, v2), (k3, v3) = fields
    if k0 != RECNUM or len(v0) != 8:
        raise CelError(f"{where}: does not start with an 8-byte recnum")
    if k1 not in (PCR, CCMR) or len(v1) != 1:
        raise CelError(f"{where}: its register field is type {k1} ({len(v1)} bytes), not a PCR or CCMR index")
    if k2 != DIGESTS:
        raise CelError(f"{where}: no digests field")
    digests: dict[str, bytes] = {}
    for alg, d in split_tlvs(v2, where + " digests"):
        name = ALG_NAMES.get(alg)
        if name is None:
            continue  # a bank BACON does not replay
        if len(d) != SIZES[name] or name in digests:
            raise CelError(f"{where}: a {name} digest of {len(d)} bytes (or twice)")
        digests[name] = d
    return Record(recnum=struct.unpack(">Q", v0)[0], register_type=k1, index=v1[0], digests=digests,
                  content_type=k3, content=v3, offset=at)


def extend(value: bytes, digest: bytes, bank: str) -> bytes:
    return hashlib.new(bank, value + digest).digest()


def replay(records: Iterable[Record], register_type: int, index: int, bank: str, start: bytes | None = None) -> bytes:
    """The register's value after the records for it, from ``start`` (zeros by default)."""
    value = start if start is not None else bytes(SIZES[bank])
    for r in records:
        if r.register_type == register_type and r.index == index:
            value = extend(value, r.digests[bank], bank)
    return value
