"""tpm2-pytss is built without FAPI (docs/tpm.md, "What it costs"): loading it for a TPM check must not map
libtss2-fapi and what it drags in (libcurl, gnutls, krb5, ldap, ssh2, p11-kit), about 4 MB of every cold
Mid admission's peak memory. Checked in a fresh interpreter, by what it has mapped after the import."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("tpm2_pytss")

FIX = "scripts/tpm2-pytss-without-fapi install .venv/bin/python (scripts/install-deps and tox run it)"
FAPI_ONLY = ("libtss2-fapi", "libcurl", "libgnutls", "libkrb5", "libldap", "libssh2", "libp11-kit")


def _mapped_after_import() -> list[str]:
    code = ("from shim.attest.tpm.device import load_tss\nload_tss()\n"
            "print(open('/proc/self/maps').read())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return sorted({line.split()[-1] for line in r.stdout.splitlines() if ".so" in line})


def test_tpm2_pytss_loads_no_fapi_libraries() -> None:
    mapped = _mapped_after_import()
    assert any("libtss2-esys" in m for m in mapped), mapped
    fapi = [m for m in mapped if any(f"/{lib}" in m for lib in FAPI_ONLY)]
    assert not fapi, f"tpm2-pytss was built with FAPI, which loads {fapi}; rebuild it: {FIX}"
