"""The IO edge to the TPM: four operations, nothing else: read PCRs, create the attestation key, quote, and
extend a PCR (a measured launch). Every TCTI (``device:`` /dev/tpmrm0, ``swtpm:``, ``mssim:``, ``tabrmd``)
goes through tpm2-pytss's ESAPI, imported only here and only when a TPM is used (it costs about 75 ms and
needs the native tss2 libraries; ``bacon serve`` pays it once, before it forks its workers).

Quotes and PCR reads run in one **salted HMAC session** (docs/tpm.md says what it protects against): the
session is salted to the TPM's endorsement key (the TCG default ECC P-256 EK template, created from the
endorsement seed, the key an EK certificate certifies), so its key is known only to this process and to
the TPM that holds that EK; ESAPI then checks the TPM's HMAC on every response in it. ``TPM2_Quote`` also
uses parameter encryption (AES-128-CFB both ways: the nonce sent, the attest structure returned);
``TPM2_PCR_Read`` has no parameter that can be encrypted, so its session is an audit session (the response
is HMAC'd: the PCR values cannot be changed on the way). The session is started on the first command that
needs it. With the EK the baseline pinned (:func:`open_tpm`'s ``ek``), the EK's name is compared with the
pinned one before the salt is encrypted to it (:mod:`shim.attest.tpm.ek`): a party that answers in the
TPM's place with its own EK is refused there, instead of being handed the session key.

Two commands use the empty password instead, because the session adds nothing to what is checked anyway
and each command in it costs about 2.5 ms of CPU in tss2-esys: creating the AK (its public key is pinned
by the baseline and checked by the quote's signature: a changed one is a denial) and ``TPM2_PCR_Extend``
(a measured launch, whose budget is 5 ms: a digest changed on the way cannot make another launch look
admitted, the PCR would then not replay from the launch log, which ``bacon evidence verify`` checks,
docs/measured-launches.md).

The AK is a primary key created under the endorsement hierarchy (``TPM2_CreatePrimary(ENDORSEMENT)``)
with a restricted signing template: the TPM derives it from the endorsement primary seed, so the same TPM
gives the same AK every time (the baseline pins it) and a cleared or different TPM gives another one. The
EK is flushed as soon as the session is started, the AK after its quote, the session when the device
closes: without a resource manager (swtpm, mssim) a leaked handle would stay in the TPM's few slots.

tpm2-tss waits for a TPM without a deadline; every caller bounds the work with :mod:`shim.common.deadline`. Every
error (tpm2-pytss's ``TSS2_Exception``, an OS error, a response whose HMAC does not verify) becomes
:class:`shim.common.errors.Unavailable` with a hint, so callers fail closed with a message instead of a traceback.
The quote itself is verified in software (:mod:`shim.attest.tpm.attest`), never trusted because ESAPI took it.
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

from shim.attest.tpm import ek as ek_pin
from shim.attest.tpm.settings import Tcti, TpmSettings, format_selection
from shim.common.errors import BaconError, Unavailable, missing_extra

PCR_BATCH = 8  # TPM2_PCR_Read returns at most 8 digests per call
AK_TEMPLATES = {"ecc256": "ecc256:ecdsa-sha256:null", "rsa2048": "rsa2048:rsassa-sha256:null"}
EK_TEMPLATE = "EK-ECC256"  # TCG EK Credential Profile, low range: ECC NIST P-256, AES-128-CFB
TSS_HINT = ("install the tss2 libraries and BACON's 'tpm' extra: apt-get install libtss2-dev, then in BACON's "
            "checkout pip install '.[tpm]' (the Debian package bundles it: sudo apt install --reinstall bacon)")


@dataclass(frozen=True)
class Quote:
    """What the TPM gave: the ``TPMS_ATTEST`` bytes, the marshalled ``TPMT_SIGNATURE``, the AK's public key
    (PEM and marshalled ``TPM2B_PUBLIC``), the PCR values read right after quoting, and the endorsement key
    the quote's session was salted to (None: not known, e.g. a quote built by hand)."""

    message: bytes
    signature: bytes
    ak_pem: bytes
    ak_tss: bytes
    pcrs: dict[int, bytes]
    ek: ek_pin.EkIdentity | None = None


def load_tss() -> Any:
    """The ``tpm2_pytss`` package, imported (with the parts this module uses). Raises :class:`Unavailable`
    with the line that installs it when it (or the native library under it) is missing."""
    os.environ.setdefault("TSS2_LOG", "all+NONE")  # tss2 logs to stderr; our errors say what failed
    try:
        import tpm2_pytss
        import tpm2_pytss.utils
    except ModuleNotFoundError as e:
        raise (missing_extra(e) or Unavailable(f"tpm2-pytss cannot be loaded: {e}", hint=TSS_HINT)) from e
    except (ImportError, OSError) as e:  # the extension is there, a tss2 shared library is not
        raise Unavailable(f"tpm2-pytss cannot be loaded: {e}", hint=TSS_HINT) from e
    return tpm2_pytss


def _hint(tcti: Tcti) -> str:
    if tcti.name == "device":
        return (f"check that the TPM is enabled in firmware and {tcti.conf} exists and is readable by this user "
                "(root, or the tss group); or point [tpm] tcti at another TPM")
    if tcti.name == "tabrmd":
        return "start tpm2-abrmd (systemctl start tpm2-abrmd) or use tcti = \"device:/dev/tpmrm0\""
    return f"start the TPM simulator at {tcti.conf or 'its default address'} or fix [tpm] tcti"


ESYS_RC_RSP_AUTH_FAILED = 0x7001B  # tpm2-tss: the response's HMAC does not verify


def _unavailable(tcti: Tcti, what: str, e: BaseException) -> Unavailable:
    if getattr(e, "rc", None) == ESYS_RC_RSP_AUTH_FAILED:
        return Unavailable(f"TPM ({tcti}) error while {what}: the response's HMAC does not verify: something "
                           "between BACON and the TPM changed it", hint="check what runs between BACON and the TPM "
                           "([tpm] tcti: a resource manager, a proxy, the bus); retry")
    return Unavailable(f"TPM ({tcti}) error while {what}: {e}", hint=_hint(tcti))


class Device:
    """An open ESAPI context over one TCTI, with its salted session. Use :func:`open_tpm`.

    ``pinned_ek``: the endorsement key the baseline pinned; the session is then started only when the TPM
    presents that EK (:class:`shim.attest.tpm.ek.EkMismatch` otherwise, before the salt is sent). ``ek``:
    the EK the session is salted to, once it is started."""

    def __init__(self, esapi: Any, tcti: Tcti, connection: Any = None,
                 pinned_ek: ek_pin.EkIdentity | None = None) -> None:
        self._e = esapi
        self.tcti = tcti
        self._connection = connection  # the TCTI, for flushing after the context failed (:meth:`close`)
        self._tss = load_tss()
        self._session: Any = None
        self.pinned_ek = pinned_ek
        self.ek: ek_pin.EkIdentity | None = None
        self._stranded: list[int] = []  # TPM handles a failed flush left loaded

    # --- the session -----------------------------------------------------------------------------------

    def _start_session(self) -> Any:
        """Create the EK, compare it with the pinned one, and start the HMAC session salted to it (once per
        device). Raises :class:`shim.attest.tpm.ek.EkMismatch` (another EK than the pinned one)."""
        if self._session is not None:
            return self._session
        c, t = self._tss.constants, self._tss.types

        def no_nv(index: Any) -> bytes:  # the default template; no NV reads (no EK certificate is read)
            raise self._tss.utils.NoSuchIndex(index)

        _cert, template = self._tss.utils.create_ek_template(EK_TEMPLATE, no_nv)
        ek, ek_public, *_ = self._e.create_primary(t.TPM2B_SENSITIVE_CREATE(), template, c.ESYS_TR.ENDORSEMENT)
        try:
            # ESAPI encrypts the salt to this public area (it keeps the one the answer carried, after checking
            # the answer's name against it): its name is what is compared, before the salt is sent
            public = bytes(ek_public.publicArea.marshal())
            name = ek_pin.name_of(public)
            ek_pin.judge(self.pinned_ek, name, str(self.tcti))
            # the same name is the same public area: the pinned record stands for it (no PEM to make, ~0.25 ms)
            self.ek = self.pinned_ek or ek_pin.identity(public, bytes(ek_public.to_pem()).decode())
            sym = t.TPMT_SYM_DEF(algorithm=c.TPM2_ALG.AES)
            sym.keyBits.aes = 128
            sym.mode.aes = c.TPM2_ALG.CFB
            self._session = self._e.start_auth_session(ek, c.ESYS_TR.NONE, c.TPM2_SE.HMAC, sym, c.TPM2_ALG.SHA256)
        finally:  # the salt is in; the EK is not needed any more (one object slot less, one less to leak)
            self._flush(ek)
        return self._session

    def _using(self, *attrs: str) -> Any:
        """The session, its attributes set for the next command (``DECRYPT``: the first command parameter
        is encrypted; ``ENCRYPT``: the first response parameter; ``AUDIT``: a command that needs no
        authorization still gets an HMAC'd response)."""
        session = self._start_session()
        flags = self._tss.constants.TPMA_SESSION
        value = flags.CONTINUESESSION
        for a in attrs:
            value |= getattr(flags, a)
        self._e.trsess_set_attributes(session, value)
        return session

    def _flush(self, handle: Any) -> None:
        """Flush ``handle``; when this context cannot (ESAPI refuses every command after a response that
        failed its checks), remember its TPM handle for :meth:`close`."""
        try:
            tpm_handle = int(self._e.tr_get_tpm_handle(handle))
        except Exception:  # noqa: BLE001 - not a handle of this context any more: nothing to flush
            return
        try:
            self._e.flush_context(handle)
        except Exception:  # noqa: BLE001 - best effort, retried in close()
            self._stranded.append(tpm_handle)

    def close(self) -> None:
        """Flush the session, and what a failed context could not flush through a fresh context over the
        same connection: without a resource manager (swtpm, mssim) nothing else would. Best effort: a dead
        connection must not mask the real error."""
        if self._session is not None:
            self._flush(self._session)
            self._session = None
        if not self._stranded or self._connection is None:
            return
        with contextlib.suppress(Exception), contextlib.closing(self._tss.ESAPI(self._connection)) as fresh:
            for tpm_handle in self._stranded:
                with contextlib.suppress(Exception):
                    fresh.flush_context(fresh.tr_from_tpmpublic(tpm_handle))
        self._stranded = []

    # --- the operations --------------------------------------------------------------------------------

    def extend(self, pcr: int, bank: str, digest: bytes) -> None:
        """Extend ``pcr`` in ``bank`` by ``digest``. Raises :class:`Unavailable`."""
        c, t = self._tss.constants, self._tss.types
        try:
            ha = t.TPMT_HA(hashAlg=getattr(c.TPM2_ALG, bank.upper()))
            setattr(ha.digest, bank, digest)
            # the PCR's empty password, not the session: see the module docstring
            self._e.pcr_extend(getattr(c.ESYS_TR, f"PCR{pcr}"), t.TPML_DIGEST_VALUES([ha]))
        except Exception as e:  # TSS2_Exception, cffi errors, OSError
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
                _counter, sel_out, digests = self._e.pcr_read(format_selection(bank, batch),
                                                              session1=self._using("AUDIT"))
                got = selected(bank, sel_out)
                if len(got) != len(digests) or not set(got) <= set(batch):
                    raise Unavailable(f"TPM ({self.tcti}) returned {len(digests)} values for PCRs {got}, "
                                      f"asked {batch}", hint=_hint(self.tcti))
                out.update(zip(got, (bytes(d) for d in digests), strict=True))
        except BaconError:  # Unavailable, or ek.EkMismatch
            raise
        except Exception as e:
            raise _unavailable(self.tcti, f"reading PCRs {format_selection(bank, wanted)}", e) from e
        missing = [p for p in wanted if p not in out]
        if missing:
            raise Unavailable(f"TPM ({self.tcti}) does not have PCR(s) {missing} in the {bank} bank",
                              hint=f"enable the {bank} PCR bank (tpm2_pcrallocate) or choose another [tpm] bank")
        return out

    def quote(self, bank: str, pcrs: Sequence[int], nonce: bytes, ak: str = "ecc256", *, read: bool = True) -> Quote:
        """Create the AK under the endorsement hierarchy, quote ``pcrs`` with ``nonce``, flush the AK, read
        the PCRs (``read`` False: the quote's ``pcrs`` is empty; the caller knows what to expect, see
        :func:`shim.attest.tpm.check.fresh_quote`). Raises :class:`Unavailable`."""
        c, t = self._tss.constants, self._tss.types
        handle = None
        what = "starting the session (creating the endorsement key)"
        try:
            o = c.TPMA_OBJECT
            attrs = (o.FIXEDTPM | o.FIXEDPARENT | o.SENSITIVEDATAORIGIN | o.USERWITHAUTH | o.RESTRICTED
                     | o.SIGN_ENCRYPT)
            template = t.TPM2B_PUBLIC(t.TPMT_PUBLIC.parse(alg=AK_TEMPLATES[ak], objectAttributes=attrs))
            self._start_session()  # first: the EK is flushed before the AK takes a slot
            what = "creating the attestation key under the endorsement hierarchy"
            # the endorsement hierarchy's empty password, not the session: see the module docstring
            handle, ak_pub, *_ = self._e.create_primary(t.TPM2B_SENSITIVE_CREATE(), template, c.ESYS_TR.ENDORSEMENT)
            ak_pem, ak_tss = bytes(ak_pub.to_pem()), bytes(ak_pub.marshal())
            what = "quoting"
            attest, sig = self._e.quote(handle, format_selection(bank, pcrs), t.TPM2B_DATA(nonce),
                                        session1=self._using("DECRYPT", "ENCRYPT"))
            message, signature = bytes(attest), bytes(sig.marshal())
        except BaconError:  # the EK is not the pinned one (ek.EkMismatch), or an answer already explained
            raise
        except Exception as e:  # wrapped at the boundary
            err = _unavailable(self.tcti, what, e)
            if handle is None and "auth" in str(e).lower() and getattr(e, "rc", None) != ESYS_RC_RSP_AUTH_FAILED:
                err.hint = "the endorsement hierarchy has a password; BACON needs it empty (tpm2_changeauth -c e)"
            raise err from e
        finally:
            if handle is not None:  # best effort; the quote result already stands or fails
                self._flush(handle)
        values = self.read_pcrs(bank, pcrs) if read else {}
        return Quote(message=message, signature=signature, ak_pem=ak_pem, ak_tss=ak_tss, pcrs=values, ek=self.ek)


def selected(bank: str, sel_out: Any) -> list[int]:
    """PCR indices of ``bank`` in a returned TPML_PCR_SELECTION, ascending (a selection of another bank
    with any PCR set is refused: the TPM answered another question)."""
    from tpm2_pytss.constants import TPM2_ALG

    want = getattr(TPM2_ALG, bank.upper())
    out: list[int] = []
    for s in sel_out.pcrSelections[: sel_out.count]:
        bits = bytes(s.pcrSelect)[: s.sizeofSelect]
        pcrs = [i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1]
        if s.hash != want:
            if pcrs:
                raise Unavailable(f"the TPM returned values of another PCR bank (0x{int(s.hash):04x}), not {bank}")
            continue
        out.extend(pcrs)
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


@contextmanager
def open_tpm(settings: TpmSettings, ek: ek_pin.EkIdentity | None = None) -> Iterator[Device]:
    """Open the TPM named by ``settings.tcti``; with ``ek`` (the baseline's pinned endorsement key), its
    session is salted only to that EK. Raises :class:`Unavailable` when it cannot be reached."""
    tcti = settings.tcti
    _precheck(tcti)
    tss = load_tss()
    try:
        connection = tss.TCTILdr(tcti.name, tcti.conf)
        esapi = tss.ESAPI(connection)
    except Exception as e:  # TSS2_Exception, OSError: the TPM is not there
        msg = str(e)
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
            msg = "permission denied"
        raise Unavailable(f"cannot reach the TPM at {tcti}: {msg}", hint=_hint(tcti)) from e
    dev = Device(esapi, tcti, connection, pinned_ek=ek)
    try:
        yield dev
    finally:
        dev.close()
        with contextlib.suppress(Exception):  # closing a dead connection must not mask the real error
            esapi.close()
        with contextlib.suppress(Exception):
            connection.close()
