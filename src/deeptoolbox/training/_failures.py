"""When one training process fails, the others stop within seconds and say which one it was.

Without this, an exception on one rank leaves the others waiting in a collective (the
gradient all-reduce of the next backward) until the process group's timeout (30 minutes by
default), and the process that failed waits in train()'s closing barrier.

How it works (:class:`RunFailures`, one per train() call of a several-process run):

- at the start of the call rank 0 draws a run id (a uuid) and broadcasts it, so records
  left by an earlier call of the same script (the store outlives process groups) are never
  read as this call's;
- the process where an exception is raised writes ``"rank R: ExcType: message"`` under
  ``deeptoolbox/train/<run id>/failed`` in the process group's store (the launcher's
  TCPStore; the first record written wins), aborts its process group and raises its own
  exception, without the closing barrier that used to keep it waiting for the others;
- its peers' collectives fail as soon as its connections close: when its script ends
  (uncaught, or caught and the script exits) or, for a group without DDP, at the abort
  (gloo keeps the connections of a DDP-used group open while the process lives: a script
  that catches the error and goes on keeps its peers waiting);
- a peer whose collective fails reads the record (waiting a few seconds for it, the writer
  may still be on its way), aborts its own group and raises :class:`TrainingError` naming
  the failing rank and its exception.
- NCCL collectives do not fail when a peer leaves, so with NCCL a watcher thread polls the
  store once a second and aborts this process's communicators when a record appears.

The cost while training is nothing per iteration: no store round-trip, no extra collective
(the hot path is not touched); one small broadcast per train() call, and with NCCL one
store look-up a second in a background thread. The group is aborted after a failure: the
next train() call of the script makes a new one from the launcher's environment (a group
of your own must be made again with ``init_process_group``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any

import torch.distributed as dist

from deeptoolbox.errors import TrainingError

__all__ = ["RunFailures", "record_text", "parse_record"]

WAIT_FOR_RECORD_S = 5.0  # a peer whose collective failed waits this long for the record
WATCH_EVERY_S = 1.0  # NCCL: how often the watcher thread looks at the store
_LIMIT = 2000  # characters of the failing process's message kept in the record


def record_text(rank: int, err: BaseException) -> str:
    """The failure record a process writes: ``"rank R: ExcType: message"``.

    Example:
        >>> record_text(1, ValueError("bad batch"))
        'rank 1: ValueError: bad batch'
    """
    message = str(err)
    if len(message) > _LIMIT:
        message = message[:_LIMIT] + " ..."
    return f"rank {rank}: {type(err).__name__}: {message}"


def parse_record(text: str) -> tuple[int, str]:
    """The rank and the ``"ExcType: message"`` of a failure record.

    Example:
        >>> parse_record("rank 3: KeyError: 'x'")
        (3, "KeyError: 'x'")
    """
    head, _, rest = text.partition(": ")
    return int(head.removeprefix("rank ")), rest


def _default_store() -> Any:
    """The store of the default process group (the launcher's TCPStore), or None."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


_ABORTED: list[Any] = []  # the store of the last aborted group, and how many were aborted


def regroup_store() -> Any:
    """After an aborted group: a store for the next one under a new prefix (the old group's
    rendezvous keys are still in the launcher's store and must not be read again), or None.

    Example:
        >>> regroup_store() is None  # no group was aborted in this process
        True
    """
    if not _ABORTED or _ABORTED[0] is None:
        return None
    return dist.PrefixStore(f"deeptoolbox/regroup{_ABORTED[1]}/", _ABORTED[0])


def abort_group() -> None:
    """Abort the default process group of this process (its connections close at once)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    count = _ABORTED[1] + 1 if _ABORTED else 1
    _ABORTED[:] = [_default_store(), count]
    abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
    with contextlib.suppress(Exception):
        if abort is not None:
            abort()
            return
        dist.group.WORLD.abort()
        dist.destroy_process_group()


class RunFailures:
    """The failure records of one train() call on several processes.

    Example:
        >>> RunFailures.start(rank=0, world=1) is None  # one process: nothing to watch
        True
    """

    def __init__(self, rank: int, world: int, run_id: str, store: Any, watch: bool) -> None:
        self.rank, self.world, self.run_id, self.store = rank, world, run_id, store
        self.key = f"deeptoolbox/train/{run_id}/failed"
        self.seen: str | None = None  # a record of another process the watcher found
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if watch and store is not None:
            self._watcher = threading.Thread(target=self._watch, name="deeptoolbox-failures",
                                             daemon=True)  # fmt: skip
            self._watcher.start()

    @classmethod
    def start(cls, rank: int, world: int) -> RunFailures | None:
        """At the start of a train() call: the run id from rank 0 (a collective). None
        without a process group."""
        if not (dist.is_available() and dist.is_initialized()):
            return None
        run = [uuid.uuid4().hex if rank == 0 else None]
        dist.broadcast_object_list(run, src=0)
        watch = dist.get_backend() not in ("gloo", "mpi")  # gloo collectives fail by themselves
        return cls(rank, world, str(run[0]), _default_store(), watch)

    # -- the store ------------------------------------------------------------------------------
    def recorded(self, wait: float = 0.0) -> str | None:
        """This run's failure record, waiting up to ``wait`` seconds for one."""
        if self.seen is not None:
            return self.seen
        if self.store is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            with contextlib.suppress(Exception):  # the store may be gone with its process
                if self.store.check([self.key]):
                    return self.store.get(self.key).decode()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def write(self, err: BaseException) -> str:
        """Record this process's failure (unless another was recorded first); the record."""
        mine = record_text(self.rank, err)
        if self.store is None:
            return mine
        with contextlib.suppress(Exception):
            return self.store.compare_set(self.key, "", mine).decode()
        return mine

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            found = self.recorded()
            if found is not None and parse_record(found)[0] != self.rank:
                self.seen = found
                abort_group()  # NCCL: unblocks this process's waiting collectives
                return

    def close(self) -> None:
        """The end of the call: stop the watcher thread."""
        self._stop.set()

    # -- a failure ------------------------------------------------------------------------------
    def handle(self, err: BaseException, iteration: int) -> BaseException:
        """The exception this process raises for ``err``: a :class:`TrainingError` naming
        the process that failed first when ``err`` follows from another process's failure,
        else ``err`` itself (recorded for the others). The group is aborted either way."""
        # only a RuntimeError can come from a failed collective; any other error is this
        # process's own, raised as it is (recorded unless another process's came first)
        found = self.recorded(WAIT_FOR_RECORD_S) if isinstance(err, RuntimeError) else None
        if found is None or parse_record(found)[0] == self.rank:
            self.write(err)
            found = record_text(self.rank, err)
        abort_group()
        self.close()
        rank, what = parse_record(found)
        if rank == self.rank:
            return err
        error = TrainingError(
            f"train: process {rank} of {self.world} failed: {what}. Every process stopped "
            f"(this one, process {self.rank}, at iteration {iteration}, in a collective that "
            f"process {rank} never joined). The process group was aborted; a later train() "
            "call of the script makes a new one (a group of your own must be made again "
            "with init_process_group). See process "
            f"{rank}'s own error for its traceback.",
            result=None,
        )
        error.failed_process, error.failure = rank, what
        return error
