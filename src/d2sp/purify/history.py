"""Per-sample ring buffer of the last ``t`` training records.

A record is what one training forward pass says about one sample: its weight ``w``, its
predicted label, ``p[pred]`` and ``p[y]`` (``y`` the original annotation). Records arrive
batch by batch into a staging row and are committed once per epoch, so a sample seen twice
in an epoch still gets one record. Memory is ``O(N · t)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

FIELDS = ("weight", "pred", "p_pred", "p_label")


def reduce_staged(
    staged: dict[str, torch.Tensor],
    seen: torch.Tensor,
    reduce: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Combine the records that several processes staged this epoch, in place.

    Every process calls this with its own ``staged`` tensors (``(N, ...)`` each) and ``seen``
    mask (``(N,)`` bool); ``reduce`` sums a tensor over the processes (e.g.
    :func:`d2sp.distributed.all_reduce_sum`). Each sample must be recorded by at most one
    process per pass: a record is then the sum of itself and zeros, exactly. Afterwards
    every process holds every record and ``seen`` is the union; entries no process recorded
    keep their (identical) earlier values, as in a single process.
    """
    count = reduce(seen.to(torch.int32))  # (N,) processes that recorded each sample
    if bool((count > 1).any()):
        raise RuntimeError(
            f"{int((count > 1).sum())} samples were recorded by more than one process this epoch"
        )
    union = count > 0  # (N,)
    for t in staged.values():
        shape = (-1, *([1] * (t.ndim - 1)))
        mine = torch.where(seen.reshape(shape), t, torch.zeros_like(t))  # (N, ...) own records
        t.copy_(torch.where(union.reshape(shape), reduce(mine), t))
    seen.copy_(union)


class History:
    """Ring buffer of width ``t`` over ``N`` samples, on one device.

    Each field is stored slot-major as ``(t, N)`` so that committing an epoch writes whole
    contiguous rows; the properties expose the ``(N, t)`` view the stages take.
    """

    def __init__(self, num_samples: int, t: int, *, device: torch.device | str = "cpu"):
        self.t = t
        dev = torch.device(device)
        self._slots = {
            "weight": torch.zeros(t, num_samples, dtype=torch.float32, device=dev),  # (t, N)
            "pred": torch.zeros(t, num_samples, dtype=torch.int16, device=dev),  # (t, N)
            "p_pred": torch.zeros(t, num_samples, dtype=torch.float32, device=dev),  # (t, N)
            "p_label": torch.zeros(t, num_samples, dtype=torch.float32, device=dev),  # (t, N)
        }
        self.count = torch.zeros(num_samples, dtype=torch.int64, device=dev)  # (N,)
        # staging row for the epoch in progress
        self.stage = {f: torch.zeros_like(v[0]) for f, v in self._slots.items()}  # (N,) each
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=dev)  # (N,)

    weight = property(lambda self: self._slots["weight"].T)  # (N, t)
    pred = property(lambda self: self._slots["pred"].T)  # (N, t)
    p_pred = property(lambda self: self._slots["p_pred"].T)  # (N, t)
    p_label = property(lambda self: self._slots["p_label"].T)  # (N, t)

    def stage_batch(
        self,
        indices: torch.Tensor,
        weight: torch.Tensor,
        pred: torch.Tensor,
        p_pred: torch.Tensor,
        p_label: torch.Tensor,
    ) -> None:
        """Stage one batch of records; every argument is ``(B,)`` on this device."""
        self.stage["weight"][indices] = weight.float()
        self.stage["pred"][indices] = pred.to(torch.int16)
        self.stage["p_pred"][indices] = p_pred.float()
        self.stage["p_label"][indices] = p_label.float()
        self.seen[indices] = True

    def commit(self) -> torch.Tensor:
        """Write the staged records into the ring; returns the ``(N,)`` mask of samples seen."""
        seen = self.seen.clone()
        pos = self.count % self.t  # (N,) slot each sample writes next
        for s in range(self.t):
            write = seen & (pos == s)  # (N,)
            for f, rows in self._slots.items():
                rows[s] = torch.where(write, self.stage[f], rows[s])
        self.count += seen
        self.seen.zero_()
        return seen

    def combine_staged(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Combine the staged records of several processes (see :func:`reduce_staged`)."""
        reduce_staged(self.stage, self.seen, reduce)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f: v.T.contiguous().cpu() for f, v in self._slots.items()}  # (N, t) each
        state["count"] = self.count.cpu()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for f in (*FIELDS, "count"):
            target = self.count if f == "count" else self._slots[f].T
            if state[f].shape != target.shape:
                raise ValueError(
                    f"history field {f!r}: expected shape {tuple(target.shape)}, "
                    f"got {tuple(state[f].shape)}"
                )
            target.copy_(state[f].to(target.device))
