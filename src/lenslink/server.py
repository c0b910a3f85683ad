"""The local HTTP API (JSON, under /v1): thin handlers over `daemon.Service`.

Security: loopback only unless asked, a bearer token on everything but health,
loopback Host names only (DNS rebinding), Obsidian's Origin only (no wildcard CORS),
vault-relative Markdown paths only, bounded bodies, JSON errors, never a crash.
"""
from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import __version__
from .errors import (BlockError, ConfigError, LenslinkError, NotEmbedded, NotFound, NotReady,
                     UnsafePathError, WriteConflict)
from .writeback import safe_note_path

log = logging.getLogger("lenslink.server")

OBSIDIAN_ORIGIN = "app://obsidian.md"
MAX_BODY = 64 * 1024
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
STATUS_OF = [(NotReady, 503), (NotFound, 404), (UnsafePathError, 400), (ConfigError, 400),
             (WriteConflict, 409), (BlockError, 409), (NotEmbedded, 409), (LenslinkError, 500)]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name part of a Host header: `localhost:8765` -> localhost, `[::1]:1` -> ::1."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Handler(BaseHTTPRequestHandler):
    server: "ApiServer"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's
    # delayed ACK stalls every response by ~40 ms (bench/daemon_latency.py).
    disable_nagle_algorithm = True
    server_version = f"lenslink/{__version__}"

    # -- plumbing -----------------------------------------------------------------
    def log_message(self, fmt, *args):  # route to logging, not stderr
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):  # else http.server answers an HTML 501, not our JSON 405
        self._handle("PATCH")

    def send_error(self, code, message=None, explain=None):
        """Errors http.server raises itself (a bad request line, an unknown method, a URI
        or header too long) are JSON like every other error, not an HTML page."""
        if code == 501:  # a method no endpoint has (TRACE, HEAD, ...)
            code, kind = 405, "method_not_allowed"
            message = f"method {self.command!r} is not supported; see docs/api.md"
        else:
            kind = "bad_request" if code < 500 else "internal"
        self.close_connection = True
        try:
            self._send_error(ApiError(code, kind, message or HTTPStatus(code).phrase))
        except OSError:
            pass

    def do_OPTIONS(self):
        try:
            self._check_host_and_origin()
            self._send(204, None)
        except ApiError as err:
            self._send_error(err)

    def _handle(self, method: str) -> None:
        try:
            self._check_host_and_origin()
            url = urlsplit(self.path)
            route = ROUTES.get(url.path)
            if route is None:
                raise ApiError(404, "not_found", f"no endpoint {url.path}; see docs/api.md")
            want, func, needs_auth = route
            body = self._read_body()
            if method != want:
                raise ApiError(405, "method_not_allowed", f"use {want} for {url.path}")
            if needs_auth:
                self._check_token()
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            self._send(200, func(self.server, query, body))
        except ApiError as err:
            self._send_error(err)
        except LenslinkError as exc:
            status = next(s for cls, s in STATUS_OF if isinstance(exc, cls))
            self._send_error(ApiError(status, type(exc).__name__, str(exc)))
        except Exception as exc:  # never let a request kill the daemon
            log.exception("request failed")
            self._send_error(ApiError(500, "internal", f"{type(exc).__name__}: {exc}"))

    def _check_host_and_origin(self) -> None:
        if not self.server.allow_remote and not is_loopback(_host_name(self.headers.get("Host", ""))):
            raise ApiError(403, "bad_host", "requests must use a loopback host name (DNS rebinding guard)")
        origin = self.headers.get("Origin")
        if origin is not None and origin != OBSIDIAN_ORIGIN:
            raise ApiError(403, "bad_origin", f"origin {origin!r} is not allowed")

    def _check_token(self) -> None:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.server.token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong token; see `lenslink token`")

    def _read_body(self) -> dict:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ApiError(411, "length_required", "send a Content-Length, not a chunked body")
        try:
            size = int(length or 0)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if size < 0 or size > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "too_large", f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(size) if size else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_json", f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_json", "body must be a JSON object")
        return body

    def _send(self, status: int, payload) -> None:
        data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.headers.get("Origin") == OBSIDIAN_ORIGIN:
            self.send_header("Access-Control-Allow-Origin", OBSIDIAN_ORIGIN)
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.send_header("Vary", "Origin")
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: ApiError) -> None:
        try:
            self._send(err.status, {"error": {"code": err.code, "message": err.message}})
        except OSError:
            pass


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, service, host: str, port: int, token: str, allow_remote: bool = False):
        if not is_loopback(host) and not allow_remote:
            raise ConfigError(f"refusing to listen on {host}: only 127.0.0.1 is safe; "
                              "pass --allow-remote if you really mean it")
        self.service = service
        self.token = token
        self.allow_remote = allow_remote
        try:
            super().__init__((host, port), Handler)  # closes its socket when the bind fails
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use (by another lenslink "
                                  "daemon or another program); pick another with --port N") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


# -- endpoints ------------------------------------------------------------------------
def note_path(server: ApiServer, value) -> str:
    """A vault-relative Markdown path from a request, checked before anything reads it."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "bad_request", "give the note as a vault-relative path: \"path\"")
    safe_note_path(server.service.vault.root, value)
    return value


def _int(value, name: str, low: int, high: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", f"{name} must be an integer") from None
    if not low <= number <= high:
        raise ApiError(400, "bad_request", f"{name} must be from {low} to {high}")
    return number


def health(server, query, body):
    service = server.service
    return {"ok": True, "version": __version__, "instance": service.instance,
            "config": service.vault.ranked_config.fingerprint}


def status(server, query, body):
    return server.service.status()


def lenses(server, query, body):
    return {"lenses": server.service.vault.lenses()}


def related(server, query, body):
    return server.service.related(note_path(server, query.get("path")), query.get("lens") or None,
                                  _int(query.get("top"), "top", 1, 100))


def block(server, query, body):
    return server.service.block(note_path(server, query.get("path")))


def write(server, query, body):
    force, remove = body.get("force", False), body.get("remove", False)
    if not isinstance(force, bool) or not isinstance(remove, bool):
        raise ApiError(400, "bad_request", "`force` and `remove` must be true or false")
    return {"results": server.service.write(note_path(server, body.get("path")), force=force,
                                            remove=remove)}


def reindex(server, query, body):
    return server.service.reindex(note_path(server, body.get("path")))


def rebuild(server, query, body):
    return server.service.rebuild()


ROUTES = {
    "/v1/health": ("GET", health, False),
    "/v1/status": ("GET", status, True),
    "/v1/lenses": ("GET", lenses, True),
    "/v1/related": ("GET", related, True),
    "/v1/block": ("GET", block, True),
    "/v1/write": ("POST", write, True),
    "/v1/reindex": ("POST", reindex, True),
    "/v1/rebuild": ("POST", rebuild, True),
}
