"""Command implementations registered by :mod:`d2sp.cli` (one command per module)."""
