"""A trivial purification mode, added as a user would add one: this file and its registration."""

from dataclasses import dataclass

import torch

from d2sp.purify import Decision, Purifier, register_purifier


@register_purifier("drop-doubtful")
class DropDoubtful(Purifier):
    """Leaves out a sample whose newest ``p[y]`` is below ``floor``; never relabels."""

    @dataclass(frozen=True)
    class Options:
        floor: float = 0.05  # typed: a config value that is not a number is refused

    @classmethod
    def check(cls, o):
        ok = 0.0 <= o["floor"] < 1.0
        return [] if ok else [f"floor: expected a value in [0, 1), got {o['floor']!r}"]

    def decide(self, seen):
        r = self.records
        keep = (r.count == 0) | (r.p_label[:, 0] >= self.options["floor"])
        zeros = torch.zeros_like(r.p_label[:, 0])
        return Decision(keep, self._labels_dev, r.count > 0, r.p_label[:, 0], zeros)
