"""The watcher on real files: a real watchdog observer on a tmp vault, the daemon's worker,
the API answering from what was synced. Every wait polls a condition with a timeout."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from collections import Counter

import pytest

from conftest import write_notes
from daemon_helpers import TOPICS, make_notes, note_text, start_daemon, vault, wait_for  # noqa: F401
from lenslink.watcher import RESCAN, ChangeQueue, VaultEventHandler
from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileClosedEvent,
                             FileClosedNoWriteEvent, FileCreatedEvent, FileDeletedEvent,
                             FileModifiedEvent, FileMovedEvent, FileOpenedEvent)


def related_paths(api, path: str):
    """Every note the topic lens relates to `path` (None when the note is unknown)."""
    resp = api.get(f"/v1/related?path={path}&top=100")
    if resp.status == 404:
        return None
    assert resp.status == 200, resp.raw
    return {r["path"]: r for r in resp.json["related"]}


def indexed(api, anchor: str = "travel-3.md") -> set[str]:
    """Every note the daemon has indexed: `anchor` and all it relates to (top 100)."""
    return set(related_paths(api, anchor)) | {anchor}


def record_puts(daemon) -> list[tuple[str, ...]]:
    """Record every `put` on the daemon's change queue (what the handler let through)."""
    seen: list[tuple[str, ...]] = []
    put = daemon.service.queue.put

    def recording_put(*paths):
        seen.append(paths)
        put(*paths)

    daemon.service.queue.put = recording_put
    return seen



def test_create_modify_delete_and_rename_are_picked_up(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault)
    api = daemon.api
    assert api.ok("GET", "/v1/status")["notes"] == 8

    (vault / "garden-new.md").write_text(note_text("garden", 99), encoding="utf-8")
    wait_for(lambda: related_paths(api, "garden-new.md"), message="the created note")
    assert api.ok("GET", "/v1/status")["notes"] == 9
    assert "garden-new.md" in related_paths(api, "garden-1.md")

    with open(vault / "bread-0.md", "a", encoding="utf-8") as f:
        f.write("zebrafish appear here\n")
    wait_for(lambda: "zebrafish" in related_paths(api, "bread-4.md")["bread-0.md"]["reason"]["passage"],
             message="the modified note's new text")
    assert any("zebrafish" in t for t in fake_embedder.texts)

    (vault / "music-2.md").unlink()  # (no longer listed at once: its file is gone)
    wait_for(lambda: related_paths(api, "music-2.md") is None, message="the deleted note to go")
    assert "music-2.md" not in indexed(api)
    assert api.ok("GET", "/v1/status")["notes"] == 8
    assert "music-2.md" not in related_paths(api, "music-6.md")

    os.rename(vault / "garden-1.md", vault / "garden-renamed.md")
    wait_for(lambda: "garden-renamed.md" in indexed(api) and related_paths(api, "garden-1.md") is None,
             message="the renamed note")
    assert "garden-1.md" not in indexed(api)
    assert "garden-renamed.md" in related_paths(api, "garden-5.md")
    assert api.ok("GET", "/v1/status")["notes"] == 8


def test_editor_style_save_through_a_temp_file_and_rename(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault)
    api = daemon.api
    for temp in ("bread-0.md.tmp.4711", ".bread-0.md.swp", "bread-0.md~"):
        target = vault / "bread-0.md"
        (vault / temp).write_text(note_text("bread", 0, extra=f"saved via {temp[-4:]} kiwifruit"),
                                  encoding="utf-8")
        os.replace(vault / temp, target)
        wait_for(lambda: f"via {temp[-4:]}" in
                 related_paths(api, "bread-4.md")["bread-0.md"]["reason"]["passage"],
                 message=f"the save through {temp}")
    status = api.ok("GET", "/v1/status")
    assert status["notes"] == 8 and status["problems"] == {}


def test_moved_and_deleted_folders_are_rescanned(vault, tmp_path, fake_embedder, start_daemon):
    make_notes(vault, 3, folder="old/")  # bread-0, garden-1, music-2 under old/
    outside = tmp_path / "outside"
    make_notes(outside, 2, folder="incoming/")
    (vault / "archive").mkdir()
    daemon = start_daemon(vault)
    api = daemon.api
    puts = record_puts(daemon)
    assert "old/garden-1.md" in indexed(api)

    os.rename(vault / "old", vault / "archive" / "old")
    wait_for(lambda: any(RESCAN in p for p in puts), message="a rescan request")
    moved = {"archive/old/bread-0.md", "archive/old/garden-1.md", "archive/old/music-2.md"}
    wait_for(lambda: moved <= indexed(api), message="the moved folder")
    assert api.ok("GET", "/v1/status")["notes"] == 11

    os.rename(outside / "incoming", vault / "incoming")  # moved in from outside the vault
    wait_for(lambda: {"incoming/bread-0.md", "incoming/garden-1.md"} <= indexed(api),
             message="the folder moved in")
    assert api.ok("GET", "/v1/status")["notes"] == 13

    shutil.rmtree(vault / "archive")
    # status counts the store, which is written before the ranking is loaded again (a
    # full load in a vault this small, after 11 changed notes): wait for both
    # (a note whose file is gone is never listed, so ask for one of them: 404 once unloaded)
    wait_for(lambda: api.ok("GET", "/v1/status")["notes"] == 10 and
             related_paths(api, "archive/old/bread-0.md") is None, message="the deleted folder")
    assert not any(p.startswith("archive/") for p in indexed(api))
    assert api.ok("GET", "/v1/status")["notes"] == 10


def test_ignored_paths_never_trigger_a_batch(tmp_path, fake_embedder, start_daemon):
    vault = tmp_path / "vault"
    (vault / "templates").mkdir(parents=True)
    make_notes(vault, 4)
    (vault / ".lenslink.toml").write_text('exclude = ["templates/**", "private/*.md"]\n',
                                          encoding="utf-8")
    daemon = start_daemon(vault, debounce=0.3)  # the sentinel's events make exactly one batch
    puts = record_puts(daemon)
    batches = daemon.state.batches
    fake_embedder.reset_counts()

    ignored = {
        ".obsidian/workspace.json": "{}",
        ".obsidian/plugins/x/notes.md": "plugin data",
        ".trash/old note.md": "deleted by Obsidian",
        ".hidden/secret.md": "a dot-folder",
        ".dotnote.md": "a hidden note",
        "pictures/photo.png": "\x89PNG",
        "readme.txt": "not Markdown",
        "notes.MD.bak": "a backup",
        "templates/daily.md": "excluded by glob",
        "private/diary.md": "excluded by glob",
        ".bread-0.md.abc123.lenslink.tmp": "our own temp file",
        "bread-0.md.lenslink.tmp": "our own temp file",
    }
    for rel, text in ignored.items():
        path = vault / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    os.rename(vault / ".trash/old note.md", vault / ".trash/older.md")
    os.rename(vault / "readme.txt", vault / "readme2.txt")
    (vault / ".trash/older.md").unlink()
    (vault / ".obsidian/sub").mkdir()
    os.rename(vault / ".obsidian/sub", vault / ".obsidian/sub2")
    (vault / ".obsidian/sub2").rmdir()
    (vault / "bread-0.md").read_bytes()  # opened / closed_no_write on a real note

    # A barrier: events arrive in order, so once this note is queued, every event
    # above has been handled.
    (vault / "sentinel.md").write_text(note_text("travel", 7), encoding="utf-8")
    wait_for(lambda: daemon.state.batches > batches and len(daemon.service.queue) == 0,
             message="the sentinel's batch")
    assert set(puts) == {("sentinel.md",)}
    assert daemon.state.batches == batches + 1
    assert [t for t in fake_embedder.texts if "travel" not in t] == []
    assert daemon.api.ok("GET", "/v1/status")["notes"] == 5


def test_a_burst_of_200_writes_is_one_batch_embedded_once(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault, debounce=0.2)
    batches = daemon.state.batches
    fake_embedder.reset_counts()
    written = {}
    for i in range(200):
        written[f"burst/n{i}.md"] = note_text(sorted(TOPICS)[i % 4], i, extra=f"burst{i}")
        write_notes(vault, {f"burst/n{i}.md": written[f"burst/n{i}.md"]})
    wait_for(lambda: daemon.api.ok("GET", "/v1/status")["notes"] == 208
             and len(daemon.service.queue) == 0 and daemon.state.phase == "ready",
             message="200 new notes indexed")
    assert daemon.state.batches - batches <= 3
    counts = Counter(fake_embedder.texts)
    assert len(counts) == 200 and set(counts.values()) == {1}
    for rel in written:  # each new note's own text was embedded
        assert sum(bool(re.search(rf"\bburst{rel[7:-3]}\b", t)) for t in counts) == 1, rel


def test_repeated_saves_become_one_batch_after_the_quiet_period(vault, fake_embedder,
                                                               start_daemon):
    debounce = 0.4
    daemon = start_daemon(vault, debounce=debounce)
    batches, synced = daemon.state.batches, daemon.state.last_sync
    fake_embedder.reset_counts()
    path = vault / "music-2.md"
    last = 0.0
    for i in range(20):  # Obsidian saves while typing: every 0.05 s for 1 s
        path.write_text(note_text("music", 2, extra=f"draft{i}"), encoding="utf-8")
        last = time.time()
        time.sleep(0.05)
        assert daemon.state.batches == batches, f"a batch ran during the saves (save {i})"
    wait_for(lambda: daemon.state.batches > batches and daemon.state.phase == "ready",
             message="the batch after the saves")
    assert daemon.state.batches == batches + 1
    assert daemon.state.last_sync >= last + debounce and daemon.state.last_sync > synced
    drafts = [t for t in fake_embedder.texts if "draft" in t]
    assert len(drafts) == 1 and "draft19" in drafts[0]


def test_our_own_write_does_not_re_embed(vault, fake_embedder, start_daemon):
    daemon = start_daemon(vault)
    batches = daemon.state.batches
    fake_embedder.reset_counts()
    result = daemon.api.ok("POST", "/v1/write", {"path": "garden-1.md"})
    assert [r["status"] for r in result["results"]] == ["written"]
    data = (vault / "garden-1.md").read_bytes()
    assert b"%% lenslink:start %%" in data

    def synced_our_write():  # the file event of our write has been processed
        row = daemon.service.reader.note("garden-1.md")
        return daemon.state.batches > batches and row.content_hash == hashlib.sha256(data).hexdigest()
    wait_for(synced_our_write, message="the write's file event to be synced")
    assert fake_embedder.calls == 0 and fake_embedder.texts == []


# -- the handler alone, on synthetic events (what watchdog may send) -------------------
def test_handler_translates_events_into_vault_paths(tmp_path):
    root = tmp_path / "v"
    queue = ChangeQueue()
    seen = []
    queue.put = lambda *paths: seen.append(paths)
    wanted = lambda rel: rel.endswith(".md") and not any(p.startswith(".") for p in rel.split("/"))
    handler = VaultEventHandler(root, queue, wanted)
    r = f"{root}/"
    events = [
        (FileCreatedEvent(r + "a.md"), ("a.md",)),
        (FileModifiedEvent(r + "sub/b.md"), ("sub/b.md",)),
        (FileClosedEvent(r + "sub/b.md"), ("sub/b.md",)),
        (FileDeletedEvent(r + "c.md"), ("c.md",)),
        (FileMovedEvent(r + "d.md", r + "e.md"), ("d.md", "e.md")),
        (FileMovedEvent(r + ".x.md.tmp", r + "f.md"), ("f.md",)),   # editor-style save
        (FileMovedEvent(r + "g.md", r + ".trash/g.md"), ("g.md",)),  # Obsidian's delete
        (FileOpenedEvent(r + "a.md"), None),
        (FileClosedNoWriteEvent(r + "a.md"), None),
        (FileCreatedEvent(r + ".obsidian/a.md"), None),
        (FileCreatedEvent(str(tmp_path / "outside.md")), None),
        (FileCreatedEvent(r + "img.png"), None),
        (DirCreatedEvent(r + "newdir"), None),
        (DirMovedEvent(r + "old", r + "new"), (RESCAN,)),
        (DirDeletedEvent(r + "gone"), (RESCAN,)),
        (DirMovedEvent(r + "old", r + ".trash/old"), (RESCAN,)),
        (DirDeletedEvent(r + ".trash/old"), None),
        (DirMovedEvent(r + ".obsidian/a", r + ".obsidian/b"), None),
    ]
    for event, expected in events:
        seen.clear()
        handler.on_any_event(event)
        assert seen == ([expected] if expected else []), event


def test_change_queue_waits_for_quiet_and_wakes():
    queue = ChangeQueue()
    assert queue.wait_batch(quiet=0.05, timeout=0.01) == set()
    queue.put("a.md")
    queue.put("b.md", "a.md")
    assert len(queue) == 2
    start = time.monotonic()
    assert queue.wait_batch(quiet=0.2, timeout=30) == {"a.md", "b.md"}
    assert time.monotonic() - start >= 0.15 and len(queue) == 0
    queue.put("c.md")
    threading.Timer(0.05, queue.wake).start()
    assert queue.wait_batch(quiet=60, timeout=30) == set()  # woken: returns without the batch
    assert len(queue) == 1
