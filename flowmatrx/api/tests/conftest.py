"""API test helpers: `api` is alice's client with an all-scopes key; `api_as(user, scopes)`
makes others. Paths are relative to /api/v1."""

import json
from urllib.parse import urlencode

import pytest

from accounts.models import SCOPES, ApiKey
from runs.tests.conftest import drive, make_run  # noqa: F401  (fixtures for run states)
from workflows.models import Workflow

BASE = "/api/v1"


class ApiClient:
    def __init__(self, client, key: str | None = None):
        self.client = client
        self.key = key

    def request(self, method, path, body=None, *, raw=None, headers=None, query=None):
        url = BASE + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        all_headers = {}
        if self.key is not None:
            all_headers["Authorization"] = f"Bearer {self.key}"
        all_headers.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return self.client.generic(
            method, url, data, content_type="application/json", headers=all_headers
        )

    def get(self, path, **query):
        return self.request("GET", path, query=query)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def put(self, path, body=None, **kwargs):
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


def new_key(user, scopes=SCOPES) -> str:
    return ApiKey.create(user, "test", scopes)[1]


@pytest.fixture
def api_as(client):
    def make(user, scopes=SCOPES):
        return ApiClient(client, new_key(user, scopes))

    return make


@pytest.fixture
def api(api_as, alice):
    return api_as(alice)


@pytest.fixture
def anonymous(client):
    return ApiClient(client)


def assert_error(response, status, loc=None, contains=None):
    """The response is `status` in the API's error shape (with an error at `loc`)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) <= {"errors", "detail"} and body["errors"], body
    for item in body["errors"]:
        assert isinstance(item["loc"], list) and isinstance(item["msg"], str), item
    if loc is not None:
        assert [list(loc)] == [e["loc"] for e in body["errors"] if e["loc"] == list(loc)], body
    if contains is not None:
        assert contains in json.dumps(body), body
    return body


@pytest.fixture
def published(workflow):
    return workflow.publish()


@pytest.fixture
def invalid_definition():
    return {
        "nodes": [{"id": "a", "type": "no_such_type", "data": {"config": {}}}],
        "edges": [{"id": "e", "source": "a", "target": "ghost"}],
    }


def counts() -> dict:
    """Rows that a refused request must not have written."""
    from accounts.models import IdempotencyRecord
    from runs.models import Event, Run

    return {
        "workflows": Workflow.objects.count(),
        "runs": Run.objects.count(),
        "events": Event.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
    }
