"""Signing proves possession (issue 15), through the wrapper against the real registry, containerd and
cosign: push signs only with the key's password supplied now, only what the key's scope covers, refuses
before anything is pushed otherwise, and every signature carries BACON's provenance annotations, which
the real cosign reads (``cosign verify -a``) and ``bacon verify`` shows."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Host, Signed
from tests.harness.images import pull as ctr_pull
from tests.integration.sig.conftest import CosignKeys
from tests.integration.sig.test_cosign_interop import cosign, cosign_verify
from tests.integration.test_sudo_env import SUDO, System

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry, pytest.mark.cosign]


def config_text(host: Host, key: Path, trusted: Path, *, unattended: bool = False, repos: str = "team/*",
                max_level: str = "Low") -> str:
    reg = host.registry.host
    return (
        f'level = "Low"\nnerdctl = "{host.standin}"\nstate_dir = "{host.state_dir}"\n'
        f'audit_log = "{host.audit_log}"\n'
        f'[trust]\nkeys = [{{ path = "{trusted}", name = "team", repositories = ["{reg}/{repos}"], '
        f'max_level = "{max_level}" }}]\n'
        f'[registry]\ninsecure = ["{reg}"]\n'
        f'[signing]\nkey = "{key}"\n' + ("unattended = true\n" if unattended else "")
    )


def configure(host: Host, key: Path, trusted: Path, **kw: Any) -> None:
    host.write_config(config_text(host, key, trusted, **kw))


def load_locally(host: Host, layout: Path, name: str, target: str, tmp: Path) -> None:
    """What `nerdctl load` does: an image archive imported into containerd, never seen by a registry."""
    archive = tmp / f"{name}.tar"
    subprocess.run(["skopeo", "copy", f"oci:{layout}:{name}", f"oci-archive:{archive}:{target}"], check=True,
                   capture_output=True, timeout=120)
    host.containerd.ctr("images", "import", str(archive))
    listed = host.containerd.ctr("images", "ls", "-q").stdout.split()
    if target not in listed:  # ctr names it after the archive's ref annotation; make sure of the name
        imported = next(n for n in listed if n.endswith(target.rsplit("/", 1)[-1]))
        host.containerd.ctr("images", "tag", "--force", imported, target)


def push(host: Host, target: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*host.wrapper, "push", target], env=host.env(**env), capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def calls(host: Host) -> str:
    return host.calls.read_text() if host.calls.exists() else ""


def audit(host: Host) -> list[dict[str, Any]]:
    return [json.loads(x) for x in host.audit_log.read_text().splitlines()] if host.audit_log.exists() else []


def at_registry(host: Host, target: str) -> bool:
    r = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{target}"],
                       capture_output=True, timeout=60)
    return r.returncode == 0


def test_laundering_an_unsigned_low_image_is_refused_and_nothing_is_signed(host: Host, signed: Signed,
                                                                           cosign_keys: CosignKeys, cosign_exe: str,
                                                                           tmp_path: Path) -> None:
    """The sequence from the issue: load an unsigned image labelled policy=Low, push it through the
    wrapper. No password supplied (no COSIGN_PASSWORD, stdin not a terminal), unattended not set."""
    target = f"{host.registry.host}/team/laundered-{secrets.token_hex(3)}:v1"
    load_locally(host, signed.images.layout, "unsigned", target, Path(str(tmp_path)))
    configure(host, cosign_keys.key, cosign_keys.pub)
    before = calls(host)
    r = push(host, target)
    assert r.returncode == 77, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("bacon: denied: image " + target), first
    assert "check sign failed" in first
    assert f"signing with {cosign_keys.key} needs its password now, and none was given" in first
    assert "COSIGN_PASSWORD" in r.stderr  # the hint says how
    assert calls(host) == before  # nothing reached nerdctl: nothing was pushed
    assert not at_registry(host, target)
    assert cosign_verify(cosign_exe, cosign_keys.pub, target).returncode != 0
    assert audit(host)[-1]["verdict"] == "push-refused"


def test_push_with_the_password_signs_and_annotates(host: Host, signed: Signed, cosign_keys: CosignKeys,
                                                    cosign_exe: str) -> None:
    low = signed["low"]
    ctr_pull(host.containerd, low)
    target = f"{host.registry.host}/team/app-{secrets.token_hex(3)}:v1"
    host.containerd.ctr("images", "tag", low.ref, target)
    configure(host, cosign_keys.key, cosign_keys.pub)
    r = push(host, target, COSIGN_PASSWORD=cosign_keys.password)
    assert r.returncode == 0, r.stderr
    assert f"bacon: signed {target.rsplit(':', 1)[0]}@{low.digest}" in r.stderr

    # The real cosign verifies it and reads the annotations (-a filters on them).
    v = cosign(cosign_exe, "verify", "--key", str(cosign_keys.pub), "--insecure-ignore-tlog=true",
               "--allow-insecure-registry", "-a", "bacon.level=Low", "-a", "bacon.operator=root", target)
    assert v.returncode == 0, v.stderr
    [payload] = json.loads(v.stdout)
    optional = payload["optional"]
    assert set(optional) == {"bacon.host", "bacon.operator", "bacon.time", "bacon.level", "bacon.version"}
    assert optional["bacon.host"] == os.uname().nodename
    assert optional["bacon.time"].endswith("Z")
    wrong = cosign(cosign_exe, "verify", "--key", str(cosign_keys.pub), "--insecure-ignore-tlog=true",
                   "--allow-insecure-registry", "-a", "bacon.level=High", target)
    assert wrong.returncode != 0

    # bacon verify shows them, and the signer and its scope.
    b = subprocess.run([*host.bacon, "verify", "--pull=always", target], env=host.env(), capture_output=True,
                       text=True, timeout=120)
    assert b.returncode == 0, b.stdout + b.stderr
    assert "bacon.level = Low" in b.stdout
    assert "bacon.operator = root" in b.stdout
    assert f"signer team, scope {host.registry.host}/team/* up to Low" in b.stdout
    line = audit(host)[-2]
    assert line["verdict"] == "pushed-and-signed"
    assert line["level"] == "Low"
    assert line["checks"][-1]["annotations"]["bacon.level"] == "Low"


def test_push_refuses_what_the_keys_scope_does_not_cover_before_pushing(host: Host, signed: Signed,
                                                                         cosign_keys: CosignKeys) -> None:
    configure(host, cosign_keys.key, cosign_keys.pub)
    reg = host.registry.host
    mid = signed["mid"]
    ctr_pull(host.containerd, mid)
    mid_target = f"{reg}/team/app-{secrets.token_hex(3)}:mid"
    host.containerd.ctr("images", "tag", mid.ref, mid_target)
    low = signed["low"]
    ctr_pull(host.containerd, low)
    other_target = f"{reg}/other/app-{secrets.token_hex(3)}:v1"
    host.containerd.ctr("images", "tag", low.ref, other_target)
    before = calls(host)

    r = push(host, mid_target, COSIGN_PASSWORD=cosign_keys.password)
    assert r.returncode == 77, r.stderr
    assert (f"refusing to sign: the image is level Mid, above what its signer team (key {cosign_keys.pub}) may "
            f"vouch for (scope {reg}/team/* up to Low)") in r.stderr.splitlines()[0]
    r = push(host, other_target, COSIGN_PASSWORD=cosign_keys.password)
    assert r.returncode == 77, r.stderr
    assert f"whose scope ({reg}/team/* up to Low) does not cover repository {other_target[:-3]}" in r.stderr
    assert calls(host) == before
    assert not at_registry(host, mid_target)
    assert not at_registry(host, other_target)

    wrong = push(host, mid_target, COSIGN_PASSWORD="not-the-password")
    assert wrong.returncode == 77
    assert f"the password given does not open signing key {cosign_keys.key}" in wrong.stderr


def test_a_key_without_a_password_signs_only_when_unattended(host: Host, signed: Signed) -> None:
    low = signed["low"]
    ctr_pull(host.containerd, low)
    target = f"{host.registry.host}/team/app-{secrets.token_hex(3)}:v1"
    host.containerd.ctr("images", "tag", low.ref, target)
    configure(host, signed.trusted.private, signed.trusted.public)  # a plain PEM key: no password
    before = calls(host)
    r = push(host, target, COSIGN_PASSWORD="anything")
    assert r.returncode == 77, r.stderr
    assert f"signing key {signed.trusted.private} has no password, so signing with it proves nothing" in r.stderr
    assert "unattended = true" in r.stderr
    assert calls(host) == before

    configure(host, signed.trusted.private, signed.trusted.public, unattended=True)
    r = push(host, target)
    assert r.returncode == 0, r.stderr
    s = subprocess.run([*host.bacon, "status", "--json"], env=host.env(), capture_output=True, text=True, timeout=120)
    items = {i["key"]: i for i in json.loads(s.stdout)["items"]}
    assert items["signing"]["state"] == "warn"
    assert "anyone allowed to run the wrapper can sign" in items["signing"]["summary"]


def test_bacon_sign_needs_the_password_and_the_scope(host: Host, signed: Signed, cosign_keys: CosignKeys,
                                                     cosign_exe: str) -> None:
    configure(host, cosign_keys.key, cosign_keys.pub, repos="bacon/*")
    bacon = [*host.bacon, "sign"]
    r = subprocess.run([*bacon, signed["low"].ref], env=host.env(), capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 77, r.stderr
    assert "needs its password now" in r.stderr
    r = subprocess.run([*bacon, signed["mid"].ref], env=host.env(COSIGN_PASSWORD=cosign_keys.password),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 77, r.stderr
    assert "refusing to sign: the image is level Mid" in r.stderr
    r = subprocess.run([*bacon, "--json", signed["low"].ref], env=host.env(COSIGN_PASSWORD=cosign_keys.password),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["annotations"]["bacon.level"] == "Low"
    v = cosign(cosign_exe, "verify", "--key", str(cosign_keys.pub), "--insecure-ignore-tlog=true",
               "--allow-insecure-registry", "-a", "bacon.level=Low", signed["low"].ref)
    assert v.returncode == 0, v.stderr


def on_a_terminal(argv: list[str], env: dict[str, str], answer: bytes, timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal and standard streams; type
    ``answer`` at the password prompt. Returns the exit status and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        try:
            os.execvpe(argv[0], argv, env)  # noqa: S606 - argv is the test's own, no shell wanted
        finally:
            os._exit(127)
    shown, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"Password for signing key" in shown:
                os.write(fd, answer + b"\n")
                answered = True
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_the_password_is_asked_on_the_terminal_also_under_sudo(host: Host, signed: Signed, cosign_keys: CosignKeys,
                                                               cosign_exe: str, tmp_path: Path) -> None:
    """sudo's env_reset drops COSIGN_PASSWORD: under sudo the operator types the password at the prompt,
    which reads the controlling terminal; the signature names the sudo user as the operator."""
    low = signed["low"]
    ctr_pull(host.containerd, low)
    target = f"{host.registry.host}/team/app-{secrets.token_hex(3)}:v1"
    host.containerd.ctr("images", "tag", low.ref, target)
    system = System(Path(str(tmp_path)) / "etc", config_text(host, cosign_keys.key, cosign_keys.pub))
    env = {k: v for k, v in host.env(**SUDO).items() if k not in ("COSIGN_PASSWORD", "BACON_CONFIG")}

    rc, shown = on_a_terminal([*system.argv(host), "push", target], env, b"not-the-password")
    assert rc == 77, shown
    assert "the password given does not open signing key" in shown
    assert "not-the-password" not in shown  # no echo
    assert not at_registry(host, target)

    rc, shown = on_a_terminal([*system.argv(host), "push", target], env, cosign_keys.password.encode())
    assert rc == 0, shown
    assert f"Password for signing key {cosign_keys.key}: " in shown
    assert cosign_keys.password not in shown
    v = cosign(cosign_exe, "verify", "--key", str(cosign_keys.pub), "--insecure-ignore-tlog=true",
               "--allow-insecure-registry", "-a", f"bacon.operator={SUDO['SUDO_USER']}", target)
    assert v.returncode == 0, v.stderr
