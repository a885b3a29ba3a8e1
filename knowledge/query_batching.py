"""Embed the questions of concurrent turns together: one model call for several customers.

A turn's cost is nearly all query embedding (docs/benchmarks.md). The models cost less per
text when given several at once: on the 2-core development machine E5 takes 12.4 ms of CPU
per question in a batch of 8 against 18.3 ms alone (the matrix products amortise the weight
reads), and USE 0.7 ms against 1.6 ms. `bench/webchat.py` measures both ways.

`QueryBatcher` batches opportunistically: a text is embedded at once when a worker is free,
so a lone customer waits for nothing; only while every worker is busy do texts queue, and the
next free worker takes up to `max_batch` of them in one call. Batches therefore form only
under load, which is when the saving matters. The vectors land in the turn's shared scope
(`knowledge.embedding.shared_query_vectors`), where the intent classifier and the KB search
find them instead of calling the models themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from functools import partial

import numpy as np

from knowledge.embedding import Embedder, store_shared_query_vectors, unshared_texts

log = logging.getLogger(__name__)

# Texts per model call: the CPU saving flattens out by about 8 (bench figures in the module
# docstring), while a larger batch makes its first customer wait longer for the last text.
MAX_BATCH = 8

_Pending = tuple[str, "asyncio.Future[list[np.ndarray]]"]


class QueryBatcher:
    """Embed query texts with every model, batching the texts of concurrent turns."""

    def __init__(
        self,
        embedders: Sequence[Embedder],
        executor: Executor,
        *,
        workers: int = 2,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be at least 1")
        self._embedders = list(embedders)
        self._executor = executor
        self._workers = workers  # model calls in flight at once: one per core the hub uses
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._running = 0
        self.batches = 0  # model calls made, and the texts they embedded (for tests and logs)
        self.texts = 0

    @property
    def waiting(self) -> int:
        """Texts queued for the next free worker."""
        return len(self._pending)

    async def prefill(self, texts: Sequence[str]) -> None:
        """Embed `texts` for this turn's shared scope, batched with other turns' texts.

        Best effort: if the batch fails, the turn's own model calls embed its texts later as
        they would without a batcher, so one customer's bad text fails only that customer.
        """
        todo = unshared_texts(self._embedders, texts)
        if not todo:
            return
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in todo]
        self._pending.extend(zip(todo, futures, strict=True))
        self._start_batches()
        results = await asyncio.gather(*futures, return_exceptions=True)
        for text, vectors in zip(todo, results, strict=True):
            if isinstance(vectors, BaseException):
                log.warning("batched query embedding failed: %r; the turn embeds alone", vectors)
                return
            store_shared_query_vectors(self._embedders, text, vectors)

    def _start_batches(self) -> None:
        while self._pending and self._running < self._workers:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._running += 1
            self.batches += 1
            self.texts += len(batch)
            call = partial(self._embed, [text for text, _ in batch])
            try:
                done = asyncio.get_running_loop().run_in_executor(self._executor, call)
            except RuntimeError as error:  # the executor is shut down: the hub is stopping
                done = asyncio.get_running_loop().create_future()
                done.set_exception(error)
            done.add_done_callback(partial(self._finished, batch))

    def _embed(self, texts: list[str]) -> list[np.ndarray]:
        """One call per model for the whole batch (runs on an executor thread)."""
        return [embedder.embed_queries(texts) for embedder in self._embedders]

    def _finished(self, batch: list[_Pending], done: asyncio.Future[list[np.ndarray]]) -> None:
        self._running -= 1
        error = None if done.cancelled() else done.exception()
        for index, (_, waiter) in enumerate(batch):
            if waiter.done():  # its turn was cancelled meanwhile
                continue
            if done.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result([vectors[index] for vectors in done.result()])
        self._start_batches()
