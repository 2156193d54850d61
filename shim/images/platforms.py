"""Which manifest of an image index nerdctl runs: containerd's platform specifiers, normalization and
matchers, and containerd's walk of an index (docs/platforms.md).

Followed exactly from containerd/platforms v1.0.0-rc.4 (``Parse``, ``Normalize``, ``NewMatcher``,
``Ordered``, ``OnlyStrict``, ``DefaultSpec``, cpuinfo_linux.go), from containerd v2's
``core/images.Manifest`` (the walk) and from nerdctl's pkg/platformutil and pkg/imgutil (which matcher
each path uses). nerdctl main pins containerd/platforms v1.0.0-rc.5; docs/platforms.md says what was
compared. Hand-written: no Python library implements containerd's platform rules.

Everything here is pure. The host is data (:class:`Host`, built from ``uname`` and ``/proc/cpuinfo`` by
:func:`host_from_uname`); the walk reads nested indexes and configs through callables it is handed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cmp_to_key
from typing import Protocol

from shim.common.errors import IntegrityError, NotFound, UsageError
from shim.images import oci

Platform = oci.Platform

# --- the host ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """What a Go program built for this machine sees: ``runtime.GOOS``, ``runtime.GOARCH`` and
    containerd's ``cpuVariant()`` (set on arm and arm64 only; ``v7``, ``v8``, …, or ``unknown``)."""

    os: str
    architecture: str
    cpu_variant: str = ""


# uname's machine -> GOARCH of a native build (the kernel's name for the CPU, Go's name for the port).
_UNAME_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "386", "i486": "386", "i586": "386", "i686": "386",
    "aarch64": "arm64", "arm64": "arm64", "aarch64_be": "arm64be", "loongarch64": "loong64",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "ppc": "ppc", "s390x": "s390x", "riscv64": "riscv64",
    "sparc64": "sparc64",
}


def _uname_goarch(machine: str, byteorder: str) -> str:
    m = machine.lower()
    if m in _UNAME_ARCH:
        return _UNAME_ARCH[m]
    if m.startswith("armv") or m in ("arm", "armel", "armhf"):
        return "armbe" if m.endswith("b") and m.startswith("armv") else "arm"
    if m in ("mips", "mips64"):  # the kernel names both endiannesses alike; Go's port says which
        return m + ("le" if byteorder == "little" else "")
    if m in ("mipsel", "mipsle", "mips64el", "mips64le"):
        return m.replace("el", "le") if m.endswith("el") else m
    return m


def _variant_from_machine(machine: str) -> str | None:
    """getCPUVariantFromArch: the variant from uname's machine when /proc/cpuinfo does not say (``None``
    where containerd gives up, leaving the variant empty)."""
    m = machine.lower()
    if m == "aarch64":
        return "8"
    if m.startswith("armv") and len(m) >= 5:
        return {"v8": "8", "v7": "7", "v6": "6", "v5": "5", "v4": "4", "v3": "3"}.get(m[3:5], "unknown")
    return None


_CPU_VARIANTS = {
    "8": "v8", "aarch64": "v8", "7": "v7", "7m": "v7", "6": "v6", "6tej": "v6",
    "5": "v5", "5t": "v5", "5te": "v5", "5tej": "v5", "4": "v4", "4t": "v4", "3": "v3",
    **{f"?({n})": "v7" for n in range(12, 18)},
}


def host_from_uname(machine: str, *, byteorder: str = "little", cpu_architecture: str | None = None,
                    model_name: str | None = None, os_name: str = "linux") -> Host:
    """The host platform containerd computes (``DefaultSpec``), from ``uname -m``, the byte order, and
    ``/proc/cpuinfo``'s ``CPU architecture`` and ``model name`` fields (``None`` when absent)."""
    arch = _uname_goarch(machine, byteorder)
    variant = ""
    if arch in ("arm", "arm64"):  # isArmArch(runtime.GOARCH)
        raw = cpu_architecture if cpu_architecture is not None else _variant_from_machine(machine)
        if raw is not None:
            if arch == "arm" and raw == "7" and (model_name or "").lower().startswith("armv6-compatible"):
                raw = "6"  # the Raspberry Pi ARMv6 kernel quirk
            variant = _CPU_VARIANTS.get(raw.lower(), "unknown")
    return Host(os_name, arch, variant)


def cpuinfo_field(text: str, name: str) -> str | None:
    """getCPUInfo: the first ``name : value`` line of /proc/cpuinfo (name compared case-insensitively)."""
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) > 1 and parts[0].strip().lower() == name.lower():
            return parts[1].strip()
    return None


def default_spec(host: Host) -> Platform:
    """``platforms.DefaultSpec()``."""
    return Platform(host.os, host.architecture, host.cpu_variant)


# --- normalization -------------------------------------------------------------------------------

def _normalize_os(os_: str, host: Host) -> str:
    if os_ == "":
        return host.os
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """``normalizeArch``: lower-cased, aliases resolved, default variants dropped or implied."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return arch, variant


def normalize(p: Platform, host: Host) -> Platform:
    """``platforms.Normalize``: an empty OS is the host's; features sorted and deduplicated."""
    arch, variant = normalize_arch(p.architecture, p.variant)
    return replace(p, os=_normalize_os(p.os, host), architecture=arch, variant=variant,
                   os_features=tuple(sorted(set(p.os_features))))


# --- specifiers ----------------------------------------------------------------------------------

_SPECIFIER_RE = re.compile(r"[A-Za-z0-9_.-]+")
_OS_RE = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?")
_KNOWN_OS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
                       "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"})
_KNOWN_ARCH = frozenset({"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
                         "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
                         "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"})
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decode_option(v: str, spec: str) -> str:
    """Go's ``url.PathUnescape``: ``%XX`` decoded, a malformed escape an error."""
    if "%" not in v:
        return v
    if _ESCAPE_RE.search(v):
        raise UsageError(f"invalid platform {spec!r}: malformed %-escape in {v!r}")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(v).decode("utf-8", "surrogateescape")


def _parse_features(s: str, spec: str) -> tuple[str, ...]:
    features = []
    for raw in s.split("+"):
        raw = raw.strip()
        if not raw:
            raise UsageError(f"invalid platform {spec!r}: an empty OS feature")
        feature = _decode_option(raw, spec)
        if feature:
            features.append(feature)
    return tuple(features)


def parse(spec: str, host: Host) -> Platform:
    """``platforms.Parse``: ``<os>[(<version>[+<feature>]…)]``, ``<arch>``, or
    ``<os>[(…)]/<arch>[/<variant>]``. An OS alone takes the host's architecture; an architecture alone the
    host's OS. Raises :class:`UsageError` where containerd returns an error."""
    def bad(why: str) -> UsageError:
        return UsageError(f"invalid platform {spec!r}: {why}",
                          hint="write it as OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8")

    if "*" in spec:
        raise bad("wildcards are not supported")
    parts = spec.split("/", 3)
    m = _OS_RE.fullmatch(parts[0])
    if m is None:
        raise bad(f"{parts[0]!r} is not an OS component")
    os_ = _normalize_os(m.group(1), host)
    os_version = _decode_option(m.group(2) or "", spec)
    features = _parse_features(m.group(3)[1:], spec) if m.group(3) else ()
    for part in parts[1:]:
        if not _SPECIFIER_RE.fullmatch(part):
            raise bad(f"{part!r} is not a valid component")
    p = Platform(os_, "", "", os_version, features)
    if len(parts) == 1:
        if os_ in _KNOWN_OS:
            variant = host.cpu_variant if host.architecture == "arm" and host.cpu_variant != "v7" else ""
            return replace(p, architecture=host.architecture, variant=variant)
        arch, variant = normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return replace(p, os=host.os, architecture=arch, variant=variant)
        raise bad("unknown operating system or architecture")
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return replace(p, architecture=arch, variant=variant)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return replace(p, architecture=arch, variant=variant)
    raise bad("too many components")


def _encode_option(v: str) -> str:
    return v.replace("%", "%25").replace("+", "%2B").replace("(", "%28").replace(")", "%29").replace("/", "%2F")


def format_all(p: Platform) -> str:
    """``platforms.FormatAll``: ``os(version+feature…)/arch/variant``."""
    if not p.os:
        return "unknown"
    head = p.os
    features = "+".join(_encode_option(f) for f in sorted(set(p.os_features)) if f)
    if p.os_version or features:
        head += "(" + _encode_option(p.os_version) + ("+" + features if features else "") + ")"
    return "/".join(x for x in (head, p.architecture, p.variant) if x)


# --- matchers ------------------------------------------------------------------------------------

class MatchComparer(Protocol):
    def match(self, p: Platform) -> bool: ...

    def less(self, p1: Platform, p2: Platform) -> bool: ...


def _features_subset(have: Sequence[str], want: Sequence[str]) -> bool:
    """Both sorted: is every one of ``have`` in ``want`` (the matcher's), walked in order as Go does."""
    if len(want) < len(have):
        return False
    j = 0
    for feature in have:
        found = False
        while j < len(want):
            if feature == want[j]:
                found = True
                j += 1
                break
            if feature < want[j]:
                return False
            j += 1
        if not found:
            return False
    return True


@dataclass(frozen=True)
class _Matcher:
    """``NewMatcher``: equal OS, architecture and variant after normalization; the candidate's OS features
    a subset of the matcher's. (The OS version is not compared except for Windows, refused by
    :func:`check_supported`.)"""

    platform: Platform
    host: Host

    def match(self, p: Platform) -> bool:
        n = normalize(p, self.host)
        m = self.platform
        if (m.os, m.architecture, m.variant) != (n.os, n.architecture, n.variant):
            return False
        return not n.os_features or _features_subset(n.os_features, m.os_features)


@dataclass(frozen=True)
class Ordered:
    """``platforms.Ordered``: matches any of its platforms, preferring earlier ones, then more features."""

    matchers: tuple[_Matcher, ...]

    def match(self, p: Platform) -> bool:
        return any(m.match(p) for m in self.matchers)

    def less(self, p1: Platform, p2: Platform) -> bool:
        for m in self.matchers:
            p1m, p2m = m.match(p1), m.match(p2)
            if p1m and not p2m:
                return True
            if p1m or p2m:
                if p1m and p2m and len(p1.os_features) != len(p2.os_features):
                    return len(p1.os_features) > len(p2.os_features)
                return False
        if p1.os_features or p2.os_features:
            return self.less(replace(p1, os_features=()), replace(p2, os_features=()))
        return False


def ordered(platforms: Iterable[Platform], host: Host) -> Ordered:
    return Ordered(tuple(_Matcher(normalize(p, host), host) for p in platforms))


def only_strict(p: Platform, host: Host) -> Ordered:
    """``platforms.OnlyStrict``: this platform alone, no older variants, no 386 for amd64."""
    return ordered([normalize(p, host)], host)


@dataclass(frozen=True)
class IgnoreOSFeatures:
    """nerdctl's ``platformutil.IgnoreOSFeaturesMatcher``: a candidate also matches with ``features``
    removed, but one that matches as it is sorts first."""

    inner: Ordered
    features: tuple[str, ...]

    def _without(self, p: Platform) -> Platform:
        if not any(f in self.features for f in p.os_features):
            return p
        return replace(p, os_features=tuple(f for f in p.os_features if f not in self.features))

    def match(self, p: Platform) -> bool:
        return self.inner.match(p) or self.inner.match(self._without(p))

    def less(self, p1: Platform, p2: Platform) -> bool:
        p1m, p2m = self.inner.match(p1), self.inner.match(p2)
        if p1m != p2m:
            return p1m
        if p1m:
            return self.inner.less(p1, p2)
        return self.inner.less(self._without(p1), self._without(p2))


EROFS = "erofs"  # nerdctl's platformutil.ErofsOSFeature


def local_matcher(p: Platform, host: Host) -> MatchComparer:
    """What ``run``/``create`` use for an image already in the store (pkg/imgutil GetExistingImage)."""
    return only_strict(p, host)


def pull_matcher(p: Platform, host: Host) -> MatchComparer:
    """What ``run``/``create``/``pull`` use for an image they pull (platformutil
    NewMatchComparerFromOCISpecPlatformSlice)."""
    return IgnoreOSFeatures(ordered([p], host), (EROFS,))


def check_supported(p: Platform) -> None:
    if p.os == "windows":
        raise UsageError("Windows platforms are not supported by the nerdctl wrapper",
                         hint="BACON checks Linux images; run Windows containers on a Windows host")


# --- the walk ------------------------------------------------------------------------------------

ReadIndex = Callable[[oci.Descriptor], oci.Index]
ConfigPlatform = Callable[[oci.Descriptor], Platform]  # a manifest descriptor -> its config's platform


@dataclass(frozen=True)
class Choice:
    """A manifest reached from the top descriptor, and the indexes walked to reach it (outermost first)."""

    manifest: oci.Descriptor
    via: tuple[oci.Descriptor, ...]


def sort_entries(entries: Iterable[oci.Descriptor], matcher: MatchComparer) -> list[oci.Descriptor]:
    """containerd's filter and stable sort of an index's entries: those with a platform the matcher
    accepts, and those without a platform (last), in the matcher's order."""
    kept = [d for d in entries if d.platform is None or matcher.match(d.platform)]

    def cmp(a: oci.Descriptor, b: oci.Descriptor) -> int:
        if a.platform is None:
            return 0 if b.platform is None else 1
        if b.platform is None:
            return -1
        if matcher.less(a.platform, b.platform):
            return -1
        return 1 if matcher.less(b.platform, a.platform) else 0

    return sorted(kept, key=cmp_to_key(cmp))  # stable, as sort.SliceStable


MAX_DEPTH = 8  # nested indexes; containerd sets no limit, an index that nests deeper is refused


def _manifest_matches(d: oci.Descriptor, matcher: MatchComparer, config_platform: ConfigPlatform) -> bool:
    if d.platform is not None:
        return matcher.match(d.platform)
    return matcher.match(config_platform(d))


def choose(top: oci.Descriptor, matcher: MatchComparer, read_index: ReadIndex,
           config_platform: ConfigPlatform) -> Choice:
    """containerd's ``images.Manifest``: from an index, the first entry in the matcher's order, walked
    into when it is an index; a manifest without a platform is taken only if its config's platform
    matches. A top-level manifest is taken as it is. Raises :class:`NotFound` when nothing matches."""
    d: oci.Descriptor = top
    via: tuple[oci.Descriptor, ...] = ()
    while True:
        if d.media_type in oci.MANIFEST_TYPES:
            if via and not _manifest_matches(d, matcher, config_platform):
                break
            return Choice(d, via)
        if d.media_type not in oci.INDEX_TYPES:
            raise IntegrityError(f"{d.digest} has media type {d.media_type!r}, neither an index nor an image "
                                 "manifest: nerdctl cannot run it")
        if len(via) >= MAX_DEPTH:
            raise IntegrityError(f"image index {top.digest} nests more than {MAX_DEPTH} indexes deep")
        entries = sort_entries(read_index(d).manifests, matcher)
        if not entries:
            break
        d, via = entries[0], (*via, d)
    raise NotFound(f"the image index {top.digest} has no manifest for the platform")


MAX_WALK = 1000  # distinct indexes and manifests one walk may visit (a multi-platform image has tens)


def candidates(top: oci.Descriptor, matcher: MatchComparer, read_index: ReadIndex,
               config_platform: ConfigPlatform) -> list[Choice]:
    """Every manifest the matcher accepts anywhere under ``top`` (nested indexes walked, entries of other
    media types skipped): whatever order a host's matcher gives, the one containerd takes is among them.

    Each digest is visited once, and a walk that meets more than :data:`MAX_WALK` distinct digests is
    refused: an index may list the same nested index many times over, so a walk that followed every entry
    would read ``width ** depth`` documents (1000 entries, 8 levels deep) from a few hundred bytes of
    content. A manifest listed twice is one candidate (the first way to it)."""
    out: list[Choice] = []
    seen: set[str] = set()

    def walk(d: oci.Descriptor, via: tuple[oci.Descriptor, ...]) -> None:
        if d.digest in seen:
            return
        if len(seen) >= MAX_WALK:
            raise IntegrityError(f"image index {top.digest} lists more than {MAX_WALK} distinct manifests and "
                                 "indexes: refused rather than walked")
        seen.add(d.digest)  # a manifest's match depends on its digest alone (entries were filtered already)
        if d.media_type in oci.MANIFEST_TYPES:
            if not via or _manifest_matches(d, matcher, config_platform):
                out.append(Choice(d, via))
            return
        if d.media_type not in oci.INDEX_TYPES:
            return
        if len(via) >= MAX_DEPTH:
            raise IntegrityError(f"image index {top.digest} nests more than {MAX_DEPTH} indexes deep")
        for e in sort_entries(read_index(d).manifests, matcher):
            walk(e, (*via, d))

    walk(top, ())
    return out


def requested(spec: str | None, host: Host) -> Platform:
    """The platform a command asks for: its ``--platform`` parsed, else the host's (``DefaultSpec``)."""
    p = parse(spec, host) if spec else default_spec(host)
    check_supported(p)
    return p
