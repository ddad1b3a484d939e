#!/usr/bin/env python
"""What a purifying training step adds to a plain CE step, op by op, for Former-DFER against
R18-LSTM (``torch.profiler`` on the CPU).

One backbone per model, shared by two heads as in ``benchmarks/throughput.py``: ``CE`` (the
linear head, ``F.cross_entropy``) and the mode's step as the trainer takes it
(``purifier.batch_loss(model, x, idx)``, backward, SGD momentum 0.9,
``purifier.after_step()``), for the modes ``paper`` (the weight branch, no teacher) and
``adaptive`` (the default: the weight branch and an EMA teacher updated after every step).
Narrow widths and a small input (``--width``, ``--size``, ``--frames``, ``--batch``) keep
the arithmetic small, so that an op's self time is mostly its dispatch cost: on a GPU,
what the host spends to launch it. The number of tensors, ops and kernels per step does
not depend on the width.

Per backbone and mode: ops per step (profiler events of ``aten::`` ops), the ops the
purifying step adds (count and self CPU time per step), and host synchronisations
(``aten::item`` / ``_local_scalar_dense``, ``nonzero``, copies to the CPU). Then the EMA
teacher's update measured two ways side by side in the same run: one ``lerp_`` and one
``copy_`` per tensor (``--legacy-ema``, how it was done before) and the grouped
multi-tensor update (``torch._foreach_lerp_``, ``torch._foreach_copy_``).

Example (about a minute on 2 CPU cores)::

    python benchmarks/speed/profile_overhead.py --out benchmarks/results/former_vs_r18_profile.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

try:
    import d2sp  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from d2sp.models import DFERModel, create_backbone  # noqa: E402
from d2sp.models.heads import ClassifierHead  # noqa: E402
from d2sp.purify import create_purifier  # noqa: E402
from d2sp.purify.teacher import EmaTeacher  # noqa: E402

MODELS = {"former_dfer": "Former-DFER", "r18_lstm": "R18-LSTM"}
MODES = ("paper", "adaptive")
SYNC_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero")


def backbone_kwargs(name: str, args) -> dict:
    if name == "former_dfer":
        return {"width": args.width, "img_size": args.size, "heads": 4, "num_frames": args.frames}
    return {"width": args.width, "lstm_hidden": 8 * args.width}


class Steps:
    """The CE step and one mode's step over a shared backbone, on one fixed batch."""

    def __init__(self, name: str, mode: str, args):
        torch.manual_seed(0)
        backbone = create_backbone(name, **backbone_kwargs(name, args))
        d, k = backbone.num_features, 7
        self.ce_model = DFERModel(backbone, ClassifierHead(d, k, weight_branch=False))
        n = 4 * args.batch
        labels = torch.randint(k, (n,), generator=torch.Generator().manual_seed(1))
        purifier = create_purifier(mode, labels, num_classes=k)
        head = ClassifierHead(d, k, weight_branch=purifier.weight_branch)
        self.model = DFERModel(backbone, head)
        params = list(dict.fromkeys([*self.ce_model.parameters(), *self.model.parameters()]))
        self.opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
        purifier.bind(self.model, optimizer=self.opt)
        self.purifier = purifier
        self.clips = torch.randn(args.batch, args.frames, 3, args.size, args.size)
        self.idx = torch.arange(args.batch)
        self.labels = labels[: args.batch]
        self.amp = args.amp
        self.width = d

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.amp else nullcontext()

    def ce(self) -> None:
        with self.autocast():
            logits, _ = self.ce_model(self.clips)  # (B, K)
            loss = F.cross_entropy(logits.float(), self.labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def purify(self) -> None:
        with self.autocast():
            loss = self.purifier.batch_loss(self.model, self.clips, self.idx)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.purifier.after_step()


def op_profile(step, n: int) -> dict[str, tuple[float, float, float]]:
    """``{op: (dispatches, calls, self CPU µs)}`` per step over ``n`` steps: ``calls`` counts
    every ``aten::`` event, ``dispatches`` those with no ``aten::`` op above them (what the
    host launches: from Python, or from the autograd engine in the backward pass)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            step()
    top, calls, self_us = Counter(), Counter(), Counter()
    for e in prof.events():
        if not e.name.startswith("aten::"):
            continue
        calls[e.name] += 1
        self_us[e.name] += e.self_cpu_time_total
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        top[e.name] += parent is None
    return {op: (top[op] / n, calls[op] / n, self_us[op] / n) for op in calls}


def host_ms(steps: dict, n: int, rounds: int = 6) -> dict[str, list[float]]:
    """Host CPU ms per step of each of ``steps`` (this thread's CPU time: what a GPU step's
    host spends, and little moved by other work on the machine) in each of ``rounds``
    rounds of alternating blocks of ``n`` steps."""
    per = {name: [] for name in steps}
    for r in range(rounds):
        for name in list(steps) if r % 2 == 0 else list(steps)[::-1]:
            t0 = time.thread_time()
            for _ in range(n):
                steps[name]()
            per[name].append(1e3 * (time.thread_time() - t0) / n)
    return per


def median(ms: dict[str, list[float]], name: str) -> float:
    return statistics.median(ms[name])


def overhead(ms: dict[str, list[float]]) -> float:
    """The step's time over the CE step's, in %: the median over the rounds of the ratio of
    a round's two blocks (run back to back, so other work on the machine hits both)."""
    return 100 * (statistics.median(d / c for d, c in zip(ms["d2sp"], ms["ce"], strict=True)) - 1)


def added(ce: dict, d2sp: dict) -> dict[str, tuple[float, float, float]]:
    """Ops the purifying step runs more often: ``(dispatches added, calls added, self µs
    in the purifying step)`` per step."""
    out = {}
    for op, (top, calls, us) in d2sp.items():
        t0, c0, _ = ce.get(op, (0.0, 0.0, 0.0))
        if calls - c0 > 0.01 or top - t0 > 0.01:
            out[op] = (top - t0, calls - c0, us)
    return out


def legacy_update(self, model) -> None:
    """The EMA update as it was: one ``lerp_`` per parameter, one ``copy_`` per buffer."""
    d = self.decay()
    with torch.no_grad():
        for pt, p in zip(self.model.parameters(), model.parameters(), strict=True):
            pt.lerp_(p.detach(), 1.0 - d)
        for bt, b in zip(self.model.buffers(), model.buffers(), strict=True):
            bt.copy_(b)
    self.steps += 1


@contextmanager
def ema_update(update):
    """``EmaTeacher.update`` swapped for ``update`` (None: as it is) inside the block."""
    current = EmaTeacher.update
    EmaTeacher.update = update or current
    try:
        yield
    finally:
        EmaTeacher.update = current


VARIANTS = {  # row label -> (mode, EMA update)
    "paper": ("paper", None),
    "adaptive, EMA before": ("adaptive", legacy_update),
    "adaptive, EMA after": ("adaptive", None),
}


def measure(name: str, args) -> list[dict]:
    """The rows of one backbone: each variant's step against the CE step."""
    rows, built = [], {}
    for label, (mode, update) in VARIANTS.items():
        steps = built.get(mode) or Steps(name, mode, args)
        built[mode] = steps
        with ema_update(update):
            for _ in range(args.warmup):
                steps.ce()
                steps.purify()
            ce, d2sp = op_profile(steps.ce, args.profile_steps), op_profile(steps.purify, args.profile_steps)
            ms = host_ms({"ce": steps.ce, "d2sp": steps.purify}, args.steps)
        rows.append({
            "model": name, "label": label, "ce": ce, "d2sp": d2sp, "added": added(ce, d2sp),
            "ms": ms, "update_us": None, "width": steps.width,
            "sync": {op: d2sp[op][1] for op in SYNC_OPS if op in d2sp},
            "tensors": (len(list(steps.model.parameters())), len(list(steps.model.buffers()))),
        })  # fmt: skip
    teacher, model = built["adaptive"].purifier.teacher, built["adaptive"].model
    updates = host_ms({"adaptive, EMA before": lambda: legacy_update(teacher, model),
                       "adaptive, EMA after": lambda: teacher.update(model)}, 10 * args.steps)  # fmt: skip
    for row in rows:  # the update alone, both ways alternated
        if row["label"] in updates:
            row["update_us"] = 1e3 * median(updates, row["label"])
    return rows


def total(profile: dict, i: int) -> float:
    return sum(v[i] for v in profile.values())


def step_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | step | D | params / buffers | CE host ms | step host ms | overhead | dispatches CE "
        "| dispatches step | added | aten calls CE / step | EMA update µs | host syncs in step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        top_ce, top_d = total(r["ce"], 0), total(r["d2sp"], 0)
        sync = ", ".join(f"{op.split('::')[1]} ×{c:g}" for op, c in r["sync"].items()) or "none"
        upd = "–" if r["update_us"] is None else f"{r['update_us']:.0f}"
        lines.append(
            f"| {MODELS[r['model']]} | {r['label']} | {r['width']} | {r['tensors'][0]} / "
            f"{r['tensors'][1]} | {median(r['ms'], 'ce'):.1f} | {median(r['ms'], 'd2sp'):.1f} | "
            f"{overhead(r['ms']):+.1f}% | {top_ce:.0f} | {top_d:.0f} | {top_d - top_ce:+.0f} | "
            f"{total(r['ce'], 1):.0f} / {total(r['d2sp'], 1):.0f} | {upd} | {sync} |"
        )
    return lines


def cell(a: tuple[float, float, float] | None) -> str:
    return "–" if a is None else f"{a[0]:+.0f} / {a[1]:+.0f} ({a[2]:.0f} µs)"


def added_table(rows: list[dict], top: int) -> list[str]:
    """The ops each step adds, those Former-DFER's adds more of than R18-LSTM's first."""
    by = {(r["model"], r["label"]): r["added"] for r in rows}
    cols = [(m, label) for label in VARIANTS for m in MODELS]

    def order(op):
        more = max(by[f, v].get(op, (0,))[0] - by[r, v].get(op, (0,))[0]
                   for v in VARIANTS for f, r in [tuple(MODELS)])  # fmt: skip
        return (-more, -max(abs(by[c].get(op, (0,))[0]) for c in cols), op)

    head = " | ".join(f"{MODELS[m]} {label}" for m, label in cols)
    lines = [f"| op | {head} |", "|---|" + "---:|" * len(cols)]
    ops = sorted(set().union(*(a.keys() for a in by.values())), key=order)[:top]
    for op in ops:
        lines.append(f"| `{op}` | " + " | ".join(cell(by[c].get(op)) for c in cols) + " |")
    return lines


def difference(rows: list[dict], label: str) -> str:
    """``op +n`` for the ops the step adds more often for Former-DFER than R18-LSTM."""
    f, r = ({x["model"]: x["added"] for x in rows if x["label"] == label}[m] for m in MODELS)
    more = {op: f[op][0] - r.get(op, (0,))[0] for op in f}
    more = {op: c for op, c in more.items() if c > 0.5}
    return ", ".join(f"`{op}` +{c:.0f}" for op, c in sorted(more.items(), key=lambda x: -x[1])) or "none"


def finding(rows: list[dict]) -> str:
    """The finding paragraph, with this run's figures."""
    by = {(r["model"], r["label"]): r for r in rows}
    f0, r0 = by["former_dfer", "adaptive, EMA before"], by["r18_lstm", "adaptive, EMA before"]
    f1, r1 = by["former_dfer", "adaptive, EMA after"], by["r18_lstm", "adaptive, EMA after"]
    fp, rp = by["former_dfer", "paper"], by["r18_lstm", "paper"]

    def adds(r):
        return f"{total(r['d2sp'], 0) - total(r['ce'], 0):.0f}"

    def share(r):
        return 100 * r["update_us"] / 1e3 / median(r["ms"], "ce")

    syncs = sorted({op for x in rows for op in x["sync"]})
    sync = "no host synchronisation in any step (no `item`, `nonzero` or copy to the CPU)"
    if syncs:
        sync = "host synchronisations: " + ", ".join(syncs)
    return (
        f"**Finding.** The weight branch (`paper`) adds the same work to both backbones: "
        f"{adds(fp)} and {adds(rp)} dispatches per step (its two linears and their backward, "
        f"the weighted loss and its casts, the batch's record: `index_copy_`/`index_fill_`; "
        f"more for Former-DFER than R18-LSTM: {difference(rows, 'paper')}), on an embedding "
        f"of the same width (D = {fp['width']} here, 512 at full width for both), with "
        f"{sync}. The default mode's addition that grows with the backbone was its EMA "
        f"teacher's update after every step: one `lerp_` and one `detach` per parameter "
        f"tensor and one `copy_` per buffer ({difference(rows, 'adaptive, EMA before')} more "
        f"for Former-DFER), {adds(f0)} dispatches per step for Former-DFER "
        f"({f0['tensors'][0]} parameter tensors: its transformer blocks are many small ones) "
        f"against {adds(r0)} for R18-LSTM ({r0['tensors'][0]}), and a walk over the modules "
        f"of both models four times per step: {f0['update_us']:.0f} µs of host time per "
        f"update here against {r0['update_us']:.0f}. On a GPU these are small kernels "
        f"launched one by one after the step. Former-DFER's CE step already dispatches "
        f"{total(f0['ce'], 0):.0f} ops to R18-LSTM's {total(r0['ce'], 0):.0f}, so its host "
        f"has the least slack and the update adds to its step time where R18-LSTM's larger "
        f"kernels hide it, consistent with the GPU suite's +20.5% for Former-DFER only (no "
        f"host sync counted there either). Fixed in `EmaTeacher.update`: "
        f"`torch._foreach_lerp_` and `torch._foreach_copy_` per device and dtype over "
        f"tensor lists looked up once per epoch. The default mode's step now adds "
        f"{adds(f1)} dispatches for Former-DFER and {adds(r1)} for R18-LSTM, the update "
        f"costs {f1['update_us']:.0f} µs of host time ({f0['update_us'] / f1['update_us']:.1f}× "
        f"less; R18-LSTM {r1['update_us']:.0f} µs, {r0['update_us'] / r1['update_us']:.1f}× "
        f"less; the update alone was {share(f0):.1f}% of Former-DFER's CE step on the host, "
        f"now {share(f1):.1f}%; R18-LSTM {share(r0):.1f}% and {share(r1):.1f}%). The whole "
        f"step's ratio to the CE step (the table's overhead column: Former-DFER "
        f"{overhead(f0['ms']):+.1f}% before, {overhead(f1['ms']):+.1f}% after) is within this "
        f"machine's noise: on 2 shared cores it moves by ten points and more between runs, "
        f"the update's own time much less, the dispatch counts not at all. On "
        f"the CPU a `_foreach_` op still loops over its tensors inside ATen (the calls "
        f"column); on a GPU it is a few fused kernels. Same results: on the CPU the "
        f"multi-tensor ops compute each tensor as `lerp_`/`copy_` do (the tests' runs are "
        f"unchanged). The GPU check (overhead ≤ 3% on every backbone) is the GPU suite's."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=8, help="ResNet base width (narrow: 8)")
    ap.add_argument("--size", type=int, default=32, help="frame side")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--profile-steps", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed block (6 blocks)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (as on a GPU; slow here)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--top", type=int, default=20, help="rows of the added-ops table")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [row for name in MODELS for row in measure(name, args)]
    amp = "bf16 autocast" if args.amp else "float32"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        "# A purifying step against a CE step: Former-DFER vs R18-LSTM (CPU profile)", "",
        f"`python benchmarks/speed/profile_overhead.py{' ' + ' '.join(argv or sys.argv[1:])}`", "",
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s) of {os.cpu_count()} "
        f"(load average {load:.1f} at the end), {amp}; width {args.width}, {args.frames}×"
        f"{args.size}² clips, batch {args.batch}; {args.profile_steps} profiled steps; times: "
        "the host CPU time of the thread (the machine is shared: wall time moves with the "
        f"other work), medians over 6 rounds of a CE and a purifying block of {args.steps} "
        "steps back to back (the overhead: the median of the rounds' ratios); the EMA update "
        "alone: both ways alternated. *Dispatches*: `aten::` "
        "ops with no `aten::` op above them, what the host launches (each a kernel launch or "
        "more on a GPU); *calls*: every `aten::` event, nested ones included; self µs: host "
        "time in the op itself, per step.", "",
        "## The step", "", *step_table(rows), "",
        "## Ops each step adds to the CE step (dispatches / calls added per step, self µs in the step)",
        "", *added_table(rows, args.top), "", finding(rows), "",
    ])  # fmt: skip
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
