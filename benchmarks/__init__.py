"""The benchmarks of d2sp (``benchmarks/README.md`` is the index): ``quality`` (the
purification suite) and ``speed`` (throughput, purifier cost, loading); ``helpers`` holds
what they share. Scripts are run as files, ``python benchmarks/quality/suite.py ...``."""
