"""One trial trained by several processes at once: data-parallel training inside a trial.

The worker that claimed the trial is rank 0. It starts the other ranks as fresh interpreters
(``python -m deeptoolbox.experiments._ddp_rank``); each loads the experiment's setup from the
store, builds the network from the trial's parameters and seed, and joins one process group
(NCCL when every rank has a GPU, else gloo on the CPU), so ``train()`` runs data-parallel as
under torchrun. Only rank 0 reports to the store, writes files and scores the trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from deeptoolbox.errors import ExperimentError, OptionError

__all__ = ["TrialGroup", "check_processes", "group_environment"]

JOIN_SECONDS = 180.0  # how long the ranks wait for each other to start and join the group
END_SECONDS = 60.0  # how long rank 0 waits for the other ranks to exit after training
_GROUP_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
               "MASTER_PORT")  # fmt: skip


def check_processes(value: Any, where: str = "Experiment.run") -> int:
    """``processes_per_trial`` as a positive int, or an OptionError naming it.

    Example:
        >>> check_processes(2)
        2
        >>> check_processes(0)
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: Experiment.run: `processes_per_trial` must be an int >= 1 (1: each trial in its worker's process; N: N processes train each trial data-parallel). Received: 0.
    """  # noqa: E501
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(
            f"{where}: `processes_per_trial` must be an int >= 1 (1: each trial in its "
            "worker's process; N: N processes train each trial data-parallel). "
            f"Received: {value!r}."
        )
    return value


def group_environment(requested: str, gpus: int, world: int) -> str:
    """The ``execution_environment`` every rank of a trial trains with.

    Example:
        >>> group_environment("auto", 0, 2), group_environment("auto", 2, 2)
        ('parallel', 'multi-gpu')
        >>> group_environment("cpu", 4, 2)
        'parallel'
    """
    return "multi-gpu" if requested != "cpu" and gpus >= world else "parallel"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def set_group_env(rank: int, world: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def join_group(environment: str, rank: int) -> None:
    import torch.distributed as dist

    backend = "nccl" if environment == "multi-gpu" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=JOIN_SECONDS))


def leave_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclasses.dataclass
class TrialGroup:
    """The other ranks of one trial, started by rank 0 (the trial's worker).

    Example:
        >>> group = TrialGroup("sqlite:///e.db", "exp", trial=3, world=2)
        >>> group.command(1, 29500)[5:9]
        ['--trial', '3', '--rank', '1']
    """

    url: str
    name: str
    trial: int
    world: int
    threads: int | None = None

    def command(self, rank: int, port: int) -> list[str]:
        command = [sys.executable, "-m", "deeptoolbox.experiments._ddp_rank", self.url, self.name,
                   "--trial", str(self.trial), "--rank", str(rank), "--world", str(self.world),
                   "--port", str(port), "--parent", str(os.getpid())]  # fmt: skip
        return command + (["--threads", str(self.threads)] if self.threads else [])

    @contextlib.contextmanager
    def joined(self, requested: str) -> Iterator[str]:
        """Start ranks 1..world-1, join the group as rank 0 and give the execution
        environment to train with (from the setup's ``requested`` one); on exit leave the
        group and wait for the ranks. A rank that failed raises an ExperimentError with the
        end of its output."""
        environment = group_environment(requested, torch.cuda.device_count(), self.world)
        port = _free_port()
        saved = {key: os.environ.get(key) for key in _GROUP_KEYS}
        with contextlib.ExitStack() as files:
            logs = [files.enter_context(tempfile.TemporaryFile()) for _ in range(1, self.world)]
            peers = [subprocess.Popen(self.command(rank, port), stdout=log, stderr=log)
                     for rank, log in enumerate(logs, start=1)]  # fmt: skip
            with self._as_rank_zero(port, saved):
                failed = False
                try:
                    self._join_watching(environment, peers, logs)
                    yield environment
                except BaseException:
                    failed = True
                    raise
                finally:
                    leave_group()
                    error = self._wait(peers, logs, kill=failed)
                    if error is not None and not failed:
                        raise error

    @contextlib.contextmanager
    def rank_variables(self) -> Iterator[None]:
        """RANK, LOCAL_RANK, WORLD_SIZE of rank 0 set while rank 0 calls the setup (as under
        torchrun; the other ranks see theirs), then restored."""
        saved = {key: os.environ.get(key) for key in _GROUP_KEYS}
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE=str(self.world),
                          LOCAL_WORLD_SIZE=str(self.world))  # fmt: skip
        try:
            yield
        finally:
            _restore(saved)

    @contextlib.contextmanager
    def _as_rank_zero(self, port: int, saved: dict[str, str | None]) -> Iterator[None]:
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        set_group_env(0, self.world, port)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            _restore(saved)

    def _join_watching(self, environment: str, peers, logs) -> None:
        """Join the group as rank 0, failing at once when another rank exits first."""
        errors: list[BaseException] = []

        def join() -> None:
            try:
                join_group(environment, 0)
            except BaseException as err:  # reported by the waiting thread below
                errors.append(err)

        joining = threading.Thread(target=join, daemon=True)
        joining.start()
        while joining.is_alive():
            joining.join(timeout=0.2)
            if joining.is_alive() and any(peer.poll() not in (None, 0) for peer in peers):
                raise self._failure(peers, logs, "a rank stopped before the group formed")
        if errors:
            raise self._failure(peers, logs, f"the ranks did not join: {errors[0]}")

    def _wait(self, peers, logs, kill: bool) -> ExperimentError | None:
        deadline = time.monotonic() + (0 if kill else END_SECONDS)
        for peer in peers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                peer.wait(timeout=max(0.0, deadline - time.monotonic()))
            if peer.poll() is None:
                peer.kill()
                peer.wait()
        if kill or all(peer.returncode == 0 for peer in peers):
            return None
        return self._failure(peers, logs, "a rank failed")

    def _failure(self, peers, logs, what: str) -> ExperimentError:
        for peer in peers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                peer.wait(timeout=5)
        lines = []
        for rank, (peer, log) in enumerate(zip(peers, logs, strict=True), start=1):
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-6:]
            if peer.returncode not in (0, None):
                lines.append(f"rank {rank} exited with code {peer.returncode}: "
                             + " | ".join(tail))  # fmt: skip
        detail = "; ".join(lines) or "no rank reported an error"
        return ExperimentError(
            f"trial {self.trial} trained by {self.world} processes: {what}. {detail}"
        )
