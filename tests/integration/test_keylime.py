"""Keylime's own verifier code (keylime 7.14, ``keylime.tpm.tpm_main.Tpm.check_quote``, run offline: no
registrar, no agent, no network) appraises a `bacon evidence` bundle from a real swtpm: the quote's
signature by the AK, the nonce, the PCR digest, and the quoted PCRs against a TPM policy, which is what
`bacon evidence verify --json` gives as ``tpm_policy`` (the boot PCRs the boot log explains and the launch
PCR the launch log replays to). What Keylime cannot do itself, and why, is in docs/measured-launches.md §4.

Keylime imports the GPGME bindings (``gpg``), which come from Debian (python3-gpg) and not from PyPI: the
check runs in a child process that sees that one Debian module beside the test environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Host, Signed
from tests.harness import swtpm as swtpm_h
from tests.integration.test_evidence import NONCE, bacon, booted  # noqa: F401 - booted is a fixture
from tests.integration.test_gate import nerdctl

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.swtpm]

DEBIAN_GPG = Path("/usr/lib/python3/dist-packages/gpg")
CHECK = r"""
import json, sys
from keylime.common.algorithms import Hash
from keylime.mba import mba
from keylime.tpm.tpm_main import Tpm

mba.load_imports(skip_custom_policies=True)  # as the verifier does when it starts

bundle, nonce, policy = sys.argv[1], bytes.fromhex(sys.argv[2]), json.loads(sys.argv[3])
quote = open(f"{bundle}/keylime-quote.txt").read()
ak = open(f"{bundle}/ak.pub", "rb").read()  # TPM2B_PUBLIC, as Keylime's registrar hands it over
failure = Tpm().check_quote(None, nonce, None, quote, ak, tpm_policy=policy, hash_alg=Hash.SHA256)
print(json.dumps({"passed": not failure, "events": failure.get_event_ids()}))
"""


def keylime(bundle: Path, nonce: str, policy: dict[str, list[str]], tmp_path: Path) -> dict[str, object]:
    if not DEBIAN_GPG.is_dir():
        pytest.fail("Keylime needs Debian's GPGME bindings: apt-get install python3-gpg (scripts/install-deps)")
    path = tmp_path / "debian-gpg"
    path.mkdir(parents=True)
    (path / "gpg").symlink_to(DEBIAN_GPG)
    r = subprocess.run([sys.executable, "-c", CHECK, str(bundle), nonce, json.dumps(policy)], capture_output=True,
                       text=True, timeout=120, env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    doc: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return doc


def test_keylime_appraises_the_bundle(booted: Host, signed: Signed, tpm: swtpm_h.Swtpm,  # noqa: F811
                                      tmp_path: Path) -> None:
    for _ in range(2):
        assert nerdctl(booted, "run", "--rm", signed["low"].ref).rc == 0
    out = booted.root / "evidence"
    assert bacon(booted, "evidence", "--nonce", NONCE, "--out", str(out)).returncode == 0
    r = bacon(booted, "evidence", "verify", str(out), "--nonce", NONCE, "--json")
    assert r.returncode == 0, r.stderr
    policy = json.loads(r.stdout)["tpm_policy"]
    assert sorted(policy, key=int) == ["0", "7", "14"]

    assert keylime(out, NONCE, policy, tmp_path / "ok") == {"passed": True, "events": []}
    stale = keylime(out, "0badc0de" * 8, policy, tmp_path / "stale")
    assert stale["passed"] is False
    assert stale["events"] == ["qoute_validation.quote_validation"]  # (Keylime's own spelling)
    other = keylime(out, NONCE, {**policy, "14": ["00" * 32]}, tmp_path / "launch")  # launches it was not told of
    assert other["passed"] is False
    assert any("invalid_pcr_14" in str(e) for e in other["events"]), other  # type: ignore[attr-defined]
