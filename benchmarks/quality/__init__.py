"""The purification-quality suite (``suite.py``): its cells and data, networks, loops, rows,
table, and the benchmark-only mode ``d2sp+``."""
