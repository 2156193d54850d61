"""The fault matrix: every service the gate needs fails before or during a decision, and the wrapper
refuses (77) or says which service failed (69) or what is misconfigured (78), within a bounded time,
forwarding nothing and leaving nothing half-written.

Faults are injected in front of the real services (tests/harness/faults.py): a unix-socket proxy before
containerd that lets N gRPC calls through and then stalls or cuts; an HTTP front before the registry
that stalls, dribbles, answers 500, redirects in a loop, serves bytes that do not match their digest or
streams 2 GB lazily; a TCP proxy before swtpm that stalls or cuts at TPM2_Quote; an audit log on
/dev/full, on a full tmpfs and on a read-only mount; state and configuration with the wrong owner or mode.
``FAULTS`` counts the injected faults (each test adds the ones it injects).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shim.images import oci
from tests.conftest import Host, Signed, sign_image
from tests.harness import faults
from tests.harness import swtpm as swtpm_h
from tests.harness.images import Image
from tests.integration.refusals import (
    assert_nothing_half_written,
    assert_refused,
    audit_lines,
    configure,
    wrapper,
)

pytestmark = [pytest.mark.integration, pytest.mark.containerd, pytest.mark.registry]

FAULTS: list[str] = []

# containerd's per-call deadline (shim.images.containerd.DEFAULT_TIMEOUT) and the registry's per-request
# deadline (shim.images.registry.DEFAULT_TIMEOUT), plus start-up and slack on a loaded 2-core runner.
CONTAINERD_BOUND = 10 + 15
REGISTRY_BOUND = 15 + 15
QUICK = 15


def _injected(name: str) -> None:
    FAULTS.append(name)


@pytest.fixture
def low_host(gate_host: Host, signed: Signed) -> Host:
    configure(gate_host, signed.trusted)
    return gate_host


# -- containerd -----------------------------------------------------------------------------------------

def test_containerd_socket_missing(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    _injected("containerd socket missing")
    r = wrapper(low_host, "run", "--rm", signed["low"].ref,
                env=low_host.env(CONTAINERD_ADDRESS=str(tmp_path / "gone.sock")))
    assert_refused(r, low_host, rc=69, says="containerd socket", within=QUICK)
    assert "gone.sock" in r.stderr


def test_containerd_stopped_stale_socket(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    _injected("containerd stopped (stale socket, connection refused)")
    sock = tmp_path / "stale.sock"
    faults.stale_socket(sock)
    r = wrapper(low_host, "run", "--rm", signed["low"].ref, env=low_host.env(CONTAINERD_ADDRESS=str(sock)))
    assert_refused(r, low_host, rc=69, says="containerd", within=QUICK)
    [line] = audit_lines(low_host.audit_log)
    assert (line["verdict"], line["exit_code"]) == ("error", 69)  # as the command exits: not decided


def test_containerd_hung_never_accepts(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    _injected("containerd hung (socket listening, never accepting)")
    sock = tmp_path / "hung.sock"
    keep = faults.listening_but_dead(sock)
    try:
        r = wrapper(low_host, "run", "--rm", signed["low"].ref, env=low_host.env(CONTAINERD_ADDRESS=str(sock)))
    finally:
        keep.close()
    assert_refused(r, low_host, rc=69, says="containerd", within=CONTAINERD_BOUND)


@pytest.mark.slow
@pytest.mark.parametrize("action", [faults.STALL, faults.CUT])
def test_containerd_fails_during_the_decision(low_host: Host, signed: Signed, tmp_path: Path, action: str) -> None:
    """The first gRPC call (the image lookup) is answered; then containerd stops answering (stall) or its
    connection drops (cut) while the gate reads the image's manifest and config."""
    _injected(f"containerd {action} after the first gRPC call, mid-decision")
    sock = tmp_path / "proxy.sock"
    trigger = faults.Http2Requests(allow=1, action=action)
    with faults.SocketProxy(sock, low_host.containerd.socket, trigger) as proxy:
        r = wrapper(low_host, "run", "--rm", signed["low"].ref, env=low_host.env(CONTAINERD_ADDRESS=str(sock)))
        assert proxy.fired.is_set(), "the fault was never reached"
    assert_refused(r, low_host, rc=69, says="containerd", within=CONTAINERD_BOUND if action == faults.STALL else QUICK)


# -- registry -------------------------------------------------------------------------------------------

@pytest.fixture
def front(low_host: Host, signed: Signed) -> Iterator[faults.FaultRegistry]:
    with faults.FaultRegistry(low_host.registry.host) as f:
        configure(low_host, signed.trusted, insecure=(f.host,))
        yield f


def via(front: faults.FaultRegistry, img: Image) -> str:
    """The image's reference through the fault front (same repository path and tag)."""
    return img.ref.replace(img.ref.split("/", 1)[0], front.host, 1)


def test_front_passes_a_good_pull(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    # The front itself is transparent: without a rule the decision is the real registry's.
    r = wrapper(low_host, "pull", via(front, signed["low"]))
    assert r.rc == 0, r.stderr
    assert r.forwarded
    assert r.forwarded[0][-1].endswith(signed["low"].digest)


def test_registry_down(low_host: Host, signed: Signed) -> None:
    _injected("registry down (connection refused)")
    from tests.harness.proc import free_port

    dead = f"127.0.0.1:{free_port()}"
    configure(low_host, signed.trusted, insecure=(dead,))
    r = wrapper(low_host, "pull", f"{dead}/bacon/low:v1")
    assert_refused(r, low_host, rc=69, says=(dead, "unreachable"), within=QUICK)


@pytest.mark.slow
def test_registry_accepts_and_stalls(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    _injected("registry accepts and never answers")
    front.rules.append(lambda method, path: faults.STALL)
    r = wrapper(low_host, "pull", via(front, signed["low"]))
    assert_refused(r, low_host, rc=69, says="timed out", within=REGISTRY_BOUND)


@pytest.mark.slow
def test_registry_dribbles_a_byte_at_a_time(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    """A slowloris registry: each byte arrives before the socket timeout, the whole answer never does.
    The per-request deadline bounds the total, not each read."""
    _injected("registry dribbles its answer a byte per second")
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
            b"Content-Length: 4000\r\n\r\n")

    def slow(method: str, path: str) -> faults.Answer | None:
        if "/manifests/" in path:
            return faults.Answer(200, raw=itertools.chain([head], faults.dribble(b"{" + b" " * 3998 + b"}", 1.0)))
        return None

    front.rules.append(slow)
    r = wrapper(low_host, "pull", via(front, signed["low"]))
    assert_refused(r, low_host, rc=69, says="timed out", within=REGISTRY_BOUND)


def test_registry_answers_500(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    _injected("registry answers 500")
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "storage backend on fire"}]}).encode()
    front.rules.append(lambda method, path: faults.Answer(500, {"Content-Type": "application/json"}, body))
    r = wrapper(low_host, "pull", via(front, signed["low"]))
    assert_refused(r, low_host, rc=69, says="HTTP 500", within=QUICK)
    assert "storage backend on fire" in r.stderr


def test_registry_redirects_in_a_loop(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    _injected("registry redirects in a loop")
    front.rules.append(lambda method, path: faults.Answer(307, {"Location": path}))
    r = wrapper(low_host, "pull", via(front, signed["low"]))
    assert_refused(r, low_host, rc=69, says="redirects", within=QUICK)
    assert len(front.requests) <= 8, front.requests


def test_manifest_bytes_do_not_match_the_digest(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    """Asked for low@sha256:…, the registry serves the high image's manifest (valid, but other bytes)."""
    _injected("registry serves a manifest whose bytes do not match the digest asked for")
    low, high = signed["low"], signed["high"]
    other = _manifest_bytes(low_host, high)

    def swap(method: str, path: str) -> faults.Answer | None:
        if path.endswith(f"/manifests/{low.digest}"):
            return faults.Answer(200, {"Content-Type": oci.MEDIA_OCI_MANIFEST,
                                       "Docker-Content-Digest": low.digest}, other)
        return None

    front.rules.append(swap)
    r = wrapper(low_host, "pull", f"{front.host}/bacon/low@{low.digest}")
    assert_refused(r, low_host, rc=77, says=low.digest, within=QUICK, check="image")


def test_manifest_served_under_a_false_digest_header(low_host: Host, signed: Signed,
                                                     front: faults.FaultRegistry) -> None:
    """By tag: the registry claims the low image's digest but serves the high image's manifest."""
    _injected("registry's Docker-Content-Digest header does not match the manifest bytes")
    low, high = signed["low"], signed["high"]
    other = _manifest_bytes(low_host, high)

    def lie(method: str, path: str) -> faults.Answer | None:
        if path.endswith("/manifests/v1"):
            return faults.Answer(200, {"Content-Type": oci.MEDIA_OCI_MANIFEST, "Docker-Content-Digest": low.digest},
                                 other)
        return None

    front.rules.append(lie)
    r = wrapper(low_host, "pull", via(front, low))
    assert_refused(r, low_host, rc=77, says=("the registry says", low.digest), within=QUICK, check="image")


def _manifest_bytes(host: Host, img: Image) -> bytes:
    from shim.images import registry

    repo = registry.Repository.of(img.repo)
    with registry.Client(insecure={repo.host}) as c:
        return c.get_manifest(repo, img.digest).data


GB2 = 2 << 30


def test_manifest_announced_as_2_gb(low_host: Host, signed: Signed, front: faults.FaultRegistry) -> None:
    _injected("registry announces a 2 GB manifest")
    front.rules.append(lambda method, path: faults.Answer(
        200, {"Content-Type": oci.MEDIA_OCI_MANIFEST, "Content-Length": str(GB2)}, faults.zeros(GB2))
        if "/manifests/" in path else None)
    r = wrapper(low_host, "pull", via(front, signed["low"]))
    assert_refused(r, low_host, rc=77, says="exceeds the limit", within=QUICK, check="image")
    assert front.streamed < 64 << 20


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "no-length"])
def test_signed_image_whose_config_blob_is_2_gb(low_host: Host, signed: Signed, front: faults.FaultRegistry,
                                                announced: bool) -> None:
    """A correctly signed manifest whose config descriptor points at a 2 GB blob: the signature passes,
    reading the labels must stop at the config size cap (without or before hashing 2 GB)."""
    _injected(f"signed image whose config blob is 2 GB ({'announced' if announced else 'streamed without length'})")
    low = signed["low"]
    fake_config = oci.sha256_digest(b"not the config")
    base = json.loads(_manifest_bytes(low_host, low))
    base["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": fake_config, "size": GB2}
    manifest = json.dumps(base, separators=(",", ":")).encode()
    digest = oci.sha256_digest(manifest)
    repo_path = f"bacon/huge-{'cl' if announced else 'nl'}"
    sign_image(Image(name="huge", ref=f"{low_host.registry.host}/{repo_path}:v1", digest=digest), signed.trusted)

    def serve(method: str, path: str) -> faults.Answer | None:
        if path in (f"/v2/{repo_path}/manifests/v1", f"/v2/{repo_path}/manifests/{digest}"):
            return faults.Answer(200, {"Content-Type": oci.MEDIA_OCI_MANIFEST, "Docker-Content-Digest": digest},
                                 manifest)
        if path == f"/v2/{repo_path}/blobs/{fake_config}":
            hdrs = {"Content-Length": str(GB2)} if announced else {}
            return faults.Answer(200, {"Content-Type": "application/octet-stream", **hdrs}, faults.zeros(GB2))
        return None

    front.rules.append(serve)
    r = wrapper(low_host, "pull", f"{front.host}/{repo_path}:v1")
    assert_refused(r, low_host, rc=77, says=("exceeds the limit", "larger than"), within=QUICK, check="level")
    assert digest in r.first_line
    assert front.streamed < 64 << 20, f"the wrapper read {front.streamed} bytes of a 2 GB blob"


# -- swtpm ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def tpm_proxy(tpm: swtpm_h.Swtpm, trigger: faults.TpmCommands) -> Iterator[int]:
    port = swtpm_h.free_port_pair()
    with faults.SocketProxy(port, ("127.0.0.1", tpm.port), trigger), \
            faults.SocketProxy(port + 1, ("127.0.0.1", tpm.ctrl_port)):
        yield port


@pytest.mark.swtpm
@pytest.mark.slow
@pytest.mark.parametrize("action", [faults.STALL, faults.CUT])
def test_swtpm_fails_mid_quote(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm, action: str) -> None:
    """A Mid image on a Mid host needs a fresh quote; the TPM stops answering (stall) or goes away (cut)
    exactly when TPM2_Quote is sent, after the attestation key was created."""
    _injected(f"swtpm {action} at TPM2_Quote")
    extra_tpm = '[tpm]\ntcti = "{}"\npcrs = [0, 7]\ntimeout = 5\n[levels.Mid]\nrequire = ["signature", "tpm"]\n'
    configure(gate_host, signed.trusted, level="Mid", extra=extra_tpm.format(tpm.tcti))
    rec = subprocess.run([*gate_host.bacon, "baseline", "record"], env=gate_host.env(), capture_output=True,
                         text=True, timeout=60)
    assert rec.returncode == 0, rec.stderr
    trigger = faults.TpmCommands(action=action)
    with tpm_proxy(tpm, trigger) as port:
        configure(gate_host, signed.trusted, level="Mid",
                  extra=extra_tpm.format(f"swtpm:host=127.0.0.1,port={port}"))
        r = wrapper(gate_host, "run", "--rm", signed["mid"].ref, timeout=90)
    assert faults.TPM2_CC_QUOTE in trigger.seen, trigger.seen
    assert_refused(r, gate_host, rc=77, says="TPM", within=25, check="tpm")
    [line] = audit_lines(gate_host.audit_log)
    assert line["verdict"] == "denied"
    assert line["failed_check"] == "tpm"



@pytest.mark.swtpm
@pytest.mark.slow
@pytest.mark.parametrize("verb", [["baseline", "record"], ["quote", "tpm", "--nonce", "00112233"]])
def test_operator_tpm_commands_stop_at_the_deadline(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm,
                                                    verb: list[str]) -> None:
    """`bacon baseline record` and `bacon quote tpm` wait for a stalled TPM no longer than [tpm] timeout."""
    _injected(f"swtpm stall at TPM2_Quote during bacon {verb[0]}")
    trigger = faults.TpmCommands(action=faults.STALL)
    with tpm_proxy(tpm, trigger) as port:
        configure(gate_host, signed.trusted, level="Mid",
                  extra=f'[tpm]\ntcti = "swtpm:host=127.0.0.1,port={port}"\npcrs = [0, 7]\ntimeout = 3\n')
        start = time.monotonic()
        r = subprocess.run([*gate_host.bacon, *verb], env=gate_host.env(), capture_output=True, text=True,
                           timeout=60)
        elapsed = time.monotonic() - start
    assert faults.TPM2_CC_QUOTE in trigger.seen, trigger.seen
    assert r.returncode == 69, (r.returncode, r.stderr)
    assert "did not answer within 3s" in r.stderr, r.stderr
    assert elapsed < 20, elapsed

TPM2_CC_PCR_READ = 0x17E


@pytest.mark.swtpm
@pytest.mark.slow
@pytest.mark.parametrize("verb", [["baseline", "show", "--diff"], ["status", "--json"]])
def test_commands_that_only_read_pcrs_stop_at_the_deadline(gate_host: Host, signed: Signed, tpm: swtpm_h.Swtpm,
                                                          verb: list[str]) -> None:
    """`bacon baseline show --diff` and `bacon status` read PCRs outside any admission: a TPM that stops
    answering at TPM2_PCR_Read held them without end (before: only admissions, quote and record had the
    deadline)."""
    _injected(f"swtpm stall at TPM2_PCR_Read during bacon {verb[0]}")
    configure(gate_host, signed.trusted, level="Mid", extra=f'[tpm]\ntcti = "{tpm.tcti}"\npcrs = [0, 7]\n')
    rec = subprocess.run([*gate_host.bacon, "baseline", "record"], env=gate_host.env(), capture_output=True,
                         text=True, timeout=120)
    assert rec.returncode == 0, rec.stderr
    trigger = faults.TpmCommands(code=TPM2_CC_PCR_READ, action=faults.STALL)
    with tpm_proxy(tpm, trigger) as port:
        configure(gate_host, signed.trusted, level="Mid",
                  extra=f'[tpm]\ntcti = "swtpm:host=127.0.0.1,port={port}"\npcrs = [0, 7]\ntimeout = 3\n')
        start = time.monotonic()
        r = subprocess.run([*gate_host.bacon, *verb], env=gate_host.env(), capture_output=True, text=True,
                           timeout=90)
        elapsed = time.monotonic() - start
    assert TPM2_CC_PCR_READ in trigger.seen, trigger.seen
    assert "did not answer within 3s" in r.stdout + r.stderr, (r.stdout, r.stderr)
    if verb[0] == "baseline":
        assert r.returncode == 69, (r.returncode, r.stderr)
    assert elapsed < 25, elapsed


# -- the audit log ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(fs: Path) -> None:
    """Fill ``fs`` to the last byte (ENOSPC from then on)."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 512)
    finally:
        os.close(fd)


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
@pytest.mark.parametrize("verdict", ["admitted", "denied"])
def test_audit_log_on_a_device(low_host: Host, signed: Signed, verdict: str, device: str) -> None:
    """/dev/full answers every write with ENOSPC, /dev/null swallows it: neither is a log, and no decision
    is carried out without its audit line."""
    _injected(f"audit log on {device}, {verdict} decision")
    configure(low_host, signed.trusted, audit_log=Path(device))
    img = signed["low" if verdict == "admitted" else "high"]
    r = wrapper(low_host, "run", "--rm", img.ref)
    assert_refused(r, low_host, rc=69, says=f"the audit log {device} is not a regular file", within=QUICK)


@pytest.mark.parametrize("fault", ["other-owner", "world-writable"])
def test_audit_log_others_can_rewrite(low_host: Host, signed: Signed, fault: str) -> None:
    _injected(f"audit log {fault}")
    low_host.audit_log.parent.mkdir(parents=True)
    low_host.audit_log.write_text("")
    if fault == "other-owner":
        os.chown(low_host.audit_log, 65534, 65534)
    else:
        low_host.audit_log.chmod(0o666)
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    assert_refused(r, low_host, rc=69, says="could be rewritten by others", within=QUICK)
    assert low_host.audit_log.read_text() == ""


def test_audit_log_on_a_full_filesystem(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    """A real full filesystem (a 64 KiB tmpfs, filled): the line does not fit, nothing is torn, the
    earlier lines stay intact, and the admission is not carried out."""
    _injected("audit log filesystem full (tmpfs, ENOSPC / short write)")
    with tmpfs(tmp_path / "full", "size=64k,mode=0755") as fs:
        log = fs / "audit.jsonl"
        configure(low_host, signed.trusted, audit_log=log)
        first = wrapper(low_host, "run", "--rm", signed["high"].ref)  # a denial, audited while there is room
        assert first.rc == 77, first.stderr
        fill(fs)
        before = log.read_bytes()
        # A line longer than the free room in the log's last page: the write is short, then ENOSPC.
        r = wrapper(low_host, "run", "--rm", "--label", "note=" + "n" * 6000, signed["low"].ref)
        after = log.read_bytes()
        assert_refused(r, low_host, rc=69, says="cannot write the audit log", within=QUICK)
        assert after == before, "a partial audit line was left behind"
        assert [line["verdict"] for line in audit_lines(log)] == ["denied"]


def test_audit_log_on_a_read_only_filesystem(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    _injected("audit log directory read-only (EROFS)")
    with tmpfs(tmp_path / "ro", "size=64k,mode=0755,ro") as fs:
        configure(low_host, signed.trusted, audit_log=fs / "audit.jsonl")
        r = wrapper(low_host, "run", "--rm", signed["low"].ref)
        assert_refused(r, low_host, rc=69, says="audit log", within=QUICK)
        assert "Read-only" in r.stderr


def test_audit_log_is_a_symlink(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    _injected("audit log replaced by a symlink")
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    link = low_host.audit_log
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    assert_refused(r, low_host, rc=69, says="cannot open the audit log", within=QUICK)
    assert target.read_text() == ""


# -- state and configuration ---------------------------------------------------------------------------

def test_state_dir_owned_by_another_user(low_host: Host, signed: Signed) -> None:
    """Whoever owns the state directory can swap admission records and the level file: refused."""
    _injected("state dir owned by another uid")
    low_host.state_dir.mkdir(mode=0o755)
    os.chown(low_host.state_dir, 65534, 65534)
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    assert_refused(r, low_host, rc=78, says=("state directory", str(low_host.state_dir)), within=QUICK)
    assert "owned by uid 65534" in r.stderr


def test_state_dir_writable_by_others(low_host: Host, signed: Signed) -> None:
    _injected("state dir world-writable")
    low_host.state_dir.mkdir()
    low_host.state_dir.chmod(0o777)
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    assert_refused(r, low_host, rc=78, says="writable by others", within=QUICK)


def test_state_dir_missing_is_created_private(low_host: Host, signed: Signed) -> None:
    """A missing state directory is not a fault: the decision uses the configuration's level and the
    directory is created, root-only."""
    _injected("state dir missing")
    assert not low_host.state_dir.exists()
    r = wrapper(low_host, "create", signed["low"].ref)
    assert r.rc == 0, r.stderr
    st = low_host.state_dir.stat()
    assert st.st_uid == 0
    assert st.st_mode & 0o022 == 0
    assert_nothing_half_written(low_host)
    low_host.containerd.ctr("containers", "rm", r.stdout.strip(), check=False)


def test_level_file_corrupt(low_host: Host, signed: Signed) -> None:
    _injected("state level file corrupt")
    low_host.state_dir.mkdir()
    (low_host.state_dir / "level").write_text("Hіgh\n")
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    assert_refused(r, low_host, rc=78, says="not a level", within=QUICK)


@pytest.mark.parametrize("fault", ["world-writable", "group-writable", "symlink", "other-owner",
                                   "directory-writable", "missing"])
def test_unsafe_configuration_is_refused(low_host: Host, signed: Signed, tmp_path: Path, fault: str) -> None:
    _injected(f"configuration {fault}")
    cfg = low_host.config
    if fault == "world-writable":
        cfg.chmod(0o666)
    elif fault == "group-writable":
        cfg.chmod(0o664)
    elif fault == "symlink":
        real = cfg.with_name("real.toml")
        cfg.rename(real)
        cfg.symlink_to(real)
    elif fault == "other-owner":
        os.chown(cfg, 65534, 65534)
    elif fault == "directory-writable":
        cfg.parent.chmod(0o777)
    else:
        cfg.unlink()
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    says = {"world-writable": "writable by others", "group-writable": "writable by others", "symlink": "symlink",
            "other-owner": "owned by uid 65534", "directory-writable": "writable by others",
            "missing": "does not exist"}[fault]
    assert_refused(r, low_host, rc=78, says=says, within=QUICK)
    assert str(cfg) in r.stderr or str(cfg.parent) in r.stderr
    assert audit_lines(low_host.audit_log) == []


def test_callers_umask_does_not_loosen_what_bacon_creates(low_host: Host, signed: Signed) -> None:
    """A caller's umask of 000 (a root shell or a service unit can have one): the state directory, its
    subdirectories and the audit log's directory are still created writable by root alone."""
    _injected("caller's umask 000 when the state and audit directories are created")
    r = wrapper(low_host, "sh", "-c", 'umask 000; exec "$@"', "sh", *low_host.wrapper, "create",
                signed["low"].ref, argv0=[])
    assert r.rc == 0, r.stderr
    made = [low_host.state_dir, *[p for p in low_host.state_dir.rglob("*") if p.is_dir()], low_host.audit_log.parent]
    loose = {str(p): oct(p.stat().st_mode & 0o777) for p in made if p.stat().st_mode & 0o022}
    assert loose == {}, f"created writable by others: {loose}"
    assert low_host.audit_log.stat().st_mode & 0o022 == 0
    low_host.containerd.ctr("containers", "rm", r.stdout.strip(), check=False)


def test_real_nerdctl_missing(low_host: Host, signed: Signed, tmp_path: Path) -> None:
    """The real nerdctl is gone: refused before deciding, so no audit line says "admitted" for a command
    that never ran and no admission record is left."""
    _injected("real nerdctl missing")
    configure(low_host, signed.trusted)
    low_host.write_config(low_host.config.read_text().replace(str(low_host.standin), str(tmp_path / "gone")))
    r = wrapper(low_host, "run", "--rm", signed["low"].ref)
    assert_refused(r, low_host, rc=78, says="does not exist", within=QUICK)
    assert audit_lines(low_host.audit_log) == []


def test_fault_count(request: pytest.FixtureRequest) -> None:
    """Not a check: prints how many faults this module injected (it runs last; -s shows it)."""
    print(f"\nfaults injected: {len(FAULTS)}")
    for f in FAULTS:
        print(f"  - {f}")
