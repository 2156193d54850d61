"""Fuzzing manifests, indexes and image configs (``tests.fuzz.targets.oci_documents``): JSON shaped like
them with random fields, duplicate keys, keys spelled as Go's case-insensitive decoder still matches them,
huge and deeply nested documents. Each parses or raises IntegrityError; a config's ``policy`` label
gives a level only when it is exactly High, Mid or Low, and only when containerd (Go) would read the
same label (``targets.go_policy_label``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.admission import decision as admission
from shim.admission.checks import CheckResult
from shim.common.errors import Denied, IntegrityError
from shim.images import oci
from tests.fuzz import targets
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import case_variants, json_values, mutated

D = "sha256:" + "ab" * 32
LABEL_VALUES = st.one_of(
    st.sampled_from(("High", "Mid", "Low", "high", "HIGH", "Low ", " Mid", "Mid\n", "H\u0456gh", "L\u043ew",
                     "Hig\u0127", "High\x00", "Low\u200b", "\ufeffLow", "M\u0131d", "", "Highest", "Medium")),
    st.text(max_size=5),
)


def _descriptor() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"mediaType": st.sampled_from((oci.MEDIA_OCI_MANIFEST, oci.MEDIA_DOCKER_MANIFEST, oci.MEDIA_OCI_INDEX, "x")),
         "digest": st.sampled_from((D, "sha256:" + "AB" * 32, "sha512:" + "a" * 128, "")),
         "size": st.one_of(st.integers(-2, 2**64), st.booleans(), st.floats(), st.text(max_size=2))},
        optional={"platform": st.one_of(json_values, st.fixed_dictionaries(
            {"os": st.sampled_from(("linux", "Linux", "windows")), "architecture": st.sampled_from(
                ("amd64", "x86_64", "arm64", "arm", "AMD64"))}, optional={"variant": json_values})),
                  "annotations": st.one_of(json_values, st.dictionaries(st.text(max_size=4), st.text(max_size=4)))})


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A manifest, index or config, with keys possibly respelled or repeated (raw JSON text)."""
    kind = draw(st.sampled_from(("manifest", "index", "config")))
    if kind == "manifest":
        fields: dict[str, Any] = {"schemaVersion": draw(st.sampled_from((2, 1, "2", None))),
                                  "mediaType": draw(st.sampled_from((oci.MEDIA_OCI_MANIFEST, oci.MEDIA_OCI_INDEX))),
                                  "config": draw(_descriptor()), "layers": draw(st.lists(_descriptor(), max_size=3)),
                                  "annotations": draw(json_values),
                                  "subject": draw(st.one_of(st.none(), _descriptor()))}
    elif kind == "index":
        fields = {"schemaVersion": 2, "mediaType": draw(st.sampled_from((oci.MEDIA_OCI_INDEX, oci.MEDIA_DOCKER_LIST))),
                  "manifests": draw(st.lists(_descriptor(), max_size=4))}
    else:
        labels = draw(st.one_of(st.none(), json_values, st.dictionaries(
            st.sampled_from(("policy", "Policy", "POLICY", "polic\u0443", "other")), LABEL_VALUES, max_size=3)))
        inner = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(labels)}" for k in draw(
            st.lists(case_variants("Labels"), min_size=1, max_size=2))) + "}"
        fields = {"os": "linux", "architecture": "amd64"}
        keys = draw(st.lists(case_variants("config"), min_size=1, max_size=2))
        body = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in fields.items())
        return ("{" + body + "," + ",".join(f"{json.dumps(k)}:{inner}" for k in keys) + "}").encode()
    parts = []
    for k, v in fields.items():
        spellings = draw(st.lists(case_variants(k), min_size=1, max_size=2)) if draw(st.integers(0, 3)) == 0 else [k]
        parts += [f"{json.dumps(s)}:{json.dumps(v)}" for s in spellings]
    if draw(st.booleans()):
        parts.append(f"{json.dumps(draw(st.text(max_size=6)))}:{json.dumps(draw(json_values))}")
    return ("{" + ",".join(draw(st.permutations(parts))) + "}").encode()


@fuzz(300)
@given(documents())
def test_structured_documents(data: bytes) -> None:
    targets.oci_documents(data)


@fuzz(300)
@given(st.sampled_from([p.read_bytes() for p in targets.corpus("oci")]).flatmap(mutated))
def test_mutated_seed_documents(data: bytes) -> None:
    targets.oci_documents(data)


@fuzz(300)
@given(json_values.map(lambda v: json.dumps(v).encode()))
def test_any_json(data: bytes) -> None:
    targets.oci_documents(data)


@fuzz(300)
@given(st.dictionaries(st.sampled_from(("policy", "other", "Policy")), LABEL_VALUES, max_size=3))
def test_labels_give_a_level_only_when_exact(labels: dict[str, str]) -> None:
    data = json.dumps({"config": {"Labels": labels}}).encode()
    level = targets.check_config(data, default="Low")
    if "Policy" in labels:  # a key that looks like the label's is refused, beside it or alone
        assert level is None
    elif "policy" in labels:
        assert level == (labels["policy"] if labels["policy"] in ("High", "Mid", "Low") else None)
    else:
        assert level == "Low"


@fuzz(300)
@given(st.dictionaries(st.sampled_from(("policy", "Policy", "other")), LABEL_VALUES, max_size=2),
       st.sampled_from(("High", "Mid", "Low")), st.sampled_from(("High", "Mid", "Low")), st.booleans())
def test_admission_of_a_config(labels: dict[str, str], system: str, default: str, host_ok: bool) -> None:
    """The whole rule over a parsed config: admitted exactly when the label (or the default) is a level at
    most the system level, and the host checks that level requires pass."""
    cfg = oci.parse_config(json.dumps({"config": {"Labels": labels}}).encode())

    def host_check() -> CheckResult:
        if not host_ok:
            raise Denied("the host check failed", check="tpm")
        return CheckResult("tpm", "ok")

    verdict = admission.decide_admission(
        image="127.0.0.1:5000/app", digest=D, system_level=system, default_level=default,
        require={"High": ["signature", "tpm"], "Mid": ["signature"], "Low": ["signature"]},
        signature=lambda: CheckResult("signature", "ok"), labels=lambda: cfg.labels, host_checks={"tpm": host_check})
    level = labels.get("policy", default)
    rank = {"Low": 0, "Mid": 1, "High": 2}
    expected = ("Policy" not in labels and level in rank and rank[level] <= rank[system]
                and (level != "High" or host_ok))
    assert verdict.admitted == expected, (labels, system, default, host_ok, verdict)
    if not expected:
        with pytest.raises(Denied):
            verdict.raise_if_denied()


# -- regressions: Go's case-insensitive field matching (found by the oracle above) -------------------------


@pytest.mark.parametrize("doc", [
    b'{"config":{"Labels":{"policy":"Low"},"labels":{"policy":"High"}}}',
    b'{"config":{"Labels":{"policy":"Low"}},"Config":{"Labels":{"policy":"High"}}}',
    b'{"config":{"Labels":{"policy":"Low"},"Label\\u017f":{"policy":"High"}}}',
])
def test_config_keys_that_go_reads_as_one_field_are_refused(doc: bytes) -> None:
    with pytest.raises(IntegrityError, match="case-insensitively"):
        oci.parse_config(doc)


@pytest.mark.parametrize("doc", [b'{"config":{"labels":{"policy":"High"}}}', b'{"CONFIG":{"LABELS":{"policy":"High"}}}',
                                 b'{"config":{"Label\\u017f":{"policy":"High"}}}'])
def test_config_keys_go_matches_case_insensitively_are_read(doc: bytes) -> None:
    assert oci.parse_config(doc).labels == {"policy": "High"}


@pytest.mark.parametrize("labels", [b"[]", b'""', b"0", b"false"])
def test_labels_of_the_wrong_type_are_refused_even_when_empty(labels: bytes) -> None:
    with pytest.raises(IntegrityError, match="Labels is not a map"):
        oci.parse_config(b'{"config":{"Labels":' + labels + b"}}")


def test_manifest_with_two_config_descriptors_is_refused() -> None:
    desc = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 1}
    doc = ('{"schemaVersion":2,"config":' + json.dumps(desc) + ',"Config":'
           + json.dumps({**desc, "digest": "sha256:" + "cd" * 32}) + ',"layers":[]}').encode()
    with pytest.raises(IntegrityError, match="case-insensitively"):
        oci.parse_manifest(doc)


def test_manifest_annotations_must_be_strings() -> None:
    with pytest.raises(IntegrityError, match="annotations"):
        oci.parse_manifest(b'{"schemaVersion":2,"config":{"mediaType":"x","digest":"' + D.encode()
                           + b'","size":1},"annotations":{"a":1}}')


# -- huge and deep documents ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"config":' * 50_000 + b"{}" + b"}" * 50_000,
    b'{"config":{"Labels":{"policy":"Low","n":' + b"9" * 5000 + b"}}}",
    b'{"config":{"Labels":{"policy":"Low"}},"x":"' + b"a" * oci.MAX_CONFIG_BYTES + b'"}',
    b'{"config":{"Labels":{' + b",".join(b'"k%d":"v"' % i for i in range(oci.MAX_LABELS + 1)) + b"}}}",
    b'{"config":{"Labels":{"policy":NaN}}}',
    b'{"config":{"Labels":{"policy":"Low"}},"history":[Infinity]}',
    '{"config":{"Labels":{"policy":"Low"}}}'.encode("utf-16"),
    b'\xef\xbb\xbf{"config":{"Labels":{"policy":"Low"}}}',
])
def test_huge_deep_and_odd_documents_are_refused_or_read(data: bytes) -> None:
    targets.oci_documents(data)
    with pytest.raises(IntegrityError):
        oci.parse_config(data)
