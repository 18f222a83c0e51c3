"""Triggers through real processes: the webhook over HTTP to `manage.py serve`, and a
schedule fired by two `manage.py worker` processes racing on PostgreSQL."""

import asyncio
import itertools
import json
import time
from collections import Counter
from datetime import datetime

import httpx
import pytest

from engine import signing
from engine.statuses import RunStatus, TriggerType
from engine.tests.http_servers import free_port
from runs.models import Run
from runs.tests.conftest import run_coroutine
from triggers.models import Schedule
from triggers.tests.conftest import (
    start_process,
    stop_process,
    subprocess_env,
    wait_until,
)
from triggers.webhooks import webhook_url

SECRET = "e2e-secret"


def status_of(run_id) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


def test_a_signed_webhook_over_http_runs_the_workflow(transactional_db, make_workflow, tmp_path):
    workflow = make_workflow({"type": "webhook", "secret": SECRET})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = base + webhook_url(workflow)
    server = start_process(
        tmp_path, "serve", ["serve", "--no-migrate", "--port", str(port)], subprocess_env(tmp_path)
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.2)

        body = json.dumps({"order": 7}).encode()
        headers = {
            "Content-Type": "application/json",
            signing.HEADER: signing.sign(SECRET, body),
            "Cookie": "sessionid=secret",
        }
        response = httpx.post(url + "?via=http", content=body, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        wait_until(lambda: status_of(run_id) == RunStatus.COMPLETED)
        run = Run.objects.get(pk=run_id)
        assert run.trigger_type == TriggerType.WEBHOOK
        assert run.context["echo"]["got"]["body"] == {"order": 7}
        assert run.context["echo"]["got"]["query"] == {"via": "http"}
        assert "cookie" not in run.context["echo"]["got"]["headers"]

        replay = httpx.post(url, content=body, headers=headers, timeout=10)
        assert replay.status_code == 409
        assert replay.json()["errors"][0]["loc"] == ["header", "X-FlowMatrx-Signature"]

        unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        assert "X-FlowMatrx-Signature" in unsigned.json()["errors"][0]["msg"]

        big = b"x" * (1024 * 1024 + 1)
        headers = {"Content-Type": "text/plain", signing.HEADER: signing.sign(SECRET, big)}
        assert httpx.post(url, content=big, headers=headers, timeout=10).status_code == 413

        def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(17):
                yield b"y" * 65536

        chunked = httpx.post(url, content=chunks(), headers={"Content-Type": "text/plain"})
        assert chunked.status_code == 413

        assert httpx.post(base + "/hooks/nope", content=b"{}").status_code == 404
        assert Run.objects.count() == 1
    finally:
        code = stop_process(server)
    assert code == 0, (tmp_path / "serve.log").read_text()


@pytest.mark.postgres
def test_two_workers_fire_each_tick_of_a_schedule_exactly_once(
    transactional_db, make_workflow, tmp_path
):
    make_workflow({"type": "schedule", "cron": "* * * * * *", "input": {"kind": "tick"}})
    env = subprocess_env(tmp_path)
    workers = [
        start_process(tmp_path, name, ["worker", "--name", name], env) for name in ("one", "two")
    ]
    try:
        # both workers up (each has claimed nothing yet but is polling the schedule)
        wait_until(lambda: Run.objects.count() >= 1, timeout=30)
        first = time.monotonic()
        time.sleep(3.2)
        for worker in workers:
            assert worker.poll() is None, "a worker died"
        assert time.monotonic() - first >= 3
    finally:
        codes = [stop_process(worker) for worker in workers]
    logs = "\n".join((tmp_path / f"{n}.log").read_text() for n in ("one", "two"))
    assert codes == [0, 0], logs

    runs = list(Run.objects.filter(trigger_type=TriggerType.SCHEDULE).order_by("created_at"))
    ticks = Counter(run.input["schedule"]["scheduled_for"] for run in runs)
    assert len(ticks) >= 3, ticks
    duplicates = {tick: n for tick, n in ticks.items() if n > 1}
    assert not duplicates, duplicates
    assert all(run.input["kind"] == "tick" for run in runs)
    # the ticks are whole seconds, one after another (none lost while both were up)
    # (compared as instants: an hour or a day may turn between two ticks)
    seconds = sorted(datetime.fromisoformat(tick).timestamp() for tick in ticks)
    assert max(b - a for a, b in itertools.pairwise(seconds)) <= 2, seconds
    # and the workers ran them
    wait_until(lambda: all(status_of(run.pk) == RunStatus.COMPLETED for run in runs[:-2]), 1)
    assert Schedule.objects.get().last_fired_at is not None


def test_the_worker_loop_fires_schedules_and_runs_them(transactional_db, make_workflow):
    from asgiref.sync import sync_to_async
    from django.db import connection

    from runs.worker import Worker

    make_workflow({"type": "schedule", "cron": "* * * * * *"})

    def completed_scheduled_run() -> bool:
        return Run.objects.filter(
            trigger_type=TriggerType.SCHEDULE, status=RunStatus.COMPLETED
        ).exists()

    async def main():
        worker = Worker("schedule-test-worker", poll_seconds=1.0)
        task = asyncio.ensure_future(worker.run())
        try:
            deadline = time.monotonic() + 10
            while not await sync_to_async(completed_scheduled_run)():
                assert time.monotonic() < deadline, "no scheduled run completed"
                await asyncio.sleep(0.05)
        finally:
            worker.request_stop()
            await asyncio.wait_for(task, 15)
            await sync_to_async(lambda: connection.close())()

    run_coroutine(main())
    ticks = Counter(
        run.input["schedule"]["scheduled_for"]
        for run in Run.objects.filter(trigger_type=TriggerType.SCHEDULE)
    )
    assert set(ticks.values()) == {1}
