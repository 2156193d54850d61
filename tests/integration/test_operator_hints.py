"""Hints and exit statuses that must not mislead (the operator's second look): an unsigned image's denial
does not tell whoever was refused to sign it; an image that is not there is audited as an error with the
exit status the command got (64), not as "denied"; a level denial audits the image's level; a missing
configuration names the README's path on this host. Real containerd and registry, the harness images."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Host, Signed
from tests.integration.refusals import audit_lines, wrapper

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


def test_an_unsigned_image_is_not_answered_with_sign_it(gate_host: Host, signed: Signed) -> None:
    r = wrapper(gate_host, "run", "--rm", signed["unsigned"].ref)
    assert r.rc == 77, r.stderr
    hint = next(line for line in r.stderr.splitlines() if line.startswith("bacon: hint:"))
    assert "sign it with" not in hint
    assert "find out what it is first" in hint
    assert "whoever builds and reviews it" in hint


def test_an_image_not_found_is_audited_as_the_error_it_exits_with(gate_host: Host, signed: Signed) -> None:
    missing = f"{gate_host.registry.host}/bacon/not-there:1"
    r = wrapper(gate_host, "run", "--rm", missing)
    assert r.rc == 64, r.stderr
    assert r.first_line.startswith("bacon: not found: "), r.stderr
    [line] = audit_lines(gate_host.audit_log)
    assert (line["verdict"], line["exit_code"]) == ("error", 64)
    listed = subprocess.run([*gate_host.bacon, "audit", "--json", "--verdict", "denied"], env=gate_host.env(),
                            capture_output=True, text=True, timeout=60)
    assert json.loads(listed.stdout)["entries"] == []  # not a refusal by a check


def test_a_level_denial_audits_the_images_level(gate_host: Host, signed: Signed) -> None:
    r = wrapper(gate_host, "run", "--rm", signed["mid"].ref)
    assert r.rc == 77, r.stderr
    [line] = audit_lines(gate_host.audit_log)
    assert (line["verdict"], line["failed_check"], line["level"], line["system_level"]) == (
        "denied", "level", "Mid", "Low")
    assert line["exit_code"] == 77


def test_a_missing_configuration_names_the_readme_on_this_host(host: Host, tmp_path: Path) -> None:
    r = subprocess.run([*host.bacon, "policy", "show"], env=host.env(BACON_CONFIG=str(tmp_path / "none.toml")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78
    hint = next(line for line in r.stderr.splitlines() if line.startswith("bacon: hint:"))
    assert "see README)" not in hint
    named = [w.strip("(),") for w in hint.split() if w.strip("(),").endswith("README.md")]
    assert named, hint
    assert Path(named[0]).is_file(), hint
