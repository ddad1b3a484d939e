"""Experiment grids: ablations and method comparisons over seeds, and the k-fold protocol;
resumable, one folder a run.

A grid is a list of cells (:mod:`~d2sp.experiments.cells`: table, row, config overrides,
seed). Cells that ask for the same run (same overrides, same seed) share one run folder and
are trained once; the run is reported in every table that asked for it.

    plan = plan_ablation(base_cfg, seeds=(0, 1, 2))        # plan: stages, λ, τ, t tables
    results = run_cells(base_cfg, plan, out_dir="runs/ablate", jobs=2)      # runner
    summary = summarize(results)                                             # tables
    markdown = write_results(results, summary, "runs/ablate", title="Ablation")

- :mod:`~d2sp.experiments.plan`: planning the ablation and the comparison of modes;
- :mod:`~d2sp.experiments.runner`: training every distinct run once;
- :mod:`~d2sp.experiments.results`: a run's figures, read back from its folder;
- :mod:`~d2sp.experiments.tables`: mean ± std over seeds and the output files;
- :mod:`~d2sp.experiments.folds`: one run per fold and the fold table.

Layout of ``out_dir``::

    runs/<slug>/       one run folder per distinct run (see :func:`d2sp.train`)
    results.csv        one line per (cell, seed): table, row, seed, run folder, figures
    summary.csv        per (table, row): mean and std over seeds of every figure
    table.md           one Markdown table per table name

Figures of a run are read back from its folder (``summary.json``, ``metrics.jsonl``,
``ledger.npz``), so a finished run found on disk reports the same figures as a fresh one.
Nothing is imported here: each command loads only the modules it needs.
"""
