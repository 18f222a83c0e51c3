"""A webhook trigger's secret is never read back through the API: the workflow resource
shows the redacted placeholder, and a definition saved back with the placeholder keeps the
stored secret (so a client can edit what it read)."""

import hashlib
import hmac
import json
import time

import pytest

from engine.registry import REDACTED
from flowmatrx.api.tests.conftest import ApiClient, new_key
from triggers.redaction import MissingSecret, keep_secrets, redact_definition
from triggers.tests.conftest import definition
from workflows.models import Workflow

SECRET = "whsec-0123456789"


@pytest.fixture
def api(client, alice):
    return ApiClient(client, new_key(alice))


def hooked(api, secret=SECRET, **extra):
    body = {"name": "Hooked", "definition": definition({"type": "webhook", "secret": secret})}
    response = api.post("/workflows", {**body, **extra})
    assert response.status_code == 201, response.json()
    return response.json()


def stored_secret(workflow_id) -> str | None:
    settings = Workflow.objects.get(pk=workflow_id).definition["settings"]
    return settings["triggers"][0].get("secret")


def test_the_api_never_returns_the_secret(api):
    created = hooked(api)
    assert SECRET not in json.dumps(created)
    assert created["definition"]["settings"]["triggers"][0] == {
        "type": "webhook",
        "secret": REDACTED,
    }
    for path in (
        f"/workflows/{created['id']}",
        "/workflows",
        f"/workflows/{created['id']}/versions",
    ):
        assert SECRET not in api.get(path).content.decode()
    assert stored_secret(created["id"]) == SECRET


def test_saving_back_the_placeholder_keeps_the_stored_secret(api):
    created = hooked(api)
    document = created["definition"]
    document["nodes"][0]["data"]["label"] = "Renamed"
    response = api.put(f"/workflows/{created['id']}", {"definition": document})
    assert response.status_code == 200, response.json()
    assert stored_secret(created["id"]) == SECRET
    assert response.json()["definition"]["settings"]["triggers"][0]["secret"] == REDACTED

    # The secret still signs requests after the round trip.
    api.post(f"/workflows/{created['id']}/publish")
    stamp = str(int(time.time()))
    signature = hmac.new(SECRET.encode(), f"{stamp}.{{}}".encode(), hashlib.sha256).hexdigest()
    hook = api.client.post(
        created["webhook_url"],
        "{}",
        content_type="application/json",
        headers={"X-FlowMatrx-Signature": f"t={stamp},v1={signature}"},
    )
    assert hook.status_code == 202, hook.content


def test_a_new_secret_replaces_and_leaving_it_out_clears(api):
    created = hooked(api)
    document = created["definition"]
    document["settings"]["triggers"][0]["secret"] = "rotated-secret"
    api.put(f"/workflows/{created['id']}", {"definition": document})
    assert stored_secret(created["id"]) == "rotated-secret"
    del document["settings"]["triggers"][0]["secret"]
    api.put(f"/workflows/{created['id']}", {"definition": document})
    assert stored_secret(created["id"]) is None


def test_the_placeholder_without_a_stored_secret_is_refused(api):
    response = api.post(
        "/workflows",
        {"name": "x", "definition": definition({"type": "webhook", "secret": REDACTED})},
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "definition", "settings", "triggers", 0, "secret"]
    assert not Workflow.objects.exists()

    created = hooked(api, secret=None)
    document = created["definition"]
    document["settings"]["triggers"][0]["secret"] = REDACTED
    response = api.put(f"/workflows/{created['id']}", {"definition": document})
    assert response.status_code == 422
    assert stored_secret(created["id"]) is None


def test_a_new_version_and_a_duplicate_keep_the_secret(api):
    created = hooked(api)
    api.post(f"/workflows/{created['id']}/publish")
    draft = api.post(f"/workflows/{created['id']}/new_version").json()
    copy = api.post(f"/workflows/{created['id']}/duplicate").json()
    for made in (draft, copy):
        assert made["definition"]["settings"]["triggers"][0]["secret"] == REDACTED
        assert stored_secret(made["id"]) == SECRET


def test_redaction_leaves_definitions_without_a_secret_alone():
    plain = definition({"type": "webhook"}, {"type": "event", "event": "x"})
    assert redact_definition(plain) is plain
    assert keep_secrets(plain, None) is plain
    assert redact_definition({"nodes": []}) == {"nodes": []}
    with pytest.raises(MissingSecret):
        keep_secrets(definition({"type": "webhook", "secret": REDACTED}), plain)
