"""Benchmark KB search on this machine and print figures (never asserted anywhere).

    python bench/kb_search.py [--articles 1000] [--big 100000] [--queries 300]

1. Query embedding: E5 and USE latency with 1 and 2 threads per call, alone and with two
   concurrent callers (each setting runs in a fresh process: OpenMP reads its thread count
   once, when the library loads).
2. A 1k-article KB with the real models: end-to-end `SearchEngine.search` latency (query
   embedding included), sequential and from two threads, next to bare faiss on the same vectors.
3. A 100k-article KB with SYNTHETIC vectors and texts (embedding 100k real articles would take
   hours on two cores): the index part of a search (analysis, both vector indexes, BM25, fusion,
   gate), next to bare faiss flat and the IVF index the engine switches to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import faiss  # noqa: E402

from knowledge.evaluation import load_eval_file  # noqa: E402
from knowledge.index import SLOT_SHIFT, VectorIndex  # noqa: E402
from knowledge.types import ArticleDoc  # noqa: E402

DEV = REPO / "tests" / "data" / "dev-eval.jsonl"  # a copy of ../shared/kb/dev-eval.jsonl
HOLDOUT = REPO / "tests" / "data" / "kb-holdout.jsonl"


def percentiles(samples: Sequence[float]) -> str:
    ms = np.array(samples) * 1000.0
    return (
        f"p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  "
        f"{len(ms) / (ms.sum() / 1000.0):7.1f} q/s"
    )


def _searcher(index: VectorIndex, vectors: Iterator[np.ndarray]) -> Callable[[Any], object]:
    """Search `index` with the next of `vectors` on each call (the argument is ignored)."""
    return lambda _: index.search(next(vectors), 400)


def _flat_searcher(flat: Any) -> Callable[[Any], object]:
    return lambda vector: flat.search(vector.reshape(1, -1), 400)


def timed(fn: Callable[[Any], object], queries: Sequence[Any]) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - start)
    return out


def timed_concurrent(fn: Callable[[str], object], queries: Sequence[str], threads: int) -> str:
    """Run `queries` split over `threads` threads; report per-call latency and total throughput."""
    samples: list[list[float]] = [[] for _ in range(threads)]

    def worker(i: int) -> None:
        samples[i] = timed(fn, queries[i::threads])

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    flat = np.array([x for s in samples for x in s]) * 1000.0
    return (
        f"p50 {np.percentile(flat, 50):6.2f} ms  p99 {np.percentile(flat, 99):6.2f} ms  "
        f"{len(flat) / wall:7.1f} q/s (wall)"
    )


def eval_queries() -> tuple[list[ArticleDoc], list[str]]:
    docs, queries = load_eval_file(DEV)
    more_docs, more_queries = load_eval_file(HOLDOUT)
    return docs + more_docs, [q.text for q in queries + more_queries]


# --- 1. embedding threads -------------------------------------------------------------------


def embedding_child(threads: int, n: int) -> None:
    """Measure query embedding in this process (OMP_NUM_THREADS already set by the parent)."""
    from knowledge.embedding import E5Embedder, USEEmbedder

    _, queries = eval_queries()
    queries = (queries * (n // len(queries) + 1))[:n]
    for model in (E5Embedder(threads=threads), USEEmbedder(threads=threads)):
        model.embed_queries(["warm up"])

        def embed(q: str, m: E5Embedder | USEEmbedder = model) -> object:
            return m.embed_queries([q])

        label = f"    {model.name:12} threads={threads}"
        print(f"{label}  alone      {percentiles(timed(embed, queries))}")
        print(f"{label}  2 callers  {timed_concurrent(embed, queries, 2)}")


def bench_embedding_threads(n: int) -> None:
    print("1. query embedding, threads per call (each row a fresh process)")
    for threads in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), SERVICEHUB_EMBED_THREADS=str(threads))
        subprocess.run(
            [sys.executable, __file__, "--embedding-child", str(threads), "--queries", str(n)],
            env=env,
            check=True,
        )


# --- 2. 1k real articles --------------------------------------------------------------------


def synthetic_variants(docs: Sequence[ArticleDoc], n: int) -> list[ArticleDoc]:
    """Grow a real KB to n articles with regional variants (real text, real embedding cost)."""
    regions = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安", "南京", "重庆"]
    out = list(docs)
    i = 0
    while len(out) < n:
        base = docs[i % len(docs)]
        region = regions[(i // len(docs)) % len(regions)]
        out.append(
            replace(
                base,
                id=f"{base.id}-v{i}",
                title=f"{base.title}（{region}分行，第{i // len(docs) + 1}版）",
                body=f"本条适用于{region}地区客户。{base.body}",
            )
        )
        i += 1
    return out[:n]


def bench_real_kb(n_articles: int, n_queries: int) -> None:
    from knowledge.embedding import default_embedders
    from knowledge.search import SearchEngine

    docs, queries = eval_queries()
    kb = synthetic_variants(docs, n_articles)
    engine = SearchEngine(default_embedders(), None)
    start = time.perf_counter()
    engine.sync(kb)
    build = time.perf_counter() - start
    views = engine._vectors[0].ntotal  # the benchmark reads engine internals
    print(
        f"\n2. {len(engine)} articles, real E5 + USE ({views} vectors per model), "
        f"embedded in {build:.1f} s"
    )
    queries = (queries * (n_queries // len(queries) + 1))[:n_queries]
    engine.search("warm up")
    print(f"    search, query embedding included   {percentiles(timed(engine.search, queries))}")
    print(f"    same, 2 concurrent callers          {timed_concurrent(engine.search, queries, 2)}")
    vectors = [[e.embed_queries([q])[0] for q in queries[:100]] for e in engine.embedders]
    for model, index, qv in zip(engine.embedders, engine._vectors, vectors, strict=True):
        bare = timed(_searcher(index, iter(qv * 3)), ["x"] * 300)
        print(f"    bare faiss ({model.name:11} {index.layout.kind}) {percentiles(bare)}")


# --- 3. 100k synthetic articles -------------------------------------------------------------


class HashEmbedder:
    """Clustered pseudo-random unit vectors that cost nothing to make: timings are the index's.

    Real sentence embeddings are far from isotropic: articles on one topic sit close together.
    Each text is assigned one of 2,000 topic centres by hash and lands near it (cosine to the
    centre ~0.8), so IVF cells are as uneven as real data makes them and recall means something.
    """

    TOPICS = 2000

    def __init__(self, name: str, dim: int) -> None:
        self.name = name
        self.dim = dim
        centres = np.random.default_rng(dim).standard_normal((self.TOPICS, dim), dtype=np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        digest = hashlib.blake2b("\x1f".join(texts).encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        topics = [
            int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "little")
            % self.TOPICS
            for t in texts
        ]
        noise = rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        out = self.centres[topics] + 0.75 * noise / np.sqrt(self.dim)
        unit: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
        return unit

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


def synthetic_kb(n: int, seed: int = 7) -> list[ArticleDoc]:
    """Articles made of real finance words drawn with a Zipf-like skew (so BM25 sees real df)."""
    from knowledge.text import finance_lexicon

    rng = np.random.default_rng(seed)
    words = [t for t in finance_lexicon().chinese_terms if len(t) >= 2]
    words += [
        "办理",
        "手机",
        "网点",
        "客户",
        "时间",
        "金额",
        "申请",
        "查询",
        "费用",
        "到账",
        "规定",
    ]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()

    def sentence(k: int) -> str:
        return "".join(words[i] for i in rng.choice(len(words), k, p=p)) + "。"

    return [
        ArticleDoc(
            id=f"s{i}",
            title=sentence(3),
            body=sentence(10),
            lang="zh",
            category="synthetic",
            title_alt=f"synthetic article {i}",
            questions=(sentence(4),),
        )
        for i in range(n)
    ]


def bench_big_kb(n_articles: int, n_queries: int) -> None:
    from knowledge.search import SearchEngine

    print(f"\n3. {n_articles} SYNTHETIC articles: clustered hashed vectors, finance-word texts")
    embedders = [HashEmbedder("synthetic-384", 384), HashEmbedder("synthetic-512", 512)]
    engine = SearchEngine(embedders, None)
    start = time.perf_counter()
    engine.sync(synthetic_kb(n_articles))
    print(f"    built in {time.perf_counter() - start:.1f} s")
    rng = np.random.default_rng(3)
    words = synthetic_kb(200, seed=11)
    queries = [w.title + w.questions[0][: int(rng.integers(2, 8))] for w in words]
    queries = (queries * (n_queries // len(queries) + 1))[:n_queries]
    engine.search("warm up")
    label = "    index part of search (both models, BM25, fusion, gate)"
    print(f"{label}  {percentiles(timed(engine.search, queries))}")
    concurrent = timed_concurrent(engine.search, queries, 2)
    print(f"{'    same, 2 concurrent callers':<{len(label)}}  {concurrent}")
    for embedder, index in zip(embedders, engine._vectors, strict=True):
        qv = embedder.embed_queries(queries[:200])
        layout = index.layout
        chosen = timed(_searcher(index, iter(list(qv) * 2)), ["x"] * 400)
        ids, vectors = index.all_vectors()
        flat = faiss.IndexFlatIP(embedder.dim)
        flat.add(vectors)
        bare = timed(_flat_searcher(flat), list(qv))
        # Queries near stored vectors, as a customer question lands near its article's views.
        near = vectors[np.random.default_rng(5).choice(len(vectors), 100, replace=False)]
        near = near + 0.5 * np.random.default_rng(6).standard_normal(
            near.shape, dtype=np.float32
        ) / np.sqrt(embedder.dim)
        near /= np.linalg.norm(near, axis=1, keepdims=True)
        recall = ivf_recall(index, flat, ids, near)
        print(
            f"    {embedder.name}: {index.ntotal} vectors\n"
            f"      bare faiss flat (baseline)                   {percentiles(bare)}\n"
            f"      engine index ({layout.kind}, nlist {layout.nlist}, nprobe {layout.nprobe})"
            f"{'':4}{percentiles(chosen)}  recall@10 vs flat {recall:.3f}"
        )


def ivf_recall(
    index: VectorIndex, flat: faiss.IndexFlatIP, ids: np.ndarray, queries: np.ndarray
) -> float:
    """Share of the exact 10 nearest articles that the engine's index also returns."""
    hits = total = 0
    for q in queries:
        _, exact = flat.search(q.reshape(1, -1), 10)
        want = set((ids[exact[0]] >> SLOT_SHIFT).tolist())
        got, _ = index.search(q, 10)
        hits += len(want & set(got.tolist()))
        total += len(want)
    return hits / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--only", choices=["embedding", "real", "big"], default=None)
    parser.add_argument("--embedding-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embedding_child:
        embedding_child(args.embedding_child, args.queries)
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}; python {sys.version.split()[0]}")
    print(json.dumps({"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}))
    if args.only in (None, "embedding"):
        bench_embedding_threads(min(args.queries, 200))
    if args.only in (None, "real"):
        bench_real_kb(args.articles, args.queries)
    if args.only in (None, "big"):
        bench_big_kb(args.big, args.queries)


if __name__ == "__main__":
    main()
