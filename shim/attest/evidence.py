"""``bacon evidence``: one bundle a remote challenger can check, and ``bacon evidence verify``, the check.

The bundle (a directory; ``evidence.json`` lists every file with its SHA-256):

- ``quote.msg``, ``quote.sig``: a TPM quote (TPMS_ATTEST, TPMT_SIGNATURE) over the boot PCRs and the
  launch PCR, with the nonce; ``ak.pub.pem``, ``ak.pub``: the attestation key (PEM; TPM2B_PUBLIC);
  ``pcrs.bin``: the quoted PCR values, ascending (what ``tpm2_checkquote -f`` takes);
  ``keylime-quote.txt``: the same quote as Keylime's verifier takes it (``r<quote>:<signature>:<PCRs>``,
  base64, the PCRs in tpm2-tools' serialized form);
- ``boot-eventlog.bin``: the firmware's TCG2 event log, when the kernel exposes one;
- ``launch-log.cel``: this boot's launch log (:mod:`shim.attest.launchlog`);
- in a TD, ``td-quote.dat``: a quote whose REPORTDATA binds the nonce and the launch log's SHA-384, and
  ``td-collateral.json``: the collateral to check it offline.

The launch log is read and the quotes taken under the log's lock, so no launch slips in between.

Verification runs anywhere (no TPM, no configuration needed): the quote's signature by the bundled AK (or
one the challenger pins with ``--ak``), its nonce, the PCR digest; the boot log replayed to the quoted
boot PCRs; the launch log replayed (:mod:`shim.attest.launchreplay`) from the boot log's value of the launch PCR to
the quoted one; the TD quote against Intel's root with the collateral (as ``bacon tdx verify``), its
REPORTDATA, and the launch log replayed to its RTMR3. Any failure is exit 77 (:class:`Failed`), naming what failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shim.attest import cel, launchlog, launchreplay
from shim.attest.nonce import parse_hex
from shim.attest.tdx.settings import TdxSettings
from shim.common import atomicfile, strictjson
from shim.common.errors import BaconError, IntegrityError, Unavailable, UsageError

FORMAT = "bacon-evidence/1"
MANIFEST = "evidence.json"
MAX_FILE = 64 << 20
MIN_NONCE, MAX_NONCE = 16, 64
TD_SUBJECT = "launch-log:sha384:"


class Failed(IntegrityError):
    """The bundle does not verify (exit 77); ``report`` holds the steps that passed before."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report: Report | None = None

    def render(self) -> str:
        return f"bacon: evidence does not verify: {self.message}" + (f"\nbacon: hint: {self.hint}" if self.hint else "")


def parse_nonce(text: str) -> bytes:
    """The challenger's nonce: 16..64 bytes of hex (the TPM takes at most 64; a TD binding wants 16+)."""
    return parse_hex(text, min_size=MIN_NONCE, max_size=MAX_NONCE)


def td_report_data(nonce: bytes, launch_log: bytes) -> bytes:
    """The TD quote's REPORTDATA: the nonce bound to the launch log's SHA-384."""
    from shim.attest.tdx.check import report_data_for

    return report_data_for(nonce, TD_SUBJECT + hashlib.sha384(launch_log).hexdigest())


# -- collecting (on the host, root) ---------------------------------------------------------------------

def _write(out: Path, name: str, data: bytes, files: dict[str, str]) -> None:
    atomicfile.write(out / name, data)
    files[name] = hashlib.sha256(data).hexdigest()


def collect(cfg: Any, nonce: bytes, out: Path) -> dict[str, Any]:
    """Write the bundle for ``nonce`` into ``out``; return the manifest. Raises :class:`BaconError`."""
    from shim.attest import measure
    from shim.attest.tpm import check as tpm_check
    from shim.attest.tpm import settings as tpm_settings

    tpm, m = cfg.tpm, cfg.measure
    if not m.enabled:
        raise UsageError("launches are not measured on this host ([measure] into is empty)",
                         hint='set [measure] into = ["tpm"] (and "rtmr" in a TD) in /etc/bacon/config.toml')
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    manifest: dict[str, Any] = {"format": FORMAT, "nonce": nonce.hex(),
                                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "boot_id": launchlog.boot_id(), "files": files}
    path = launchlog.log_path(Path(cfg.state_dir))
    with launchlog.locked(path, create=True) as fd:
        size = os.fstat(fd).st_size
        log = os.pread(fd, size, 0) if size else b""
        if m.tpm:
            from shim.attest.tpm import attest, eventlog

            boot_log = tpm_check.read_eventlog(tpm) if tpm.eventlog is not None else None
            boot_pcrs = tpm.pcrs
            if not tpm.pcrs_configured and boot_log is not None:  # as the baseline chooses: what this boot measured
                try:
                    measured: set[int] | None = eventlog.measured_pcrs(eventlog.parse(boot_log))
                except eventlog.EventLogError:
                    measured = None
                boot_pcrs = tpm_settings.default_selection(measured, exclude=[m.pcr])
            tpm = replace(tpm, pcrs=boot_pcrs)
            quoted = replace(tpm, pcrs=tuple(sorted({*tpm.pcrs, m.pcr})))

            quote = tpm_check.within_deadline(quoted, lambda: tpm_check.fresh_quote(quoted, nonce))
            try:
                tpm_check.verify(quoted, quote, nonce)
            except attest.QuoteError as e:  # a quote that does not verify here is not handed out
                raise Unavailable(f"the TPM ({tpm.tcti}) produced a quote that does not verify: {e}",
                                  hint="retry; if it persists the TPM or the path to it is not trustworthy") from e
            sig_hash = attest.parse_signature(quote.signature).hash
            values = {p: quote.pcrs[p] for p in quoted.pcrs}
            keylime = "r" + ":".join(base64.b64encode(b).decode() for b in (
                quote.message, quote.signature, attest.serialize_pcrs(tpm.bank, values)))
            for name, data in (("quote.msg", quote.message), ("quote.sig", quote.signature),
                               ("ak.pub.pem", quote.ak_pem), ("ak.pub", quote.ak_tss),
                               ("pcrs.bin", b"".join(values[p] for p in quoted.pcrs)),
                               ("keylime-quote.txt", keylime.encode())):
                _write(out, name, data, files)
            manifest["tpm"] = {"bank": tpm.bank, "pcrs": list(quoted.pcrs), "boot_pcrs": list(tpm.pcrs),
                               "launch_pcr": m.pcr, "hash": sig_hash,
                               "ak": attest.fingerprint(attest.load_public_key(quote.ak_pem)),
                               "checkquote": f"tpm2_checkquote -u ak.pub.pem -m quote.msg -s quote.sig -f pcrs.bin "
                                             f"-l {quoted.selection} -g {sig_hash} -q {nonce.hex()}"}
            if boot_log is not None:
                _write(out, "boot-eventlog.bin", boot_log, files)
        if m.rtmr:
            from shim.attest.tdx import check as tdx_check

            td = cfg.tdx
            report_data = td_report_data(nonce, log)
            _write(out, "td-quote.dat", tdx_check.provider_for(td).get_quote(report_data), files)
            if td.collateral.is_file():
                _write(out, "td-collateral.json", td.collateral.read_bytes(), files)
            manifest["td"] = {"rtmr": measure.RTMR, "report_data": report_data.hex()}
    _write(out, "launch-log.cel", log, files)
    _write(out, MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), {})
    return manifest


# -- verifying (anywhere) --------------------------------------------------------------------------------

@dataclass
class Report:
    """What ``bacon evidence verify`` found: each step, the launches, and the verdict."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    launched: list[dict[str, Any]] = field(default_factory=list)
    not_extended: list[dict[str, Any]] = field(default_factory=list)
    pcrs: dict[str, str] = field(default_factory=dict)  # quoted PCRs the logs explain: a Keylime tpm_policy
    verdict: str = "verified"
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "steps": [{"check": c, "result": r} for c, r in
                                                                           self.steps],
                "launched": self.launched, "not_extended": self.not_extended,
                "tpm_policy": {p: [v] for p, v in self.pcrs.items()}}


def _read(bundle: Path, name: str, manifest: Mapping[str, Any] | None) -> bytes | None:
    path = bundle / name
    if not path.exists():
        if manifest is not None and name in manifest.get("files", {}):
            raise Failed(f"the bundle lists {name} but it is missing")
        return None
    with path.open("rb") as f:
        data = f.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise Failed(f"{name} is larger than {MAX_FILE} bytes")
    if manifest is not None:
        want = manifest.get("files", {}).get(name)
        if want is None:
            raise Failed(f"{name} is in the bundle but not in its manifest")
        if hashlib.sha256(data).hexdigest() != want:
            raise Failed(f"{name} does not have the SHA-256 its manifest lists: the file changed after collection")
    return data


def _entry_json(e: launchlog.Entry) -> dict[str, Any]:
    return {"recnum": e.record.recnum, "register": e.record.register, **e.event.to_json()}


def verify(bundle: Path, nonce: bytes, *, ak_pem: bytes | None = None, collateral: bytes | None = None,
           at: int | None = None, tdx: TdxSettings | None = None,
           allow_missing_boot_log: bool = False) -> Report:
    """Check a bundle (see the module). Returns the report; raises :class:`Failed` naming the first failure
    (its ``report`` holds the steps done so far), :class:`UsageError` when ``bundle`` is not a directory."""
    report = Report()
    try:
        _verify(bundle, nonce, report, ak_pem, collateral, at, tdx or TdxSettings(), allow_missing_boot_log)
    except UsageError:
        raise
    except BaconError as e:  # a TD quote's own denial (shim.attest.tdx) included
        report.verdict, report.reason = "failed", e.message
        failed = e if isinstance(e, Failed) else Failed(e.message, hint=e.hint)
        failed.report = report
        raise failed from (None if failed is e else e)
    return report


def _verify(bundle: Path, nonce: bytes, report: Report, ak_pem: bytes | None, collateral: bytes | None,
            at: int | None, tdx: TdxSettings, allow_missing_boot_log: bool) -> None:
    if not bundle.is_dir():
        raise UsageError(f"{bundle} is not an evidence directory", hint="bacon evidence --nonce HEX --out DIR")
    raw_manifest = _read(bundle, MANIFEST, None)
    if raw_manifest is None:
        raise Failed(f"{bundle}/{MANIFEST} is missing: not a bacon evidence bundle")
    try:
        manifest = strictjson.load_object(raw_manifest, max_size=MAX_FILE)
    except strictjson.Invalid as e:
        raise Failed(f"{MANIFEST} is not a {FORMAT} manifest: it {e}") from e
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise Failed(f"{MANIFEST} is not a {FORMAT} manifest: format {str(manifest.get('format'))[:80]!r}")
    for name in manifest["files"]:
        if "/" in name or name.startswith("."):
            raise Failed(f"the manifest names {name!r}, not a file of the bundle")
        _read(bundle, name, manifest)
    report.steps.append(("manifest", f"{len(manifest['files'])} files, each with the SHA-256 listed"))
    log = _read(bundle, "launch-log.cel", manifest)
    if log is None:
        raise Failed("the bundle has no launch-log.cel")
    try:
        parsed = cel.parse(log)
        if parsed.torn:
            raise cel.CelError(f"{parsed.torn} bytes after the last whole record")
        entries = launchreplay.decode(parsed.records)
    except (cel.CelError, launchreplay.ReplayError) as e:
        raise Failed(f"the launch log fails: {e}") from e
    report.steps.append(("launch log", f"{len(entries)} records, numbered in order, each matching its digest"))
    tpm_replay = _verify_tpm(bundle, manifest, nonce, entries, report, ak_pem, allow_missing_boot_log)
    td_replay = _verify_td(bundle, manifest, nonce, log, entries, report, collateral, at, tdx)
    chosen = tpm_replay or td_replay
    if chosen is None:
        raise Failed("the bundle holds neither a TPM quote nor a TD quote")
    if tpm_replay is not None and td_replay is not None:
        a = [(e.event.time, e.event.digest, e.event.argv) for e in tpm_replay.launched]
        b = [(e.event.time, e.event.digest, e.event.argv) for e in td_replay.launched]
        if a != b:
            raise Failed(f"{tpm_replay.register} and {td_replay.register} hold different launches")
    report.launched = [_entry_json(e) for e in chosen.launched]
    report.not_extended = [_entry_json(e) for e in chosen.not_extended]


def _verify_tpm(bundle: Path, manifest: Mapping[str, Any], nonce: bytes, entries: Sequence[launchlog.Entry],
                report: Report, ak_pem: bytes | None, allow_missing_boot_log: bool) -> launchreplay.Replay | None:
    from shim.attest.tpm import attest, eventlog

    info = manifest.get("tpm")
    if info is None:
        return None
    try:
        bank, pcrs, boot_pcrs, launch_pcr = (str(info["bank"]), [int(p) for p in info["pcrs"]],
                                             [int(p) for p in info["boot_pcrs"]], int(info["launch_pcr"]))
    except (KeyError, TypeError, ValueError) as e:
        raise Failed(f"the manifest's tpm entry is malformed: {e}") from e
    size = cel.SIZES.get(bank)
    if size is None or launch_pcr not in pcrs or not set(boot_pcrs) <= set(pcrs):
        raise Failed(f"the manifest's tpm entry is inconsistent (bank {bank}, PCRs {pcrs})")
    message, signature, bundled_ak, values_raw = (_read(bundle, n, manifest) for n in
                                                  ("quote.msg", "quote.sig", "ak.pub.pem", "pcrs.bin"))
    if message is None or signature is None or bundled_ak is None or values_raw is None:
        raise Failed("the bundle's TPM quote is incomplete (quote.msg, quote.sig, ak.pub.pem, pcrs.bin)")
    try:
        key = attest.load_public_key(bundled_ak)
        fp = attest.fingerprint(key)
        if ak_pem is not None:
            pinned = attest.fingerprint(attest.load_public_key(ak_pem))
            if pinned != fp:
                raise Failed(f"the quote's attestation key is {fp}, not the pinned {pinned}: another TPM")
        values = attest.parse_pcr_values(values_raw, pcrs, size)
        attest.verify_quote(message, signature, key, nonce=nonce, pcrs=values, bank=bank)
    except attest.NonceMismatch as e:
        raise Failed(f"the TPM quote is not for this nonce: {e}",
                     hint="a stale or replayed bundle: ask the host again with a fresh nonce") from e
    except attest.QuoteError as e:
        raise Failed(f"the TPM quote does not verify: {e}") from e
    pinned_note = "pinned" if ak_pem is not None else "NOT pinned: pass --ak with the host's enrolled AK"
    report.steps.append(("tpm quote", f"signed by AK {fp} ({pinned_note}), nonce {nonce.hex()[:16]}…, "
                                      f"{bank} PCRs {','.join(map(str, pcrs))}"))
    boot_log = _read(bundle, "boot-eventlog.bin", manifest)
    start = bytes(size)
    if boot_log is None:
        if not allow_missing_boot_log:
            raise Failed("the bundle has no boot event log: the boot PCRs cannot be explained",
                         hint="the host exposes none (securityfs?); --allow-missing-boot-log accepts the boot PCRs "
                              "unexplained")
        report.steps.append(("boot log", "none in the bundle: boot PCRs quoted but not explained (allowed)"))
    else:
        try:
            replayed = eventlog.replay(eventlog.parse(boot_log), bank)
        except eventlog.EventLogError as e:
            raise Failed(f"the boot event log fails: {e}") from e
        for p in boot_pcrs:
            if replayed.get(p, bytes(size)) != values[p]:
                raise Failed(f"the boot event log does not replay to the quoted PCR {p} "
                             f"({replayed.get(p, bytes(size)).hex()[:16]}… ≠ {values[p].hex()[:16]}…)")
        start = replayed.get(launch_pcr, start)
        report.steps.append(("boot log", f"replays to the quoted PCRs {','.join(map(str, boot_pcrs))}"))
    try:
        rep = launchreplay.replay(entries, cel.PCR, launch_pcr, bank, start, values[launch_pcr])
    except launchreplay.ReplayError as e:
        raise Failed(f"the launch log fails against the quoted PCR {launch_pcr}: {e}") from e
    explained = boot_pcrs if boot_log is not None else []
    report.pcrs = {str(p): values[p].hex() for p in sorted([*explained, launch_pcr])}
    report.steps.append(("launch PCR", f"the launch log replays to the quoted PCR {launch_pcr}: "
                                       + _launches(len(rep.launched))
                                       + (f", {len(rep.not_extended)} logged but never extended"
                                          if rep.not_extended else "")))
    return rep


def _verify_td(bundle: Path, manifest: Mapping[str, Any], nonce: bytes, log: bytes,
               entries: Sequence[launchlog.Entry], report: Report, collateral: bytes | None, at: int | None,
               tdx: TdxSettings) -> launchreplay.Replay | None:
    from shim.attest import measure
    from shim.attest.tdx import verify as tdx_verify

    quote = _read(bundle, "td-quote.dat", manifest)
    if manifest.get("td") is None and quote is None:
        return None
    if quote is None:
        raise Failed("the manifest lists a TD quote but the bundle has none")
    col = collateral if collateral is not None else _read(bundle, "td-collateral.json", manifest)
    if col is None:
        raise Failed("no collateral to check the TD quote with",
                     hint="pass --collateral FILE (as for bacon tdx verify)")
    # a challenger's appraisal: the host's root and accepted TCB statuses, none of its reference values
    settings = TdxSettings(root_ca_path=tdx.root_ca_path, accept_tcb_status=tdx.accept_tcb_status)
    now = int(time.time()) if at is None else at
    try:
        appraisal = tdx_verify.appraise(quote, col.decode("utf-8"), now, settings)
    except UnicodeDecodeError as e:
        raise Failed("the TD collateral is not UTF-8 JSON") from e
    tdx_verify.check_report_data(appraisal.measurements, td_report_data(nonce, log))
    test = " (a TEST root)" if appraisal.root_is_test else ""
    report.steps.append(("td quote", f"verified to {appraisal.root}{test}, TCB {appraisal.status}; REPORTDATA "
                                     "binds the nonce and this launch log"))
    try:
        rep = launchreplay.replay(entries, cel.CCMR, measure.RTMR + 1, "sha384", bytes(48),
                                  appraisal.measurements.rtmr[measure.RTMR])
    except launchreplay.ReplayError as e:
        raise Failed(f"the launch log fails against the TD quote's RTMR3: {e}") from e
    report.steps.append(("RTMR3", f"the launch log replays to the quoted RTMR3: {_launches(len(rep.launched))}"))
    return rep


def _launches(n: int) -> str:
    return f"{n} launch" + ("" if n == 1 else "es")


def print_report(report: Report, out: Any) -> None:
    w = out.write
    for check, result in report.steps:
        w(f"ok      {check:<11} {result}\n")
    if report.verdict == "verified":
        w(f"\ncontainers launched since boot ({len(report.launched)}):\n")
        for ln in report.launched:
            who = ln.get("container_id") or (f"token {ln['token']}" if ln.get("token") else "")
            w(f"  #{ln['recnum']:<4} {ln['time']}  {ln['command']:<7} {ln['image']}  {ln['digest']}\n"
              f"         level {ln['level']}{' (profile ' + ln['profile'] + ')' if ln.get('profile') else ''}, "
              f"signer {ln['signer']}{', ' + who if who else ''}\n")
        for ln in report.not_extended:
            w(f"  #{ln['recnum']:<4} {ln['time']}  {ln['command']} {ln['image']}: logged, never extended "
              "(refused at the extend, or the host stopped between log and extend)\n")
        w("\nverdict: verified\n")
    else:
        w(f"\nverdict: FAILED: {report.reason}\n")
