"""BACON's benchmark against its peers (``tox -e bench``; see ``benchmarks/__main__.py``)."""
