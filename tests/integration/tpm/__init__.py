"""Integration tests of the TPM check against Debian's swtpm and tpm2-tools."""
