"""How training runs fast on the device it found: precision, memory format, compile, loaders.

The choice is one pure function, :func:`choose_acceleration`, of the options and the device's
facts (:class:`DeviceFacts`), so every rule can be tested on any machine with made-up facts;
:func:`applied` then sets the global backend switches (cuDNN autotuning, TF32 matmuls) for
the run and puts the caller's values back afterwards.

The ``"auto"`` rules (documented in docs/training.md, "GPUs"):

- precision: bf16 autocast on a CUDA GPU that supports bfloat16, else fp16 autocast with a
  GradScaler on CUDA; float32 on the CPU and on MPS;
- memory format: channels_last on CUDA for a network with 2-D image inputs (4-D tensors);
- compile: on CUDA when the run has at least :data:`COMPILE_MIN_ITERATIONS` iterations
  (compiling takes tens of seconds and saves a fraction of each iteration, so it repays
  itself on long runs only), torch.compile is usable there and the solver is not L-BFGS;
- cuDNN autotuning (``cudnn.benchmark``) and TF32 matmuls: on CUDA;
- loaders: pinned memory on CUDA; for Datasets read through a DataLoader, ``num_workers``
  from the CPU count (a share per process, one core left for the training process, at most
  :data:`MAX_AUTO_WORKERS`), workers kept alive across epochs; 0 workers on the CPU.

On the CPU every "auto" gives what train() always did there: float32, contiguous, no
compile, no workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from deeptoolbox.errors import OptionError

__all__ = [
    "Acceleration", "DeviceFacts", "choose_acceleration", "precision_for", "applied", "COMPILE_MIN_ITERATIONS",
    "MAX_AUTO_WORKERS",
]  # fmt: skip

COMPILE_MIN_ITERATIONS = 1000
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class DeviceFacts:
    """What the acceleration rules need to know about the device and the machine.

    Example:
        >>> DeviceFacts("cuda", bf16=True, cpu_count=16).type
        'cuda'
    """

    type: str  # "cuda", "mps" or "cpu"
    bf16: bool = False  # the GPU runs bfloat16 natively
    cpu_count: int = 1
    local_processes: int = 1  # training processes on this machine (one per GPU)
    can_compile: bool = False  # torch.compile works for this device here (Triton for CUDA)

    @classmethod
    def of(cls, device: Any, local_processes: int = 1) -> DeviceFacts:
        """The facts of a ``torch.device`` on this machine.

        Example:
            >>> import torch
            >>> DeviceFacts.of(torch.device("cpu")).bf16
            False
        """
        import torch

        cuda = device.type == "cuda"
        return cls(
            device.type,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1),
            local_processes=max(1, local_processes),
            can_compile=cuda and _triton_present(),
        )  # fmt: skip


def _triton_present() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


@dataclass(frozen=True)
class Acceleration:
    """The choices made for one run (see the module docstring for the rules).

    Example:
        >>> Acceleration("bf16-mixed", True, True, True, True, True, 4).describe()
        'bf16-mixed, channels_last, compiled'
        >>> Acceleration("32", False, False, None, None, False, 0).describe()
        'float32'
    """

    precision: str  # "32", "bf16-mixed" or "16-mixed" (the latter with a GradScaler)
    channels_last: bool
    compile: bool
    cudnn_benchmark: bool | None  # None: left as the caller set it
    tf32: bool | None
    pin_memory: bool
    num_workers: int

    def describe(self) -> str:
        """What the progress display's first line says in brackets."""
        names = {"32": "float32", "bf16-mixed": "bf16-mixed", "16-mixed": "fp16-mixed + GradScaler"}
        parts = [names[self.precision]]
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("compiled")
        return ", ".join(parts)


def _auto_workers(facts: DeviceFacts) -> int:
    share = facts.cpu_count // facts.local_processes
    return max(0, min(MAX_AUTO_WORKERS, share - 1))


def precision_for(option: str, facts: DeviceFacts) -> str:
    """The precision in use for the ``precision`` option on a device with ``facts``.

    Example:
        >>> precision_for("auto", DeviceFacts("cuda", bf16=False))
        '16-mixed'
    """
    if option == "auto":
        if facts.type == "cuda":
            return "bf16-mixed" if facts.bf16 else "16-mixed"
        return "32"
    if option == "16-mixed" and facts.type == "cpu":
        raise OptionError(
            "TrainingOptions: `precision`='16-mixed' needs a GPU; on the CPU use 'bf16-mixed' or "
            "'32'. Received: precision='16-mixed' with execution_environment on the CPU."
        )
    if option == "bf16-mixed" and facts.type == "cuda" and not facts.bf16:
        raise OptionError(
            "TrainingOptions: `precision`='bf16-mixed' needs a GPU that runs bfloat16 (compute "
            "capability 8.0 or newer); this one does not. Use 'auto' or '16-mixed' (float16 with "
            "a GradScaler), or '32'. Received: precision='bf16-mixed'."
        )
    return option


def _switch(option: Any, default: bool) -> bool:
    return default if option == "auto" else bool(option)


def _global_switch(option: Any, cuda: bool) -> bool | None:
    """A process-wide backend switch: on for CUDA, else left alone, unless set."""
    if option == "auto":
        return True if cuda else None
    return bool(option)


def choose_acceleration(
    options: Any,
    facts: DeviceFacts,
    *,
    image_network: bool,
    iterations: int | None,
    lbfgs: bool = False,
) -> Acceleration:
    """The acceleration for a run with ``options`` (TrainingOptions) on a device with ``facts``.

    ``image_network``: the network takes 2-D images (4-D batches); ``iterations``: the
    run's iterations when known; ``lbfgs``: the solver is L-BFGS (never compiled by "auto").

    Example:
        >>> from deeptoolbox.training import TrainingOptions
        >>> gpu = DeviceFacts("cuda", bf16=True, cpu_count=16, can_compile=True)
        >>> choice = choose_acceleration(TrainingOptions(), gpu, image_network=True,
        ...                              iterations=5000)
        >>> choice.describe(), choice.num_workers
        ('bf16-mixed, channels_last, compiled', 8)
        >>> choose_acceleration(TrainingOptions(), DeviceFacts("cpu", cpu_count=16),
        ...                     image_network=True, iterations=5000).describe()
        'float32'
    """
    cuda = facts.type == "cuda"
    precision = precision_for(options.precision, facts)
    if options.memory_format == "auto":
        channels_last = cuda and image_network
    else:
        channels_last = options.memory_format == "channels_last"
    if options.compile == "auto":
        long_enough = iterations is not None and iterations >= COMPILE_MIN_ITERATIONS
        compiled = cuda and facts.can_compile and long_enough and not lbfgs
    else:
        compiled = bool(options.compile)
    workers = _auto_workers(facts) if cuda else 0
    return Acceleration(
        precision=precision,
        channels_last=channels_last,
        compile=compiled,
        cudnn_benchmark=_global_switch(options.cudnn_benchmark, cuda),
        tf32=_global_switch(options.tf32, cuda),
        pin_memory=_switch(options.pin_memory, cuda),
        num_workers=workers if options.num_workers == "auto" else options.num_workers,
    )


@contextlib.contextmanager
def applied(choice: Acceleration) -> Iterator[None]:
    """Set cuDNN autotuning and TF32 matmuls as ``choice`` says while open (None: leave them
    as they are); restore them after.

    Example:
        >>> import torch
        >>> before = torch.backends.cudnn.benchmark
        >>> with applied(Acceleration("32", False, False, True, True, False, 0)):
        ...     torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
        (True, 'high')
        >>> torch.backends.cudnn.benchmark == before
        True
    """
    import torch

    benchmark, matmul = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    try:
        if choice.cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = choice.cudnn_benchmark
        if choice.tf32 is not None:
            torch.set_float32_matmul_precision("high" if choice.tf32 else "highest")
            torch.backends.cudnn.allow_tf32 = choice.tf32
        yield
    finally:
        torch.backends.cudnn.benchmark = benchmark
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
