"""containerd's platform rules (docs/platforms.md): specifiers, normalization, the host from uname, the
matchers nerdctl uses and containerd's walk of an index. Expected values are read from containerd/platforms'
own tests and code (v1.0.0-rc.4) and nerdctl's pkg/platformutil."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.common.errors import IntegrityError, NotFound, UsageError
from shim.images import oci, platforms
from shim.images.platforms import Host, Platform

AMD64 = Host("linux", "amd64")
ARM64 = Host("linux", "arm64", "v8")
ARMV7 = Host("linux", "arm", "v7")
ARMV6 = Host("linux", "arm", "v6")
D = ["sha256:" + c * 64 for c in "0123456789abcdef"]


# --- specifiers --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "host", "want"), [
    ("linux", AMD64, Platform("linux", "amd64")),
    ("linux", ARM64, Platform("linux", "arm64")),
    ("linux", ARMV7, Platform("linux", "arm")),  # v7 is arm's default: left out
    ("linux", ARMV6, Platform("linux", "arm", "v6")),
    ("Linux", AMD64, Platform("linux", "amd64")),
    ("macos", AMD64, Platform("darwin", "amd64")),
    ("amd64", AMD64, Platform("linux", "amd64")),
    ("x86_64", AMD64, Platform("linux", "amd64")),
    ("x86-64", AMD64, Platform("linux", "amd64")),
    ("aarch64", AMD64, Platform("linux", "arm64")),
    ("arm", AMD64, Platform("linux", "arm")),
    ("armhf", AMD64, Platform("linux", "arm")),
    ("armel", AMD64, Platform("linux", "arm", "v6")),
    ("i386", AMD64, Platform("linux", "386")),
    ("s390x", ARM64, Platform("linux", "s390x")),
    ("loong64", AMD64, Platform("linux", "loong64")),
    ("linux/amd64", AMD64, Platform("linux", "amd64")),
    ("linux/AMD64", AMD64, Platform("linux", "amd64")),
    ("linux/arm", AMD64, Platform("linux", "arm")),
    ("linux/armhf", AMD64, Platform("linux", "arm")),
    ("linux/armel", AMD64, Platform("linux", "arm", "v6")),
    ("linux/i686", AMD64, Platform("linux", "i686")),  # no alias: matches nothing
    ("linux/arm64/v8", AMD64, Platform("linux", "arm64", "v8")),
    ("linux/arm64/v8.0", AMD64, Platform("linux", "arm64", "v8")),
    ("linux/arm64/8", AMD64, Platform("linux", "arm64", "v8")),
    ("linux/arm64/9", AMD64, Platform("linux", "arm64", "v9")),
    ("linux/arm64/9.0", AMD64, Platform("linux", "arm64", "v9")),
    ("linux/arm64/v9.0", AMD64, Platform("linux", "arm64", "v9")),
    ("linux/arm64/v8.2", AMD64, Platform("linux", "arm64", "v8.2")),
    ("linux/aarch64/v8", AMD64, Platform("linux", "arm64", "v8")),
    ("linux/arm/6", AMD64, Platform("linux", "arm", "v6")),
    ("linux/arm/5", AMD64, Platform("linux", "arm", "v5")),
    ("linux/arm/8", AMD64, Platform("linux", "arm", "v8")),
    ("linux/arm/7", AMD64, Platform("linux", "arm", "v7")),
    ("linux/arm/v7", AMD64, Platform("linux", "arm", "v7")),
    ("linux/armhf/v6", AMD64, Platform("linux", "arm", "v7")),  # armhf forces v7
    ("linux/amd64/v1", AMD64, Platform("linux", "amd64")),
    ("linux/amd64/v3", AMD64, Platform("linux", "amd64", "v3")),
    ("linux/i386/v5", AMD64, Platform("linux", "386")),
    ("linux(5.15)/amd64", AMD64, Platform("linux", "amd64", os_version="5.15")),
    ("linux(+erofs)/amd64", AMD64, Platform("linux", "amd64", os_features=("erofs",))),
    ("linux(5.15+erofs+b)/amd64", AMD64, Platform("linux", "amd64", os_version="5.15", os_features=("erofs", "b"))),
    ("linux(%2B1)/amd64", AMD64, Platform("linux", "amd64", os_version="+1")),
    ("linux(5.15)", AMD64, Platform("linux", "amd64", os_version="5.15")),
    ("freebsd/amd64", AMD64, Platform("freebsd", "amd64")),
    ("plan9/weird/thing", AMD64, Platform("plan9", "weird", "thing")),  # two parts or more: not checked
])
def test_parse(spec: str, host: Host, want: Platform) -> None:
    assert platforms.parse(spec, host) == want


@pytest.mark.parametrize("spec", [
    "", "/", "linux/", "linux//", "/amd64", "a/b/c/d", "linux/amd64/v3/x", "a/b/c/d/e", "*", "linux/*",
    "bogus", "i686", "linux(5.15", "linux(5.15))/amd64", "linux(+)/amd64", "linux(++a)/amd64",
    "linux(%zz)/amd64", "linux(+%2)/amd64", "linux amd64", "linux/amd 64", "linux/amd64/v(1)", "linux/ä",
])
def test_parse_refuses(spec: str) -> None:
    with pytest.raises(UsageError, match="invalid platform"):
        platforms.parse(spec, AMD64)


def test_windows_is_refused_with_a_reason() -> None:
    with pytest.raises(UsageError, match="Windows"):
        platforms.requested("windows/amd64", AMD64)
    assert platforms.requested(None, ARM64) == Platform("linux", "arm64", "v8")


@pytest.mark.parametrize(("p", "want"), [
    (Platform("linux", "amd64"), "linux/amd64"),
    (Platform("linux", "arm", "v7"), "linux/arm/v7"),
    (Platform("linux", "amd64", os_version="5.15", os_features=("b", "a", "a")), "linux(5.15+a+b)/amd64"),
    (Platform("linux", "amd64", os_features=("x+y",)), "linux(+x%2By)/amd64"),
    (Platform("", "amd64"), "unknown"),
])
def test_format_all(p: Platform, want: str) -> None:
    assert platforms.format_all(p) == want == str(p)


# --- normalization -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("p", "want"), [
    (Platform("", "amd64"), Platform("linux", "amd64")),  # an empty OS is the host's
    (Platform("LINUX", "X86_64"), Platform("linux", "amd64")),
    (Platform("linux", "amd64", "v1"), Platform("linux", "amd64")),
    (Platform("linux", "arm64", "v8"), Platform("linux", "arm64")),
    (Platform("linux", "arm64", "v8.0"), Platform("linux", "arm64")),
    (Platform("linux", "arm64", "9"), Platform("linux", "arm64", "v9")),
    (Platform("linux", "arm64", "v9.0"), Platform("linux", "arm64", "v9")),
    (Platform("linux", "arm64", "v9.1"), Platform("linux", "arm64", "v9.1")),
    (Platform("linux", "arm"), Platform("linux", "arm", "v7")),
    (Platform("linux", "arm", "6"), Platform("linux", "arm", "v6")),
    (Platform("linux", "arm", "v6"), Platform("linux", "arm", "v6")),
    (Platform("linux", "armhf", "v5"), Platform("linux", "arm", "v7")),
    (Platform("linux", "armel"), Platform("linux", "arm", "v6")),
    (Platform("linux", "i386", "v9"), Platform("linux", "386")),
    (Platform("linux", "i686"), Platform("linux", "i686")),
    (Platform("macOS", "arm64"), Platform("darwin", "arm64")),
    (Platform("linux", "amd64", os_features=("b", "a", "b")), Platform("linux", "amd64", os_features=("a", "b"))),
])
def test_normalize(p: Platform, want: Platform) -> None:
    assert platforms.normalize(p, AMD64) == want


# --- the host ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("machine", "kw", "want"), [
    ("x86_64", {}, Host("linux", "amd64")),
    ("i686", {}, Host("linux", "386")),
    ("aarch64", {"cpu_architecture": "8"}, Host("linux", "arm64", "v8")),
    ("aarch64", {}, Host("linux", "arm64", "v8")),
    ("armv7l", {"cpu_architecture": "7"}, Host("linux", "arm", "v7")),
    ("armv7l", {}, Host("linux", "arm", "v7")),
    ("armv6l", {}, Host("linux", "arm", "v6")),
    ("armv7l", {"cpu_architecture": "7", "model_name": "ARMv6-compatible processor rev 7 (v6l)"},
     Host("linux", "arm", "v6")),
    ("armv8l", {"cpu_architecture": "8"}, Host("linux", "arm", "v8")),
    ("armv7l", {"cpu_architecture": "?(13)"}, Host("linux", "arm", "v7")),
    ("armv7l", {"cpu_architecture": "9"}, Host("linux", "arm", "unknown")),
    ("loongarch64", {}, Host("linux", "loong64")),
    ("mips", {"byteorder": "little"}, Host("linux", "mipsle")),
    ("mips", {"byteorder": "big"}, Host("linux", "mips")),
    ("mips64", {"byteorder": "little"}, Host("linux", "mips64le")),
    ("mips64", {"byteorder": "big"}, Host("linux", "mips64")),
    ("ppc64le", {}, Host("linux", "ppc64le")),
    ("s390x", {}, Host("linux", "s390x")),
    ("riscv64", {}, Host("linux", "riscv64")),
])
def test_host_from_uname(machine: str, kw: dict[str, str], want: Host) -> None:
    assert platforms.host_from_uname(machine, **kw) == want


def test_cpuinfo_field() -> None:
    text = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\n"
    assert platforms.cpuinfo_field(text, "CPU architecture") == "7"
    assert platforms.cpuinfo_field(text, "model name") == "ARMv7 Processor rev 4 (v7l)"
    assert platforms.cpuinfo_field(text, "Features") is None


# --- the walk ----------------------------------------------------------------------------------------

def entry(i: int, plat: dict[str, object] | None, media: str = oci.MEDIA_OCI_MANIFEST) -> dict[str, object]:
    e: dict[str, object] = {"mediaType": media, "digest": D[i], "size": 2}
    if plat is not None:
        e["platform"] = plat
    return e


def P(arch: str, os_: str = "linux", *, variant: str = "", features: list[str] | None = None,
      version: str = "") -> dict[str, object]:
    out: dict[str, object] = {"os": os_, "architecture": arch}
    if variant:
        out["variant"] = variant
    if features is not None:
        out["os.features"] = features
    if version:
        out["os.version"] = version
    return out


class Store:
    """Indexes and configs by digest, for the walk's reads."""

    def __init__(self, indexes: dict[int, list[dict[str, object]]], configs: dict[int, Platform] | None = None):
        self.indexes = {D[k]: oci.parse_index(json.dumps({"schemaVersion": 2, "manifests": v}).encode())
                        for k, v in indexes.items()}
        self.configs = {D[k]: v for k, v in (configs or {}).items()}
        self.config_reads: list[str] = []

    def read_index(self, d: oci.Descriptor) -> oci.Index:
        return self.indexes[d.digest]

    def config_platform(self, d: oci.Descriptor) -> Platform:
        self.config_reads.append(d.digest)
        return self.configs[d.digest]

    def choose(self, matcher: platforms.MatchComparer) -> str:
        top = oci.Descriptor(oci.MEDIA_OCI_INDEX, D[0], 2)
        return platforms.choose(top, matcher, self.read_index, self.config_platform).manifest.digest

    def candidates(self, matcher: platforms.MatchComparer) -> list[str]:
        top = oci.Descriptor(oci.MEDIA_OCI_INDEX, D[0], 2)
        return [c.manifest.digest for c in platforms.candidates(top, matcher, self.read_index, self.config_platform)]


def local(spec: str | None = None, host: Host = AMD64) -> platforms.MatchComparer:
    return platforms.local_matcher(platforms.requested(spec, host), host)


def pulled(spec: str | None = None, host: Host = AMD64) -> platforms.MatchComparer:
    return platforms.pull_matcher(platforms.requested(spec, host), host)


IDX = oci.MEDIA_OCI_INDEX
# (what, index entries (top is D[0]; more indexes by number), configs, spec, host, local pick, pulled pick)
WALKS: list[tuple[str, dict[int, list[dict[str, object]]], dict[int, Platform], str | None, Host, int | None,
                  int | None]] = [
    ("first of two equal entries", {0: [entry(1, P("amd64")), entry(2, P("amd64"))]}, {}, None, AMD64, 1, 1),
    ("host entry among others", {0: [entry(1, P("arm64")), entry(2, P("amd64"))]}, {}, None, AMD64, 2, 2),
    ("nothing for the host", {0: [entry(1, P("arm64"))]}, {}, None, AMD64, None, None),
    ("os.features never taken by the stored-image matcher",
     {0: [entry(1, P("amd64", features=["erofs"])), entry(2, P("amd64"))]}, {}, None, AMD64, 2, 2),
    ("erofs alone: pulled takes it, stored does not",
     {0: [entry(1, P("amd64", features=["erofs"]))]}, {}, None, AMD64, None, 1),
    ("other features are never taken", {0: [entry(1, P("amd64", features=["gpu"]))]}, {}, None, AMD64,
     None, None),
    ("asking for erofs prefers it", {0: [entry(2, P("amd64")), entry(1, P("amd64", features=["erofs"]))]},
     {}, "linux(+erofs)/amd64", AMD64, 1, 1),
    ("os.version does not count on linux", {0: [entry(1, P("amd64", version="9"))]}, {}, "linux(5.15)/amd64",
     AMD64, 1, 1),
    ("empty os is the host's", {0: [entry(1, {"architecture": "amd64"}), entry(2, P("amd64"))]}, {}, None, AMD64, 1, 1),
    ("os given as empty string", {0: [entry(1, P("amd64", os_="")), entry(2, P("amd64"))]}, {}, None, AMD64, 1, 1),
    ("nested index walked into",
     {0: [entry(1, P("amd64"), IDX), entry(2, P("amd64"))], 1: [entry(3, P("arm64")), entry(4, P("amd64"))]},
     {}, None, AMD64, 4, 4),
    ("nested index without platform sorts last",
     {0: [entry(1, None, IDX), entry(2, P("amd64"))], 1: [entry(4, P("amd64"))]}, {}, None, AMD64, 2, 2),
    ("nested index without platform, nothing else",
     {0: [entry(1, None, IDX), entry(2, P("arm64"))], 1: [entry(4, P("amd64"))]}, {}, None, AMD64, 4, 4),
    ("nested index with no match: nothing (no second try)",
     {0: [entry(1, P("amd64"), IDX), entry(2, P("amd64"))], 1: [entry(3, P("arm64"))]}, {}, None, AMD64, None, None),
    ("platform-less entry sorts last", {0: [entry(1, None), entry(2, P("amd64"))]}, {1: Platform("linux", "amd64")},
     None, AMD64, 2, 2),
    ("platform-less entry taken when its config matches", {0: [entry(1, None), entry(2, P("arm64"))]},
     {1: Platform("linux", "amd64")}, None, AMD64, 1, 1),
    ("platform-less entry with a foreign config: nothing", {0: [entry(1, None), entry(2, P("amd64", os_="windows"))]},
     {1: Platform("linux", "arm64")}, None, AMD64, None, None),
    ("x86_64 entry", {0: [entry(1, P("x86_64"))]}, {}, None, AMD64, 1, 1),
    ("amd64/v1 entry", {0: [entry(1, P("amd64", variant="v1"))]}, {}, None, AMD64, 1, 1),
    ("amd64/v3 entry not taken for plain amd64", {0: [entry(1, P("amd64", variant="v3"))]}, {}, None, AMD64,
     None, None),
    ("no 386 fallback", {0: [entry(1, P("386"))]}, {}, None, AMD64, None, None),
    ("i686 entry matches nothing", {0: [entry(1, P("i686"))]}, {}, "linux/386", AMD64, None, None),
    ("i386 entry drops its variant", {0: [entry(1, P("i386", variant="x"))]}, {}, "linux/386", AMD64, 1, 1),
    ("armhf entry is arm/v7", {0: [entry(1, P("armhf"))]}, {}, None, ARMV7, 1, 1),
    ("armel entry is arm/v6", {0: [entry(1, P("armel")), entry(2, P("arm", variant="v6"))]}, {}, None, ARMV6, 1, 1),
    ("arm/7 entry", {0: [entry(1, P("arm", variant="7"))]}, {}, None, ARMV7, 1, 1),
    ("arm/v6 not taken on v7 (strict)", {0: [entry(1, P("arm", variant="v6"))]}, {}, None, ARMV7, None, None),
    ("arm64/v8 entry", {0: [entry(1, P("arm64", variant="v8"))]}, {}, None, ARM64, 1, 1),
    ("arm64/v8.0 entry", {0: [entry(1, P("arm64", variant="v8.0"))]}, {}, None, ARM64, 1, 1),
    ("aarch64 entry", {0: [entry(1, P("aarch64"))]}, {}, None, ARM64, 1, 1),
    ("arm64/9 asked, v9.0 entry", {0: [entry(1, P("arm64", variant="v8")), entry(2, P("arm64", variant="v9.0"))]},
     {}, "linux/arm64/9", AMD64, 2, 2),
    ("linux alone is the host's arch", {0: [entry(1, P("arm64")), entry(2, P("amd64"))]}, {}, "linux", ARM64, 1, 1),
    ("arch alone", {0: [entry(1, P("arm64")), entry(2, P("amd64"))]}, {}, "arm64", AMD64, 1, 1),
    ("case of entry fields", {0: [entry(1, P("AMD64", os_="Linux"))]}, {}, None, AMD64, 1, 1),
    ("artifact media types are skipped only when they do not match",
     {0: [entry(1, P("unknown", os_="unknown")), entry(2, P("amd64"))]}, {}, None, AMD64, 2, 2),
]


@pytest.mark.parametrize(("what", "indexes", "configs", "spec", "host", "want_local", "want_pulled"), WALKS,
                         ids=[w[0] for w in WALKS])
def test_walk(what: str, indexes: dict[int, list[dict[str, object]]], configs: dict[int, Platform],
              spec: str | None, host: Host, want_local: int | None, want_pulled: int | None) -> None:
    for matcher, want in ((local(spec, host), want_local), (pulled(spec, host), want_pulled)):
        store = Store(indexes, configs)
        if want is None:
            with pytest.raises(NotFound, match="no manifest for the platform"):
                store.choose(matcher)
        else:
            assert store.choose(matcher) == D[want]
            assert D[want] in store.candidates(matcher)


def test_unknown_media_type_chosen_is_an_error_not_a_skip() -> None:
    store = Store({0: [entry(1, P("amd64"), "application/vnd.example+json"), entry(2, P("amd64"))]})
    with pytest.raises(IntegrityError, match="neither an index nor an image manifest"):
        store.choose(local())
    assert store.candidates(local()) == [D[2]]


def test_candidates_are_every_accepted_manifest() -> None:
    store = Store({0: [entry(1, P("amd64"), IDX), entry(2, P("amd64")), entry(3, P("arm64")), entry(5, None)],
                   1: [entry(4, P("amd64")), entry(6, P("amd64"))]},
                  {5: Platform("linux", "amd64")})
    assert store.candidates(local()) == [D[4], D[6], D[2], D[5]]


def test_nesting_is_bounded() -> None:
    chain = {i: [entry(i + 1, P("amd64"), IDX)] for i in range(12)}
    with pytest.raises(IntegrityError, match="nests more than"):
        Store(chain).choose(local())


class CountingStore(Store):
    def __init__(self, indexes: dict[int, list[dict[str, object]]], configs: dict[int, Platform] | None = None):
        super().__init__(indexes, configs)
        self.index_reads: list[str] = []

    def read_index(self, d: oci.Descriptor) -> oci.Index:
        self.index_reads.append(d.digest)
        return super().read_index(d)


def test_an_index_listing_one_nested_index_many_times_is_walked_once() -> None:
    """Before, the walk followed every entry: 50 entries naming the same index, 5 levels deep, made
    50**5 (312 million) reads of a few hundred bytes of content, a hang."""
    levels = {i: [entry(i + 1, P("amd64"), IDX)] * 50 for i in range(5)}
    levels[5] = [entry(9, P("amd64"))] * 50 + [entry(10, None)] * 50
    store = CountingStore(levels, {10: Platform("linux", "arm64")})
    assert store.candidates(local()) == [D[9]]
    assert sorted(store.index_reads) == D[:6]
    assert store.config_reads == [D[10]]  # a platform-less manifest listed 50 times: its config read once


def test_a_manifest_listed_twice_is_one_candidate() -> None:
    store = Store({0: [entry(1, P("amd64")), entry(2, P("amd64")), entry(1, P("amd64"))]})
    assert store.candidates(local()) == [D[1], D[2]]


def test_a_walk_over_too_many_distinct_documents_is_refused() -> None:
    many = [{"mediaType": oci.MEDIA_OCI_MANIFEST, "digest": f"sha256:{i + 1:064x}", "size": 2,
             "platform": P("amd64")}
            for i in range(platforms.MAX_WALK)]
    top = oci.Descriptor(IDX, D[0], 2)
    index = oci.parse_index(json.dumps({"manifests": many}).encode())
    with pytest.raises(IntegrityError, match=f"more than {platforms.MAX_WALK} distinct"):
        platforms.candidates(top, local(), lambda d: index, lambda d: pytest.fail("no config"))
    assert len(platforms.candidates(top, local(), lambda d: oci.parse_index(json.dumps(
        {"manifests": many[:-1]}).encode()), lambda d: pytest.fail("no config"))) == platforms.MAX_WALK - 1


def test_a_top_level_manifest_is_taken_as_it_is() -> None:
    top = oci.Descriptor(oci.MEDIA_OCI_MANIFEST, D[1], 2)
    chosen = platforms.choose(top, local(), lambda d: pytest.fail("no index"), lambda d: pytest.fail("no config"))
    assert chosen.manifest == top
    assert chosen.via == ()


def test_descriptor_platform_parsing() -> None:
    idx = oci.parse_index(json.dumps({"manifests": [
        entry(1, {"architecture": "amd64"}), entry(2, {"OS": "linux", "Architecture": "arm", "os.Features": ["a"]}),
        entry(3, {}), {**entry(4, None), "platform": None}]}).encode())
    assert [d.platform for d in idx.manifests] == [Platform("", "amd64"), Platform("linux", "arm", os_features=("a",)),
                                                   Platform("", ""), None]
    bads: list[object] = [{"os": 1, "architecture": "amd64"}, {"os.features": "erofs"}, {"os.features": [1]}, []]
    for bad in bads:
        e = {**entry(1, None), "platform": bad}
        with pytest.raises(IntegrityError):
            oci.parse_index(json.dumps({"manifests": [e]}).encode())


# --- properties --------------------------------------------------------------------------------------

OSES = st.sampled_from(["linux", "Linux", "", "windows", "darwin", "macos", "freebsd"])
ARCHES = st.sampled_from(["amd64", "x86_64", "x86-64", "386", "i386", "i686", "arm", "armhf", "armel", "arm64",
                          "aarch64", "AMD64", "s390x", "riscv64", "loong64", "mips64le"])
VARIANTS = st.sampled_from(["", "v1", "v2", "v3", "v5", "v6", "v7", "v8", "5", "6", "7", "8", "9", "9.0", "v8.0",
                            "v8.2", "v9", "v9.0", "v9.1"])
FEATURES = st.lists(st.sampled_from(["erofs", "gpu", "a"]), max_size=3).map(tuple)
PLATFORMS = st.builds(Platform, OSES, ARCHES, VARIANTS, st.sampled_from(["", "5.15"]), FEATURES)
HOSTS = st.sampled_from([AMD64, ARM64, ARMV7, ARMV6, Host("linux", "s390x")])


@given(PLATFORMS, HOSTS)
def test_normalize_is_idempotent(p: Platform, host: Host) -> None:
    n = platforms.normalize(p, host)
    assert platforms.normalize(n, host) == n


@given(PLATFORMS, HOSTS)
def test_format_then_parse_gives_the_same_platform(p: Platform, host: Host) -> None:
    n = platforms.normalize(p, host)
    assert platforms.normalize(platforms.parse(platforms.format_all(n), host), host) == n


@given(st.text(max_size=40), HOSTS)
def test_parse_raises_only_usage_errors(spec: str, host: Host) -> None:
    with contextlib.suppress(UsageError):
        platforms.parse(spec, host)


def _oracle(entries: list[oci.Descriptor], want: Platform, host: Host) -> str | None:
    """An independent statement of containerd's choice for a stored image, direct entries only: the
    entries equal to ``want`` after normalization whose features ``want`` has, the most features first, in
    index order; then entries without a platform (none here)."""
    w = platforms.normalize(want, host)
    ok = [d for d in entries if d.platform is not None
          and (lambda n: (n.os, n.architecture, n.variant) == (w.os, w.architecture, w.variant)
               and set(n.os_features) <= set(w.os_features))(platforms.normalize(d.platform, host))]
    ok.sort(key=lambda d: -len(d.platform.os_features) if d.platform else 0)
    return ok[0].digest if ok else None


@settings(max_examples=400)
@given(st.lists(PLATFORMS, min_size=1, max_size=8), PLATFORMS.filter(lambda p: p.os not in ("windows",)), HOSTS)
def test_stored_image_choice_matches_the_oracle(entry_platforms: list[Platform], want: Platform, host: Host) -> None:
    entries = [oci.Descriptor(oci.MEDIA_OCI_MANIFEST, D[i], 2, p) for i, p in enumerate(entry_platforms)]
    matcher = platforms.local_matcher(want, host)
    top = oci.Descriptor(oci.MEDIA_OCI_INDEX, D[15], 2)
    index = oci.Index(oci.MEDIA_OCI_INDEX, tuple(entries))
    expected = _oracle(entries, want, host)
    try:
        got: str | None = platforms.choose(top, matcher, lambda d: index, lambda d: Platform("", "")).manifest.digest
    except NotFound:
        got = None
    assert got == expected
    if got is not None:
        cands = platforms.candidates(top, matcher, lambda d: index, lambda d: Platform("", ""))
        assert got in [c.manifest.digest for c in cands]


@given(st.lists(PLATFORMS, min_size=1, max_size=8), HOSTS)
def test_pulled_choice_prefers_plain_entries(entry_platforms: list[Platform], host: Host) -> None:
    """The erofs wrapper never takes an erofs-only entry while an entry matches as it is."""
    want = platforms.default_spec(host)
    entries = [oci.Descriptor(oci.MEDIA_OCI_MANIFEST, D[i], 2, p) for i, p in enumerate(entry_platforms)]
    matcher = platforms.pull_matcher(want, host)
    plain = platforms.local_matcher(want, host)
    ordered = platforms.sort_entries(entries, matcher)
    if any(plain.match(p) for p in entry_platforms):
        assert ordered
        assert ordered[0].platform is not None
        assert plain.match(ordered[0].platform)
