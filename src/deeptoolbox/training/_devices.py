"""Where training runs: device choice, mixed precision and torch.distributed (DDP) set-up.

The device choice itself (CUDA, then MPS, then the CPU) is ``deeptoolbox._device``, shared
with inference.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deeptoolbox._device import best_device, gpu_device
from deeptoolbox.errors import OptionError
from deeptoolbox.training._acceleration import DeviceFacts, precision_for
from deeptoolbox.training._failures import regroup_store

__all__ = ["Placement", "place", "autocast_context"]


@dataclass
class Placement:
    """Device, precision and process-group facts for one training process."""

    device: torch.device
    precision: str  # "32", "bf16-mixed" or "16-mixed"
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # the group is the one train() created (kept between calls)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1 or dist.is_available() and dist.is_initialized()


def _gpu(environment: str) -> torch.device:
    device = gpu_device()
    if device is not None:
        return device
    raise OptionError(
        f"TrainingOptions: `execution_environment`={environment!r} needs a CUDA or MPS GPU, and "
        "none is available. Use 'auto' or 'cpu'."
    )


EXIT_WAIT_S = 60  # how long a process waits at exit for its peers to leave too
_CREATED: list = []  # the default group train() created: kept for later calls, left at exit


def _leave_created_group() -> None:
    """At interpreter exit: destroy the group train() created, if it is still the default.

    The processes leave together (gloo: a barrier that gives up after a while): a gloo group
    destroyed while a peer is still connected could abort the process ("terminate called
    without an active exception", seen once in ten 2-process runs).
    """
    if created_group():
        if dist.get_backend() == "gloo":
            with contextlib.suppress(Exception):  # a peer that failed or left: leave anyway
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=EXIT_WAIT_S))
        dist.destroy_process_group()
    _CREATED.clear()


def created_group() -> bool:
    """True when the process group in use is the one a train() call created (kept after it).

    Example:
        >>> created_group()
        False
    """
    return (
        bool(_CREATED)
        and dist.is_available()
        and dist.is_initialized()
        and (dist.group.WORLD is _CREATED[0])
    )


def _init_group(environment: str) -> tuple[int, int, bool]:
    """Join the process group: the one already there (a user's, or a previous train() call's),
    else a new one from the launcher's environment, kept until the interpreter exits."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), created_group()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise OptionError(
            f"TrainingOptions: `execution_environment`={environment!r} runs one process per "
            "device and must be started by a launcher. Run `deeptoolbox train --nproc N "
            "script.py`, `torchrun --nproc-per-node N script.py`, or call "
            "deeptoolbox.training.launch('script.py', N)."
        )
    backend = "nccl" if torch.cuda.is_available() and environment == "multi-gpu" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    store = regroup_store()  # after a failure aborted the last group (see _failures)
    if store is None:
        dist.init_process_group(backend)
    else:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    if not _CREATED:
        atexit.register(_leave_created_group)
    _CREATED[:] = [dist.group.WORLD]
    return dist.get_rank(), dist.get_world_size(), True


def _precision(option: str, device: torch.device) -> str:
    """The precision rule of training/_acceleration.py for this device."""
    return precision_for(option, DeviceFacts.of(device))


def place(environment: str, precision: str) -> Placement:
    """Pick the device (and join the process group for multi-gpu / parallel)."""
    rank, world, owns = 0, 1, False
    if environment in ("multi-gpu", "parallel"):
        rank, world, owns = _init_group(environment)
        local = int(os.environ.get("LOCAL_RANK", rank))
        use_cuda = torch.cuda.is_available() and (
            environment == "multi-gpu" or dist.get_backend() == "nccl"
        )
        device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if environment == "multi-gpu" and not use_cuda:
            device = torch.device("cpu")  # gloo on CPU: same code path, used for testing
    elif environment == "cpu":
        device = torch.device("cpu")
    elif environment == "gpu":
        device = _gpu(environment)
    else:
        device = best_device()
    return Placement(device, _precision(precision, device), rank, world, owns)


def autocast_context(placement: Placement):
    """The autocast context for the placement's precision (a no-op for '32')."""
    if placement.precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if placement.precision == "bf16-mixed" else torch.float16
    return torch.autocast(placement.device.type, dtype=dtype)
