"""Everything about a finished run folder (what :func:`d2sp.train` writes):

- :mod:`~d2sp.runs.folder`: reading it once (:func:`~d2sp.runs.folder.read_run`) and the
  helpers its readers share;
- :mod:`~d2sp.runs.report`: the HTML report;
- :mod:`~d2sp.runs.export`: the cleaned annotation, in the input's own format (the official
  ones: :mod:`~d2sp.runs.export_formats`), with the per-sample ledger table
  (:mod:`~d2sp.runs.ledger_table`) and the ranked issues list (:mod:`~d2sp.runs.issues`);
- :mod:`~d2sp.runs.model`: the run's model loaded back from a checkpoint, which
  :mod:`~d2sp.runs.evaluation` evaluates on any split and :mod:`~d2sp.runs.prediction`
  runs on one's own clips (optionally face-cropped: :mod:`~d2sp.runs.facecrop`).

Nothing is imported here: each command loads only the module it needs.
"""
