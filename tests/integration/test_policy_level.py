"""One visible source of truth for the system level: `bacon policy set` records an override that `bacon
status`, `bacon policy show` and `policy set` itself name (with the configuration's level it shadows), a
configuration push is not silently ignored, `policy reset` (or setting the configuration's own level)
removes the override, and `policy set` warns before changing to a level whose checks this host cannot
pass (no TPM here, not a TD). Real containerd and registry; the TPM is a port nothing listens on."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import Host
from tests.harness.proc import free_port

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]


def bacon(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.bacon, *args], env=host.env(), capture_output=True, text=True, timeout=120)


def test_the_level_override_is_named_everywhere_and_can_be_undone(host: Host) -> None:
    host.write_config(host.config.read_text().replace('level = "Low"', 'level = "Low"\ndefault_level = "High"')
                      + f'[tpm]\ntcti = "swtpm:host=127.0.0.1,port={free_port()}"\n')
    override = host.state_dir / "level"

    r = bacon(host, "policy", "set", "Mid")
    assert r.returncode == 0, r.stderr
    assert "bacon: warning: level Mid requires the tpm check, which this host cannot pass now" in r.stderr
    assert "tdx" not in r.stderr  # Mid does not require it
    assert f"overrides level = \"Low\" in {host.config}" in r.stdout
    assert override.read_text() == "Mid\n"

    show = bacon(host, "policy", "show")
    assert "system level  Mid" in show.stdout
    assert f"overrides level = \"Low\" in {host.config}" in show.stdout
    assert "sudo bacon policy reset" in show.stdout
    origin = json.loads(bacon(host, "policy", "show", "--json").stdout)["origin"]
    assert origin == {"level": "Mid", "configured": "Low", "config": str(host.config), "override": str(override),
                      "shadowed": True}

    status = json.loads(bacon(host, "status", "--json", "--timeout", "15").stdout)
    item = {i["key"]: i for i in status["items"]}["level"]
    assert item["state"] == "warn"
    assert "overrides level = \"Low\"" in item["summary"]
    assert "sudo bacon policy reset" in item["fix"]

    # A configuration push to Mid: setting Mid now leaves one place that holds it, the configuration.
    host.write_config(host.config.read_text().replace('level = "Low"', 'level = "Mid"'))
    r = bacon(host, "policy", "set", "Mid")
    assert r.returncode == 0, r.stderr
    assert not override.exists()
    assert "the override" in r.stdout
    assert "is gone" in r.stdout
    status = json.loads(bacon(host, "status", "--json", "--timeout", "15").stdout)
    item = {i["key"]: i for i in status["items"]}["level"]
    assert item["state"] == "ok"
    assert item["summary"] == f"Mid (from level = \"Mid\" in {host.config})"

    r = bacon(host, "policy", "set", "High")
    assert "requires the tdx check, which this host cannot pass now: not a TDX guest" in r.stderr
    assert override.read_text() == "High\n"
    r = bacon(host, "policy", "reset")
    assert r.returncode == 0, r.stderr
    assert f"system level High -> Mid (from level = \"Mid\" in {host.config}; removed {override})" in r.stdout
    assert not override.exists()
    assert "(from level = \"Mid\"" in bacon(host, "policy", "show").stdout
    verdicts = [json.loads(x)["verdict"] for x in host.audit_log.read_text().splitlines()]
    assert verdicts == ["policy-set"] * 4
    assert bacon(host, "policy", "set", "Medium").returncode == 64
