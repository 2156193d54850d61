"""The admission decision, over data: one image digest, its signature check, its labels, the host's level
and the host checks its level requires. This file is where a reader finds the rule.

Order matters: the signature first (the label is trustworthy only because the signature covers
manifest → config → labels), then the level, then each host check the level requires. The first
failure decides; a check that cannot run (:class:`Unavailable`), a malformed input
(:class:`IntegrityError`) or a bug are denials too. Nothing here does IO: the checks are callables
handed in by the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shim.admission import levels
from shim.admission.checks import CheckResult
from shim.common.errors import BaconError, ConfigError, Denied

Check = Callable[[], CheckResult]


@dataclass(frozen=True)
class Outcome:
    """One check as audited and explained: passed or not, why, and details."""

    check: str
    passed: bool
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "summary": self.summary, **self.details}


@dataclass(frozen=True)
class Verdict:
    image: str
    digest: str
    system_level: str
    level: str | None
    outcomes: tuple[Outcome, ...]
    denial: BaconError | None

    @property
    def admitted(self) -> bool:
        return self.denial is None

    def raise_if_denied(self) -> None:
        if self.denial is None:
            return
        if isinstance(self.denial, Denied):
            self.denial.image = self.denial.image or self.image
            self.denial.digest = self.denial.digest or self.digest
            raise self.denial
        if isinstance(self.denial, ConfigError):
            raise self.denial
        failed = self.outcomes[-1].check if self.outcomes else "admission"
        raise Denied(self.denial.message, check=failed, hint=self.denial.hint, image=self.image,
                     digest=self.digest) from self.denial


def _run(name: str, check: Check) -> tuple[Outcome, BaconError | None]:
    try:
        result = check()
    except BaconError as e:
        return Outcome(name, False, e.message), _as_denial(name, e)
    except Exception as e:  # noqa: BLE001 - a check that crashes is a denial, never a pass
        err = Denied(f"the {name} check failed unexpectedly: {type(e).__name__}: {e}", check=name)
        return Outcome(name, False, err.message), err
    return Outcome(name, True, result.summary, dict(result.details)), None


def _as_denial(name: str, e: BaconError) -> BaconError:
    """The error a failed check ends the decision with: a denial, except a configuration that cannot be
    trusted (a key file others can write, …), which stays what it is (exit 78, with the file named)."""
    if isinstance(e, Denied | ConfigError):
        return e
    return Denied(e.message, check=name, hint=e.hint)


def decide_admission(
    *,
    image: str,
    digest: str,
    system_level: str,
    default_level: str,
    require: Mapping[str, Sequence[str]],
    signature: Check,
    labels: Callable[[], Mapping[str, str]],
    host_checks: Mapping[str, Check],
) -> Verdict:
    """Decide one image. ``labels`` is only called after the signature passed; host checks only for
    what the image's level requires (a required check missing from ``host_checks`` is a denial)."""
    outcomes: list[Outcome] = []

    def verdict(level: str | None, denial: BaconError | None) -> Verdict:
        return Verdict(image, digest, system_level, level, tuple(outcomes), denial)

    outcome, err = _run("signature", signature)
    outcomes.append(outcome)
    if err:
        return verdict(None, err)

    known: dict[str, str] = {}

    def level_check() -> CheckResult:
        got = levels.image_level(dict(labels()), default_level)
        known["level"] = got.level  # a level denial still knows (and audits) the image's level
        levels.check_level(system_level, got)
        source = "label" if got.from_label else "default (no policy label)"
        return CheckResult("level", f"{got.level} ({source}) <= system level {system_level}",
                           {"level": got.level, "from_label": got.from_label})

    outcome, err = _run("level", level_check)
    outcomes.append(outcome)
    if err:
        return verdict(known.get("level"), err)
    level = str(outcome.details["level"])
    ceiling = outcomes[0].details.get("signer_max_level")
    if ceiling is not None:  # a scoped signer vouched: only up to its max_level (docs/scopes.md)
        signer = outcomes[0].details.get("signed_by", "its signer")
        scope = outcomes[0].details.get("scope", "")
        if levels.RANK[level] > levels.RANK[str(ceiling)]:
            message = (f"the image is level {level}, above what its signer {signer} may vouch for "
                       f"(scope {scope})")
            outcomes.append(Outcome("scope", False, message))
            return verdict(level, Denied(message, check="scope",
                                         hint="have it signed by a signer whose max_level covers its level, or "
                                              "raise that signer's max_level under [trust] (docs/scopes.md)"))
        outcomes.append(Outcome("scope", True, f"{level} within the scope of {signer} ({scope})"))
    for name in require.get(level, ()):
        if name == "signature":
            continue
        check = host_checks.get(name)
        if check is None:
            outcomes.append(Outcome(name, False, f"the {name} check is required for level {level} but "
                                                 "is not available on this host"))
            return verdict(level, Denied(
                f"level {level} requires the {name} check, which is not available",
                check=name, hint=f"configure [{name}] in /etc/bacon/config.toml (bacon doctor shows what is missing)"))
        outcome, err = _run(name, check)
        outcomes.append(outcome)
        if err:
            return verdict(level, err)
    return verdict(level, None)
