"""Fuzzing BACON's parsers: the targets (``targets``), their saved corpus (``corpus/``), the hypothesis
settings the unit tests use (``profile``), and the atheris harnesses (``atheris_*.py``, ``run_all``)."""
