"""``make bench`` and ``make soak``: what a request costs, and minutes of mixed traffic.

- :mod:`.figures`: the bench's figures (``python -m tools.bench``), written to docs/performance.md;
- :mod:`.pinned`: processes pinned to cores, for the concurrency figure;
- :mod:`.importer`: the import figure;
- :mod:`.soak`: ``make soak``.
"""
