"""Web-chat round trip: customer message → bot answer, through the real hub, on loopback.

Prints p50/p99 round trip and messages/s with 1, 50 and 200 concurrent customers (each
sends its next question when the previous answer arrives), a steady-rate run (50
customers, 20 messages/s in total), the embedding models alone measured in the same run
(the hub's bot must reach ≥ 80% of their messages/s; they are measured a second time in
batches of 8 questions, as the hub batches concurrent customers' questions), and a bare
python-socketio echo server as the transport baseline. Each closed-loop row also prints
the server's CPU time per message (all its threads, from /proc), next to the models' CPU per
message alone: the difference is the hub's own work. It is split into the event loop
(`loop`: Socket.IO, the router, the database calls' loop side) and all other threads
(`threads`: the bot, the models, the KB search, the database driver).

    ./dev bench webchat [--messages 400] [--keep DIR] [--start-timeout 900]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import socketio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Questions the demo KB answers (checked before measuring), in both languages.
QUESTIONS = [
    "信用卡丢了怎么挂失",
    "how do I raise my transfer limit",
    "跨行转账多久能到账",
    "信用卡年费怎么免",
    "大额存单多少钱起存",
    "how long does an interbank transfer take",
    "理财产品赎回多久到账",
    "怎么开通短信通知",
    "What documents do I need to open an account?",
    "医疗险理赔需要什么材料",
    "手机银行登录密码忘了怎么办",
    "can I cancel a wealth product after buying it",
]

# Below the hub's per-session limit of 20 messages in 10 s, whatever the speed.
MESSAGES_PER_VISITOR = 15

ECHO_SERVER = """
import socketio, sys
from aiohttp import web
sio = socketio.AsyncServer(async_mode="aiohttp")
app = web.Application(); sio.attach(app)
class Echo(socketio.AsyncNamespace):
    async def on_message(self, sid, data):
        await self.emit("message", {"text": data["text"]}, to=sid)
        return {"id": 1}
sio.register_namespace(Echo("/chat"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far; None off Linux."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def loop_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a process's main thread, which runs the hub's event loop; None off Linux.

    Python 3.11 does not name its threads for the OS, so the pool threads (bot, models, KB
    search) and the database driver's threads are told apart only as "not the loop"."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


def _stat_cpu_seconds(stat: Path) -> float | None:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: utime and stime are the 12th and 13th fields, in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout}s")


class Customer:
    """One customer's socket; `ask` measures ack-send → first bot/echo message."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sio.on("message", self.inbox.put, namespace="/chat")

    async def connect(self) -> None:
        await self.sio.connect(
            self.base_url,
            namespaces=["/chat"],
            transports=["websocket"],
            auth={"visitor_id": f"bench-{uuid.uuid4().hex}"},
            wait_timeout=30,
        )

    async def ask(self, text: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        ack = await self.sio.call(
            "message",
            {"text": text, "client_id": uuid.uuid4().hex},
            namespace="/chat",
            timeout=60,
        )
        if isinstance(ack, dict) and "error" in ack:  # e.g. rate_limited: no reply will come
            raise SystemExit(f"the server refused {text!r}: {ack['error']}")
        reply = await asyncio.wait_for(self.inbox.get(), timeout=60)
        return time.perf_counter() - started, reply

    async def close(self) -> None:
        await self.sio.disconnect()


def summary(label: str, latencies: list[float], elapsed: float) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (
        f"{label:<44} n={len(ordered):>5}  p50={statistics.median(ordered) * 1000:7.1f} ms  "
        f"p99={p99 * 1000:7.1f} ms  {len(ordered) / elapsed:7.1f} msg/s"
    )


async def closed_loop(
    base_url: str, customers: int, total: int, label: str, server_pid: int | None = None
) -> float:
    """Each customer asks, waits for the answer, asks again; returns messages/s.

    With `server_pid`, also prints the server's CPU time per message over the run.
    """
    per_client = max(1, total // customers)
    # The hub rate-limits one chat session (channels/webchat.py: 20 messages in 10 s), as a
    # person never types faster. `customers` is the number of messages in flight: each slot
    # hands its next question to a fresh visitor before one session could hit the limit.
    sockets = -(-per_client // MESSAGES_PER_VISITOR)
    slots = [[Customer(base_url) for _ in range(sockets)] for _ in range(customers)]
    everyone = [c for slot in slots for c in slot]
    for start in range(0, len(everyone), 25):
        await asyncio.gather(*(c.connect() for c in everyone[start : start + 25]))
    latencies: list[float] = []

    async def run(slot: list[Customer], offset: int) -> None:
        for i in range(per_client):
            client = slot[i // MESSAGES_PER_VISITOR]
            latency, _ = await client.ask(QUESTIONS[(offset + i) % len(QUESTIONS)])
            latencies.append(latency)

    cpu_before = process_cpu_seconds(server_pid) if server_pid else None
    loop_before = loop_cpu_seconds(server_pid) if server_pid else None
    started = time.perf_counter()
    await asyncio.gather(*(run(slot, i) for i, slot in enumerate(slots)))
    elapsed = time.perf_counter() - started
    cpu_after = process_cpu_seconds(server_pid) if server_pid else None
    loop_after = loop_cpu_seconds(server_pid) if server_pid else None
    line = summary(label, latencies, elapsed)
    if cpu_before is not None and cpu_after is not None:
        line += f"  server CPU {(cpu_after - cpu_before) / len(latencies) * 1000:5.1f} ms/msg"
        if loop_before is not None and loop_after is not None:
            loop_ms = (loop_after - loop_before) / len(latencies) * 1000
            other_ms = (cpu_after - cpu_before) / len(latencies) * 1000 - loop_ms
            line += f" (loop {loop_ms:.1f}, threads {other_ms:.1f})"
    print(line, flush=True)
    await asyncio.gather(*(c.close() for c in everyone))
    return len(latencies) / elapsed


async def steady_rate(base_url: str, customers: int, rate: float, seconds: float) -> None:
    """Open loop: messages leave at a fixed total rate, spread over the customers."""
    clients = [Customer(base_url) for _ in range(customers)]
    await asyncio.gather(*(c.connect() for c in clients))
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    busy = [False] * customers

    async def one(index: int, text: str) -> None:
        busy[index] = True
        latency, _ = await clients[index].ask(text)
        latencies.append(latency)
        busy[index] = False

    started = time.perf_counter()
    sent = 0
    skipped = 0
    while time.perf_counter() - started < seconds:
        index = sent % customers
        if busy[index]:
            skipped += 1  # this customer is still waiting; a person would not type over it
        else:
            tasks.append(asyncio.create_task(one(index, QUESTIONS[sent % len(QUESTIONS)])))
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    print(
        summary(f"hub, {customers} customers at steady {rate:.0f} msg/s", latencies, elapsed)
        + (f"  ({skipped} skipped: customer still waiting)" if skipped else ""),
        flush=True,
    )
    await asyncio.gather(*(c.close() for c in clients))


def embedding_only_rate(batch: int = 1, seconds: float = 10.0) -> float:
    """Messages/s the embedding models alone sustain on the hub's two CPU threads: one query
    embedding per model per message (the least the bot's answer needs), `batch` questions
    per model call (the hub batches concurrent customers' questions, up to 8, under load)."""
    from knowledge.embedding import embedders_from_names

    models = embedders_from_names(["e5", "use"])
    for model in models:
        model.embed_queries(["warm up"])

    def work(i: int) -> None:
        texts = [QUESTIONS[(i * batch + j) % len(QUESTIONS)] for j in range(batch)]
        for model in models:
            model.embed_queries(texts)

    calls, cpu_ms = two_thread_rate(work, seconds)
    rate, label = calls * batch, "embedding models alone (1 query x 2 models)"
    if batch > 1:
        label = f"  the same in batches of {batch} questions"
    print(f"{label:<44} {rate:7.1f} msg/s  CPU {cpu_ms / batch:5.1f} ms/msg", flush=True)
    return rate


def two_thread_rate(work: Callable[[int], object], seconds: float) -> tuple[float, float]:
    """Run `work(i)` for i = 0, 1, … on two threads (the hub's model threads) for `seconds`;
    return messages/s and the process's CPU milliseconds per message."""
    done = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        started, cpu_started = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            list(pool.map(work, range(done, done + 20)))
            done += 20
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return done / elapsed, cpu / done * 1000


async def check_questions(base_url: str) -> None:
    client = Customer(base_url)
    await client.connect()
    for question in QUESTIONS:
        _, reply = await client.ask(question)
        if reply.get("author") != "bot" or reply.get("handoff") or not reply.get("sources"):
            raise SystemExit(f"the demo KB does not answer {question!r}: {reply}")
        while not client.inbox.empty():
            client.inbox.get_nowait()
    await client.close()


async def measure(
    label: str, base_url: str, runs: list[tuple[int, int]], server_pid: int
) -> dict[int, float]:
    rates = {}
    for customers, total in runs:
        rates[customers] = await closed_loop(
            base_url, customers, total, f"{label}, {customers} customers", server_pid
        )
    return rates


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=400, help="messages per closed-loop run")
    parser.add_argument(
        "--keep", type=Path, help="reuse/keep this data dir (skips demo seeding next time)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the hub to start (the first start seeds and embeds the demo KB)",
    )
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-webchat-"))
    data_dir = options.keep or workdir / "data"
    print(f"machine: {os.cpu_count()} CPUs; client and server share them (loopback)\n", flush=True)

    echo_port, hub_port = free_port(), free_port()
    echo = start(
        [sys.executable, "-c", ECHO_SERVER, str(echo_port)], dict(os.environ), workdir / "echo.log"
    )
    env = {**os.environ, "SERVICEHUB_DATA_DIR": str(data_dir), "SERVICEHUB_LOG_LEVEL": "WARNING"}
    env.pop("SERVICEHUB_DATABASE_URL", None)
    hub = start(
        [sys.executable, "-m", "hub", "serve", "--port", str(hub_port)], env, workdir / "hub.log"
    )
    try:
        wait_healthy(f"http://127.0.0.1:{echo_port}/socket.io/?EIO=4&transport=polling", echo)
        wait_healthy(f"http://127.0.0.1:{hub_port}/healthz", hub, options.start_timeout)
        hub_url, echo_url = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{echo_port}"
        runs = [(1, min(100, options.messages)), (50, options.messages), (200, options.messages)]

        async def run_all() -> tuple[dict[int, float], dict[int, float]]:
            await check_questions(hub_url)
            echo_rates = await measure("bare python-socketio echo", echo_url, runs, echo.pid)
            hub_rates = await measure("hub (embedded bot, SQLite)", hub_url, runs, hub.pid)
            await steady_rate(hub_url, 50, 20.0, 20.0)
            return echo_rates, hub_rates

        _, hub_rates = asyncio.run(run_all())
        embed_rate = embedding_only_rate()
        batched_rate = embedding_only_rate(batch=8)
        best = max(hub_rates.values())
        print(
            f"\nhub bot answers at {best:.1f} msg/s = {best / embed_rate:.0%} "
            "of the embedding models alone (target ≥ 80%),\n"
            f"{best / batched_rate:.0%} of the models alone in batches of 8 "
            "(what is left for the hub's own work when both batch alike)"
        )
    finally:
        for process in (hub, echo):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a hub still seeding ignores SIGTERM for long
                process.kill()
                process.wait(timeout=30)
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
