"""The runtime gate: BACON as ``runc`` for every containerd client (the second layer)."""
