"""The worker: claiming, notifications, cancellation, leases, fencing, draining, crashes."""

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from engine.errors import LostLease
from engine.executor import Executor
from engine.statuses import RunStatus, StepStatus
from runs import lifecycle
from runs.models import Run, RunEvent
from runs.store import DjangoStore
from runs.tests import steps
from runs.tests.conftest import assert_gapless, edge, node, run_coroutine
from runs.worker import Worker, claim_runs

ROOT = Path(__file__).resolve().parents[2]


async def until(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(predicate)():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not reached in time")


def with_worker(scenario, **options):
    """Run `scenario(worker)` while a Worker runs in the same event loop."""

    async def main():
        worker = Worker("test-worker", **{"poll_seconds": 5.0, **options})
        task = asyncio.ensure_future(worker.run())
        try:
            await scenario(worker)
        finally:
            worker.request_stop()
            await asyncio.wait_for(task, 15)
            await sync_to_async(lambda: connection.close())()  # the test's own thread-sensitive one

    run_coroutine(main())


def status_of(run):
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


def test_the_worker_picks_up_a_new_run_when_notified(make_run):
    async def scenario(worker):
        await asyncio.sleep(0.2)  # the worker is idle, sleeping on a 5 s poll
        started = time.monotonic()
        run = await sync_to_async(make_run)([node("a", "transform", {"mapping": {"x": 1}})])
        await until(lambda: status_of(run) == RunStatus.COMPLETED, timeout=3)
        assert time.monotonic() - started < 2

    with_worker(scenario)


def test_the_worker_runs_many_runs_at_once(make_run):
    async def scenario(worker):
        runs = [
            await sync_to_async(make_run)([node("a", "test_probe", {"sleep": 0.3})])
            for _ in range(5)
        ]
        started = time.monotonic()
        for run in runs:
            await until(lambda run=run: status_of(run) == RunStatus.COMPLETED)
        assert time.monotonic() - started < 1.4  # five 0.3 s runs, not one after another

    with_worker(scenario)


def test_a_backlog_larger_than_the_concurrency_drains_without_waiting_for_the_poll(make_run):
    # made before the worker starts: no notification will come for them
    runs = [make_run([node("a", "transform", {"mapping": {"x": i}})]) for i in range(12)]

    async def scenario(worker):
        started = time.monotonic()
        for run in runs:
            await until(lambda run=run: status_of(run) == RunStatus.COMPLETED, timeout=20)
        # each run that ends makes room: the next claim follows at once, not after a poll
        assert time.monotonic() - started < 10

    with_worker(scenario, concurrency=3, poll_seconds=30.0)


def test_a_cancel_interrupts_a_running_step_at_once(make_run):
    async def scenario(worker):
        run = await sync_to_async(make_run)([node("slow", "test_probe", {"sleep": 30})])
        await until(lambda: run.steps.filter(status=StepStatus.RUNNING).exists())
        await sync_to_async(lifecycle.cancel)(run.pk)
        await until(lambda: f"{run.pk}:slow" in steps.cancelled, timeout=2)
        await until(lambda: not worker.tasks, timeout=2)
        assert await sync_to_async(status_of)(run) == RunStatus.CANCELLED

    with_worker(scenario)


def test_an_approval_given_to_a_paused_run_wakes_the_worker(make_run):
    async def scenario(worker):
        run = await sync_to_async(make_run)([node("ask", "wait_for_approval", {})])
        await until(lambda: status_of(run) == RunStatus.PAUSED)
        await sync_to_async(lifecycle.resume)(run.pk, "ask", {"approved": True})
        await until(lambda: status_of(run) == RunStatus.COMPLETED, timeout=3)

    with_worker(scenario)


def test_a_stalled_worker_that_lost_its_lease_writes_nothing(make_run):
    run = make_run([node("a", "test_probe", {"sleep": 0.3})])

    async def main():
        store = DjangoStore()
        try:
            [(run_id, stale_fence)] = await store.call(claim_runs, "stalled", 1, 0.05)
            stalled = asyncio.ensure_future(Executor(store, run_id, stale_fence).run())
            await asyncio.sleep(0.15)  # its step is running; its lease expires meanwhile
            [(_, new_fence)] = await store.call(claim_runs, "rescuer", 1, 30)
            assert new_fence == stale_fence + 1
            before = await sync_to_async(RunEvent.objects.filter(run_id=run_id).count)()
            with pytest.raises(LostLease):
                await stalled
            after = await sync_to_async(RunEvent.objects.filter(run_id=run_id).count)()
            assert after == before
            assert await Executor(store, run_id, new_fence).run() == RunStatus.COMPLETED
        finally:
            await asyncio.get_running_loop().run_in_executor(None, store.close)
            await sync_to_async(lambda: connection.close())()

    run_coroutine(main())
    run.refresh_from_db()
    assert run.steps.get(step_id="a", attempt=1).status == StepStatus.COMPLETED
    assert_gapless(run)


def test_the_heartbeat_keeps_the_lease_and_stops_runs_taken_over(make_run):
    async def scenario(worker):
        run = await sync_to_async(make_run)([node("slow", "test_probe", {"sleep": 30})])
        await until(lambda: run.steps.filter(status=StepStatus.RUNNING).exists())
        first = await sync_to_async(lambda: Run.objects.get(pk=run.pk).lease_expires_at)()
        await asyncio.sleep(0.4)
        renewed = await sync_to_async(lambda: Run.objects.get(pk=run.pk).lease_expires_at)()
        assert renewed > first
        # Another worker takes the run over (as after a partition): ours must stop.
        await sync_to_async(Run.objects.filter(pk=run.pk).update)(lease_expires_at=None)
        await sync_to_async(claim_runs)("other", 1, 30)
        await until(lambda: f"{run.pk}:slow" in steps.cancelled, timeout=3)

    with_worker(scenario, lease_seconds=0.6)


def test_stopping_drains_then_releases_what_is_left(make_run):
    async def scenario(worker):
        quick = await sync_to_async(make_run)([node("q", "test_probe", {"sleep": 0.2})])
        slow = await sync_to_async(make_run)([node("s", "test_probe", {"sleep": 30})])
        await until(lambda: len(worker.tasks) == 2)
        worker.request_stop()
        await until(lambda: not worker.tasks, timeout=5)
        assert await sync_to_async(status_of)(quick) == RunStatus.COMPLETED
        released = await sync_to_async(Run.objects.get)(pk=slow.pk)
        assert released.status == RunStatus.RUNNING
        assert released.lease_owner == ""

    with_worker(scenario, drain_seconds=1.0)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def _start_worker_process(tmp_path, name):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": "",
        "FLOWMATRX_LEASE_SECONDS": "1",
        "FLOWMATRX_VAR_DIR": str(tmp_path),
    }
    with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--name", name],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_a_run_survives_kill_9_of_its_worker(make_run, tmp_path):
    if connection.vendor == "sqlite" and settings.DATABASES["default"]["NAME"].startswith(
        "file:memory"
    ):
        pytest.skip("needs a database file another process can open")
    chain = ["s0", "w1", "s2", "w3", "s4", "w5", "s6"]
    nodes = [
        node(n, "delay", {"seconds": 0.4})
        if n.startswith("w")
        else node(n, "transform", {"mapping": {"step": n}})
        for n in chain
    ]
    run = make_run(nodes, [edge(a, b) for a, b in itertools.pairwise(chain)])

    first = _start_worker_process(tmp_path, "first")
    try:
        _wait(lambda: run.steps.filter(step_id="s2", status=StepStatus.COMPLETED).exists())
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    done_before = set(
        run.steps.filter(status=StepStatus.COMPLETED).values_list("step_id", flat=True)
    )
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING

    second = _start_worker_process(tmp_path, "second")
    try:
        _wait(lambda: status_of(run) == RunStatus.COMPLETED)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()

    run.refresh_from_db()
    for step_id in chain:
        completed = run.steps.filter(step_id=step_id, status=StepStatus.COMPLETED)
        assert completed.count() == 1, step_id
    for step_id in done_before:
        assert run.events.filter(event_type="step.started", step_id=step_id).count() == 1
    assert run.context["s6"] == {"step": "s6"}
    assert_gapless(run)
