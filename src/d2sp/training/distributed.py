"""Multi-process training under ``torchrun``: the process group, rank info, sharded batches
and the reductions the trainer needs.

``torchrun --standalone --nproc_per_node=N -m d2sp train ...`` starts ``N`` processes with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in their environment; :func:`launch_info` reads
them and :func:`distributed_session` opens the process group (NCCL on CUDA, one GPU per
process, else gloo) and closes it again, also on errors. A plain ``d2sp train`` is one
process of a world of one, and every helper here is then the identity, so that both paths
run the same code.

Data order (:class:`ShardedBatchSampler`): one permutation of the epoch's indices, the same
on every process, cut into global batches of ``optim.batch_size``; process ``r`` of ``W``
takes ``batch[r::W]`` of every batch, so that the union of the processes' batches at step
``k`` is exactly the single-process batch ``k``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in its world: ``rank`` of ``world_size`` (``local_rank``
    on its machine). The default is the single process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """More than one process trains this run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes files and prints (rank 0)."""
        return self.rank == 0


SINGLE = DistInfo()


def launch_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """The :class:`DistInfo` a launcher (``torchrun``) put in the environment; a world of
    one when ``WORLD_SIZE`` is unset or 1."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE
    try:
        rank, local_rank = int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"]))
    except KeyError:
        raise ValueError(
            f"WORLD_SIZE={world} is set but RANK is not (start with torchrun)"
        ) from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world})")
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world)


def current_info() -> DistInfo:
    """The :class:`DistInfo` of the open process group (the single process when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return DistInfo(
        rank=dist.get_rank(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        world_size=dist.get_world_size(),
    )


DEVICE_TYPES = ("cpu", "cuda", "mps")


def device_problem(name: object) -> str | None:
    """Why ``name`` is no device a run can use (None when it is one): ``auto``, ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``."""
    if name == "auto":
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in DEVICE_TYPES:
        return (
            f"device: expected auto, cpu, cuda, cuda:N (the N-th GPU) or mps, got {name!r}"
            + (" (a GPU is cuda)" if str(name).lower().startswith("gpu") else "")
        )
    return None


def process_device(name: str, info: DistInfo) -> torch.device:
    """The device of this process for a config's ``device`` (``auto``, ``cpu``, ``cuda``,
    ``cuda:i``): under a launch of several processes, CUDA means ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: no such device (the message lists the valid ones), or CUDA asked for
            where there is none.
    """
    problem = device_problem(name)
    if problem is not None:
        raise ValueError(problem)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} asked for, but CUDA is not available here")
    if dev.type == "cuda" and info.enabled:
        if info.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {info.local_rank}: only {torch.cuda.device_count()} CUDA "
                "device(s) here (one process per GPU: lower --nproc_per_node)"
            )
        dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    return dev


@contextmanager
def distributed_session(device: torch.device, info: DistInfo) -> Iterator[DistInfo]:
    """Open the process group for ``info`` (NCCL for a CUDA ``device``, else gloo) and
    destroy it on the way out, errors included.

    A group that is already open (a run started from inside a run, e.g. cleanlab's fold
    trainings) is used as it is and left open; a world of one opens nothing.
    """
    if not info.enabled or dist.is_initialized():
        yield info
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {}
    if (
        device.type == "cuda"
        and "device_id" in inspect.signature(dist.init_process_group).parameters
    ):
        kwargs["device_id"] = device  # binds the NCCL communicator to this process's GPU
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, **kwargs)
    try:
        yield info
        dist.barrier()  # every process is done communicating before any tears down
    finally:
        dist.destroy_process_group()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the others (e.g. a dataset generated or cached
    once, then read by everyone)."""
    info = current_info()
    if info.enabled and not info.is_main:
        dist.barrier()
    yield
    if info.enabled and info.is_main:
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` (any picklable value) on every process."""
    if not current_info().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj) -> list:
    """Every process's ``obj`` (any picklable value), in rank order; ``[obj]`` in a world of
    one."""
    info = current_info()
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def _reduce(tensor: torch.Tensor, op: str) -> torch.Tensor:
    if not current_info().enabled:
        return tensor
    dtype, device = tensor.dtype, tensor.device
    # bool and small ints have no reduction in NCCL/gloo: widen, reduce, narrow back
    out = tensor.to(torch.int32) if dtype in (torch.bool, torch.int8, torch.int16) else tensor
    if dist.get_backend() == "nccl" and device.type != "cuda":
        out = out.to(torch.device("cuda", torch.cuda.current_device()))
    out = out.clone()
    dist.all_reduce(out, op=getattr(dist.ReduceOp, op))
    out = out.to(device)
    return out > 0 if dtype == torch.bool else out.to(dtype)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``tensor`` over the processes (for bool, the logical or), as a
    tensor of its dtype, shape and device; ``tensor`` itself is not modified (and is what
    comes back in a world of one)."""
    return _reduce(tensor, "SUM")


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise minimum of ``tensor`` over the processes (see :func:`all_reduce_sum`)."""
    return _reduce(tensor, "MIN")


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over the processes (see :func:`all_reduce_sum`)."""
    return _reduce(tensor, "MAX")


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Overwrite ``module``'s buffers with rank 0's (e.g. BatchNorm running statistics, which
    each process updates from its own share of a batch), in place."""
    if not current_info().enabled:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


def check_same(tensor: torch.Tensor, what: str) -> None:
    """Raise ``RuntimeError`` naming ``what`` when ``tensor`` differs between the processes
    (a disagreement that would otherwise end in a collective waiting forever)."""
    if current_info().enabled and not torch.equal(all_reduce_min(tensor), all_reduce_max(tensor)):
        raise RuntimeError(f"the processes disagree on {what}")


def check_replicas(*modules: torch.nn.Module, what: str = "model") -> None:
    """Raise ``RuntimeError`` when the parameters and buffers of ``modules`` differ between
    processes (compared through a float64 fingerprint of every tensor)."""
    tensors = [t.detach() for m in modules for t in (*m.parameters(), *m.buffers())]
    if not current_info().enabled or not tensors:
        return
    fingerprint = torch.stack([t.double().sum() + t.double().abs().sum() for t in tensors])  # (P,)
    check_same(fingerprint, f"the {what} (the replicas have diverged)")


class ShardedBatchSampler(Sampler[list[int]]):
    """This process's share of the batches over positions ``0 .. n-1``.

    One order per pass, the same on every process (``torch.randperm(n, generator)`` when
    ``shuffle``, else ``0 .. n-1``), cut into global batches of ``batch_size`` (the last one
    shorter, or dropped with ``drop_last``); process ``rank`` of ``world_size`` gets
    ``batch[rank::world_size]`` of every global batch. With ``world_size == 1`` these are
    the batches of ``DataLoader(shuffle=shuffle, generator=generator, drop_last=drop_last)``
    (give the loader the same ``generator``: it draws its worker seed from it first).

    A share can only be empty in a last, short batch. Then with ``pad_empty`` the process
    gets the batch's first position as a stand-in, which a training step weights by 0 (see
    :meth:`share_sizes`; every process must take part in each step of a DDP model);
    without it the batch is skipped on that process.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        pad_empty: bool = False,
    ):
        check_batch_size(batch_size, world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected a value in [0, {world_size}), got {rank}")
        if shuffle and generator is None:
            raise ValueError("shuffle: needs a seeded generator, the same on every process")
        self.n, self.batch_size = int(n), int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.generator = shuffle, generator
        self.drop_last, self.pad_empty = drop_last, pad_empty

    def __len__(self) -> int:
        """Global batches per pass (a skipped empty share still counts)."""
        if self.drop_last:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)

    def share_sizes(self, step: int) -> tuple[int, int]:
        """``(local, global)`` sample counts of batch ``step``: this process's share (0 for a
        stand-in) and the whole batch."""
        total = min(self.batch_size, self.n - step * self.batch_size)
        return len(range(self.rank, total, self.world_size)), total

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator).tolist()
        else:
            order = list(range(self.n))
        b = self.batch_size
        for step in range(len(self)):
            batch = order[step * b : (step + 1) * b]
            share = batch[self.rank :: self.world_size]
            if share:
                yield share
            elif self.pad_empty:
                yield batch[:1]


def check_batch_size(batch_size: int, world_size: int) -> int:
    """Per-process batch size of a global ``batch_size``; ``ValueError`` when it does not
    divide by ``world_size``."""
    if batch_size < 1 or batch_size % world_size:
        raise ValueError(
            f"optim.batch_size ({batch_size}) is the global batch and must be a positive "
            f"multiple of the number of processes ({world_size})"
        )
    return batch_size // world_size
