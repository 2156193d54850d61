"""The fuzz targets: one function per parser, taking bytes, asserting BACON's invariant.

The invariant, everywhere: a correct result, or the parser's documented error with a message, and never
an admission that should not be. Each target lets any other exception escape (that is the bug the
fuzzer reports) and raises :class:`Finding` (an ``AssertionError``) for a wrong result:

- ``argv``: nerdctl's grammar. ``parse``/``classify`` give forward, gate or refuse, or raise
  ``UsageError``; what is forwarded or gated re-serializes (also with the gate's pinned image and image
  mounts) to an argv that parses to the same invocation with the same decision.
- ``reference``: an image reference parses or raises ``UsageError``; what parses normalizes and pins to
  references that parse back to the same repository.
- ``oci``: manifests, indexes and image configs parse or raise ``IntegrityError``; a config's ``policy``
  label admits only when it is exactly ``High``, ``Mid`` or ``Low`` (else ``Denied``).
- ``signature``: classic ``.sig`` material or a Sigstore bundle is either ``Denied`` or verified; a
  verification is only ever of a message the fuzz key really signed, claiming the digest admitted.
- ``tpm``: TPMS_ATTEST, TPMT_SIGNATURE and the AK's key parse or raise ``QuoteError``; a quote verifies
  only when it is the real vector's, byte for byte; the ``tpm`` check's decision raises only ``Denied``.
- ``eventlog`` and ``ccel``: parse, replay and explain, or ``EventLogError``.
- ``tdx``: a TD quote parses or is ``Denied``; appraised with the real collateral it passes only when
  its signed part is the real quote's (zero padding after it may vary); a mutated collateral is
  ``Denied`` or passes for the real quote only.
- ``simpletoml``: differential. :func:`shim.common.simpletoml.loads` returns ``None`` or exactly what
  ``tomllib.loads`` returns (same types, same key order), and ``None`` whenever tomllib raises.

Inputs are bytes so that one function serves the atheris harnesses, the saved corpus replay and the
hypothesis properties. Seeds and keys are fixed: everything here is deterministic.
"""

from __future__ import annotations

import base64
import contextlib
import json
import struct
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from shim.admission import levels
from shim.attest.tdx import ccel
from shim.attest.tdx import settings as tdx_settings
from shim.attest.tdx import verify as tdx_verify
from shim.attest.tpm import attest, eventlog
from shim.attest.tpm import baseline as tpm_baseline
from shim.attest.tpm import check as tpm_check
from shim.attest.tpm.device import Quote
from shim.attest.tpm.settings import TpmSettings
from shim.common import simpletoml
from shim.common.errors import BaconError, Denied, IntegrityError, UsageError
from shim.images import oci, platforms
from shim.images import reference as nref
from shim.trust import signatures, signing
from shim.trust.keys import PublicKey, SigningKey
from shim.wrapper import argv as nargv
from shim.wrapper.nerdctl_env import Target

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CORPUS = Path(__file__).resolve().parent / "corpus"
SEP = b"\x00\xff\x00"  # separates the parts of one input (a manifest and its payload, a quote and its signature)
PIN = "sha256:" + "5e" * 32  # the digest the argv target pins images to, as the gate does


class Finding(AssertionError):
    """The invariant does not hold: a wrong result (not merely an error)."""


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise Finding(what)


def text(data: bytes) -> str:
    """Bytes as the OS hands them to Python (argv, file names): UTF-8, undecodable bytes escaped."""
    return data.decode("utf-8", "surrogateescape")


# --- argv ---------------------------------------------------------------------------------------------


def argv(data: bytes) -> None:
    """NUL-separated tokens (argv cannot hold NUL) as a nerdctl command line."""
    check_argv([text(t) for t in data.split(b"\x00")] if data else [])


def _gate_reads(inv: nargv.Invocation) -> None:
    """Every value the gate reads from a parse: only a BaconError may come out."""
    for name in ("command", "help", "image", "container_args", "containers", "mounts", "mount_images",
                 "address", "namespace", "snapshotter", "insecure_registry", "hosts_dir", "platforms",
                 "platform", "all_platforms", "pull_policy", "name", "labels", "label_files"):
        getattr(inv, name)
    if inv.platform:
        platforms.parse(inv.platform, platforms.Host("linux", "amd64"))


def check_argv(tokens: Sequence[str]) -> None:
    try:
        inv = nargv.parse(tokens)
        decision = nargv.classify(inv)
    except UsageError as e:
        _require(bool(e.message), "UsageError without a message")
        return
    _require(decision.kind in ("forward", "gate", "refuse") and bool(decision.reason), f"bad decision {decision}")
    with contextlib.suppress(BaconError):
        _gate_reads(inv)
    if decision.kind == "refuse":
        return
    out = nargv.serialize(inv)
    again = nargv.parse(out)
    _require(again == inv, f"{list(tokens)!r} forwards as {out!r}, which parses to something else")
    _require(nargv.classify(again).kind == decision.kind, f"{out!r} is decided differently")
    _require(nargv.serialize(again) == out, f"{out!r} does not serialize to itself")
    if decision.kind == "gate":
        _check_pinned(inv)


def _check_pinned(inv: nargv.Invocation) -> None:
    """The argv the gate forwards (``plans.rewrite``: pinned image and mounts, explicit address and
    namespace, flags set and added) parses back to the same command with exactly those changes."""
    from shim.admission import plans  # grpc and friends: loaded once, on the first gated line

    target = Target(address="/run/containerd/containerd.sock", namespace="default")
    image = nref.pinned(inv.image, PIN) if inv.image is not None else None
    mounts = {src: nref.pinned(src, PIN) for src in inv.mount_images}
    if inv.command in ("run", "create"):
        out = plans.rewrite(inv, target, image=image, mounts=mounts, set_flags={"pull": "never"},
                            add_flags=[("label", "bacon/admission=token")])
    else:
        out = plans.rewrite(inv, target, image=image)
    got = nargv.parse(out)
    _require(nargv.classify(got).kind == "gate", f"the pinned argv {out!r} is not gated any more")
    _require(got.path == inv.path and got.command == inv.command, f"{out!r} runs another command")
    _require(got.image == image, f"{out!r} runs image {got.image!r}, not the pinned {image!r}")
    _require(got.mount_images == tuple(mounts[s] for s in inv.mount_images), f"{out!r} mounts other images")
    _require(got.container_args == inv.container_args, f"{out!r} passes other container arguments")
    _require(got.containers == inv.containers, f"{out!r} starts other containers")
    _require((got.address, got.namespace) == (target.address, target.namespace), f"{out!r} talks elsewhere")
    if inv.command in ("run", "create"):
        _require(got.pull_policy == "never", f"{out!r} may pull")
        _require(got.flag("rootfs") != "true", f"{out!r} is a --rootfs run")


# --- image references -----------------------------------------------------------------------------------


def reference(data: bytes) -> None:
    check_reference(text(data))


def check_reference(raw: str) -> None:
    special = nref.special_kind(raw)
    nref.is_image_id(raw)
    prefix = nref.digest_prefix(raw)
    _require(prefix is None or prefix.startswith("sha256:"), f"digest prefix {prefix!r}")
    try:
        ref = nref.parse(raw)
    except UsageError as e:
        _require(special is None and bool(e.message), f"{raw!r}: special reference refused as invalid")
        return
    _require(ref.raw == raw and ref.kind == (special or ref.kind), f"{raw!r} parsed as {ref}")
    if ref.is_special:
        try:
            nref.normalize(raw)
        except UsageError:
            return
        raise Finding(f"special reference {raw!r} normalized")
    if ref.kind == "digest":
        _require(nref.parse(str(ref)) == replace(ref, raw=str(ref)), f"digest {raw!r} does not re-parse")
        _require(nref.pinned(ref, PIN) == PIN, f"digest {raw!r} pins to something else")
        return
    _require(ref.kind == "name" and bool(ref.path) and ref.path == ref.path.lower(), f"{raw!r}: bad name {ref}")
    normalized = str(ref)
    again = nref.parse(normalized)
    _require((again.kind, again.name, again.tag, again.digest) == (ref.kind, ref.name, ref.tag, ref.digest),
             f"{raw!r} normalizes to {normalized!r}, which parses to {again}")
    _require(nref.normalize(normalized) == normalized, f"normalizing {normalized!r} is not idempotent")
    pin = nref.pinned(ref, PIN)
    p = nref.parse(pin)
    _require((p.kind, p.name, p.digest, p.explicit_tag) == ("name", ref.name, PIN, ""),
             f"{raw!r} pins to {pin!r}, which parses to {p}")
    # Not checked: that the familiar name reads back as the same repository. Like Docker's FamiliarName it
    # does not ("docker.io/a.b/c" → "a.b/c", a registry; "bafybeay5fefb:x" → "bafybeay5fefb", an IPFS
    # CID: both found by atheris), and no decision uses it.
    _require(bool(ref.familiar_name), f"{raw!r} has no familiar name")


# --- OCI manifests, indexes, configs, levels ----------------------------------------------------------------


def oci_documents(data: bytes) -> None:
    """One document read as every kind the gate reads."""
    with contextlib.suppress(IntegrityError):
        oci.media_type_of(data, oci.MEDIA_OCI_MANIFEST)
    try:
        m = oci.parse_manifest(data)
    except IntegrityError:
        pass
    else:
        for d in (m.config, *m.layers, *([m.subject] if m.subject else [])):
            _check_descriptor(d)
        _require(all(isinstance(k, str) and isinstance(v, str) for k, v in m.annotations.items()),
                 "manifest annotations are not strings")
    try:
        idx = oci.parse_index(data)
    except IntegrityError:
        pass
    else:
        for d in idx.manifests:
            _check_descriptor(d)
        host = platforms.Host("linux", "amd64")
        matcher = platforms.only_strict(platforms.default_spec(host), host)
        ordered = platforms.sort_entries(idx.manifests, matcher)
        _require(all(d in idx.manifests for d in ordered), "sorted an entry that is not in the index")
        _require(all(d.platform is None or matcher.match(d.platform) for d in ordered), "kept a foreign platform")
        nulls = [i for i, d in enumerate(ordered) if d.platform is None]
        _require(nulls == list(range(len(ordered) - len(nulls), len(ordered))), "a platform-less entry sorts early")
    check_config(data)


def _check_descriptor(d: oci.Descriptor) -> None:
    _require(oci.is_digest(d.digest) and isinstance(d.size, int) and not isinstance(d.size, bool) and d.size >= 0,
             f"bad descriptor {d}")
    _require(all(isinstance(k, str) and isinstance(v, str) for k, v in d.annotations.items()),
             f"descriptor annotations {d.annotations!r}")


class _GoObject(list[tuple[str, object]]):
    """A JSON object as Go's decoder sees it: every key, in order, duplicates kept."""


def _no_constant(name: str) -> object:
    raise ValueError(f"Go's JSON has no {name}")


def go_policy_label(data: bytes) -> tuple[bool, str | None]:
    """A model of how containerd and nerdctl (Go's encoding/json into ``ocispec.Image``) read the config's
    ``policy`` label: (decodes at all, the label or None). Struct fields match keys case-insensitively
    (``ſ`` folds to ``s``, the Kelvin sign to ``k``) and every matching key is decoded in order, later
    values overwriting and maps merging; ``null`` leaves a struct alone and sets a map to nil."""
    try:
        doc = json.loads(data, object_pairs_hook=_GoObject, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return False, None

    def fold(key: str) -> str:
        return "".join(c.lower() if c.isascii() else {"\u017f": "s", "\u212a": "k"}.get(c, c) for c in key)

    if not isinstance(doc, _GoObject):
        return False, None
    labels: dict[str, object] | None = None
    for key, cfg in doc:
        if fold(key) != "config" or cfg is None:
            continue
        if not isinstance(cfg, _GoObject):
            return False, None
        for k2, lab in cfg:
            if fold(k2) != "labels":
                continue
            if lab is None:
                labels = None
            elif not isinstance(lab, _GoObject) or not all(isinstance(v, str) for _, v in lab):
                return False, None
            else:
                labels = labels if labels is not None else {}
                labels.update(lab)
    value = (labels or {}).get(levels.LABEL)
    return True, value if isinstance(value, str) else None


def check_config(data: bytes, default: str = "High") -> str | None:
    """The level the gate gives an image config, or ``None`` when it is refused (IntegrityError, Denied).
    When it gives one, containerd and nerdctl must read the same ``policy`` label (:func:`go_policy_label`)."""
    try:
        cfg = oci.parse_config(data)
    except IntegrityError:
        return None
    decodes, go_label = go_policy_label(data)
    if decodes:
        _require(go_label == cfg.labels.get(levels.LABEL),
                 f"BACON reads policy={cfg.labels.get(levels.LABEL)!r}, containerd reads {go_label!r}")
    _require(all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.labels.items()), "labels not strings")
    try:
        got = levels.image_level(dict(cfg.labels), default)
    except Denied as e:
        lookalike = any(k != levels.LABEL and levels._looks_like_label(k) for k in cfg.labels)
        _require(e.check == "level" and (levels.LABEL in cfg.labels or lookalike),
                 f"denied without a bad label: {e.message}")
        _require(lookalike or cfg.labels[levels.LABEL] not in levels.RANK, "a valid label was denied")
        return None
    if levels.LABEL in cfg.labels:
        _require(got.from_label and got.level == cfg.labels[levels.LABEL] and got.level in ("High", "Mid", "Low"),
                 f"label {cfg.labels[levels.LABEL]!r} gave level {got}")
    else:
        _require(not got.from_label and got.level == default, f"no label gave level {got}")
    return got.level


# --- signatures ---------------------------------------------------------------------------------------------

SIG_DIGEST = "sha256:" + "d1" * 32
SIG_REPO = "127.0.0.1:5000/fuzz/app"
CLASSIC_PAYLOAD = signatures.classic_payload(SIG_DIGEST, SIG_REPO)
STATEMENT = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                        "subject": [{"name": "image", "digest": {"sha256": SIG_DIGEST.removeprefix("sha256:")}}],
                        "predicateType": signatures.COSIGN_SIGN_PREDICATE, "predicate": {}},
                       separators=(",", ":")).encode()


@cache
def fuzz_signing_key() -> SigningKey:
    """A fixed P-256 key: the saved corpus holds signatures it made."""
    return SigningKey(name="fuzz.key", key_type="ecdsa-p256", key=ec.derive_private_key(0xBAC0F022, ec.SECP256R1()))


@cache
def fuzz_trusted() -> tuple[PublicKey, ...]:
    from shim.trust.keys import load_public_key

    return (load_public_key(fuzz_signing_key().public_pem(), "fuzz.pub"),)


def signature(data: bytes) -> None:
    """First byte 0 mod 3: classic (``.sig`` manifest SEP payload); 1: one Sigstore bundle; 2: a referrers
    index (the registry side picks bundle descriptors from it)."""
    if not data:
        return
    body = data[1:]
    if data[0] % 3 == 0:
        manifest, _, payload = body.partition(SEP)
        check_classic(manifest, payload)
    elif data[0] % 3 == 1:
        check_bundle(body)
    else:
        check_referrers(body)


def check_referrers(index: bytes) -> None:
    from shim.trust import registry_signatures

    try:
        found = registry_signatures._bundle_descriptors(index, SIG_DIGEST, signatures.DEFAULT_LIMITS)
    except IntegrityError:
        return
    _require(all(oci.is_digest(d) for d in found), f"bundle descriptors {found!r}")


def check_classic(manifest: bytes, payload: bytes) -> None:
    blobs = {oci.sha256_digest(payload): payload}
    try:
        v = signatures.verify([signatures.Material(SIG_DIGEST, manifest, blobs)], fuzz_trusted())
    except Denied as e:
        _require(e.check == "signature" and bool(e.message), f"denied oddly: {e}")
    else:
        _require(v.digest == SIG_DIGEST and v.format == signatures.CLASSIC, f"verified {v}")
        _require(payload == CLASSIC_PAYLOAD, f"a payload the key never signed verified: {payload[:200]!r}")
    with contextlib.suppress(IntegrityError):
        signing.signature_manifest(manifest, payload, b"\x30\x00")


def check_bundle(bundle: bytes) -> None:
    try:
        v = signatures.verify([signatures.Material(SIG_DIGEST, bundles=(bundle,))], fuzz_trusted())
    except Denied as e:
        _require(e.check == "signature" and bool(e.message), f"denied oddly: {e}")
        return
    _require(v.digest == SIG_DIGEST and v.format == signatures.BUNDLE, f"verified {v}")
    payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"], validate=True)
    _require(payload == STATEMENT, f"a statement the key never signed verified: {payload[:200]!r}")


# --- TPM quotes ---------------------------------------------------------------------------------------------


@cache
def tpm_evidence() -> tuple[bytes, bytes, bytes, dict[int, bytes], bytes]:
    """The real quote: (TPMS_ATTEST, TPMT_SIGNATURE, AK DER, PCRs, nonce)."""
    doc = json.loads((VECTORS / "tpm" / "tpm_evidence.json").read_text())
    q = doc["tpm_quote"]
    message = base64.b64decode(q["message"])
    pcrs = {i: bytes.fromhex(v) for i, v in enumerate(q["pcrs"])}
    return (message, base64.b64decode(q["signature"]), base64.b64decode(doc["ak_public"]), pcrs,
            attest.parse_attest(message).extra_data)


def tpm(data: bytes) -> None:
    """TPMS_ATTEST SEP TPMT_SIGNATURE [SEP AK public key (DER or PEM)]."""
    parts = data.split(SEP, 2)
    message, sig = parts[0], parts[1] if len(parts) > 1 else b""
    ak = parts[2] if len(parts) > 2 else None
    check_tpm(message, sig, ak)


def check_tpm(message: bytes, sig: bytes, ak: bytes | None) -> None:
    real_msg, _real_sig, real_ak, pcrs, nonce = tpm_evidence()
    for parse in (attest.parse_attest, attest.parse_signature):
        with contextlib.suppress(attest.QuoteError):
            parse(message if parse is attest.parse_attest else sig)
    with contextlib.suppress(attest.QuoteError):  # tpm2-tools' serialized PCR file
        attest.parse_serialized_pcrs(message)
    key = attest.load_public_key(real_ak)
    if ak is not None:
        with contextlib.suppress(attest.QuoteError):
            attest.load_public_key(ak)
    try:
        attest.verify_quote(message, sig, key, nonce=nonce, pcrs=pcrs)
    except attest.QuoteError as e:
        _require(bool(str(e)), "QuoteError without a message")
    else:
        _require(message == real_msg, f"a TPMS_ATTEST the AK never signed verified: {message.hex()}")
    # The check's decision, as the gate calls it: only Denied, and a pass only for the real quote.
    settings = TpmSettings(pcrs=tuple(sorted(pcrs)), bank="sha256", eventlog=None)
    real_key_pem = attest.public_key_pem(key)
    base = tpm_baseline.Baseline(bank="sha256", pcrs=pcrs, recorded_at="2026-01-01T00:00:00Z", tcti="fuzz",
                                 ak_fingerprint=attest.fingerprint(key), ak_pem=real_key_pem)
    quote = Quote(message=message, signature=sig, ak_pem=ak if ak is not None else real_key_pem.encode(),
                  ak_tss=b"", pcrs=pcrs)
    try:
        tpm_check.judge_quote(settings, base, quote, nonce)
    except Denied as e:
        _require(e.check == "tpm" and bool(e.message), f"denied oddly: {e}")
    else:
        _require(message == real_msg and attest.parse_signature(sig).scheme == "rsassa",
                 "the tpm check passed a quote the AK never signed")


# --- event logs ---------------------------------------------------------------------------------------------


@cache
def tpm_reference_log() -> eventlog.EventLog:
    return eventlog.parse((VECTORS / "tpm" / "event-sd-boot-fedora37.bin").read_bytes())


def tpm_eventlog(data: bytes) -> None:
    try:
        log = eventlog.parse(data)
    except eventlog.EventLogError as e:
        _require(bool(str(e)), "EventLogError without a message")
        return
    ref = tpm_reference_log()
    for bank in log.banks:
        try:
            values = eventlog.replay(log, bank)
        except eventlog.EventLogError:
            continue
        for pcr, value in values.items():
            _require(len(value) == log.banks[bank], f"PCR {pcr} replayed to {len(value)} bytes in {bank}")
            reference = ([(ev.event_type, ev.digests[bank].hex()) for ev in eventlog.measured(ref, pcr, bank)]
                         if bank in ref.banks else None)
            for r in (None, reference):
                ex = eventlog.explain(log, pcr, value, bank, r)
                _require(ex.log_matches, f"PCR {pcr} does not replay to its own replay")
                ex.lines()
    for event in log.events[:64]:
        event.describe()


@cache
def ccel_reference() -> tuple[ccel.Event, ...]:
    return tuple(ccel.parse((VECTORS / "tdx" / "ccel_data.dat").read_bytes()))


def ccel_log(data: bytes) -> None:
    try:
        events = ccel.parse(data)
    except ccel.EventLogError as e:
        _require(bool(str(e)), "EventLogError without a message")
        return
    regs = ccel.replay(events)
    _require(len(regs) == ccel.RTMR_COUNT and all(len(r) == ccel.SHA384_SIZE for r in regs), "bad replay")
    for i, value in enumerate(regs):
        for ref in (None, ccel_reference()):
            ex = ccel.explain(events, i, value, ref)
            _require(ex.log_matches_quote, f"RTMR{i} does not replay to its own replay")
            ex.lines()


# --- TD quotes ----------------------------------------------------------------------------------------------

TDX_NOW = 1750329147 + 3600  # inside the real collateral's window


@cache
def tdx_real() -> tuple[bytes, str, tdx_settings.TdxSettings]:
    d = VECTORS / "tdx"
    return (d / "tdx_quote").read_bytes(), (d / "tdx_quote_collateral.json").read_text(), tdx_settings.parse({})


def _signed_part(quote: bytes) -> tuple[bytes, bytes] | None:
    """(header + body + signature data, what follows), or None when the lengths do not tie up."""
    try:
        version = struct.unpack_from("<H", quote, 0)[0]
        body_end = 48 + 584 if version == 4 else 54 + struct.unpack_from("<I", quote, 50)[0]
        (sig_len,) = struct.unpack_from("<I", quote, body_end)
    except struct.error:
        return None
    end = body_end + 4 + sig_len
    return quote[:end], quote[end:]


def tdx(data: bytes) -> None:
    """First byte even: the rest is a TD quote (appraised with the real collateral); odd: the rest is a
    collateral document (the real quote appraised with it)."""
    if not data:
        return
    real_quote, _real_collateral, intel = tdx_real()
    if data[0] % 2 == 0:
        check_td_quote(data[1:])
        return
    try:
        collateral = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        return  # collateral.load refuses it (Unavailable) before anything parses it
    try:
        tdx_verify.appraise(real_quote, collateral, TDX_NOW, intel)
    except Denied as e:
        _require(e.check == "tdx" and bool(e.message), f"denied oddly: {e}")


def check_td_quote(quote: bytes) -> None:
    real_quote, real_collateral, intel = tdx_real()
    try:
        tdx_verify.parse(quote)
    except Denied as e:
        _require(e.check == "tdx" and bool(e.message), f"denied oddly: {e}")
    try:
        tdx_verify.appraise(quote, real_collateral, TDX_NOW, intel)
    except Denied as e:
        _require(e.check == "tdx" and bool(e.message), f"denied oddly: {e}")
        return
    mine, real = _signed_part(quote), _signed_part(real_quote)
    _require(mine is not None and real is not None and mine[0] == real[0] and not any(mine[1]),
             "a TD quote other than the real one was admitted")


# --- the configuration's plain TOML -------------------------------------------------------------------------


def plain_toml(data: bytes) -> None:
    """The text (UTF-8, undecodable bytes escaped) read by :mod:`shim.common.simpletoml` and by tomllib."""
    check_simpletoml(text(data))


def same_toml(a: object, b: object) -> bool:
    """Equal, and of the same types throughout (``True == 1`` does not count) with keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_toml(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_toml, a, b))
    return a == b


def check_simpletoml(doc: str) -> dict[str, Any] | None:
    """``simpletoml.loads(doc)``, checked against ``tomllib.loads(doc)``: ``None`` or the same table, and
    ``None`` whenever tomllib raises (TOMLDecodeError, but also ValueError for a 5000-digit integer or
    RecursionError for deep nesting: what tomllib refuses in any way is not for simpletoml to accept)."""
    got = simpletoml.loads(doc)
    try:
        want = tomllib.loads(doc)
    except Exception as e:  # noqa: BLE001 -- see above
        _require(got is None, f"{doc!r}: simpletoml reads {got!r}, tomllib raises {e!r}")
        return None
    _require(got is None or same_toml(got, want), f"{doc!r}: simpletoml reads {got!r}, tomllib {want!r}")
    return got


TARGETS: dict[str, Callable[[bytes], None]] = {
    "argv": argv,
    "reference": reference,
    "oci": oci_documents,
    "signature": signature,
    "tpm": tpm,
    "eventlog": tpm_eventlog,
    "ccel": ccel_log,
    "tdx": tdx,
    "simpletoml": plain_toml,
}


def corpus(name: str) -> list[Path]:
    """The saved corpus of target ``name``, sorted."""
    return sorted(p for p in (CORPUS / name).iterdir() if p.is_file())
