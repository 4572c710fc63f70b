"""Dynamic micro-batching: concurrent requests are grouped, run as one batch, answered apart.

A request waits at most ``max_wait_ms`` for others to join it; a batch closes early once it
holds ``max_batch_size`` observations. Requests whose observations differ in size (sequences
of other lengths) never share a batch. The model runs in one worker thread, so the event loop
keeps accepting requests while a batch runs, and those requests form the next batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

BatchRunner = Callable[[list[np.ndarray]], list[np.ndarray]]


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class _Pending:
    inputs: list[np.ndarray]
    future: asyncio.Future
    rows: int = field(init=False)
    key: tuple = field(init=False)

    def __post_init__(self) -> None:
        self.rows = int(self.inputs[0].shape[0])
        self.key = tuple(x.shape[1:] for x in self.inputs)


_STOP = object()


class MicroBatcher:
    """Group concurrent :meth:`submit` calls into batches for ``run``.

    ``run(inputs)`` takes one array per model input (observations first) and returns one
    array per output, observations first. ``on_batch(rows, seconds)`` is told about each run.

    Example:
        >>> import asyncio
        >>> batcher = MicroBatcher(lambda xs: [xs[0] * 2], max_batch_size=8, max_wait_ms=5)
        >>> async def main():
        ...     answers = await asyncio.gather(*(batcher.submit([np.full((1, 2), i)])
        ...                                      for i in range(3)))
        ...     await batcher.close()
        ...     return [a[0].tolist() for a in answers], batcher.batches_run
        >>> asyncio.run(main())
        ([[[0, 0]], [[2, 2]], [[4, 4]]], 1)
    """

    def __init__(
        self,
        run: BatchRunner,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.batches_run = 0
        self.closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the public side -----------------------------------------------------------------
    async def submit(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Queue one request (arrays with the same number of observations); await its outputs."""
        if self.closed:
            raise BatcherClosed("the server is shutting down")
        self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(list(inputs), future))
        return await future

    async def close(self) -> None:
        """Answer every queued request, then stop; later submits raise BatcherClosed."""
        self.closed = True
        if self._worker is not None and not self._worker.done():
            if self._loop is asyncio.get_running_loop():
                await self._queue.put(_STOP)
                await self._worker
            else:
                self._worker.cancel()
        self._executor.shutdown(wait=True)

    # -- the worker ----------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(), name="deeptoolbox-batcher")

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch, stopping = await self._collect(first)
            await self._run_groups(batch)

    async def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """Gather requests until the batch is full or the first one has waited ``max_wait``."""
        batch, rows = [first], first.rows
        deadline = time.monotonic() + self.max_wait
        while rows < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if item is _STOP:
                return batch, True
            batch.append(item)
            rows += item.rows
        return batch, False

    async def _run_groups(self, batch: list[_Pending]) -> None:
        groups: dict[tuple, list[_Pending]] = defaultdict(list)
        for item in batch:
            groups[item.key].append(item)
        loop = asyncio.get_running_loop()
        for items in groups.values():
            live = [item for item in items if not item.future.done()]  # skip cancelled requests
            if not live:
                continue
            try:
                outputs = await loop.run_in_executor(self._executor, self._run_rows, live)
            except Exception as err:  # the model failed: every request of the group hears why
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(err)
                continue
            self._answer(live, outputs)

    def _run_rows(self, items: list[_Pending]) -> list[np.ndarray]:
        """Run the joined observations, in chunks of at most ``max_batch_size``."""
        joined = [np.concatenate(parts) for parts in zip(*(item.inputs for item in items), strict=True)]
        total = joined[0].shape[0]
        chunks = []
        for start in range(0, total, self.max_batch_size):
            began = time.perf_counter()
            chunk = self.run([x[start : start + self.max_batch_size] for x in joined])
            rows = min(self.max_batch_size, total - start)
            self.batches_run += 1
            if self.on_batch is not None:
                self.on_batch(rows, time.perf_counter() - began)
            for output in chunk:
                if output.ndim == 0 or output.shape[0] != rows:
                    raise RuntimeError(
                        f"the model returned an output of size {tuple(output.shape)} for a batch "
                        f"of {rows}; outputs must have the batch axis first"
                    )
            chunks.append(chunk)
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]

    @staticmethod
    def _answer(items: list[_Pending], outputs: list[np.ndarray]) -> None:
        start = 0
        for item in items:
            rows = slice(start, start + item.rows)
            start += item.rows
            if not item.future.done():
                item.future.set_result([output[rows] for output in outputs])
