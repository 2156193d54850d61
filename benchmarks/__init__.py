"""BACON's benchmark against its peers (``tox -e bench``; how it measures: ``benchmarks/__main__.py``).

Where the budgets of docs/design.md §6 stand, and why (measured 2026-12-02 on 2 shared vCPUs; see the report
of issue 7 for the table):

- **Forwarding (+15 ms)** is over: the interpreter alone starts in ~11 ms (``python -I -S -c pass``) to
  ~15 ms (with ``site``), and the forwarding path then imports ``tomllib`` (with ``typing``, ``re``,
  ``datetime``), ``dataclasses`` (with ``inspect``, ``ast``, ``dis``) and ``pathlib`` for the
  configuration and nerdctl's grammar, ~20 ms more. Within 15 ms needs a launcher without ``site``
  and a forwarding path with none of those modules (a checked cache of the parsed configuration; the
  grammar's records without dataclasses), or a compiled launcher.
- **Admission (1.0x / 2.0x ``cosign verify``)** is over in one process: ``cosign verify`` takes ~45-60 ms
  (~43 ms of CPU), an admission ~200 ms of CPU, nearly all of it start-up: the interpreter and the
  forwarding path's imports (~45 ms), grpc with asyncio and protobuf for containerd's API (~50 ms),
  cryptography (~15-25 ms), BACON's own modules (dataclasses, regular expressions, the proto
  descriptors). Already loaded, the same admission takes ~10 ms (Low) and ~16 ms (Mid, with the quote):
  the ``(info) … already loaded`` rows. So a resident root-only process holding the warm state, with
  the wrapper as a thin client over a unix socket (SO_PEERCRED), would meet both budgets, provided the
  client itself starts in ~15 ms (see forwarding).
- **Memory (< 60 MB)** is met: ~51-52 MB for a Low or a Mid admission (grpc's native library and
  cryptography's account for most of it); the TPM commands no longer load tpm2-pytss (-9 MB).
"""
