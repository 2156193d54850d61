"""`nerdctl push` through the wrapper signs what it pushed, and the real cosign accepts that signature
(issue 3: interop both ways, the wrapper's side). The stand-in pushes with `ctr images push`."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from tests.conftest import Host, Signed, trusted_config
from tests.harness.images import pull as ctr_pull
from tests.integration.sig.conftest import CosignKeys
from tests.integration.sig.test_cosign_interop import cosign_verify

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.cosign]


def test_push_through_the_wrapper_is_signed_and_cosign_verifies_it(gate_host: Host, signed: Signed, cosign_exe: str,
                                                                   cosign_keys: CosignKeys) -> None:
    low = signed["low"]
    ctr_pull(gate_host.containerd, low)
    target = f"{gate_host.registry.host}/bacon/pushed:{secrets.token_hex(4)}"
    gate_host.containerd.ctr("images", "tag", low.ref, target)
    assert cosign_verify(cosign_exe, cosign_keys.pub, target).returncode != 0  # nothing signed it yet
    trusted_config(gate_host, signed.trusted, extra=f'[signing]\nkey = "{cosign_keys.key}"\n')

    r = subprocess.run([*gate_host.wrapper, "push", target], env=gate_host.env(COSIGN_PASSWORD=cosign_keys.password),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"bacon: signed {target.rsplit(':', 1)[0]}@{low.digest}" in r.stderr

    v = cosign_verify(cosign_exe, cosign_keys.pub, target)
    assert v.returncode == 0, v.stderr
    assert low.digest in v.stdout
    [line] = [json.loads(x) for x in gate_host.audit_log.read_text().splitlines()]
    assert line["verdict"] == "pushed-and-signed"
    assert line["digest"] == low.digest


def test_push_without_a_signing_key_is_refused_before_pushing(gate_host: Host, signed: Signed) -> None:
    low = signed["low"]
    ctr_pull(gate_host.containerd, low)
    target = f"{gate_host.registry.host}/bacon/unsigned-push:{secrets.token_hex(4)}"
    gate_host.containerd.ctr("images", "tag", low.ref, target)
    before = gate_host.calls.read_text() if gate_host.calls.exists() else ""
    r = subprocess.run([*gate_host.wrapper, "push", target], env=gate_host.env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 77, r.stderr
    assert "no signing key is configured" in r.stderr
    assert (gate_host.calls.read_text() if gate_host.calls.exists() else "") == before  # nothing was pushed
