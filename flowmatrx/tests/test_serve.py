"""`manage.py serve` as a user starts it: a fresh var/ directory, SQLite, no services.

The server must migrate its own database, load the example workflows, answer HTTP, serve
its static files itself and run workflows with the embedded worker, then stop cleanly on
SIGTERM.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.tests.http_servers import free_port

ROOT = Path(__file__).resolve().parents[2]

START_RUN = """
from engine.statuses import WorkflowStatus
from runs.lifecycle import start_run
from workflows.models import Workflow
node = lambda i, t, c: {"id": i, "type": t, "position": {"x": 0, "y": 0}, "data": {"config": c}}
wf = Workflow.objects.create(name="smoke", status=WorkflowStatus.PUBLISHED, definition={
    "nodes": [node("wait", "delay", {"seconds": 0.2}),
              node("greet", "transform", {"mapping": {"text": "hello {{ input.name }}"}})],
    "edges": [{"id": "e", "source": "wait", "target": "greet"}]})
print(start_run(wf, {"name": "serve"}).id)
"""

COUNT_EXAMPLES = """
from workflows.models import Workflow
examples = Workflow.objects.filter(name__startswith="Example:", status="published")
print(examples.count(), "published")
"""

RUN_STATE = """
import json
from runs.models import Run
run = Run.objects.get(pk="{run_id}")
print(json.dumps({"status": run.status, "context": run.context}))
"""


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["FLOWMATRX_VAR_DIR"] = str(tmp_path / "var")
    return env


def manage(env, *args, timeout=60):
    result = subprocess.run(
        [sys.executable, "manage.py", *args, "--no-imports", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def wait_for_http(url: str, server: subprocess.Popen, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited early:\n{server.stdout.read()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {seconds} s")


def test_serve_runs_the_embedded_mode_end_to_end(embedded_env):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = wait_for_http(f"{base}/healthz", server)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "sqlite"}
        assert (Path(embedded_env["FLOWMATRX_VAR_DIR"]) / "flowmatrx.sqlite3").exists()

        htmx = httpx.get(f"{base}/static/vendor/htmx.min.js")
        assert htmx.status_code == 200
        assert b"htmx" in htmx.content[:2000]
        login = httpx.get(f"{base}/accounts/login/")
        assert login.status_code == 200
        assert 'src="/static/vendor/htmx.min.js"' in login.text

        examples = manage(embedded_env, "shell", "-c", COUNT_EXAMPLES)
        assert examples == "6 published"  # loaded into the empty installation

        run_id = manage(embedded_env, "shell", "-c", START_RUN)
        deadline = time.monotonic() + 20
        while True:
            state = manage(embedded_env, "shell", "-c", RUN_STATE.replace("{run_id}", run_id))
            if '"completed"' in state or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert '"status": "completed"' in state
        assert '"text": "hello serve"' in state
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert server.returncode == 0, output
