#!/usr/bin/env python3
"""BACON's demo on built-in defaults: a private demo host, then the wrapper at work.

Starts, all private to a temporary directory and torn down at the end: containerd (+ runc), Debian's
registry on a loopback port, and builds real images (busybox-static, with and without a ``policy``
label). It then writes a BACON configuration for that host and runs operator commands through the
``nerdctl`` wrapper. nerdctl itself cannot be installed here: a stand-in (tests/standin/nerdctl) takes
its place, records what it is asked and runs containers through ``ctr``. Then a second containerd with
BACON's runtime gate first on its PATH shows ``ctr`` (a client that never meets the wrapper) admitted and
refused the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shim.attest import launchlog  # noqa: E402
from tests.conftest import Host, make_host, make_keypair, sign_image, trusted_config  # noqa: E402
from tests.harness import containerd as containerd_h  # noqa: E402
from tests.harness import images as images_h  # noqa: E402
from tests.harness import registry as registry_h  # noqa: E402
from tests.harness import runtime as runtime_h  # noqa: E402
from tests.harness import swtpm as swtpm_h  # noqa: E402
from tests.harness.proc import wait_for  # noqa: E402
from tests.integration.test_evidence import boot  # noqa: E402

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def step(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def show(host: Host, argv: list[str], expect: int | None = None, env: dict[str, str] | None = None) -> int:
    """Run a command as an operator would (or, with ``env``, someone else), show it, its output and its exit
    status."""
    shown = " ".join(shlex.quote(a) for a in argv)
    cmd = [*host.bacon, *argv[1:]] if argv[0] == "bacon" else [*host.wrapper, *argv[1:]]
    print(f"$ {shown}", flush=True)
    before = host.calls.stat().st_size if host.calls.exists() else 0
    start = time.monotonic()
    r = subprocess.run(cmd, env=env or host.env(), capture_output=True, text=True, timeout=300)
    took = (time.monotonic() - start) * 1000
    for line in (r.stdout + r.stderr).rstrip().splitlines():
        print(f"  {line}")
    forwarded = []
    if host.calls.exists():
        with host.calls.open() as fh:
            fh.seek(before)
            forwarded = [json.loads(line)["argv"][1:] for line in fh if line.strip()]
    verdict = ("ok" if r.returncode == 0 else f"exit {r.returncode}") + f" in {took:.0f} ms"
    fwd = (" -> real nerdctl got: " + " ".join(shlex.quote(a) for a in forwarded[0])) if forwarded else \
        " -> nothing forwarded"
    print(f"  {DIM}[{verdict}{fwd}]{RESET}", flush=True)
    if expect is not None and r.returncode != expect:
        raise SystemExit(f"demo: expected exit {expect} from {shown}, got {r.returncode}")
    return r.returncode


def show_ctr(c: containerd_h.Containerd, args: list[str], expect: int) -> None:
    """Run ``ctr`` against containerd ``c`` (a client that never meets the wrapper) and show what it says."""
    print("$ ctr " + " ".join(shlex.quote(a) for a in args), flush=True)
    start = time.monotonic()
    r = c.ctr(*args, check=False, timeout=120)
    took = (time.monotonic() - start) * 1000
    for line in (r.stdout + r.stderr).rstrip().splitlines():
        print(f"  {line}")
    print(f"  {DIM}[{'ok' if r.returncode == 0 else f'exit {r.returncode}'} in {took:.0f} ms]{RESET}", flush=True)
    if (r.returncode == 0) != (expect == 0):
        raise SystemExit(f"demo: expected {'success' if expect == 0 else 'a refusal'} from ctr {' '.join(args)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="leave the demo host's directory behind")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("demo: run as root: it starts a private containerd", file=sys.stderr)
        return 77
    work = Path(tempfile.mkdtemp(prefix="bacon-demo-", dir="/tmp"))
    work.chmod(0o755)
    services: list[registry_h.Registry | containerd_h.Containerd | swtpm_h.Swtpm] = []
    try:
        step("Starting a private demo host in " + str(work))
        reg = registry_h.start(work)
        services.append(reg)
        ctd = containerd_h.start(work)
        services.append(ctd)
        tpm = swtpm_h.start(work, "swtpm")
        services.append(tpm)
        bios = work / "binary_bios_measurements"
        boot(tpm, bios)  # firmware's part: measured boot into PCRs 0, 7 and 14, with its event log
        tpm_extra = f'[tpm]\ntcti = "{tpm.tcti}"\neventlog = "{bios}"\n'
        print(f"  registry   {reg.url}\n  containerd {ctd.socket}\n  TPM        swtpm at {tpm.tcti}, "
              f"booted with the event log {bios}")

        step("Building real images (busybox-static) with umoci and pushing them with skopeo")
        imgs = images_h.build_and_push(work / "images", reg)
        team = make_keypair(work / "keys", "team")
        stranger = make_keypair(work / "keys", "stranger")
        for name in ("low", "mid", "high", "multi"):
            sign_image(imgs[name], team)
        sign_image(imgs["untrusted"], stranger)
        for name, what in (("low", "policy=Low, signed by the team key"),
                           ("mid", "policy=Mid, signed by the team key"),
                           ("high", "policy=High, signed by the team key"),
                           ("unsigned", "policy=Low, not signed"),
                           ("untrusted", "policy=Low, signed by a key the host does not trust")):
            print(f"  {imgs[name].ref:<45} {what}")

        host = make_host(work / "host", ctd, reg, level="Mid")
        trusted_config(host, team, level="Mid", extra=tpm_extra)
        print(f"\n  BACON configuration {host.config}: system level Mid, trusts {team.public.name}")
        print(f"  the real nerdctl is a stand-in (nerdctl cannot be installed here): {host.standin}")

        step("Commands that only read are forwarded, re-serialized from nerdctl's grammar")
        show(host, ["nerdctl", "version"], expect=0)
        show(host, ["nerdctl", "images"], expect=0)

        step("A signed Low image: admitted, pinned to its digest, and run")
        show(host, ["nerdctl", "run", "--rm", imgs["low"].ref], expect=0)

        step("Refused: unsigned, signed by an untrusted key, and a High image on this Mid host")
        show(host, ["nerdctl", "run", "--rm", imgs["unsigned"].ref], expect=77)
        show(host, ["nerdctl", "pull", imgs["untrusted"].ref], expect=77)
        show(host, ["nerdctl", "run", "--rm", imgs["high"].ref], expect=77)

        step("A Mid image needs measured boot: refused until the PCR baseline is recorded")
        show(host, ["nerdctl", "run", "--rm", imgs["mid"].ref], expect=77)
        show(host, ["bacon", "baseline", "record"], expect=0)
        show(host, ["nerdctl", "run", "--rm", imgs["mid"].ref], expect=0)

        step("The warm decision service (bacon serve, which the .deb runs): the same decisions, sooner")
        sock = work / "run" / "decide.sock"
        trusted_config(host, team, level="Mid", extra=tpm_extra + f'[service]\nsocket = "{sock}"\n')
        print(f"  $ bacon serve   (socket {sock}; the configuration names it)")
        serve_log = (work / "serve.log").open("wb")
        serve = subprocess.Popen([*host.bacon, "serve"], env=host.env(), stdout=serve_log, stderr=serve_log)
        try:
            wait_for(sock.exists, "bacon serve", timeout=60, proc=serve, log=work / "serve.log")
            show(host, ["nerdctl", "run", "--rm", imgs["mid"].ref], expect=0)
            show(host, ["nerdctl", "run", "--rm", imgs["unsigned"].ref], expect=77)
        finally:
            serve.terminate()
            serve.wait(timeout=30)
            serve_log.close()
        decided = (work / "serve.log").read_text().count('"event": "request"')
        print(f"  the service decided {decided} of them; with nothing listening, the wrapper decides itself")
        trusted_config(host, team, level="Mid", extra=tpm_extra)

        step("The second layer: a client that is not the wrapper (ctr) meets the same admission at the runtime")
        gated_dir = Path(tempfile.mkdtemp(prefix="bacon-rt-", dir="/tmp"))  # short: a socket path is short
        launcher = runtime_h.install_launcher(gated_dir / "bin", host.config)
        gated = runtime_h.start(gated_dir, gated_dir / "bin")
        services.append(gated)
        try:
            print(f"  a second containerd ({gated.socket}) finds BACON's gate as runc first on its PATH "
                  f"({launcher}), as `bacon enable --runtime` arranges")
            for name in ("low", "unsigned"):
                images_h.pull(gated, imgs[name])
            show_ctr(gated, ["run", "--rm", imgs["low"].ref, "demo-low", "/bin/echo", "hello from ctr"], expect=0)
            show_ctr(gated, ["run", "--rm", imgs["unsigned"].ref, "demo-unsigned", "/bin/true"], expect=77)
            show_ctr(gated, ["run", "--rm", "--privileged", imgs["low"].ref, "demo-priv", "/bin/true"], expect=77)
        finally:
            gated.stop()
            services.remove(gated)
            runtime_h.remove(gated_dir)

        step("Explaining a decision, and the audit log")
        show(host, ["bacon", "verify", imgs["high"].ref], expect=77)
        decisions = len(host.audit_log.read_text().splitlines())
        print(f"  audit log {host.audit_log}: {decisions} decisions, one JSON line each")
        step("Measured launches: each admitted launch is logged and extended into PCR 14 before it runs")
        trusted_config(host, team, level="Mid", extra=tpm_extra + '[measure]\ninto = ["tpm"]\n')
        show(host, ["nerdctl", "run", "--rm", imgs["low"].ref], expect=0)
        show(host, ["nerdctl", "run", "--rm", imgs["mid"].ref], expect=0)
        print(f"  launch log {launchlog.log_path(host.state_dir)} (TCG CEL)")

        step("A challenger's round trip: a nonce, the host's evidence, verified elsewhere without a TPM")
        nonce = os.urandom(32).hex()
        out = work / "evidence"
        show(host, ["bacon", "evidence", "--nonce", nonce, "--out", str(out)], expect=0)
        challenger = {**host.env(), "BACON_CONFIG": str(work / "challenger-has-no-config.toml")}
        show(host, ["bacon", "evidence", "verify", str(out), "--nonce", nonce], expect=0, env=challenger)
        print("  and a stale nonce (a replayed bundle) is refused:")
        show(host, ["bacon", "evidence", "verify", str(out), "--nonce", "00" * 32], expect=77, env=challenger)

        step("Done: every expected admission and refusal happened")
        return 0
    finally:
        for s in reversed(services):
            s.stop()
        if args.keep:
            print(f"demo: left {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
