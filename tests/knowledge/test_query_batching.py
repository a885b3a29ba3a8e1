"""Concurrent turns' questions share model calls (knowledge/query_batching.py), real models."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knowledge.embedding import Embedder, embed_queries_shared, shared_query_vectors
from knowledge.query_batching import QueryBatcher

QUESTIONS = [
    "借记卡不见了要怎么挂失",
    "what is the daily limit for mobile transfers",
    "信用卡账单可以分期吗",
    "大额存单能提前支取吗",
    "how do I reset my online banking password",
    "理财产品风险等级怎么看",
    "保险理赔要多久",
    "can I open an account for my child",
    "外币现钞怎么兑换",
    "房贷提前还款要违约金吗",
]


class _Recording:
    """A real embedder that records the texts of each query call; calls wait for `open`."""

    def __init__(self, inner: Embedder, fail_on: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.entered.set()
        assert self.open.wait(timeout=60)
        if self.fail_on in texts:
            raise RuntimeError(f"cannot embed {self.fail_on!r}")
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-test")
    yield pool
    pool.shutdown(wait=True)


async def _turn(batcher: QueryBatcher, models: Sequence[_Recording], text: str) -> list[np.ndarray]:
    """A bot turn: prefill its question, then read its vectors as the classifier and search do."""
    with shared_query_vectors():
        await batcher.prefill([text])
        before = [len(m.calls) for m in models]
        vectors = [embed_queries_shared(m, [text])[0] for m in models]
        assert [len(m.calls) for m in models] == before, "the turn called a model itself"
        return vectors


async def _until(condition: object, what: str) -> None:
    for _ in range(600):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


async def test_questions_that_arrive_while_the_models_are_busy_share_one_call(
    embedders: list[Embedder], executor: ThreadPoolExecutor
) -> None:
    models = [_Recording(e) for e in embedders]
    batcher = QueryBatcher(models, executor, workers=1, max_batch=8)
    models[0].open.clear()  # the first customer's call holds the only worker
    first = asyncio.create_task(_turn(batcher, models, QUESTIONS[0]))
    await _until(models[0].entered.is_set, "the first call started")
    rest = [asyncio.create_task(_turn(batcher, models, q)) for q in QUESTIONS[1:]]
    await _until(lambda: batcher.waiting == len(rest), "the other customers queued")
    models[0].open.set()
    vectors = await asyncio.gather(first, *rest)

    # The lone first question went at once; then 8 at a time, in order of arrival.
    expected = [QUESTIONS[:1], QUESTIONS[1:9], QUESTIONS[9:]]
    assert [m.calls for m in models] == [expected] * len(models)
    assert (batcher.batches, batcher.texts) == (3, len(QUESTIONS))
    # Each customer got the vectors of their own question, as if embedded alone.
    for question, got in zip(QUESTIONS, vectors, strict=True):
        for model, vector in zip(embedders, got, strict=True):
            alone = model.embed_queries([question])[0]
            assert float(vector @ alone) > 0.999, (model.name, question)


async def test_a_lone_customer_is_embedded_at_once_and_nothing_outside_a_turn(
    embedders: list[Embedder], executor: ThreadPoolExecutor
) -> None:
    models = [_Recording(e) for e in embedders]
    batcher = QueryBatcher(models, executor)
    await _turn(batcher, models, QUESTIONS[0])
    assert [m.calls for m in models] == [[QUESTIONS[:1]]] * len(models)
    await batcher.prefill([QUESTIONS[1]])  # no turn scope: nowhere to keep vectors
    with shared_query_vectors():
        await batcher.prefill([QUESTIONS[2], QUESTIONS[2]])
        await batcher.prefill([QUESTIONS[2]])  # already this turn's
    assert [m.calls for m in models] == [[QUESTIONS[:1], QUESTIONS[2:3]]] * len(models)


async def test_a_failed_batch_leaves_each_turn_to_embed_alone(
    embedders: list[Embedder], executor: ThreadPoolExecutor
) -> None:
    bad = "this text breaks the model"
    models = [_Recording(embedders[0], fail_on=bad)]
    batcher = QueryBatcher(models, executor, workers=1)
    models[0].open.clear()
    first = asyncio.create_task(_turn(batcher, models, QUESTIONS[0]))
    await _until(models[0].entered.is_set, "the first call started")

    async def unlucky(text: str) -> bool:
        """Prefill fails quietly; the turn's own call then embeds the text, or fails alone."""
        with shared_query_vectors():
            await batcher.prefill([text])
            try:
                embed_queries_shared(models[0], [text])
            except RuntimeError:
                return False
            return True

    rest = [asyncio.create_task(unlucky(t)) for t in (QUESTIONS[1], bad)]
    await _until(lambda: batcher.waiting == 2, "both queued")
    models[0].open.set()
    await first
    assert await asyncio.gather(*rest) == [True, False]
    # The batch [QUESTIONS[1], bad] failed; QUESTIONS[1] was then embedded on its own.
    assert models[0].calls[1:] == [[QUESTIONS[1], bad], [QUESTIONS[1]], [bad]]
    await _turn(batcher, models, QUESTIONS[2])  # the batcher still works
    assert models[0].calls[-1] == [QUESTIONS[2]]


async def test_a_customer_who_leaves_while_queued_does_not_hold_up_the_others(
    embedders: list[Embedder], executor: ThreadPoolExecutor
) -> None:
    models = [_Recording(embedders[1])]
    batcher = QueryBatcher(models, executor, workers=1)
    models[0].open.clear()
    first = asyncio.create_task(_turn(batcher, models, QUESTIONS[0]))
    await _until(models[0].entered.is_set, "the first call started")
    leaving = asyncio.create_task(_turn(batcher, models, QUESTIONS[1]))
    staying = asyncio.create_task(_turn(batcher, models, QUESTIONS[2]))
    await _until(lambda: batcher.waiting == 2, "both queued")
    leaving.cancel()
    models[0].open.set()
    await first
    (vector,) = await staying
    assert leaving.cancelled()
    assert float(vector @ embedders[1].embed_queries([QUESTIONS[2]])[0]) > 0.999


async def test_a_stopped_executor_fails_the_batch_instead_of_hanging_the_turn(
    embedders: list[Embedder],
) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown(wait=True)  # as at the end of the hub's shutdown
    models = [_Recording(embedders[0])]
    batcher = QueryBatcher(models, pool)
    with shared_query_vectors():
        await asyncio.wait_for(batcher.prefill([QUESTIONS[0]]), timeout=30)
        assert embed_queries_shared(models[0], [QUESTIONS[0]]).shape == (1, embedders[0].dim)
    assert models[0].calls == [[QUESTIONS[0]]]  # the turn's own call, on this thread
    with shared_query_vectors():  # the next turn is not held up by the failed one
        await asyncio.wait_for(batcher.prefill([QUESTIONS[1]]), timeout=30)
    assert (batcher.batches, batcher.waiting) == (2, 0)


def test_worker_and_batch_limits_are_checked(
    embedders: list[Embedder], executor: ThreadPoolExecutor
) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        QueryBatcher(embedders, executor, workers=0)
    with pytest.raises(ValueError, match="at least 1"):
        QueryBatcher(embedders, executor, max_batch=0)
