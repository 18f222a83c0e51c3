import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.executor import Executor
from engine.statuses import RunStatus, WorkflowStatus
from runs import lifecycle
from runs.models import Run
from runs.store import DjangoStore
from runs.tests import steps  # noqa: F401  (registers the test step types)
from runs.worker import claim_runs
from workflows.models import Workflow


def run_coroutine(coro):
    """asyncio.run in a thread of its own. In the test's thread it would unset that thread's
    event loop when done, and pytest-asyncio then makes (and never closes) a new one for the
    next async test: a ResourceWarning that fails some later, unrelated test."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result()


def node(node_id, type_, config=None, **data):
    return {
        "id": node_id,
        "type": type_,
        "position": {"x": 0, "y": 0},
        "data": {"config": config or {}, **data},
    }


def edge(source, target, handle=None):
    e = {"id": f"{source}-{target}", "source": source, "target": target}
    if handle:
        e["sourceHandle"] = handle
    return e


@pytest.fixture
def make_run(transactional_db, alice):
    """make_run(nodes, edges, input=..., settings=...) -> a pending Run of a new workflow."""

    def make(nodes, edges=(), input=None, settings=None, **run_options):
        workflow = Workflow.objects.create(
            name="Test",
            definition={"nodes": list(nodes), "edges": list(edges), "settings": settings or {}},
            status=WorkflowStatus.PUBLISHED,
            created_by=alice,
        )
        return lifecycle.start_run(workflow, input or {}, created_by=alice, **run_options)

    return make


@pytest.fixture
def drive(transactional_db):
    """drive(run) claims and executes the run like a worker, activation after activation,
    until it finishes, pauses, or nothing is claimable. Returns the refreshed run."""

    def run_it(run, *, park_after=2.0, activations=10, wait_between=0.0):
        async def main():
            store = DjangoStore()
            try:
                for _ in range(activations):
                    claimed = await store.call(claim_runs, "test-worker", 1, 30.0)
                    if not claimed:
                        if wait_between:
                            await asyncio.sleep(wait_between)
                            continue
                        return
                    run_id, fence = claimed[0]
                    status = await Executor(
                        store, run_id, fence, park_after_seconds=park_after
                    ).run()
                    if status.is_finished or status == RunStatus.PAUSED:
                        return
            finally:
                await asyncio.get_running_loop().run_in_executor(None, store.close)

        run_coroutine(main())
        return Run.objects.get(pk=run.pk)

    return run_it


def event_types(run, step_id=None):
    events = run.events.order_by("seq")
    if step_id is not None:
        events = events.filter(step_id=step_id)
    return [e.event_type for e in events]


def assert_gapless(run):
    seqs = list(run.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert Run.objects.get(pk=run.pk).last_seq == len(seqs)


@pytest.fixture
def published(transactional_db, alice):
    """published(nodes, edges, name=..., settings=...) -> a published Workflow."""

    def make(nodes, edges=(), name="Child", settings=None):
        return Workflow.objects.create(
            name=name,
            definition={"nodes": list(nodes), "edges": list(edges), "settings": settings or {}},
            status=WorkflowStatus.PUBLISHED,
            created_by=alice,
        )

    return make


@pytest.fixture
def drive_all(transactional_db):
    """drive_all(): claim and execute every claimable run, round after round, like a
    worker, until nothing is claimable."""

    def run_all(rounds=30):
        async def main():
            store = DjangoStore()
            try:
                for _ in range(rounds):
                    claimed = await store.call(claim_runs, "test-worker", 20, 30.0)
                    if not claimed:
                        return
                    await asyncio.gather(
                        *(Executor(store, run_id, fence).run() for run_id, fence in claimed)
                    )
            finally:
                await asyncio.get_running_loop().run_in_executor(None, store.close)

        run_coroutine(main())

    return run_all
