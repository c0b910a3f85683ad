"""Helpers for the daemon, watcher and server tests: a running daemon in-process, a raw
HTTP client, `lenslink serve` in a subprocess, and waiting on conditions (never bare
sleeps as the assertion mechanism).

Fixtures defined here are imported by the test modules that use them.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lenslink.daemon import Service, load_token
from lenslink.server import ApiServer

TESTS = Path(__file__).resolve().parent
WAIT = 60.0  # generous: the machine is shared and slow; passing tests return at once


def wait_for(predicate, timeout: float = WAIT, interval: float = 0.02, message: str = ""):
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


# -- a raw HTTP client ----------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw)

    @property
    def error(self) -> dict:
        """The `{"error": {"code", "message"}}` body of an error response."""
        body = self.json
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]


class Api:
    """Raw requests to a daemon on 127.0.0.1 (http.client, so any header can be set)."""

    def __init__(self, port: int, token: str | None, host: str = "127.0.0.1"):
        self.host, self.port, self.token = host, port, token

    def request(self, method: str, path: str, body=None, *, token: str | None = "default",
                headers: dict | None = None, raw: bytes | None = None) -> Response:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=WAIT)
        try:
            send = dict(headers or {})
            token = self.token if token == "default" else token
            if token is not None:
                send.setdefault("Authorization", f"Bearer {token}")
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            if data is not None:
                send.setdefault("Content-Type", "application/json")
            # skip_host lets a test send its own Host header (DNS-rebinding checks)
            conn.putrequest(method, path, skip_host="Host" in send, skip_accept_encoding=True)
            for name, value in send.items():
                conn.putheader(name, value)
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body=None, **kwargs) -> Response:
        return self.request("POST", path, body if body is not None else {}, **kwargs)

    def ok(self, method: str, path: str, body=None):
        """The JSON of a request that must succeed."""
        resp = self.request(method, path, body)
        assert resp.status == 200, (resp.status, resp.raw)
        return resp.json


# -- a daemon in this process -----------------------------------------------------------
@dataclass
class Daemon:
    service: Service
    server: ApiServer
    api: Api
    thread: threading.Thread
    stopped: bool = field(default=False)

    @property
    def state(self):
        return self.service.state

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Until no event is queued and the worker is not indexing."""
        wait_for(lambda: len(self.service.queue) == 0 and self.state.phase in ("ready", "error"),
                 timeout, message="the daemon to become idle")

    def wait_batches(self, more_than: int, timeout: float = WAIT) -> int:
        """Until more than `more_than` sync batches ran; returns the count."""
        return wait_for(lambda: self.state.batches > more_than and self.state.phase != "indexing"
                        and self.state.batches, timeout,
                        message=f"a sync batch after batch {more_than}")

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.service.stop()


@pytest.fixture
def start_daemon():
    """`start_daemon(vault, write_policy=..., quiet=..., debounce=..., watch=...)` -> a
    running Service + ApiServer on 127.0.0.1:0 (fake embedder by default) after its first
    sync; everything started is stopped at the end of the test."""
    started: list[Daemon] = []

    def start(vault, *, embedder: str | None = "fake", write_policy: str = "manual",
              quiet: float = 0.2, debounce: float = 0.1, watch: bool = True,
              wait_ready: bool = True) -> Daemon:
        service = Service(vault, embedder=embedder, write_policy=write_policy, quiet=quiet,
                          debounce=debounce, watch=watch)
        server = ApiServer(service, "127.0.0.1", 0, load_token())
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        daemon = Daemon(service, server, Api(server.server_address[1], server.token), thread)
        started.append(daemon)
        service.start()
        if wait_ready:
            assert service.ready.wait(WAIT), "the first sync did not finish"
        return daemon

    yield start
    for daemon in reversed(started):
        daemon.stop()


# -- vault contents -----------------------------------------------------------------------
TOPICS = {
    "bread": "sourdough starter flour water levain crumb crust bake oven proofing",
    "garden": "tomato seedling irrigation compost soil mulch watering bed harvest",
    "music": "guitar chord melody rhythm tempo scale practice song riff strings",
    "travel": "train ticket passport hotel luggage itinerary airport border map",
}


def note_text(topic: str, n: int, extra: str = "") -> str:
    """A note about `topic`, distinct per `n` (so every note has its own lens text)."""
    words = TOPICS[topic].split()
    rotated = words[n % len(words):] + words[:n % len(words)]
    return f"# {topic} {n}\n\n{' '.join(rotated)} note{n} {extra}\n"


def make_notes(root: Path, count: int, folder: str = "") -> dict[str, str]:
    """Write `count` notes spread over the topics; returns {rel: text}. Texts are distinct
    across folders too (the folder's name is part of them)."""
    topics = sorted(TOPICS)
    out = {}
    for i in range(count):
        rel = f"{folder}{topics[i % len(topics)]}-{i}.md"
        out[rel] = note_text(topics[i % len(topics)], i, extra=folder.replace("/", " "))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out[rel], encoding="utf-8")
    return out


# -- `lenslink serve` in a subprocess ---------------------------------------------------
SERVING = re.compile(r"lenslink serving .* on http://([\d.]+):(\d+)/v1")


class ServeProcess:
    """`lenslink serve` in a subprocess, with the fake embedder registered
    (`tests/fake_embedder.py` runs the CLI after registering it from the environment)."""

    def __init__(self, vault: Path, *args: str, env: dict | None = None,
                 fake: bool = True):
        cmd = [sys.executable, str(TESTS / "fake_embedder.py")] if fake else \
              [sys.executable, "-m", "lenslink.cli"]
        cmd += ["serve", str(vault), "--port", "0", "--debounce", "0.1", *args]
        if fake and "--embedder" not in args:
            cmd += ["--embedder", "fake"]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=self.env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.host: str | None = None
        self.port: int | None = None

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_serving(self, timeout: float = WAIT) -> Api:
        """Until the `lenslink serving ... on http://HOST:PORT/v1` line; an Api on it."""
        def serving():
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.stderr}")
            return next((m for m in map(SERVING.search, list(self.lines)) if m), None)
        found = wait_for(serving, timeout, message="`lenslink serve` to start")
        self.host, self.port = found.group(1), int(found.group(2))
        return Api(self.port, load_token(create=False))

    def wait_exit(self, timeout: float = WAIT) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`lenslink serve` did not exit within {timeout} s") from None
        self._reader.join(5)
        return code

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self._reader.join(5)


@pytest.fixture
def serve_process():
    """`serve_process(vault, *args, env=...)` -> a started ServeProcess; killed at the end."""
    started: list[ServeProcess] = []

    def start(vault, *args, **kwargs) -> ServeProcess:
        proc = ServeProcess(vault, *args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.proc.stdout.close()
        proc.proc.stderr.close()


def ready_status(api: Api, timeout: float = WAIT) -> dict:
    """Poll /v1/status until the daemon's phase is ready with an empty queue (a timeout
    says what the last status was)."""
    last: list = [None]

    def ready():
        resp = api.get("/v1/status")
        last[0] = resp.json if resp.status == 200 else resp.raw
        if resp.status == 200 and resp.json["phase"] == "ready" and resp.json["queue"] == 0:
            return resp.json
        return None
    try:
        return wait_for(ready, timeout, interval=0.05, message="status phase ready")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {last[0]}") from None


__all__ = ["Api", "Daemon", "ServeProcess", "TOPICS", "WAIT", "make_notes", "note_text",
           "ready_status", "serve_process", "start_daemon", "wait_for"]


@pytest.fixture
def vault(tmp_path):
    """A small vault of 8 notes for the daemon and watcher tests."""
    root = tmp_path / "vault"
    root.mkdir()
    make_notes(root, 8)
    return root
