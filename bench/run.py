"""Engine benchmark: the workloads we measure other engines with (no-op steps, full
persistence: step runs, context and the whole event log).

    .venv/bin/python bench/run.py                 # PostgreSQL and SQLite, 3 repeats each
    .venv/bin/python bench/run.py --backend sqlite --repeat 5

W1  one run of a 50-step linear chain, each step reading the previous output -> ms per step
W2  one run of start -> 100 parallel steps -> join                          -> seconds
W3  200 runs of a 3-step chain, created as fast as the ORM allows, executed by 1 and by 2
    `manage.py worker` processes                                            -> runs per second
W4  3 steps with a durable 1 s delay in the middle                          -> ms above 1 s

PostgreSQL: a fresh database `flowmatrx_bench` (BENCH_PG_DB) on BENCH_PG_URL (default
postgres://postgres@127.0.0.1:5432). SQLite: a fresh file in a temporary folder.
Figures are medians over the repeats.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("BENCH_PG_DB", "flowmatrx_bench")


# -- definitions ------------------------------------------------------------------------------


def _node(node_id, mapping):
    return {"id": node_id, "type": "transform", "data": {"config": {"mapping": mapping}}}


def _edge(a, b):
    return {"id": f"{a}-{b}", "source": a, "target": b}


def chain(n):
    nodes = [_node("s0", {"v": 0})]
    nodes += [_node(f"s{i}", {"v": f"{{{{ s{i - 1}.v }}}}"}) for i in range(1, n)]
    return {"nodes": nodes, "edges": [_edge(f"s{i - 1}", f"s{i}") for i in range(1, n)]}


def fan(n):
    nodes = [_node("start", {"v": 1})]
    nodes += [_node(f"p{i}", {"v": "{{ start.v }}"}) for i in range(n)]
    nodes.append(_node("join", {"n": n}))
    edges = [_edge("start", f"p{i}") for i in range(n)] + [_edge(f"p{i}", "join") for i in range(n)]
    return {"nodes": nodes, "edges": edges, "settings": {"max_concurrency": n}}


def with_delay(seconds):
    nodes = [
        _node("a", {"v": 1}),
        {"id": "wait", "type": "delay", "data": {"config": {"seconds": seconds}}},
        _node("c", {"v": "{{ a.v }}"}),
    ]
    return {"nodes": nodes, "edges": [_edge("a", "wait"), _edge("wait", "c")]}


# -- one backend, inside its own process (Django is configured once per process) ---------------


def measure(backend: str, repeat: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from engine.executor import Executor
    from engine.statuses import RunStatus
    from runs import lifecycle
    from runs.models import Run
    from runs.store import DjangoStore
    from runs.worker import claim_runs
    from workflows.models import Workflow

    def workflow(definition, name):
        return Workflow.objects.create(name=name, definition=definition, status="published")

    async def one_run(store, wf):
        started = time.perf_counter()
        run = await store.call(lifecycle.start_run, wf, {})
        while True:
            claimed = await store.call(claim_runs, "bench", 1, 30.0)
            run_id, fence = claimed[0]
            status = await Executor(store, run_id, fence).run()
            if status.is_finished:
                break
        elapsed = time.perf_counter() - started
        final = await store.call(lambda: Run.objects.get(pk=run.pk))
        assert final.status == RunStatus.COMPLETED, (final.status, final.error)
        return elapsed

    w1, w2, w4 = workflow(chain(50), "W1"), workflow(fan(100), "W2"), workflow(with_delay(1), "W4")

    async def single_runs():
        store = DjangoStore()
        results = {"W1": [], "W2": [], "W4": []}
        await one_run(store, w1)  # warm-up: connections, template cache
        for _ in range(repeat):
            results["W1"].append(await one_run(store, w1) / 50 * 1000)
            results["W2"].append(await one_run(store, w2))
            results["W4"].append((await one_run(store, w4) - 1.0) * 1000)
        await asyncio.get_running_loop().run_in_executor(None, store.close)
        return results

    results = asyncio.run(single_runs())
    results["W3/1"] = [w3(1, Workflow, lifecycle, Run) for _ in range(repeat)]
    results["W3/2"] = [w3(2, Workflow, lifecycle, Run) for _ in range(repeat)]
    return {key: statistics.median(values) for key, values in results.items()} | {"raw": results}


def w3(workers: int, Workflow, lifecycle, Run) -> float:
    from django.db import connection

    wf = Workflow.objects.create(name=f"W3x{workers}", definition=chain(3), status="published")
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--concurrency", "100"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(2.0)  # let them start and go idle
        started = time.perf_counter()
        ids = [lifecycle.start_run(wf, {"i": i}).pk for i in range(200)]
        while Run.objects.filter(pk__in=ids, status="completed").count() < 200:
            failed = Run.objects.filter(pk__in=ids, status="failed").first()
            assert failed is None, failed.error
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        connection.close()
    return 200 / elapsed


# -- driver -------------------------------------------------------------------------------------


def prepare(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite3'}"
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    return f"{PG_SERVER}/{PG_DB}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(measure(args.child, args.repeat)))
        return

    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    table = {}
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "DATABASE_URL": prepare(backend, Path(tmp)),
                "REDIS_URL": "",
                "FLOWMATRX_VAR_DIR": tmp,
                "DJANGO_SETTINGS_MODULE": "flowmatrx.settings",
                "LOG_LEVEL": "WARNING",
            }
            out = subprocess.run(
                [sys.executable, __file__, "--child", backend, "--repeat", str(args.repeat)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            table[backend] = json.loads(out.strip().splitlines()[-1])

    print(f"Flow Matrx engine benchmark, medians of {args.repeat}")
    print(f"{'workload':<34}" + "".join(f"{b:>14}" for b in backends))
    rows = [
        ("W1 50-step chain (ms/step)", "W1", "{:.2f}"),
        ("W2 1->100->1 fan-out (s)", "W2", "{:.3f}"),
        ("W3 200 runs, 1 worker (runs/s)", "W3/1", "{:.0f}"),
        ("W3 200 runs, 2 workers (runs/s)", "W3/2", "{:.0f}"),
        ("W4 1 s delay (ms above 1 s)", "W4", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        print(f"{label:<34}" + "".join(f"{fmt.format(table[b][key]):>14}" for b in backends))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
