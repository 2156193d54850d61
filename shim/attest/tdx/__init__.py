"""Intel TDX host attestation: a fresh TD quote from configfs-tsm, verified with dcap-qvl against the
pinned Intel SGX Root CA and cached collateral, with MRTD/RTMRs compared to reference values and RTMR
mismatches explained from the CCEL event log.

Modules: ``settings`` (the ``[tdx]`` table), ``configfs`` (the kernel protocol), ``verify`` (the
decision, pure), ``ccel`` (event log), ``collateral`` (cache and refresh), ``check`` (the admission
check: :func:`shim.attest.tdx.check.run_tdx_check`), ``cli`` (what ``bacon`` calls).

Nothing is imported here: ``import shim.attest.tdx`` must stay free for the forwarding path.
"""
