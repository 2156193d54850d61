"""Run one fuzz target under atheris (libFuzzer, coverage-guided over BACON's own code).

``python -m tests.fuzz.atheris_<target> [libFuzzer options] [CORPUS_DIR …]``; ``tox -e fuzz`` runs them
all through :mod:`tests.fuzz.run_all`. Only ``shim`` is instrumented (coverage of BACON's parsers is
what guides the search), including the modules the targets load lazily, which are imported here first.
"""

from __future__ import annotations

import importlib
import sys

# Loaded lazily by shim on some paths: imported inside the instrumentation so that they count too.
_LAZY = ("shim.images.reference", "shim.admission.gate", "shim.admission.context", "shim.admission.finding",
         "shim.admission.image_checks", "shim.admission.plans", "shim.images.registry", "shim.images.credentials",
         "shim.trust.registry_signatures", "shim.trust.keys", "shim.attest.tdx.collateral", "shim.attest.tdx.settings",
         "shim.attest.tpm.eventlog", "shim.trust.signing")


def main(name: str) -> None:
    import atheris

    with atheris.instrument_imports(include=["shim"]):
        for module in _LAZY:
            importlib.import_module(module)
        from tests.fuzz import targets
    target = targets.TARGETS[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
