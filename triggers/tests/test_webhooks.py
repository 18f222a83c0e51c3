"""`POST /hooks/<token>`: input, signatures, replays, idempotency, size, which versions run."""

import json
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from engine import signing
from engine.statuses import RunStatus, TriggerType
from runs.models import Run
from triggers.models import WebhookDelivery, WebhookEndpoint
from triggers.tests.conftest import next_version
from triggers.webhooks import webhook_url

SECRET = "s3cret-shared-with-the-sender"


def post(client, url, body=b"{}", content_type="application/json", **headers):
    return client.generic("POST", url, body, content_type=content_type, headers=headers)


def signed(body: bytes, secret=SECRET, timestamp=None) -> dict:
    return {signing.HEADER: signing.sign(secret, body, timestamp)}


def test_a_json_body_becomes_the_run_input_with_headers_and_query(client, make_workflow):
    workflow = make_workflow({"type": "webhook"})
    url = webhook_url(workflow)
    client.cookies["sessionid"] = "not-for-the-run"
    response = client.post(
        url + "?source=shop&tag=a&tag=b",
        data=json.dumps({"order": 42, "items": [1, 2]}),
        content_type="application/json",
        headers={"X-Custom-Thing": "yes", "Authorization": "Bearer nope"},
    )
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    assert response.json() == {"run_id": str(run.pk)}
    assert run.workflow_id == workflow.pk
    assert run.trigger_type == TriggerType.WEBHOOK
    assert run.status == RunStatus.PENDING
    assert run.input["body"] == {"order": 42, "items": [1, 2]}
    assert run.input["query"] == {"source": "shop", "tag": ["a", "b"]}
    headers = run.input["headers"]
    assert headers["x-custom-thing"] == "yes"
    assert headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in headers)
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert set(run.input) == {"body", "headers", "query"}


def test_a_form_body_becomes_an_object(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    response = post(
        client, url, b"name=Ada+L&tags=x&tags=y&empty=", "application/x-www-form-urlencoded"
    )
    assert response.status_code == 202
    body = Run.objects.get(pk=response.json()["run_id"]).input["body"]
    assert body == {"name": "Ada L", "tags": ["x", "y"], "empty": ""}


def test_a_text_body_stays_text(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    response = post(client, url, "héllo, world\n".encode(), "text/plain; charset=utf-8")
    assert response.status_code == 202
    assert Run.objects.get(pk=response.json()["run_id"]).input["body"] == "héllo, world\n"


def test_an_empty_json_body_is_null_and_broken_json_is_refused(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    response = post(client, url, b"")
    assert response.status_code == 202
    assert Run.objects.get(pk=response.json()["run_id"]).input["body"] is None

    response = post(client, url, b'{"not": json')
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["body"]
    assert "JSON" in response.json()["errors"][0]["msg"]
    assert Run.objects.count() == 1


def test_only_post_is_allowed(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    response = client.get(url)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


# --------------------------------------------------------------- which versions run


def test_an_unknown_token_is_404(client, db):
    response = post(client, "/hooks/" + "x" * 43)
    assert response.status_code == 404
    assert response.json()["errors"][0]["loc"] == ["path", "token"]


def test_a_draft_never_runs_from_a_webhook(client, make_workflow):
    draft = make_workflow({"type": "webhook"}, publish=False)
    url = webhook_url(draft)  # shown on the draft so the sender can be set up
    assert url.startswith("/hooks/")
    assert post(client, url).status_code == 404
    assert Run.objects.count() == 0


def test_an_archived_workflow_never_runs_from_a_webhook(client, make_workflow):
    workflow = make_workflow({"type": "webhook"})
    url = webhook_url(workflow)
    workflow.archive()
    assert post(client, url).status_code == 404
    assert Run.objects.count() == 0


def test_a_published_version_without_a_webhook_trigger_is_404(client, make_workflow):
    workflow = make_workflow({"type": "webhook"})
    url = webhook_url(workflow)
    v2 = next_version(workflow, {"type": "schedule", "cron": "0 9 * * *"})
    assert webhook_url(v2) is None
    assert post(client, url).status_code == 404


def test_the_token_is_stable_across_versions_and_runs_the_newest_published(client, make_workflow):
    v1 = make_workflow({"type": "webhook"})
    url = webhook_url(v1)
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 43  # 32 random bytes
    v2 = next_version(v1, {"type": "webhook"}, publish=False)
    assert webhook_url(v2) == url
    # the draft v2 does not run: the published v1 does
    response = post(client, url)
    assert Run.objects.get(pk=response.json()["run_id"]).workflow_id == v1.pk
    v2.publish()
    response = post(client, url)
    assert Run.objects.get(pk=response.json()["run_id"]).workflow_id == v2.pk
    assert WebhookEndpoint.objects.count() == 1


def test_tokens_differ_between_workflows(make_workflow):
    first = webhook_url(make_workflow({"type": "webhook"}, name="One"))
    second = webhook_url(make_workflow({"type": "webhook"}, name="Two"))
    assert first != second


def test_the_url_is_absolute_with_a_request(rf, make_workflow):
    workflow = make_workflow({"type": "webhook"})
    url = webhook_url(workflow, rf.get("/", HTTP_HOST="testserver"))
    assert url.startswith("http://testserver/hooks/")


# -------------------------------------------------------------------------- signatures


@pytest.fixture
def secured(make_workflow):
    return webhook_url(make_workflow({"type": "webhook", "secret": SECRET}))


def test_a_valid_signature_is_accepted(client, secured):
    body = b'{"paid": true}'
    response = post(client, secured, body, **signed(body))
    assert response.status_code == 202
    assert Run.objects.get(pk=response.json()["run_id"]).input["body"] == {"paid": True}


def _refused(response, fragment):
    assert response.status_code == 401, response.content
    [error] = response.json()["errors"]
    assert error["loc"] == ["header", "X-FlowMatrx-Signature"]
    assert fragment in error["msg"]
    assert Run.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0


def test_a_missing_signature_is_refused(client, secured):
    _refused(post(client, secured, b"{}"), "needs a X-FlowMatrx-Signature header")


def test_a_malformed_signature_is_refused(client, secured):
    _refused(post(client, secured, b"{}", **{signing.HEADER: "sha256=abc"}), "malformed")


def test_a_tampered_body_is_refused(client, secured):
    headers = signed(b'{"amount": 1}')
    _refused(post(client, secured, b'{"amount": 1000}', **headers), "does not match")


def test_a_signature_with_the_wrong_secret_is_refused(client, secured):
    body = b"{}"
    _refused(post(client, secured, body, **signed(body, secret="guess")), "does not match")


def test_a_stale_signature_is_refused(client, secured):
    body = b"{}"
    stale = signed(body, timestamp=int(time.time()) - 301)
    _refused(post(client, secured, body, **stale), "more than 300 seconds")
    future = signed(body, timestamp=int(time.time()) + 301)
    _refused(post(client, secured, body, **future), "more than 300 seconds")


def test_a_replayed_signature_is_refused_and_runs_once(client, secured):
    body = b'{"transfer": 100}'
    headers = signed(body)
    assert post(client, secured, body, **headers).status_code == 202
    again = post(client, secured, body, **headers)
    assert again.status_code == 409
    assert again.json()["errors"][0]["loc"] == ["header", "X-FlowMatrx-Signature"]
    assert "replay" in again.json()["errors"][0]["msg"]
    # extra v1 entries do not make the same signature new
    padded = {signing.HEADER: headers[signing.HEADER] + ",v1=" + "0" * 64}
    assert post(client, secured, body, **padded).status_code == 409
    assert Run.objects.count() == 1


def test_a_new_signature_of_the_same_body_is_a_new_delivery(client, secured):
    body = b"{}"
    now = int(time.time())
    assert post(client, secured, body, **signed(body, timestamp=now - 5)).status_code == 202
    assert post(client, secured, body, **signed(body, timestamp=now)).status_code == 202
    assert Run.objects.count() == 2


def test_a_delivery_id_seen_before_is_refused(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    assert post(client, url, b"{}", **{"X-Delivery-Id": "evt_1"}).status_code == 202
    again = post(client, url, b'{"other": 1}', **{"X-Delivery-Id": "evt_1"})
    assert again.status_code == 409
    assert again.json()["errors"][0]["loc"] == ["header", "X-Delivery-Id"]
    assert post(client, url, b"{}", **{"X-Delivery-Id": "evt_2"}).status_code == 202
    assert Run.objects.count() == 2


def test_delivery_ids_are_per_endpoint(client, make_workflow):
    one = webhook_url(make_workflow({"type": "webhook"}, name="One"))
    two = webhook_url(make_workflow({"type": "webhook"}, name="Two"))
    assert post(client, one, **{"X-Delivery-Id": "same"}).status_code == 202
    assert post(client, two, **{"X-Delivery-Id": "same"}).status_code == 202


# ------------------------------------------------------------------------- idempotency


def test_an_idempotency_key_seen_before_returns_the_first_run(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    first = post(client, url, b'{"n": 1}', **{"X-Idempotency-Key": "order-7"})
    assert first.status_code == 202
    again = post(client, url, b'{"n": 2}', **{"X-Idempotency-Key": "order-7"})
    assert again.status_code == 200
    assert again.json() == first.json()
    run = Run.objects.get()
    assert run.input["body"] == {"n": 1}
    assert run.idempotency_key == "order-7"
    assert post(client, url, **{"X-Idempotency-Key": "order-8"}).status_code == 202
    assert Run.objects.count() == 2


def test_a_signed_retry_with_the_same_idempotency_key_gets_the_first_run(client, secured):
    body = b"{}"
    key = {"X-Idempotency-Key": "k1"}
    first = post(client, secured, body, **signed(body), **key)
    retry = post(client, secured, body, **signed(body, timestamp=int(time.time()) - 1), **key)
    assert (first.status_code, retry.status_code) == (202, 200)
    assert retry.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.count() == 1


def test_a_refused_replay_records_nothing_new(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    assert post(client, url, **{"X-Delivery-Id": "d1"}).status_code == 202
    replay = post(client, url, **{"X-Delivery-Id": "d1", "X-Idempotency-Key": "fresh"})
    assert replay.status_code == 409
    # the idempotency key of the refused request was not kept
    assert post(client, url, **{"X-Idempotency-Key": "fresh"}).status_code == 202


def test_racing_requests_with_one_idempotency_key_start_one_run(transactional_db, make_workflow):
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("needs a database file the threads can share")
    url = webhook_url(make_workflow({"type": "webhook"}))
    barrier = threading.Barrier(4)
    answers = []

    def send():
        barrier.wait()
        response = post(Client(), url, b"{}", **{"X-Idempotency-Key": "race"})
        answers.append((response.status_code, response.json()["run_id"]))
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(code for code, _ in answers) == [200, 200, 200, 202]
    assert len({run_id for _, run_id in answers}) == 1
    assert Run.objects.count() == 1


# ------------------------------------------------------------------------------- size


def test_a_body_over_the_limit_is_refused_and_creates_nothing(client, make_workflow, settings):
    settings.FLOWMATRX_WEBHOOK_MAX_BODY_BYTES = 100
    url = webhook_url(make_workflow({"type": "webhook"}))
    response = post(client, url, b"x" * 101, "text/plain", **{"X-Idempotency-Key": "big"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["loc"] == ["body"]
    assert Run.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    assert post(client, url, b"x" * 100, "text/plain").status_code == 202


def test_the_default_limit_is_one_megabyte(client, make_workflow):
    url = webhook_url(make_workflow({"type": "webhook"}))
    assert post(client, url, b"x" * (1024 * 1024 + 1), "text/plain").status_code == 413
    assert post(client, url, b"x" * (1024 * 1024), "text/plain").status_code == 202
