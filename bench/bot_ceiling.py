"""How close to the embedding models alone a bot answer can get, before the hub does anything.

Prints messages/s and CPU per message, on two threads (the hub's model threads), of:

1. the embedding models alone: one query embedding per model per message (the baseline of
   `bench/webchat.py`);
2. the embedded bot's own thread work on the same questions: reading the intent (both
   embeddings and the classifier) and the KB search with its gate, with the query vectors
   shared as in a real turn.

The ratio of (2) to (1) is the ceiling of the web-chat target ("bot-answered messages/s ≥ 80%
of the embedding models alone") for a hub that embeds each question alone: a hub whose router,
database and Socket.IO cost nothing would reach it, and every millisecond of the hub's own
work per message comes off it. Under load the hub embeds concurrent customers' questions
together (knowledge/query_batching.py), which lowers the models' own cost per message; this
bench leaves that out, so the hub's own work stays visible.

    ./dev bench bot_ceiling [--keep DIR] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.webchat import QUESTIONS, two_thread_rate  # noqa: E402


def rate(work: Callable[[int], object], label: str, seconds: float) -> float:
    """Warm `work` up, measure it on two threads for `seconds`, print and return msg/s."""
    list(map(work, range(20)))
    messages_per_second, cpu_ms = two_thread_rate(work, seconds)
    print(f"{label:<52} {messages_per_second:7.1f} msg/s  CPU {cpu_ms:5.2f} ms/msg", flush=True)
    return messages_per_second


async def measure(seconds: float, rounds: int) -> None:
    from aiohttp import web

    from bots.embedded import SEARCH_K
    from hub.app import HUB, create_app
    from hub.settings import load_settings
    from knowledge.embedding import embedders_from_names, shared_query_vectors

    app = create_app(load_settings())
    runner = web.AppRunner(app)
    await runner.setup()  # starts the hub's resources (seeds the demo KB on first use)
    try:
        hub = app[HUB]
        # The bot's trained classifier, as a turn uses it (the bench reaches into the bot).
        brain = await hub.bot._ready()
        models = embedders_from_names(["e5", "use"])
        for model in models:
            model.embed_queries(["warm up"])

        def embed_only(i: int) -> None:
            for model in models:
                model.embed_queries([QUESTIONS[i % len(QUESTIONS)]])

        def bot_thread_work(i: int) -> None:
            question = QUESTIONS[i % len(QUESTIONS)]
            with shared_query_vectors():
                brain.classifier.read(question)
                hub.kb.engine.search(question, k=SEARCH_K)

        ratios = []
        for _ in range(rounds):  # alternated: the machine's speed drifts between runs
            alone = await asyncio.to_thread(
                rate, embed_only, "embedding models alone (1 query x 2 models)", seconds
            )
            bot = await asyncio.to_thread(
                rate, bot_thread_work, "bot thread work (intent + KB search and gate)", seconds
            )
            ratios.append(bot / alone)
            print(f"  bot thread work at {bot / alone:.0%} of the models alone", flush=True)
        print(
            f"\nceiling: a hub with no work of its own would answer at about "
            f"{statistics.median(ratios):.0%} of the embedding models alone (median of "
            f"{rounds} pairs, {min(ratios):.0%}-{max(ratios):.0%})"
        )
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", type=Path, help="reuse/keep this data dir (skips demo seeding next time)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternated pairs of measurements")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-bot-ceiling-"))
    os.environ["SERVICEHUB_DATA_DIR"] = str(options.keep or workdir / "data")
    os.environ.pop("SERVICEHUB_DATABASE_URL", None)
    os.environ.setdefault("SERVICEHUB_LOG_LEVEL", "WARNING")
    print(f"machine: {os.cpu_count()} CPUs\n", flush=True)
    try:
        asyncio.run(measure(options.seconds, options.rounds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
