"""Per-sample ring buffer of the last ``t`` training records.

A record is what one training forward pass says about one sample: its weight ``w``, its
predicted label, ``p[pred]`` and ``p[y]`` (``y`` the original annotation). Records arrive
batch by batch into a staging row and are committed once per epoch, so a sample seen twice
in an epoch still gets one record. Memory is ``O(N · t)``.
"""

from __future__ import annotations

import torch

FIELDS = ("weight", "pred", "p_pred", "p_label")


class History:
    """Ring buffer of width ``t`` over ``N`` samples, on one device."""

    def __init__(self, num_samples: int, t: int, *, device: torch.device | str = "cpu"):
        self.t = t
        dev = torch.device(device)
        self.weight = torch.zeros(num_samples, t, device=dev)  # (N, t)
        self.pred = torch.zeros(num_samples, t, dtype=torch.int16, device=dev)  # (N, t)
        self.p_pred = torch.zeros(num_samples, t, device=dev)  # (N, t)
        self.p_label = torch.zeros(num_samples, t, device=dev)  # (N, t)
        self.count = torch.zeros(num_samples, dtype=torch.int64, device=dev)  # (N,)
        # staging row for the epoch in progress
        self.stage = {f: torch.zeros_like(getattr(self, f)[:, 0]) for f in FIELDS}
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=dev)  # (N,)

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
        idx = seen.nonzero().squeeze(1)  # (M,)
        pos = self.count[idx] % self.t  # (M,)
        for f in FIELDS:
            getattr(self, f)[idx, pos] = self.stage[f][idx]
        self.count[idx] += 1
        self.seen.zero_()
        return seen

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f: getattr(self, f).cpu() for f in (*FIELDS, "count")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for f in (*FIELDS, "count"):
            target = getattr(self, f)
            if state[f].shape != target.shape:
                raise ValueError(
                    f"history field {f!r}: expected shape {tuple(target.shape)}, "
                    f"got {tuple(state[f].shape)}"
                )
            target.copy_(state[f].to(target.device))
