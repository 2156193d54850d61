"""Hypothesis settings for the fuzz properties: derandomized (the same examples on every run, so CI is
deterministic) and bounded (the whole fuzz set stays well under a minute).

``BACON_FUZZ_SCALE`` multiplies every target's example count for a longer local run, e.g.
``BACON_FUZZ_SCALE=20 .venv/bin/tox -e py -- tests/unit/test_fuzz_*.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("BACON_FUZZ_SCALE", "1") or "1"))


def fuzz(examples: int) -> settings:
    """``examples`` (× ``BACON_FUZZ_SCALE``) derandomized examples, no deadline, no example database."""
    return settings(
        max_examples=examples * SCALE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
