"""A local OpenAI-compatible HTTP server for tests, plus the `openai_server` fixture.

Real HTTP on 127.0.0.1 (so the official client, its timeouts and its error mapping
are exercised), deterministic answers, every request recorded, and failures scripted
ahead of time:

    openai_server.fail_next(429)            # next request gets a rate-limit error
    openai_server.fail_next(500, times=2)
    openai_server.delay_next(1.0)           # next request answers after 1 s
    openai_server.set_dimension(8)

Endpoints: POST /v1/embeddings, POST /v1/chat/completions, GET /v1/models.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import numpy as np
import pytest

DEFAULT_MODELS = ("text-embedding-3-small", "text-embedding-3-large", "gpt-4o-mini")

# OpenAI's error bodies: {"error": {"message", "type", "param", "code"}}.
_ERRORS = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached; please try again."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded."),
}


def error_body(status: int, model: str = "", message: str | None = None, code: str | None = None) -> dict:
    """An error payload in OpenAI's shape for `status`."""
    kind, default_code, default_message = _ERRORS.get(status, ("api_error", None, "Error."))
    return {
        "error": {
            "message": message or default_message.format(model=model),
            "type": kind,
            "param": None,
            "code": code or default_code,
        }
    }


def fake_vector(text: str, dimension: int) -> list[float]:
    """A deterministic, deliberately un-normalised vector derived from the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return (np.random.default_rng(seed).standard_normal(dimension) * 3.0).tolist()


def default_chat_reply(messages: list[dict], max_chars: int = 2000) -> str:
    """Echo the last user message, marked as rewritten."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = last.get("content", "")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return f"REWRITE: {content}"[:max_chars]


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None

    @property
    def auth(self) -> str | None:
        """The Authorization header, e.g. "Bearer sk-test"."""
        return self.headers.get("authorization")

    @property
    def inputs(self) -> list[str]:
        """Texts of an embeddings request (empty for other requests)."""
        value = (self.body or {}).get("input", [])
        return [value] if isinstance(value, str) else list(value)


@dataclass
class PlannedResponse:
    """A scripted answer for one upcoming request: wait `delay`, then fail with `status`
    (or answer normally when `status` is None)."""

    status: int | None = None
    delay: float = 0.0
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


class OpenAIServer:
    """The server and its state; use as a context manager or via the fixture."""

    def __init__(self, dimension: int = 16, models: tuple[str, ...] = DEFAULT_MODELS):
        self.dimension = dimension
        self.models: set[str] = set(models)
        self.api_key: str | None = None  # when set, other bearer tokens get 401
        self.reverse_order = False  # answer embeddings in reverse index order
        self.chat_reply: Callable[[list[dict]], str] = default_chat_reply
        self.requests: list[RecordedRequest] = []
        self._plan: deque[PlannedResponse] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        """Pass this as `base_url` to the client, e.g. http://127.0.0.1:PORT/v1."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "OpenAIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Scripting.
    def plan(self, *responses: PlannedResponse) -> None:
        """Queue scripted answers; each is used by one request, in order."""
        with self._lock:
            self._plan.extend(responses)

    def fail_next(self, status: int, times: int = 1, **kwargs: object) -> None:
        """The next `times` requests fail with `status` (OpenAI error JSON)."""
        self.plan(*(PlannedResponse(status=status, **kwargs) for _ in range(times)))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` requests answer normally, but only after `seconds`."""
        self.plan(*(PlannedResponse(delay=seconds) for _ in range(times)))

    def set_dimension(self, dimension: int) -> None:
        """Dimension of vectors returned from now on (unless a request asks for `dimensions`)."""
        self.dimension = dimension

    # Inspection.
    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path ends with `path`, e.g. "/embeddings"."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path)]

    @property
    def embedded_inputs(self) -> int:
        """How many texts were sent for embedding, failed requests included."""
        return sum(len(r.inputs) for r in self.requests_to("/embeddings"))

    # Handling (called from the handler threads).
    def _record_and_plan(self, request: RecordedRequest) -> PlannedResponse | None:
        with self._lock:
            self.requests.append(request)
            return self._plan.popleft() if self._plan else None

    def _answer(self, method: str, path: str, body: dict | None, headers: dict) -> tuple[int, dict]:
        model = str((body or {}).get("model", ""))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, error_body(401)
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in sorted(self.models)]
            return 200, {"object": "list", "data": data}
        if method != "POST" or path not in ("/v1/embeddings", "/v1/chat/completions"):
            return 404, error_body(404, message=f"Unknown request URL: {method} {path}", code="unknown_url")
        if body is None:
            return 400, error_body(400, message="The request body is not valid JSON.")
        if model not in self.models:
            return 404, error_body(404, model=model)
        if path == "/v1/embeddings":
            return 200, self._embeddings(body)
        return 200, self._chat(body)

    def _embeddings(self, body: dict) -> dict:
        texts = RecordedRequest("POST", "", {}, body).inputs
        dimension = int(body.get("dimensions") or self.dimension)
        data = []
        for index, text in enumerate(texts):
            vector = fake_vector(text, dimension)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": vector})
        if self.reverse_order:
            data.reverse()
        tokens = sum(len(t.split()) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _chat(self, body: dict) -> dict:
        content = self.chat_reply(list(body.get("messages", [])))
        return {
            "id": f"chatcmpl-test-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            planned = server._record_and_plan(RecordedRequest(method, path, headers, body))
            extra_headers: dict[str, str] = {}
            if planned is not None:
                time.sleep(planned.delay)
                extra_headers = planned.headers
            if planned is not None and planned.status is not None:
                model = str((body or {}).get("model", ""))
                status, payload = planned.status, planned.body or error_body(planned.status, model)
            else:
                status, payload = server._answer(method, path, body, headers)
            self._send(status, payload, extra_headers)

        def _send(self, status: int, payload: dict, extra_headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and hung up; that is the point of a delay

    return Handler


@pytest.fixture
def openai_server():
    """A running OpenAIServer for one test (16-dimensional vectors by default)."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def keyless_chat(monkeypatch):
    """Chat clients (rewrite, label) against the local server: short backoff, no API key
    (the local server gets the dummy one), and an OPENAI_BASE_URL that must be ignored
    in favour of the configured base_url."""
    from lenslink.rewrite import ChatModel
    monkeypatch.setattr(ChatModel, "retry_base_delay", 0.001)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
