"""What the ``bacon`` CLI calls for TDX: ``quote tdx``, ``tdx verify``, ``tdx collateral refresh``, and the
TDX part of ``status``. Each function raises :class:`shim.common.errors.BaconError` subclasses for ``main()`` to
render; output goes to stdout (``--json`` where a machine reads it)."""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shim.attest.nonce import parse_hex
from shim.attest.tdx import check, collateral, settings, verify
from shim.attest.tdx.configfs import REPORTDATA_SIZE
from shim.common import atomicfile
from shim.common.errors import BaconError, Denied, Unavailable, UsageError

MAX_QUOTE_FILE = 1 << 20
DEFAULT_MEASUREMENTS = Path("/sys/devices/virtual/misc/tdx_guest/measurements")


def parse_nonce(nonce_hex: str) -> bytes:
    """REPORTDATA from ``--nonce HEX``: 1..64 bytes, right-padded with zeros to 64. Raises :class:`UsageError`."""
    return parse_hex(nonce_hex, max_size=REPORTDATA_SIZE).ljust(REPORTDATA_SIZE, b"\x00")


def _read_file(path: Path, what: str, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}") from e
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    return data


def cmd_quote(nonce_hex: str, out: str | None, tdx: settings.TdxSettings) -> int:
    """``bacon quote tdx --nonce HEX [--out FILE]``: a TD quote over the nonce; hex on stdout without --out."""
    report_data = parse_nonce(nonce_hex)
    s = tdx
    quote = check.provider_for(s).get_quote(report_data)
    if out:
        atomicfile.write(out, quote)
        print(f"wrote {len(quote)}-byte TD quote to {out} (REPORTDATA {report_data.hex()})", file=sys.stderr)
    else:
        print(quote.hex())
    return 0


def _print_appraisal(doc: Mapping[str, Any]) -> None:
    w = sys.stdout.write
    root = doc["root"] + (" [TEST ROOT]" if doc["root_is_test"] else "")
    win = doc["collateral_window"]
    w(f"status       {doc['status']}\n")
    w(f"advisories   {', '.join(doc['advisory_ids']) or 'none'}\n")
    w(f"root         {root}\n")
    w(f"quote        v{doc['quote_version']}, FMSPC {doc['fmspc']}\n")
    w(f"collateral   valid {collateral.iso(win['not_before'])} .. {collateral.iso(win['not_after'])}"
      f" (checked at {collateral.iso(doc['at'])})\n")
    for name, value in doc["measurements"].items():
        mark = ""
        if name in doc.get("reference", {}):
            mark = "  = reference" if doc["reference"][name] == value else "  ≠ reference " + doc["reference"][name]
        w(f"{name:<13}{value}{mark}\n")
    if doc.get("not_compared"):
        w(f"not compared {', '.join(doc['not_compared'])} (no reference value)\n")
    if doc.get("missing_reference"):
        w(f"an admission needs reference values for {', '.join(doc['missing_reference'])} "
          "([tdx] require_reference): copy them from above into [tdx.reference]\n")


def cmd_verify(quote_path: str, collateral_path: str, at: int | None, json_out: bool,
               tdx: settings.TdxSettings) -> int:
    """``bacon tdx verify --quote FILE --collateral FILE [--at UNIXTIME] [--json]``.

    Prints status, advisories and measurements; refuses (exit 77 through :class:`Denied`) a quote that
    does not verify or whose measurements differ from ``[tdx.reference]``.
    """
    s = tdx
    quote = _read_file(Path(quote_path), "quote", MAX_QUOTE_FILE)
    try:
        text = _read_file(Path(collateral_path), "collateral", collateral.MAX_COLLATERAL).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"collateral {collateral_path} is not UTF-8 JSON") from e
    now = int(time.time()) if at is None else at
    reference = {k: v.hex() for k, v in s.reference.items()}
    try:
        appraisal = verify.appraise(quote, text, now, s)
    except Denied as e:
        if json_out:
            print(json.dumps({"verdict": "denied", "reason": e.message, "hint": e.hint, "at": now}))
        raise
    doc = appraisal.to_json()
    doc["reference"] = reference
    doc["quote_sha256"] = hashlib.sha256(quote).hexdigest()
    mismatches = verify.compare(appraisal.measurements, s.reference)
    doc["not_compared"] = list(s.not_compared)
    doc["missing_reference"] = list(s.missing_reference)
    doc["opted_out"] = list(s.opted_out)
    doc["verdict"] = "denied" if mismatches else "verified"
    doc["mismatches"] = [m.field for m in mismatches]
    if json_out:
        print(json.dumps(doc, indent=2))
    else:
        _print_appraisal(doc)
    if mismatches:
        names = ", ".join(verify.FIELD_LABELS[m.field] for m in mismatches)
        err = verify.MeasurementMismatch(
            f"{names} differ from the reference: " + verify.mismatch_message(mismatches, appraisal.measurements),
            mismatches, appraisal.quote, hint="see `bacon tdx verify --json`; update [tdx.reference] if intended")
        raise check.explained(err, s)
    return 0


def cmd_collateral_refresh(tdx: settings.TdxSettings, *,
                           provider: check.QuoteProvider | None = None, fetch: collateral.Fetcher | None = None,
                           now: int | None = None) -> int:
    """``bacon tdx collateral refresh``: fetch collateral for this platform and store it atomically.

    The platform (FMSPC, PCK CA) is read from a fresh quote of this TD; the new collateral must verify
    that quote before it replaces the cache.
    """
    s = tdx
    quote = (provider or check.provider_for(s)).get_quote(secrets.token_bytes(REPORTDATA_SIZE))
    at = int(time.time()) if now is None else now
    text, window = refresh(s, quote, fetch or collateral.urllib_fetcher(), at)
    collateral.store(s.collateral, text)
    print(f"stored TDX collateral at {s.collateral}, valid until {collateral.iso(window.end)} ({window.end_item})")
    return 0


def refresh(
    s: settings.TdxSettings, quote: bytes, fetch: collateral.Fetcher, now: int
) -> tuple[str, collateral.Window]:
    """Fetch collateral for ``quote``'s platform and check it before it may be stored. Raises :class:`Unavailable`."""
    import dcap_qvl

    try:
        parsed = dcap_qvl.parse_quote(quote)
        fmspc = parsed.fmspc()
        ca = parsed.ca()
    except ValueError as e:
        raise Unavailable(f"the provider's quote is malformed: {e}") from e
    text = collateral.fetch_collateral(s.pccs_url, fmspc, ca, fetch)
    try:
        window = collateral.validity_window(text)
        collateral.require_current(window, now)
        dcap_qvl.verify_with_root_ca(quote, dcap_qvl.QuoteCollateralV3.from_json(text), s.root_ca.der, now)
    except Denied as e:
        raise Unavailable(f"refusing to store the fetched collateral: {e.message}", hint=e.hint) from e
    except ValueError as e:
        msg = " ".join(str(e).split())
        if "TCB level" not in msg and "TCB status" not in msg:
            raise Unavailable(f"refusing to store the fetched collateral: it does not verify this TD's quote: {msg}",
                              hint=f"check [tdx] pccs_url ({s.pccs_url}) and [tdx] root_ca") from e
        # genuine collateral that rates this platform badly is still the truth: store it, the check denies
    return text, window


def _read_measurements(directory: Path) -> dict[str, str] | None:
    """RTMRs and MRTD from sysfs (Linux 6.16+), or ``None`` when the kernel does not expose them."""
    names = {"mrtd": "mrtd:sha384", **{f"rtmr{i}": f"rtmr{i}:sha384" for i in range(4)}}
    out: dict[str, str] = {}
    for key, fname in names.items():
        try:
            out[key] = (directory / fname).read_bytes()[:48].hex()
        except OSError:
            return None
    return out


def _is_guest_cpu() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " tdx_guest" in line for line in f)
    except OSError:
        return False


def status(tdx: settings.TdxSettings) -> dict[str, Any]:
    """The TDX part of ``bacon status`` (JSON-able): guest or not, provider, RTMRs against the reference.

    Never raises for an absent TDX: a host without it is reported, not refused. A root CA that cannot be
    read is reported as an error string.
    """
    out: dict[str, Any] = {"guest": False, "provider": None, "configfs_root": None, "measurements": None,
                           "source": None, "error": None}
    s = tdx
    try:
        root = s.root_ca.name
    except BaconError as e:
        out["error"] = e.message
        return out
    out["configfs_root"] = str(s.configfs_root)
    out["collateral"] = str(s.collateral)
    out["root"] = root
    out["not_compared"] = list(s.not_compared)
    out["missing_reference"] = list(s.missing_reference)
    out["opted_out"] = list(s.opted_out)
    prov = check.provider_for(s)
    try:
        out["provider"] = prov.provider_name()
    except BaconError as e:
        out["error"] = e.message
    out["guest"] = out["provider"] == "tdx_guest" or _is_guest_cpu()
    current = _read_measurements(DEFAULT_MEASUREMENTS)
    if current is not None:
        out["source"] = "sysfs"
    elif out["provider"] == "tdx_guest":
        try:
            m = verify.parse(prov.get_quote(secrets.token_bytes(REPORTDATA_SIZE))).measurements
            current = {k: m.get(k).hex() for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")}
            out["source"] = "quote (unverified)"
        except BaconError as e:
            out["error"] = e.message
    if current is not None:
        out["measurements"] = {
            k: {"current": v, "reference": s.reference[k].hex() if k in s.reference else None,
                "match": (s.reference[k].hex() == v) if k in s.reference else None}
            for k, v in current.items()
        }
    return out
