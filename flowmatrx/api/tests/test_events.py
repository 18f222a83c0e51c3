"""/events: delivering events over HTTP, and listing them."""

import pytest

from engine.statuses import RunStatus, WorkflowStatus
from flowmatrx.api.tests.conftest import assert_error, counts
from flowmatrx.api.tests.threads import at_once
from runs.models import Event, Run
from runs.tests.conftest import node
from workflows.models import Workflow

EVENT_FIELDS = {
    "id",
    "name",
    "event_id",
    "data",
    "received_at",
    "resumed_run_ids",
    "started_run_ids",
    "duplicate",
}


def test_an_event_resumes_waiting_runs_and_starts_triggered_workflows(api, make_run, drive, alice):
    waiting = drive(make_run([node("wait", "wait_for_event", {"event_name": "order.paid"})]))
    assert waiting.status == RunStatus.PAUSED
    triggered = Workflow.objects.create(
        name="On paid",
        definition={
            "nodes": [node("a", "transform", {"mapping": {}})],
            "edges": [],
            "settings": {"triggers": [{"type": "event", "event": "order.paid"}]},
        },
        status=WorkflowStatus.PUBLISHED,
    )

    response = api.post("/events", {"name": "order.paid", "data": {"order": 1}, "id": "evt-1"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= EVENT_FIELDS
    assert (body["name"], body["event_id"], body["data"]) == ("order.paid", "evt-1", {"order": 1})
    assert body["resumed_run_ids"] == [str(waiting.pk)] and body["duplicate"] is False
    started = Run.objects.get(pk=body["started_run_ids"][0])
    assert started.workflow == triggered and started.trigger_type == "event"
    assert started.input["event"] == {"name": "order.paid", "data": {"order": 1}, "id": "evt-1"}


def test_an_event_id_seen_before_answers_the_first_outcome_and_does_nothing(api, db):
    first = api.post("/events", {"name": "x", "data": 1, "id": "evt-9"}).json()
    again = api.post("/events", {"name": "x", "data": 2, "id": "evt-9"})
    assert again.status_code == 201
    assert again.json() == {**first, "duplicate": True}
    assert Event.objects.count() == 1


def test_events_without_an_id_are_each_delivered(api, db):
    api.post("/events", {"name": "tick"})
    api.post("/events", {"name": "tick"})
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "x", "id": ""}, ["body", "id"]),
        ({"name": "x", "id": "i" * 256}, ["body", "id"]),
        ({"name": "x", "id": 5}, ["body", "id"]),
        ({"name": "x", "payload": {}}, ["body", "payload"]),
        ({"name": "x", "data": {"note": "a\x00b"}}, ["body", "data", "note"]),
    ],
)
def test_a_malformed_event_is_422_and_stores_nothing(api, db, body, loc):
    before = counts()
    assert_error(api.post("/events", body), 422, loc=loc)
    assert counts() == before


def test_events_are_listed_newest_first_with_a_name_filter(api, db):
    for name in ["a", "b", "a"]:
        api.post("/events", {"name": name})
    body = api.get("/events").json()
    assert [e["name"] for e in body["items"]] == ["a", "b", "a"]
    assert [e["name"] for e in api.get("/events", name="b").json()["items"]] == ["b"]
    page = api.get("/events", limit=2).json()
    rest = api.get("/events", cursor=page["next_cursor"]).json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


@pytest.mark.postgres
def test_the_same_event_id_sent_twice_at_once_is_delivered_once(transactional_db, alice):
    from flowmatrx.api.tests.conftest import new_key

    key = new_key(alice)
    responses = at_once(
        2,
        "POST",
        "/api/v1/events",
        {"name": "race", "id": "evt-race"},
        {"Authorization": f"Bearer {key}"},
    )
    assert [r.status_code for r in responses] == [201, 201]
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True]
    assert Event.objects.count() == 1
