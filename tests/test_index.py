"""Incremental indexing into a real SQLite file, with the counting fake embedder.

The fake records every text it embedded, so "embeds nothing" and "re-embeds only these
texts" are checked exactly, not inferred from a summary.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lenslink.notes as notes_mod
from fake_embedder import text_sha
from lenslink.block import END, START
from lenslink.vault import Vault

TESTS = Path(__file__).resolve().parent
PROJECT_PREFIX = "Project this note belongs to: "

NOTES = {
    "topics/Sourdough.md": "---\ntags: [baking]\n---\nRye flour and water, fed daily. See [[Bread]].\n",
    "projects/Bread.md": "Bake a loaf every week with the [[Sourdough]] starter.\n",
    "daily/2026-11-05.md": "Fed the starter. Worked on [[Bread]].\n",
}
# Default lenses: topic and daily share a template, so their texts are the same strings;
# project adds its prefix. Six distinct texts in all.
TOPIC_TEXTS = {
    "topics/Sourdough.md": "Sourdough\nRye flour and water, fed daily. See Bread.",
    "projects/Bread.md": "Bread\nBake a loaf every week with the Sourdough starter.",
    "daily/2026-11-05.md": "2026-11-05\nFed the starter. Worked on Bread.",
}
ALL_TEXTS = set(TOPIC_TEXTS.values()) | {PROJECT_PREFIX + t for t in TOPIC_TEXTS.values()}

BODY_ONLY = '[lenses.body]\ntemplate = "{body}"\n'


def run_index(root: Path, db: Path, **kwargs):
    with Vault(root, db=db, embedder="fake") as vault:
        return vault.index(**kwargs)


def query(db: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def mentions_of(db: Path, path: str) -> dict[str, list[tuple]]:
    """Every row of every table that refers to `path`."""
    return {
        "notes": query(db, "SELECT path FROM notes WHERE path=?", path),
        "chunks": query(db, "SELECT path, lens FROM chunks WHERE path=?", path),
        "links": query(db, "SELECT src, dst FROM links WHERE src=? OR dst=?", path, path),
        "failures": query(db, "SELECT path FROM failures WHERE path=?", path),
        "written": query(db, "SELECT path FROM written WHERE path=?", path),
    }


NOWHERE = {"notes": [], "chunks": [], "links": [], "failures": [], "written": []}


def stored_hashes(db: Path) -> set[str]:
    return {h for (h,) in query(db, "SELECT text_hash FROM vectors")}


def chunk_hashes(db: Path, lens: str | None = None) -> set[str]:
    """Hashes of the stored lens texts (of one lens: chunks of a lens with no source or
    no candidate notes are stored but never embedded)."""
    if lens:
        return {h for (h,) in query(db, "SELECT text_hash FROM chunks WHERE lens=?", lens)}
    return {h for (h,) in query(db, "SELECT text_hash FROM chunks")}


@pytest.fixture
def db(tmp_path):
    return tmp_path / "index.db"


@pytest.fixture
def vault(tiny_vault):
    return tiny_vault(NOTES)


# ---------------------------------------------------------------- caching

def test_first_index_embeds_every_distinct_text_exactly_once(vault, db, fake_embedder):
    report = run_index(vault, db)
    assert sorted(fake_embedder.texts) == sorted(ALL_TEXTS)  # no text twice, none missing
    assert (report.scanned, report.parsed, report.unchanged, report.embedded) == (3, 3, 0, 6)
    assert stored_hashes(db) == chunk_hashes(db) == {text_sha(t) for t in ALL_TEXTS}
    assert query(db, "SELECT path, lens, chunk, text FROM chunks WHERE path=? ORDER BY lens",
                 "projects/Bread.md") == [
        ("projects/Bread.md", "daily", 0, TOPIC_TEXTS["projects/Bread.md"]),
        ("projects/Bread.md", "project", 0, PROJECT_PREFIX + TOPIC_TEXTS["projects/Bread.md"]),
        ("projects/Bread.md", "topic", 0, TOPIC_TEXTS["projects/Bread.md"]),
    ]


def test_second_index_embeds_nothing_and_reports_all_unchanged(vault, db, fake_embedder):
    run_index(vault, db)
    calls = fake_embedder.calls
    report = run_index(vault, db)
    assert fake_embedder.calls == calls
    assert (report.parsed, report.unchanged, report.deleted, report.embedded) == (0, 3, 0, 0)


def test_touched_but_unchanged_note_is_not_reparsed_into_new_texts(vault, db, fake_embedder):
    run_index(vault, db)
    calls = fake_embedder.calls
    path = vault / "projects/Bread.md"
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    report = run_index(vault, db)
    assert fake_embedder.calls == calls
    assert (report.parsed, report.unchanged) == (0, 3)
    # and the new mtime was remembered: the next run does not even read the file
    assert query(db, "SELECT mtime_ns FROM notes WHERE path='projects/Bread.md'") == \
        [(path.stat().st_mtime_ns,)]


def test_modifying_one_note_reembeds_only_its_texts(vault, db, fake_embedder):
    run_index(vault, db)
    fake_embedder.reset_counts()
    (vault / "topics/Sourdough.md").write_text("Whole rye and a warm kitchen.\n")
    report = run_index(vault, db)
    new = "Sourdough\nWhole rye and a warm kitchen."
    assert sorted(fake_embedder.texts) == sorted([new, PROJECT_PREFIX + new])
    assert (report.parsed, report.unchanged, report.embedded) == (1, 2, 2)
    # the old texts' vectors are gone: vectors are exactly what chunks need
    assert stored_hashes(db) == chunk_hashes(db)
    assert text_sha(TOPIC_TEXTS["topics/Sourdough.md"]) not in stored_hashes(db)


def test_moving_a_note_embeds_nothing_and_leaves_no_stale_rows(vault, db, fake_embedder):
    run_index(vault, db)
    fake_embedder.reset_counts()
    (vault / "archive").mkdir()
    (vault / "topics/Sourdough.md").rename(vault / "archive/Sourdough.md")
    report = run_index(vault, db)
    assert fake_embedder.texts == []
    assert (report.deleted, report.parsed) == (1, 1)
    assert mentions_of(db, "topics/Sourdough.md") == NOWHERE
    # [[Sourdough]] in Bread now resolves to the new path
    assert query(db, "SELECT src, dst FROM links ORDER BY src, dst") == [
        ("archive/Sourdough.md", "projects/Bread.md"),
        ("daily/2026-11-05.md", "projects/Bread.md"),
        ("projects/Bread.md", "archive/Sourdough.md"),
    ]
    assert stored_hashes(db) == chunk_hashes(db)


def test_renaming_a_note_under_a_body_only_lens_embeds_nothing(tiny_vault, db, fake_embedder):
    root = tiny_vault({"old name.md": "Some words about tomatoes.\n", "other.md": "[[old name]]\n"},
                      config=BODY_ONLY)
    run_index(root, db)
    fake_embedder.reset_counts()
    (root / "old name.md").rename(root / "new name.md")
    run_index(root, db)
    assert fake_embedder.texts == []
    assert mentions_of(db, "old name.md") == NOWHERE
    assert query(db, "SELECT path, text FROM chunks ORDER BY path") == [
        ("new name.md", "Some words about tomatoes."), ("other.md", "old name")]
    assert query(db, "SELECT src, dst FROM links") == []  # [[old name]] is unresolved now


def test_renaming_a_note_under_the_default_lens_reembeds_only_its_titled_text(vault, db, fake_embedder):
    run_index(vault, db)
    fake_embedder.reset_counts()
    (vault / "projects/Bread.md").rename(vault / "projects/Loaf.md")
    run_index(vault, db)
    new = "Loaf\nBake a loaf every week with the Sourdough starter."
    assert sorted(fake_embedder.texts) == sorted([new, PROJECT_PREFIX + new])
    assert mentions_of(db, "projects/Bread.md") == NOWHERE
    assert stored_hashes(db) == chunk_hashes(db)


def test_deleting_a_note_removes_everything_about_it(vault, db, fake_embedder):
    run_index(vault, db)
    with Vault(vault, db=db, embedder="fake") as v:
        assert [o.status for o in v.write(["projects/Bread.md"])] == ["written"]
    assert mentions_of(db, "projects/Bread.md")["written"] == [("projects/Bread.md",)]
    (vault / "projects/Bread.md").unlink()
    report = run_index(vault, db)
    assert report.deleted == 1
    assert mentions_of(db, "projects/Bread.md") == NOWHERE
    assert stored_hashes(db) == chunk_hashes(db)
    assert text_sha(TOPIC_TEXTS["projects/Bread.md"]) not in stored_hashes(db)


def test_duplicate_notes_in_two_folders_are_embedded_once(tiny_vault, db, fake_embedder):
    same = "Identical text about composting leaves.\n"
    root = tiny_vault({"a/Compost.md": same, "b/Compost.md": same})
    run_index(root, db)
    assert fake_embedder.texts == ["Compost\nIdentical text about composting leaves."]
    assert query(db, "SELECT path FROM chunks WHERE lens='topic' ORDER BY path") == \
        [("a/Compost.md",), ("b/Compost.md",)]


def test_duplicate_notes_with_different_names_are_embedded_once_under_a_body_lens(
        tiny_vault, db, fake_embedder):
    same = "Identical text about composting leaves.\n"
    root = tiny_vault({"x.md": same, "y.md": same, "z.md": "Something else.\n"}, config=BODY_ONLY)
    run_index(root, db)
    assert sorted(fake_embedder.texts) == ["Identical text about composting leaves.", "Something else."]


TWO_LENSES = """
[lenses.one]
prefix = "{one}"
[lenses.two]
prefix = "Two: "
top_k = {top_k}
"""


def test_changing_one_lens_prefix_reembeds_only_that_lens(tiny_vault, db, fake_embedder):
    notes = {f"n{i}.md": f"note number {i} about subject {i * 7}\n" for i in range(5)}
    root = tiny_vault(notes, config=TWO_LENSES.format(one="One: ", top_k=5))
    run_index(root, db)
    assert len(fake_embedder.texts) == 10
    fake_embedder.reset_counts()
    (root / ".lenslink.toml").write_text(TWO_LENSES.format(one="Uno: ", top_k=5))
    report = run_index(root, db)
    assert sorted(fake_embedder.texts) == sorted(
        f"Uno: n{i}\nnote number {i} about subject {i * 7}" for i in range(5))
    assert report.embedded == 5
    assert not any(h for (h,) in query(db, "SELECT text FROM chunks WHERE text LIKE 'One: %'"))
    old = {text_sha(f"One: n{i}\nnote number {i} about subject {i * 7}") for i in range(5)}
    # the old prefix's vectors are kept a while, retired by their notes: going back
    # embeds nothing
    assert stored_hashes(db) == chunk_hashes(db) | old
    assert {h for (h,) in query(db, "SELECT text_hash FROM retired")} == old
    fake_embedder.reset_counts()
    (root / ".lenslink.toml").write_text(TWO_LENSES.format(one="One: ", top_k=5))
    assert run_index(root, db).embedded == 0 and fake_embedder.texts == []
    assert old <= chunk_hashes(db)
    uno = {text_sha(f"Uno: n{i}\nnote number {i} about subject {i * 7}") for i in range(5)}
    assert {h for (h,) in query(db, "SELECT text_hash FROM retired")} == uno


def test_unused_vectors_go_after_a_week_and_never_outnumber_those_in_use(tiny_vault, db,
                                                                          fake_embedder):
    notes = {f"n{i}.md": f"note number {i}\n" for i in range(4)}
    root = tiny_vault(notes, config=BODY_ONLY)
    run_index(root, db)
    in_use = stored_hashes(db)
    for prefix in ("A", "B", "C"):  # three configs tried in turn
        (root / ".lenslink.toml").write_text(f'[lenses.body]\ntemplate = "{prefix} {{body}}"\n')
        run_index(root, db)
        assert len(stored_hashes(db)) == 8  # 4 in use, at most as many unused
    assert not in_use & stored_hashes(db)  # the oldest unused went first
    kept = {text_sha(f"B note number {i}") for i in range(4)}
    assert stored_hashes(db) - chunk_hashes(db) == kept
    conn = sqlite3.connect(str(db))
    with conn:  # found unused 8 days ago
        conn.execute("UPDATE retired SET at = ?", [time.time() - 8 * 86400])
    conn.close()
    (root / "n9.md").write_text("one more note\n")
    run_index(root, db)
    assert stored_hashes(db) == chunk_hashes(db)


@pytest.mark.parametrize("how", ["delete", "edit", "opt out", "exclude"])
def test_vectors_kept_for_a_config_go_with_the_notes_words(tiny_vault, db, fake_embedder, how):
    """A note's texts retired by a config change are its words too: when it is deleted,
    edited, opts out or is excluded, they go at once like its current ones."""
    root = tiny_vault({"a.md": "my secret plan\n", "b.md": "groceries\n"}, config=BODY_ONLY)
    run_index(root, db)
    (root / ".lenslink.toml").write_text('[lenses.body]\ntemplate = "Body: {body}"\n')
    run_index(root, db)
    assert text_sha("my secret plan") in stored_hashes(db)  # kept a while
    if how == "delete":
        (root / "a.md").unlink()
    elif how == "edit":
        (root / "a.md").write_text("nothing to see\n")
    elif how == "opt out":
        (root / "a.md").write_text("---\nlenslink: false\n---\nmy secret plan\n")
    else:
        (root / ".lenslink.toml").write_text('exclude = ["a.md"]\n[lenses.body]\n'
                                               'template = "Body: {body}"\n')
    run_index(root, db)
    assert not {text_sha("my secret plan"), text_sha("Body: my secret plan")} & stored_hashes(db)
    assert query(db, "SELECT count(*) FROM retired WHERE path='a.md'") == [(0,)]


@pytest.mark.parametrize("failed", [False, True], ids=["sync", "failed sync"])
def test_words_edited_out_lose_their_vector_with_the_next_finished_sync(tiny_vault, db,
                                                                         fake_embedder, failed):
    """At once; or, when the sync that stored the edit failed (the embedder), with the
    next one, which finds nothing changed but knows the last one did not finish."""
    from lenslink.errors import EmbedderError
    root = tiny_vault({"a.md": "my secret plan\n", "b.md": "groceries\n"}, config=BODY_ONLY)
    run_index(root, db)
    (root / "a.md").write_text("nothing to see\n")
    if failed:
        fake_embedder.fail_on_call = fake_embedder.calls + 1  # the edit is stored, not embedded
        fake_embedder.fail_with = lambda: EmbedderError("endpoint down")
        with pytest.raises(EmbedderError):
            run_index(root, db)
        fake_embedder.fail_on_call = None
    run_index(root, db)
    assert text_sha("my secret plan") not in stored_hashes(db)
    assert stored_hashes(db) == chunk_hashes(db)


def test_a_rebuild_drops_every_unused_vector(tiny_vault, db, fake_embedder):
    root = tiny_vault({"a.md": "alpha\n", "b.md": "beta\n"}, config=BODY_ONLY)
    run_index(root, db)
    (root / ".lenslink.toml").write_text('[lenses.body]\ntemplate = "Body: {body}"\n')
    run_index(root, db)
    assert stored_hashes(db) > chunk_hashes(db)
    fake_embedder.reset_counts()
    run_index(root, db, rebuild=True)
    assert fake_embedder.texts == []  # vectors in use are reused
    assert stored_hashes(db) == chunk_hashes(db)


def test_changing_top_k_rereads_and_reembeds_nothing(tiny_vault, db, fake_embedder):
    notes = {f"n{i}.md": f"note number {i}\n" for i in range(3)}
    root = tiny_vault(notes, config=TWO_LENSES.format(one="One: ", top_k=5))
    run_index(root, db)
    fake_embedder.reset_counts()
    (root / ".lenslink.toml").write_text(TWO_LENSES.format(one="One: ", top_k=9))
    report = run_index(root, db)
    assert fake_embedder.texts == []
    assert (report.parsed, report.unchanged) == (0, 3)


def test_lens_without_source_or_candidate_notes_costs_nothing(tiny_vault, db, fake_embedder):
    root = tiny_vault({"a.md": "apples\n", "b.md": "bananas\n"})  # no daily or project notes
    run_index(root, db)
    assert sorted(fake_embedder.texts) == ["a\napples", "b\nbananas"]  # topic only


# ---------------------------------------------------------------- odd notes

def test_opted_out_note_is_not_embedded(tiny_vault, db, fake_embedder):
    root = tiny_vault({"secret.md": "---\nlenslink: false\n---\nZanzibar diary.\n",
                       "open.md": "Public text about Zanzibar.\n"})
    report = run_index(root, db)
    assert report.opted_out == 1
    assert fake_embedder.texts == ["open\nPublic text about Zanzibar."]
    assert query(db, "SELECT opted_out, lex_text FROM notes WHERE path='secret.md'") == [(1, "")]
    assert query(db, "SELECT * FROM chunks WHERE path='secret.md'") == []


def test_note_that_opts_out_later_loses_its_texts_and_vectors(tiny_vault, db, fake_embedder):
    root = tiny_vault({"diary.md": "Private thoughts.\n", "open.md": "Public.\n"})
    run_index(root, db)
    (root / "diary.md").write_text("---\nlenslink: false\n---\nPrivate thoughts.\n")
    run_index(root, db)
    assert query(db, "SELECT * FROM chunks WHERE path='diary.md'") == []
    assert text_sha("diary\nPrivate thoughts.") not in stored_hashes(db)


BROKEN_YAML = '---\ntitle: "unclosed\ntags: [x]\n---\nBody about bees.\n'


def test_broken_frontmatter_is_indexed_and_reported_once(tiny_vault, db, fake_embedder):
    root = tiny_vault({"bees.md": BROKEN_YAML, "ok.md": "fine\n"})
    first = run_index(root, db)
    problems = [p for p in first.problems if p[0] == "bees.md"]
    assert len(problems) == 1 and problems[0][1].startswith("broken frontmatter:")
    assert "bees\nBody about bees." in fake_embedder.texts
    second = run_index(root, db)
    assert second.problems == []
    with Vault(root, db=db, embedder="fake") as v:
        assert v.status()["problems"] == {"bees.md": [problems[0][1]]}


def test_non_utf8_empty_and_10mb_notes_index_with_the_rest(tiny_vault, db, fake_embedder):
    paragraphs = [" ".join(f"w{p}x{i}" for i in range(150)) for p in range(11_000)]
    big = "\n\n".join(paragraphs)
    assert len(big.encode()) > 10_000_000
    root = tiny_vault({"latin1.md": "Caf\xe9 au lait".encode("latin-1"), "empty.md": "",
                       "big.md": big, "plain.md": "plain words\n"})
    report = run_index(root, db)
    assert (report.scanned, report.parsed, report.failed) == (4, 4, 0)
    assert [p for p in report.problems if p[0] == "latin1.md"][0][1].startswith("not valid UTF-8")
    texts = dict(query(db, "SELECT path, group_concat(text, '|') FROM chunks"
                           " WHERE lens='topic' GROUP BY path"))
    assert texts["latin1.md"] == "latin1\nCaf\ufffd au lait"
    assert texts["empty.md"] == "empty"
    assert texts["plain.md"] == "plain\nplain words"
    assert query(db, "SELECT count(*) FROM chunks WHERE path='big.md' AND lens='topic'") == \
        [(32,)]  # MAX_CHUNKS
    assert stored_hashes(db) == chunk_hashes(db, "topic")


def test_binary_file_named_md_fails_alone(tiny_vault, db, fake_embedder):
    root = tiny_vault({"image.md": b"\x89PNG\x00\x00binary", "ok.md": "fine\n"})
    report = run_index(root, db)
    assert report.failed == 1
    assert fake_embedder.texts == ["ok\nfine"]
    with Vault(root, db=db, embedder="fake") as v:
        assert list(v.status()["problems"]) == ["image.md"]


def test_note_vanishing_between_scan_and_stat_is_a_warning(vault, db, fake_embedder, monkeypatch):
    scan = notes_mod.scan_vault

    def scan_then_delete(root, exclude=(), **options):
        found = scan(root, exclude, **options)
        (root / "projects/Bread.md").unlink()
        return found

    monkeypatch.setattr(notes_mod, "scan_vault", scan_then_delete)
    report = run_index(vault, db)
    assert report.failed == 1
    assert [p for p, _ in report.problems] == ["projects/Bread.md"]
    assert {p for (p,) in query(db, "SELECT path FROM notes")} == \
        {"topics/Sourdough.md", "daily/2026-11-05.md"}


def test_note_vanishing_between_stat_and_read_is_a_warning_that_clears(vault, db, fake_embedder,
                                                                      monkeypatch):
    read = notes_mod.read_note

    def delete_then_read(root, rel, *args, **kwargs):
        if rel == "projects/Bread.md":
            (root / rel).unlink()
        return read(root, rel, *args, **kwargs)

    monkeypatch.setattr(notes_mod, "read_note", delete_then_read)
    report = run_index(vault, db)
    assert report.failed == 1
    (message,) = [m for p, m in report.problems if p == "projects/Bread.md"]
    assert "vanished" in message
    assert {p for (p,) in query(db, "SELECT path FROM notes")} == \
        {"topics/Sourdough.md", "daily/2026-11-05.md"}
    assert set(fake_embedder.texts) == {TOPIC_TEXTS["topics/Sourdough.md"],
                                        TOPIC_TEXTS["daily/2026-11-05.md"]}
    with Vault(vault, db=db, embedder="fake") as v:
        assert list(v.status()["problems"]) == ["projects/Bread.md"]
    monkeypatch.undo()
    run_index(vault, db)  # the note is really gone now: no problem is left about it
    with Vault(vault, db=db, embedder="fake") as v:
        assert v.status()["problems"] == {}


def test_scan_problems_are_reported_with_their_path(tiny_vault, db, fake_embedder, tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("not in the vault\n")
    root = tiny_vault({"ok.md": "fine\n"})
    os.symlink(outside, root / "link.md")
    report = run_index(root, db)
    assert len(report.problems) == 1
    path, message = report.problems[0]
    assert path == "link.md" and "outside the vault" in message
    assert fake_embedder.texts == ["ok\nfine"]


def test_managed_block_is_never_embedded_nor_linked(tiny_vault, db, fake_embedder):
    block = f"{START}\n## Related notes\n*topic*\n- [[Zebra]]\n{END}\n"
    root = tiny_vault({"horse.md": "Horses graze.\n\n" + block, "Zebra.md": "Stripes.\n"})
    run_index(root, db)
    horse_texts = [t for t in fake_embedder.texts if t.startswith("horse")]
    assert horse_texts == ["horse\nHorses graze."]
    assert not any("lenslink:start" in t or "lenslink" in t for t in fake_embedder.texts)
    assert query(db, "SELECT * FROM links") == []


def test_writing_blocks_then_reindexing_embeds_nothing(vault, db, fake_embedder):
    run_index(vault, db)
    with Vault(vault, db=db, embedder="fake") as v:
        assert {o.status for o in v.write()} == {"written"}
    assert START in (vault / "projects/Bread.md").read_text()
    links_before = query(db, "SELECT * FROM links ORDER BY src, dst")
    fake_embedder.reset_counts()
    report = run_index(vault, db)
    # the files changed, but only by the blocks we wrote: recognised by the remembered
    # hash, so nothing is re-parsed downstream, let alone embedded
    assert (report.parsed, report.unchanged) == (0, 3)
    assert fake_embedder.texts == []
    assert query(db, "SELECT * FROM links ORDER BY src, dst") == links_before


# ---------------------------------------------------------------- links

def test_links_resolve_like_obsidian_and_late_targets_get_resolved(tiny_vault, db, fake_embedder):
    root = tiny_vault({
        "a.md": "See [[b]], [[B#Heading|bee]], [c](sub/c.md), [[a]] and `[[code]]` and [[later]].\n",
        "b.md": "Back to [[a|the first]].\n",
        "sub/c.md": "nothing\n",
        "code.md": "x\n",
    })
    run_index(root, db)
    assert query(db, "SELECT src, dst FROM links ORDER BY src, dst") == [
        ("a.md", "b.md"), ("a.md", "sub/c.md"), ("b.md", "a.md")]
    (root / "sub/later.md").write_text("created afterwards\n")
    run_index(root, db)
    assert query(db, "SELECT src, dst FROM links ORDER BY src, dst") == [
        ("a.md", "b.md"), ("a.md", "sub/c.md"), ("a.md", "sub/later.md"), ("b.md", "a.md")]


def test_adding_editing_and_removing_notes_one_at_a_time_links_like_a_full_relink(
        tiny_vault, db, fake_embedder):
    # One note per sync (the daemon's way) relinks only the notes whose links may name the
    # added or removed note, each against the notes its links may name; the links must
    # equal those of a fresh index of the same files.
    import random
    rng = random.Random(4)
    names = ["a", "b", "sub/b", "sub/deep/c", "C", "d.e", "x/a", "sub/deep", "x"]
    links = ["a", "b", "sub/b", "../b", "./c", "deep/c", "c.md", "C", "d.e", "x/a", "..", "", "nope", "deep/..", "a/..", "c/.."]
    root = tiny_vault({"hub.md": " ".join(f"[[{x}]]" for x in links) + "\n"})
    present = set()
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        for step in range(45):
            name = rng.choice(names)
            path = root / f"{name}.md"
            if step == 20:  # as a store from before names were kept (migration 10)
                with sqlite3.connect(str(db)) as conn:
                    conn.execute("UPDATE notes SET name=NULL")
            if name in present and rng.random() < 0.5:
                path.unlink()
                present.discard(name)
            else:  # a new note, or an edit of its links
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(" ".join(f"[[{x}]]" for x in rng.sample(links, 4)) + "\n")
                present.add(name)
            v.index(paths=[f"{name}.md"])
            got = query(db, "SELECT src, dst FROM links ORDER BY src, dst")
            fresh = db.with_name("fresh.db")
            fresh.unlink(missing_ok=True)
            run_index(root, fresh)
            assert got == query(fresh, "SELECT src, dst FROM links ORDER BY src, dst"), sorted(present)


def test_notes_stored_with_broken_frontmatter_are_read_again_once(tiny_vault, db, fake_embedder):
    """Store migration 12: a `lenslink: false` line in broken frontmatter counts now; a
    store from before reads those notes again (and only those)."""
    root = tiny_vault({"a.md": '---\nlenslink: false\ntitle: "x\n---\nprivate\n', "b.md": "beta\n"})
    run_index(root, db)
    assert query(db, "SELECT path, opted_out FROM notes ORDER BY path") == [("a.md", 1), ("b.md", 0)]
    with sqlite3.connect(str(db)) as conn:  # as an older lenslink stored it
        conn.execute("UPDATE notes SET opted_out=0 WHERE path='a.md'")
        conn.execute("DROP TABLE retired")  # undo migration 13 too (its index: IF NOT EXISTS)
        conn.execute("PRAGMA user_version=11")
    report = run_index(root, db)
    assert report.changed == ["a.md"] and report.unchanged == 1
    assert query(db, "SELECT path, opted_out FROM notes ORDER BY path") == [("a.md", 1), ("b.md", 0)]


def test_a_sync_of_some_notes_looks_at_those_notes_only(tiny_vault, db, fake_embedder):
    """The daemon syncs the notes the watcher reported (a folder moved or deleted makes it
    sync everything): another note gone meanwhile stays until its own event or a full
    sync, and links resolve against the notes as stored."""
    root = tiny_vault({"a.md": "alpha [[b]]\n", "b.md": "beta\n", "c.md": "gamma\n"})
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        (root / "c.md").unlink()
        (root / "a.md").write_text("alpha again [[c]]\n")
        report = v.index(paths=["a.md", "nowhere.md"])
        assert (report.scanned, report.changed, report.removed) == (1, ["a.md"], [])
        assert report.targeted == ["a.md", "nowhere.md"] and set(report.known) == {"a.md"}
        assert v.store.links() == {"a.md": ["c.md"]}
        report = v.index(paths=["c.md"])  # the deletion's own event
        assert (report.changed, report.removed) == ([], ["c.md"])
        assert v.store.links() == {} and mentions_of(db, "c.md") == NOWHERE
        (root / "b.md").unlink()
        assert v.index().removed == ["b.md"]  # and a full sync finds what no event said


def test_an_edit_that_gives_a_lens_its_first_source_note_makes_it_active(tiny_vault, db,
                                                                          fake_embedder):
    root = tiny_vault({"a.md": "apples\n", "b.md": "bananas\n"})
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        assert sorted(fake_embedder.texts) == ["a\napples", "b\nbananas"]  # topic only
        (root / "a.md").write_text("---\ntags: [project]\n---\napples\n")
        v.index(paths=["a.md"])  # the daemon's sync of one note
        assert PROJECT_PREFIX + "a\napples" in fake_embedder.texts
        assert query(db, "SELECT value FROM meta WHERE key='active_lenses'")[0][0].endswith(
            ":topic,project")
        fake_embedder.texts.clear()
        (root / "a.md").write_text("apples again\n")  # and losing it: inactive again
        v.index(paths=["a.md"])
        assert query(db, "SELECT value FROM meta WHERE key='active_lenses'")[0][0].endswith(":topic")
        # another connection stores a project note: this process's kept matches are stale
        (root / "b.md").write_text("---\ntags: [project]\n---\nbananas\n")
        run_index(root, db, paths=["b.md"])
        (root / "a.md").write_text("apples once more\n")
        v.index(paths=["a.md"])
        assert query(db, "SELECT value FROM meta WHERE key='active_lenses'")[0][0].endswith(
            ":topic,project")


def test_notes_stored_without_lens_masks_get_them_when_lenses_are_counted(tiny_vault, db,
                                                                          fake_embedder, monkeypatch):
    root = tiny_vault({"a.md": "apples\n", "projects/b.md": "bananas\n", "c.md": "cherries\n"})
    run_index(root, db)
    masks = query(db, "SELECT path, source_lenses, candidate_lenses FROM notes ORDER BY path")
    # lenses topic, project, daily: every note is a topic source and candidate and a
    # project source; only projects/b.md is a project candidate; no daily notes
    assert masks == [("a.md", 0b011, 0b101), ("c.md", 0b011, 0b101), ("projects/b.md", 0b011, 0b111)]
    conn = sqlite3.connect(str(db))  # as a store from before the masks left them
    conn.execute("UPDATE notes SET source_lenses=NULL, candidate_lenses=NULL")
    conn.execute("UPDATE meta SET value='' WHERE key='active_lenses'")
    conn.commit()
    conn.close()
    (root / "c.md").write_text("cherries, ripe\n")
    run_index(root, db)
    assert query(db, "SELECT path, source_lenses, candidate_lenses FROM notes ORDER BY path") == masks
    assert query(db, "SELECT value FROM meta WHERE key='active_lenses'")[0][0].endswith(":topic,project")
    # a config with more lenses than the masks hold: matched every time, nothing recorded
    import lenslink.index as index_mod
    monkeypatch.setattr(index_mod, "MASK_LENSES", 2)
    (root / "projects/b.md").unlink()
    report = run_index(root, db)
    assert report.removed == ["projects/b.md"]
    assert query(db, "SELECT value FROM meta WHERE key='active_lenses'")[0][0].endswith(":topic")


# ---------------------------------------------------------------- interruption

def many_notes(n: int) -> dict[str, str]:
    return {f"n{i:02}.md": f"note {i} about topic {i % 5} and word{i}\n" for i in range(n)}


def test_interrupted_index_is_completed_without_embedding_anything_twice(tiny_vault, db,
                                                                         fake_embedder):
    root = tiny_vault(many_notes(14))  # 14 texts, batches of 4
    fake_embedder.fail_on_call = 2
    with pytest.raises(KeyboardInterrupt):
        run_index(root, db)
    assert len(fake_embedder.texts) == 4  # the first batch, committed
    assert len(stored_hashes(db)) == 4
    fake_embedder.fail_on_call = None
    report = run_index(root, db)
    assert report.embedded == 10
    assert len(fake_embedder.texts) == len(set(fake_embedder.texts)) == 14
    assert {text_sha(t) for t in fake_embedder.texts} == chunk_hashes(db, "topic") == \
        stored_hashes(db)
    with Vault(root, db=db, embedder="fake") as v:
        status = v.status()
    assert (status["texts"], status["embedded_texts"]) == (14, 14)


def _count_vectors(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0  # not created yet


def test_kill_9_mid_index_then_rerun_completes_without_reembedding(tiny_vault, db, tmp_path):
    root = tiny_vault(many_notes(40))
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    env = {**os.environ, "FAKE_EMBED_SLEEP": "0.3", "FAKE_EMBED_LOG": str(first_log)}
    cmd = [sys.executable, str(TESTS / "fake_embedder.py"), "index", str(root),
           "--db", str(db), "--embedder", "fake"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _count_vectors(db) < 8:  # at least two committed batches
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the index never got going"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    committed = stored_hashes(db)
    assert 8 <= len(committed) < 40  # killed mid-way

    env = {**os.environ, "FAKE_EMBED_LOG": str(second_log)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "texts embedded" in done.stdout
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    second = second_log.read_text().split()
    assert len(second) == len(set(second))
    assert not set(second) & committed  # nothing stored before the kill was embedded again
    assert committed | set(second) == chunk_hashes(db, "topic") == stored_hashes(db)
    assert len(stored_hashes(db)) == 40


def test_a_change_with_its_mtime_restored_is_caught_by_the_hash_sweep(tiny_vault, db, fake_embedder):
    """The fast path trusts size and mtime (a restart reads nothing); a tool that restores
    the mtime after changing a note fools it until `index --verify` (daily in the daemon)."""
    root = tiny_vault({"a.md": "alpha beta\n", "b.md": "gamma delta\n"})
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        st = (root / "a.md").stat()
        (root / "a.md").write_text("omega beta\n", encoding="utf-8")  # same size
        os.utime(root / "a.md", ns=(st.st_atime_ns, st.st_mtime_ns))
        assert v.index().parsed == 0  # fooled: nothing read
        fake_embedder.reset_counts()
        report = v.index(verify=True)
        assert report.parsed == 1 and report.changed == ["a.md"] and report.unchanged == 1
        assert fake_embedder.texts and all("omega" in t for t in fake_embedder.texts)
        assert "omega" in v.store.lex_texts(["a.md"])["a.md"][0]


def test_a_block_written_by_someone_else_changes_nothing_downstream(tiny_vault, db, fake_embedder):
    """E.g. the Obsidian plugin (through Obsidian's API) or lenslink on another computer:
    the note's bytes change, what lenslink reads from it does not."""
    from lenslink.block import render_block, splice
    root = tiny_vault({"a.md": "alpha beta\n", "b.md": "gamma delta\n"})
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        fake_embedder.reset_counts()
        text = (root / "a.md").read_text(encoding="utf-8")
        (root / "a.md").write_text(splice(text, render_block([("topic", ["[[b]]"])])), encoding="utf-8")
        report = v.index(paths=["a.md"])
        assert (report.parsed, report.unchanged, report.changed) == (0, 1, [])
        assert fake_embedder.texts == []
        assert v.store.note_states()["a.md"][0] == hashlib.sha256((root / "a.md").read_bytes()).hexdigest()


def test_a_sync_interrupted_after_storing_notes_is_completed_by_the_next(tiny_vault, db, fake_embedder):
    """Notes stored by an interrupted sync look unchanged to the next one; what that sync
    would have done after storing them (links, active lenses, vectors) must still happen."""
    root = tiny_vault({"a.md": "alpha beta\n", "b.md": "gamma delta\n"})
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        (root / "c.md").write_text("epsilon [[a]]\n", encoding="utf-8")
        (root / "d.md").write_text("zeta [[c]]\n", encoding="utf-8")
        fake_embedder.fail_on_call = fake_embedder.calls + 1  # stopped while embedding
        with pytest.raises(KeyboardInterrupt):
            v.index()
        fake_embedder.fail_on_call = None
        fake_embedder.reset_counts()
        report = v.index(paths=[])  # what the daemon's next batch does: nothing changed
        assert report.parsed == 0 and len(fake_embedder.texts) == 2
        assert v.store.links() == {"c.md": ["a.md"], "d.md": ["c.md"]}
        assert v.store.chunk_counts(v.store.get_meta("embedder"), ["topic"]) == (4, 4)


def test_an_edit_undone_to_the_bytes_lenslink_wrote_is_read_again(tiny_vault, db, fake_embedder):
    root = tiny_vault({"a.md": "alpha beta\n", "b.md": "alpha gamma\n"})
    with Vault(root, db=db, embedder="fake") as v:
        v.index()
        assert v.write(["a.md"])[0].status == "written"
        written = (root / "a.md").read_bytes()
        (root / "a.md").write_bytes(written.replace(b"alpha beta", b"EDITED [[b]]"))
        v.index(paths=["a.md"])
        (root / "a.md").write_bytes(written)  # undo, back to exactly what lenslink wrote
        v.index(paths=["a.md"])
        assert "EDITED" not in v.store.lex_texts(["a.md"])["a.md"][0]
        assert v.store.links() == {}


def test_a_batch_of_writes_commits_at_its_end_or_not_at_all(tmp_path):
    """`Store.batch` (a sync stores NOTE_BATCH notes per transaction): writes inside it
    are invisible to other connections until it ends, and an error undoes all of them."""
    from lenslink.store import Store

    store = Store.open(tmp_path / "index.db")
    other = sqlite3.connect(tmp_path / "index.db")
    seen = lambda key: other.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()  # noqa: E731
    with pytest.raises(RuntimeError):
        with store.batch():
            store.set_meta("a", "1")
            store.set_meta("b", "2")
            raise RuntimeError("interrupted")
    assert store.get_meta("a") is None and store.get_meta("b") is None
    with store.batch():
        store.set_meta("a", "1")
        store.set_meta("b", "2")  # each write alone would commit here
        assert seen("a") is None and store.get_meta("a") == "1"
    assert seen("a") == ("1",) and seen("b") == ("2",)
    store.set_meta("c", "3")  # outside a batch: at once
    assert seen("c") == ("3",)
    other.close()
    store.close()


def test_an_error_while_storing_a_note_leaves_its_previous_state_whole(tmp_path, monkeypatch):
    """A note's row, texts and chunks are replaced in one transaction: an error half way
    (here, after every statement but the commit) leaves the old row and its chunks."""
    import lenslink.store as store_mod
    from lenslink.store import Store

    store = Store.open(tmp_path / "index.db")
    store.put_note(_row("a.md", "h1"), "old words", "old words", [("topic", 0, "t1", "old words", None)])

    def fail(name):
        if name == "store.put_note":
            raise RuntimeError("crash")
    monkeypatch.setattr(store_mod, "crash_point", fail)
    with pytest.raises(RuntimeError):
        store.put_note(_row("a.md", "h2"), "new words", "new words", [("topic", 0, "t2", "new words", None)])
    assert store.note_states()["a.md"][0] == "h1"
    assert store.db.execute("SELECT text_hash FROM chunks WHERE path='a.md'").fetchall() == [("t1",)]
    store.close()


def _row(path: str, content_hash: str):
    from lenslink.store import NoteRow
    return NoteRow(path=path, title=path[:-3], folder="", content_hash=content_hash, mtime_ns=1,
                   size=1, signature="s", opted_out=False, is_daily=False, tags=(), aliases=(),
                   frontmatter={}, problems=(), raw_links=())


def test_another_connection_waits_for_a_batch_instead_of_breaking_it(tmp_path):
    """A batch takes the write lock first: another writer (the daemon's trainer, `label`)
    waits for it to end; a batch whose reads another commit made stale would fail."""
    import threading

    from lenslink.store import Store

    store, other = Store.open(tmp_path / "index.db"), Store.open(tmp_path / "index.db")
    errors = []

    def write_elsewhere():
        try:
            other.set_meta("trainer", "done")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    with store.batch():
        store.get_meta("anything")  # a read first, as a sync's note check does
        writer = threading.Thread(target=write_elsewhere)
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # waiting for the batch
        store.set_meta("sync", "stored")
    writer.join(10)
    assert not errors and store.get_meta("sync") == "stored" and store.get_meta("trainer") == "done"
    store.close()
    other.close()
