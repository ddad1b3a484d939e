"""Planning a grid: the paper-mode ablation (stage table, one-factor sweeps of λ, τ and t)
and the comparison of purifier modes, as lists of cells (:mod:`d2sp.experiments.cells`).
"""

from __future__ import annotations

from collections.abc import Sequence

from d2sp.config import RunConfig
from d2sp.experiments.cells import Cell, Plan, canonical_overrides, cell_config, format_value


def method_overrides(method: str, base_cfg: RunConfig) -> tuple[str, ...]:
    """Config overrides that turn ``base_cfg`` into a run of purifier mode ``method``: the
    mode, and, for a mode other than the base config's, its own defaults (the base's
    purification keys and options emptied)."""
    from d2sp.purify import purifier_class

    purifier_class(method)  # ValueError listing the known modes
    p = base_cfg.purify
    if method == p.mode:
        return (f"purify.mode={method}",)
    return (f"purify.mode={method}", *(["purify.options=null"] if p.options else []))


ABLATION_TABLES = ("stages", "lam", "tau", "t")
DEFAULT_SWEEPS = {"lam": (0.5, 0.6, 0.7, 0.8), "tau": (0.2, 0.3, 0.4, 0.5), "t": (1, 2, 3, 4)}
STAGE_ROWS = {"none": (False, False), "CGP": (True, False), "FGC": (False, True)}
STAGE_ROWS["CGP+FGC"] = (True, True)
_SWEEP_SYMBOL = {"lam": "λ", "tau": "τ", "t": "t"}


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds, got {list(seeds)}")
    return seeds


def _ablation_overrides(base: dict, cgp: bool, fgc: bool, **thresholds) -> tuple[str, ...]:
    """Overrides of one paper-mode ablation run: both stage switches and all three thresholds."""
    values = {**base, **thresholds}
    return canonical_overrides(
        [
            "purify.mode=paper",
            f"purify.cgp={format_value(cgp)}",
            f"purify.fgc={format_value(fgc)}",
            *(f"purify.{k}={format_value(v)}" for k, v in values.items()),
        ]
    )


def _sweep_rows(
    base_cfg: RunConfig, base: dict, table: str, values: Sequence, *, seed: int, skipped: list[str]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rows of one threshold sweep; values left out are explained in ``skipped``."""
    from d2sp.training.checks import validate_config

    kind = int if table == "t" else float
    rows, seen = [], set()
    for v in values:
        if kind is int and (isinstance(v, bool) or float(v) != int(v)):
            skipped.append(f"{table}: {v!r} left out (expected an integer)")
            continue
        v = kind(v)
        if v in seen:
            continue
        seen.add(v)
        row = f"{_SWEEP_SYMBOL[table]}={format_value(v)}"
        ov = _ablation_overrides(base, True, True, **{table: v})
        try:
            validate_config(cell_config(base_cfg, Cell(table, row, ov, seed)))
        except ValueError as e:
            reason = " ".join(str(e).replace("config refused:", "").split())
            skipped.append(f"{table}: {row} left out ({reason})")
            continue
        rows.append((table, row, ov))
    return rows


def plan_ablation(
    base_cfg: RunConfig,
    *,
    tables: Sequence[str] = ABLATION_TABLES,
    lams: Sequence[float] | None = None,
    taus: Sequence[float] | None = None,
    ts: Sequence[int] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
) -> Plan:
    """The paper-mode ablation: stage table and one-factor sweeps of λ, τ and t.

    ``stages`` has the rows none / CGP / FGC / CGP+FGC; ``lam``, ``tau`` and ``t`` vary one
    threshold around the base config with both stages on. A base threshold left empty
    stands for the paper mode's default (0.6, 0.4, 2). Every cell pins the three thresholds,
    so the CGP+FGC row and the sweep rows at the base values are one run. Sweep values the
    trainer would refuse (e.g. t beyond the number of epochs) are left out and listed in
    the returned plan's ``skipped``; a base config the trainer refuses raises ValueError.
    """
    from d2sp.purify import purifier_class
    from d2sp.training.checks import validate_config

    seeds = _check_seeds(seeds)
    unknown = [t for t in tables if t not in ABLATION_TABLES]
    if unknown or not tables:
        raise ValueError(
            f"tables: expected some of {', '.join(ABLATION_TABLES)}, got {', '.join(tables) or 'none'}"
        )
    given, paper = base_cfg.purify.options, purifier_class("paper").defaults
    base = {k: given[k] if given.get(k) is not None else paper[k] for k in ("lam", "tau", "t")}
    sweeps = {"lam": lams, "tau": taus, "t": ts}

    both = _ablation_overrides(base, True, True)
    try:
        validate_config(cell_config(base_cfg, Cell("stages", "CGP+FGC", both, seeds[0])))
    except ValueError as e:
        reason = str(e).removeprefix("config refused:").strip()
        raise ValueError(
            f"the base config (paper mode, both stages) is refused: {reason}"
        ) from None

    rows: list[tuple[str, str, tuple[str, ...]]] = []
    skipped: list[str] = []
    for table in tables:
        if table == "stages":
            rows += [(table, n, _ablation_overrides(base, *on)) for n, on in STAGE_ROWS.items()]
            continue
        values = sweeps[table] if sweeps[table] is not None else DEFAULT_SWEEPS[table]
        rows += _sweep_rows(base_cfg, base, table, values, seed=seeds[0], skipped=skipped)
    cells = [Cell(t, r, ov, s) for t, r, ov in rows for s in seeds]
    return Plan(cells, skipped)


# the baselines a comparison runs by default, those of them that are registered
BASELINES = ("ce", "scn", "cleanlab", "gce", "elr", "coteach", "dividemix")


def default_methods() -> list[str]:
    """The methods ``d2sp compare`` runs without ``--methods``: the registered baselines of
    :data:`BASELINES`, then the recommended mode (the default ``purify.mode``)."""
    from d2sp.config import PurifyConfig
    from d2sp.purify import list_modes

    known = list_modes()
    return [m for m in BASELINES if m in known] + [PurifyConfig().mode]


def plan_comparison(
    base_cfg: RunConfig,
    *,
    methods: Sequence[str] = ("ce", "paper"),
    seeds: Sequence[int] = (0, 1, 2),
) -> Plan:
    """One row per method (table ``compare``): each a registered purifier mode, run with the
    overrides of :func:`method_overrides` on ``base_cfg``, which supplies everything else
    (data, model, schedule; the base config's own mode keeps its thresholds).
    Unknown method names raise ValueError listing the known ones.
    """
    from d2sp.purify import list_modes

    seeds = _check_seeds(seeds)
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in list_modes()]
    if unknown or not methods:
        raise ValueError(
            f"methods: unknown {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known: {', '.join(list_modes())}"
        )
    cells = [
        Cell("compare", m, canonical_overrides(method_overrides(m, base_cfg)), s)
        for m in methods
        for s in seeds
    ]
    return Plan(cells)
