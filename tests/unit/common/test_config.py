"""BACON's own configuration: where it is read from, when it is refused, what it means."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.common import config
from shim.common.errors import ConfigError

GOOD = '''
level = "Mid"
nerdctl = "/usr/local/libexec/bacon/nerdctl"
[trust]
keys = ["/etc/bacon/keys/team.pub"]
[registry]
insecure = ["127.0.0.1:5000"]
[levels.Low]
require = ["signature"]
[tpm]
tcti = "swtpm:host=127.0.0.1,port=2321"
'''


def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    d = tmp_path / "etc"
    d.mkdir(exist_ok=True, mode=0o755)
    d.chmod(0o755)
    p = d / "config.toml"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_good_config(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.level == "Mid"
    assert cfg.trusted_keys == (Path("/etc/bacon/keys/team.pub"),)
    assert cfg.insecure_registries == {"127.0.0.1:5000"}
    assert config.require_for(cfg, "High") == ("signature", "tpm", "tdx")
    assert cfg.default_level == "High"
    assert str(cfg.tpm.tcti).startswith("swtpm:")


def test_bacon_config_ignored_under_sudo(tmp_path: Path) -> None:
    assert config.config_path({"BACON_CONFIG": "/x.toml"}) == Path("/x.toml")
    assert config.config_path({"BACON_CONFIG": "/x.toml", "SUDO_UID": "1000"}) == config.DEFAULT_PATH
    assert config.config_path({"BACON_CONFIG": "/x.toml", "SUDO_USER": "eve"}) == config.DEFAULT_PATH


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664])
def test_writable_by_others_refused(tmp_path: Path, mode: int) -> None:
    with pytest.raises(ConfigError, match="writable by others"):
        config.load(write(tmp_path, GOOD, mode))


def test_writable_directory_refused(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    p.parent.chmod(0o777)
    with pytest.raises(ConfigError, match=r"the directory .* on its path is writable by others"):
        config.load(p)


def test_symlink_refused(tmp_path: Path) -> None:
    real = write(tmp_path, GOOD)
    link = real.parent / "link.toml"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="symlink"):
        config.load(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_foreign_owner_refused(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    os.chown(p, 1234, 1234)
    with pytest.raises(ConfigError, match="owned by uid 1234"):
        config.load(p)


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as e:
        config.load(tmp_path / "nope.toml")
    assert e.value.exit_code == 78


@pytest.mark.parametrize(("text", "match"), [
    ('level = "high"\nnerdctl = "/x"', "level must be one of"),
    ('level = "Hіgh"\nnerdctl = "/x"', "level must be one of"),
    ('level = "Low"\nnerdctl = "relative/nerdctl"', "absolute path"),
    ('level = "Low"\nnerdctl = "/x"\nbogus = 1', "unknown key"),
    ('level = "Low"\nnerdctl = "/x"\n[levels.Low]\nrequire = ["tpm"]', "must include 'signature'"),
    ('level = "Low"\nnerdctl = "/x"\n[levels.Low]\nrequire = ["signature", "magic"]', "unknown check"),
    ('level = "Low"\nnerdctl = "/x"\n[levels.Top]\nrequire = ["signature"]', "level must be one of"),
    ('level = "Low"\nnerdctl = "/x"\n[trust]\nkeys = ["rel.pub"]', "absolute"),
    ('level = "Low"\nnerdctl = "/x"\n[trust]\nkeys = "/a.pub"', "list of strings"),
    ('level = "Low"\nnerdctl = "/x"\nunrecorded_start = "allow"', "unrecorded_start"),
    ("level = ", "not valid TOML"),
])
def test_bad_configs(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config.load(write(tmp_path, text))
