"""Under sudo the caller's environment changes nothing: ``BACON_CONFIG``, ``PYTHONPATH`` (a malicious
``shim`` package and a ``sitecustomize``), ``PYTHONHOME``, ``DOCKER_CONFIG``, ``HOME``, ``SSL_CERT_FILE``.

sudo is not installed here; sudo runs the command with real and effective uid 0 and sets ``SUDO_USER``,
``SUDO_UID``, ``SUDO_GID`` and ``SUDO_COMMAND``, which is what these tests do (``shim.common.config.under_sudo``
reads them). A set-uid start (real uid ≠ effective uid) cannot happen through the launcher: the kernel
ignores set-uid on scripts and dash drops to the real uid when the two differ.

Under sudo the configuration is ``/etc/bacon/config.toml``. The tests give each command its own: the
wrapper runs in a private mount namespace (``unshare``) where an overlay over ``/etc`` adds
``/etc/bacon/config.toml``; the host's ``/etc`` is not touched.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Host, Signed
from tests.harness import faults
from tests.integration.refusals import Run, assert_refused, audit_lines, config_text, configure, wrapper

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

SUDO = {"SUDO_USER": "nobody", "SUDO_UID": "65534", "SUDO_GID": "65534", "SUDO_COMMAND": "/usr/bin/nerdctl"}
QUICK = 20


class System:
    """``/etc/bacon/config.toml`` as the wrapper sees it in its own mount namespace."""

    def __init__(self, root: Path, text: str) -> None:
        self.upper, self.work = root / "upper", root / "work"
        (self.upper / "bacon").mkdir(parents=True, mode=0o755)
        self.work.mkdir(mode=0o755)
        for d in (root, self.upper, self.upper / "bacon"):
            d.chmod(0o755)
        cfg = self.upper / "bacon" / "config.toml"
        cfg.write_text(text)
        cfg.chmod(0o644)

    def argv(self, host: Host) -> list[str]:
        mount = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={self.upper},workdir={self.work} /etc "
                 '&& exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", *host.wrapper]


@pytest.fixture
def system(gate_host: Host, signed: Signed, tmp_path: Path) -> System:
    """A Low host trusting the harness key, as /etc/bacon/config.toml."""
    return System(Path(str(tmp_path)) / "etc", config_text(gate_host, signed.trusted))


@pytest.fixture
def permissive(gate_host: Host, signed: Signed, tmp_path: Path) -> Path:
    """What a caller would like: level High, and High needing nothing but a signature."""
    p = Path(str(tmp_path)) / "mine.toml"
    p.write_text(config_text(gate_host, signed.trusted, level="High").replace(
        "[registry]", '[levels.High]\nrequire = ["signature"]\n[registry]'))
    p.chmod(0o644)
    return p


def as_sudo(host: Host, system: System, *args: str, **env: str) -> Run:
    return wrapper(host, *args, env=host.env(**SUDO, **env), argv0=system.argv(host))


def test_bacon_config_is_ignored_under_sudo(gate_host: Host, signed: Signed, system: System,
                                            permissive: Path) -> None:
    high = signed["high"]
    r = as_sudo(gate_host, system, "run", "--rm", high.ref, BACON_CONFIG=str(permissive))
    assert_refused(r, gate_host, rc=77, says="above this host's system level Low", within=QUICK, check="level")
    [line] = audit_lines(gate_host.audit_log)
    assert line["sudo_user"] == "nobody"
    assert line["system_level"] == "Low"


@pytest.mark.parametrize("launcher", [{"DOAS_USER": "nobody"}, {"PKEXEC_UID": "65534"}])
def test_bacon_config_is_ignored_under_doas_and_pkexec(gate_host: Host, signed: Signed, system: System,
                                                       permissive: Path, launcher: dict[str, str]) -> None:
    """doas and pkexec run the wrapper as root for another user as sudo does (before, only SUDO_* counted)."""
    r = wrapper(gate_host, "run", "--rm", signed["high"].ref, argv0=system.argv(gate_host),
                env=gate_host.env(**launcher, BACON_CONFIG=str(permissive)))
    assert_refused(r, gate_host, rc=77, says="above this host's system level Low", within=QUICK, check="level")


def test_bacon_config_is_honoured_without_sudo(gate_host: Host, signed: Signed, permissive: Path) -> None:
    # The control: the same file outside sudo is read, so the test above shows sudo made the difference.
    r = wrapper(gate_host, "pull", signed["high"].ref, env=gate_host.env(BACON_CONFIG=str(permissive)))
    assert r.rc == 0, r.stderr
    [line] = audit_lines(gate_host.audit_log)
    assert (line["verdict"], line["system_level"]) == ("admitted", "High")


@pytest.fixture
def evil_pythonpath(tmp_path: Path) -> tuple[Path, Path]:
    """A PYTHONPATH directory with a ``shim`` package that would admit everything and a ``sitecustomize``;
    each leaves a marker file when imported."""
    d = Path(str(tmp_path)) / "evil"
    marker = Path(str(tmp_path)) / "evil-ran"
    (d / "shim").mkdir(parents=True)
    payload = f"import pathlib, sys\npathlib.Path({str(marker)!r}).write_text(__name__)\n"
    (d / "shim" / "__init__.py").write_text(payload)
    (d / "shim" / "wrapper.py").write_text(payload + "def main():\n    return 0\n")
    (d / "shim" / "cli.py").write_text(payload + "def main():\n    return 0\n")
    (d / "sitecustomize.py").write_text(payload)
    (d / "usercustomize.py").write_text(payload)
    return d, marker


@pytest.mark.parametrize("sudo", [True, False], ids=["sudo", "no-sudo"])
def test_pythonpath_cannot_replace_the_wrapper(gate_host: Host, signed: Signed, system: System,
                                               evil_pythonpath: tuple[Path, Path], sudo: bool) -> None:
    """The launcher runs Python isolated (-I): neither the malicious ``shim`` nor the ``sitecustomize``
    is imported, and the decision is the real one."""
    evil, marker = evil_pythonpath
    env = {"PYTHONPATH": str(evil), "PYTHONSTARTUP": str(evil / "sitecustomize.py"), "PYTHONUSERBASE": str(evil)}
    high = signed["high"]
    if sudo:
        r = as_sudo(gate_host, system, "run", "--rm", high.ref, **env)
    else:
        configure(gate_host, signed.trusted)
        r = wrapper(gate_host, "run", "--rm", high.ref, env=gate_host.env(**env))
    assert not marker.exists(), f"code from PYTHONPATH ran: {marker.read_text()}"
    assert_refused(r, gate_host, rc=77, says="above this host's system level", within=QUICK, check="level")


def test_bacon_command_is_isolated_too(gate_host: Host, system: System, evil_pythonpath: tuple[Path, Path]) -> None:
    import subprocess

    evil, marker = evil_pythonpath
    r = subprocess.run([*system.argv(gate_host)[:-len(gate_host.wrapper)], *gate_host.bacon, "policy", "show",
                        "--json"], env=gate_host.env(**SUDO, PYTHONPATH=str(evil)), capture_output=True, text=True,
                       timeout=60)
    assert not marker.exists()
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["level"] == "Low"


def test_pythonhome_changes_nothing(gate_host: Host, signed: Signed, system: System, tmp_path: Path) -> None:
    # Without -I a PYTHONHOME without a standard library stops the interpreter before BACON starts.
    r = as_sudo(gate_host, system, "run", "--rm", signed["high"].ref, PYTHONHOME=str(tmp_path))
    assert_refused(r, gate_host, rc=77, says="above this host's system level", within=QUICK, check="level")


# -- registry credentials and TLS trust ----------------------------------------------------------------

@pytest.fixture
def locked(gate_host: Host, signed: Signed) -> Iterator[faults.FaultRegistry]:
    """A registry front that wants Basic credentials for everything and records what it is sent."""
    with faults.FaultRegistry(gate_host.registry.host) as f:
        f.rules.append(lambda method, path: faults.Answer(
            401, {"WWW-Authenticate": 'Basic realm="bacon"', "Content-Type": "application/json"},
            b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'))
        yield f


def docker_config(directory: Path, host: str, tmp_path: Path) -> tuple[Path, Path]:
    """A Docker client config with credentials for ``host`` and a credential helper that leaves a marker."""
    marker = Path(str(tmp_path)) / "helper-ran"
    bindir = Path(str(tmp_path)) / "helper-bin"
    bindir.mkdir(exist_ok=True)
    helper = bindir / "docker-credential-evil"
    helper.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{\"Username\":\"evil\",\"Secret\":\"evil\"}}'\n")
    helper.chmod(0o755)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({
        "auths": {host: {"auth": "ZXZpbDpldmls"}},  # evil:evil
        "credHelpers": {host: "evil"},
    }))
    return bindir, marker


@pytest.mark.parametrize("via", ["DOCKER_CONFIG", "HOME"])
def test_callers_docker_credentials_are_not_used_under_sudo(gate_host: Host, signed: Signed, tmp_path: Path,
                                                            locked: faults.FaultRegistry, via: str) -> None:
    where = Path(str(tmp_path)) / "caller"
    bindir, marker = docker_config(where / ".docker" if via == "HOME" else where, locked.host, tmp_path)
    text = config_text(gate_host, signed.trusted, insecure=(locked.host,))
    system = System(Path(str(tmp_path)) / "etc", text)
    env = {via: str(where), "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    ref = f"{locked.host}/bacon/low:v1"

    r = as_sudo(gate_host, system, "pull", ref, **env)
    assert_refused(r, gate_host, rc=69, says="requires authentication", within=QUICK)
    assert not marker.exists(), "the caller's credential helper ran under sudo"
    assert locked.authorizations == []

    # Control: outside sudo the same environment is the caller's own, and is used.
    configure(gate_host, signed.trusted, insecure=(locked.host,))
    r = wrapper(gate_host, "pull", ref, env=gate_host.env(**env))
    assert r.rc == 69, r.stderr
    assert marker.exists()
    assert locked.authorizations


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bacon test registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "ca.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


class _NotFound(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An https server on 127.0.0.1 with a certificate only its own CA file vouches for."""
    certfile, keyfile = _self_signed(Path(str(tmp_path)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", certfile
    finally:
        server.shutdown()
        server.server_close()


def test_callers_ssl_cert_file_does_not_vouch_for_a_registry_under_sudo(
        gate_host: Host, signed: Signed, tmp_path: Path, tls_registry: tuple[str, Path]) -> None:
    host, ca = tls_registry
    system = System(Path(str(tmp_path)) / "etc", config_text(gate_host, signed.trusted))
    ref = f"{host}/bacon/low:v1"
    env = {"SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(ca.parent)}

    r = as_sudo(gate_host, system, "pull", ref, **env)
    assert_refused(r, gate_host, rc=69, says="certificate verify failed", within=QUICK)

    # Control: outside sudo the caller's CA is theirs to choose: TLS passes and the registry answers 404.
    configure(gate_host, signed.trusted)
    r = wrapper(gate_host, "pull", ref, env=gate_host.env(**env))
    assert r.rc == 64, r.stderr
    assert "not in the registry" in r.stderr


def test_audit_names_the_sudo_user(gate_host: Host, signed: Signed, system: System) -> None:
    r = as_sudo(gate_host, system, "pull", signed["low"].ref, HOME="/nonexistent", COSIGN_PASSWORD="wrong")
    assert r.rc == 0, r.stderr
    [line] = audit_lines(gate_host.audit_log)
    assert line["verdict"] == "admitted"
    assert (line["user"], line["sudo_user"], line["sudo_uid"]) == ("root", "nobody", "65534")



@pytest.mark.parametrize(("args", "variable"), [
    (("run", "--rm", "LOW"), {"CNI_PATH": "/tmp/caller-cni"}),
    (("network", "create", "n1"), {"NETCONFPATH": "/etc"}),
    (("pull", "LOW"), {"CONTAINERD_SNAPSHOTTER": "native"}),
], ids=["run CNI_PATH", "network create NETCONFPATH", "pull CONTAINERD_SNAPSHOTTER"])
def test_callers_nerdctl_variables_are_judged_as_flags_under_sudo(gate_host: Host, signed: Signed, system: System,
                                                                   args: tuple[str, ...],
                                                                   variable: dict[str, str]) -> None:
    """nerdctl reads CNI_PATH for --cni-path (and so on): under a sudo that keeps the caller's environment, the
    profile refuses them as it refuses the flags, before anything is forwarded. Before, they went through."""
    argv = [signed["low"].ref if a == "LOW" else a for a in args]
    r = as_sudo(gate_host, system, *argv, **variable)
    ((name, value),) = variable.items()
    assert_refused(r, gate_host, rc=77, says=f"${name}={value}", within=QUICK, check="profile")
    # the control: the caller's own environment outside sudo is theirs to choose
    r = wrapper(gate_host, *argv, env=gate_host.env(**variable))
    assert r.rc == 0, r.stderr
