"""Stubs generated from proto/ (containerd API subset)."""
