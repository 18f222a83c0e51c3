"""llm_call against fake OpenAI and Anthropic APIs on loopback that check the request shape
and credentials like the real ones and answer in their formats."""

import pytest

from engine.errors import NonRetryableError, StepError
from engine.handlers import llm_call
from engine.netguard import AddressRefused
from engine.registry import registry
from engine.tests.http_servers import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    Reply,
    fake_anthropic,
    fake_openai,
    free_port,
    step_context,
)

pytestmark = pytest.mark.usefixtures("loopback_allowed")


@pytest.fixture
def openai(start, settings):
    server = start(fake_openai)
    settings.OPENAI_BASE_URL = f"{server.url}/v1"
    settings.OPENAI_API_KEY = OPENAI_KEY
    return server


@pytest.fixture
def anthropic(start, settings):
    server = start(fake_anthropic)
    settings.ANTHROPIC_BASE_URL = f"{server.url}/v1/"
    settings.ANTHROPIC_API_KEY = ANTHROPIC_KEY
    return server


async def ask(**config):
    return await llm_call.execute(config, step_context())


def test_registered():
    entry = registry.get("llm_call")
    assert entry.category == "AI"
    assert entry.config_schema["properties"]["provider"]["enum"] == ["openai", "anthropic"]


async def test_openai_chat_completion(openai):
    output = await ask(
        model="gpt-4o-mini",
        system="Be brief.",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Summarize the order"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert output == {
        "provider": "openai",
        "content": "echo: Summarize the order",
        "model": "gpt-4o-mini-2024-07-18",
        "usage": {"input_tokens": 7, "output_tokens": 4},
        "finish_reason": "stop",
    }
    sent = openai.requests[0].json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 50


async def test_openai_prompt_shorthand_and_length_stop(openai):
    output = await ask(model="gpt-4o-mini", prompt="one two three four", max_tokens=2)
    assert output["content"] == "echo: one"
    assert output["finish_reason"] == "length"
    sent = openai.requests[0].json()
    assert sent["messages"] == [{"role": "user", "content": "one two three four"}]
    assert "temperature" not in sent


async def test_anthropic_messages(anthropic):
    output = await ask(
        provider="anthropic",
        model="claude-3-5-haiku-latest",
        system="Be brief.",
        messages=[
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hi there"},
        ],
        temperature=0.5,
    )
    assert output == {
        "provider": "anthropic",
        "content": "echo: Hi there",
        "model": "claude-3-5-haiku-latest",
        "usage": {"input_tokens": 7, "output_tokens": 3},
        "finish_reason": "end_turn",
    }
    request = anthropic.requests[0]
    assert request.path == "/v1/messages"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    sent = request.json()
    assert sent["system"] == "Be brief.\n\nAnswer in English."
    assert sent["messages"] == [{"role": "user", "content": "Hi there"}]
    assert sent["max_tokens"] == 1024
    assert sent["temperature"] == 0.5


async def test_anthropic_max_tokens(anthropic):
    output = await ask(provider="anthropic", model="claude", prompt="a b c", max_tokens=2)
    assert output["finish_reason"] == "max_tokens"
    assert anthropic.requests[0].json()["max_tokens"] == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_wrong_key_fails_without_retry(openai, anthropic, settings, provider):
    settings.OPENAI_API_KEY = "sk-wrong-openai"
    settings.ANTHROPIC_API_KEY = "sk-wrong-anthropic"
    with pytest.raises(NonRetryableError, match="status 401") as caught:
        await ask(provider=provider, model="m", prompt="hi")
    message = str(caught.value)
    assert f"{provider} API error:" in message
    assert "Incorrect API key" in message or "invalid x-api-key" in message
    assert "sk-wrong" not in message


@pytest.mark.parametrize(
    ("provider", "name"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
async def test_missing_key_is_a_clear_error(openai, anthropic, settings, provider, name):
    setattr(settings, name, "")
    with pytest.raises(NonRetryableError, match=f"{name} is not configured"):
        await ask(provider=provider, model="m", prompt="hi")
    assert openai.requests == anthropic.requests == []


@pytest.mark.parametrize(
    ("provider", "status", "retryable"),
    [
        ("openai", 400, False),
        ("openai", 403, False),
        ("openai", 404, False),
        ("openai", 429, True),
        ("openai", 500, True),
        ("openai", 503, True),
        ("anthropic", 400, False),
        ("anthropic", 429, True),
        ("anthropic", 529, True),
    ],
)
async def test_api_errors(openai, anthropic, provider, status, retryable):
    with pytest.raises(StepError, match=f"status {status}") as caught:
        await ask(provider=provider, model=f"fail-{status}", prompt="hi")
    assert caught.value.retryable is retryable
    assert f"forced status {status}" in str(caught.value)


async def test_request_shape_errors_surface_the_api_message(anthropic, settings):
    settings.ANTHROPIC_BASE_URL = f"{anthropic.url}/v2"
    with pytest.raises(NonRetryableError, match="status 404"):
        await ask(provider="anthropic", model="claude", prompt="hi")


async def test_network_errors_and_timeouts_are_retryable(start, settings):
    settings.OPENAI_API_KEY = OPENAI_KEY
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(StepError) as caught:
        await ask(model="m", prompt="hi")
    assert caught.value.retryable

    slow = start(lambda r: Reply(200, {}, delay=5))
    settings.OPENAI_BASE_URL = f"{slow.url}/v1"
    with pytest.raises(StepError, match=r"timed out after 0\.2 seconds") as caught:
        await ask(model="m", prompt="hi", timeout_seconds=0.2)
    assert caught.value.retryable


async def test_a_non_json_answer_fails(start, settings):
    server = start(lambda r: Reply(200, "<html>proxy login</html>"))
    settings.OPENAI_API_KEY = OPENAI_KEY
    settings.OPENAI_BASE_URL = f"{server.url}/v1"
    with pytest.raises(NonRetryableError, match="without a JSON object: <html>proxy login"):
        await ask(model="m", prompt="hi")


async def test_the_guard_applies(openai, settings):
    settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 is a loopback address"):
        await ask(model="m", prompt="hi")
    settings.OPENAI_BASE_URL = "http://169.254.169.254/v1"
    with pytest.raises(AddressRefused, match="cloud metadata address"):
        await ask(model="m", prompt="hi")
    assert openai.requests == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"prompt": "hi"}, "needs a 'model'"),
        ({"model": "m"}, "needs 'messages' or a 'prompt'"),
        ({"model": "m", "messages": "hi"}, "must be a list"),
        ({"model": "m", "messages": [{"content": "x"}]}, "needs a 'role'"),
        ({"model": "m", "prompt": "x", "provider": "bard"}, "unknown provider"),
        ({"model": "m", "prompt": "x", "timeout_seconds": -1}, "must be a positive"),
    ],
)
async def test_bad_config(openai, config, message):
    with pytest.raises(NonRetryableError, match=message):
        await ask(**config)
    assert openai.requests == []
