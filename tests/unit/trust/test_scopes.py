"""Scoped signers (issue 15): repository globs over normalized names, maximum levels, per-repository
signer requirements; their configuration, and how a verified signature is judged by them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.admission import decision as admission
from shim.admission.checks import CheckResult
from shim.common import config
from shim.common.errors import ConfigError, Denied
from shim.images import oci
from shim.images.reference import DEFAULT_DOMAIN
from shim.trust import scopes, signatures, signing
from shim.trust import signers as trustpolicy
from shim.trust.keys import PublicKey, SigningKey, load_public_key
from shim.trust.signatures import Material, classic_payload
from tests.harness.sigimages import make_bundle
from tests.unit.common.test_config import write
from tests.unit.trust.test_signatures import signing_key

REG = "registry.example"
D1 = "sha256:" + "1" * 64


# -- patterns ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "repository", "matches"), [
    (f"{REG}/team/*", f"{REG}/team/app", True),
    (f"{REG}/team/*", f"{REG}/team/app/sub", False),  # * stays within one component
    (f"{REG}/team/*", f"{REG}/other/app", False),
    (f"{REG}/team/*", f"{REG}/teamx/app", False),
    (f"{REG}/team/**", f"{REG}/team/app/sub", True),
    (f"{REG}/team/**", f"{REG}/team", False),
    (f"{REG}/team/app", f"{REG}/team/app", True),
    (f"{REG}/team/ap?", f"{REG}/team/app", True),
    ("*.example/team/*", f"{REG}/team/app", True),
    ("*.example/team/*", "registry.example.evil/team/app", False),
    ("127.0.0.1:5000/team/*", "127.0.0.1:5000/team/app", True),
    ("127.0.0.1:*/team/*", "127.0.0.1:5001/team/app", True),
    ("team/*", f"{DEFAULT_DOMAIN}/team/app", True),  # normalized as nerdctl normalizes `team/app`
    ("team/*", f"{REG}/team/app", False),
    ("alpine", f"{DEFAULT_DOMAIN}/library/alpine", True),
    ("localhost/team/*", "localhost/team/app", True),
    ("**", f"{REG}/anything/at/all", True),
])
def test_pattern_matching(pattern: str, repository: str, matches: bool) -> None:
    assert scopes.parse_pattern(pattern).matches(repository) is matches


@pytest.mark.parametrize(("pattern", "why"), [
    ("", "non-empty"),
    (f"{REG}/Team/*", "lowercase"),
    (f"{REG}/team/app:1.0", "no tag"),
    (f"{REG}/team/app@sha256:" + "1" * 64, "digest"),
    (f"{REG}//app", "not a repository name pattern"),
    (f"{REG}/team/", "not a repository name pattern"),
    (f"{REG}/team/[ab]", "not a repository name pattern"),
    ("bad!host.example/x", "not a registry name"),
    ("x" * 600, "at most 512"),
    (7, "non-empty string"),
])
def test_bad_patterns(pattern: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        scopes.parse_pattern(pattern)


def test_scope_levels_and_description() -> None:
    team = scopes.Scope(repositories=(scopes.parse_pattern(f"{REG}/team/*"),), max_level="Low")
    assert team.covers_level("Low")
    assert not team.covers_level("Mid")
    assert not team.covers_level("High")
    assert team.describe() == f"{REG}/team/* up to Low"
    assert not team.covers_repository(None)  # an image that names no repository is covered by no glob
    assert scopes.UNSCOPED.unscoped
    assert scopes.UNSCOPED.covers_repository(None)
    assert scopes.Scope(max_level="Mid").describe() == "any repository up to Mid"


# -- configuration --------------------------------------------------------------------------------------

BASE = 'level = "Low"\nnerdctl = "/x"\n'
SCOPED = BASE + f'''[trust]
keys = ["/k/legacy.pub",
        {{ path = "/k/team.pub", name = "team", repositories = ["{REG}/team/*"], max_level = "Low" }},
        {{ path = "/k/release.pub", name = "release" }}]
require = [{{ repositories = ["{REG}/prod/**"], signers = ["release"] }}]
[signing]
key = "/k/team.key"
unattended = true
'''


def test_scoped_config_parses(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, SCOPED))
    assert cfg.trusted_keys == (Path("/k/legacy.pub"), Path("/k/team.pub"), Path("/k/release.pub"))
    legacy, team, release = cfg.key_entries
    assert legacy.name == "/k/legacy.pub"
    assert legacy.scope.unscoped
    assert team.name == "team"
    assert team.scope.describe() == f"{REG}/team/* up to Low"
    assert release.scope.unscoped
    (req,) = cfg.requirements
    assert req.signers == ("release",)
    assert req.applies_to(f"{REG}/prod/x/y")
    assert cfg.signing_unattended is True
    assert trustpolicy.unscoped_signers(cfg) == ["/k/legacy.pub", "release"]


def test_unattended_defaults_to_false(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, BASE)).signing_unattended is False


@pytest.mark.parametrize(("trust", "match"), [
    ('keys = [{ path = "/k/a.pub", max_level = "Top" }]', "max_level"),
    ('keys = [{ path = "/k/a.pub", repositories = [] }]', "'repositories' must be a non-empty list"),
    ('keys = [{ path = "/k/a.pub", repositories = "r/*" }]', "'repositories' must be a non-empty list"),
    ('keys = [{ path = "/k/a.pub", repositories = ["r.example/Team/*"] }]', "'repositories'.*lowercase"),
    ('keys = [{ path = "/k/a.pub", scope = "x" }]', r"keys\[0\]: unknown key\(s\) scope"),
    ('keys = [{ name = "a" }]', "absolute paths"),
    ('keys = [{ path = "/k/a.pub", name = "" }]', "'name'"),
    ('keys = [7]', "must be a path or a table"),
    ('keys = [{ path = "/k/a.pub", name = "x" }, { path = "/k/b.pub", name = "x" }]', "used twice: x"),
    ('keys = ["/k/a.pub", "/k/a.pub"]', "used twice"),
    ('keys = ["/k/a.pub"]\nrequire = [{ repositories = ["r.example/p/*"], signers = ["release"] }]',
     r"require\[0\]: 'signers' names no \[trust\] key or identity called release"),
    ('keys = ["/k/a.pub"]\nrequire = [{ repositories = ["r.example/p/*"] }]', "needs both"),
    ('keys = ["/k/a.pub"]\nrequire = [{ repositories = ["r.example/p/*"], signers = [] }]', "'signers'"),
    ('keys = ["/k/a.pub"]\nrequire = [{ repositories = ["r.example/p/*"], signers = ["/k/a.pub"], x = 1 }]',
     "unknown key"),
    ('keys = ["/k/a.pub"]\nrequire = "release"', "'require' must be a list"),
    ('keys = ["/k/a.pub"]\nrequires = []', r"\[trust\]: unknown key\(s\) requires"),
    ('trusted_root = "/r.json"\nidentities = [{ issuer = "https://i.example", subject = "a@example.com", '
     'max_level = "low" }]', "max_level"),
    ('trusted_root = "/r.json"\nidentities = [{ issuer = "https://i.example", subject = "a@example.com", '
     'repositories = ["x y"] }]', "'repositories'"),
])
def test_bad_scope_configs_are_refused_naming_the_key(tmp_path: Path, trust: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        config.load(write(tmp_path, BASE + "[trust]\n" + trust + "\n"))
    assert e.value.exit_code == 78


@pytest.mark.parametrize(("signing_table", "match"), [
    ("unattended = 1", "unattended must be true or false"),
    ('unattended = "yes"', "unattended must be true or false"),
    ('password = "hunter2"', r"\[signing\]: unknown key\(s\) password"),
])
def test_bad_signing_configs(tmp_path: Path, signing_table: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config.load(write(tmp_path, BASE + "[signing]\n" + signing_table + "\n"))


def test_identity_scope_and_name(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, BASE + '[trust]\ntrusted_root = "/r.json"\nidentities = [{ issuer = '
                                     '"https://i.example", subject = "ci@example.com", name = "ci", '
                                     f'repositories = ["{REG}/ci/*"], max_level = "Mid" }}]\n'
                                     'require = [{ repositories = ["r.example/x/*"], signers = ["ci"] }]\n'))
    (ident,) = cfg.identities
    assert ident.signer_name == "ci"
    assert ident.scope.max_level == "Mid"
    assert ident.scope.covers_repository(f"{REG}/ci/app")


# -- verification with a judge -------------------------------------------------------------------------

def _keys(tmp_path: Path, *signers: tuple[str, SigningKey]) -> list[PublicKey]:
    out = []
    for name, key in signers:
        p = tmp_path / f"{name}.pub"
        p.write_bytes(key.public_pem())
        out.append(load_public_key(key.public_pem(), str(p)))
    return out


def _cfg(tmp_path: Path, trust: str) -> config.Config:
    return config.load(write(tmp_path, BASE + "[trust]\n" + trust + "\n"))


def _classic(key: SigningKey, digest: str, existing: bytes | None = None,
             blobs: dict[str, bytes] | None = None) -> tuple[bytes, dict[str, bytes]]:
    body = classic_payload(digest, f"{REG}/team/app", {"bacon.level": "Low"})
    manifest, _ = signing.signature_manifest(existing, body, key.sign(body))
    return manifest, {**(blobs or {}), oci.sha256_digest(body): body}


@pytest.fixture(scope="module")
def team_key() -> SigningKey:
    return signing_key()


@pytest.fixture(scope="module")
def release_key() -> SigningKey:
    return signing_key()


def _team_cfg(tmp_path: Path, extra: str = "") -> config.Config:
    return _cfg(tmp_path, f'keys = [{{ path = "{tmp_path}/team.pub", name = "team", '
                          f'repositories = ["{REG}/team/*"], max_level = "Low" }}, '
                          f'{{ path = "{tmp_path}/release.pub", name = "release", max_level = "High" }}]\n' + extra)


@pytest.mark.parametrize("fmt", ["classic", "bundle"])
def test_signer_outside_its_repositories_is_named_in_the_denial(tmp_path: Path, team_key: SigningKey,
                                                                  release_key: SigningKey, fmt: str) -> None:
    trusted = _keys(tmp_path, ("team", team_key), ("release", release_key))
    cfg = _team_cfg(tmp_path)
    if fmt == "classic":
        manifest, blobs = _classic(team_key, D1)
        m = Material(D1, classic_manifest=manifest, blobs=blobs)
    else:
        m = Material(D1, bundles=(make_bundle(team_key, D1),))
    ok = signatures.verify([m], trusted, judge=trustpolicy.judge_for(cfg, f"{REG}/team/app"))
    assert ok.info is not None
    assert ok.info.name == "team"
    assert ok.check_result().details["signer_max_level"] == "Low"
    with pytest.raises(Denied) as e:
        signatures.verify([m], trusted, judge=trustpolicy.judge_for(cfg, f"{REG}/other/app"))
    assert e.value.message.startswith("no signer whose scope covers this image")
    assert f"team (key {tmp_path}/team.pub), whose scope ({REG}/team/* up to Low) does not cover repository " \
           f"{REG}/other/app" in e.value.message
    assert "docs/scopes.md" in (e.value.hint or "")


def test_repository_requiring_a_signer_refuses_another(tmp_path: Path, team_key: SigningKey,
                                                        release_key: SigningKey) -> None:
    trusted = _keys(tmp_path, ("team", team_key), ("release", release_key))
    cfg = _team_cfg(tmp_path, f'require = [{{ repositories = ["{REG}/team/prod-*"], signers = ["release"] }}]')
    manifest, blobs = _classic(team_key, D1)
    with pytest.raises(Denied, match=r"signed by team .*, but registry.example/team/prod-\* requires a signature "
                                     "by release"):
        signatures.verify([Material(D1, classic_manifest=manifest, blobs=blobs)], trusted,
                          judge=trustpolicy.judge_for(cfg, f"{REG}/team/prod-app"))
    manifest, blobs = _classic(release_key, D1, manifest, blobs)  # the release key signs too: admitted
    v = signatures.verify([Material(D1, classic_manifest=manifest, blobs=blobs)], trusted,
                          judge=trustpolicy.judge_for(cfg, f"{REG}/team/prod-app"))
    assert v.info is not None
    assert v.info.name == "release"


def test_the_signer_allowed_the_highest_level_is_chosen(tmp_path: Path, team_key: SigningKey,
                                                         release_key: SigningKey) -> None:
    trusted = _keys(tmp_path, ("team", team_key), ("release", release_key))
    cfg = _team_cfg(tmp_path)
    manifest, blobs = _classic(team_key, D1)
    manifest, blobs = _classic(release_key, D1, manifest, blobs)
    v = signatures.verify([Material(D1, classic_manifest=manifest, blobs=blobs)], trusted,
                          judge=trustpolicy.judge_for(cfg, f"{REG}/team/app"))
    assert v.info is not None
    assert v.info.name == "release"
    assert v.annotations == {"bacon.level": "Low"}


def test_a_key_not_listed_in_the_configuration_is_unscoped(tmp_path: Path, team_key: SigningKey) -> None:
    cfg = _cfg(tmp_path, 'keys = []')
    (pub,) = _keys(tmp_path, ("elsewhere", team_key))
    info = trustpolicy.key_signer(cfg, pub)
    assert info.scope.unscoped
    assert info.shown == f"key {tmp_path}/elsewhere.pub"


# -- the level ceiling in the decision -------------------------------------------------------------------

def _decide(details: Mapping[str, object], level: str, system_level: str = "High") -> admission.Verdict:
    return admission.decide_admission(
        image="i", digest=D1, system_level=system_level, default_level="High",
        require={"Low": ("signature",), "Mid": ("signature",), "High": ("signature",)},
        signature=lambda: CheckResult("signature", "signed", details),
        labels=lambda: {"policy": level}, host_checks={})


def test_a_scoped_signer_vouches_only_up_to_its_max_level() -> None:
    scoped = {"signer_max_level": "Low", "signed_by": "team (key /k/team.pub)", "scope": f"{REG}/team/* up to Low"}
    ok = _decide(scoped, "Low")
    assert ok.admitted
    assert [o.check for o in ok.outcomes] == ["signature", "level", "scope"]
    no = _decide(scoped, "Mid")
    assert not no.admitted
    assert isinstance(no.denial, Denied)
    assert no.denial.check == "scope"
    assert no.denial.message == (f"the image is level Mid, above what its signer team (key /k/team.pub) may "
                                 f"vouch for (scope {REG}/team/* up to Low)")
    assert _decide({"signer_max_level": None}, "High").admitted  # unscoped: as before
    assert [o.check for o in _decide({}, "High").outcomes] == ["signature", "level"]


# -- status / doctor ----------------------------------------------------------------------------------

def test_status_warns_about_unscoped_signers_and_unattended_signing(tmp_path: Path) -> None:
    from shim.operator import status

    cfg = config.load(write(tmp_path, SCOPED))
    item = status.probe_scopes(cfg)
    assert item.state == status.WARN
    assert "2 trusted signer(s) unscoped" in item.summary
    assert "/k/legacy.pub, release" in item.summary
    assert f"scope team: {REG}/team/* up to Low" in item.lines
    assert f"rule  {REG}/prod/** requires a signature by release" in item.lines
    signing_item = status.probe_signing(cfg)
    assert signing_item.state == status.WARN
    assert "anyone allowed to run the wrapper can sign" in signing_item.summary
    scoped_only = config.load(write(tmp_path, BASE + '[trust]\nkeys = [{ path = "/k/t.pub", max_level = "Low" }]\n'
                                                     '[signing]\nkey = "/k/t.key"\n'))
    assert status.probe_scopes(scoped_only).state == status.OK
    assert status.probe_signing(scoped_only).state == status.OK
    assert "password asked" in status.probe_signing(scoped_only).summary
    text = "\n".join(status.format_doctor(status.build(cfg.path, cfg, "Low", "c", [item, signing_item])))
    assert "warn     signer scopes" in text
    assert "fix: give each [trust] keys/identities entry" in text


def test_the_shipped_configurations_scope_example_loads_as_it_says(tmp_path: Path) -> None:
    """packaging/deb/config.toml explains scopes with an example: uncommented, it is a valid [trust]."""
    shipped = (Path(__file__).resolve().parents[3] / "packaging" / "deb" / "config.toml").read_text()
    lines = shipped.splitlines()
    start = lines.index("# keys = [")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("# require = "))
    trust = "\n".join(line.removeprefix("# ") for line in lines[start:end + 1])
    cfg = config.load(write(tmp_path, BASE + "[trust]\n" + trust + "\n"))
    team, release = cfg.key_entries
    assert team.scope.describe() == f"{REG}/team/* up to Low"
    judge_team = scopes.SignerInfo(team.name, team.name, team.scope)
    assert scopes.judge(judge_team, f"{REG}/team/app", cfg.requirements) is None
    assert scopes.judge(judge_team, f"{REG}/other/app", cfg.requirements) is not None
    assert not team.scope.covers_level("Mid")
    judge_release = scopes.SignerInfo(release.name, release.name, release.scope)
    assert scopes.judge(judge_release, f"{REG}/prod/app", cfg.requirements) is None
    assert "requires a signature by release" in (scopes.judge(
        scopes.SignerInfo("team", "team", scopes.UNSCOPED), f"{REG}/prod/app", cfg.requirements) or "")


# -- properties -----------------------------------------------------------------------------------------

_PATTERN_TEXT = st.text(alphabet="abz09.-_:/*?[]@A \\", max_size=24)
_COMPONENT = st.from_regex(r"[a-z0-9](?:[a-z0-9._-]{0,4}[a-z0-9])?", fullmatch=True)


@given(_PATTERN_TEXT)
def test_any_pattern_text_is_a_pattern_or_a_value_error(text: str) -> None:
    try:
        p = scopes.parse_pattern(text)
    except ValueError:
        return
    assert p.normalized.startswith(p.written) or p.normalized.endswith(p.written)


@given(st.lists(_COMPONENT, min_size=1, max_size=4), st.lists(_COMPONENT, min_size=1, max_size=3))
def test_a_single_star_never_crosses_a_slash(prefix: list[str], rest: list[str]) -> None:
    pattern = scopes.parse_pattern(f"{REG}/" + "/".join([*prefix[:-1], "*"]))
    inside = f"{REG}/" + "/".join([*prefix[:-1], prefix[-1]])
    deeper = inside + "/" + "/".join(rest)
    assert pattern.matches(inside)
    assert not pattern.matches(deeper)
    assert scopes.parse_pattern(f"{REG}/" + "/".join([*prefix[:-1], "**"])).matches(deeper)
