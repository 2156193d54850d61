"""Image references, parsed and normalized the way nerdctl and containerd do.

nerdctl reads an image argument with ``pkg/referenceutil.Parse`` (docs/nerdctl.md §3), in this order:

1. ``ipfs://`` and ``ipns://`` prefixes select IPFS; ``oci-archive://PATH`` means "load this archive first";
2. a bare IPFS CID (``Qm…``, or any multibase-encoded CIDv1 such as ``bafy…``) selects IPFS;
3. ``<algorithm>:<hex>`` or 64 lowercase hex characters is a digest only (an image ID);
4. anything else is a Docker-style name (distribution/reference ``ParseNormalizedNamed``): ``docker.io``
   is the default domain, single-component Docker Hub names get ``library/``, ``latest`` is the default
   tag when neither a tag nor a digest is given, the repository must be lowercase, a first component
   with ``.`` or ``:`` (or ``localhost``, or an upper-case letter) is a domain.

Only :func:`parse` raises (:class:`~shim.common.errors.UsageError`, naming the reference). Standard library only:
the forwarding path imports this module.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final, Literal

from shim.common.errors import UsageError

DEFAULT_DOMAIN: Final = "docker.io"
# The legacy spelling of the default domain: part of the reference grammar (splitDockerDomain), not a
# registry this code talks to.
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
REPOSITORY_NAME_MAX: Final = 255

Kind = Literal["name", "digest", "ipfs", "ipns", "cid", "oci-archive"]
SPECIAL_KINDS: Final = frozenset({"ipfs", "ipns", "cid", "oci-archive"})

# distribution/reference regexp.go, verbatim in meaning (Go's \w and [[:xdigit:]] are ASCII-only).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PORT = r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_DOMAIN_AND_PORT = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")" + _PORT
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_ANCHORED_DIGEST_RE = re.compile(_DIGEST, re.ASCII)

# go-digest: the algorithms nerdctl's build registers, with their hex length.
_DIGEST_HEX_LEN: Final = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)
_SHORT_HEX_RE = re.compile(r"[a-f0-9]{1,63}", re.ASCII)
_SHA256_PREFIX_RE = re.compile(r"sha256:[a-f0-9]{0,63}", re.ASCII)
_SHA256_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)


@dataclass(frozen=True)
class Reference:
    """A parsed image argument.

    ``kind`` is ``name`` (a registry name: ``domain``, ``path``, ``tag`` and/or ``digest`` set),
    ``digest`` (only ``digest`` set: an image ID), or one of the special forms nerdctl fetches without a
    registry (``ipfs``, ``ipns``, ``cid``, ``oci-archive``), for which only ``raw`` is meaningful.
    ``tag`` is the effective tag (``latest`` when neither tag nor digest was given); ``explicit_tag`` the
    one written. ``name:tag@digest`` keeps both, as nerdctl does (the digest decides what is fetched).
    """

    raw: str
    kind: Kind
    domain: str = ""
    path: str = ""
    tag: str = ""
    explicit_tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``domain/path`` (``docker.io/library/alpine``); empty unless ``kind == "name"``."""
        if self.kind != "name":
            return ""
        # Go quirk kept: a first component with "." but not a valid host name ("a.b_c/d") is split off
        # as a domain, then re-read as part of the path, leaving the domain empty.
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The short name Docker users write (``alpine``, ``user/app``, ``127.0.0.1:5000/app``)."""
        if self.kind != "name":
            return ""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        return rest if rest != self.path and "/" not in rest else self.path

    @property
    def manifest_reference(self) -> str:
        """What a registry is asked for under ``/v2/<name>/manifests/``: the digest when one was given, else
        the tag (``latest`` by default). Its repository is :meth:`shim.images.registry.Repository.of`."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def is_special(self) -> bool:
        """Fetched without a registry (IPFS, an OCI archive): BACON cannot check it."""
        return self.kind in SPECIAL_KINDS

    def __str__(self) -> str:
        if self.kind == "name":
            s = self.name
            if self.tag:
                s += ":" + self.tag
            if self.digest:
                s += "@" + self.digest
            return s
        if self.kind == "digest":
            return self.digest
        return self.raw


def _validate_digest(d: str) -> str | None:
    """go-digest ``Parse``: ``None`` if valid, else the reason."""
    algorithm, sep, encoded = d.partition(":")
    if not sep or not algorithm or not encoded:
        return "invalid digest format"
    size = _DIGEST_HEX_LEN.get(algorithm)
    if size is None:
        return "unsupported digest algorithm" if _ANCHORED_DIGEST_RE.fullmatch(d) else "invalid digest format"
    if len(encoded) != size:
        return "invalid checksum digest length"
    if not _HEX_RE.fullmatch(encoded):
        return "invalid checksum digest format"
    return None


def is_image_id(raw: str) -> bool:
    """``<algorithm>:<hex>`` or 64 lowercase hex: nerdctl reads it as an image ID, not a name."""
    return _validate_digest(raw) is None or _validate_digest("sha256:" + raw) is None


def digest_prefix(raw: str) -> str | None:
    """The ``sha256:…`` prefix ``raw`` can select a local image by (nerdctl's imagewalker matches any
    argument against ``^sha256:<raw>`` and ``^<raw>``), or ``None`` when it cannot be a digest prefix.

    A full digest is returned whole. Such an argument is also a valid *name* (``abc123`` is
    ``docker.io/library/abc123``): which one nerdctl picks depends on the local store (docs/nerdctl.md §8.1).
    """
    if _SHORT_HEX_RE.fullmatch(raw) or _IDENTIFIER_RE.fullmatch(raw):
        return "sha256:" + raw
    if _SHA256_PREFIX_RE.fullmatch(raw) or _SHA256_DIGEST_RE.fullmatch(raw):
        return raw
    return None


def special_kind(raw: str) -> Kind | None:
    """``ipfs``, ``ipns``, ``oci-archive`` or ``cid`` when nerdctl would fetch ``raw`` without a registry."""
    if raw.startswith("ipfs://"):
        return "ipfs"
    if raw.startswith("ipns://"):
        return "ipns"
    if raw.startswith("oci-archive://"):
        return "oci-archive"
    if is_cid(raw):
        return "cid"
    return None


def _split_docker_domain(name: str) -> tuple[str, str]:
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 120 else repr(raw[:117]) + "…"


def _invalid(raw: str, why: str) -> UsageError:
    return UsageError(
        f"invalid image reference {_shown(raw)}: {why}",
        hint="write [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST] with a lowercase repository",
    )


def _parse_name(raw: str) -> Reference:
    """distribution/reference ``ParseNormalizedNamed`` followed by ``TagNameOnly``."""
    if _IDENTIFIER_RE.fullmatch(raw):
        raise _invalid(raw, "a 64-character hexadecimal string is not a repository name")
    domain, remainder = _split_docker_domain(raw)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise _invalid(raw, f"repository name ({_shown(remote)}) must be lowercase")
    full = domain + "/" + remainder
    m = _REFERENCE_RE.fullmatch(full)
    if m is None:
        if full.lower() != full and _REFERENCE_RE.fullmatch(full.lower()):
            raise _invalid(raw, "repository name must be lowercase")
        raise _invalid(raw, "invalid reference format")
    nm = _ANCHORED_NAME_RE.fullmatch(m.group(1))
    assert nm is not None  # the reference pattern contains the name pattern
    ref_domain, path = nm.group(1) or "", nm.group(2)
    if len(path) > REPOSITORY_NAME_MAX:
        raise _invalid(raw, f"repository name must not be more than {REPOSITORY_NAME_MAX} characters")
    tag = m.group(2) or ""
    digest = m.group(3) or ""
    if digest:
        why = _validate_digest(digest)
        if why:
            raise _invalid(raw, why)
    return Reference(
        raw=raw,
        kind="name",
        domain=ref_domain,
        path=path,
        tag=tag or ("" if digest else DEFAULT_TAG),
        explicit_tag=tag,
        digest=digest,
    )


def parse(raw: str) -> Reference:
    """Parse an image argument as nerdctl does.

    Raises:
        UsageError: ``raw`` is not a reference nerdctl accepts; the message names it.
    """
    kind = special_kind(raw)
    if kind is not None:
        return Reference(raw=raw, kind=kind)
    if not raw:
        raise _invalid(raw, "repository name must have at least one component")
    if _validate_digest(raw) is None:
        return Reference(raw=raw, kind="digest", digest=raw)
    if _validate_digest("sha256:" + raw) is None:
        return Reference(raw=raw, kind="digest", digest="sha256:" + raw)
    return _parse_name(raw)


def normalize(raw: str) -> str:
    """The fully qualified form (``docker.io/library/alpine:latest``); digests stay digests.

    Raises:
        UsageError: invalid reference, or a special form (IPFS, OCI archive) that has no registry name.
    """
    ref = parse(raw)
    if ref.is_special:
        raise UsageError(f"image reference {raw!r} is not a registry reference ({ref.kind})")
    return str(ref)


def pinned(ref: str | Reference, digest: str) -> str:
    """``repository@sha256:…``: the form the gate forwards, which nerdctl can only resolve to ``digest``.

    A digest-only reference pins to the digest itself. The tag is dropped: with a digest it decides
    nothing, and a tag-and-digest reference is exactly what nerdctl's local lookup mishandles.

    Raises:
        UsageError: ``ref`` is invalid or special, or ``digest`` is not ``sha256:`` and 64 lowercase hex.
    """
    r = parse(ref) if isinstance(ref, str) else ref
    if not _SHA256_DIGEST_RE.fullmatch(digest):
        raise UsageError(f"refusing to pin {r.raw!r} to malformed digest {digest!r}")
    if r.kind == "digest":
        return digest
    if r.kind != "name":
        raise UsageError(f"image reference {r.raw!r} ({r.kind}) cannot be pinned to a registry digest")
    return f"{r.name}@{digest}"


# --- IPFS content identifiers (ipfs/go-cid Decode, multiformats/go-multibase Decode) ---------------------

_B58_BTC = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_FLICKR = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_CID_TEXT = 4096  # longer strings are not worth decoding: no CID is that long


def _base_n_decode(s: str, alphabet: str, *, leading_zero: str) -> bytes | None:
    base = len(alphabet)
    index = {c: i for i, c in enumerate(alphabet)}
    n = 0
    for c in s:
        v = index.get(c)
        if v is None:
            return None
        n = n * base + v
    zeros = len(s) - len(s.lstrip(leading_zero))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def _b32(s: str, *, hexalpha: bool, padded: bool) -> bytes | None:
    s = s.upper()
    if not padded:
        if "=" in s or len(s) % 8 in (1, 3, 6):
            return None
        s += "=" * (-len(s) % 8)
    elif len(s) % 8:
        return None
    try:
        return base64.b32hexdecode(s) if hexalpha else base64.b32decode(s)
    except (binascii.Error, ValueError):
        return None


def _b64(s: str, *, url: bool, padded: bool) -> bytes | None:
    if not padded:
        if "=" in s or len(s) % 4 == 1:
            return None
        s += "=" * (-len(s) % 4)
    elif len(s) % 4:
        return None
    alphabet_ok = re.fullmatch(r"[A-Za-z0-9\-_]*=*" if url else r"[A-Za-z0-9+/]*=*", s, re.ASCII)
    if not alphabet_ok:
        return None
    try:
        return base64.b64decode(s, altchars=b"-_" if url else None, validate=True)
    except (binascii.Error, ValueError):
        return None


def _multibase_decode(s: str) -> bytes | None:
    prefix, data = s[0], s[1:]
    try:
        if prefix in "fF":
            return bytes.fromhex(data) if re.fullmatch(r"(?:[0-9a-fA-F]{2})*", data, re.ASCII) else None
        if prefix == "0":
            if not re.fullmatch(r"(?:[01]{8})*", data, re.ASCII):
                return None
            return bytes(int(data[i : i + 8], 2) for i in range(0, len(data), 8))
    except ValueError:
        return None
    if prefix in "bB":
        return _b32(data, hexalpha=False, padded=False)
    if prefix in "cC":
        return _b32(data, hexalpha=False, padded=True)
    if prefix in "vV":
        return _b32(data, hexalpha=True, padded=False)
    if prefix in "tT":
        return _b32(data, hexalpha=True, padded=True)
    if prefix in "kK":
        return _base_n_decode(data.lower(), _B36, leading_zero="0")
    if prefix == "z":
        return _base_n_decode(data, _B58_BTC, leading_zero="1")
    if prefix == "Z":
        return _base_n_decode(data, _B58_FLICKR, leading_zero="1")
    if prefix == "m":
        return _b64(data, url=False, padded=False)
    if prefix == "M":
        return _b64(data, url=False, padded=True)
    if prefix == "u":
        return _b64(data, url=True, padded=False)
    if prefix == "U":
        return _b64(data, url=True, padded=True)
    return None


def _uvarint(b: bytes, pos: int) -> tuple[int, int] | None:
    """A minimally encoded unsigned varint (multiformats/go-varint): (value, next position)."""
    value = shift = 0
    for i in range(pos, min(len(b), pos + 9)):
        byte = b[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > pos:
                return None  # not minimally encoded
            return value, i + 1
        shift += 7
    return None


def _is_multihash(b: bytes, pos: int) -> int | None:
    """The end of a multihash starting at ``pos``, or ``None``."""
    code = _uvarint(b, pos)
    if code is None:
        return None
    length = _uvarint(b, code[1])
    if length is None or length[0] > len(b) - length[1]:
        return None
    return length[1] + length[0]


def _is_cid_bytes(b: bytes) -> bool:
    if len(b) > 2 and b[0] == 0x12 and b[1] == 32:  # CIDv0: a bare sha2-256 multihash
        return len(b) == 34
    version = _uvarint(b, 0)
    if version is None or version[0] != 1:
        return False
    codec = _uvarint(b, version[1])
    if codec is None:
        return False
    end = _is_multihash(b, codec[1])
    return end == len(b)


def is_cid(raw: str) -> bool:
    """True when nerdctl (built with IPFS) would read ``raw`` as an IPFS content identifier."""
    if len(raw) < 2 or len(raw) > _MAX_CID_TEXT:
        return False
    if len(raw) == 46 and raw.startswith("Qm"):
        b = _base_n_decode(raw, _B58_BTC, leading_zero="1")
        return b is not None and len(b) == 34 and b[0] == 0x12 and b[1] == 32
    b = _multibase_decode(raw)
    return b is not None and _is_cid_bytes(b)
