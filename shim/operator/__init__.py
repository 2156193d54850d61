"""The ``bacon`` operator command: its verbs, status, enable/disable, reading the audit log."""
