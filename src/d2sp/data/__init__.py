"""Datasets, annotation readers and the SynthDFER generator.

Importing this package registers every shipped dataset: ``dfew``, ``ferv39k``, ``mafw``,
``list``, ``csv`` and ``synthdfer``.
"""

from d2sp.data import dfew, ferv39k, generic, mafw, synthdfer  # noqa: F401  (registration)
