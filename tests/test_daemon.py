"""The daemon: write policies, restarts, a failing embedder, the vault lock, signals and
a crash mid-index. In-process daemons use the counting fake; `lenslink serve` runs in a
subprocess through tests/fake_embedder.py (which registers the fake, then runs the CLI)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from daemon_helpers import (make_notes, note_text, ready_status, serve_process,  # noqa: F401
                            start_daemon, vault, wait_for, WAIT)
from lenslink import config, daemon as daemon_mod
from lenslink.block import END, START, remove_block
from lenslink.errors import ConfigError, EmbedderError
from lenslink.vault import Vault



def indexed_vault(root: Path) -> Path:
    """Index `root` once (as `lenslink index` would), so a daemon starts on a known state."""
    with Vault(root, embedder="fake") as v:
        v.index()
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.md"))}


def record_writes(daemon) -> list[tuple[str, list[str]]]:
    """Record every write the daemon attempts: (path, [statuses])."""
    calls = []
    write = daemon.service.write

    def recording_write(path):
        outcomes = write(path)
        calls.append((path, [o["status"] for o in outcomes]))
        return outcomes

    daemon.service.write = recording_write
    return calls


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- write policies -------------------------------------------------------------------
def test_write_policy_off_refuses_writes(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault, write_policy="off")
    before = snapshot(vault)
    resp = daemon.api.post("/v1/write", {"path": "bread-0.md"})
    assert resp.status == 400
    assert resp.error["code"] == "ConfigError" and "write-back is off" in resp.error["message"]
    batches = daemon.state.batches
    append(vault / "garden-1.md", "an edit\n")
    daemon.wait_batches(batches)
    assert daemon.state.pending_writes == {} and daemon.state.written == 0
    assert {k: v for k, v in snapshot(vault).items() if k != "garden-1.md"} == \
        {k: v for k, v in before.items() if k != "garden-1.md"}
    assert START.encode() not in (vault / "garden-1.md").read_bytes()


def test_write_policy_manual_writes_only_on_request(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault, write_policy="manual")
    assert daemon.state.pending_writes == {}
    batches = daemon.state.batches
    append(vault / "garden-1.md", "an edit\n")
    daemon.wait_batches(batches)
    assert daemon.state.pending_writes == {}  # auto would have scheduled garden-1.md here
    assert not any(START.encode() in data for data in snapshot(vault).values())
    result = daemon.api.ok("POST", "/v1/write", {"path": "garden-1.md"})
    assert result == {"results": [{"path": "garden-1.md", "status": "written", "detail": ""}]}
    assert [k for k, v in snapshot(vault).items() if START.encode() in v] == ["garden-1.md"]


def test_write_policy_auto_writes_only_the_edited_note_once_quiet(vault, fake_embedder,
                                                                  start_daemon):
    daemon = start_daemon(indexed_vault(vault), write_policy="auto", quiet=0.2)
    assert daemon.state.pending_writes == {}  # an unchanged, indexed vault: nothing to write
    writes = record_writes(daemon)
    before = snapshot(vault)

    append(vault / "bread-0.md", "more about rye\n")
    edited = (vault / "bread-0.md").read_text(encoding="utf-8")
    wait_for(lambda: writes, message="the auto write")
    assert writes == [("bread-0.md", ["written"])]
    text = (vault / "bread-0.md").read_text(encoding="utf-8")
    assert START in text and END in text and remove_block(text) == edited
    after = snapshot(vault)
    assert {k: v for k, v in after.items() if k != "bread-0.md"} == \
        {k: v for k, v in before.items() if k != "bread-0.md"}

    def own_write_synced():
        row = daemon.service.reader.note("bread-0.md")
        return row.content_hash == sha(after["bread-0.md"]) and len(daemon.service.queue) == 0 \
            and daemon.state.phase == "ready"
    wait_for(own_write_synced, message="our own write to be synced")
    assert daemon.state.pending_writes == {}  # our own write is not an edit

    # An edit that leaves the block as it is: the write is tried and skipped.
    data = after["bread-0.md"].replace(b"more about rye\n", b"more about rye!!!\n")
    (vault / "bread-0.md").write_bytes(data)
    stat = os.stat(vault / "bread-0.md")
    wait_for(lambda: len(writes) == 2, message="the second auto write attempt")
    assert writes[1] == ("bread-0.md", ["unchanged"])
    again = os.stat(vault / "bread-0.md")
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert (vault / "bread-0.md").read_bytes() == data and daemon.state.written == 1


def test_an_edit_stored_by_a_sync_that_failed_later_still_gets_its_auto_write(
        vault, fake_embedder, start_daemon, monkeypatch):
    # the edit is committed, then the sync fails (embedding): the next sync finds nothing
    # new to store, yet the edited note is refreshed and written once quiet
    daemon = start_daemon(indexed_vault(vault), write_policy="auto", quiet=0.2)
    monkeypatch.setattr(daemon_mod, "RETRY_MIN", 0.3)
    writes = record_writes(daemon)
    real = fake_embedder.embed_batch
    failing = [True]

    def embed_batch(texts):
        if failing[0]:
            failing[0] = False
            raise RuntimeError("embedder crashed")
        return real(texts)
    monkeypatch.setattr(fake_embedder, "embed_batch", embed_batch)
    append(vault / "bread-0.md", "more about rye and caraway\n")
    (vault / "bread-new.md").write_text(note_text("bread", 99), encoding="utf-8")  # and a new note
    wait_for(lambda: len(writes) == 2, message="the auto writes after the failed sync")
    assert sorted(writes) == [("bread-0.md", ["written"]), ("bread-new.md", ["written"])]
    assert START in (vault / "bread-0.md").read_text(encoding="utf-8")
    assert "caraway" in daemon.service.vault.ranking().query_texts(
        [daemon.service.vault.ranking().row["bread-0.md"]])[0]


def test_an_auto_write_waiting_for_a_rewrite_is_done_once_it_is_embedded(
        vault, fake_embedder, start_daemon, openai_server, keyless_chat):
    """The edited note's rewrite fails: its block stays as it was (no empty lists); once
    a later sync has rewritten and embedded it, it is written."""
    (vault / ".lenslink.toml").write_text(
        f'[lenses.topic]\n[lenses.topic.rewrite]\nmodel = "gpt-4o-mini"\n'
        f'base_url = "{openai_server.base_url}"\nmax_retries = 0\n', encoding="utf-8")
    with Vault(vault, embedder="fake") as v:
        v.index()
        v.write(["bread-0.md"])
    daemon = start_daemon(vault, write_policy="auto", quiet=0.2)
    writes = record_writes(daemon)
    def block_of(name: str) -> str:
        return (vault / name).read_text(encoding="utf-8").split(START)[1].split(END)[0]
    block = block_of("bread-0.md")
    openai_server.fail_next(500)  # the one request of the next sync (no retries)
    append(vault / "bread-0.md", "more about rye\n")
    wait_for(lambda: writes, message="the auto write attempt")
    assert writes == [("bread-0.md", ["skipped"])]
    assert block_of("bread-0.md") == block
    assert daemon.state.waiting_writes == {"bread-0.md"}
    refused = daemon.api.get("/v1/block?path=bread-0.md")  # what the plugin would splice in
    assert refused.status == 409 and refused.error["code"] == "NotEmbedded"
    assert refused.error["message"].startswith("bread-0.md: not embedded yet under lens topic")
    waiting = daemon.api.ok("GET", "/v1/related?path=bread-0.md")  # what the side pane shows
    assert waiting["related"] == [] and waiting["why_none"].startswith("its text is not embedded yet")
    append(vault / "garden-1.md", "and tomatoes\n")  # a sync that rewrites what waits
    wait_for(lambda: len(writes) == 3, message="the writes after the rewrite")
    assert sorted(writes[1:]) == [("bread-0.md", ["written"]), ("garden-1.md", ["written"])]
    assert daemon.state.waiting_writes == set()
    assert "more about rye" in remove_block((vault / "bread-0.md").read_text(encoding="utf-8"))


def test_auto_does_not_write_while_edits_keep_coming(vault, fake_embedder, start_daemon):
    daemon = start_daemon(indexed_vault(vault), write_policy="auto", quiet=0.3, debounce=0.1)
    writes = record_writes(daemon)
    path = vault / "music-2.md"
    for i in range(30):  # typing for 1.5 s
        path.write_text(note_text("music", 2, extra=f"typing {i}"), encoding="utf-8")
        time.sleep(0.05)
        assert writes == [] and daemon.state.written == 0, f"written during edit {i}"
    last = path.read_text(encoding="utf-8")
    wait_for(lambda: writes, message="the write after the edits stopped")
    assert writes == [("music-2.md", ["written"])]
    assert remove_block(path.read_text(encoding="utf-8")) == last


def test_auto_write_survives_a_failed_sync(vault, fake_embedder, start_daemon, monkeypatch):
    """An edit whose sync failed (embedder down) still gets its block once a retry works."""
    monkeypatch.setattr(daemon_mod, "RETRY_MIN", 0.2)
    daemon = start_daemon(indexed_vault(vault), write_policy="auto", quiet=0.2)
    writes = record_writes(daemon)
    fake_embedder.fail_on_call, fake_embedder.fail_with = fake_embedder.calls + 1, EmbedderError
    append(vault / "travel-3.md", "brand new words passport stamps\n")
    wait_for(lambda: writes, message="the auto write after the retry")
    assert writes == [("travel-3.md", ["written"])]
    assert daemon.state.last_error is None


def test_a_failing_auto_write_does_not_stop_the_worker(vault, fake_embedder, start_daemon,
                                                      monkeypatch):
    """A scheduled write whose note vanished while the sync failed is logged, and the
    worker keeps going."""
    monkeypatch.setattr(daemon_mod, "RETRY_MIN", 3.0)  # the retry comes after the write is due
    daemon = start_daemon(indexed_vault(vault), write_policy="auto", quiet=1.0)
    tried = []
    write = daemon.service.write
    daemon.service.write = lambda path: (tried.append((path, daemon.state.last_error)), write(path))[1]
    append(vault / "travel-3.md", "an edit\n")
    wait_for(lambda: "travel-3.md" in daemon.state.pending_writes, message="a scheduled write")
    fake_embedder.fail_on_call, fake_embedder.fail_with = fake_embedder.calls + 1, EmbedderError
    batches = daemon.state.batches
    (vault / "travel-3.md").unlink()
    (vault / "new.md").write_text(note_text("travel", 30), encoding="utf-8")
    wait_for(lambda: daemon.state.last_error is not None, message="the failed sync")
    assert daemon.state.batches == batches and tried == []
    wait_for(lambda: tried, message="the due write of the vanished note")
    assert tried[0][0] == "travel-3.md" and tried[0][1] is not None  # tried while failing
    wait_for(lambda: daemon.state.last_error is None and daemon.state.batches > batches,
             message="the retry")
    (vault / "later.md").write_text(note_text("garden", 31), encoding="utf-8")
    wait_for(lambda: daemon.service.reader.note("later.md"), message="the worker to go on")
    assert daemon.service._worker.is_alive()


# -- restart ----------------------------------------------------------------------------
def test_restart_on_an_unchanged_vault_embeds_nothing(vault, fake_embedder, start_daemon):
    first = start_daemon(vault)
    assert fake_embedder.calls > 0 and len(fake_embedder.texts) == 8
    status = first.api.ok("GET", "/v1/status")
    first.stop()
    fake_embedder.reset_counts()
    second = start_daemon(vault)
    assert second.state.last_error is None and second.state.phase == "ready"
    assert fake_embedder.calls == 0 and fake_embedder.texts == []
    again = second.api.ok("GET", "/v1/status")
    assert (again["notes"], again["embedded_texts"]) == (status["notes"], status["embedded_texts"])


def test_a_restarted_daemon_answers_from_its_saved_snapshot_during_the_first_sync(
        vault, fake_embedder, start_daemon, monkeypatch):
    first = start_daemon(vault)
    note = sorted(p.name for p in vault.glob("*.md"))[0]
    expected = first.api.ok("GET", "/v1/related?path=" + note)["related"]
    first.stop()
    release = __import__("threading").Event()
    real_index = Vault.index

    def held(self, *args, **kwargs):  # the first sync waits until the test lets it go
        assert release.wait(WAIT)
        return real_index(self, *args, **kwargs)
    monkeypatch.setattr(Vault, "index", held)
    second = start_daemon(vault, wait_ready=False)
    wait_for(lambda: second.service.vault.loaded, message="the saved snapshot to load")
    assert second.state.phase == "indexing"
    assert second.api.ok("GET", "/v1/related?path=" + note)["related"] == expected
    release.set()
    assert second.service.ready.wait(WAIT)
    assert second.state.phase == "ready" and second.state.last_error is None
    assert second.api.ok("GET", "/v1/related?path=" + note)["related"] == expected


def test_a_daemon_on_an_empty_vault_is_ready_and_indexes_the_first_notes(tmp_path, fake_embedder,
                                                                         start_daemon):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".lenslink.toml").write_text("[lenses.topic]\nmin_score = 0\n", encoding="utf-8")
    daemon = start_daemon(empty)
    assert (daemon.state.phase, daemon.state.last_error) == ("ready", None)
    assert daemon.api.ok("GET", "/v1/status")["notes"] == 0
    batches = daemon.state.batches
    make_notes(empty, 3)
    wait_for(lambda: daemon.api.ok("GET", "/v1/status")["notes"] == 3, message="3 notes indexed")
    daemon.wait_batches(batches)
    found = daemon.api.ok("GET", "/v1/related?path=bread-0.md")["related"]
    assert sorted(r["path"] for r in found) == ["garden-1.md", "music-2.md"]
    assert daemon.state.last_error is None


# -- .lenslink.toml changed while serving ---------------------------------------------------
def test_a_changed_config_is_applied_without_a_restart_and_a_broken_one_is_reported(
        vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault)
    config = vault / ".lenslink.toml"

    def health_config():
        return daemon.api.ok("GET", "/v1/health")["config"]
    before = health_config()
    assert before == Vault(vault).config.fingerprint
    fake_embedder.sleep, calls = 1.0, fake_embedder.calls  # a slow sync: answers meanwhile
    config.write_text('heading = "See also"\n[lenses.topic]\ntop_k = 2\n[lenses.titles]\n'
                      'template = "{title}"\nsource = { globs = ["music-*"] }\n', encoding="utf-8")
    wanted = Vault(vault).config.fingerprint
    assert wanted != before
    wait_for(lambda: fake_embedder.calls > calls, message="the sync with the new lens")
    # while it embeds, every answer still comes from the old config, consistently
    assert daemon.api.ok("GET", "/v1/status")["phase"] == "indexing"
    assert health_config() == before
    assert [lens["name"] for lens in daemon.api.ok("GET", "/v1/lenses")["lenses"]] == \
        ["topic", "project", "daily"]
    assert "## Related notes" in daemon.api.ok("GET", "/v1/block?path=bread-0.md")["block"]
    assert len(daemon.api.ok("GET", "/v1/related?path=bread-0.md")["related"]) == 5
    fake_embedder.sleep = 0.0
    wait_for(lambda: health_config() == wanted, message="the daemon to rank with the new config")
    assert "## See also" in daemon.api.ok("GET", "/v1/block?path=bread-0.md")["block"]
    assert [lens["name"] for lens in daemon.api.ok("GET", "/v1/lenses")["lenses"]] == ["topic", "titles"]
    assert len(daemon.api.ok("GET", "/v1/related?path=bread-0.md")["related"]) == 2
    titles = daemon.api.ok("GET", "/v1/related?path=music-2.md&lens=titles")
    assert titles["lens"] == "titles" and titles["related"]
    assert "music-2" in fake_embedder.texts  # the new lens's text was embedded
    none = daemon.api.ok("GET", "/v1/related?path=bread-0.md&lens=titles")
    assert none["related"] == [] and none["why_none"] == "the lens does not apply to it (its `source` filter)"
    assert titles["why_none"] is None

    config.write_text("[lenses.topic\n", encoding="utf-8")  # a typo: reported, nothing changes
    wait_for(lambda: daemon.api.ok("GET", "/v1/status")["config_error"], message="the error")
    assert "not valid TOML" in daemon.api.ok("GET", "/v1/status")["config_error"]
    assert health_config() == wanted
    assert len(daemon.api.ok("GET", "/v1/related?path=bread-0.md")["related"]) == 2

    config.unlink()  # back to the defaults
    defaults = Vault(vault).config.fingerprint
    wait_for(lambda: health_config() == defaults, message="the defaults")
    assert daemon.api.ok("GET", "/v1/status")["config_error"] is None
    assert len(daemon.api.ok("GET", "/v1/related?path=bread-0.md")["related"]) > 2


def test_an_unreadable_config_is_reported_and_the_worker_goes_on(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault)
    (vault / ".lenslink.toml").mkdir()  # stat works, reading fails (as when it is replaced)
    wait_for(lambda: daemon.api.ok("GET", "/v1/status")["config_error"], message="the error")
    assert "cannot read" in daemon.api.ok("GET", "/v1/status")["config_error"]
    batches = daemon.state.batches
    append(vault / "music-2.md", "theremin solo\n")
    daemon.wait_batches(batches)
    assert any("theremin" in t for t in fake_embedder.texts)


def test_notes_a_changed_config_includes_are_not_written_by_auto(vault, fake_embedder, start_daemon):
    (vault / ".lenslink.toml").write_text('exclude = ["drafts/**"]\n', encoding="utf-8")
    draft = vault / "drafts" / "bread-9.md"
    draft.parent.mkdir()
    draft.write_text(note_text("bread", 9), encoding="utf-8")
    indexed_vault(vault)
    before = snapshot(vault)
    daemon = start_daemon(vault, write_policy="auto", quiet=0.1)
    (vault / ".lenslink.toml").write_text('embedder = "other"\n', encoding="utf-8")
    wanted = Vault(vault, embedder="fake").config
    wait_for(lambda: daemon.api.ok("GET", "/v1/status")["notes"] == 9, message="the draft indexed")
    assert "restart the daemon to switch" in daemon.api.ok("GET", "/v1/status")["config_error"]
    time.sleep(0.5)  # three times `quiet`: an auto write would have happened
    daemon.wait_idle()
    assert snapshot(vault) == before and not daemon.state.pending_writes
    assert wanted.exclude == ()
    append(draft, "more sourdough\n")  # an edit of it is an edit: written
    wait_for(lambda: START in draft.read_text(encoding="utf-8"), message="the draft's block")


# -- a failing embedder -------------------------------------------------------------------
def test_failing_embedder_keeps_notes_pending_then_catches_up(vault, openai_server,
                                                              start_daemon, monkeypatch):
    monkeypatch.setattr(daemon_mod, "RETRY_MIN", 0.1)
    monkeypatch.setattr(daemon_mod, "RETRY_MAX", 0.4)
    (vault / ".lenslink.toml").write_text(
        'embedder = "openai"\n[embedder_options]\nmodel = "text-embedding-3-small"\n'
        f'base_url = "{openai_server.base_url}"\nmax_retries = 1\nretry_base_delay = 0.001\n'
        'timeout = 20\n', encoding="utf-8")
    openai_server.fail_next(500, times=1_000_000)
    daemon = start_daemon(vault, embedder=None)
    status = daemon.api.ok("GET", "/v1/status")
    assert status["phase"] == "error" and "500" in status["last_error"]
    assert daemon.state.retry_at is not None  # a retry is scheduled
    assert status["notes"] == 8 and status["texts"] == 8 and status["embedded_texts"] == 0

    db = sqlite3.connect(daemon.service.vault.db_path)
    try:
        assert db.execute("SELECT count(DISTINCT text_hash) FROM chunks WHERE lens='topic'"
                          ).fetchone()[0] == 8
        assert db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 0
    finally:
        db.close()

    # it keeps retrying by itself, with backoff
    wait_for(lambda: len(openai_server.requests_to("/embeddings")) >= 6, message="retries")
    (vault / "late.md").write_text(note_text("garden", 40), encoding="utf-8")
    wait_for(lambda: daemon.api.ok("GET", "/v1/status")["texts"] == 9, message="the new note read")
    assert daemon.api.ok("GET", "/v1/status")["embedded_texts"] == 0

    with openai_server._lock:  # the server recovers
        openai_server._plan.clear()
    status = wait_for(lambda: (s := daemon.api.ok("GET", "/v1/status"))["phase"] == "ready" and s,
                      message="the daemon to catch up")
    assert status["last_error"] is None and status["embedded_texts"] == status["texts"] == 9
    related = daemon.api.ok("GET", "/v1/related?path=late.md&top=100")["related"]
    assert {r["path"] for r in related} == set(snapshot(vault)) - {"late.md"}


def test_serve_verbose_logs_every_batch_and_write(vault, serve_process):
    indexed_vault(vault)
    daemon = serve_process(vault, "-v", "--write", "auto", "--quiet", "0.2")
    ready_status(daemon.wait_serving())
    wait_for(lambda: "synced the vault: 0 stored, 0 removed, 0 texts embedded" in daemon.stderr,
             message="the first sync logged")
    (vault / "new.md").write_text(note_text("bread", 20), encoding="utf-8")
    wait_for(lambda: "INFO new.md: block written" in daemon.stderr, message="the auto write logged")
    assert "INFO synced new.md: 1 stored, 0 removed, 1 text embedded" in daemon.stderr
    append(vault / "new.md", "an edit about rye\n")
    wait_for(lambda: daemon.stderr.count("INFO synced new.md: 1 stored") == 2,
             message="the edit logged")
    (vault / "new.md").unlink()
    wait_for(lambda: "INFO synced new.md: 0 stored, 1 removed" in daemon.stderr,
             message="the deletion logged")


# -- the lock, signals, crashes (subprocesses) -------------------------------------------
def test_a_second_daemon_on_the_same_vault_is_refused_until_the_first_dies(vault, serve_process):
    first = serve_process(vault)
    ready_status(first.wait_serving())

    with pytest.raises(ConfigError, match=rf"another lenslink daemon \(pid {first.proc.pid}\) "
                                          "is serving this vault; stop it first"):
        daemon_mod.serve(vault, embedder="fake", port=0)

    second = serve_process(vault)
    assert second.wait_exit() == 1
    assert f"Error: another lenslink daemon (pid {first.proc.pid})" in second.stderr
    assert "Traceback" not in second.stderr

    first.proc.send_signal(signal.SIGKILL)
    first.wait_exit()
    third = serve_process(vault)
    status = ready_status(third.wait_serving())  # the stale lock is taken over
    assert status["notes"] == 8


def test_the_cli_asks_a_running_daemon_and_ranks_alone_without_one(vault, serve_process,
                                                                     monkeypatch):
    """`lenslink related` while `lenslink serve` runs gets the daemon's answer (no ranking
    loaded here); once the daemon is gone (its lock file left behind) it ranks alone."""
    from click.testing import CliRunner

    from lenslink import client
    from lenslink.cli import main

    first = serve_process(vault)
    ready_status(first.wait_serving())
    db = Vault(vault).db_path
    host, port, instance = client.find(db)
    assert (host, port) == ("127.0.0.1", first.port)
    assert first.wait_serving().get("/v1/health").json["instance"] == instance
    expected = first.wait_serving().get("/v1/related?path=bread-0.md").json["related"]

    def no_local_ranking(*args, **kwargs):
        raise AssertionError("ranked locally although a daemon serves the vault")

    with monkeypatch.context() as mp:
        mp.setattr(Vault, "related", no_local_ranking)
        mp.setattr(Vault, "ranking", no_local_ranking)
        result = CliRunner().invoke(main, ["related", str(vault), "bread-0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["related"] == expected and expected

    first.proc.send_signal(signal.SIGKILL)
    first.wait_exit()
    assert client.find(db) is None  # the lock file remains, its process is gone
    result = CliRunner().invoke(main, ["related", str(vault), "bread-0", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["path"] for r in json.loads(result.output)["related"]] == [r["path"] for r in expected]


def test_the_cli_does_not_ask_another_process_or_a_daemon_with_an_older_config(vault, serve_process):
    """The token goes only to the daemon the lock file names (same instance id), and only
    when it ranks with the config the CLI reads now."""
    from lenslink import client

    first = serve_process(vault)
    ready_status(first.wait_serving())
    v = Vault(vault)
    assert client.related(v.db_path, v.config, "bread-0.md", None, None)
    lock = v.db_path.with_suffix(v.db_path.suffix + ".lock")
    announced = json.loads(lock.read_text(encoding="utf-8"))
    lock.write_text(json.dumps({**announced, "instance": "someone-else"}), encoding="utf-8")
    assert client.related(v.db_path, v.config, "bread-0.md", None, None) is None
    lock.write_text(json.dumps(announced), encoding="utf-8")
    # another embedder needs a restart: the daemon applies top_k, keeps its embedder and so
    # never answers for this config
    (vault / ".lenslink.toml").write_text('embedder = "other"\n[lenses.topic]\ntop_k = 2\n',
                                          encoding="utf-8")
    changed = Vault(vault)
    assert client.related(changed.db_path, changed.config, "bread-0.md", None, None) is None
    api = first.wait_serving()
    wait_for(lambda: len(api.ok("GET", "/v1/related?path=bread-0.md")["related"]) == 2,
             message="the daemon to apply top_k")
    wait_for(lambda: "restart the daemon to switch" in first.stderr, message="the warning")
    assert client.related(changed.db_path, changed.config, "bread-0.md", None, None) is None
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    assert lock.read_text(encoding="utf-8") == ""  # a clean stop takes the announcement back


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "indexing"])
def test_sigterm_stops_serve_promptly_with_exit_0(vault, serve_process, tmp_path, busy):
    if busy:
        make_notes(vault, 40, folder="more/")
    log = tmp_path / "embedded.log"
    proc = serve_process(vault, env={"FAKE_EMBED_SLEEP": "0.5" if busy else "0",
                                     "FAKE_EMBED_LOG": str(log)})
    api = proc.wait_serving()
    if busy:
        wait_for(lambda: log.exists() and log.read_text().count("\n") >= 4, message="indexing")
        assert api.ok("GET", "/v1/status")["phase"] == "indexing"
    else:
        ready_status(api)
    sent = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(30) == 0
    assert time.monotonic() - sent < 15
    assert "Traceback" not in proc.stderr


def test_kill_9_while_indexing_then_restart_re_embeds_nothing_stored(vault, serve_process,
                                                                   tmp_path):
    make_notes(vault, 40, folder="more/")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    db_path = config.default_db_path(vault.resolve())

    def stored() -> set[str]:
        if not db_path.exists():
            return set()
        db = sqlite3.connect(db_path, timeout=30)
        try:
            return {r[0] for r in db.execute("SELECT text_hash FROM vectors")}
        except sqlite3.OperationalError:  # schema not there yet
            return set()
        finally:
            db.close()

    first = serve_process(vault, env={"FAKE_EMBED_SLEEP": "0.3", "FAKE_EMBED_LOG": str(first_log)})
    first.wait_serving()
    wait_for(lambda: len(stored()) >= 8, message="a few stored vectors")
    first.proc.send_signal(signal.SIGKILL)
    first.wait_exit()

    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        needed = {r[0] for r in db.execute(  # the only lens with sources and candidates
            "SELECT DISTINCT text_hash FROM chunks WHERE lens='topic'")}
    finally:
        db.close()
    kept = stored()
    assert 8 <= len(kept) < 48 and kept <= needed

    second = serve_process(vault, env={"FAKE_EMBED_LOG": str(second_log)})
    status = ready_status(second.wait_serving())
    assert status["notes"] == 48 and status["embedded_texts"] == status["texts"] == 48
    again = set(second_log.read_text().split()) if second_log.exists() else set()
    assert again.isdisjoint(kept)
    assert again | kept == stored() == needed


# -- training in the background -------------------------------------------------------------
def linked_vault(root: Path) -> Path:
    """24 notes in 4 topics, each linking to the next two of its topic (48 links)."""
    notes = make_notes(root, 24)
    by_topic: dict[str, list[str]] = {}
    for rel in sorted(notes):
        by_topic.setdefault(rel.split("-")[0], []).append(rel)
    for rels in by_topic.values():
        for i, rel in enumerate(rels):
            targets = [rels[(i + k) % len(rels)][:-3] for k in (1, 2)]
            append(root / rel, "".join(f"\nSee [[{t}]]." for t in targets) + "\n")
    return root


def test_training_runs_beside_edits_and_its_rankers_are_swapped_in(tmp_path, fake_embedder,
                                                                   start_daemon, monkeypatch, caplog):
    from lenslink import learn
    caplog.set_level("INFO", logger="lenslink.daemon")
    root = linked_vault(tmp_path / "linked")
    release = __import__("threading").Event()
    real_train = learn.train

    def slow_train(*args, **kwargs):
        assert release.wait(60), "the test never released training"
        return real_train(*args, **kwargs)

    monkeypatch.setattr(learn, "train", slow_train)
    # scores are not the point here (this toy's links are not in its notes' words)
    (root / ".lenslink.toml").write_text("[lenses.topic]\nmin_score = 0\n", encoding="utf-8")
    daemon = start_daemon(root, quiet=0.1)
    wait_for(lambda: daemon.state.training, message="training to start")
    # training holds nothing up: an edit is indexed and ranked meanwhile
    before = daemon.state.batches
    (root / "new note.md").write_text(note_text("music", 99), encoding="utf-8")
    daemon.wait_batches(before)
    found = daemon.api.ok("GET", "/v1/related?path=new%20note.md&lens=topic")["related"]
    assert found and found[0]["path"].startswith("music") and daemon.state.training
    assert {l["ranking"] for l in daemon.api.ok("GET", "/v1/status")["lenses"]} == {"unsupervised"}
    release.set()
    wait_for(lambda: not daemon.state.training and daemon.state.last_training, message="training")
    assert "error" not in daemon.state.last_training, daemon.state.last_training
    wait_for(lambda: "learned" in {l["ranking"] for l in daemon.api.ok("GET", "/v1/status")["lenses"]},
             message="the learned rankers to be swapped in")
    found = daemon.api.ok("GET", "/v1/related?path=new%20note.md&lens=topic")["related"]
    assert found[0]["score_kind"] == "probability" and found[0]["path"].startswith("music")
    said = [r.getMessage() for r in caplog.records if r.name == "lenslink.daemon"]
    assert "training the lens rankers in the background (48 links, 0 at the last training)" in said
    assert any(m.startswith("trained in ") and "topic learned" in m for m in said), said


def test_stopping_abandons_training_promptly(tmp_path, fake_embedder, start_daemon, monkeypatch):
    from lenslink import learn
    root = linked_vault(tmp_path / "linked")
    checks = []

    def endless_train(index, view, seed=0, check=None, **kwargs):
        while True:  # a long training that keeps asking whether to go on
            checks.append(1)
            check()
            time.sleep(0.01)

    monkeypatch.setattr(learn, "train", endless_train)
    daemon = start_daemon(root)
    wait_for(lambda: len(checks) > 3, message="training to run")
    start = time.monotonic()
    daemon.stop()
    assert time.monotonic() - start < 10
    assert not daemon.service._trainer.is_alive()
    with Vault(root, embedder="fake") as v:
        assert v.store.models(v.store.get_meta("embedder")) == {}  # nothing half-trained stored


# -- disk full --------------------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["database or disk is full", "attempt to write a readonly database"])
def test_disk_full_is_reported_and_the_daemon_catches_up_when_space_returns(
        vault, fake_embedder, start_daemon, monkeypatch, failure):
    """A full disk, or a database made read-only (e.g. by a backup tool or a remount):
    SQLite refuses the write; the daemon reports it, keeps answering and catches up."""
    from lenslink.store import Store
    full = __import__("threading").Event()
    real_put = Store.put_note

    def put_note(self, *args, **kwargs):
        if full.is_set():
            raise sqlite3.OperationalError(failure)
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(Store, "put_note", put_note)
    monkeypatch.setattr(daemon_mod, "RETRY_MIN", 0.3)
    daemon = start_daemon(vault)
    note = sorted(p.name for p in vault.glob("*.md"))[0]
    full.set()
    (vault / note).write_text(note_text("music", 77, extra="diskfull"), encoding="utf-8")
    wait_for(lambda: daemon.state.last_error and failure in daemon.state.last_error,
             message="the failure to be reported")
    status = daemon.api.ok("GET", "/v1/status")
    assert status["phase"] == "error" and failure in status["last_error"]
    assert daemon.api.ok("GET", "/v1/related?path=" + note)["related"]  # still answering
    full.clear()  # space returns: the next retry stores the edit
    wait_for(lambda: daemon.state.last_error is None and daemon.state.phase == "ready",
             message="the daemon to recover")
    with Vault(vault, embedder="fake") as v:
        assert "diskfull" in v.store.lex_texts([note])[note][0]


def test_rankers_of_an_older_feature_set_are_trained_again(tmp_path, fake_embedder, start_daemon):
    root = linked_vault(tmp_path / "linked")
    with Vault(root, embedder="fake") as v:
        v.index()
        v.train()
        v.store.set_meta("trained_features", "dense,raw")  # as an older lenslink left it
    daemon = start_daemon(root)
    wait_for(lambda: daemon.state.last_training, message="training of the outdated rankers")
    assert "error" not in daemon.state.last_training
    with Vault(root, embedder="fake") as v:
        from lenslink import learn
        assert v.store.get_meta("trained_features") == ",".join(learn.FEATURES)


def test_the_daemon_sweeps_hashes_and_catches_a_change_with_its_mtime_restored(
        vault, fake_embedder, start_daemon, monkeypatch):
    monkeypatch.setattr(daemon_mod, "VERIFY_EVERY", 0.5)
    daemon = start_daemon(vault, watch=False)  # no file events: only the sweep can see it
    note = sorted(p.name for p in vault.glob("*.md"))[0]
    st = (vault / note).stat()
    text = (vault / note).read_text(encoding="utf-8")
    changed = text[:-7] + " swept\n"  # the same size
    assert len(changed.encode()) == len(text.encode())
    (vault / note).write_text(changed, encoding="utf-8")
    os.utime(vault / note, ns=(st.st_atime_ns, st.st_mtime_ns))

    def seen():
        with Vault(vault, embedder="fake") as v:
            return "swept" in v.store.lex_texts([note])[note][0]
    wait_for(seen, message="the hash sweep to read the note")
