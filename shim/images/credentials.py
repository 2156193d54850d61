"""Registry credentials from a Docker client configuration (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``): ``auths``, ``credHelpers`` and ``credsStore``, as the Docker CLI and nerdctl
read them. The default domain's credentials are looked up under its legacy spelling too, as the Docker CLI
stores them. Standard library only: a credential helper is a subprocess, the configuration is bounded JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shim.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

MAX_CONFIG_BYTES = 1 << 20
HELPER_TIMEOUT = 10.0

_HELPER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


CredentialSource = Callable[[str], "Credentials | None"]


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    base = env.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path(env.get("HOME", "~")).expanduser() / ".docker" / "config.json"


def _host_of(key: str) -> str:
    """The host part of an ``auths`` key (``https://host/v1/`` → ``host``)."""
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0]


class DockerCredentials:
    """Credentials from a Docker client config: ``auths`` (base64 ``user:pass``), ``credHelpers`` and
    ``credsStore`` (``docker-credential-<name> get``, looked up on PATH). Identity tokens (OAuth refresh
    tokens) are not supported. A missing or unreadable config means no credentials. ``path`` defaults to
    :func:`docker_config_path` of ``environ``."""

    def __init__(self, path: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.path = path if path is not None else docker_config_path(self.environ)
        self._doc: dict[str, object] | None = None

    def _config(self) -> dict[str, object]:
        if self._doc is None:
            self._doc = {}
            if self.path is not None:
                try:
                    with self.path.open("rb") as f:
                        raw = f.read(MAX_CONFIG_BYTES + 1)
                    doc = json.loads(raw) if len(raw) <= MAX_CONFIG_BYTES else {}
                    self._doc = doc if isinstance(doc, dict) else {}
                except (OSError, ValueError):
                    self._doc = {}
        return self._doc

    def __call__(self, host: str) -> Credentials | None:
        doc = self._config()
        names = {host, LEGACY_DEFAULT_DOMAIN} if host == DEFAULT_DOMAIN else {host}
        server = f"https://{LEGACY_DEFAULT_DOMAIN}/v1/" if host == DEFAULT_DOMAIN else host
        helpers = doc.get("credHelpers")
        if isinstance(helpers, dict):
            for name in sorted(names):
                if isinstance(helpers.get(name), str):
                    return self._helper(helpers[name], server)
        auths = doc.get("auths")
        if isinstance(auths, dict):
            for key, entry in auths.items():
                if isinstance(key, str) and _host_of(key) in names and isinstance(entry, dict):
                    creds = self._auth_entry(entry)
                    if creds is not None:
                        return creds
        store = doc.get("credsStore")
        if isinstance(store, str) and store:
            return self._helper(store, server)
        return None

    @staticmethod
    def _auth_entry(entry: Mapping[str, object]) -> Credentials | None:
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                user, sep, pw = base64.b64decode(auth, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return Credentials(user, pw) if sep else None
        username, password = entry.get("username"), entry.get("password")
        if isinstance(username, str) and isinstance(password, str) and username:
            return Credentials(username, password)
        return None

    def _helper(self, name: str, host: str) -> Credentials | None:
        if not _HELPER_RE.match(name):
            return None
        exe = shutil.which(f"docker-credential-{name}", path=self.environ.get("PATH", os.defpath))
        if exe is None:
            return None
        try:
            r = subprocess.run([exe, "get"], input=host.encode(), capture_output=True, timeout=HELPER_TIMEOUT,
                               env=self.environ, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0 or len(r.stdout) > MAX_CONFIG_BYTES:
            return None
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            return None
        user = doc.get("Username") if isinstance(doc, dict) else None
        secret = doc.get("Secret") if isinstance(doc, dict) else None
        if isinstance(user, str) and isinstance(secret, str) and user and user != "<token>":
            return Credentials(user, secret)
        return None
