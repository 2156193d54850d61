"""TPM measured boot: the ``tpm`` admission check, the PCR baseline, quotes, and the event log.

Modules, one idea each:

- :mod:`shim.attest.tpm.settings` — the ``[tpm]`` configuration table (standard library only);
- :mod:`shim.attest.tpm.eventlog` — TCG2 crypto-agile event log: parse, replay, explain (pure);
- :mod:`shim.attest.tpm.attest` — quote verification in software: TPMS_ATTEST, signature, nonce, PCR digest (pure);
- :mod:`shim.attest.tpm.baseline` — the recorded baseline: JSON, diff (pure) and its atomic, root-only file;
- :mod:`shim.attest.tpm.device` — the IO edge: tpm2-pytss ESAPI over every TCTI (imported lazily), in a salted
  HMAC session, errors wrapped as Unavailable;
- :mod:`shim.attest.tpm.check` — :func:`run_tpm_check` for the admission gate, and the pure :func:`judge_quote`;
- :mod:`shim.attest.tpm.operations` — ``bacon baseline record|show``, ``bacon quote tpm``, the TPM part of
  ``bacon status``.

Nothing is imported here, so ``import shim.attest.tpm`` costs nothing on the forwarding path.
"""
