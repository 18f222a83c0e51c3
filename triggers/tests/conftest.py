import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from workflows.models import Workflow

ROOT = Path(__file__).resolve().parents[2]


def node(node_id, type_="transform", config=None):
    return {
        "id": node_id,
        "type": type_,
        "position": {"x": 0, "y": 0},
        "data": {"config": config if config is not None else {"mapping": {"ok": True}}},
    }


def definition(*triggers, nodes=None):
    return {
        "nodes": nodes or [node("echo", config={"mapping": {"got": "{{ input }}"}})],
        "edges": [],
        "viewport": {"x": 0, "y": 0, "zoom": 1},
        "settings": {"triggers": list(triggers)},
    }


@pytest.fixture
def make_workflow(db, alice):
    """make_workflow(*triggers, publish=True) -> a workflow (published by default)."""

    def make(*triggers, publish=True, name="Hooked"):
        workflow = Workflow.objects.create(
            name=name, definition=definition(*triggers), created_by=alice
        )
        if publish:
            workflow.publish()
        return workflow

    return make


def next_version(workflow, *triggers, publish=True):
    """A new version of `workflow` with these triggers (published by default)."""
    draft = workflow.new_version()
    draft.definition = definition(*triggers)
    draft.save()
    if publish:
        draft.publish()
    return draft


def subprocess_env(tmp_path, **extra) -> dict:
    """The environment of a `manage.py` child using this test's database."""
    db = settings.DATABASES["default"]
    if connection.vendor == "postgresql":
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        if str(db["NAME"]).startswith("file:memory") or db["NAME"] == ":memory:":
            pytest.skip("needs a database file another process can open")
        url = f"sqlite:///{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": "",
            "FLOWMATRX_LEASE_SECONDS": "2",
            "FLOWMATRX_VAR_DIR": str(tmp_path),
            **extra,
        }
    )
    return env


def start_process(tmp_path, name, args, env) -> subprocess.Popen:
    with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen, timeout=20) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def wait_until(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached in time")
