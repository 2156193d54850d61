"""The IO edge to the TPM: four operations, nothing else: read PCRs, create the attestation key, quote, and
extend a PCR (a measured launch).

Over ``device:`` (the kernel's ``/dev/tpmrm0``) and ``swtpm:`` the commands are marshalled by
:mod:`shim.attest.tpm.wire` and sent directly (:class:`WireDevice`); over ``tabrmd`` and ``mssim`` by tpm2-pytss's
ESAPI (:class:`Device`), imported only then (it costs ~110 ms and needs the native tss2 libraries). Both
give the same :class:`Quote` from the same AK. Every error (and any OS error underneath) becomes
:class:`shim.common.errors.Unavailable` with a hint, so callers fail closed with a message instead of a traceback.

The AK is a primary key created under the endorsement hierarchy (``TPM2_CreatePrimary(ENDORSEMENT)``)
with a restricted signing template: the TPM derives it from the endorsement primary seed, so the same TPM
gives the same AK every time (the baseline pins it) and a cleared or different TPM gives another one. It
is a transient object and is flushed after each quote: without a resource manager (swtpm, mssim) a leaked
handle would stay in the TPM's few object slots. (Keeping it loaded between admissions would save about
3 ms on swtpm: not worth a TPM object slot held across processes.)
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.attest.tpm.settings import Tcti, TpmSettings, format_selection
from shim.common.errors import Unavailable

PCR_BATCH = 8  # TPM2_PCR_Read returns at most 8 digests per call
AK_TEMPLATES = {"ecc256": "ecc256:ecdsa-sha256:null", "rsa2048": "rsa2048:rsassa-sha256:null"}


@dataclass(frozen=True)
class Quote:
    """What the TPM gave: the ``TPMS_ATTEST`` bytes, the marshalled ``TPMT_SIGNATURE``, the AK's public key
    (PEM and marshalled ``TPM2B_PUBLIC``), and the PCR values read right after quoting."""

    message: bytes
    signature: bytes
    ak_pem: bytes
    ak_tss: bytes
    pcrs: dict[int, bytes]


def _hint(tcti: Tcti) -> str:
    if tcti.name == "device":
        return (f"check that the TPM is enabled in firmware and {tcti.conf} exists and is readable by this user "
                "(root, or the tss group); or point [tpm] tcti at another TPM")
    if tcti.name == "tabrmd":
        return "start tpm2-abrmd (systemctl start tpm2-abrmd) or use tcti = \"device:/dev/tpmrm0\""
    return f"start the TPM simulator at {tcti.conf or 'its default address'} or fix [tpm] tcti"


def _unavailable(tcti: Tcti, what: str, e: BaseException) -> Unavailable:
    return Unavailable(f"TPM ({tcti}) error while {what}: {e}", hint=_hint(tcti))


class _Operations:
    """Read PCRs and quote, in terms of four primitives each transport provides (:class:`Device` over
    tpm2-pytss, :class:`WireDevice` over :mod:`shim.attest.tpm.wire`); any error of ``_errors`` is wrapped."""

    tcti: Tcti
    _errors: tuple[type[BaseException], ...] = (Exception,)

    def _pcr_read(self, bank: str, batch: Sequence[int]) -> tuple[list[int], list[bytes]]:
        raise NotImplementedError

    def _create_ak(self, ak: str) -> tuple[Any, bytes, bytes]:
        """(handle, AK public key PEM, marshalled TPM2B_PUBLIC)."""
        raise NotImplementedError

    def _quote(self, handle: Any, bank: str, pcrs: Sequence[int], nonce: bytes) -> tuple[bytes, bytes]:
        """(TPMS_ATTEST bytes, marshalled TPMT_SIGNATURE)."""
        raise NotImplementedError

    def _flush(self, handle: Any) -> None:
        raise NotImplementedError

    def _pcr_extend(self, pcr: int, bank: str, digest: bytes) -> None:
        raise NotImplementedError

    def extend(self, pcr: int, bank: str, digest: bytes) -> None:
        """Extend ``pcr`` in ``bank`` by ``digest``. Raises :class:`Unavailable`."""
        try:
            self._pcr_extend(pcr, bank, digest)
        except self._errors as e:
            err = _unavailable(self.tcti, f"extending PCR {pcr} ({bank})", e)
            if "locality" in str(e).lower() or "0x907" in str(e):
                err.hint = f"PCR {pcr} cannot be extended from locality 0; choose another [measure] pcr"
            raise err from e

    def read_pcrs(self, bank: str, pcrs: Sequence[int]) -> dict[int, bytes]:
        """The current values of ``pcrs`` in ``bank``. Raises :class:`Unavailable`."""
        wanted = sorted(set(pcrs))
        out: dict[int, bytes] = {}
        try:
            for i in range(0, len(wanted), PCR_BATCH):
                batch = wanted[i : i + PCR_BATCH]
                got, digests = self._pcr_read(bank, batch)
                if len(got) != len(digests) or not set(got) <= set(batch):
                    raise Unavailable(f"TPM ({self.tcti}) returned {len(digests)} values for PCRs {got}, "
                                      f"asked {batch}", hint=_hint(self.tcti))
                out.update(zip(got, digests, strict=True))
        except Unavailable:
            raise
        except self._errors as e:
            raise _unavailable(self.tcti, f"reading PCRs {format_selection(bank, wanted)}", e) from e
        missing = [p for p in wanted if p not in out]
        if missing:
            raise Unavailable(f"TPM ({self.tcti}) does not have PCR(s) {missing} in the {bank} bank",
                              hint=f"enable the {bank} PCR bank (tpm2_pcrallocate) or choose another [tpm] bank")
        return out

    def quote(self, bank: str, pcrs: Sequence[int], nonce: bytes, ak: str = "ecc256") -> Quote:
        """Create the AK under the endorsement hierarchy, quote ``pcrs`` with ``nonce``, read the PCRs, flush
        the AK. Raises :class:`Unavailable`."""
        handle = None
        try:
            handle, ak_pem, ak_tss = self._create_ak(ak)
            message, signature = self._quote(handle, bank, pcrs, nonce)
        except self._errors as e:  # wrapped at the boundary
            what = "creating the attestation key under the endorsement hierarchy" if handle is None else "quoting"
            err = _unavailable(self.tcti, what, e)
            if handle is None and "auth" in str(e).lower():
                err.hint = "the endorsement hierarchy has a password; BACON needs it empty (tpm2_changeauth -c e)"
            raise err from e
        finally:
            if handle is not None:
                with contextlib.suppress(Exception):  # best effort; the quote result already stands or fails
                    self._flush(handle)
        values = self.read_pcrs(bank, pcrs)
        return Quote(message=message, signature=signature, ak_pem=ak_pem, ak_tss=ak_tss, pcrs=values)


class Device(_Operations):
    """An open ESAPI context (tpm2-pytss). Use :func:`open_tpm`."""

    _errors = (Exception,)  # tpm2-pytss raises TSS2_Exception, cffi errors, OSError

    def __init__(self, esapi: Any, tcti: Tcti) -> None:
        self._e = esapi
        self.tcti = tcti

    def _pcr_read(self, bank: str, batch: Sequence[int]) -> tuple[list[int], list[bytes]]:
        _counter, sel_out, digests = self._e.pcr_read(format_selection(bank, batch))
        return _selected(sel_out), [bytes(d) for d in digests]

    def _create_ak(self, ak: str) -> tuple[Any, bytes, bytes]:
        from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
        from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, TPMT_PUBLIC

        attrs = (TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
                 | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT)
        template = TPM2B_PUBLIC(TPMT_PUBLIC.parse(alg=AK_TEMPLATES[ak], objectAttributes=attrs))
        handle, ak_pub, *_ = self._e.create_primary(TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.ENDORSEMENT)
        return handle, bytes(ak_pub.to_pem()), bytes(ak_pub.marshal())

    def _quote(self, handle: Any, bank: str, pcrs: Sequence[int], nonce: bytes) -> tuple[bytes, bytes]:
        from tpm2_pytss.types import TPM2B_DATA

        attest, sig = self._e.quote(handle, format_selection(bank, pcrs), TPM2B_DATA(nonce))
        return bytes(attest), bytes(sig.marshal())

    def _flush(self, handle: Any) -> None:
        self._e.flush_context(handle)

    def _pcr_extend(self, pcr: int, bank: str, digest: bytes) -> None:
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
        from tpm2_pytss.types import TPML_DIGEST_VALUES, TPMT_HA

        ha = TPMT_HA(hashAlg=getattr(TPM2_ALG, bank.upper()))
        setattr(ha.digest, bank, digest)
        self._e.pcr_extend(getattr(ESYS_TR, f"PCR{pcr}"), TPML_DIGEST_VALUES([ha]))


class WireDevice(_Operations):
    """The same operations as :class:`Device`, over :mod:`shim.attest.tpm.wire`. Use :func:`open_tpm`."""

    def __init__(self, tpm: Any, tcti: Tcti) -> None:
        from shim.attest.tpm.wire import WireError

        self._tpm = tpm
        self.tcti = tcti
        self._errors = (WireError, OSError)

    def _pcr_read(self, bank: str, batch: Sequence[int]) -> tuple[list[int], list[bytes]]:
        got, digests = self._tpm.pcr_read(bank, batch)
        return list(got), list(digests)

    def _create_ak(self, ak: str) -> tuple[Any, bytes, bytes]:
        from shim.attest.tpm.wire import public_key_pem

        handle, ak_tss = self._tpm.create_primary_ak(ak)
        try:
            return handle, public_key_pem(ak_tss), ak_tss
        except BaseException:
            with contextlib.suppress(Exception):
                self._tpm.flush(handle)
            raise

    def _quote(self, handle: Any, bank: str, pcrs: Sequence[int], nonce: bytes) -> tuple[bytes, bytes]:
        message, signature = self._tpm.quote(handle, nonce, bank, pcrs)
        return message, signature

    def _flush(self, handle: Any) -> None:
        self._tpm.flush(handle)

    def _pcr_extend(self, pcr: int, bank: str, digest: bytes) -> None:
        self._tpm.pcr_extend(pcr, bank, digest)


def _selected(sel_out: Any) -> list[int]:
    """PCR indices in a returned TPML_PCR_SELECTION, ascending."""
    out: list[int] = []
    for s in sel_out.pcrSelections[: sel_out.count]:
        bits = bytes(s.pcrSelect)[: s.sizeofSelect]
        out.extend(i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1)
    return sorted(out)


def _precheck(tcti: Tcti) -> None:
    if tcti.name != "device":
        return
    path = Path(tcti.conf)
    if not path.exists():
        raise Unavailable(f"no TPM: {path} does not exist",
                          hint="enable the TPM in firmware (and the tpm_tis/tpm_crb driver), or set [tpm] tcti")
    if not os.access(path, os.R_OK | os.W_OK):
        raise Unavailable(f"TPM {path} is not accessible to uid {os.geteuid()}",
                          hint="run bacon as root (sudo) or add the user to the tss group")


WIRE_TCTIS = ("device", "swtpm")


@contextmanager
def open_tpm(settings: TpmSettings) -> Iterator[Device | WireDevice]:
    """Open the TPM named by ``settings.tcti``. Raises :class:`Unavailable` when it cannot be reached."""
    tcti = settings.tcti
    _precheck(tcti)
    if tcti.name in WIRE_TCTIS:
        from shim.attest.tpm import wire

        try:
            tpm = wire.Tpm(wire.open_transport(tcti.name, tcti.conf))
        except (OSError, ValueError, wire.WireError) as e:
            msg = "permission denied" if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM) else str(e)
            raise Unavailable(f"cannot reach the TPM at {tcti}: {msg}", hint=_hint(tcti)) from e
        try:
            yield WireDevice(tpm, tcti)
        finally:
            with contextlib.suppress(Exception):
                tpm.close()
        return
    os.environ.setdefault("TSS2_LOG", "all+NONE")  # tss2 logs to stderr; our errors say what failed
    try:
        from tpm2_pytss import ESAPI, TCTILdr
    except ImportError as e:
        raise Unavailable(f"tpm2-pytss cannot be loaded: {e}",
                          hint="install the tpm extra (pip install 'bacon-shim[tpm]') and libtss2") from e
    try:
        esapi = ESAPI(TCTILdr(tcti.name, tcti.conf))
    except Exception as e:  # TSS2_Exception, OSError: the TPM is not there
        msg = str(e)
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
            msg = "permission denied"
        raise Unavailable(f"cannot reach the TPM at {tcti}: {msg}", hint=_hint(tcti)) from e
    try:
        yield Device(esapi, tcti)
    finally:
        with contextlib.suppress(Exception):  # closing a dead connection must not mask the real error
            esapi.close()
