"""A trivial purification mode, added as a user would add one: this file and its registration."""

import torch

from d2sp.purify import Decision, Purifier, register_purifier


@register_purifier("drop-doubtful")
class DropDoubtful(Purifier):
    """Leaves out a sample whose newest ``p[y]`` is below ``floor``; never relabels."""

    defaults = {"floor": 0.05}

    @classmethod
    def check(cls, o):
        ok = 0.0 <= o["floor"] < 1.0
        return [] if ok else [f"floor: expected a value in [0, 1), got {o['floor']!r}"]

    def decide(self, seen):
        r = self.records
        keep = (r.count == 0) | (r.p_label[:, 0] >= self.options["floor"])
        zeros = torch.zeros_like(r.p_label[:, 0])
        return Decision(keep, self._labels_dev, r.count > 0, r.p_label[:, 0], zeros)
