"""``bacon``: the operator's commands.

Each verb's implementation lives in its own module and is imported only when that verb runs (a table
from verb to ``module:function``, as pip does), so ``bacon --help`` stays fast. Every error is turned
into text and an exit status here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from collections.abc import Callable, Sequence
from typing import cast

from shim import __version__
from shim.common.errors import EXIT_USAGE, exit_status

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
examples:
  bacon status                            where this host stands: level, keys, Secure Boot, TPM, TDX
  bacon verify 127.0.0.1:5000/team/app:1  would `nerdctl run` of it be admitted here, and why
  bacon policy show                       the system level and what each level requires
  sudo bacon baseline record              record the TPM PCRs of this known-good boot
  sudo bacon audit --verdict denied --since 1h   what was refused in the last hour

exit status: 0 ok, 64 usage, 69 a needed service unavailable, 70 internal error, 77 denied,
78 configuration error.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (the contract), not 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        print(f"bacon: usage: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", "-a", metavar="SOCKET",
                   help="containerd socket (default as nerdctl: CONTAINERD_ADDRESS, nerdctl.toml, "
                        "/run/containerd/containerd.sock)")
    p.add_argument("--namespace", "-n", metavar="NS",
                   help="containerd namespace (default as nerdctl: CONTAINERD_NAMESPACE, nerdctl.toml, default)")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document for scripts")


def _verb(sub: argparse._SubParsersAction[_Parser], name: str, handler: str, help_: str, description: str,
          examples: str) -> _Parser:
    p = sub.add_parser(name, help=help_, description=description, epilog="examples:\n" + examples,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def _add_probe_options(p: argparse.ArgumentParser) -> None:
    _add_target(p)
    _add_json(p)
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long the probes (TPM, TDX, containerd …) may take in all (default 10)")


def _add_wrapper_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", default=None, metavar="FILE",
                   help="the nerdctl operators run, first on PATH (default /usr/local/bin/nerdctl); with "
                        "--runtime, the runc containerd runs (default /usr/local/sbin/runc)")
    p.add_argument("--runtime", action="store_true",
                   help="the runtime gate instead: BACON as `runc` ahead of the real one on containerd's PATH")
    _add_json(p)


HOST_EXIT = """
exit status: 0 everything the levels this host admits need is in place; 1 something needed is missing
(its line says how to fix it); 78 the configuration cannot be used.
"""


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="bacon", description="BACON: the admission layer in front of nerdctl.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"bacon {__version__}")
    sub = ap.add_subparsers(dest="verb", metavar="COMMAND")

    p = _verb(sub, "status", "commands.host:cmd_status", "where this host stands, on one screen",
              "The system level and where it comes from, the trusted keys, Secure Boot, the TPM (PCRs against "
              "the baseline), TDX (RTMRs against the reference values), containerd, the real nerdctl, and whether "
              "each level's requirements are met; every failure with a one-line fix. Each probe is bounded in "
              "time and never stops the others.",
              "  bacon status\n  bacon status --json\n  bacon status --timeout 3\n" + HOST_EXIT)
    _add_probe_options(p)
    p = _verb(sub, "doctor", "commands.host:cmd_doctor", "check this host's requirements, one line each",
              "One line per requirement (configuration and its permissions, state and audit log, real nerdctl, "
              "containerd, trusted keys, TPM device and baseline, TDX provider and collateral): ok or missing, "
              "and how to fix it. A requirement is needed when a level at or below the system level requires it.",
              "  sudo bacon doctor\n  bacon doctor --json\n" + HOST_EXIT)
    _add_probe_options(p)

    p = _verb(sub, "enable", "commands.enable:cmd_enable", "put the wrapper in front of the real nerdctl (root)",
              "Move the real nerdctl at --path aside to the configured `nerdctl =` path (keeping its bytes, mode "
              "and owner; when the configuration names --path itself, to --libexec and the configuration is "
              "updated), record what was there in the state directory, and put a symlink to this package's "
              "nerdctl wrapper at --path. Harmless when the wrapper is already there.",
              "  sudo bacon enable --path /usr/local/bin/nerdctl\n"
              "  sudo bacon enable --path /usr/local/bin/nerdctl --libexec /usr/local/libexec/bacon --json\n"
              "  sudo bacon enable --runtime --path /usr/local/sbin/runc\n")
    _add_wrapper_path(p)
    p.add_argument("--libexec", default="/usr/local/libexec/bacon", metavar="DIR",
                   help="where the real nerdctl goes when the configuration's `nerdctl =` is --path itself")
    p = _verb(sub, "disable", "commands.enable:cmd_disable", "restore what enable replaced (root)",
              "Put back exactly what `bacon enable` found at --path (the same bytes, mode and owner; the same "
              "symlink; or nothing), and the configuration's `nerdctl =` if enable changed it. Refuses when "
              "--path is no longer the wrapper.",
              "  sudo bacon disable --path /usr/local/bin/nerdctl\n"
              "  sudo bacon disable --runtime --path /usr/local/sbin/runc\n")
    _add_wrapper_path(p)

    p = _verb(sub, "audit", "commands.audit:cmd_audit", "the decision log: last entries, filtered, --follow",
              "Print the last decisions from the audit log (`audit_log`), oldest first, filtered by time, "
              "verdict and image; the rotated files (audit.jsonl.1, audit.jsonl.2.gz …) are read too. Lines that "
              "are not decisions (torn, garbage) are reported on stderr with their file and line number (exit 1). "
              "Times are UTC. The log is root's (group adm may read it): a user who may not read it gets "
              "\"permission denied\" (exit 69).",
              "  sudo bacon audit\n  sudo bacon audit --verdict denied --since 1h\n"
              "  sudo bacon audit --image 127.0.0.1:5000/team/app -n 5 --json\n"
              "  sudo bacon audit --follow --verdict denied\n")
    p.add_argument("--since", metavar="DURATION|TIME",
                   help="only decisions since then: 15m, 2h, 1d, 1h30m, or 2026-12-01T08:00Z")
    p.add_argument("--verdict", choices=("denied", "admitted", "error", "verify-denied", "verify-admitted"),
                   help="only this verdict: denied (refused by a check), admitted, error (not decided: image not "
                        "found, a service down), or the dry runs of `bacon verify` (verify-denied, verify-admitted)")
    p.add_argument("--image", metavar="SUBSTR", help="only decisions whose image or digest contains SUBSTR")
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="the last N matches (default 20, 0: all)")
    p.add_argument("--follow", "-f", action="store_true", help="then wait for new decisions (Ctrl-C ends)")
    _add_json(p)

    p = _verb(sub, "version", "commands.info:cmd_version", "BACON's and containerd's versions",
              "Print BACON's version and the version of the containerd nerdctl would use.",
              "  bacon version --json\n")
    _add_target(p)
    _add_json(p)

    p = _verb(sub, "image", "commands.info:cmd_image", "how containerd resolves an image (no checks)",
              "Follow IMAGE through containerd's gRPC API the way nerdctl would: the record's target, the "
              "platform manifest, the config and its labels. Checks nothing; see `bacon verify`.",
              "  bacon image --json 127.0.0.1:5000/team/app:1\n")
    p.add_argument("image", metavar="IMAGE", help="image name as stored in containerd")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform (default: this host's)")
    _add_target(p)
    _add_json(p)

    p = _verb(sub, "verify", "commands.images:cmd_verify", "the full admission decision for IMAGE, explained",
              "Decide IMAGE exactly as `nerdctl run [RUN_OPTIONS] IMAGE` would be decided (signature, policy "
              "level, host attestation, and the container profile of the image's level), print each check, "
              "and forward nothing. Exit 0 when it would be admitted, 77 when "
              "not.",
              "  bacon verify 127.0.0.1:5000/team/app:1\n"
              "  bacon verify --json --pull=always 127.0.0.1:5000/team/app:1\n"
              "  bacon verify 127.0.0.1:5000/team/app:1 -- --privileged -v /srv:/srv\n")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("run_options", nargs="*", metavar="-- RUN_OPTIONS",
                   help="nerdctl run options to judge with the container profile of the image's level")
    p.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                   help="as nerdctl run --pull: where the image is looked up (default missing: local first)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform (default: this host's)")
    _add_target(p)
    _add_json(p)

    p = _verb(sub, "sign", "commands.images:cmd_sign", "sign IMAGE in cosign's classic format",
              "Sign the digest IMAGE names at its registry (or, with --local, the local image's digest) with the "
              "configured signing key ([signing] key) or --key, appending to existing signatures. The key's "
              "password is asked on the terminal, or read from COSIGN_PASSWORD; a key without one is refused "
              "unless [signing] unattended = true. The key's [trust] scope must cover the repository and the "
              "image's policy level; the signature carries bacon.* annotations (host, operator, time, level, "
              "version).",
              "  bacon sign --key /etc/bacon/keys/team.key 127.0.0.1:5000/team/app:1\n")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--key", metavar="FILE", help="signing key (cosign.key or PKCS#8 PEM)")
    p.add_argument("--local", action="store_true", help="sign the digest of the local image, not the registry's")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform for --local (default: this host's)")
    _add_target(p)
    _add_json(p)

    p = _verb(sub, "serve", "commands.serve:cmd_serve", "the warm decision service (root)",
              "Decide for the nerdctl wrapper without paying Python's imports each time: imports the gate once, "
              "then forks a child per request that decides with the caller's environment, exactly as the wrapper "
              "would, and answers with the pinned command, which the wrapper carries out. Only callers with the "
              "service's uid are served, and the wrapper uses only a service with its own uid. The wrapper uses "
              "it when [service] socket is set and falls back to deciding itself when nothing listens there. "
              "Runs until SIGTERM (exit 0) or Ctrl-C (130).",
              "  sudo bacon serve --socket /run/bacon/decide.sock\n  sudo bacon serve --stop\n")
    p.add_argument("--socket", metavar="PATH", help="where to listen (default: [service] socket)")
    p.add_argument("--stop", action="store_true",
                   help="stop the bacon serve listening at the socket (SIGTERM, then wait for it to finish "
                        "its decisions) and exit; for hosts without a service manager")

    pol = _verb(sub, "policy", "", "show or set the host's system level",
                "The system level decides which images may run: an image runs when its policy label is at most "
                "the system level (High > Mid > Low).",
                "  bacon policy show\n  sudo bacon policy set Mid\n  sudo bacon policy reset\n")
    psub = pol.add_subparsers(dest="policy_verb", metavar="ACTION")
    p = _verb(psub, "show", "commands.policy:cmd_show", "the system level and what each level requires",
              "Print the system level, which setting decides it (the configuration's `level =`, or the "
              "override `bacon policy set` wrote), and what each level requires.", "  bacon policy show\n")
    _add_json(p)
    p = _verb(psub, "set", "commands.policy:cmd_set", "change the system level (root)",
              "Change the system level (atomically, audited). It is recorded in the state directory "
              "(<state_dir>/level) and overrides the configuration's `level =` until `bacon policy reset`; "
              "setting the level the configuration names removes that override. Warns first about each check "
              "the new level needs that this host cannot pass (no TPM, no baseline, not a TD). Containers "
              "created at a level above the new one are listed, kept or stopped (--running, default from "
              "[policy] running_above_level).",
              "  sudo bacon policy set High\n  sudo bacon policy set Low --running=stop\n")
    p.add_argument("level", metavar="LEVEL", choices=("High", "Mid", "Low"), help="High, Mid or Low")
    p.add_argument("--running", choices=("keep", "list", "stop"), help="what to do with containers above LEVEL")
    _add_json(p)
    p = _verb(psub, "reset", "commands.policy:cmd_reset", "follow the configuration's level again (root)",
              "Remove the level `bacon policy set` recorded in the state directory, so that the configuration's "
              "`level =` decides again (audited; warns when this host cannot pass what that level requires).",
              "  sudo bacon policy reset\n")
    _add_json(p)

    base = _verb(sub, "baseline", "", "record or show the TPM PCR baseline",
                 "The TPM check compares the PCRs (firmware, boot loader, Secure Boot) with a recorded baseline.",
                 "  sudo bacon baseline record\n  bacon baseline show --diff\n")
    bsub = base.add_subparsers(dest="baseline_verb", metavar="ACTION")
    _verb(bsub, "record", "commands.attest:cmd_baseline_record",
          "record the current PCRs as the baseline (root)",
          "Read the configured PCRs (default sha256 0-5 and 7) with a verified quote and store them, with the "
          "event log's replay where the kernel exposes one, atomically and root-only. The attestation key and the "
          "endorsement key the quote's session was salted to are pinned: a TPM that later presents another EK is "
          "denied (re-record when the TPM was replaced on purpose).",
          "  sudo bacon baseline record\n")
    p = _verb(bsub, "show", "commands.attest:cmd_baseline_show", "show the baseline (and --diff the current PCRs)",
              "Print the recorded baseline; with --diff compare it with the TPM's current PCRs (exit 1 when they "
              "differ; 77 when the TPM presents another endorsement key than the baseline pinned).",
              "  bacon baseline show\n  bacon baseline show --diff --json\n")
    p.add_argument("--diff", action="store_true", help="compare with the current PCR values")
    _add_json(p)

    q = _verb(sub, "quote", "", "produce a sample TPM or TD quote for an outside verifier",
              "Produce a fresh quote over NONCE.",
              "  bacon quote tpm --nonce 00112233 --out /tmp/q\n"
              "  bacon quote tdx --nonce 00112233 --out /tmp/td.quote\n")
    qsub = q.add_subparsers(dest="quote_verb", metavar="KIND")
    p = _verb(qsub, "tpm", "commands.attest:cmd_quote_tpm", "a TPM quote in the files tpm2_checkquote takes",
              "Quote the configured (or --pcrs) PCRs with NONCE. With --out DIR, writes quote.msg, quote.sig, "
              "ak.pub.pem, ak.pub and pcrs.bin for `tpm2_checkquote -u DIR/ak.pub.pem -m DIR/quote.msg "
              "-s DIR/quote.sig -f DIR/pcrs.bin -g sha256 -q NONCE`; without, prints JSON.",
              "  bacon quote tpm --nonce 00112233 --out /tmp/q\n  bacon quote tpm --nonce 00112233 --pcrs 0,7\n")
    p.add_argument("--nonce", required=True, metavar="HEX")
    p.add_argument("--pcrs", metavar="LIST", help='PCRs to quote, "0,7" or "sha256:0,7" (default: configured)')
    p.add_argument("--out", metavar="DIR", help="directory for the quote files")
    p = _verb(qsub, "tdx", "commands.attest:cmd_quote_tdx", "a TD quote through configfs-tsm",
              "Ask the TDX guest's quote provider (configfs-tsm) for a quote whose REPORTDATA is NONCE "
              "(1-64 bytes, zero-padded). Writes the quote to --out, or prints it as hex.",
              "  bacon quote tdx --nonce 00112233 --out /tmp/td.quote\n")
    p.add_argument("--nonce", required=True, metavar="HEX")
    p.add_argument("--out", metavar="FILE", help="where to write the quote")

    e = _verb(sub, "evidence", "commands.evidence:cmd_evidence",
              "quotes and the launch log for a remote challenger (root); `verify` checks a bundle anywhere",
              "Write an evidence bundle for the challenger's NONCE (16-64 bytes) into DIR: a TPM quote over the "
              "boot PCRs and the launch PCR, the AK, the boot event log, the launch log and, in a TD, a TD quote "
              "binding the nonce and the launch log; evidence.json lists each file's SHA-256.",
              "  sudo bacon evidence --nonce 00112233445566778899aabbccddeeff --out /tmp/evidence\n"
              "  bacon evidence verify /tmp/evidence --nonce 00112233445566778899aabbccddeeff\n")
    e.add_argument("--nonce", metavar="HEX", help="the challenger's nonce")
    e.add_argument("--out", metavar="DIR", help="where to write the bundle")
    _add_json(e)
    esub = e.add_subparsers(dest="evidence_verb", metavar="ACTION")
    p = _verb(esub, "verify", "commands.evidence:cmd_evidence", "check a bundle (no TPM needed)",
              "Check DIR for NONCE: the TPM quote's signature and nonce, the boot log and the launch log replayed "
              "to the quoted PCRs, the TD quote against Intel's root (offline, with the bundled or --collateral "
              "collateral) and its RTMR3; print the containers launched since boot. Exit 0 verified, 77 not.",
              "  bacon evidence verify /tmp/evidence --nonce 00112233445566778899aabbccddeeff --json\n")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--nonce", dest="verify_nonce", required=True, metavar="HEX")
    p.add_argument("--ak", metavar="PEM", help="require this attestation key (the host's, enrolled before)")
    p.add_argument("--collateral", metavar="FILE", help="TDX collateral (default: the bundle's)")
    p.add_argument("--at", type=int, metavar="UNIXTIME", help="check the TD quote as of this time (default: now)")
    p.add_argument("--allow-missing-boot-log", action="store_true",
                   help="accept a bundle without a boot event log (its boot PCRs are then not explained)")
    _add_json(p)

    t = _verb(sub, "tdx", "", "verify TD quotes, refresh the TDX collateral",
              "Intel TDX: verify a quote offline against Intel's root, or refresh the collateral cache.",
              "  bacon tdx verify --quote td.quote --collateral collateral.json --at 1750329147 --json\n")
    tsub = t.add_subparsers(dest="tdx_verb", metavar="ACTION")
    p = _verb(tsub, "verify", "commands.attest:cmd_tdx_verify", "verify a TD quote file with its collateral",
              "Verify QUOTE with COLLATERAL (dcap-qvl, chain pinned to the Intel SGX Root CA) at --at (default "
              "now); print TCB status, advisories and measurements, compared with the configured reference "
              "values when there are any.",
              "  bacon tdx verify --quote td.quote --collateral collateral.json --at 1750329147\n")
    p.add_argument("--quote", required=True, metavar="FILE")
    p.add_argument("--collateral", required=True, metavar="FILE")
    p.add_argument("--at", type=int, metavar="UNIXTIME", help="verify as of this time (default: now)")
    _add_json(p)
    cr = _verb(tsub, "collateral", "", "the TDX collateral cache", "The local collateral cache.",
               "  sudo bacon tdx collateral refresh\n")
    crsub = cr.add_subparsers(dest="collateral_verb", metavar="ACTION")
    _verb(crsub, "refresh", "commands.attest:cmd_tdx_collateral_refresh",
          "fetch fresh collateral from Intel's PCS or the configured PCCS (root)",
          "Fetch the collateral for this TD's quote from [tdx] pccs_url and store it atomically; admission "
          "checks then never need the network.", "  sudo bacon tdx collateral refresh\n")
    return ap


def _help_for(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the deepest group the user named (``bacon policy`` shows policy's help)."""
    current = parser
    for dest in ("verb", "policy_verb", "baseline_verb", "quote_verb", "tdx_verb", "collateral_verb",
                 "evidence_verb"):
        name = getattr(args, dest, None)
        if not name:
            continue
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                current = action.choices[name]
    return current


def resolve_handler(spec: str) -> Handler:
    module, func = spec.split(":")
    return cast(Handler, getattr(importlib.import_module("shim.operator." + module), func))


def _split_run_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``bacon verify IMAGE [OPTIONS] -- RUN_OPTIONS``: everything after the first ``--`` is nerdctl's
    (argparse's subcommands do not hand a ``--`` tail to a positional)."""
    if "verify" in argv and "--" in argv[argv.index("verify"):]:
        cut = argv.index("--", argv.index("verify"))
        return argv[:cut], argv[cut + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    own, run_options = _split_run_options(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    if run_options:
        if getattr(args, "run_options", None) is None:
            parser.error("'--' RUN_OPTIONS are only for bacon verify")
        args.run_options = [*args.run_options, *run_options]
    if not getattr(args, "handler", None):
        _help_for(parser, args).print_help(sys.stderr)
        return EXIT_USAGE
    return exit_status(lambda: resolve_handler(args.handler)(args))


if __name__ == "__main__":
    sys.exit(main())
