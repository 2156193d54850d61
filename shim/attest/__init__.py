"""Host attestation and measured launches: TPM, TDX, event logs, the launch log and evidence."""
