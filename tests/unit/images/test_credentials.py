"""Registry credentials from a Docker client configuration: ``auths``, credential helpers, ``credsStore``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from shim.images.credentials import Credentials, DockerCredentials, docker_config_path
from shim.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN


def test_docker_config_auths_helpers_and_store(tmp_path: Path) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread host\n[ "$host" = "helped:5000" ] || [ "$host" = "stored:5000" ] || exit 1\n'
                      'printf \'{"ServerURL":"%s","Username":"u-%s","Secret":"s"}\' "$host" "$host"\n')
    helper.chmod(0o755)
    cfg = tmp_path / "docker" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({
        "auths": {"https://plain:5000/v1/": {"auth": base64.b64encode(b"bob:x:y").decode()},
                  "broken:5000": {"auth": "%%%"}},
        "credHelpers": {"helped:5000": "fake"},
        "credsStore": "fake",
    }))
    assert docker_config_path({"DOCKER_CONFIG": str(cfg.parent)}) == cfg
    assert docker_config_path({"HOME": "/home/x"}) == Path("/home/x/.docker/config.json")
    creds = DockerCredentials(cfg, {"PATH": str(helper.parent)})
    assert creds("plain:5000") == Credentials("bob", "x:y")
    assert creds("helped:5000") == Credentials("u-helped:5000", "s")
    assert creds("stored:5000") == Credentials("u-stored:5000", "s")
    assert creds("unknown:5000") is None  # the helper fails: no credentials
    assert DockerCredentials(environ={"DOCKER_CONFIG": str(cfg.parent), "PATH": ""}).path == cfg


def test_default_domain_credentials_under_their_legacy_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    key = f"https://{LEGACY_DEFAULT_DOMAIN}/v1/"
    cfg.write_text(json.dumps({"auths": {key: {"auth": base64.b64encode(b"hub:pw").decode()}}}))
    assert DockerCredentials(cfg, {"PATH": ""})(DEFAULT_DOMAIN) == Credentials("hub", "pw")
    assert DockerCredentials(tmp_path / "missing.json")("plain:5000") is None
