"""Flow control (runs/flowcontrol.py): concurrency in the claim, rate limit, throttle,
debounce and priority when a run is requested, the workflow page, settings validation."""

import signal
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from engine.statuses import EventType, RunStatus, WorkflowStatus
from engine.validation import validate_definition
from runs import eventlog, flowcontrol, lifecycle
from runs.models import Run, RunEvent
from runs.tests.conftest import node
from runs.tests.test_worker import _start_worker_process, _wait
from runs.worker import claim_and_next_wakeup, claim_runs
from workflows.models import Workflow

T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)
"""The controllable clock starts a day ago, so the runs it creates are claimable now."""


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def at(self, seconds):
        self.now = T0 + timedelta(seconds=seconds)
        return self


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(eventlog, "db_now", clock)
    return clock


@pytest.fixture
def flow_workflow(transactional_db, alice):
    def make(settings, nodes=None):
        return Workflow.objects.create(
            name="Flow",
            definition={
                "nodes": nodes or [node("a", "transform", {"mapping": {"x": 1}})],
                "edges": [],
                "settings": settings,
            },
            status=WorkflowStatus.PUBLISHED,
            created_by=alice,
        )

    return make


def start(workflow, clock=None, at=None, **input):
    if clock is not None and at is not None:
        clock.at(at)
    return lifecycle.start_run(workflow, input)


# -- rate limit ---------------------------------------------------------------------------------


def test_rate_limit_cancels_the_excess_with_the_reason(flow_workflow, clock):
    wf = flow_workflow({"rate_limit": {"limit": 2, "period_seconds": 10}})
    first = start(wf, clock, 0)
    second = start(wf, clock, 2)
    third = start(wf, clock, 5)
    assert [first.status, second.status] == [RunStatus.PENDING, RunStatus.PENDING]
    assert third.status == RunStatus.CANCELLED
    assert third.error.startswith("rate limited: 2 runs in the last 10 s (limit 2)")
    assert "next allowed at " + (T0 + timedelta(seconds=10)).isoformat() in third.error
    [event] = RunEvent.objects.filter(run=third)
    assert event.event_type == EventType.RUN_CANCELLED
    assert event.payload["reason"] == third.error
    assert third.completed_at == clock.now
    # The window slides: the first run leaves it at 10 s; cancelled runs never count.
    assert start(wf, clock, 10.5).status == RunStatus.PENDING
    assert start(wf, clock, 11).status == RunStatus.CANCELLED
    assert start(wf, clock, 12.5).status == RunStatus.PENDING
    # A rate-limited run is never claimed.
    claimed = {run_id for run_id, _ in claim_runs("w", 100, 30)}
    assert str(third.pk) not in claimed and len(claimed) == 4


def test_rate_limit_per_key(flow_workflow, clock):
    wf = flow_workflow(
        {"rate_limit": {"limit": 1, "period_seconds": 60, "key": "{{ input.customer }}"}}
    )
    assert start(wf, clock, 0, customer="a").status == RunStatus.PENDING
    assert start(wf, clock, 1, customer="b").status == RunStatus.PENDING
    limited = start(wf, clock, 2, customer="a")
    assert limited.status == RunStatus.CANCELLED and "key 'a'" in limited.error
    # A key that fails to render falls into the "" bucket (documented choice), not refused.
    missing = start(wf, clock, 3)
    assert missing.status == RunStatus.PENDING
    assert missing.flow["rate_limit"] == "" and "rate_limit" in missing.flow["key_errors"]
    assert start(wf, clock, 4).status == RunStatus.CANCELLED


def test_a_new_version_shares_the_buckets(flow_workflow, clock, alice):
    wf = flow_workflow({"rate_limit": {"limit": 1, "period_seconds": 60}})
    assert start(wf, clock, 0).status == RunStatus.PENDING
    draft = wf.new_version(created_by=alice)
    draft.publish()
    assert start(draft, clock, 1).status == RunStatus.CANCELLED


# -- throttle -----------------------------------------------------------------------------------


def test_throttle_delays_instead_of_dropping(flow_workflow, clock):
    wf = flow_workflow({"throttle": {"limit": 2, "period_seconds": 10}})
    runs = [start(wf, clock, 0) for _ in range(5)]
    assert all(run.status == RunStatus.PENDING for run in runs)
    offsets = [None if run.wake_at is None else (run.wake_at - T0).total_seconds() for run in runs]
    assert offsets == [None, None, 10, 10, 20]
    # Later, the window is free again: no delay.
    assert start(wf, clock, 30).wake_at is None
    later = start(wf, clock, 31)
    assert later.wake_at is None  # the window (21, 31] holds only the 30 s one
    assert (start(wf, clock, 32).wake_at - T0).total_seconds() == 40


def test_throttled_runs_wait_for_their_slot_in_the_claim(flow_workflow, monkeypatch):
    now = eventlog.db_now()
    monkeypatch.setattr(eventlog, "db_now", lambda: now)
    wf = flow_workflow({"throttle": {"limit": 1, "period_seconds": 3600}})
    first, second = lifecycle.start_run(wf, {}), lifecycle.start_run(wf, {})
    assert second.wake_at == now + timedelta(hours=1)
    assert [run_id for run_id, _ in claim_runs("w", 10, 30)] == [str(first.pk)]


# -- debounce -----------------------------------------------------------------------------------


def test_debounce_runs_only_the_last_request(flow_workflow, clock):
    wf = flow_workflow({"debounce": {"period_seconds": 5, "key": "{{ input.doc }}"}})
    a1 = start(wf, clock, 0, doc="a", n=1)
    a2 = start(wf, clock, 1, doc="a", n=2)
    b1 = start(wf, clock, 1.5, doc="b", n=1)
    a3 = start(wf, clock, 2, doc="a", n=3)
    for run, by in ((a1, a2), (a2, a3)):
        run.refresh_from_db()
        assert run.status == RunStatus.CANCELLED
        assert run.error == f"debounced by {by.pk}"
        [event] = RunEvent.objects.filter(run=run)
        assert event.payload == {"status": "cancelled", "reason": f"debounced by {by.pk}"}
    b1.refresh_from_db()
    assert b1.status == RunStatus.PENDING and b1.wake_at == T0 + timedelta(seconds=6.5)
    assert a3.status == RunStatus.PENDING and a3.wake_at == T0 + timedelta(seconds=7)
    assert a3.input == {"doc": "a", "n": 3}
    # After its window a run is no longer debounced: a new request starts a new window.
    a4 = start(wf, clock, 8, doc="a", n=4)
    a3.refresh_from_db()
    assert a3.status == RunStatus.PENDING and a4.status == RunStatus.PENDING


# -- priority -----------------------------------------------------------------------------------


def test_priority_from_a_template_orders_the_claims(flow_workflow):
    wf = flow_workflow({"priority": "{{ input.p }}"})
    low = lifecycle.start_run(wf, {"p": 1})
    high = lifecycle.start_run(wf, {"p": "7"})
    clamped = lifecycle.start_run(wf, {"p": 10**12})
    broken = lifecycle.start_run(wf, {})
    explicit = lifecycle.start_run(wf, {"p": 1}, priority=5)
    assert [r.priority for r in (low, high, clamped, broken, explicit)] == [
        1,
        7,
        flowcontrol.PRIORITY_LIMIT,
        0,
        5,
    ]
    order = [claim_runs("w", 1, 30)[0][0] for _ in range(5)]
    assert order == [str(r.pk) for r in (clamped, high, explicit, low, broken)]


# -- concurrency in the claim ---------------------------------------------------------------------


def test_the_claim_respects_the_concurrency_limit_per_key(flow_workflow):
    wf = flow_workflow({"concurrency": {"limit": 2, "key": "{{ input.c }}"}})
    plain = flow_workflow({})
    a = [lifecycle.start_run(wf, {"c": "a", "i": i}) for i in range(5)]
    b = [lifecycle.start_run(wf, {"c": "b", "i": i}) for i in range(3)]
    free = [lifecycle.start_run(plain, {}) for _ in range(3)]
    assert a[0].flow_key == f"{wf.lineage}:a" and a[0].concurrency_limit == 2
    limited = set()
    claimed = {run_id for run_id, _ in claim_runs("w1", 100, 30, limited)}
    expected = {str(r.pk) for r in (a[0], a[1], b[0], b[1], *free)}
    assert claimed == expected
    assert limited == {str(r.pk) for r in (a[0], a[1], b[0], b[1])}
    assert claim_runs("w2", 100, 30) == []  # every slot is held (claimed, not started)
    # A running run parked on a timer keeps its slot; a completed one frees it.
    Run.objects.filter(pk=a[0].pk).update(
        status=RunStatus.RUNNING, lease_owner="", lease_expires_at=None
    )
    Run.objects.filter(pk=a[1].pk).update(status=RunStatus.COMPLETED)
    got = {run_id for run_id, _ in claim_runs("w2", 100, 30)}
    # a[0] (running: it holds its slot) and one pending run for the freed slot.
    assert got == {str(a[0].pk), str(a[2].pk)}
    assert claim_runs("w3", 100, 30) == []


@pytest.mark.postgres
def test_claim_and_next_wakeup_claims_limited_runs(flow_workflow):
    wf = flow_workflow({"concurrency": {"limit": 1}})
    runs = [lifecycle.start_run(wf, {}) for _ in range(3)]
    limited = set()
    claimed, _ = claim_and_next_wakeup("w", 10, 30, 5.0, limited)
    assert claimed == [(str(runs[0].pk), 1)] and limited == {str(runs[0].pk)}
    assert claim_and_next_wakeup("w2", 10, 30, 5.0)[0] == []


def _max_overlap(runs):
    """The most runs between run.started and run.completed at any moment (event log)."""
    marks = []
    for run_id, event_type, at, seq in RunEvent.objects.filter(
        run__in=runs, event_type__in=[EventType.RUN_STARTED, EventType.RUN_COMPLETED]
    ).values_list("run_id", "event_type", "created_at", "seq"):
        marks.append((at, 0 if event_type == EventType.RUN_COMPLETED else 1, seq, run_id))
    assert len(marks) == 2 * len(runs)
    running = peak = 0
    for _, starting, _, _ in sorted(marks):
        running += 1 if starting else -1
        peak = max(peak, running)
    return peak


@pytest.mark.postgres
def test_200_runs_under_a_limit_of_3_with_two_workers(flow_workflow, tmp_path):
    wf = flow_workflow(
        {"concurrency": {"limit": 3}},
        nodes=[node("wait", "delay", {"seconds": 0.03})],
    )
    keyed = flow_workflow(
        {"concurrency": {"limit": 2, "key": "{{ input.k }}"}},
        nodes=[node("wait", "delay", {"seconds": 0.03})],
    )
    runs = [lifecycle.start_run(wf, {"i": i}) for i in range(200)]
    keyed_runs = [lifecycle.start_run(keyed, {"k": i % 3}) for i in range(60)]
    workers = [_start_worker_process(tmp_path, f"w{i}") for i in range(2)]
    try:
        everything = [r.pk for r in runs + keyed_runs]
        _wait(
            lambda: (
                Run.objects.filter(pk__in=everything, status=RunStatus.COMPLETED).count()
                == len(everything)
            ),
            timeout=60,
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(20)
    assert _max_overlap(runs) == 3  # never more, and the limit is used
    for k in range(3):
        bucket = [r for r in keyed_runs if r.input["k"] == k]
        assert _max_overlap(bucket) <= 2
    assert _max_overlap(keyed_runs) > 2  # the keys do not share one limit
    owners = set(
        RunEvent.objects.filter(run__in=runs, event_type=EventType.RUN_STARTED).values_list(
            "run_id", flat=True
        )
    )
    assert len(owners) == 200


def test_concurrent_starts_cannot_exceed_a_rate_limit(flow_workflow):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers")
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    wf = flow_workflow({"rate_limit": {"limit": 5, "period_seconds": 3600}})

    def one(_):
        try:
            return lifecycle.start_run(wf, {}).status
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(24)))
    assert statuses.count(RunStatus.PENDING) == 5
    assert statuses.count(RunStatus.CANCELLED) == 19


# -- the workflow page ---------------------------------------------------------------------------


def test_the_workflow_page_shows_buckets_and_next_allowed(flow_workflow, client, alice, clock):
    wf = flow_workflow(
        {
            "concurrency": {"limit": 1, "key": "{{ input.c }}"},
            "throttle": {"limit": 1, "period_seconds": 60},
        }
    )
    clock.now = timezone.now()
    for c in ("acme", "acme", "globex"):
        lifecycle.start_run(wf, {"c": c})
    claim_runs("w", 10, 30)
    rows = flowcontrol.overview(wf, clock.now)
    conc = {row["key"]: row for row in rows if row["rule"] == "concurrency"}
    assert conc["acme"]["queued"] == 2  # claimed-not-started counts as queued until it runs
    throttle = [row for row in rows if row["rule"] == "throttle"]
    assert throttle[0]["queued"] == 2
    assert throttle[0]["next_allowed"] == clock.now + timedelta(seconds=180)
    client.force_login(alice)
    page = client.get(reverse("workflows:detail", args=[wf.pk])).content.decode()
    assert "Flow control" in page and "acme" in page and "globex" in page
    plain = flow_workflow({})
    assert (
        "Flow control"
        not in client.get(reverse("workflows:detail", args=[plain.pk])).content.decode()
    )


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow_settings", "loc"),
    [
        ({"concurrency": {"limit": 0}}, ("settings", "concurrency", "limit")),
        ({"concurrency": {"limit": True}}, ("settings", "concurrency", "limit")),
        ({"concurrency": 3}, ("settings", "concurrency")),
        ({"concurrency": {"limit": 1, "key": "{{ input."}}, ("settings", "concurrency", "key")),
        ({"concurrency": {"limit": 1, "bogus": 1}}, ("settings", "concurrency", "bogus")),
        ({"rate_limit": {"limit": 1}}, ("settings", "rate_limit", "period_seconds")),
        (
            {"throttle": {"limit": 1, "period_seconds": -1}},
            ("settings", "throttle", "period_seconds"),
        ),
        ({"debounce": {"period_seconds": "5"}}, ("settings", "debounce", "period_seconds")),
        ({"debounce": {"period_seconds": 5, "key": 3}}, ("settings", "debounce", "key")),
        ({"priority": 1.5}, ("settings", "priority")),
        ({"priority": "{{ input.p"}, ("settings", "priority")),
    ],
)
def test_flow_control_settings_are_validated(flow_settings, loc):
    definition = {"nodes": [node("a", "transform", {"mapping": {}})], "edges": []}
    problems = validate_definition({**definition, "settings": flow_settings})
    assert loc in [tuple(p.loc) for p in problems], problems


def test_valid_flow_control_settings_pass():
    flow_settings = {
        "concurrency": {"limit": 3, "key": "{{ input.customer }}"},
        "rate_limit": {"limit": 10, "period_seconds": 60},
        "throttle": {"limit": 1, "period_seconds": 0.5, "key": "x"},
        "debounce": {"period_seconds": 5},
        "priority": "{{ input.p }}",
    }
    definition = {"nodes": [node("a", "transform", {"mapping": {}})], "edges": []}
    assert validate_definition({**definition, "settings": flow_settings}) == []


# -- resuming a paused run under a concurrency limit ----------------------------------------------


def _approval_flow(flow_workflow, settings):
    return flow_workflow(
        settings,
        nodes=[node("ask", "wait_for_approval", {"prompt": "Go?"})],
    )


def test_a_resumed_run_waits_for_a_slot_of_its_full_bucket(flow_workflow, drive):
    from runs.worker import next_wakeup_seconds

    wf = _approval_flow(flow_workflow, {"concurrency": {"limit": 1}})
    paused = drive(lifecycle.start_run(wf, {}))
    assert paused.status == RunStatus.PAUSED  # parked: its slot is free again
    other = lifecycle.start_run(wf, {})
    assert [run_id for run_id, _ in claim_runs("w1", 10, 30)] == [str(other.pk)]

    resumed = lifecycle.resume(paused.pk, "ask", {"approved": True}, decided_by="bob")
    assert resumed.status == RunStatus.PAUSED and resumed.wake_at is not None
    last = resumed.events.order_by("-seq").first()
    assert last.event_type == EventType.RUN_PAUSED
    assert last.payload["reason"] == "resumed: waiting for a concurrency slot"
    assert claim_runs("w2", 10, 30) == []  # the bucket is full: it waits
    # Waiting for a slot is not a timer: the workers do not spin on it.
    assert next_wakeup_seconds(5.0) > 1.0
    if connection.vendor == "postgresql":
        assert claim_and_next_wakeup("w2", 10, 30, 5.0) == ([], 5.0)

    Run.objects.filter(pk=other.pk).update(status=RunStatus.COMPLETED)  # the slot frees
    done = drive(resumed)
    assert done.status == RunStatus.COMPLETED and done.context["ask"]["approved"] is True
    [event] = done.events.filter(event_type=EventType.RUN_RESUMED)
    assert event.payload == {
        "status": RunStatus.RUNNING,
        "resumed_step_id": "ask",
        "reason": "resumed",
    }


def test_a_resumed_run_with_a_free_slot_is_claimed_at_once(flow_workflow, drive):
    wf = _approval_flow(flow_workflow, {"concurrency": {"limit": 2, "key": "{{ input.k }}"}})
    first = drive(lifecycle.start_run(wf, {"k": "a"}))
    busy = lifecycle.start_run(wf, {"k": "b"})
    assert [run_id for run_id, _ in claim_runs("w1", 10, 30)] == [str(busy.pk)]
    lifecycle.resume(first.pk, "ask", {"approved": False, "comment": "no"}, decided_by="bob")
    limited = set()
    assert [run_id for run_id, _ in claim_runs("w2", 10, 30, limited)] == [str(first.pk)]
    assert limited == {str(first.pk)}


def test_queued_runs_and_a_resumed_one_share_the_limit(flow_workflow, drive):
    wf = _approval_flow(flow_workflow, {"concurrency": {"limit": 1}})
    paused = drive(lifecycle.start_run(wf, {}))
    queued = [lifecycle.start_run(wf, {"i": i}) for i in range(2)]
    lifecycle.resume(paused.pk, "ask", {"approved": True}, decided_by="bob")
    # One slot: exactly one of the three is claimed, the resumed one first (oldest).
    assert [run_id for run_id, _ in claim_runs("w1", 10, 30)] == [str(paused.pk)]
    assert claim_runs("w2", 10, 30) == []
    assert {r.status for r in Run.objects.filter(pk__in=[q.pk for q in queued])} == {
        RunStatus.PENDING
    }


def test_resuming_an_unlimited_run_still_makes_it_running_at_once(flow_workflow, drive):
    wf = _approval_flow(flow_workflow, {"rate_limit": {"limit": 10, "period_seconds": 60}})
    paused = drive(lifecycle.start_run(wf, {}))
    assert paused.concurrency_limit is None
    resumed = lifecycle.resume(paused.pk, "ask", {"approved": True}, decided_by="bob")
    assert resumed.status == RunStatus.RUNNING and resumed.wake_at is None
    assert resumed.events.order_by("-seq").first().payload["reason"] == "resumed"
    assert drive(resumed).status == RunStatus.COMPLETED
