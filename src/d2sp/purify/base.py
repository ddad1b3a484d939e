"""The purifier contract: one object a training loop drives with six calls, for every mode.

A loop (the trainer's, or your own)::

    purifier = create_purifier("paper", labels, num_classes=K, model=model)
    for epoch in range(epochs):
        for x, _, idx in batches(purifier.train_indices()):
            logits, w = model(augment(x))                      # (B, K), (B,) or None
            loss = purifier.loss(logits, w, idx)               # trains on ỹ; records the batch
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            purifier.after_step()                              # e.g. a teacher's update
        for x, _, idx in batches(purifier.rescore_indices()):  # views: purifier.rescore_view
            purifier.rescore(idx, x)                           # no gradient
        purifier.end_epoch()                                   # decisions for the next epoch

:class:`Purifier` owns what every mode shares: the annotation ``y`` (never changed), the
current training labels ``ỹ``, the kept mask, the records (:class:`~d2sp.purify.records.
Records`), the combination of records across processes, the ledger and the counts. A mode
is a subclass that declares its options (:attr:`Purifier.defaults`) and checks them
(:meth:`Purifier.check`), and implements :meth:`Purifier.decide` over the records; where it
needs them it also overrides :meth:`Purifier.extra_loss`, :meth:`Purifier.rescore_indices`
(and :attr:`Purifier.rescore_view`), :meth:`Purifier.score_batch` (e.g. with a teacher it
owns) and :meth:`Purifier.mode_state_dict`. Register it with
:func:`d2sp.purify.registry.register_purifier`.

Shapes: ``N`` samples, ``K`` classes, ``B`` a batch, ``W`` records kept per sample.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from d2sp.purify.ledger import Ledger, count_states, epoch_records, state_codes
from d2sp.purify.losses import weighted_cross_entropy
from d2sp.purify.records import Records

VIEWS = ("train", "eval")


@dataclass
class Decision:
    """What a mode decides at the end of an epoch, for the next one; ``(N,)`` tensors on the
    purifier's device.

    Attributes:
        keep: bool, trained next epoch (the set D3).
        labels: int64 training labels ``ỹ`` of next epoch.
        decided: bool, a decision was taken for the sample (else it is undecided).
        score: float, the score the decision looked at (NaN where none), for the ledger.
        delta_p: float, the correction margin ``Δp`` (NaN where none), for the ledger.
        suspicion: float, higher = more likely a label issue or an unusable sample; None
            takes :meth:`Purifier.default_suspicion`.
        suggested: int64 suggested label of each sample (with ``suspicion``).
        corrected: bool, the samples the ledger shows as corrected; None: those trained on a
            label other than the annotation (a mode that trains some samples on other labels
            for its own purposes, e.g. probes, says which changes are corrections).
    """

    keep: torch.Tensor
    labels: torch.Tensor
    decided: torch.Tensor
    score: torch.Tensor
    delta_p: torch.Tensor
    suspicion: torch.Tensor | None = None
    suggested: torch.Tensor | None = None
    corrected: torch.Tensor | None = None


class OptionError(ValueError):
    """Options a mode does not take, or values it refuses; the message lists every problem
    (also in :attr:`problems`, one ``"name: ..."`` string each)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)

    def __reduce__(self):  # rebuilt from the list (across processes: suite jobs, loader workers)
        return type(self), (self.problems,)


def as_label_tensor(labels, num_classes: int) -> torch.Tensor:
    """``(N,)`` int64 CPU tensor of class indices in ``[0, num_classes)``; ValueError otherwise."""
    arr = torch.as_tensor(np.asarray(labels))
    if arr.ndim != 1 or arr.numel() == 0:
        raise ValueError(f"labels: expected a non-empty 1-D array, got shape {tuple(arr.shape)}")
    if arr.is_floating_point() or arr.dtype == torch.bool:
        raise ValueError(f"labels: expected integer class indices, got dtype {arr.dtype}")
    arr = arr.long()
    bad = ((arr < 0) | (arr >= num_classes)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(
            f"labels: expected values in [0, {num_classes}), got {int(arr[i])} at index {i} "
            f"({bad.numel()} out of range in all)"
        )
    return arr


def expect(problems: list[str], name: str, value, ok: bool, expected: str) -> None:
    """Append ``"name: expected X, got Y"`` to ``problems`` unless ``ok``."""
    if not ok:
        problems.append(f"{name}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class NoOptions:
    """The options of a mode that has none."""


def _type_name(hint) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(hint))
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def coerce_option(name: str, value, hint):
    """``value`` as the option's declared type ``hint`` (an int for a float, a whole float for
    an int); ValueError ``"name: expected X, got Y"`` when it is not one."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            if arm is type(None) and value is None:
                return None
            try:
                if arm is not type(None):
                    return coerce_option(name, value, arm)
            except ValueError:
                pass
    elif origin is Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool):
            return value
    elif hint is bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
    elif hint is int:
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value  # a type the schema does not check
    raise ValueError(f"{name}: expected {_type_name(hint)}, got {value!r}")


class Purifier:
    """Base of every purification mode (see the module docstring for the loop).

    Args:
        labels: ``(N,)`` original annotation ``y`` (never changed).
        num_classes: ``K``.
        model: the model being trained (``model(x) -> (logits (B, K), weights (B,) or
            None)``); needed by :meth:`rescore` and by modes with a teacher. Can be given
            later with :meth:`bind`.
        device: where the records live; put them on the model's device so that recording
            a batch never synchronises.
        keep_ledger: keep every epoch's arrays in :attr:`ledger`.
        **options: the mode's options (:attr:`defaults`); unknown names and bad values
            raise :class:`OptionError` listing every problem.
    """

    mode: ClassVar[str] = "base"
    Options: ClassVar[type] = NoOptions  # a frozen dataclass: the mode's options, typed, with defaults
    defaults: ClassVar[dict[str, Any]] = {}  # derived from Options
    rescore_view: ClassVar[str] = "train"  # views re-scored: augmented "train" or plain "eval"
    selects_before_training: ClassVar[bool] = False  # see select()
    # trains a second network (d2sp.purify.peer): needs the optimiser (bind), runs through
    # batch_loss only, and is refused in a multi-process run
    trains_peer: ClassVar[bool] = False

    def __init__(
        self,
        labels,
        *,
        num_classes: int,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        device: torch.device | str = "cpu",
        keep_ledger: bool = True,
        **options,
    ):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes}")
        self.options = self.resolve(options)
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.labels = as_label_tensor(labels, self.num_classes)  # (N,) CPU, never changed
        self._labels_dev = self.labels.to(self.device)
        self.records = Records(self._labels_dev, self.num_classes, self.window, device=self.device)
        self.epoch = 0  # epochs ended so far
        self.keep_mask = torch.ones(len(self.labels), dtype=torch.bool)  # (N,) CPU
        self.current_labels = self.labels.clone()  # (N,) CPU
        self._current_dev = self._labels_dev.clone()
        self.ledger = Ledger(labels=self.labels.numpy().copy()) if keep_ledger else None
        self.events: list[str] = []  # what the mode wants the user to know, one line each
        self._corrected: torch.Tensor | None = None  # (N,) when a mode says which changes are corrections
        self.model: nn.Module | None = None
        self.batch_logits: torch.Tensor | None = None  # (B, K) of the last batch_loss, if unmixed
        self.setup()
        self.optimizer: torch.optim.Optimizer | None = None
        if model is not None:
            self.bind(model, optimizer=optimizer)

    # ---- options --------------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not (dataclasses.is_dataclass(cls.Options) and isinstance(cls.Options, type)):
            raise TypeError(f"{cls.__name__}.Options: expected a dataclass, got {cls.Options!r}")
        cls.defaults = {f.name: f.default for f in dataclasses.fields(cls.Options)}

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """Each option's declared type, from :attr:`Options`."""
        return typing.get_type_hints(cls.Options)

    @classmethod
    def resolve(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The mode's options: ``options`` over :attr:`defaults` (a ``None`` value takes the
        default), each as its declared type, checked (:meth:`check`)."""
        unknown = sorted(set(options) - set(cls.defaults))
        problems = [
            f"{name}: mode {cls.mode!r} has no option {name!r}; its options: "
            f"{', '.join(cls.defaults) or '(none)'}"
            for name in unknown
        ]
        resolved = dict(cls.defaults)
        types_ = cls.option_types()
        for name, value in options.items():
            if name not in cls.defaults or value is None:
                continue
            try:
                resolved[name] = coerce_option(name, value, types_[name])
            except ValueError as e:
                problems.append(str(e))
        if not problems:
            problems = cls.check(resolved)
        if problems:
            raise OptionError(problems)
        return resolved

    @classmethod
    def check(cls, options: dict[str, Any]) -> list[str]:
        """Problems with the values of the resolved ``options`` (empty when fine)."""
        return []

    @classmethod
    def describe(cls, options: dict[str, Any]) -> list[str]:
        """What the mode does with these resolved ``options``, in words, one line each (the
        run report shows them). By default the first paragraph of the class docstring and the
        options as ``name=value`` (``auto`` for ``None``: the mode chooses); a mode may say
        more, e.g. what its options do together."""
        doc = (cls.__doc__ or "").strip().split("\n\n", 1)[0]
        summary = " ".join(doc.replace("``", "").split())
        summary = summary.replace("; see the module docstring for each mechanism", "")
        lines = [summary or f"mode {cls.mode!r}"]
        words = {None: "auto", True: "true", False: "false"}
        shown = [f"{k}={words.get(v, v) if isinstance(v, bool | None) else v}" for k, v in options.items()]
        if shown:
            lines.append("options: " + ", ".join(shown))
        return lines

    @classmethod
    def schedule_problems(cls, options: dict[str, Any], *, epochs: int, dataset: str) -> list[str]:
        """Problems of these resolved options with a run of ``epochs`` on ``dataset``."""
        return []

    @property
    def window(self) -> int:
        """Records kept per sample (the longest window the mode reads)."""
        return 1

    @property
    def weight_branch(self) -> bool:
        """Whether the model should have a weight branch (else plain CE on the logits)."""
        return True

    @property
    def weight_hidden(self) -> int | None:
        """Hidden width the mode wants for the weight branch (None: the default)."""
        return None

    @property
    def train_records(self) -> bool:
        """Whether :meth:`loss` records the training pass (else only re-scores count)."""
        return True

    # ---- mode hooks -----------------------------------------------------------------------

    def setup(self) -> None:
        """Create the mode's own state (called once at the end of ``__init__``)."""

    def bind(self, model: nn.Module, *, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Give the purifier the model being trained (for :meth:`rescore` and teachers) and
        its optimiser (a mode that trains a second network steps it like the first)."""
        self.model = model
        self.optimizer = optimizer

    def decide(self, seen: torch.Tensor) -> Decision:
        """The decision for the next epoch from the committed records; ``seen (N,)`` marks the
        samples recorded in the epoch just ended."""
        raise NotImplementedError

    def extra_loss(self, weights: torch.Tensor | None) -> torch.Tensor | float:
        """A loss term the mode adds to the weighted cross-entropy (0 by default)."""
        return 0.0

    def on_step(self) -> None:
        """Called by :meth:`after_step` (e.g. an EMA teacher's update)."""

    def score_batch(self, inputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits (B, K), weights (B,) or None)`` of the re-scoring pass: the model in eval
        mode (its mode is restored), or a mode's teacher."""
        model = self._bound_model()
        was_training = model.training
        model.eval()
        try:
            return model(inputs)
        finally:
            model.train(was_training)

    def modules(self) -> list[nn.Module]:
        """Models the mode owns besides the trained one (a teacher), for replica checks."""
        return []

    def mode_state_dict(self) -> dict:
        return {}

    def load_mode_state_dict(self, state: dict) -> None:
        pass

    @classmethod
    def select(cls, context, options: dict[str, Any]) -> dict[str, Any]:
        """For a mode with :attr:`selects_before_training`: decide the kept set and labels
        before training (``context`` is :class:`d2sp.purify.selection.SelectionContext`);
        returns constructor arguments (e.g. ``keep``, ``targets``)."""
        return {}

    # ---- the loop's calls -----------------------------------------------------------------

    def train_indices(self) -> np.ndarray:
        """Indices of the samples to train on this epoch, int64 (the kept ones)."""
        return self.kept_indices()

    def loss(
        self,
        logits: torch.Tensor,
        weights: torch.Tensor | None,
        indices,
        *,
        label_smoothing: float = 0.0,
        record: bool = True,
    ) -> torch.Tensor:
        """The training loss of one batch: ``CE(w · z, ỹ)`` averaged over the batch (plain CE
        when ``weights`` is None) plus the mode's :meth:`extra_loss`; the batch is recorded
        (detached) unless ``record=False``.

        Args:
            logits: ``(B, K)`` classifier logits ``z``, with gradient.
            weights: ``(B,)`` weight-branch outputs, or None.
            indices: ``(B,)`` int sample indices (positions in the annotation).
        """
        idx = torch.as_tensor(indices)
        targets = self.labels_for(idx).to(logits.device, non_blocking=True)  # (B,)
        loss = weighted_cross_entropy(logits, weights, targets, label_smoothing=label_smoothing)
        loss = loss + self.extra_loss(weights)
        if record and self.train_records:
            self.record(idx, logits.detach(), None if weights is None else weights.detach())
        return loss

    def batch_loss(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        indices,
        *,
        label_smoothing: float = 0.0,
        record: bool = True,
    ) -> torch.Tensor:
        """The training loss of one batch, running ``model`` on ``inputs`` itself: the call a
        loop makes (every mode takes it). By default ``model(inputs)`` then :meth:`loss`; a
        mode that trains on mixed inputs or a second network overrides it. The batch's
        unmixed logits, when there are any, are left in :attr:`batch_logits` (detached).

        Args:
            model: the model being trained (or its distributed wrapper),
                ``model(x) -> (logits (B, K), weights (B,) or None)``.
            inputs: ``(B, ...)`` the batch, augmented as the loop trains.
            indices: ``(B,)`` int sample indices (positions in the annotation).
        """
        logits, weights = model(inputs)  # (B, K), (B,) or None
        self.batch_logits = logits.detach()
        return self.loss(logits, weights, indices, label_smoothing=label_smoothing, record=record)

    def after_step(self) -> None:
        """Call after each optimiser step."""
        self.on_step()

    def rescore_indices(self) -> np.ndarray:
        """Indices to score without gradient before :meth:`end_epoch`, int64: the pruned
        samples (when ``revisit_pruned``), so that a pruned sample can come back."""
        if not self.options.get("revisit_pruned", True):
            return np.zeros(0, dtype=np.int64)
        return self.pruned_indices()

    @torch.no_grad()
    def rescore(self, indices, inputs) -> None:
        """Score one batch of :meth:`rescore_indices` (views: :attr:`rescore_view`) with
        :meth:`score_batch` and record it."""
        logits, weights = self.score_batch(inputs)  # (B, K), (B,) or None
        self.record(indices, logits, weights, rescored=True)

    def end_epoch(self, reduce=None) -> dict[str, int]:
        """Commit the epoch's records, take the mode's decision, log the ledger.

        ``reduce`` (multi-process runs) sums a tensor over the processes (e.g.
        :func:`d2sp.training.distributed.all_reduce_sum`): the processes' records are combined first,
        so that every process takes the same decision.

        Returns counts for the epoch just ended: ``recorded``, ``kept``, ``pruned``,
        ``corrected``, ``undecided``.
        """
        if reduce is not None:
            self.records.combine(reduce)
        seen = self.records.commit()
        self.epoch += 1
        d = self.decide(seen)
        self._current_dev = d.labels.clone()
        self.keep_mask = d.keep.cpu()
        self.current_labels = d.labels.cpu()
        corrected = d.labels != self._labels_dev if d.corrected is None else d.corrected
        self._corrected = (corrected & d.keep).cpu()
        state = state_codes(d.decided, d.keep, corrected)
        if self.ledger is not None:
            suspicion, suggested = d.suspicion, d.suggested
            if suspicion is None:
                suspicion, suggested = self.default_suspicion(d)
            self.ledger.append(
                **epoch_records(seen, self.records.newest()),
                score=d.score.cpu().numpy().astype(np.float32),
                delta_p=d.delta_p.cpu().numpy().astype(np.float32),
                state=state.cpu().numpy(),
                label=d.labels.cpu().numpy().astype(np.int16),
                suspicion=suspicion.cpu().numpy().astype(np.float32),
                suggested=suggested.cpu().numpy().astype(np.int16),
            )
        return count_states(state, seen)

    # ---- queries --------------------------------------------------------------------------

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def labels_for(self, indices) -> torch.Tensor:
        """``(B,)`` int64 current training labels ``ỹ`` of these samples, on ``indices``' device."""
        idx = torch.as_tensor(indices)
        if idx.device == self.device:
            return self._current_dev[idx.long()]
        return self.current_labels[idx.cpu().long()].to(idx.device)

    def kept_indices(self) -> np.ndarray:
        """Indices of the samples kept for the next epoch (the set D3), int64."""
        return self.keep_mask.nonzero().squeeze(1).numpy()

    def pruned_indices(self) -> np.ndarray:
        """Indices of the samples not kept next epoch (the set D2), int64."""
        return (~self.keep_mask).nonzero().squeeze(1).numpy()

    def corrected_indices(self) -> np.ndarray:
        """Indices the last decision corrected (trained on a label other than the annotation
        because the mode judged the annotation wrong), int64."""
        if self._corrected is None:  # no decision yet: a selection given before training
            changed = (self.current_labels != self.labels) & self.keep_mask
            return changed.nonzero().squeeze(1).numpy()
        return self._corrected.nonzero().squeeze(1).numpy()

    def suspicion(self) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``(N,)`` suspicion scores (higher = more likely a label issue or an
        unusable sample; NaN before any record) and ``(N,)`` suggested labels."""
        if self.ledger is None or self.ledger.num_epochs == 0:
            n = self.num_samples
            return np.full(n, np.nan, dtype=np.float32), self.labels.numpy().copy()
        return self.ledger.rows["suspicion"][-1], self.ledger.rows["suggested"][-1].astype(np.int64)

    def default_suspicion(self, d: Decision) -> tuple[torch.Tensor, torch.Tensor]:
        """``1 − mean(w · p[y])`` over the sample's recorded window (NaN before any record),
        and as the suggested label the training label when corrected, else the newest
        prediction."""
        r = self.records
        valid = torch.arange(r.width, device=r.count.device) < r.count.clamp(max=r.width)[:, None]
        fit = torch.where(valid, r.weight * r.p_label, torch.zeros_like(r.weight))  # (N, W)
        mean = fit.sum(1) / valid.sum(1).clamp(min=1)  # (N,)
        suspicion = torch.where(r.count > 0, 1.0 - mean, torch.full_like(mean, float("nan")))
        newest = r.pred[:, 0].long()  # (N,)
        corrected = d.labels != self._labels_dev
        suggested = torch.where(corrected | (r.count == 0), d.labels, newest)
        return suspicion, suggested

    # ---- recording ------------------------------------------------------------------------

    @torch.no_grad()
    def record(self, indices, logits: torch.Tensor, weights: torch.Tensor | None = None, *, rescored: bool = False) -> None:
        """Record one batch: ``indices (B,)``, ``logits (B, K)`` (unweighted ``z``),
        ``weights (B,)`` or None (treated as 1). :meth:`loss` and :meth:`rescore` call this;
        a loop computing its own loss may call it instead. The last record of a sample in
        an epoch wins."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits: expected shape (B, {self.num_classes}), got {tuple(logits.shape)}"
            )
        idx = torch.as_tensor(indices).to(self.device, non_blocking=True).long()  # (B,)
        if idx.shape != logits.shape[:1]:
            raise ValueError(
                f"indices: expected shape ({logits.shape[0]},) to match logits, "
                f"got {tuple(idx.shape)}"
            )
        probs = torch.softmax(logits.detach().float(), dim=1).to(self.device)  # (B, K)
        if weights is None:
            w = torch.ones(len(idx), dtype=torch.float32, device=self.device)  # (B,)
        else:
            w = weights.detach().float().reshape(-1).to(self.device)  # (B,)
        self.records.stage(idx, probs, w, rescored=rescored)

    def _bound_model(self) -> nn.Module:
        if self.model is None:
            raise RuntimeError(
                f"mode {self.mode!r}: no model to score with; pass model= to create_purifier "
                "or call purifier.bind(model)"
            )
        return self.model

    def _set_selection(self, keep: torch.Tensor, labels: torch.Tensor) -> None:
        """Set the kept mask and the training labels (``(N,)`` each) outside an epoch's end."""
        self.keep_mask = keep.cpu().bool()
        self.current_labels = labels.cpu().long()
        self._current_dev = self.current_labels.to(self.device)

    # ---- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything a resumed run needs (the ledger is saved on its own)."""
        return {
            "mode": self.mode,
            "epoch": self.epoch,
            "records": self.records.state_dict(),
            "keep_mask": self.keep_mask.clone(),
            "current_labels": self.current_labels.clone(),
            "corrected": None if self._corrected is None else self._corrected.clone(),
            "events": list(self.events),
            "mode_state": self.mode_state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("mode", self.mode) != self.mode:
            raise ValueError(f"purifier state: expected mode {self.mode!r}, got {state['mode']!r}")
        self.epoch = int(state["epoch"])
        self.records.load_state_dict(state["records"])
        self._set_selection(state["keep_mask"], state["current_labels"])
        corrected = state.get("corrected")
        self._corrected = None if corrected is None else corrected.clone().bool()
        self.events = list(state.get("events", []))
        self.load_mode_state_dict(state.get("mode_state", {}))
