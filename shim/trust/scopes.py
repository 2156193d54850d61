"""Scoped signers: which repositories and levels a trusted key or keyless identity may vouch for, and
which repositories require a given signer (docs/scopes.md).

A scope is a list of repository globs and a maximum level. Globs are written over repository names as
nerdctl normalizes them (``team/app`` is ``<default domain>/team/app``; ``alpine`` is
``<default domain>/library/alpine``; a first component with ``.``, ``:``, a glob character, or
``localhost`` is the registry): ``*`` and ``?`` never cross a ``/``, ``**`` matches across them. A
signer without a scope (no ``repositories``, no ``max_level``) vouches for everything, as before scopes.

Everything here is pure and standard library only (the configuration imports it): parsing a pattern
(:func:`parse_pattern`, raising :class:`ValueError` with the reason), matching (:meth:`Scope.covers_repository`),
and judging one verified signer for one repository (:func:`judge`). ``fnmatch`` is not used because its
``*`` crosses ``/`` (``team/*`` would admit ``team/x/y``) and it has character classes we do not want.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shim.images.reference import DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX

LEVELS: tuple[str, ...] = ("Low", "Mid", "High")  # ascending, as shim.common.config.LEVELS
_RANK = {name: i for i, name in enumerate(LEVELS)}
_GLOB_CHARS = frozenset("*?")
_DOMAIN_RE = re.compile(r"(?:[a-zA-Z0-9*?](?:[a-zA-Z0-9.*?-]*[a-zA-Z0-9*?])?|\[[0-9a-fA-F:]+\])(?::[0-9*?]+)?",
                        re.ASCII)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9*?](?:[a-z0-9._*?-]*[a-z0-9*?])?", re.ASCII)


@dataclass(frozen=True)
class Pattern:
    """One repository glob: as written, normalized, and compiled."""

    written: str
    normalized: str
    regex: re.Pattern[str]

    def matches(self, repository: str) -> bool:
        return self.regex.fullmatch(repository) is not None


def _is_domain(component: str) -> bool:
    return ("." in component or ":" in component or component == "localhost"
            or bool(_GLOB_CHARS & set(component)) or component.lower() != component)


def normalize_pattern(text: str) -> str:
    """The pattern with the registry nerdctl would add: ``team/*`` → ``<default domain>/team/*``,
    ``alpine`` → ``<default domain>/library/alpine``, ``**`` stays ``**`` (every repository)."""
    if text == "**":
        return text
    first, slash, _ = text.partition("/")
    if not slash:
        return f"{DEFAULT_DOMAIN}/{OFFICIAL_REPO_PREFIX}{text}"
    if _is_domain(first):
        return text
    return f"{DEFAULT_DOMAIN}/{text}"


def _compile(normalized: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(normalized):
        if normalized.startswith("**", i):
            out.append(".*")
            i += 2
        elif normalized[i] == "*":
            out.append("[^/]*")
            i += 1
        elif normalized[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(normalized[i]))
            i += 1
    return re.compile("".join(out), re.ASCII)


def parse_pattern(text: object) -> Pattern:
    """A repository glob from the configuration. Raises :class:`ValueError` saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a repository pattern must be a non-empty string, got {text!r}")
    if len(text) > 512:
        raise ValueError("a repository pattern is at most 512 characters")
    if "@" in text:
        raise ValueError(f"{text!r} names a digest; a pattern names repositories only")
    if text != "**":
        normalized = normalize_pattern(text)
        domain, _, path = normalized.partition("/")
        if not _DOMAIN_RE.fullmatch(domain):
            raise ValueError(f"{text!r}: {domain!r} is not a registry name")
        for comp in path.split("/"):
            if comp == "**":
                continue
            if not _PATH_COMPONENT_RE.fullmatch(comp):
                why = ("a repository pattern has no tag" if ":" in comp else
                       "repository names are lowercase" if comp.lower() != comp else
                       "each path component is [a-z0-9] with . _ - inside, or * ? **")
                raise ValueError(f"{text!r}: component {comp!r} is not a repository name pattern ({why})")
    else:
        normalized = text
    return Pattern(written=text, normalized=normalized, regex=_compile(normalized))


@dataclass(frozen=True)
class Scope:
    """What a signer may vouch for: ``repositories`` (None: any) and ``max_level`` (None: any)."""

    repositories: tuple[Pattern, ...] | None = None
    max_level: str | None = None

    @property
    def unscoped(self) -> bool:
        return self.repositories is None and self.max_level is None

    def covers_repository(self, repository: str | None) -> bool:
        if self.repositories is None:
            return True
        return repository is not None and any(p.matches(repository) for p in self.repositories)

    def covers_level(self, level: str) -> bool:
        return self.max_level is None or _RANK[level] <= _RANK[self.max_level]

    def describe(self) -> str:
        """``registry.example/team/* up to Low``; ``any repository up to Mid``; ``unscoped``."""
        if self.unscoped:
            return "unscoped: any repository, any level"
        where = ", ".join(p.written for p in self.repositories) if self.repositories is not None else "any repository"
        return f"{where} up to {self.max_level or 'High'}"


UNSCOPED = Scope()


@dataclass(frozen=True)
class Requirement:
    """Repositories matching ``repositories`` are admitted only on a signature by one of ``signers``
    (names of ``[trust]`` keys or identities)."""

    repositories: tuple[Pattern, ...]
    signers: tuple[str, ...]

    def applies_to(self, repository: str | None) -> bool:
        return repository is not None and any(p.matches(repository) for p in self.repositories)

    def describe(self) -> str:
        return (f"{', '.join(p.written for p in self.repositories)} requires a signature by "
                f"{' or '.join(self.signers)}")


@dataclass(frozen=True)
class SignerInfo:
    """A verified signer as policy sees it: its configured name, how it is shown, and its scope."""

    name: str
    shown: str  # "team (key /etc/bacon/keys/team.pub)"
    scope: Scope


def judge(signer: SignerInfo, repository: str | None, requirements: Sequence[Requirement]) -> str | None:
    """Why ``signer`` cannot vouch for ``repository`` (its scope, or a requirement for another signer),
    or None when it can (for some level: :meth:`Scope.covers_level` is checked once the level is known)."""
    if not signer.scope.covers_repository(repository):
        where = f"repository {repository}" if repository else "an image that names no repository"
        return (f"signed by {signer.shown}, whose scope ({signer.scope.describe()}) does not cover {where}")
    for req in requirements:
        if req.applies_to(repository) and signer.name not in req.signers:
            return f"signed by {signer.shown}, but {req.describe()} (policy for repository {repository})"
    return None


def level_ceiling_reason(signer: SignerInfo, level: str) -> str | None:
    """Why ``signer`` cannot vouch for an image of ``level``, or None."""
    if signer.scope.covers_level(level):
        return None
    return (f"the image is level {level}, above what its signer {signer.shown} may vouch for "
            f"(scope {signer.scope.describe()})")
