"""/workflows/{id}/run and /runs: start, list with filters and cursors, detail, steps,
events, resume, cancel, retry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from engine.statuses import RunStatus, TriggerType
from flowmatrx.api.tests.conftest import assert_error, counts
from runs.models import Run, StepRun
from runs.tests.conftest import edge, node
from workflows.models import Workflow

RUN_FIELDS = {
    "id",
    "workflow_id",
    "workflow_version",
    "status",
    "trigger_type",
    "input",
    "context",
    "error",
    "idempotency_key",
    "started_at",
    "completed_at",
    "created_at",
}
STEP_FIELDS = {
    "id",
    "run_id",
    "step_id",
    "step_type",
    "status",
    "input",
    "output",
    "error",
    "attempt",
    "started_at",
    "completed_at",
}
EVENT_FIELDS = {"id", "run_id", "seq", "event_type", "step_id", "payload", "created_at"}


def approval_run(make_run, drive):
    run = make_run(
        [
            node("ask", "wait_for_approval", {"prompt": "Ship it?"}),
            node("after", "transform", {"mapping": {"ok": "{{ ask.approved }}"}}),
        ],
        [edge("ask", "after")],
    )
    return drive(run)


# ----------------------------------------------------------------------------- starting


def test_running_a_workflow_answers_201_with_the_pending_run(api, workflow):
    response = api.post(
        f"/workflows/{workflow.id}/run", {"input": {"name": "Ada"}, "max_concurrency": 3}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= RUN_FIELDS
    run = Run.objects.get(pk=body["id"])
    assert (body["status"], body["trigger_type"]) == ("pending", "api")
    assert body["workflow_id"] == str(workflow.id) and body["workflow_version"] == 1
    assert body["input"] == {"name": "Ada"} == run.input
    assert run.max_concurrency == 3 and body["created_by"] == "alice"
    assert body["started_at"] is None and body["idempotency_key"] is None


def test_the_input_is_checked_against_the_input_schema(api, workflow):
    workflow.input_schema = {
        "type": "object",
        "required": ["email"],
        "properties": {"email": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    }
    workflow.save()
    before = counts()
    body = assert_error(api.post(f"/workflows/{workflow.id}/run", {"input": {"age": -1}}), 422)
    locs = [e["loc"] for e in body["errors"]]
    assert ["body", "input", "age"] in locs and ["body", "input"] in locs
    assert counts() == before
    ok = api.post(f"/workflows/{workflow.id}/run", {"input": {"email": "a@b.c", "age": 3}})
    assert ok.status_code == 201


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"input": []}, ["body", "input"]),
        ({"input": {}, "max_concurrency": 0}, ["body", "max_concurrency"]),
        ({"inputs": {}}, ["body", "inputs"]),
    ],
)
def test_run_refuses_invalid_requests(api, workflow, body, loc):
    before = counts()
    assert_error(api.post(f"/workflows/{workflow.id}/run", body), 422, loc=loc)
    assert counts() == before


def test_running_an_invalid_draft_is_422_and_an_archived_version_409(
    api, alice, published, invalid_definition
):
    draft = Workflow.objects.create(name="bad", definition=invalid_definition, created_by=alice)
    body = assert_error(api.post(f"/workflows/{draft.id}/run", {}), 422)
    assert ["definition", "nodes", "a", "type"] in [e["loc"] for e in body["errors"]]
    published.archive()
    assert_error(api.post(f"/workflows/{published.id}/run", {}), 409)
    assert not Run.objects.exists()


# ------------------------------------------------------------------------------ listing


@pytest.fixture
def runs(alice, published):
    """Five runs over two versions of one workflow and one other workflow."""
    v2 = published.new_version(alice).publish()
    other = Workflow.objects.create(name="Other", created_by=alice)
    now = timezone.now()
    rows = [
        (published, RunStatus.COMPLETED, TriggerType.MANUAL, now - timedelta(days=3)),
        (published, RunStatus.FAILED, TriggerType.API, now - timedelta(days=2)),
        (v2, RunStatus.COMPLETED, TriggerType.EVENT, now - timedelta(days=1)),
        (v2, RunStatus.PAUSED, TriggerType.API, now - timedelta(hours=1)),
        (other, RunStatus.PENDING, TriggerType.MANUAL, now),
    ]
    return [
        Run.objects.create(workflow=w, status=s, trigger_type=t, created_at=c)
        for w, s, t, c in rows
    ]


def ids(response):
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["items"]]


def test_runs_are_listed_newest_first(api, runs):
    body = api.get("/runs").json()
    assert [r["id"] for r in body["items"]] == [str(r.id) for r in reversed(runs)]
    assert body["next_cursor"] is None and set(body["items"][0]) >= RUN_FIELDS


def test_runs_filter_by_workflow_any_version_or_one_version(api, runs, published):
    lineage = [str(r.id) for r in reversed(runs[:4])]
    assert ids(api.get("/runs", workflow_id=published.id)) == lineage
    v2 = runs[2].workflow
    assert ids(api.get("/runs", workflow_id=v2.id)) == lineage
    assert ids(api.get("/runs", workflow_id=published.id, workflow_version=1)) == lineage[2:]
    assert ids(api.get("/runs", workflow_id="00000000-0000-0000-0000-000000000000")) == []
    assert_error(api.get("/runs", workflow_id="nope"), 422, loc=["query", "workflow_id"])


def test_runs_filter_by_status_trigger_and_dates(api, runs):
    assert ids(api.get("/runs", status="completed")) == [str(runs[2].id), str(runs[0].id)]
    assert ids(api.get("/runs", trigger_type="api")) == [str(runs[3].id), str(runs[1].id)]
    window = {
        "created_after": (runs[1].created_at - timedelta(minutes=1)).isoformat(),
        "created_before": (runs[3].created_at - timedelta(minutes=1)).isoformat(),
    }
    assert ids(api.get("/runs", **window)) == [str(runs[2].id), str(runs[1].id)]
    naive = (runs[4].created_at - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert ids(api.get("/runs", created_after=naive)) == [str(runs[4].id)]
    assert_error(api.get("/runs", status="done"), 422, loc=["query", "status"])
    assert_error(api.get("/runs", trigger_type="cron"), 422, loc=["query", "trigger_type"])
    assert_error(api.get("/runs", created_after="yesterday"), 422, loc=["query", "created_after"])


def test_runs_page_with_a_keyset_cursor(api, runs, published):
    # two runs with the same created_at are still paged without loss or repeat
    Run.objects.filter(pk=runs[1].pk).update(created_at=runs[2].created_at)
    seen, cursor = [], None
    for _ in range(10):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/runs", **query).json()
        seen += [r["id"] for r in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(str(r.id) for r in runs) and len(seen) == 5
    # a cursor keeps its filters' meaning when combined with them
    first = api.get("/runs", workflow_id=published.id, limit=1).json()
    rest = ids(api.get("/runs", workflow_id=published.id, cursor=first["next_cursor"]))
    assert len(rest) == 3


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "W10=",  # []
        "WyIyMDIwIl0",  # ["2020"]
        "WyJ4IiwieSJd",  # ["x", "y"]
        "WyIyMDIwLTAxLTAxVDAwOjAwOjAwIiwiMSJd",  # a naive time
        # a time past year 9999 in UTC
        "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTIzOjU5IiwgIjNmMWMwYzhlLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMCJd",
    ],
)
def test_a_bad_cursor_is_422(api, runs, cursor):
    assert_error(api.get("/runs", cursor=cursor), 422, loc=["query", "cursor"])


def test_a_query_with_a_nul_character_is_422(api, runs):
    assert_error(api.get("/runs", cursor="a\x00b"), 422, loc=["query", "cursor"])


# ------------------------------------------------------------------------ one run's data


def test_a_run_its_steps_and_its_events(api, make_run, drive):
    run = drive(
        make_run(
            [
                node("a", "transform", {"mapping": {"x": 1}}),
                node("b", "test_flaky", {"failures": 1}, max_attempts=2, backoff_base=0),
            ],
            [edge("a", "b")],
        )
    )
    assert run.status == RunStatus.COMPLETED

    body = api.get(f"/runs/{run.id}").json()
    assert body["status"] == "completed" and body["context"]["a"] == {"x": 1}
    assert body["started_at"] and body["completed_at"]

    steps = api.get(f"/runs/{run.id}/steps").json()
    assert set(steps["items"][0]) >= STEP_FIELDS
    assert [(s["step_id"], s["attempt"], s["status"]) for s in steps["items"]] == [
        ("a", 1, "completed"),
        ("b", 1, "failed"),
        ("b", 2, "completed"),
    ]
    assert steps["items"][0]["input"] == {"mapping": {"x": 1}}
    assert steps["items"][0]["output"] == {"x": 1}
    paged = api.get(f"/runs/{run.id}/steps", limit=2).json()
    rest = api.get(f"/runs/{run.id}/steps", cursor=paged["next_cursor"]).json()
    assert [s["id"] for s in paged["items"] + rest["items"]] == [s["id"] for s in steps["items"]]

    events = api.get(f"/runs/{run.id}/events").json()
    seqs = [e["seq"] for e in events["items"]]
    assert seqs == list(range(1, len(seqs) + 1)) and events["next_cursor"] is None
    assert set(events["items"][0]) >= EVENT_FIELDS
    assert events["items"][0]["event_type"] == "run.started"
    assert events["items"][-1]["event_type"] == "run.completed"
    after = api.get(f"/runs/{run.id}/events", after=3, limit=2).json()
    assert [e["seq"] for e in after["items"]] == [4, 5] and after["next_cursor"] == "5"
    resumed = api.get(f"/runs/{run.id}/events", cursor=after["next_cursor"], limit=1).json()
    assert [e["seq"] for e in resumed["items"]] == [6]
    for bad in ("x", "²", "-1", str(2**40)):
        assert_error(api.get(f"/runs/{run.id}/events", cursor=bad), 422, loc=["query", "cursor"])
    assert_error(api.get(f"/runs/{run.id}/events", after=-1), 422, loc=["query", "after"])


@pytest.mark.parametrize("suffix", ["", "/steps", "/events"])
@pytest.mark.parametrize("bad_id", ["nope", "00000000-0000-0000-0000-000000000000"])
def test_unknown_runs_are_404(api, db, suffix, bad_id):
    assert_error(api.get(f"/runs/{bad_id}{suffix}"), 404, loc=["path", "run_id"])


@pytest.mark.parametrize("action", ["resume", "cancel", "retry"])
def test_state_changes_of_unknown_runs_are_404(api, db, action):
    body = {"step_id": "a", "data": {}} if action == "resume" else None
    assert_error(api.post(f"/runs/not-a-uuid/{action}", body), 404, loc=["path", "run_id"])


# --------------------------------------------------------------------- resume, cancel, retry


def test_an_approval_resumes_the_run_as_the_caller(api, make_run, drive):
    run = approval_run(make_run, drive)
    assert run.status == RunStatus.PAUSED
    response = api.post(
        f"/runs/{run.id}/resume", {"step_id": "ask", "data": {"approved": True, "comment": "go"}}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["ask"] == {"approved": True, "comment": "go", "decided_by": "alice"}


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({}, ["body", "data", "approved"]),
        ({"approved": "yes"}, ["body", "data", "approved"]),
        ({"approved": True, "extra": 1}, ["body", "data", "extra"]),
    ],
)
def test_a_malformed_approval_is_422_and_changes_nothing(api, make_run, drive, data, loc):
    run = approval_run(make_run, drive)
    response = api.post(f"/runs/{run.id}/resume", {"step_id": "ask", "data": data})
    assert_error(response, 422, loc=loc)
    assert StepRun.objects.get(run=run, step_id="ask").resume_data is None
    assert Run.objects.get(pk=run.pk).status == RunStatus.PAUSED


def test_resuming_what_does_not_wait_is_409(api, make_run, drive):
    run = approval_run(make_run, drive)
    assert_error(api.post(f"/runs/{run.id}/resume", {"step_id": "after", "data": {}}), 409)
    assert_error(api.post(f"/runs/{run.id}/resume", {"step_id": "ghost", "data": {}}), 409)
    decision = {"step_id": "ask", "data": {"approved": True}}
    assert api.post(f"/runs/{run.id}/resume", decision).status_code == 202
    assert_error(api.post(f"/runs/{run.id}/resume", decision), 409, contains="already")
    run = drive(run)
    assert_error(api.post(f"/runs/{run.id}/resume", decision), 409, contains="not paused")


def test_resume_refuses_a_malformed_body(api, make_run, drive):
    run = approval_run(make_run, drive)
    assert_error(api.post(f"/runs/{run.id}/resume", {"data": {}}), 422, loc=["body", "step_id"])
    assert_error(api.post(f"/runs/{run.id}/resume", raw="[1,"), 400)


def test_an_event_can_be_delivered_to_a_waiting_step_by_hand(api, make_run, drive):
    run = drive(make_run([node("wait", "wait_for_event", {"event_name": "paid"})]))
    assert run.status == RunStatus.PAUSED
    response = api.post(
        f"/runs/{run.id}/resume", {"step_id": "wait", "data": {"data": {"amount": 3}}}
    )
    assert response.status_code == 202
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert run.context["wait"]["data"] == {"amount": 3}


def test_cancel_answers_202_then_409_once_finished(api, workflow, alice):
    run = api.post(f"/workflows/{workflow.id}/run", {}).json()
    response = api.post(f"/runs/{run['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert Run.objects.get(pk=run["id"]).status == RunStatus.CANCELLED
    assert_error(api.post(f"/runs/{run['id']}/cancel"), 409, contains="already cancelled")


def test_retry_continues_a_failed_run_and_refuses_others(api, make_run, drive):
    run = drive(make_run([node("boom", "test_flaky", {"failures": 1})]))
    assert run.status == RunStatus.FAILED
    response = api.post(f"/runs/{run.id}/retry")
    assert response.status_code == 202 and response.json()["status"] == "running"
    run = drive(run)
    assert run.status == RunStatus.COMPLETED
    assert_error(api.post(f"/runs/{run.id}/retry"), 409, contains="only a failed run")
