"""TPM measured boot: the ``tpm`` admission check, the PCR baseline, quotes, and the event log.

Modules, one idea each:

- :mod:`shim.tpm.settings` — the ``[tpm]`` configuration table (standard library only);
- :mod:`shim.tpm.eventlog` — TCG2 crypto-agile event log: parse, replay, explain (pure);
- :mod:`shim.tpm.attest` — quote verification in software: TPMS_ATTEST, signature, nonce, PCR digest (pure);
- :mod:`shim.tpm.baseline` — the recorded baseline: JSON, diff (pure) and its atomic, root-only file;
- :mod:`shim.tpm.device` — the IO edge: tpm2-pytss ESAPI over every TCTI (imported lazily), in a salted
  HMAC session, errors wrapped as Unavailable;
- :mod:`shim.tpm.check` — :func:`run_tpm_check` for the admission gate, and the pure :func:`decide`;
- :mod:`shim.tpm.cli` — ``bacon baseline record|show``, ``bacon quote tpm``, the TPM part of ``bacon status``.

Nothing is imported here, so ``import shim.tpm`` costs nothing on the forwarding path.
"""
