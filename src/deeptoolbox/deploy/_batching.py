"""Dynamic micro-batching: concurrent requests are grouped, run as one batch, answered apart.

A request waits at most ``max_wait_ms`` for others to join it; a batch closes early once it
holds ``max_batch_size`` observations. Requests whose observations differ in size (sequences
of other lengths) never share a batch. The model runs in one worker thread, so the event loop
keeps accepting requests while a batch runs, and those requests form the next batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deeptoolbox.errors import ServerClosedError

BatchRunner = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class _Pending:
    inputs: list[np.ndarray]
    future: asyncio.Future
    rows: int = field(init=False)
    key: tuple = field(init=False)
    arrived: float = field(init=False, default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rows = int(self.inputs[0].shape[0])
        self.key = tuple(x.shape[1:] for x in self.inputs)


class MicroBatcher:
    """Group concurrent :meth:`submit` calls into batches for ``run``.

    ``run(inputs)`` takes one array per model input (observations first) and returns one
    array per output, observations first. ``on_batch(rows, seconds)`` is told about each run.
    A collector task lives only while requests wait, so the batcher works from any event
    loop (a server's, or each test's).

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
        self._pending: list[_Pending] = []
        self._collector: asyncio.Task | None = None
        self._full: asyncio.Event | None = None

    # -- the public side -----------------------------------------------------------------
    async def submit(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Queue one request (arrays with the same number of observations); await its outputs."""
        if self.closed:
            raise ServerClosedError("the server is shutting down")
        loop = asyncio.get_running_loop()
        item = _Pending(list(inputs), loop.create_future())
        self._pending.append(item)
        if self._collector is None or self._collector.done():
            self._full = asyncio.Event()
            self._collector = loop.create_task(self._collect_and_run(), name="deeptoolbox-batch")
        elif sum(p.rows for p in self._pending) >= self.max_batch_size:
            self._full.set()
        return await item.future

    async def close(self) -> None:
        """Answer every queued request, then stop; later submits raise ServerClosedError."""
        self.closed = True
        collector = self._collector
        if collector is not None and not collector.done():
            await collector
        self._executor.shutdown(wait=True)

    # -- the collector -------------------------------------------------------------------
    async def _collect_and_run(self) -> None:
        """Wait for a batch to fill, or for its oldest request to have waited ``max_wait``, and
        run it; again while requests wait."""
        while self._pending:
            remaining = self._pending[0].arrived + self.max_wait - time.monotonic()
            if sum(p.rows for p in self._pending) < self.max_batch_size and remaining > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), remaining)
            batch, rows = [], 0
            while self._pending and rows < self.max_batch_size:
                batch.append(self._pending.pop(0))
                rows += batch[-1].rows
            await self._run_groups(batch)

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
        joined = [
            np.concatenate(parts) for parts in zip(*(item.inputs for item in items), strict=True)
        ]
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
