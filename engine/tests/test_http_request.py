"""http_request against real servers on loopback (SPEC §4)."""

import json
import time

import pytest
from jsonschema import Draft202012Validator

from engine.errors import NonRetryableError, StepError
from engine.handlers import http_request
from engine.registry import registry
from engine.tests.http_servers import (
    Reply,
    echo,
    endless,
    free_port,
    step_context,
)

pytestmark = pytest.mark.usefixtures("loopback_allowed")


@pytest.fixture
def server(start):
    return start(echo)


async def call(**config):
    return await http_request.execute(config, step_context())


def test_registered_with_a_valid_schema():
    entry = registry.get("http_request")
    assert entry.category == "Integrations"
    Draft202012Validator.check_schema(http_request.SCHEMA)
    validator = Draft202012Validator(http_request.SCHEMA)
    assert validator.is_valid({"url": "https://example.com", "method": "POST", "body": [1]})
    assert not validator.is_valid({"method": "GET"})
    assert not validator.is_valid({"url": "https://example.com", "method": "FETCH"})
    assert not validator.is_valid({"url": "https://example.com", "surprise": 1})


async def test_get_returns_status_headers_and_parsed_json(server):
    output = await call(url=f"{server.url}/users")
    assert output["status_code"] == 200
    assert output["headers"]["content-type"] == "application/json"
    assert output["body"]["method"] == "GET"
    assert output["body"]["path"] == "/users"
    assert output["body"]["headers"]["user-agent"].startswith("FlowMatrx/")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get"])
async def test_methods(server, method):
    output = await call(url=server.url, method=method)
    assert output["body"]["method"] == method.upper()


async def test_head_has_no_body(server):
    output = await call(url=server.url, method="HEAD")
    assert output["status_code"] == 200
    assert output["body"] == ""
    assert server.requests[0].method == "HEAD"


async def test_headers_and_query(server):
    output = await call(
        url=f"{server.url}/search?a=1",
        headers={"X-Trace": "abc", "X-Count": 5, "X-Flag": True},
        query={"b": "two words", "c": [1, 2], "d": False},
    )
    seen = output["body"]
    assert seen["headers"]["x-trace"] == "abc"
    assert seen["headers"]["x-count"] == "5"
    assert seen["headers"]["x-flag"] == "true"
    assert seen["query"] == {"a": ["1"], "b": ["two words"], "c": ["1", "2"], "d": ["false"]}


@pytest.mark.parametrize("body", [{"name": "Ada", "tags": ["x"]}, [1, 2, 3]])
async def test_object_and_list_bodies_are_json(server, body):
    await call(url=server.url, method="POST", body=body)
    request = server.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert request.json() == body


async def test_text_body(server):
    await call(url=server.url, method="POST", body="plain words")
    request = server.requests[0]
    assert request.body == b"plain words"
    assert request.headers["content-type"] == "text/plain; charset=utf-8"


async def test_text_body_keeps_a_given_content_type(server):
    await call(
        url=server.url, method="POST", body="<a/>", headers={"content-type": "application/xml"}
    )
    assert server.requests[0].headers["content-type"] == "application/xml"


async def test_number_body_is_sent_as_json_text(server):
    await call(url=server.url, method="POST", body=42)
    assert server.requests[0].body == b"42"


@pytest.mark.parametrize(
    ("content_type", "payload", "expected"),
    [
        ("text/plain; charset=utf-8", "héllo", "héllo"),
        ("text/html", "<p>hi</p>", "<p>hi</p>"),
        ("application/json; charset=utf-8", '{"a": [1]}', {"a": [1]}),
        ("application/problem+json", '{"title": "x"}', {"title": "x"}),
        ("application/json", "not json", "not json"),
        ("application/octet-stream", "raw", "raw"),
    ],
)
async def test_response_parsing(start, content_type, payload, expected):
    server = start(lambda r: Reply(body=payload, headers={"Content-Type": content_type}))
    output = await call(url=server.url)
    assert output["body"] == expected


async def test_idempotency_header_carries_the_step_key(server):
    await call(url=server.url, method="POST", idempotency_header="Idempotency-Key")
    await call(url=server.url, method="POST")
    assert server.requests[0].headers["idempotency-key"] == "run-1:call"
    assert "idempotency-key" not in server.requests[1].headers


async def test_timeout_is_retryable(start):
    server = start(lambda r: Reply(body="late", delay=5))
    began = time.monotonic()
    with pytest.raises(StepError, match=r"timed out after 0\.3 seconds") as caught:
        await call(url=server.url, timeout_seconds=0.3)
    assert caught.value.retryable
    assert time.monotonic() - began < 2


async def test_404_fails_without_retry(start):
    server = start(lambda r: Reply(404, {"detail": "no such user"}))
    with pytest.raises(NonRetryableError) as caught:
        await call(url=f"{server.url}/users/7", method="DELETE")
    message = str(caught.value)
    assert f"DELETE {server.url}/users/7 failed with status 404 Not Found" in message
    assert "no such user" in message


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_5xx_and_429_are_retryable(start, status):
    server = start(lambda r: Reply(status, "busy"))
    with pytest.raises(StepError, match=f"failed with status {status}") as caught:
        await call(url=server.url)
    assert caught.value.retryable
    assert "busy" in str(caught.value)


async def test_error_snippet_is_short(start):
    server = start(lambda r: Reply(400, "x" * 5000))
    with pytest.raises(NonRetryableError) as caught:
        await call(url=server.url)
    assert len(str(caught.value)) < 400


async def test_connection_refused_is_retryable():
    with pytest.raises(StepError) as caught:
        await call(url=f"http://127.0.0.1:{free_port()}/")
    assert caught.value.retryable
    assert "GET http://127.0.0.1:" in str(caught.value)


async def test_oversized_response_is_refused(start):
    server = start(lambda r: Reply(body="y" * 5000))
    with pytest.raises(NonRetryableError, match="larger than the limit of 1000 bytes"):
        await call(url=server.url, max_response_bytes=1000)
    assert (await call(url=server.url, max_response_bytes=5000))["body"] == "y" * 5000


async def test_endless_response_stops_at_the_cap(start):
    server = start(endless)
    began = time.monotonic()
    with pytest.raises(NonRetryableError, match="larger than the limit of 1048576 bytes"):
        await call(url=server.url, max_response_bytes=1024 * 1024)
    assert time.monotonic() - began < 5


async def test_redirects_are_followed_unless_disabled(start):
    def app(request):
        if request.path == "/old":
            return Reply(301, headers={"Location": "/new"})
        return Reply(body={"at": request.path})

    server = start(app)
    assert (await call(url=f"{server.url}/old"))["body"] == {"at": "/new"}
    output = await call(url=f"{server.url}/old", follow_redirects=False)
    assert output["status_code"] == 301
    assert output["headers"]["location"] == "/new"


async def test_redirect_loops_fail(start):
    server = start(lambda r: Reply(302, headers={"Location": "/again"}))
    with pytest.raises(NonRetryableError, match="more than 5 redirects"):
        await call(url=server.url)
    assert len(server.requests) == 6


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "needs a 'url'"),
        ({"url": "ftp://example.com/file"}, "invalid request"),
        ({"url": "not a url"}, "invalid request"),
        ({"url": "http://x", "method": "BREW"}, "unsupported method"),
        ({"url": "http://x", "headers": ["a"]}, "'headers' must be an object"),
        ({"url": "http://x", "headers": {"X": "é"}}, "ASCII"),
        ({"url": "http://x", "query": "a=1"}, "'query' must be an object"),
        ({"url": "http://x", "timeout_seconds": 0}, "'timeout_seconds' must be a positive"),
    ],
)
async def test_bad_config_fails_without_retry(config, message):
    with pytest.raises(NonRetryableError, match=message):
        await call(**config)


async def test_output_is_json_serializable(server):
    output = await call(url=server.url)
    assert json.loads(json.dumps(output)) == output
