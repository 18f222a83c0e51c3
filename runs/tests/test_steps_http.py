"""The HTTP step types inside real runs: http_request, webhook and llm_call end to end."""

import json

import pytest

from engine import signing
from engine.handlers import http_request, llm_call, webhook  # noqa: F401  (register them)
from engine.statuses import RunStatus
from engine.tests.http_servers import OPENAI_KEY, Reply, echo, fake_openai
from runs.tests.conftest import edge, node

SECRET = "whsec-e2e"


pytestmark = pytest.mark.usefixtures("loopback_allowed")


def test_fetch_notify_and_ask_in_one_run(make_run, drive, start, settings):
    api, hook, llm = start(echo), start(lambda r: Reply(200, {"ok": True})), start(fake_openai)
    settings.OPENAI_BASE_URL = f"{llm.url}/v1"
    settings.OPENAI_API_KEY = OPENAI_KEY
    nodes = [
        node(
            "fetch",
            "http_request",
            {"url": f"{api.url}/orders", "query": {"id": "{{ input.id }}"}},
        ),
        node(
            "notify",
            "webhook",
            {"url": hook.url, "payload": {"seen": "{{ fetch.body.query }}"}, "secret": SECRET},
        ),
        node("ask", "llm_call", {"model": "gpt-4o-mini", "prompt": "order {{ input.id }}"}),
    ]
    run = drive(make_run(nodes, [edge("fetch", "notify"), edge("notify", "ask")], {"id": 7}))

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.context["fetch"]["status_code"] == 200
    assert run.context["fetch"]["body"]["query"] == {"id": ["7"]}
    assert run.context["notify"] == {"status_code": 200, "body": {"ok": True}}
    assert run.context["ask"]["content"] == "echo: order 7"
    assert run.context["ask"]["usage"] == {"input_tokens": 2, "output_tokens": 3}

    delivered = hook.requests[0]
    assert delivered.json() == {"seen": {"id": ["7"]}}
    assert signing.verify(SECRET, delivered.headers["x-flowmatrx-signature"], delivered.body)
    assert delivered.headers["x-flowmatrx-idempotency-key"] == f"{run.pk}:notify"

    # The signing secret reached the handler but is stored nowhere with the run.
    stored = run.steps.get(step_id="notify")
    assert stored.input["secret"] == "********"
    assert stored.input["url"] == hook.url
    assert SECRET not in json.dumps(
        [list(run.events.values()), run.context, run.error], default=str
    )


def test_a_5xx_is_retried_with_the_same_idempotency_key(make_run, drive, start):
    answers = iter([Reply(503, "busy"), Reply(200, {"done": True})])
    server = start(lambda r: next(answers))
    config = {"url": server.url, "method": "POST", "idempotency_header": "Idempotency-Key"}
    run = drive(make_run([node("a", "http_request", config, max_attempts=3, backoff_base=0.01)]))

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.context["a"]["body"] == {"done": True}
    attempts = run.steps.filter(step_id="a").order_by("attempt")
    assert list(attempts.values_list("attempt", "status")) == [(1, "failed"), (2, "completed")]
    assert "failed with status 503" in attempts[0].error
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert keys == [f"{run.pk}:a", f"{run.pk}:a"]


def test_a_refused_address_fails_the_run_without_retrying(make_run, drive, start, settings):
    settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS = False
    server = start(echo)
    run = drive(make_run([node("a", "http_request", {"url": server.url}, max_attempts=3)]))

    assert run.status == RunStatus.FAILED
    assert "refused: 127.0.0.1 is a loopback address" in run.error
    assert run.steps.filter(step_id="a").count() == 1
    assert server.requests == []
