"""The claim orders limited and unlimited runs together (priority, then age), and locks
per concurrency bucket rather than globally: a worker claiming from one bucket never holds
up claims from another."""

import threading

import psycopg
import pytest
from django.db import connection

from runs import lifecycle, wakeup
from runs.tests import test_flowcontrol
from runs.worker import BUCKET_LOCKS, RETRY_SECONDS, claim_and_next_wakeup, claim_runs

flow_workflow = test_flowcontrol.flow_workflow


def ids(claimed):
    return [run_id for run_id, _ in claimed]


def test_a_higher_priority_limited_run_is_claimed_before_an_unlimited_one(flow_workflow):
    limited_wf = flow_workflow({"concurrency": {"limit": 1}, "priority": 5})
    plain_wf = flow_workflow({})
    plain = lifecycle.start_run(plain_wf, {})  # older, priority 0
    urgent = lifecycle.start_run(limited_wf, {})
    waiting = lifecycle.start_run(limited_wf, {})  # same priority, no slot left
    limited = set()
    assert ids(claim_runs("w1", 1, 30, limited)) == [str(urgent.pk)]
    assert limited == {str(urgent.pk)}
    # The bucket is full now: the unlimited run is next, the other limited one waits.
    assert ids(claim_runs("w2", 5, 30)) == [str(plain.pk)]
    assert claim_runs("w3", 5, 30) == [] and str(waiting.pk) not in limited


def test_a_lower_priority_limited_run_waits_behind_unlimited_ones(flow_workflow):
    limited_wf = flow_workflow({"concurrency": {"limit": 5}, "priority": -1})
    plain_wf = flow_workflow({"priority": 2})
    low = lifecycle.start_run(limited_wf, {})
    high = [lifecycle.start_run(plain_wf, {}) for _ in range(2)]
    assert ids(claim_runs("w", 2, 30)) == [str(run.pk) for run in high]
    assert ids(claim_runs("w", 2, 30)) == [str(low.pk)]


def test_priority_then_age_across_both_kinds_in_one_claim(flow_workflow):
    a = flow_workflow({"concurrency": {"limit": 1, "key": "{{ input.k }}"}, "priority": 3})
    b = flow_workflow({"priority": 3})
    c = flow_workflow({})
    order = [
        lifecycle.start_run(b, {}),
        lifecycle.start_run(a, {"k": "x"}),
        lifecycle.start_run(a, {"k": "x"}),  # no slot: its bucket got one claim
        lifecycle.start_run(a, {"k": "y"}),
        lifecycle.start_run(c, {}),
    ]
    expected = [order[0], order[1], order[3], order[4]]
    assert ids(claim_runs("w", 10, 30)) == [str(run.pk) for run in expected]


@pytest.fixture
def other_session():
    """A second PostgreSQL session holding a bucket's claim lock in an open transaction,
    as a worker does in the middle of its claim."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as conn:

        def hold(flow_key):
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [BUCKET_LOCKS, flow_key])

        yield hold
        conn.rollback()


@pytest.mark.postgres
def test_a_bucket_being_claimed_elsewhere_is_skipped_not_waited_for(flow_workflow, other_session):
    keyed = flow_workflow({"concurrency": {"limit": 2, "key": "{{ input.k }}"}})
    plain = flow_workflow({})
    busy = [lifecycle.start_run(keyed, {"k": "busy"}) for _ in range(2)]
    free = lifecycle.start_run(keyed, {"k": "free"})
    unlimited = lifecycle.start_run(plain, {})
    other_session(busy[0].flow_key)

    result = {}

    def claim_in_a_thread():
        try:
            result["claimed"] = claim_and_next_wakeup("w", 10, 30, 5.0)
        finally:
            connection.close()

    claim = threading.Thread(target=claim_in_a_thread)
    claim.start()
    claim.join(10)
    assert not claim.is_alive(), "the claim waited for another bucket's lock"
    claimed, wait = result["claimed"]
    assert set(ids(claimed)) == {str(free.pk), str(unlimited.pk)}
    # It skipped a bucket that may still have free slots: it looks again soon.
    assert wait == RETRY_SECONDS


@pytest.mark.postgres
def test_a_full_claim_that_leaves_runs_wakes_the_other_workers(flow_workflow):
    limited_wf = flow_workflow({"concurrency": {"limit": 2}, "priority": 1})
    plain_wf = flow_workflow({})
    lifecycle.start_run(plain_wf, {})
    lifecycle.start_run(limited_wf, {})
    heard = []
    wakeup.add_listener(heard.append)
    try:
        assert len(claim_runs("w", 1, 30)) == 1
        assert "claimable" in heard
        heard.clear()
        assert len(claim_runs("w", 5, 30)) == 1
        assert "claimable" not in heard
    finally:
        wakeup.remove_listener(heard.append)
