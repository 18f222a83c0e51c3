"""Live-view benchmark: how fast a committed event reaches WebSocket clients, and how long
the run page takes to render a long run.

    .venv/bin/python bench/live.py
    .venv/bin/python bench/live.py --events 300 --subscribers 1 100 --client-processes 4
    .venv/bin/python bench/live.py --subscribers            # L2 only

L1  event committed -> JSON received, through the Redis channel layer (REDIS_URL), by real
    WebSocket clients of `WS /ws/runs/<id>` served by daphne (`manage.py serve --no-worker`
    in a subprocess), with 1 and with 100 subscribers            -> p50 / p99 ms
    Each event is appended with `runs.eventlog.append` inside a transaction; the clock starts
    when the commit returns, then the event is published as the store does (after commit).
    The subscribers live in `--client-processes` processes (plain sockets and `selectors`,
    this file run with `--client`), so that reading 100 sockets in Python does not pass for
    server time; arrival times are `time.perf_counter()`, one clock for all processes.
    The next event is committed once every subscriber has the previous one.
    `--profile-server FILE` runs the server under cProfile.
L2  the run page's server render (view + template, all queries) for a run with 1,000 events
    and 333 steps                                                 -> median ms, bytes

PostgreSQL: a fresh database `flowmatrx_live_bench` (BENCH_PG_DB) on BENCH_PG_URL (default
postgres://postgres@127.0.0.1:5432). Redis: BENCH_REDIS_URL (default redis://127.0.0.1:6379/7).
"""

import argparse
import asyncio
import base64
import json
import os
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("BENCH_PG_DB", "flowmatrx_live_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the subscribers: client processes with a minimal WebSocket client -------------------------


def handshake(port: int, path: str) -> socket.socket:
    """A real TCP WebSocket connection (RFC 6455; the server's frames are unmasked)."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: frames may follow the head at once
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"handshake refused: {head!r}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def frames(buffer: bytearray) -> list[bytes]:
    """Take the complete text frames off the front of `buffer`."""
    messages = []
    while len(buffer) >= 2:
        length, start = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                break
            (length,), start = struct.unpack("!H", buffer[2:4]), 4
        elif length == 127:
            if len(buffer) < 10:
                break
            (length,), start = struct.unpack("!Q", buffer[2:10]), 10
        if len(buffer) < start + length:
            break
        opcode, payload = buffer[0] & 0x0F, bytes(buffer[start : start + length])
        del buffer[: start + length]
        if opcode == 0x8:
            raise ConnectionError(f"closed by the server: {payload!r}")
        if opcode == 0x1:
            messages.append(payload)
    return messages


def client_process(port: int, path: str, connections: int, last_seq: int) -> None:
    """`bench/live.py --client ...`: hold `connections` sockets, read the snapshot on each,
    say `ready`; then for each seq print it once every socket has it (the parent waits
    for that before the next commit); at `last_seq` print the arrival times and exit."""
    sockets = [handshake(port, path) for _ in range(connections)]
    buffers = {sock: bytearray() for sock in sockets}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    arrivals: dict[int, list[float]] = {}
    snapshots = 0
    while True:
        for key, _ in selector.select():
            data = key.fileobj.recv(65536)
            now = time.perf_counter()
            if not data:
                raise ConnectionError("the server closed a connection")
            buffer = buffers[key.fileobj]
            buffer += data
            for payload in frames(buffer):
                message = json.loads(payload)
                if message["type"] == "snapshot":
                    snapshots += 1
                    if snapshots == connections:
                        print("ready", flush=True)
                    continue
                seq = message["seq"]
                times = arrivals.setdefault(seq, [])
                times.append(now)
                if len(times) == connections:
                    print(seq, flush=True)
                    if seq == last_seq:
                        print(json.dumps(arrivals), flush=True)
                        return


# -- the measurements (one Django process) -----------------------------------------------------


def setup_data():
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey
    from engine.statuses import RunStatus, WorkflowStatus
    from runs.models import Run
    from workflows.models import Workflow

    user = get_user_model().objects.create_user("bench", password="x")
    _, token = ApiKey.create(user, name="bench")
    workflow = Workflow.objects.create(
        name="Live", definition={"nodes": [], "edges": []}, status=WorkflowStatus.PUBLISHED
    )
    # Paused without a wake-up time: nothing but this benchmark writes to it.
    run = Run.objects.create(workflow=workflow, status=RunStatus.PAUSED)
    return user, token, run


def commit_one(run_id, n: int):
    from django.db import transaction

    from engine.events import NewEvent
    from engine.statuses import EventType
    from runs import eventlog

    with transaction.atomic():
        events = eventlog.append(
            run_id,
            [NewEvent(EventType.CONTEXT_UPDATED, {"step_id": "s", "keys": [f"k{n}"]}, "s")],
        )
    return events, time.perf_counter()


async def latency(
    port: int, token: str, run_id, subscribers: int, processes: int, count: int, extra: dict
) -> list[float]:
    """Every subscriber's delay from commit to receipt, for `count` events (after 5 to warm
    up), each committed once every subscriber has the one before."""
    from channels.db import database_sync_to_async

    from runs import eventlog
    from runs.models import Run

    warmup = 5
    first = await database_sync_to_async(lambda: Run.objects.get(pk=run_id).last_seq + 1)()
    last = first + warmup + count - 1
    path = f"/ws/runs/{run_id}?token={token}"
    shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
    clients = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            str(port),
            path,
            str(n),
            str(last),
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,  # the last line holds every arrival time
        )
        for n in shares
        if n
    ]
    for client in clients:  # each socket has had its snapshot: its consumer has subscribed
        assert (await client.stdout.readline()).strip() == b"ready"

    commit = database_sync_to_async(commit_one)
    committed_at = {}
    for n in range(warmup + count):
        events, committed = await commit(run_id, n)
        committed_at[events[0].seq] = committed
        await eventlog.publish(run_id, events)
        if n >= warmup:
            extra["publish"].append((time.perf_counter() - committed) * 1000)
        for client in clients:
            assert int(await client.stdout.readline()) == events[0].seq
    arrivals: dict[int, list[float]] = {}
    for client in clients:
        for seq, times in json.loads(await client.stdout.readline()).items():
            arrivals.setdefault(int(seq), []).extend(times)
        await client.wait()
    samples = []
    for seq in range(first + warmup, last + 1):
        delays = [(t - committed_at[seq]) * 1000 for t in arrivals[seq]]
        samples += delays
        extra["first"].append(min(delays))
    return samples


def long_run(user):
    """A completed run of a 333-step chain with 1,000 events and 333 step runs."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from engine.events import NewEvent
    from engine.statuses import EventType, RunStatus, StepStatus, WorkflowStatus
    from runs import eventlog
    from runs.models import Run, StepRun
    from workflows.models import Workflow

    steps = 333
    nodes = [
        {"id": f"s{i}", "type": "transform", "data": {"config": {"mapping": {"v": i}}}}
        for i in range(steps)
    ]
    edges = [{"id": f"e{i}", "source": f"s{i - 1}", "target": f"s{i}"} for i in range(1, steps)]
    workflow = Workflow.objects.create(
        name="Long",
        definition={"nodes": nodes, "edges": edges},
        status=WorkflowStatus.PUBLISHED,
    )
    start = timezone.now()
    run = Run.objects.create(
        workflow=workflow,
        status=RunStatus.RUNNING,
        started_at=start,
        created_by=user,
        context={f"s{i}": {"v": i} for i in range(steps)},
    )
    events = [NewEvent(EventType.RUN_STARTED, {"status": RunStatus.RUNNING})]
    rows = []
    for i in range(steps):
        sid = f"s{i}"
        began = start + timedelta(milliseconds=10 * i)
        rows.append(
            StepRun(
                run=run,
                step_id=sid,
                step_type="transform",
                status=StepStatus.COMPLETED,
                input={"mapping": {"v": i}},
                output={"v": i},
                created_at=began,
                started_at=began,
                completed_at=began + timedelta(milliseconds=8),
            )
        )
        events += [
            NewEvent(
                EventType.STEP_STARTED,
                {"step_id": sid, "step_type": "transform", "step_label": "", "attempt": 1},
                sid,
            ),
            NewEvent(
                EventType.STEP_COMPLETED,
                {
                    "step_id": sid,
                    "step_type": "transform",
                    "status": "completed",
                    "output_summary": {"v": i},
                    "duration_ms": 8,
                },
                sid,
            ),
        ]
        if i < steps - 1:  # 1 + 3 x 333 - 1 + 1 = 1,000 events
            events.append(NewEvent(EventType.CONTEXT_UPDATED, {"step_id": sid, "keys": [sid]}, sid))
    events.append(NewEvent(EventType.RUN_COMPLETED, {"status": "completed", "duration_ms": 3330}))
    StepRun.objects.bulk_create(rows)
    with transaction.atomic():
        eventlog.append(
            run.pk,
            events,
            status=RunStatus.COMPLETED,
            completed_at=start + timedelta(milliseconds=3330),
        )
    assert run.events.count() == 1000
    return run


def render_times(user, run, repeat: int) -> list[float]:
    from django.test import RequestFactory

    from runs.views import run_detail

    factory = RequestFactory()
    times = []
    size = 0
    for _ in range(repeat + 1):
        request = factory.get(f"/runs/{run.pk}/")
        request.user = user
        began = time.perf_counter()
        response = run_detail(request, run_id=run.pk)
        response.render()
        times.append((time.perf_counter() - began) * 1000)
        size = len(response.content)
    return times[1:], size  # the first render warms the template cache


SERVE = [sys.executable, "manage.py", "serve", "--no-migrate", "--no-worker"]


def start_server(port: int, env: dict, log: Path, profile: str | None = None) -> subprocess.Popen:
    command = [*SERVE, "--port", str(port)]
    if profile:
        command[1:1] = ["-m", "cProfile", "-o", profile]
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(log.read_text()) from None
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latencies(args, token: str, run_id) -> None:
    """L1 for each subscriber count, against one server."""
    tmp = Path(tempfile.mkdtemp(prefix="flowmatrx-live-"))
    port = free_port()
    env = {**os.environ, "FLOWMATRX_VAR_DIR": str(tmp)}
    server = start_server(port, env, tmp / "serve.log", args.profile_server)
    try:
        print(f"L1 event committed -> JSON at the client (daphne on :{port}, real sockets)")
        for subscribers in args.subscribers:
            extra: dict[str, list[float]] = {"publish": [], "first": []}
            processes = min(args.client_processes, subscribers)
            samples = asyncio.run(
                latency(port, token, run_id, subscribers, processes, args.events, extra)
            )
            print(
                f"   {subscribers:>3} subscriber{'s' if subscribers != 1 else ' '}: "
                f"p50 {percentile(samples, 50):6.2f} ms   p99 {percentile(samples, 99):6.2f} ms"
                f"   ({args.events} events, {len(samples)} deliveries)"
            )
            print(
                f"       (group_send returned at p50 {percentile(extra['publish'], 50):.2f} ms,"
                f" the first client had it at p50 {percentile(extra['first'], 50):.2f} ms)"
            )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    if sys.argv[1:2] == ["--client"]:
        port, path, connections, last_seq = sys.argv[2:6]
        return client_process(int(port), path, int(connections), int(last_seq))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events per subscriber count")
    parser.add_argument(
        "--subscribers", type=int, nargs="*", default=[1, 100], help="none: skip L1"
    )
    parser.add_argument("--renders", type=int, default=7)
    parser.add_argument(
        "--client-processes", type=int, default=4, help="processes holding the subscribers"
    )
    parser.add_argument("--profile-server", metavar="FILE", help="cProfile the server into FILE")
    args = parser.parse_args()

    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    os.environ.update(
        DATABASE_URL=f"{PG_SERVER}/{PG_DB}",
        REDIS_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE="flowmatrx.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    user, token, run = setup_data()

    print(f"Flow Matrx live benchmark (PostgreSQL {PG_DB}, Redis {REDIS_URL})")
    if args.subscribers:
        latencies(args, token, run.pk)
    connection.close()

    long = long_run(user)
    times, size = render_times(user, long, args.renders)
    print(
        f"L2 run page render, 1,000 events / 333 steps: median {statistics.median(times):.1f} ms"
        f" (min {min(times):.1f}, max {max(times):.1f}, {len(times)} renders, {size:,} bytes)"
    )


if __name__ == "__main__":
    main()
