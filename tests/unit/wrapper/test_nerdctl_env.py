"""Where nerdctl would connect: command line > environment > nerdctl.toml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.common.errors import ConfigError, UsageError
from shim.wrapper.nerdctl_env import DEFAULT_ADDRESS, Target, resolve


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


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
def test_a_toml_that_is_not_a_regular_file_is_refused_quickly(tmp_path: Path, kind: str) -> None:
    """Before, NERDCTL_TOML=/dev/zero read until memory ran out and a FIFO waited for ever."""
    import os
    import time

    path = tmp_path / "nerdctl.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path(kind)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file"):
        resolve(None, None, {"NERDCTL_TOML": str(path)})
    assert time.monotonic() - start < 5


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="dropping to another user needs root")
def test_under_sudo_the_toml_is_read_as_the_caller() -> None:
    import os
    import pwd
    import shutil
    import tempfile

    nobody = pwd.getpwnam("nobody")
    d = Path(tempfile.mkdtemp(prefix="bacon-toml-"))
    try:
        d.chmod(0o755)
        secret = d / "nerdctl.toml"
        secret.write_text('namespace = "root-only"\n')
        secret.chmod(0o600)
        env = {"NERDCTL_TOML": str(secret), "SUDO_UID": str(nobody.pw_uid), "SUDO_GID": str(nobody.pw_gid)}
        with pytest.raises(ConfigError, match="permissions"):
            resolve(None, None, env)
        os.chmod(secret, 0o644)
        assert resolve(None, None, env).namespace == "root-only"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_nerdctl_toml_set_to_empty_means_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """nerdctl takes NERDCTL_TOML whenever it is set (os.LookupEnv in cmd/nerdctl/main.go): set to "", it opens
    the path "", finds nothing and uses the defaults. Before, BACON fell back to the default file, and so
    checked (and pinned) another namespace than nerdctl would have used."""
    from shim.wrapper import nerdctl_env

    default = tmp_path / "default.toml"
    default.write_text('namespace = "from-default-file"\naddress = "/default-file.sock"\n')
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(nerdctl_env, "Path", lambda p: default if p == "/etc/nerdctl/nerdctl.toml" else Path(p))
    assert nerdctl_env.toml_path({"NERDCTL_TOML": ""}) is None
    assert resolve(None, None, {"NERDCTL_TOML": ""}) == Target(DEFAULT_ADDRESS, "default")
    # unset, the default file counts (the same stand-in for /etc/nerdctl/nerdctl.toml)
    assert resolve(None, None, {}) == Target("/default-file.sock", "from-default-file")
