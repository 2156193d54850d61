"""Measured launches through the nerdctl wrapper, on a real swtpm: each admitted run/create/start is logged
in the launch log and extended into the launch PCR before the real nerdctl (here the stand-in, which
records its argv and runs the container through ctr) is executed; a failed extend is a denial."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shim.attest import cel, launchlog, launchreplay
from tests.conftest import Host, Signed, trusted_config
from tests.harness import swtpm as swtpm_h
from tests.integration.test_gate import assert_denied, audit_lines, nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.swtpm]

PCR = 14


def measured_host(host: Host, signed: Signed, tpm: swtpm_h.Swtpm, extra: str = "") -> None:
    trusted_config(host, signed.trusted, extra=f'[tpm]\ntcti = "{tpm.tcti}"\n[measure]\ninto = ["tpm"]\n' + extra)


def pcr_value(tpm: swtpm_h.Swtpm, pcr: int = PCR) -> bytes:
    env = {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti}
    out = subprocess.run(["tpm2_pcrread", f"sha256:{pcr}"], env=env, check=True, capture_output=True,
                         text=True).stdout
    return bytes.fromhex(out.split("0x", 1)[1].strip())


def launch_log(host: Host) -> Path:
    return launchlog.log_path(host.state_dir)


def replayed(host: Host, tpm: swtpm_h.Swtpm) -> launchreplay.Replay:
    parsed = cel.parse(launch_log(host).read_bytes())
    assert parsed.torn == 0
    entries = launchreplay.decode(parsed.records)
    return launchreplay.replay(entries, cel.PCR, PCR, "sha256", bytes(32), pcr_value(tpm))


def test_each_admitted_launch_extends_the_pcr_and_the_log_replays_to_it(
        gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    measured_host(gate_host, signed, tpm)
    low = signed["low"]
    assert pcr_value(tpm) == bytes(32)
    r = nerdctl(gate_host, "run", "--rm", low.ref)
    assert r.rc == 0, r.stderr
    assert pcr_value(tpm) != bytes(32)
    r = nerdctl(gate_host, "create", "--name", "measured", low.ref)
    assert r.rc == 0, r.stderr
    r = nerdctl(gate_host, "start", "measured")
    assert r.rc == 0, r.stderr

    rep = replayed(gate_host, tpm)
    events = [e.event for e in rep.launched]
    assert [e.command for e in events] == ["run", "create", "start"]
    assert all(e.digest == low.digest and e.level == "Low" and e.signer.startswith("key:") for e in events)
    assert {e.profile for e in events} == {"baseline"}  # the default profile of every level
    assert events[0].argv[0] == "nerdctl"
    assert events[0].argv[-1].endswith(low.digest)
    assert events[0].token
    assert events[1].token
    assert events[2].container_id
    assert events[2].token == events[1].token  # start names the container its create admitted
    assert not rep.not_extended
    admitted = [a for a in audit_lines(gate_host) if a["verdict"] == "admitted"]
    assert [a["measured"]["records"][0]["recnum"] for a in admitted] == [0, 1, 2]  # type: ignore[index]


def test_a_refused_image_is_not_measured(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    measured_host(gate_host, signed, tpm)
    r = nerdctl(gate_host, "run", "--rm", signed["unsigned"].ref)
    assert r.rc == 77
    assert pcr_value(tpm) == bytes(32)
    assert not launch_log(gate_host).exists()


def test_a_failed_extend_is_a_denial(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    measured_host(gate_host, signed, tpm)
    low = signed["low"]
    tpm.stop()
    r = nerdctl(gate_host, "run", "--rm", low.ref, timeout=60)
    assert_denied(r, low.ref, "measure", low.digest)
    assert "TPM" in r.stderr
    last = audit_lines(gate_host)[-1]
    assert last["verdict"] == "denied"
    assert last["failed_check"] == "measure"
    kept = gate_host.state_dir / "admissions"
    records = list(kept.glob("*")) if kept.exists() else []
    assert records == []  # no admission record a container could claim


def test_the_launch_pcr_must_not_be_a_boot_pcr_nor_resettable(gate_host: Host, signed: Signed,
                                                              tpm: swtpm_h.Swtpm) -> None:
    for extra, words in (("pcr = 7\n", "firmware"), ("pcr = 23\n", "reset"), ("pcr = 16\n", "reset"),
                         ("pcr = 17\n", "locality"), ("pcr = 10\n", "IMA")):
        measured_host(gate_host, signed, tpm, extra)
        r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
        assert r.rc == 78, r.stderr
        assert words in r.stderr
    trusted_config(gate_host, signed.trusted,
                   extra=f'[tpm]\ntcti = "{tpm.tcti}"\npcrs = [0, 14]\n[measure]\ninto = ["tpm"]\n')
    r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
    assert r.rc == 78
    assert "baseline" in r.stderr


def test_the_warm_service_measures_too(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> None:
    from tests.integration.test_service import Served

    served = Served(gate_host)
    measured_host(gate_host, signed, tpm)
    gate_host.write_config(gate_host.config.read_text().replace(
        "[tpm]", f'[service]\nsocket = "{served.socket}"\n[tpm]', 1))
    served.start()
    try:
        for _ in range(2):
            r = nerdctl(gate_host, "run", "--rm", signed["low"].ref)
            assert r.rc == 0, r.stderr
        assert served.requests() == 2  # decided (and measured) by the service's workers
        imported = [e["modules"] for e in served.events() if e["event"] == "imported while deciding"]
        assert imported == [], imported  # the measurement imports nothing the service had not
    finally:
        served.stop()
    rep = replayed(gate_host, tpm)
    assert len(rep.launched) == 2
    measured = [a["measured"] for a in audit_lines(gate_host) if a["verdict"] == "admitted"]
    assert all(m["ms"] > 0 for m in measured)  # type: ignore[index]
