"""BACON: an admission wrapper for nerdctl.

Nothing is imported here: the forwarding path (``shim.wrapper.main``) must stay on the standard library.
"""

__version__ = "0.1.0"
