"""Where this installation's documentation is, for hints that send the operator to it.

A hint that says "see README" names no file the operator can open. The Debian package installs the README
as /usr/share/doc/bacon/README.md and the man pages bacon(1), bacon.toml(5); a checkout has README.md next
to ``shim/``. Standard library only (configuration errors on the forwarding path use it).
"""

from __future__ import annotations

import os

PACKAGED_README = "/usr/share/doc/bacon/README.md"


def readme() -> str:
    """The README's path on this host: the package's, else the checkout's, else how to get one."""
    if os.path.isfile(PACKAGED_README):
        return PACKAGED_README
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    if os.path.isfile(checkout):
        return checkout
    return "README.md in BACON's source"


def config_reference() -> str:
    """Where the configuration's keys are described."""
    if os.path.isfile(PACKAGED_README):
        return f"man 5 bacon.toml, or {PACKAGED_README}"
    return readme()
