"""The operator's commands against a harness host: `bacon status` and `bacon doctor` (real containerd, a
real swtpm, real keys), `bacon enable`/`disable` on a temporary root (a fake "real nerdctl" in a temp
directory, never /usr/local/bin), and `bacon audit` over a log the gate really wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from shim.operator import enable as en
from tests.conftest import Host, Signed, trusted_config
from tests.harness import swtpm as swtpm_h
from tests.harness.proc import sigint_default
from tests.tdx_provider import FuseProvider, TdxEnv, toml_table

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

FAKE_NERDCTL = b"#!/bin/sh\necho \"real nerdctl $*\"\nexit 0\n" + bytes(range(256)) * 4 + b"\n"


def bacon(host: Host, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.bacon, *args], env=host.env(**env), capture_output=True, text=True,
                          timeout=timeout)



@pytest.fixture
def mid_host(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm) -> Host:
    """A Mid host: the trusted key, the swtpm, a recorded baseline."""
    trusted_config(gate_host, signed.trusted, level="Mid", extra=f'[tpm]\ntcti = "{tpm.tcti}"\n')
    r = bacon(gate_host, "baseline", "record")
    assert r.returncode == 0, r.stderr
    return gate_host


# --- status and doctor -----------------------------------------------------------------------------------

@pytest.mark.swtpm
def test_status_json_on_a_ready_mid_host(mid_host: Host, signed: Signed) -> None:
    r = bacon(mid_host, "status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    items = {i["key"]: i for i in doc["items"]}
    assert doc["ok"] is True
    assert doc["system_level"] == "Mid"
    assert doc["needed_checks"] == ["signature", "tpm"]
    for key in ("config", "level", "keys", "tpm", "containerd", "nerdctl", "state"):
        assert items[key]["state"] == "ok", items[key]
    assert items["keys"]["details"]["keys"][0]["path"] == str(signed.trusted.public)
    assert items["tpm"]["details"]["matches_baseline"] is True
    assert items["containerd"]["details"]["version"]
    assert items["tdx"]["state"] == "fail"
    assert items["tdx"]["needed"] is False
    assert items["secure_boot"]["details"]["state"] in ("not-efi", "enabled", "disabled", "unknown")
    levels = {row["level"]: row for row in doc["levels"]}
    assert levels["Mid"] == {"level": "Mid", "requires": ["signature", "tpm"], "admitted": True, "met": True,
                             "missing": [], "profile": "baseline"}
    assert levels["High"]["admitted"] is False
    assert levels["High"]["missing"] == ["tdx"]

    text = bacon(mid_host, "status")
    assert text.returncode == 0
    assert "ok    system level   Mid (from" in text.stdout
    assert "result: ready" in text.stdout
    assert "High  refused here" in text.stdout


@pytest.mark.swtpm
def test_status_and_doctor_fail_when_the_pcrs_change_and_say_how_to_fix(mid_host: Host, tpm: swtpm_h.Swtpm) -> None:
    env = {**os.environ, "TPM2TOOLS_TCTI": tpm.tcti}
    subprocess.run(["tpm2_pcrextend", "7:sha256=" + "ab" * 32], env=env, check=True, capture_output=True)
    r = bacon(mid_host, "status")
    assert r.returncode == 1, r.stdout
    assert "FAIL  TPM" in r.stdout
    assert "PCR 7 differ from the baseline" in r.stdout
    assert "fix: `bacon baseline show --diff` explains" in r.stdout
    assert "NOT READY" in r.stdout

    d = bacon(mid_host, "doctor")
    assert d.returncode == 1
    line = next(x for x in d.stdout.splitlines() if x.startswith("missing") and "TPM" in x)
    assert "fix: " in line
    assert "bacon baseline record" in line
    assert any(x.startswith("ok") and "containerd" in x for x in d.stdout.splitlines())


def test_status_on_a_td_compares_the_rtmrs_with_the_reference(gate_host: Host, signed: Signed,
                                                              tdx: tuple[TdxEnv, FuseProvider]) -> None:
    env, provider = tdx
    extra = ('[levels.High]\nrequire = ["signature", "tdx"]\n[levels.Mid]\nrequire = ["signature"]\n'
             + toml_table("tdx", env.section()))  # a TD without a TPM
    trusted_config(gate_host, signed.trusted, level="High", extra=extra)
    r = bacon(gate_host, "status", "--json")
    assert r.returncode == 0, r.stdout
    doc = json.loads(r.stdout)
    tdx_item = next(i for i in doc["items"] if i["key"] == "tdx")
    assert tdx_item["state"] == "ok"
    assert tdx_item["needed"] is True
    assert tdx_item["details"]["measurements"]["rtmr0"]["match"] is True
    assert tdx_item["details"]["collateral_valid_until"]
    assert {row["level"]: row["met"] for row in doc["levels"]} == {"High": True, "Mid": True, "Low": True}

    provider.set(body={"rtmr1": "33" * 48})  # the TD booted something else
    r = bacon(gate_host, "status")
    assert r.returncode == 1
    assert "FAIL  TDX            TDX guest: rtmr1 differ from [tdx.reference]" in r.stdout
    assert "rtmr1  333333" in r.stdout


def test_doctor_json_without_keys_or_tpm(host: Host) -> None:
    host.write_config(host.config.read_text() + '[tpm]\ntcti = "device:/nonexistent/tpmrm0"\n')
    r = bacon(host, "doctor", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    req = {x["key"]: x for x in doc["requirements"]}
    assert req["keys"]["ok"] is False
    assert req["keys"]["needed"] is True
    assert "[trust] keys" in req["keys"]["fix"]
    assert req["tpm"]["ok"] is False
    assert req["tpm"]["needed"] is False
    assert req["containerd"]["ok"]
    assert req["nerdctl"]["ok"]
    assert req["config"]["ok"]
    assert [p["key"] for p in doc["problems"]] == ["keys"]


def test_status_with_a_broken_configuration_still_reports_the_host(host: Host) -> None:
    host.config.chmod(0o666)
    r = bacon(host, "status", "--json")
    assert r.returncode == 78
    doc = json.loads(r.stdout)
    items = {i["key"]: i for i in doc["items"]}
    assert items["config"]["state"] == "fail"
    assert "writable by others" in items["config"]["summary"]
    assert items["config"]["fix"] == f"chmod go-w {host.config}"
    assert items["containerd"]["state"] == "ok"  # the other probes still ran


def test_status_is_bounded_when_the_tpm_never_answers(host: Host) -> None:
    port = swtpm_h.free_port_pair()
    with socket.socket() as silent, socket.socket() as silent_ctrl:  # accept, never answer: a hung TPM
        for s, p in ((silent, port), (silent_ctrl, port + 1)):
            s.bind(("127.0.0.1", p))
            s.listen(8)
        host.write_config(host.config.read_text() + f'[tpm]\ntcti = "swtpm:host=127.0.0.1,port={port}"\n')
        start = time.monotonic()
        r = bacon(host, "status", "--json", "--timeout", "2", timeout=60)
        elapsed = time.monotonic() - start
    assert elapsed < 15, elapsed
    doc = json.loads(r.stdout)
    tpm = next(i for i in doc["items"] if i["key"] == "tpm")
    assert (tpm["state"], tpm["summary"]) == ("fail", "did not answer within 2 s")
    assert next(i for i in doc["items"] if i["key"] == "containerd")["state"] == "ok"


# --- enable / disable on a temporary root --------------------------------------------------------------------

def snapshot(path: Path) -> tuple[bytes, int, int, int, int]:
    st = os.lstat(path)
    return path.read_bytes(), st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns


@pytest.fixture
def fake_root(host: Host, tmp_path: Path) -> tuple[Host, Path, Path]:
    """A PATH directory holding a fake real nerdctl (odd mode and group), and the configured aside path."""
    bindir = Path(str(tmp_path)) / "usr-local-bin"
    bindir.mkdir()
    real = bindir / "nerdctl"
    real.write_bytes(FAKE_NERDCTL)
    os.chown(real, 0, 2345)  # root-owned: enable refuses another owner (tested below)
    real.chmod(0o751)
    os.utime(real, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    aside = Path(str(tmp_path)) / "libexec" / "bacon" / "nerdctl"
    host.write_config(host.config.read_text().replace(f'nerdctl = "{host.standin}"', f'nerdctl = "{aside}"'))
    return host, real, aside


def test_enable_then_disable_restores_byte_for_byte(fake_root: tuple[Host, Path, Path]) -> None:
    host, target, aside = fake_root
    before = snapshot(target)
    config_before = host.config.read_bytes()

    r = bacon(host, "enable", "--path", str(target))
    assert r.returncode == 0, r.stderr
    assert target.is_symlink()
    assert en.is_wrapper(target)
    assert snapshot(aside) == before  # the same bytes, mode, owner and times, aside
    assert host.config.read_bytes() == config_before
    # the wrapper now answers at PATH and forwards to the real nerdctl aside
    fwd = subprocess.run([str(target), "images"], env=host.env(), capture_output=True, text=True, timeout=60)
    assert fwd.returncode == 0, fwd.stderr
    assert fwd.stdout.startswith("real nerdctl")
    assert "images" in fwd.stdout

    again = bacon(host, "enable", "--path", str(target))
    assert again.returncode == 0
    assert "already enabled" in again.stdout
    assert snapshot(aside) == before

    d = bacon(host, "disable", "--path", str(target))
    assert d.returncode == 0, d.stderr
    assert snapshot(target) == before
    assert not aside.exists()
    assert not aside.parent.exists()  # libexec/bacon/: made by enable, removed by disable
    assert (aside.parent.parent / "nerdctl").exists()  # libexec/ was there (the stand-in's): it stays
    assert not any((host.state_dir / en.RECORD_DIR).iterdir())
    audit = [json.loads(x) for x in host.audit_log.read_text().splitlines()]
    assert [a["verdict"] for a in audit] == ["enable", "disable"]

    none = bacon(host, "disable", "--path", str(target))
    assert none.returncode == 0
    assert "nothing recorded" in none.stdout
    assert snapshot(target) == before


def test_enable_when_the_configuration_names_the_target_moves_it_to_libexec(fake_root: tuple[Host, Path, Path],
                                                                           tmp_path: Path) -> None:
    host, target, _aside = fake_root
    host.write_config(f'level = "Low"\nnerdctl = "{target}"   # the real one\nstate_dir = "{host.state_dir}"\n'
                      f'audit_log = "{host.audit_log}"\n')
    config_before = host.config.read_bytes()
    before = snapshot(target)
    libexec = Path(str(tmp_path)) / "other-libexec"
    r = subprocess.run([*host.bacon, "enable", "--path", str(target), "--libexec", str(libexec), "--json"],
                       env=host.env(), capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: os.umask(0o077))  # a root with a strict umask
    assert r.returncode == 0, r.stderr
    assert oct(libexec.stat().st_mode & 0o777) == oct(0o755)
    doc = json.loads(r.stdout)
    assert doc["aside"] == str(libexec / "nerdctl")
    assert doc["config_nerdctl"] == str(libexec / "nerdctl")
    assert snapshot(libexec / "nerdctl") == before
    assert f'nerdctl = "{libexec / "nerdctl"}"   # the real one' in host.config.read_text()
    assert oct(host.config.stat().st_mode) == oct(0o100644)

    assert bacon(host, "disable", "--path", str(target)).returncode == 0
    assert snapshot(target) == before
    assert host.config.read_bytes() == config_before
    assert not (libexec / "nerdctl").exists()
    assert not libexec.exists()  # made by enable, removed by disable


def test_enable_over_a_symlink_and_over_nothing(fake_root: tuple[Host, Path, Path], tmp_path: Path) -> None:
    host, target, aside = fake_root
    opt = Path(str(tmp_path)) / "opt" / "nerdctl-2"
    opt.mkdir(parents=True)
    real = opt / "nerdctl"
    os.replace(target, real)
    target.symlink_to(os.path.relpath(real, target.parent))
    link_before = os.readlink(target)

    assert bacon(host, "enable", "--path", str(target)).returncode == 0
    assert en.is_wrapper(target)
    assert os.path.realpath(aside) == str(real)  # the configured path now leads to the real binary
    assert bacon(host, "disable", "--path", str(target)).returncode == 0
    assert os.readlink(target) == link_before
    assert not aside.exists()
    assert not aside.parent.exists()

    target.unlink()
    shutil_copy = aside.parent
    shutil_copy.mkdir(parents=True, exist_ok=True)
    aside.write_bytes(FAKE_NERDCTL)
    aside.chmod(0o755)
    r = bacon(host, "enable", "--path", str(target))
    assert r.returncode == 0, r.stderr
    assert "nothing was at" in r.stdout
    assert en.is_wrapper(target)
    assert bacon(host, "disable", "--path", str(target)).returncode == 0
    assert not os.path.lexists(target)
    assert aside.read_bytes() == FAKE_NERDCTL


def test_enable_over_a_symlink_to_the_configured_real_nerdctl(fake_root: tuple[Host, Path, Path]) -> None:
    host, target, aside = fake_root
    aside.parent.mkdir(parents=True)
    os.replace(target, aside)  # set up by hand earlier: /usr/local/bin/nerdctl -> the configured real one
    target.symlink_to(aside)
    before = snapshot(aside)
    r = bacon(host, "enable", "--path", str(target))
    assert r.returncode == 0, r.stderr
    assert "stays there" in r.stdout
    assert en.is_wrapper(target)
    assert snapshot(aside) == before
    assert bacon(host, "disable", "--path", str(target)).returncode == 0
    assert os.readlink(target) == str(aside)
    assert snapshot(aside) == before


def test_enable_refuses_what_it_must_not_replace(fake_root: tuple[Host, Path, Path]) -> None:
    host, target, aside = fake_root
    before = snapshot(target)
    target.chmod(0o644)
    r = bacon(host, "enable", "--path", str(target))
    assert r.returncode == 78
    assert "not executable" in r.stderr
    target.chmod(0o751)

    for owner, mode, says in ((1234, 0o751, "owned by uid 1234"), (0, 0o775, "writable by others")):
        os.chown(target, owner, 2345)  # the real nerdctl runs as root: nobody else may be able to change it
        target.chmod(mode)
        r = bacon(host, "enable", "--path", str(target))
        assert r.returncode == 78, r.stderr
        assert says in r.stderr
        assert not aside.exists()
    os.chown(target, 0, 2345)
    target.chmod(0o751)

    aside.parent.mkdir(parents=True)
    aside.write_bytes(b"#!/bin/sh\necho another nerdctl\n")
    aside.chmod(0o755)
    r = bacon(host, "enable", "--path", str(target))
    assert r.returncode == 78
    assert "they differ" in r.stderr
    aside.unlink()

    d = Path(str(target) + "-dir")
    d.mkdir()
    r = bacon(host, "enable", "--path", str(d))
    assert r.returncode == 78
    assert "a directory" in r.stderr
    assert snapshot(target) == before
    assert not os.path.lexists(aside)
    assert not host.audit_log.exists()  # refused before anything was done or logged


def test_wrapper_already_in_place_without_a_record(fake_root: tuple[Host, Path, Path]) -> None:
    host, target, _aside = fake_root
    entry = en.entry_point()
    assert entry is not None
    target.unlink()
    target.symlink_to(entry)
    r = bacon(host, "enable", "--path", str(target))
    assert r.returncode == 0
    assert "already enabled" in r.stdout
    r = bacon(host, "disable", "--path", str(target))
    assert r.returncode == 78
    assert "nothing records what it replaced" in r.stderr
    assert os.readlink(target) == str(entry)


def test_disable_refuses_when_the_target_was_replaced_since(fake_root: tuple[Host, Path, Path]) -> None:
    host, target, aside = fake_root
    assert bacon(host, "enable", "--path", str(target)).returncode == 0
    target.unlink()
    target.write_bytes(b"#!/bin/sh\necho upgraded nerdctl\n")  # a package upgrade put a new nerdctl there
    target.chmod(0o755)
    r = bacon(host, "disable", "--path", str(target))
    assert r.returncode == 78
    assert "no longer the BACON wrapper" in r.stderr
    assert b"upgraded" in target.read_bytes()
    assert aside.exists()


# --- audit -----------------------------------------------------------------------------------------------------

def test_audit_lists_filters_and_reports_bad_lines(gate_host: Host, signed: Signed) -> None:
    low, unsigned = signed["low"], signed["unsigned"]
    assert bacon(gate_host, "verify", low.ref).returncode == 0
    assert bacon(gate_host, "verify", unsigned.ref).returncode == 77

    r = bacon(gate_host, "audit", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [e["verdict"] for e in doc["entries"]] == ["verify-admitted", "verify-denied"]
    assert doc["bad"] == []

    # A dry run (bacon verify) is not a refusal: --verdict denied does not count it.
    assert json.loads(bacon(gate_host, "audit", "--json", "--verdict", "denied").stdout)["entries"] == []
    denied = json.loads(bacon(gate_host, "audit", "--json", "--verdict", "verify-denied").stdout)["entries"]
    assert [e["image"] for e in denied] == [unsigned.ref]
    by_image = json.loads(bacon(gate_host, "audit", "--json", "--image", "bacon/low").stdout)["entries"]
    assert [e["verdict"] for e in by_image] == ["verify-admitted"]
    assert json.loads(bacon(gate_host, "audit", "--json", "--since", "2099-01-01").stdout)["entries"] == []
    assert len(json.loads(bacon(gate_host, "audit", "--json", "--since", "1h", "-n", "1").stdout)["entries"]) == 1

    text = bacon(gate_host, "audit", "--verdict", "verify-denied")
    assert "verify-denied" in text.stdout
    assert unsigned.ref in text.stdout
    assert "failed signature" in text.stdout

    with gate_host.audit_log.open("ab") as f:
        f.write(b"garbage\x00\xff\n{\"time\": \"2026-12-0")  # a garbage line, then a torn one
    r = bacon(gate_host, "audit")
    assert r.returncode == 1
    assert ":3: not JSON" in r.stderr
    assert ":4: torn" in r.stderr
    assert "verify-admitted" in r.stdout  # the good lines are still listed

    bad = bacon(gate_host, "audit", "--since", "yesterday")
    assert bad.returncode == 64
    assert "--since" in bad.stderr


def test_audit_follow_prints_new_decisions(gate_host: Host, signed: Signed) -> None:
    assert bacon(gate_host, "verify", signed["low"].ref).returncode == 0
    p = subprocess.Popen([*gate_host.bacon, "audit", "--follow", "-n", "0", "--verdict", "verify-denied"],
                         preexec_fn=sigint_default,
                         env=gate_host.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert bacon(gate_host, "verify", signed["unsigned"].ref).returncode == 77
        assert p.stdout is not None
        line = p.stdout.readline()
        assert "verify-denied" in line
        assert signed["unsigned"].ref in line
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=20) == 130


# --- bacon serve --stop (hosts without systemd; the package's prerm) ------------------------------------------

def test_serve_stop_ends_the_running_service_and_nothing_else(host: Host) -> None:
    from tests.harness.proc import wait_for

    run = Path(str(host.root)) / "run"
    run.mkdir(mode=0o700)
    sock = run / "decide.sock"
    host.write_config(host.config.read_text() + f'[service]\nsocket = "{sock}"\n')
    assert bacon(host, "serve", "--stop").stdout.strip() == f"no bacon serve listens at {sock}"
    with (Path(str(host.root)) / "serve.log").open("wb") as log:
        proc = subprocess.Popen([*host.bacon, "serve"], env=host.env(), stdout=log, stderr=log)
    try:
        wait_for(sock.exists, "bacon serve", timeout=30, proc=proc)
        r = bacon(host, "serve", "--stop")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"stopped bacon serve (pid {proc.pid}) at {sock}"
        assert proc.wait(timeout=5) == 0  # ended on SIGTERM, as under systemd
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Something else listening there is not bacon serve: left alone, and said so.
    other = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    other.bind(str(sock))
    other.listen(1)
    try:
        r = bacon(host, "serve", "--stop")
        assert r.returncode == 78
        assert "is not bacon serve" in r.stderr
    finally:
        other.close()
