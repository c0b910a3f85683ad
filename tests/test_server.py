"""The local HTTP API on a real server on 127.0.0.1: security first, then what each
endpoint answers. Requests go through http.client so any header can be forged."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import stat
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from daemon_helpers import WAIT, make_notes, serve_process, start_daemon, wait_for  # noqa: F401
from lenslink import config, daemon as daemon_mod
from lenslink.block import END, START, find_block, remove_block
from lenslink.cli import main
from lenslink.daemon import VaultLock, load_token, token_path
from lenslink.errors import ConfigError
from lenslink.server import MAX_BODY, OBSIDIAN_ORIGIN, ROUTES, ApiServer
from lenslink.store import Store

# (method, path, body) of every endpoint that needs the token
PROTECTED = [
    ("GET", "/v1/status", None),
    ("GET", "/v1/lenses", None),
    ("GET", "/v1/related?path=bread-0.md", None),
    ("GET", "/v1/block?path=bread-0.md", None),
    ("POST", "/v1/write", {"path": "bread-0.md"}),
    ("POST", "/v1/reindex", {"path": "bread-0.md"}),
    ("POST", "/v1/rebuild", {}),
]


@pytest.fixture
def vault(tmp_path):
    root = tmp_path / "vault"
    root.mkdir()
    make_notes(root, 8)
    with open(root / "bread-0.md", "a", encoding="utf-8") as f:
        f.write("See [[bread-4]] for the rye version.\n")
    return root


@pytest.fixture
def daemon(vault, fake_embedder, start_daemon):
    return start_daemon(vault)


def test_protected_list_covers_every_route():
    assert {p.split("?")[0] for _, p, _ in PROTECTED} | {"/v1/health"} == set(ROUTES)
    assert [p for p, (_, _, auth) in ROUTES.items() if not auth] == ["/v1/health"]


# -- where it listens ---------------------------------------------------------------
def test_serve_binds_loopback_by_default(vault, serve_process):
    proc = serve_process(vault)
    api = proc.wait_serving()
    assert proc.host == "127.0.0.1"
    assert api.ok("GET", "/v1/health")["ok"] is True


def test_non_loopback_host_is_refused_without_allow_remote(vault, fake_embedder):
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0"):
        ApiServer(None, "0.0.0.0", 0, "token")
    with pytest.raises(ConfigError, match="refusing to listen on 192.0.2.1"):
        ApiServer(None, "192.0.2.1", 0, "token")
    server = ApiServer(None, "0.0.0.0", 0, "token", allow_remote=True)  # asked for: allowed
    try:
        assert server.server_address[0] == "0.0.0.0"
    finally:
        server.server_close()

    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0"):
        daemon_mod.serve(vault, embedder="fake", host="0.0.0.0", port=0)
    lock = VaultLock(config.default_db_path(vault.resolve()))
    lock.acquire()  # the refused daemon did not keep the vault locked


def test_an_unknown_embedder_is_refused_at_start_not_retried(vault, serve_process):
    proc = serve_process(vault, "--embedder", "nonsense")
    assert proc.wait_exit(timeout=30) == 1
    assert proc.stderr == "Error: unknown embedder 'nonsense'; available: fake, minilm, openai\n"


def test_a_port_in_use_is_one_line_and_leaves_nothing_running(vault, serve_process):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    db = config.default_db_path(vault.resolve())
    assert not db.exists()  # a vault never indexed
    try:
        proc = serve_process(vault, "--port", str(port))
        assert proc.wait_exit() == 1
        assert not db.exists()  # the failed start left no database of its own
        assert CliRunner().invoke(main, ["index", str(vault), "--embedder", "fake"]).exit_code == 0
        again = serve_process(vault, "--port", str(port))
        assert again.wait_exit() == 1
    finally:
        taken.close()
    assert proc.stderr == (f"Error: port {port} on 127.0.0.1 is already in use (by another "
                           "lenslink daemon or another program); pick another with --port N\n")
    store = Store.open(db)  # an index that was there is kept
    assert store.note_count() > 0
    store.close()
    lock = VaultLock(db)
    lock.acquire()  # the vault is free for a daemon on another port
    lock.release()
    lock.release()

    result = CliRunner().invoke(main, ["serve", str(vault), "--embedder", "fake",
                                       "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.output and "--allow-remote" in result.output


# -- the token -------------------------------------------------------------------------
def test_every_endpoint_but_health_needs_the_token(daemon, vault):
    api = daemon.api
    before = {p.name: p.read_bytes() for p in vault.glob("*.md")}
    batches = daemon.state.batches
    for auth in (None, "Bearer wrong-token", "Bearer ", "Basic {token}", "{token}",
                 "Bearer {token}x", "Bearer " + "x" * 5000):
        headers = {"Authorization": auth.format(token=api.token)} if auth else {}
        for method, path, body in PROTECTED:
            resp = api.request(method, path, body, token=None, headers=headers)
            assert resp.status == 401, (auth, path)
            assert resp.error["code"] == "unauthorized"
            assert "lenslink token" in resp.error["message"]
    # nothing happened: no write, nothing queued, no rebuild
    assert {p.name: p.read_bytes() for p in vault.glob("*.md")} == before
    assert len(daemon.service.queue) == 0 and daemon.service._rebuild is False
    assert daemon.state.batches == batches
    for method, path, body in PROTECTED:  # the same requests with the token go through
        resp = api.request(method, path, body)
        assert resp.status == 200, (path, resp.raw)


def test_health_needs_no_token(daemon):
    resp = daemon.api.get("/v1/health", token=None)
    assert resp.status == 200 and resp.json["ok"] is True and resp.json["version"]
    assert resp.headers["content-type"] == "application/json; charset=utf-8"


def test_token_file_is_private_and_printed_by_the_cli(tmp_path):
    token = load_token()
    path = token_path()
    assert path.parent == Path(os.environ["LENSLINK_DATA_DIR"]) and path.name == "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32 and load_token() == token  # stable across calls
    result = CliRunner().invoke(main, ["token"])
    assert result.exit_code == 0 and result.output == token + "\n"


def _load_token_after(barrier, results) -> None:
    barrier.wait()
    results.put(load_token())


def test_processes_creating_the_token_at_once_all_get_the_one_in_the_file(tmp_path, monkeypatch):
    """Two daemons started together on a new install (two vaults at login): neither may
    keep a token that the other overwrote in the file."""
    ctx = multiprocessing.get_context("fork")  # the children inherit LENSLINK_DATA_DIR
    for round_ in range(10):
        monkeypatch.setenv("LENSLINK_DATA_DIR", str(tmp_path / str(round_)))
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_load_token_after, args=(barrier, results)) for _ in range(6)]
        for proc in procs:
            proc.start()
        tokens = [results.get(timeout=WAIT) for _ in procs]
        for proc in procs:
            proc.join(WAIT)
        assert set(tokens) == {load_token(create=False)}, f"round {round_}"


def test_the_daemon_uses_the_token_of_lenslink_token(vault, serve_process):
    printed = CliRunner().invoke(main, ["token"]).output.strip()
    api = serve_process(vault).wait_serving()
    assert api.token == printed
    assert api.get("/v1/status").status == 200
    assert api.get("/v1/status", token="not-" + printed).status == 401


# -- Host and Origin ----------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example:8765", "evil.example", "localhost.evil.example",
                                  "127.0.0.1.nip.io:8765", "192.168.1.10:8765", ""])
def test_non_loopback_host_header_is_refused(daemon, host):
    for path in ("/v1/health", "/v1/status"):
        resp = daemon.api.get(path, headers={"Host": host})
        assert resp.status == 403 and resp.error["code"] == "bad_host"


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "LOCALHOST", "127.0.0.1"])
def test_loopback_host_headers_are_accepted(daemon, host):
    resp = daemon.api.get("/v1/status", headers={"Host": host.format(port=daemon.api.port)})
    assert resp.status == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:8080", "null",
                                    "app://obsidian.md.evil.example", "*"])
def test_foreign_origins_are_refused(daemon, vault, origin):
    before = (vault / "bread-0.md").read_bytes()
    for method, path, body in PROTECTED:
        resp = daemon.api.request(method, path, body, headers={"Origin": origin})
        assert resp.status == 403 and resp.error["code"] == "bad_origin", path
        assert "access-control-allow-origin" not in resp.headers
    resp = daemon.api.request("OPTIONS", "/v1/status", token=None, headers={"Origin": origin})
    assert resp.status == 403 and "access-control-allow-origin" not in resp.headers
    assert (vault / "bread-0.md").read_bytes() == before


def test_obsidian_origin_is_allowed_by_name_never_wildcard(daemon):
    resp = daemon.api.get("/v1/status", headers={"Origin": OBSIDIAN_ORIGIN})
    assert resp.status == 200
    assert resp.headers["access-control-allow-origin"] == "app://obsidian.md"
    assert resp.headers["vary"] == "Origin"
    preflight = daemon.api.request("OPTIONS", "/v1/write", token=None,
                                   headers={"Origin": OBSIDIAN_ORIGIN,
                                            "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204 and preflight.raw == b""
    assert preflight.headers["access-control-allow-origin"] == "app://obsidian.md"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    # errors carry the header too, so the plugin can read them
    error = daemon.api.get("/v1/status", token=None, headers={"Origin": OBSIDIAN_ORIGIN})
    assert error.status == 401 and error.headers["access-control-allow-origin"] == OBSIDIAN_ORIGIN
    # no Origin (curl, scripts): no CORS headers at all
    plain = daemon.api.get("/v1/status")
    assert plain.status == 200 and "access-control-allow-origin" not in plain.headers
    for resp in (resp, preflight, error, plain):
        assert resp.headers.get("access-control-allow-origin") != "*"


# -- paths ----------------------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path, vault):
    """Files outside the vault that a path trick could reach, with atime older than mtime
    (so that, on relatime mounts too, any read would move atime)."""
    files = {"x": tmp_path / "x.md", "secret": tmp_path / "outside" / "secret.md",
             "passwd": tmp_path / "outside" / "passwd"}
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
        path.write_text("outside the vault\n", encoding="utf-8")
        st = path.stat()
        os.utime(path, ns=(st.st_mtime_ns - 3_600_000_000_000, st.st_mtime_ns))
    (vault / "link.md").symlink_to(files["secret"])
    (vault / "linkdir").symlink_to(files["secret"].parent, target_is_directory=True)
    (vault / "notes").mkdir()
    return files


def _fingerprint(paths):
    """(atime, mtime, size) without reading: a read of ours would move atime."""
    return {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns, p.stat().st_size) for p in paths}


BAD_PATHS = ["../x.md", "/etc/passwd", "notes/../../x.md", "a.txt", "link.md",
             "linkdir/secret.md", "linkdir/passwd", "{outside}/secret.md", "..\\x.md",
             ".obsidian/app.md", "", "bread-0.md\x00.txt"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_unsafe_paths_are_refused_and_never_touched(outside, daemon, vault, bad):
    bad = bad.replace("{outside}", str(outside["secret"].parent))
    fingerprint = _fingerprint(outside.values())
    notes = {p.name: p.read_bytes() for p in vault.glob("*.md") if not p.is_symlink()}
    for method, path, body in [("GET", f"/v1/related?path={quote(bad)}", None),
                               ("GET", f"/v1/block?path={quote(bad)}", None),
                               ("POST", "/v1/write", {"path": bad}),
                               ("POST", "/v1/reindex", {"path": bad})]:
        resp = daemon.api.request(method, path, body)
        assert 400 <= resp.status < 500, (path, body, resp.status, resp.raw)
        assert resp.error["code"] in ("UnsafePathError", "bad_request"), resp.raw
    assert len(daemon.service.queue) == 0
    assert _fingerprint(outside.values()) == fingerprint  # neither read nor written
    assert all(p.read_bytes() == b"outside the vault\n" for p in outside.values())
    assert {p.name: p.read_bytes() for p in vault.glob("*.md") if not p.is_symlink()} == notes


def test_atime_check_can_see_a_read(outside):
    """The fingerprint above would notice a read (else the atime part proves nothing)."""
    before = _fingerprint([outside["x"]])
    outside["x"].read_bytes()
    if outside["x"].stat().st_atime_ns == before[outside["x"]][1]:
        pytest.skip("this filesystem does not update atime on read (noatime)")
    assert _fingerprint([outside["x"]]) != before


# -- malformed requests ------------------------------------------------------------------------
def test_malformed_requests_get_json_errors_and_the_daemon_survives(daemon, vault):
    api = daemon.api
    big = json.dumps({"path": "bread-0.md", "pad": "x" * MAX_BODY}).encode()
    resp = api.request("POST", "/v1/write", raw=big)
    assert resp.status == 413 and resp.error["code"] == "too_large"
    assert START.encode() not in (vault / "bread-0.md").read_bytes()

    resp = api.request("POST", "/v1/write", raw=b'{"path": "bread-0.md",')
    assert resp.status == 400 and resp.error["code"] == "bad_json"
    assert "not valid JSON" in resp.error["message"]
    resp = api.request("POST", "/v1/write", raw=b'\xff\xfe{')
    assert resp.status == 400 and resp.error["code"] == "bad_json"
    resp = api.request("POST", "/v1/write", raw=b'["bread-0.md"]')
    assert resp.status == 400 and "JSON object" in resp.error["message"]
    resp = api.request("POST", "/v1/write", raw=b"{}")
    assert resp.status == 400 and "path" in resp.error["message"]
    resp = api.request("POST", "/v1/write", raw=b"{}", headers={"Content-Length": "abc"})
    assert resp.status == 400

    for path in ("/v1/nothing", "/v2/status", "/", "/v1/status/extra", "/v1"):
        resp = api.get(path)
        assert resp.status == 404 and resp.error["code"] == "not_found"

    for method, path in [("POST", "/v1/status"), ("GET", "/v1/write"), ("DELETE", "/v1/related"),
                         ("PUT", "/v1/block"), ("PATCH", "/v1/rebuild"), ("POST", "/v1/health")]:
        resp = api.request(method, path, {} if method != "GET" else None)
        assert resp.status == 405 and resp.error["code"] == "method_not_allowed", (method, path)

    for query in ("path=bread-0.md&top=0", "path=bread-0.md&top=abc", "path=bread-0.md&top=101",
                  "path=bread-0.md&lens=nope", "path=", ""):
        resp = api.get(f"/v1/related?{query}")
        assert resp.status == 400, (query, resp.raw)
    resp = api.get("/v1/related?path=no-such-note.md")
    assert resp.status == 404 and resp.error["code"] == "NotFound"

    # raw garbage on the socket
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
        sock.sendall(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n")
        sock.recv(4096)

    health = api.get("/v1/health")
    assert health.status == 200 and health.json["ok"] is True
    assert api.get("/v1/status").status == 200


# -- what the endpoints answer -------------------------------------------------------------------
def test_lenses_lists_the_vault_lenses(daemon):
    lenses = daemon.api.ok("GET", "/v1/lenses")["lenses"]
    assert [l["name"] for l in lenses] == ["topic", "project", "daily"]
    for lens in lenses:
        assert set(lens) >= {"name", "description", "template", "prefix", "top_k", "min_score",
                             "source", "candidates"}
        assert isinstance(lens["top_k"], int) and lens["description"]


def test_related_returns_ranked_results_with_reasons(daemon):
    answer = daemon.api.ok("GET", "/v1/related?path=bread-0.md&top=7")
    assert answer["note"] == "bread-0.md" and answer["lens"] == "topic"
    related = answer["related"]
    assert len(related) == 7 and "bread-0.md" not in {r["path"] for r in related}
    scores = [r["score"] for r in related]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for r in related:
        assert r["score_kind"] in ("probability", "percentile")
        assert isinstance(r["linked"], bool) and r["reason"]["passage"]
        assert r["title"] == Path(r["path"]).stem
    by_path = {r["path"]: r for r in related}
    assert by_path["bread-4.md"]["linked"] is True  # bread-0 links to it
    assert [p for p, r in by_path.items() if r["linked"]] == ["bread-4.md"]
    assert related[0]["path"] == "bread-4.md"  # same topic and linked: first
    assert "bread" in by_path["bread-4.md"]["reason"]["passage"]

    top2 = daemon.api.ok("GET", "/v1/related?path=bread-0.md&top=2")
    assert top2["note"] == "bread-0.md" and top2["related"] == related[:2]
    daily = daemon.api.ok("GET", "/v1/related?path=bread-0.md&lens=daily")
    assert daily["lens"] == "daily" and daily["related"] == []  # not a daily note


def test_block_and_write_change_only_the_block(daemon, vault):
    block = daemon.api.ok("GET", "/v1/block?path=garden-1.md")
    assert block["path"] == "garden-1.md"
    text = block["block"]
    assert text.startswith(START + "\n") and text.endswith(END + "\n")
    assert block["block_hash"] == hashlib.sha256(text.encode()).hexdigest()
    related = daemon.api.ok("GET", "/v1/related?path=garden-1.md")["related"]
    assert [line for line in text.splitlines() if line.startswith("- [[")][:len(related)] == \
        [f"- [[{Path(r['path']).stem}]]" for r in related]

    original = (vault / "garden-1.md").read_text(encoding="utf-8")
    assert daemon.api.ok("POST", "/v1/write", {"path": "garden-1.md"})["results"] == \
        [{"path": "garden-1.md", "status": "written", "detail": ""}]
    written = (vault / "garden-1.md").read_text(encoding="utf-8")
    assert remove_block(written) == original
    span = find_block(written)
    assert written[span.start:span.end] == text
    assert daemon.api.ok("POST", "/v1/write", {"path": "garden-1.md"})["results"][0]["status"] \
        == "unchanged"
    assert (vault / "garden-1.md").read_text(encoding="utf-8") == written
    assert daemon.api.post("/v1/write", {"path": "garden-1.md", "remove": "yes"}).status == 400
    assert daemon.api.ok("POST", "/v1/write", {"path": "garden-1.md", "remove": True})["results"] \
        == [{"path": "garden-1.md", "status": "removed", "detail": ""}]
    assert (vault / "garden-1.md").read_text(encoding="utf-8") == original


def test_reindex_queues_the_note_and_resyncs_it(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault, watch=False)  # only reindex can tell it about the edit
    with open(vault / "music-2.md", "a", encoding="utf-8") as f:
        f.write("theremin solo\n")
    batches = daemon.state.batches

    def passage():
        related = daemon.api.ok("GET", "/v1/related?path=music-6.md&top=100")["related"]
        return next(r["reason"]["passage"] for r in related if r["path"] == "music-2.md")
    assert "theremin" not in passage()
    assert daemon.api.ok("POST", "/v1/reindex", {"path": "music-2.md"}) == {"queued": "music-2.md"}
    wait_for(lambda: daemon.state.batches > batches and "theremin" in passage(),
             message="the reindexed note")
    assert any("theremin" in t for t in fake_embedder.texts)


def test_reindex_refuses_what_is_no_note_and_still_syncs_a_deletion(vault, fake_embedder,
                                                                     start_daemon):
    (vault / ".lenslink.toml").write_text('exclude = ["drafts/"]\n', encoding="utf-8")
    daemon = start_daemon(vault, watch=False)
    missing = daemon.api.post("/v1/reindex", {"path": "topics/Nope.md"})
    assert (missing.status, missing.error["code"]) == (404, "NotFound")
    assert missing.error["message"] == "no note 'topics/Nope.md' in the vault or in the index"
    excluded = daemon.api.post("/v1/reindex", {"path": "drafts/x.md"})
    assert (excluded.status, excluded.error["code"]) == (400, "UnsafePathError")
    assert "excluded by `exclude` in .lenslink.toml" in excluded.error["message"]
    assert daemon.api.post("/v1/reindex", {"path": "notes.txt"}).status == 400
    assert len(daemon.service.queue) == 0

    (vault / "music-2.md").unlink()  # gone from disk, still in the index: its deletion syncs
    batches = daemon.state.batches
    assert daemon.api.ok("POST", "/v1/reindex", {"path": "music-2.md"}) == {"queued": "music-2.md"}
    daemon.wait_batches(batches)
    assert daemon.api.ok("GET", "/v1/status")["notes"] == 7
    gone = daemon.api.get("/v1/related?path=music-2.md")
    assert gone.status == 404
    assert daemon.api.post("/v1/reindex", {"path": "music-2.md"}).status == 404


def test_rebuild_shows_progress_and_returns_to_ready(daemon):
    service = daemon.service
    calls = []
    progress = service._progress

    def slow_progress(stage, done, total):  # slow enough for status to see it
        calls.append((stage, done, total))
        progress(stage, done, total)
        time.sleep(0.05)
    service._progress = slow_progress
    batches = daemon.state.batches
    assert daemon.api.ok("POST", "/v1/rebuild") == {"rebuild": "started"}
    seen = []

    def rebuilt():
        status = daemon.api.ok("GET", "/v1/status")
        seen.append((status["phase"], status["progress"]))
        return daemon.state.batches > batches and status["phase"] == "ready"
    wait_for(rebuilt, interval=0.01, message="the rebuild")
    indexing = [p for phase, p in seen if phase == "indexing" and p]
    assert indexing, seen
    assert all(set(p) == {"stage", "done", "total"} and p["done"] <= p["total"] for p in indexing)
    assert ("read", 8, 8) in calls  # every note was read again
    final = daemon.api.ok("GET", "/v1/status")
    assert final["progress"] is None and final["notes"] == 8 and final["last_error"] is None


def test_status_reports_notes_queue_embedder_errors_and_problems(vault, fake_embedder,
                                                                start_daemon):
    (vault / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody text\n", encoding="utf-8")
    daemon = start_daemon(vault)
    status = daemon.api.ok("GET", "/v1/status")
    assert status["notes"] == 9 and status["queue"] == 0 and status["phase"] == "ready"
    assert status["embedder"] == fake_embedder.id and status["last_error"] is None
    assert status["embedded_texts"] == status["texts"] == 9
    assert status["write_policy"] == "manual" and status["vault"] == str(vault.resolve())
    assert list(status["problems"]) == ["broken.md"]
    assert "frontmatter" in status["problems"]["broken.md"][0]
    assert {l["name"] for l in status["lenses"]} == {"topic", "project", "daily"}


# -- the docs match the server ------------------------------------------------------------------
DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_describe_every_endpoint_as_served(daemon):
    spec = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))
    served = {(method, path) for path, (method, _, _) in ROUTES.items()}
    assert {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} == served
    api_md = (DOCS / "api.md").read_text(encoding="utf-8")
    for path, (method, _, needs_token) in ROUTES.items():
        operation = spec["paths"][path][method.lower()]
        assert (operation.get("security", spec["security"]) != []) == needs_token, path
        assert f"### {method} {path}" in api_md and f"| {method} | `{path}" in api_md
        assert f"{daemon.api.host}:8765{path}" in api_md  # a curl example for each

    schemas = spec["components"]["schemas"]
    status = daemon.api.ok("GET", "/v1/status")
    assert set(schemas["Status"]["properties"]) == set(status)
    assert set(schemas["LensStatus"]["properties"]) == set(status["lenses"][0])
    answer = daemon.api.ok("GET", "/v1/related?path=bread-0.md")
    assert set(schemas["RelatedList"]["properties"]) == set(answer)
    related = answer["related"][0]
    assert set(schemas["Related"]["properties"]) == set(related)
    assert set(schemas["Related"]["properties"]["reason"]["properties"]) <= set(related["reason"])
    lens = daemon.api.ok("GET", "/v1/lenses")["lenses"][0]
    assert set(schemas["Lens"]["properties"]) == set(lens)
    block = daemon.api.ok("GET", "/v1/block?path=bread-0.md")
    assert set(schemas["Block"]["properties"]) == set(block)
    error = daemon.api.get("/v1/status", token=None).json
    assert set(schemas["Error"]["properties"]) == set(error)
    assert set(schemas["Error"]["properties"]["error"]["properties"]) == set(error["error"])
