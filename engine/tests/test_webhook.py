"""The outbound webhook step and the signature scheme it shares with the webhook trigger."""

import json
import time

import pytest

from engine import signing
from engine.errors import NonRetryableError, StepError
from engine.handlers import webhook
from engine.netguard import AddressRefused
from engine.registry import registry
from engine.signing import SignatureError
from engine.tests.http_servers import Reply, free_port, step_context

SECRET = "whsec-test-8f3a1c"
PAYLOAD = {"order": {"id": 42, "total": 9.5}, "note": "ünïcode"}


pytestmark = pytest.mark.usefixtures("loopback_allowed")


def receiver(request):
    """Accepts only requests signed with SECRET, like the inbound trigger will."""
    header = request.headers.get("x-flowmatrx-signature", "")
    if not signing.verify(SECRET, header, request.body):
        return Reply(401, {"error": "bad signature"})
    return Reply(200, {"received": request.json()["order"]["id"]})


async def send(**config):
    return await webhook.execute(config, step_context(run_id="r-9", step_id="notify"))


def test_registered():
    entry = registry.get("webhook")
    assert entry.category == "Integrations"
    assert entry.config_schema["required"] == ["url"]


async def test_signed_post_is_verified_by_the_receiver(start):
    server = start(receiver)
    output = await send(url=f"{server.url}/hook", payload=PAYLOAD, secret=SECRET)
    assert output == {"status_code": 200, "body": {"received": 42}}

    request = server.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-flowmatrx-idempotency-key"] == "r-9:notify"
    assert json.loads(request.body) == PAYLOAD
    timestamp, _ = signing.parse(request.headers["x-flowmatrx-signature"])
    assert abs(timestamp - time.time()) < 5


async def test_the_secret_never_travels_or_shows(start):
    server = start(receiver)
    output = await send(url=server.url, payload=PAYLOAD, secret=SECRET)
    request = server.requests[0]
    assert SECRET not in json.dumps(request.headers)
    assert SECRET.encode() not in request.body
    assert SECRET not in json.dumps(output)


async def test_wrong_secret_is_rejected_by_the_receiver(start):
    server = start(receiver)
    with pytest.raises(NonRetryableError, match="status 401") as caught:
        await send(url=server.url, payload=PAYLOAD, secret="not-the-secret")
    assert "not-the-secret" not in str(caught.value)


async def test_without_a_secret_there_is_no_signature(start):
    server = start(lambda r: Reply(204))
    output = await send(url=server.url, payload=[1, 2])
    assert output == {"status_code": 204, "body": ""}
    assert "x-flowmatrx-signature" not in server.requests[0].headers
    assert server.requests[0].body == b"[1,2]"


async def test_extra_headers_cannot_replace_the_signature(start):
    server = start(receiver)
    headers = {"X-Source": "flowmatrx", "x-flowmatrx-signature": "t=1,v1=00"}
    await send(url=server.url, payload=PAYLOAD, secret=SECRET, headers=headers)
    request = server.requests[0]
    assert request.headers["x-source"] == "flowmatrx"
    assert signing.verify(SECRET, request.headers["x-flowmatrx-signature"], request.body)


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (302, False), (429, True), (503, True)]
)
async def test_non_2xx_fails(start, status, retryable):
    server = start(lambda r: Reply(status, "nope", headers={"Location": "/elsewhere"}))
    with pytest.raises(StepError, match=f"POST {server.url}/ failed with status {status}") as c:
        await send(url=f"{server.url}/", payload={})
    assert c.value.retryable is retryable
    assert len(server.requests) == 1  # redirects are not followed


async def test_network_errors_and_timeouts_are_retryable(start):
    with pytest.raises(StepError) as caught:
        await send(url=f"http://127.0.0.1:{free_port()}/", payload={})
    assert caught.value.retryable
    slow = start(lambda r: Reply(200, delay=5))
    with pytest.raises(StepError, match="timed out") as caught:
        await send(url=slow.url, payload={}, timeout_seconds=0.2)
    assert caught.value.retryable


async def test_the_guard_applies(start, settings):
    settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS = False
    server = start(receiver)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is a loopback address"):
        await send(url=server.url, payload={}, secret=SECRET)
    assert server.requests == []


# -- signing ----------------------------------------------------------------------------------

BODY = b'{"a":1}'


def test_sign_format():
    header = signing.sign("s", BODY, timestamp=1700000000)
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    assert v1.startswith("v1=")
    assert len(v1) == 3 + 64
    assert signing.sign("s", BODY.decode(), timestamp=1700000000) == header


def test_verify_accepts_a_fresh_signature():
    header = signing.sign(SECRET, BODY)
    assert signing.verify(SECRET, header, BODY)
    assert signing.verify(SECRET, header, BODY.decode())
    assert signing.check(SECRET, header, BODY) == signing.parse(header)[0]


def test_verify_rejects_a_tampered_body():
    header = signing.sign(SECRET, BODY)
    assert not signing.verify(SECRET, header, b'{"a":2}')
    assert not signing.verify(SECRET, header, BODY + b" ")


def test_verify_rejects_a_wrong_secret():
    assert not signing.verify("other", signing.sign(SECRET, BODY), BODY)


def test_verify_rejects_a_tampered_timestamp():
    header = signing.sign(SECRET, BODY, timestamp=1700000000)
    forged = header.replace("t=1700000000", "t=1700000100")
    assert not signing.verify(SECRET, forged, BODY, now=1700000100)


@pytest.mark.parametrize("age", [301, -301, 100000])
def test_verify_rejects_stale_and_future_timestamps(age):
    now = 1700000000
    header = signing.sign(SECRET, BODY, timestamp=now - age)
    assert not signing.verify(SECRET, header, BODY, now=now)
    with pytest.raises(SignatureError, match="more than 300 seconds off"):
        signing.check(SECRET, header, BODY, now=now)
    assert signing.verify(SECRET, header, BODY, tolerance=abs(age), now=now)


def test_verify_within_tolerance():
    now = 1700000000
    assert signing.verify(SECRET, signing.sign(SECRET, BODY, timestamp=now - 299), BODY, now=now)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=1700000000", "v1=abcd", "t=abc,v1=abcd", "t=１７,v1=ab", "t=1,v1=zz"],
)
def test_malformed_headers_are_rejected(header):
    assert not signing.verify(SECRET, header, BODY, now=1700000000)
    with pytest.raises(SignatureError):
        signing.check(SECRET, header, BODY, now=1700000000)


def test_any_matching_v1_is_enough():
    """While a secret is rotated the sender may sign with both."""
    good = signing.sign(SECRET, BODY, timestamp=1700000000)
    other = signing.sign("old-secret", BODY, timestamp=1700000000).split(",")[1]
    header = f"{good},{other}"
    assert signing.verify(SECRET, header, BODY, now=1700000000)
    assert signing.verify("old-secret", header, BODY, now=1700000000)
    assert not signing.verify("third", header, BODY, now=1700000000)
