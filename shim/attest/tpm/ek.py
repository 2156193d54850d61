"""The endorsement key's identity: what the baseline pins, and the comparison made before a session is trusted.

BACON's TPM sessions are salted to the EK (:mod:`shim.attest.tpm.device`): the salt is encrypted to the EK's
public key, so only the TPM that holds that EK's private key can know the session key. That holds only if
the public key BACON encrypts to is the TPM's: it comes from the TPM over the same channel, so a party that
answers every command from the first one could give its own. ``bacon baseline record`` therefore pins the
EK it saw (trust on first use, like the AK), and every later opening compares the EK it is about to salt
to with the pinned one *before* the salt is sent (docs/tpm.md, "The endorsement key pin").

The identity is the EK's TPM **name**: ``nameAlg`` (2 bytes) followed by ``H_nameAlg(TPMT_PUBLIC)``, the
digest of the whole public area (its key, but also its template: attributes, policy, symmetric scheme).
It is what the TPM itself uses to name the object, and it is what ``tpm2_createek`` / ``tpm2_readpublic``
print, so an operator can compare it with an EK certificate's key elsewhere. The baseline keeps the public
area too (hex), so that a name that is not the digest of the kept public area is refused as corrupt.

Pure: functions over bytes and JSON values; standard library only (hashlib), no tpm2-pytss.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shim.common.errors import IntegrityError

NAME_ALGS: Mapping[int, str] = {0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
MAX_PUBLIC = 1024  # sizeof(TPMT_PUBLIC) for an RSA-4096 key with a policy is well below this
UNPINNED = "EK not pinned; re-record the baseline to pin it"
RECORD_HINT = ("if the TPM was replaced or its endorsement seed changed on purpose, re-record the baseline on a "
               "known-good boot: sudo bacon baseline record; otherwise something between BACON and the TPM "
               "([tpm] tcti: the bus, a resource manager, a proxy) answers in the TPM's place")
UNPINNED_HINT = ("re-record the baseline on a known-good boot (sudo bacon baseline record) to pin the TPM's "
                 "endorsement key; [tpm] unpinned_ek = \"deny\" refuses admissions until then")


class EkError(ValueError):
    """An EK record or public area that cannot be used (the message says why)."""


class EkMismatch(IntegrityError):
    """The TPM presented another endorsement key than the baseline pinned (exit 77). Raised before any
    session is salted to it, so nothing from that TPM (or whoever answered) was trusted."""


@dataclass(frozen=True)
class EkIdentity:
    """An endorsement key: its TPM name (hex: nameAlg ‖ digest), its public area (hex of the marshalled
    ``TPMT_PUBLIC``) and its public key as PEM (for people and other tools)."""

    name: str
    public: str
    pem: str

    @property
    def short(self) -> str:
        return short(self.name)


def name_of(public: bytes) -> str:
    """The TPM name of a marshalled ``TPMT_PUBLIC``: ``nameAlg ‖ H_nameAlg(public)``, hex. Raises :class:`EkError`."""
    if not 4 <= len(public) <= MAX_PUBLIC:
        raise EkError(f"the EK's public area is {len(public)} bytes (4..{MAX_PUBLIC})")
    alg = int.from_bytes(public[2:4], "big")
    hash_name = NAME_ALGS.get(alg)
    if hash_name is None:
        raise EkError(f"the EK's name algorithm 0x{alg:04x} is not accepted (SHA-256, SHA-384 or SHA-512)")
    return public[2:4].hex() + hashlib.new(hash_name, public).hexdigest()


def identity(public: bytes, pem: str) -> EkIdentity:
    """The identity of an EK from its marshalled ``TPMT_PUBLIC`` and PEM. Raises :class:`EkError`."""
    return EkIdentity(name=name_of(public), public=public.hex(), pem=pem)


def to_json(ek: EkIdentity) -> dict[str, str]:
    return {"name": ek.name, "public": ek.public, "pem": ek.pem}


def from_json(doc: object) -> EkIdentity:
    """Parse the baseline's ``ek`` object; its name must be the digest of its public area. Raises :class:`EkError`."""
    if not isinstance(doc, dict) or set(doc) != {"name", "public", "pem"}:
        raise EkError("'ek' must be an object with exactly 'name', 'public' and 'pem'")
    name, public, pem = doc["name"], doc["public"], doc["pem"]
    if not all(isinstance(v, str) for v in (name, public, pem)):
        raise EkError("'ek' values must be strings")
    try:
        raw = bytes.fromhex(public)
    except ValueError as e:
        raise EkError("'ek.public' is not hex") from e
    computed = name_of(raw)
    if name != computed:
        raise EkError(f"'ek.name' {name[:20]}… is not the name of 'ek.public' ({computed[:20]}…)")
    if not pem.startswith("-----BEGIN PUBLIC KEY-----"):
        raise EkError("'ek.pem' is not a PEM public key")
    return EkIdentity(name=name, public=public, pem=pem)


def short(name: str) -> str:
    return name[:4] + ":" + name[4:20] + "…"


def judge(pinned: EkIdentity | None, seen: str | None, tcti: str) -> None:
    """Raise :class:`EkMismatch` unless ``seen`` (the name of the EK a session is about to be salted to) is
    ``pinned``'s. ``pinned`` None (a baseline recorded before EKs were pinned): nothing to compare, the
    caller reports it."""
    if pinned is None:
        return
    if seen is None:
        raise EkMismatch(f"the TPM ({tcti}) presented no endorsement key to compare with the pinned {pinned.short}",
                         hint=RECORD_HINT)
    if not hmac.compare_digest(seen, pinned.name):
        raise EkMismatch(f"the TPM ({tcti}) presents endorsement key {short(seen)}, the baseline pinned "
                         f"{pinned.short}: another TPM, a cleared endorsement seed, or something answering in "
                         "the TPM's place", hint=RECORD_HINT)


def describe(pinned: EkIdentity | None) -> dict[str, Any]:
    """What the audit and ``bacon status`` say about the pin (JSON-able)."""
    if pinned is None:
        return {"ek_pinned": False, "ek": UNPINNED}
    return {"ek_pinned": True, "ek": pinned.name}
