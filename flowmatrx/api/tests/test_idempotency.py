"""X-Idempotency-Key: the same key and request return the first response and create
nothing; a different request with the key is refused; concurrent requests with one key
create one resource."""

import time

import pytest

from accounts.models import IdempotencyRecord
from flowmatrx.api import workflows as workflows_api
from flowmatrx.api.tests.conftest import assert_error, counts, new_key
from flowmatrx.api.tests.threads import at_once
from runs.models import Event, Run
from workflows.models import Workflow


@pytest.fixture
def creating(published):
    """(path, body, model) of every creating endpoint."""
    return {
        "create": ("/workflows", {"name": "New"}, Workflow),
        "duplicate": (f"/workflows/{published.id}/duplicate", {"name": "Copy"}, Workflow),
        "new_version": (f"/workflows/{published.id}/new_version", None, Workflow),
        "run": (f"/workflows/{published.id}/run", {"input": {"n": 1}}, Run),
        "event": ("/events", {"name": "ping", "data": {}}, Event),
    }


ENDPOINTS = ["create", "duplicate", "new_version", "run", "event"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_same_key_returns_the_first_response_and_creates_nothing(api, creating, endpoint):
    path, body, model = creating[endpoint]
    headers = {"X-Idempotency-Key": "key-1"}
    first = api.post(path, body, headers=headers)
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first.headers
    rows = model.objects.count()

    again = api.post(path, body, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert model.objects.count() == rows


@pytest.mark.parametrize("endpoint", ["create", "duplicate", "run", "event"])
def test_the_same_key_with_another_body_is_422(api, creating, endpoint):
    path, body, _ = creating[endpoint]
    headers = {"X-Idempotency-Key": "key-1"}
    assert api.post(path, body, headers=headers).status_code == 201
    before = counts()
    changed = {**body, "name": "Other"} if "name" in body else {"input": {"n": 2}}
    response = api.post(path, changed, headers=headers)
    assert_error(response, 422, loc=["header", "X-Idempotency-Key"], contains="different request")
    assert counts() == before


def test_the_same_key_on_another_workflow_is_another_request(api, alice, published):
    other = Workflow.objects.create(name="Other", created_by=alice)
    headers = {"X-Idempotency-Key": "key-1"}
    assert api.post(f"/workflows/{published.id}/run", {}, headers=headers).status_code == 201
    response = api.post(f"/workflows/{other.id}/run", {}, headers=headers)
    assert_error(response, 422, loc=["header", "X-Idempotency-Key"])


def test_keys_are_scoped_per_endpoint_and_per_user(api, api_as, bob, published):
    headers = {"X-Idempotency-Key": "shared"}
    assert api.post("/workflows", {"name": "A"}, headers=headers).status_code == 201
    assert api.post("/events", {"name": "A"}, headers=headers).status_code == 201
    bobs = api_as(bob).post("/workflows", {"name": "A"}, headers=headers)
    assert bobs.status_code == 201 and "Idempotent-Replayed" not in bobs.headers
    assert Workflow.objects.filter(name="A").count() == 2


def test_a_refused_request_keeps_no_record_so_it_can_be_corrected(api, published):
    headers = {"X-Idempotency-Key": "fix-me"}
    assert_error(api.post("/workflows", {"name": ""}, headers=headers), 422)
    published.archive()
    assert_error(api.post(f"/workflows/{published.id}/run", {}, headers=headers), 409)
    assert not IdempotencyRecord.objects.exists()
    assert api.post("/workflows", {"name": "Fixed"}, headers=headers).status_code == 201


def test_a_run_remembers_its_idempotency_key(api, published):
    body = api.post(
        f"/workflows/{published.id}/run", {}, headers={"X-Idempotency-Key": "order-7"}
    ).json()
    assert body["idempotency_key"] == "order-7"
    assert Run.objects.get(pk=body["id"]).idempotency_key == "order-7"


@pytest.mark.parametrize("key", ["", "k" * 256, "with space", "naïve"])
def test_a_malformed_key_is_422(api, db, key):
    before = counts()
    response = api.post("/workflows", {"name": "x"}, headers={"X-Idempotency-Key": key})
    assert_error(response, 422, loc=["header", "X-Idempotency-Key"])
    assert counts() == before


@pytest.fixture
def slow_creation(monkeypatch):
    """Hold the first request inside its transaction a moment, so the second one arrives
    while the first has claimed the key but not committed."""
    for name in ("workflow_resource", "run_resource"):
        original = getattr(workflows_api, name)

        def slow(*args, _original=original, **kwargs):
            time.sleep(0.3)
            return _original(*args, **kwargs)

        monkeypatch.setattr(workflows_api, name, slow)


@pytest.mark.postgres
def test_two_concurrent_requests_with_one_key_create_one_workflow(
    transactional_db, alice, slow_creation
):
    headers = {"Authorization": f"Bearer {new_key(alice)}", "X-Idempotency-Key": "race"}
    responses = at_once(2, "POST", "/api/v1/workflows", {"name": "Raced"}, headers)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in responses) == ["", "true"]
    assert Workflow.objects.filter(name="Raced").count() == 1


@pytest.mark.postgres
def test_two_concurrent_runs_with_one_key_start_one_run(
    transactional_db, alice, linear_definition, slow_creation
):
    workflow = Workflow.objects.create(name="W", definition=linear_definition, created_by=alice)
    headers = {"Authorization": f"Bearer {new_key(alice)}", "X-Idempotency-Key": "race"}
    responses = at_once(3, "POST", f"/api/v1/workflows/{workflow.id}/run", {"input": {}}, headers)
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Run.objects.count() == 1
