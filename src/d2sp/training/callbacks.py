"""What observes a training run, apart from the loop: progress bars, console lines, the run
folder and the purification guard. Each is a :class:`Callback`; the loop calls every
callback's hooks in order and never prints or writes anything itself."""

from __future__ import annotations

import json

import numpy as np
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from d2sp.config import save_config
from d2sp.data.common import class_counts
from d2sp.training.build import Run
from d2sp.training.checkpoint import save_checkpoints
from d2sp.training.checks import PurificationGuardError


class Callback:
    """Hooks of a run, all optional. ``row`` is the epoch's metrics (``metrics.jsonl``)."""

    def on_run_start(self, run: Run, start_epoch: int) -> None: ...

    def on_epoch_start(self, run: Run, epoch: int, steps: int) -> None: ...

    def on_step(self) -> None: ...

    def on_decision(self, run: Run, epoch: int, counts: dict) -> None: ...

    def on_skipped(self, run: Run, lines: list[str]) -> None:
        """Samples found unreadable during training and skipped (``"file:row: reason (met
        at epoch E)"`` each)."""

    def on_epoch_end(self, run: Run, row: dict, best: dict, improved: bool) -> None: ...

    def on_run_end(self, run: Run, summary: dict) -> None: ...


class ProgressBar(Callback):
    """A transient rich progress bar per epoch."""

    def __init__(self, run: Run, enabled: bool):
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=run.console, transient=True, disable=not enabled,
        )  # fmt: skip
        self.task = None

    def on_run_start(self, run, start_epoch):
        self.bar.start()

    def on_epoch_start(self, run, epoch, steps):
        name = f"{run.cfg.name} epoch {epoch + 1}/{run.cfg.optim.epochs}"
        self.task = self.bar.add_task(name, total=steps)

    def on_step(self):
        self.bar.advance(self.task)

    def on_epoch_end(self, run, row, best, improved):
        self.bar.remove_task(self.task)

    def on_run_end(self, run, summary):
        self.bar.stop()

    def stop(self) -> None:
        """Stop drawing (also when the run ends with an error)."""
        self.bar.stop()


class ConsoleLines(Callback):
    """The run's lines on the console: warnings, notes on the data and skipped rows (a
    count and the first few) always; with ``verbose`` also the splits and one line per
    epoch."""

    SHOWN = 5  # skipped rows printed; the rest are in skipped.txt

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.events_shown = 0

    def on_decision(self, run, epoch, counts):
        """The purifier's new events (readiness, caps, corrections switched off...), always."""
        for line in run.purifier.events[self.events_shown :]:
            run.console.print(f"[cyan]purifier:[/] {line}", soft_wrap=True)
        self.events_shown = len(run.purifier.events)

    def on_run_start(self, run, start_epoch):
        self.events_shown = len(run.purifier.events)  # a resumed run's were shown before
        for split in (run.train_split, run.test_split) if self.verbose else ():
            counts = ", ".join(f"{k} {v}" for k, v in class_counts(split).items())
            run.console.print(f"[dim]{split.split}: {len(split.samples)} clips ({counts})[/]")
        for note in run.notes:
            run.console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
        skipped = run.skipped
        if skipped:
            run.console.print(
                f"[bold yellow]warning:[/] {len(skipped)} bad row(s) skipped (data.skip_bad), "
                f"listed in {run.run_dir / 'skipped.txt'}:",
                soft_wrap=True,
            )
            self._lines(run, skipped)
        if start_epoch:
            run.console.print(f"resuming {run.run_dir} after epoch {start_epoch}")

    def _lines(self, run, lines: list[str]) -> None:
        for line in lines[: self.SHOWN]:
            run.console.print(f"  [yellow]skipped[/] {line}", soft_wrap=True)
        if len(lines) > self.SHOWN:
            run.console.print(f"  … and {len(lines) - self.SHOWN} more")

    def on_skipped(self, run, lines):
        run.console.print(
            f"[bold yellow]warning:[/] {len(lines)} clip(s) unreadable during training, "
            "skipped from now on (data.skip_bad):",
            soft_wrap=True,
        )
        self._lines(run, lines)

    def on_epoch_start(self, run, epoch, steps):
        if not len(run.bad_clips.keep("train", run.purifier.train_indices())):
            skipped = " (or skipped as unreadable)" if run.bad_clips.excluded["train"] else ""
            run.console.print(
                f"[bold yellow]warning:[/] epoch {epoch + 1}: every sample is pruned{skipped}; "
                "this epoch only re-scores them"
            )

    def on_epoch_end(self, run, row, best, improved):
        if not self.verbose:
            return
        run.console.print(
            f"[dim]{run.cfg.name}[/] epoch {row['epoch']:>3}/{run.cfg.optim.epochs}  "
            f"loss {row['loss']:.3f}  WAR {100 * row['war']:5.1f}  UAR {100 * row['uar']:5.1f}  "
            f"trained {row['trained']}  pruned {row['pruned']}  corrected {row['corrected']}"
            f"  ({row['seconds']:.1f}s)"
        )


class RunFolderWriter(Callback):
    """Writes the run folder (rank 0 only): ``config.yaml``, ``class_counts.json``,
    ``skipped.txt``, one ``metrics.jsonl`` line, the ledger and the purifier's events
    (``events.txt``) per epoch, the checkpoints, and ``summary.json`` at the end. A resumed
    run's metrics are cut back to its checkpoint."""

    def on_decision(self, run, epoch, counts):
        events = run.purifier.events
        path = run.run_dir / "events.txt"
        if events or path.is_file():
            path.write_text("".join(line + "\n" for line in events), encoding="utf-8")

    def on_run_start(self, run, start_epoch):
        d = run.run_dir
        d.mkdir(parents=True, exist_ok=True)
        save_config(run.cfg, d / "config.yaml")
        metrics = d / "metrics.jsonl"
        lines = metrics.read_text().splitlines()[:start_epoch] if metrics.is_file() else []
        metrics.write_text("".join(line + "\n" for line in lines))
        counts = {"train": class_counts(run.train_split), "test": class_counts(run.test_split)}
        (d / "class_counts.json").write_text(json.dumps(counts, indent=1))
        skipped = run.skipped
        if skipped:
            (d / "skipped.txt").write_text("\n".join(skipped) + "\n")
        else:
            (d / "skipped.txt").unlink(missing_ok=True)  # a resumed run rewrites it

    def on_skipped(self, run, lines):
        with open(run.run_dir / "skipped.txt", "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))

    def on_epoch_end(self, run, row, best, improved):
        with open(run.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if run.purifier.ledger is not None:
            run.purifier.ledger.save(run.run_dir / "ledger.npz")
        save_checkpoints(run, row["epoch"], row, best, improved)
        run.extras["saved_epoch"] = row["epoch"]

    def on_run_end(self, run, summary):
        (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))


class PurificationGuard(Callback):
    """Warns (or, with ``purify.stop_on_overprune``, stops) when a decision prunes more than
    ``purify.max_prune_fraction`` of the samples or every sample of a class."""

    def on_decision(self, run, epoch, counts):
        keep = run.purifier.keep_mask.numpy()
        labels = run.purifier.labels.numpy()
        p, problems = run.cfg.purify, []
        share = 1.0 - keep.mean()
        if share > p.max_prune_fraction:
            problems.append(
                f"{100 * share:.1f}% of the training samples are pruned "
                f"(purify.max_prune_fraction = {p.max_prune_fraction})"
            )
        names = run.class_names
        emptied = [names[k] for k in np.unique(labels) if not keep[labels == k].any()]
        if emptied:
            problems.append(f"every sample of class {', '.join(emptied)} is pruned")
        if not problems:
            return
        message = f"epoch {epoch + 1}: " + "; ".join(problems)
        if p.stop_on_overprune:
            raise PurificationGuardError(message + " (stopping: purify.stop_on_overprune)")
        run.console.print(f"[bold yellow]warning:[/] {message}")
