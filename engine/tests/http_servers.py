"""Real HTTP servers on loopback for the HTTP step tests (no mocks of httpx).

`loopback_servers()` yields `start(app)`: each call starts a threaded HTTP/1.0 server on
127.0.0.1 (a port of its own) answering every request with `app(request) -> Reply`, and
every server is stopped on exit. The fake OpenAI and Anthropic apps check the request
shape and credentials the way the real APIs do and answer in their formats.
"""

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = b""
    """bytes or str are sent as they are, anything else as JSON."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream: Iterable[bytes] | None = None
    """Chunks sent without a Content-Length (the body ends when the connection closes)."""


App = Callable[[Request], Reply]


class LoopbackServer:
    def __init__(self, app: App):
        self.app = app
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self):
                owner._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # clients that hang up
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
        )
        self.requests.append(request)
        reply = self.app(request)
        if reply.delay:
            self._stopping.wait(reply.delay)
        handler.send_response(reply.status)
        headers = {k.lower(): v for k, v in reply.headers.items()}
        for name, value in headers.items():
            handler.send_header(name, value)
        if reply.stream is not None:
            handler.end_headers()
            for chunk in reply.stream:
                if self._stopping.is_set():
                    break
                handler.wfile.write(chunk)
            return
        body = reply.body
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
            if "content-type" not in headers:
                handler.send_header("Content-Type", "application/json")
        payload = body.encode() if isinstance(body, str) else body
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    def close(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()


@contextmanager
def loopback_servers():
    started: list[LoopbackServer] = []

    def start(app: App) -> LoopbackServer:
        server = LoopbackServer(app)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()


def free_port() -> int:
    """A free loopback port: nothing listens on it (connections are refused) until a test
    binds it for a server of its own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def step_context(run_id="run-1", step_id="call") -> MappingProxyType:
    """The read-only context the executor gives a handler."""
    run = {"id": run_id, "step_id": step_id, "attempt": 1, "idempotency_key": f"{run_id}:{step_id}"}
    return MappingProxyType({"input": {}, "run": run})


# -- apps -------------------------------------------------------------------------------------


def echo(request: Request) -> Reply:
    """Answers with what it received, as JSON."""
    return Reply(
        body={
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": request.body.decode(),
        }
    )


def endless(request: Request) -> Reply:
    """An endless body without a Content-Length."""
    return Reply(headers={"Content-Type": "text/plain"}, stream=itertools.repeat(b"x" * 65536))


OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"


def _forced_status(model: str) -> int | None:
    """A model named "fail-<status>" makes the fake APIs answer with that status."""
    prefix, _, status = model.partition("-")
    return int(status) if prefix == "fail" and status.isdigit() else None


def _reply_text(messages: list[dict], max_tokens: int | None) -> tuple[str, bool]:
    words = f"echo: {messages[-1]['content']}".split()
    truncated = max_tokens is not None and len(words) > max_tokens
    return " ".join(words[:max_tokens] if truncated else words), truncated


def _tokens(messages: list[dict], system: str = "") -> int:
    return len(system.split()) + sum(len(str(m["content"]).split()) for m in messages)


def fake_openai(request: Request) -> Reply:
    def error(status, message, type_="invalid_request_error", code=None):
        return Reply(status, {"error": {"message": message, "type": type_, "code": code}})

    if request.method != "POST" or request.path != "/v1/chat/completions":
        return error(404, f"Unknown request URL: {request.method} {request.path}")
    if request.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
        return error(401, "Incorrect API key provided.", code="invalid_api_key")
    if not request.headers.get("content-type", "").startswith("application/json"):
        return error(400, "Content-Type must be application/json")
    body = request.json()
    messages = body.get("messages")
    if not isinstance(body.get("model"), str):
        return error(400, "you must provide a model parameter")
    if not isinstance(messages, list) or not messages:
        return error(400, "'messages' must be a non-empty array")
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant", "developer"):
            return error(400, f"Invalid value for 'role': {message.get('role')!r}")
    status = _forced_status(body["model"])
    if status:
        return error(status, f"forced status {status}", type_="server_error")
    text, truncated = _reply_text(messages, body.get("max_tokens"))
    prompt_tokens = _tokens(messages)
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{body['model']}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
            },
        }
    )


def fake_anthropic(request: Request) -> Reply:
    def error(status, message, type_="invalid_request_error"):
        return Reply(status, {"type": "error", "error": {"type": type_, "message": message}})

    if request.method != "POST" or request.path != "/v1/messages":
        return error(404, "Not found", "not_found_error")
    if request.headers.get("x-api-key") != ANTHROPIC_KEY:
        return error(401, "invalid x-api-key", "authentication_error")
    if request.headers.get("anthropic-version") != "2023-06-01":
        return error(400, "anthropic-version: header is required")
    body = request.json()
    messages = body.get("messages")
    if not isinstance(body.get("model"), str):
        return error(400, "model: Field required")
    if not isinstance(body.get("max_tokens"), int):
        return error(400, "max_tokens: Field required")
    if not isinstance(messages, list) or not messages:
        return error(400, "messages: at least one message is required")
    for message in messages:
        if message.get("role") not in ("user", "assistant"):
            return error(400, f"messages: Unexpected role {message.get('role')!r}")
    if not isinstance(body.get("system", ""), str | list):
        return error(400, "system: Input should be a valid string")
    status = _forced_status(body["model"])
    if status:
        return error(status, f"forced status {status}", "overloaded_error")
    text, truncated = _reply_text(messages, body["max_tokens"])
    return Reply(
        body={
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(messages, str(body.get("system", ""))),
                "output_tokens": len(text.split()),
            },
        }
    )
