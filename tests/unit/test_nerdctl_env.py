"""Where nerdctl would connect: command line > environment > nerdctl.toml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.errors import ConfigError, UsageError
from shim.nerdctl_env import DEFAULT_ADDRESS, Target, resolve


def env_with_toml(tmp_path: Path, text: str | None, **extra: str) -> dict[str, str]:
    path = tmp_path / "nerdctl.toml"
    if text is not None:
        path.write_text(text)
    return {"NERDCTL_TOML": str(path), **extra}


def test_defaults(tmp_path: Path) -> None:
    assert resolve(None, None, env_with_toml(tmp_path, None)) == Target(DEFAULT_ADDRESS, "default")


def test_toml_then_env_then_cli(tmp_path: Path) -> None:
    env = env_with_toml(tmp_path, 'address = "unix:///t.sock"\nnamespace = "tns"\n')
    assert resolve(None, None, env) == Target("/t.sock", "tns")
    env["CONTAINERD_ADDRESS"] = "/e.sock"
    env["CONTAINERD_NAMESPACE"] = "ens"
    assert resolve(None, None, env) == Target("/e.sock", "ens")
    assert resolve("/c.sock", "cns", env) == Target("/c.sock", "cns")


def test_env_set_but_empty_replaces_toml(tmp_path: Path) -> None:
    env = env_with_toml(tmp_path, 'namespace = "tns"\n', CONTAINERD_NAMESPACE="")
    with pytest.raises(UsageError, match="empty containerd namespace"):
        resolve(None, None, env)


def test_other_schemes_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="only unix sockets"):
        resolve("tcp://127.0.0.1:1", None, env_with_toml(tmp_path, None))


def test_toml_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        resolve(None, None, env_with_toml(tmp_path, 'adress = "/x"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(None, None, env_with_toml(tmp_path, "address = \n"))
    with pytest.raises(ConfigError, match="must be a string"):
        resolve(None, None, env_with_toml(tmp_path, "address = 3\n"))


def test_toml_not_read_when_cli_and_env_decide(tmp_path: Path) -> None:
    env = env_with_toml(tmp_path, "this is not toml", CONTAINERD_NAMESPACE="x")
    assert resolve("/a.sock", None, env) == Target("/a.sock", "x")
