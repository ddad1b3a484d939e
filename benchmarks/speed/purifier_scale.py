"""Cost of the purifier's epoch step as the number of samples grows.

For N samples, one epoch's records are staged batch by batch (not timed: that is the
training loop's per-step cost), then ``end_epoch()`` — commit the records into the
``(N, t)`` history (and the ``(N, K)`` staging row), run CGP and FGC, update the kept set and labels — is timed, with and
without the per-epoch ledger, together with the memory the purifier holds.

    python benchmarks/speed/purifier_scale.py --sizes 10000 100000 1000000 10000000 [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))  # the checkout's

from d2sp.purify import create_purifier  # noqa: E402


def held_bytes(purifier) -> int:
    """Bytes of the tensors the purifier's records hold (staging row O(N·K), history O(N·t))."""
    r = purifier.records
    names = ("weight", "pred", "p_pred", "p_label", "count", "probs", "staged_weight", "seen")
    tensors = [getattr(r, f) for f in (*names, "rescored")]
    return sum(t.numel() * t.element_size() for t in tensors)


def fill_epoch(purifier, n: int, k: int, device, batch: int, gen) -> None:
    for start in range(0, n, batch):
        idx = torch.arange(start, min(n, start + batch), device=device)
        logits = torch.randn(len(idx), k, device=device, generator=gen)
        w = torch.rand(len(idx), device=device, generator=gen)
        purifier.record(idx, logits, w)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--t", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5, help="timed epoch steps per size")
    ap.add_argument("--mode", default="paper")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(torch.get_num_threads())
    print(f"# purifier epoch step — mode {args.mode}, K={args.classes}, t={args.t}, "
          f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| N | end_epoch ms (no ledger) | end_epoch ms (ledger) | history MiB | per-sample bytes |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        gen = torch.Generator(device=device).manual_seed(0)
        labels = torch.randint(0, args.classes, (n,), generator=torch.Generator().manual_seed(0))
        row = []
        for keep_ledger in (False, True):
            pur = create_purifier(
                args.mode, labels, num_classes=args.classes, t=args.t, warmup_epochs=0,
                device=device, keep_ledger=keep_ledger,
            )
            times = []
            for _ in range(args.t + args.epochs):
                fill_epoch(pur, n, args.classes, device, 65536, gen)
                sync(device)
                t0 = time.perf_counter()
                pur.end_epoch()
                sync(device)
                times.append(time.perf_counter() - t0)
            row.append(1000 * sorted(times[args.t:])[len(times[args.t:]) // 2])  # median
            mem = held_bytes(pur)
        print(f"| {n:,} | {row[0]:.1f} | {row[1]:.1f} | {mem / 2**20:.1f} | {mem / n:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
