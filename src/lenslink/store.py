"""The SQLite store: notes, lens texts (chunks), cached vectors, links, index state.

Vectors are cached by (embedder id, sha256 of the exact lens text), so renames,
duplicates and restarts cost nothing. Schema changes are numbered migrations.

A chunk of a lens with a `rewrite` keeps its lens text in `original`; its `text` and
`text_hash` are those of the rewrite (what is embedded), or '' (PENDING) until the
rewrite is known. LLM rewrites are cached by (model, prompt hash, lens text hash). Labels a chat model gave to note pairs
are kept with the hashes of both notes' texts: an edit makes them stale, not wrong.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import queue
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import sqlite_utils

from .errors import StoreError
from .faults import crash_point
from .links import note_name

MIGRATIONS = [
    # 1: the initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE notes (
        path TEXT PRIMARY KEY, title TEXT NOT NULL, folder TEXT NOT NULL,
        content_hash TEXT NOT NULL, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
        signature TEXT NOT NULL, opted_out INTEGER NOT NULL DEFAULT 0,
        is_daily INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '[]',
        aliases TEXT NOT NULL DEFAULT '[]', frontmatter TEXT NOT NULL DEFAULT '{}',
        problems TEXT NOT NULL DEFAULT '[]', raw_links TEXT NOT NULL DEFAULT '[]',
        lex_text TEXT NOT NULL DEFAULT '', indexed_at REAL NOT NULL
    );
    CREATE TABLE chunks (
        path TEXT NOT NULL, lens TEXT NOT NULL, chunk INTEGER NOT NULL,
        text_hash TEXT NOT NULL, text TEXT NOT NULL,
        PRIMARY KEY (path, lens, chunk)
    );
    CREATE INDEX chunks_by_hash ON chunks (text_hash);
    CREATE TABLE vectors (
        embedder TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
        PRIMARY KEY (embedder, text_hash)
    );
    CREATE TABLE links (src TEXT NOT NULL, dst TEXT NOT NULL, PRIMARY KEY (src, dst));
    CREATE INDEX links_by_dst ON links (dst);
    CREATE TABLE failures (path TEXT PRIMARY KEY, error TEXT NOT NULL, at REAL NOT NULL);
    CREATE TABLE written (path TEXT PRIMARY KEY, block_hash TEXT NOT NULL,
                          file_hash TEXT NOT NULL, at REAL NOT NULL);
    """,
    # 2: trained rankers, one per lens; 3: the text a note is queried with
    """
    CREATE TABLE models (lens TEXT PRIMARY KEY, embedder TEXT NOT NULL, signature TEXT NOT NULL,
                         params TEXT NOT NULL, blob BLOB NOT NULL, trained_at REAL NOT NULL);
    """,
    """
    ALTER TABLE notes ADD COLUMN query_text TEXT NOT NULL DEFAULT '';
    """,
    # 4: LLM rewrites of lens texts, and the lens text a rewritten chunk came from
    """
    CREATE TABLE rewrites (
        model TEXT NOT NULL, prompt_hash TEXT NOT NULL, text_hash TEXT NOT NULL,
        rewritten TEXT NOT NULL,
        PRIMARY KEY (model, prompt_hash, text_hash)
    );
    ALTER TABLE chunks ADD COLUMN original TEXT;
    """,
    # 5: each note's distinct line keys (little-endian int64), for boilerplate detection
    """
    ALTER TABLE notes ADD COLUMN line_keys BLOB NOT NULL DEFAULT x'';
    """,
    # 6: a chat model's judgement of (source, candidate) pairs (`lenslink label`), valid
    # while both notes' texts hash as they did (`text_hashes`)
    """
    CREATE TABLE labels (
        lens TEXT NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL, model TEXT NOT NULL,
        src_hash TEXT NOT NULL, dst_hash TEXT NOT NULL, label INTEGER NOT NULL,
        answer TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (lens, src, dst, model, src_hash, dst_hash)
    );
    """,
    # 7: which lenses a note is a source / candidate of (bit i: the config's lens i, under
    # the note's `signature`); NULL: not known (counted again from tags and frontmatter)
    """
    ALTER TABLE notes ADD COLUMN source_lenses INTEGER;
    ALTER TABLE notes ADD COLUMN candidate_lenses INTEGER;
    """,
    # 8: what a sync and the snapshot key read of every note, without the rows' texts
    # (at 100,000 notes a scan of the table reads its lex and query texts: 0.5 s)
    """
    CREATE INDEX IF NOT EXISTS notes_state
        ON notes (path, content_hash, mtime_ns, size, signature, indexed_at);
    """,
    # 9: texts by hash and lens, without the texts: `chunk_counts` (status) read the whole
    # table at 100,000 notes (4.4 s, 0.3 s with it); it also serves chunks_by_hash's lookups
    """
    CREATE INDEX IF NOT EXISTS chunks_hash_lens ON chunks (text_hash, lens);
    DROP INDEX IF EXISTS chunks_by_hash;
    """,
    # 10: a sync of a few edited notes at 100,000 notes read every row (1.5-2 s): each
    # note's `links.note_name` (NULL: not known yet, filled by `paths_named`) to resolve
    # only the links of the notes that changed, and the lens masks by config signature
    # (a lens no note takes part in cost `lens_bits` a scan of the table)
    """
    ALTER TABLE notes ADD COLUMN name TEXT;
    CREATE INDEX IF NOT EXISTS notes_name ON notes (name);
    CREATE INDEX IF NOT EXISTS notes_lenses ON notes (signature, source_lenses, candidate_lenses);
    """,
    # 11: the block text lenslink last wrote into a note (NULL: written before it was
    # kept), to tell a hand edit from a rename Obsidian made in it (`Vault.write`), and
    # the one it is writing (set before the file is replaced: a crash in between leaves
    # that block in the note)
    """
    ALTER TABLE written ADD COLUMN block TEXT;
    ALTER TABLE written ADD COLUMN pending TEXT;
    """,
    # 12: notes stored with broken frontmatter are read again (a `lenslink: false` line in
    # it is kept now): an empty signature is never current
    """
    UPDATE notes SET signature='' WHERE problems LIKE '%frontmatter%';
    """,
    # 13: texts a note stopped using when the config (not its words) changed, and since
    # when: their vectors are kept a while (`prune_vectors(keep_days=...)`), and dropped
    # at once with the note's other texts when it is edited, deleted or opts out; and the
    # notes that opt out, counted after every full sync
    """
    CREATE TABLE IF NOT EXISTS retired (path TEXT NOT NULL, text_hash TEXT NOT NULL, at REAL NOT NULL,
                          PRIMARY KEY (path, text_hash));
    CREATE INDEX IF NOT EXISTS retired_hash ON retired (text_hash);
    CREATE INDEX IF NOT EXISTS notes_opted_out ON notes (path) WHERE opted_out = 1;
    """,
]
MASK_LENSES = 62  # lens bit masks fit SQLite's signed 64-bit integers up to this many
PENDING = ""  # chunks.text_hash of a chunk whose rewrite is not known yet


@dataclass(frozen=True)
class NoteRow:
    """A note as the store knows it (no body text)."""
    path: str
    title: str
    folder: str
    content_hash: str
    mtime_ns: int
    size: int
    signature: str
    opted_out: bool
    is_daily: bool
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    frontmatter: dict
    problems: tuple[str, ...]
    raw_links: tuple[str, ...]


class Store:
    """One SQLite file; open it with `Store.open(path)` (migrations applied)."""

    def __init__(self, db: sqlite_utils.Database, path: Path):
        self.db = db
        self.path = path
        # decoded note rows by path, valid while (content_hash, mtime_ns, size, signature)
        # is unchanged: most reads of all notes then decode only what changed
        self._rows: dict[str, tuple[tuple, NoteRow]] = {}
        self._batched = False  # inside `batch()`: writes commit at its end

    @classmethod
    def open(cls, path: Path) -> "Store":
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            store = cls(db, path)
            store._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the index database {path}: {exc}; "
                             "remove it and run `lenslink index --rebuild`") from exc
        except OSError as exc:
            raise StoreError(f"cannot create the index database {path}: {exc}") from exc
        return store

    def close(self) -> None:
        self.db.conn.close()

    @contextlib.contextmanager
    def batch(self):
        """Every write inside commits at the end, in one transaction, or none does (an
        error rolls them all back). A first index of thousands of notes, one commit per
        note, spent most of its time syncing the journal."""
        if self._batched:
            yield
            return
        self._batched = True
        try:
            with self._transaction():
                yield
        finally:
            self._batched = False

    @contextlib.contextmanager
    def _write(self):
        """One write: its own transaction, or part of the current `batch`."""
        if self._batched:
            yield
        else:
            with self._transaction():
                yield

    @contextlib.contextmanager
    def _transaction(self):
        """An explicit transaction: committed at the end, rolled back on error. (sqlite-utils
        4 commits each write statement at once unless a transaction is open, so `with
        conn:` alone left a note's row and its texts in separate commits.) IMMEDIATE: the
        write lock is taken first, so another connection's commit cannot make a batch's
        reads stale half way (SQLite would refuse its first write: "database is locked");
        other writers wait for it instead (the 30 s busy timeout)."""
        conn = self.db.conn
        assert not conn.in_transaction, "a store transaction inside another one"
        conn.execute("BEGIN IMMEDIATE")
        with conn:
            yield

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} was written by a newer lenslink "
                             f"(schema {version}); upgrade lenslink or use --rebuild")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.conn:
                self.db.conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    # -- meta ---------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    # -- notes --------------------------------------------------------------------
    def note_states(self, paths: Iterable[str] | None = None) -> dict[str, tuple[str, int, int, str]]:
        """{path: (content_hash, mtime_ns, size, signature)} for the change check, of every
        note (or of those of `paths` that are stored)."""
        sql = "SELECT path, content_hash, mtime_ns, size, signature FROM notes"
        rows = self.db.execute(sql) if paths is None else _select_in(self.db, sql + " WHERE path IN", paths)
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def content_hashes(self, paths: Iterable[str] | None = None) -> dict[str, str]:
        """{path: content_hash} of every note (or of those of `paths` that exist)."""
        if paths is None:
            return dict(self.db.execute("SELECT path, content_hash FROM notes").fetchall())
        return dict(_select_in(self.db, "SELECT path, content_hash FROM notes WHERE path IN", paths))

    def put_note(self, row: NoteRow, lex_text: str, query_text: str,
                 chunks: Iterable[tuple[str, int, str, str, str | None]],
                 line_keys: bytes = b"", lens_masks: tuple[int, int] | None = None) -> None:
        """Replace a note and its chunks (lens, chunk, text_hash, text, original) in one
        transaction; `original` is None unless the lens rewrites its texts.

        `lex_text` is what lexical signals match a note by; `query_text`, the same with
        links removed, what the note searches with; `lens_masks`, (source, candidate)
        bit masks of the lenses it takes part in (see `lens_bits`)."""
        with self._write():
            self.db.execute("DELETE FROM chunks WHERE path=?", [row.path])
            self.db.execute(
                "INSERT OR REPLACE INTO notes (path, title, folder, content_hash, mtime_ns, size,"
                " signature, opted_out, is_daily, tags, aliases, frontmatter, problems,"
                " raw_links, lex_text, query_text, indexed_at, line_keys, source_lenses,"
                " candidate_lenses, name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [row.path, row.title, row.folder, row.content_hash, row.mtime_ns, row.size,
                 row.signature, int(row.opted_out), int(row.is_daily), _dump(row.tags),
                 _dump(row.aliases), _dump(row.frontmatter), _dump(row.problems),
                 _dump(row.raw_links), lex_text, query_text, time.time(), line_keys,
                 *(lens_masks or (None, None)), note_name(row.path)])
            self.db.conn.executemany(
                "INSERT INTO chunks (path, lens, chunk, text_hash, text, original)"
                " VALUES (?,?,?,?,?,?)",
                [(row.path, lens, i, h, text, original) for lens, i, h, text, original in chunks])
            self.db.execute("DELETE FROM failures WHERE path=?", [row.path])
            crash_point("store.put_note")  # mid-transaction (crash tests)

    def same_note(self, row: NoteRow, lex_text: str, query_text: str,
                  chunks: Iterable[tuple[str, int, str, str, str | None]], line_keys: bytes) -> bool:
        """Whether the stored note equals this one in everything but the file's hash,
        mtime and size (what `put_note` would store; a rewritten chunk is compared by
        the lens text it came from)."""
        found = self.db.execute(f"SELECT {_NOTE_COLS}, lex_text, query_text, line_keys FROM notes"
                                " WHERE path=?", [row.path]).fetchone()
        if found is None:
            return False
        old = _note_row(found)
        if (found[-3], found[-2], bytes(found[-1])) != (lex_text, query_text, line_keys) or \
                old != dataclasses.replace(row, content_hash=old.content_hash,
                                           mtime_ns=old.mtime_ns, size=old.size):
            return False

        def key(c):  # (lens, chunk, text_hash, text, original)
            return (c[0], c[1], None, None, c[4]) if c[4] is not None else tuple(c)
        stored = self.db.execute("SELECT lens, chunk, text_hash, text, original FROM chunks"
                                 " WHERE path=? ORDER BY lens, chunk", [row.path]).fetchall()
        return sorted(map(key, stored)) == sorted(map(key, chunks))

    def touch_note(self, path: str, mtime_ns: int, size: int, content_hash: str | None = None) -> None:
        with self._write():
            self.db.execute("UPDATE notes SET mtime_ns=?, size=?, content_hash=coalesce(?, content_hash)"
                            " WHERE path=?", [mtime_ns, size, content_hash, path])

    def written_hash(self, path: str) -> str | None:
        """sha256 of the file as lenslink last wrote it (None if it never did)."""
        row = self.db.execute("SELECT file_hash FROM written WHERE path=?", [path]).fetchone()
        return row[0] or None if row else None  # '': only a write begun (`intend_write`)

    def delete_notes(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        with self._write():
            for table, col in (("notes", "path"), ("chunks", "path"), ("links", "src"),
                               ("links", "dst"), ("failures", "path"), ("written", "path")):
                self.db.conn.executemany(f"DELETE FROM {table} WHERE {col}=?", [(p,) for p in paths])
        return len(paths)

    def note_paths(self) -> set[str]:
        """Every stored note's path (cheap: no row decoded)."""
        return {r[0] for r in self.db.execute("SELECT path FROM notes")}

    def paths_named(self, names: Iterable[str]) -> list[str]:
        """Paths of the notes whose `links.note_name` is one of `names`, sorted."""
        self._fill_names()
        return sorted(r[0] for r in _select_in(self.db, "SELECT path FROM notes WHERE name IN", names))

    def _fill_names(self) -> None:
        """Give rows stored before names were kept (store migration 10) theirs."""
        missing = [r[0] for r in self.db.execute("SELECT path FROM notes WHERE name IS NULL")]
        if missing:
            with self._write():
                self.db.conn.executemany("UPDATE notes SET name=? WHERE path=?",
                                         [(note_name(p), p) for p in missing])

    def notes(self, paths: Iterable[str] | None = None) -> list[NoteRow]:
        """Every note (or those of `paths` that exist), in path order."""
        if paths is not None:
            return sorted((_note_row(r) for r in _select_in(
                self.db, f"SELECT {_NOTE_COLS} FROM notes WHERE path IN", paths)),
                key=lambda r: r.path)
        states = self.db.execute(
            "SELECT path, content_hash, mtime_ns, size, signature FROM notes ORDER BY path").fetchall()
        cache = self._rows
        stale = [s[0] for s in states if cache.get(s[0], ((),))[0] != s[1:]]
        if stale:
            fresh = self.notes(stale) if len(stale) < len(states) // 2 else [
                _note_row(r) for r in self.db.execute(f"SELECT {_NOTE_COLS} FROM notes")]
            for row in fresh:
                cache[row.path] = ((row.content_hash, row.mtime_ns, row.size, row.signature), row)
        if len(cache) > len(states):
            for path in set(cache) - {s[0] for s in states}:
                del cache[path]
        return [cache[s[0]][1] for s in states if s[0] in cache]

    def note_cards(self) -> Iterator[tuple[str, str, str, bool, bool, tuple[str, ...], tuple[str, ...], dict]]:
        """(path, title, folder, opted out, is_daily, tags, aliases, frontmatter) of every
        note, in path order, streamed and not cached: what the ranking keeps of a note and
        what lens filters look at (a full load held every decoded row at once)."""
        for path, title, folder, opted_out, daily, tags, aliases, frontmatter in self.db.execute(
                "SELECT path, title, folder, opted_out, is_daily, tags, aliases, frontmatter"
                " FROM notes ORDER BY path"):
            yield (path, title, folder, bool(opted_out), bool(daily), tuple(json.loads(tags)),
                   tuple(json.loads(aliases)), json.loads(frontmatter))

    def stored_times(self) -> dict[str, float]:
        """{path: when the note was last stored (`put_note`; a touch does not count)}."""
        return dict(self.db.execute("SELECT path, indexed_at FROM notes").fetchall())

    def lens_bits(self, signature: str, lenses: int) -> tuple[int, int]:
        """(source, candidate) bit masks: bit i is set when some note stored under
        `signature` is a source (candidate) of lens i. One query per bit, each stopping at
        the first such note (a lens no note takes part in costs a scan in SQLite)."""
        out = []
        for column in ("source_lenses", "candidate_lenses"):
            out.append(sum(1 << i for i in range(lenses) if self.db.execute(
                f"SELECT EXISTS(SELECT 1 FROM notes WHERE signature=? AND {column} & ? != 0)",
                [signature, 1 << i]).fetchone()[0]))
        return out[0], out[1]

    def paths_without_lens_masks(self, signature: str) -> list[str]:
        """Notes whose lens masks are not known under `signature` (stored before they
        were kept, or under another config)."""
        # the row ids from the index on masks (no row read when every note has them)
        return [r[0] for r in self.db.execute(
            "SELECT path FROM notes WHERE rowid IN (SELECT rowid FROM notes WHERE NOT (signature=?"
            " AND source_lenses IS NOT NULL AND candidate_lenses IS NOT NULL))", [signature])]

    def set_lens_masks(self, signature: str, masks: Iterable[tuple[str, int, int]]) -> None:
        """Record (path, source mask, candidate mask) of notes stored under `signature`."""
        with self._write():
            self.db.conn.executemany(
                "UPDATE notes SET source_lenses=?, candidate_lenses=? WHERE path=? AND signature=?",
                [(s, c, p, signature) for p, s, c in masks])

    def note_filters(self, paths: Iterable[str] | None = None
                     ) -> Iterator[tuple[str, bool, tuple[str, ...], dict, bool]]:
        """(path, opted out, tags, frontmatter, is_daily) of every note (or of `paths`),
        streamed and not cached: what lens filters look at, without holding every row."""
        rows = (self.db.execute("SELECT path, opted_out, tags, frontmatter, is_daily FROM notes")
                if paths is None else _select_in(
                    self.db, "SELECT path, opted_out, tags, frontmatter, is_daily FROM notes"
                             " WHERE path IN", paths))
        for path, opted_out, tags, frontmatter, daily in rows:
            yield path, bool(opted_out), tuple(json.loads(tags)), json.loads(frontmatter), bool(daily)

    def raw_links(self, paths: Iterable[str] | None = None) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(path, raw link paths) of every note (or of `paths`), streamed and not cached."""
        rows = (self.db.execute("SELECT path, raw_links FROM notes") if paths is None else
                _select_in(self.db, "SELECT path, raw_links FROM notes WHERE path IN", paths))
        for path, links in rows:
            yield path, tuple(json.loads(links))

    def line_keys(self) -> Iterable[tuple[str, bytes]]:
        """(path, line keys blob) of every note."""
        return self.db.execute("SELECT path, line_keys FROM notes ORDER BY path")

    def note(self, path: str) -> NoteRow | None:
        row = self.db.execute(f"SELECT {_NOTE_COLS} FROM notes WHERE path=?", [path]).fetchone()
        return _note_row(row) if row else None

    def text_hashes(self, paths: Iterable[str]) -> dict[str, str]:
        """{path: sha256 of the note's text as lenslink reads it} (title, aliases, tags
        and text; not the file's bytes, so a block lenslink writes changes nothing)."""
        return {path: hashlib.sha256(lex.encode("utf-8", "surrogatepass")).hexdigest()
                for path, (lex, _) in self.lex_texts(paths).items()}

    def lex_texts(self, paths: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
        """{path: (lex_text, query_text)} of every note (or of `paths`)."""
        sql = "SELECT path, lex_text, query_text FROM notes"
        rows = self.db.execute(sql) if paths is None else _select_in(self.db, sql + " WHERE path IN", paths)
        return {r[0]: (r[1], r[2]) for r in rows}

    def each_lex_text(self) -> Iterator[tuple[str, str]]:
        """(path, lex_text) of every note, in path order, streamed (a full load tokenises
        each text and drops it: at 100,000 notes the texts are 120 MB as strings)."""
        return iter(self.db.execute("SELECT path, lex_text FROM notes ORDER BY path"))

    def query_texts(self, paths: Iterable[str] | None = None) -> dict[str, str]:
        """{path: query text} of every note (or of `paths`)."""
        sql = "SELECT path, query_text FROM notes"
        rows = self.db.execute(sql) if paths is None else _select_in(self.db, sql + " WHERE path IN", paths)
        return dict(rows)

    def opted_out_count(self) -> int:
        """Notes stored with `lenslink: false` (from their partial index: a scan of the
        table at 100,000 notes reads every row's texts)."""
        return self.db.execute("SELECT count(*) FROM notes WHERE opted_out = 1").fetchone()[0]

    def note_summary(self) -> tuple[int, int, dict[str, list[str]]]:
        """(notes, opted-out notes, {path: problems} of the notes that have some), from
        SQL alone: no note is decoded (status at 100,000 notes)."""
        count, opted_out = self.db.execute(
            "SELECT count(*), coalesce(sum(opted_out), 0) FROM notes").fetchone()
        problems = {path: list(json.loads(found)) for path, found in self.db.execute(
            "SELECT path, problems FROM notes WHERE problems != '[]' ORDER BY path")}
        return count, opted_out, problems

    def is_empty(self) -> bool:
        """No note and no index settings stored (a database just made)."""
        return self.note_count() == 0 and self.get_meta("embedder") is None

    def note_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM notes").fetchone()[0]

    # -- failures -----------------------------------------------------------------
    def record_failure(self, path: str, error: str) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO failures (path, error, at) VALUES (?,?,?)",
                            [path, error, time.time()])

    def clear_failure(self, path: str) -> None:
        with self._write():
            self.db.execute("DELETE FROM failures WHERE path=?", [path])

    def failures(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, error FROM failures ORDER BY path"))

    def failed_at(self) -> dict[str, float]:
        """{path: when its failure was recorded} (Unix time)."""
        return dict(self.db.execute("SELECT path, at FROM failures"))

    def clear_failures(self, keep: Iterable[str], among: Iterable[str] | None = None) -> None:
        """Forget the failures of notes not in `keep` (only those among `among`, if given)."""
        keep = set(keep)
        failed = set(self.failures())
        with self._write():
            for path in (failed if among is None else failed & set(among)) - keep:
                self.db.execute("DELETE FROM failures WHERE path=?", [path])

    # -- links --------------------------------------------------------------------
    def replace_links(self, edges: Iterable[tuple[str, str]]) -> None:
        with self._write():
            self.db.execute("DELETE FROM links")
            self.db.conn.executemany("INSERT OR IGNORE INTO links (src, dst) VALUES (?, ?)", edges)

    def replace_links_from(self, sources: Iterable[str], edges: Iterable[tuple[str, str]]) -> None:
        """Replace the out-links of `sources` only (their targets resolved by the caller)."""
        with self._write():
            self.db.conn.executemany("DELETE FROM links WHERE src=?", [(p,) for p in sources])
            self.db.conn.executemany("INSERT OR IGNORE INTO links (src, dst) VALUES (?, ?)", edges)

    def links(self, sources: Iterable[str] | None = None) -> dict[str, list[str]]:
        """{source: [targets]} of every note (or of `sources`), sorted."""
        graph: dict[str, list[str]] = {}
        rows = (self.db.execute("SELECT src, dst FROM links") if sources is None else
                _select_in(self.db, "SELECT src, dst FROM links WHERE src IN", sources))
        for src, dst in sorted(rows):
            graph.setdefault(src, []).append(dst)
        return graph

    def each_link(self) -> Iterator[tuple[str, str]]:
        """(source, target) of every link, in that order, streamed (`links` holds them all
        twice over: the rows, then the lists)."""
        return iter(self.db.execute("SELECT src, dst FROM links ORDER BY src, dst"))

    def link_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM links").fetchone()[0]

    # -- chunks and vectors -------------------------------------------------------
    def missing_texts(self, embedder_id: str, lenses: list[str],
                      paths: Iterable[str] | None = None) -> list[tuple[str, int]]:
        """(text_hash, length) of every text that a chunk of `lenses` (of the notes
        `paths`, if given) needs and no vector exists for yet, shortest first (so that
        batches pad little); one query."""
        marks = ",".join("?" * len(lenses))
        sql = ("SELECT c.text_hash, {length} FROM chunks c LEFT JOIN vectors v"
               " ON v.embedder=? AND v.text_hash=c.text_hash WHERE v.text_hash IS NULL"
               f" AND c.lens IN ({marks}) AND c.text_hash != ?")
        params = [embedder_id, *lenses, PENDING]
        if paths is None:
            rows = self.db.execute(sql.format(length="length(min(c.text))") + " GROUP BY c.text_hash",
                                   params).fetchall()
        else:
            sql = sql.format(length="length(c.text)")
            found: dict[str, int] = {}
            for h, n in _select_in(self.db, sql + " AND c.path IN", paths, params) \
                    if paths else []:
                found[h] = n
            rows = list(found.items())
        return sorted(((r[0], r[1]) for r in rows), key=lambda r: (r[1], r[0]))

    def unembedded(self, embedder_id: str, lenses: list[str],
                   paths: Iterable[str]) -> dict[str, list[str]]:
        """{path: [lens, ...]} of these notes with a text of `lenses` that has no vector
        yet (its rewrite still pending, or its embedding failed)."""
        marks = ",".join("?" * len(lenses))
        out: dict[str, list[str]] = {}
        for path, lens in sorted(set(_select_in(
                self.db, "SELECT c.path, c.lens FROM chunks c LEFT JOIN vectors v ON v.embedder=?"
                f" AND v.text_hash=c.text_hash WHERE v.text_hash IS NULL AND c.lens IN ({marks})"
                " AND c.path IN", paths, [embedder_id, *lenses]))):
            out.setdefault(path, []).append(lens)
        return out

    def texts_of(self, hashes: Iterable[str]) -> dict[str, str]:
        """{text_hash: text} of chunks with these hashes."""
        return {r[0]: r[1] for r in _select_in(
            self.db, "SELECT text_hash, text FROM chunks WHERE text_hash IN", hashes)}

    def count_missing(self, embedder_id: str, lenses: list[str]) -> int:
        marks = ",".join("?" * len(lenses))
        return self.db.execute(
            "SELECT count(DISTINCT c.text_hash) FROM chunks c LEFT JOIN vectors v"
            " ON v.embedder=? AND v.text_hash=c.text_hash WHERE v.text_hash IS NULL"
            f" AND c.lens IN ({marks}) AND c.text_hash != ?",
            [embedder_id, *lenses, PENDING]).fetchone()[0]

    def put_vectors(self, embedder_id: str, hashes: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self._write():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO vectors (embedder, text_hash, vector) VALUES (?,?,?)",
                [(embedder_id, h, v.tobytes()) for h, v in zip(hashes, vectors)])
            crash_point("store.put_vectors")

    def lens_vectors(self, embedder_id: str, lens: str, paths: Iterable[str] | None = None,
                     texts: bool = True) -> tuple[list[str], list[int], list[str], np.ndarray]:
        """(paths, chunk numbers, chunk texts, matrix) of every embedded chunk of a lens
        (or of the chunks of `paths`), in (path, chunk) order; with `texts=False`, the
        texts' hashes instead of the texts (what an update needs: a fraction of the
        memory). Rows are read in batches, so the blobs never sit beside the matrix."""
        column = "c.text" if texts else "c.text_hash"
        sql = (f"SELECT c.path, c.chunk, {column}, v.vector FROM chunks c {{}} vectors v"
               " ON v.embedder=? AND v.text_hash=c.text_hash WHERE c.lens=?")
        if paths is None:
            cursor = self.db.execute(sql.format("JOIN") + " ORDER BY c.path, c.chunk",
                                     [embedder_id, lens])
            batches = iter(lambda: cursor.fetchmany(8192), [])
        else:
            # CROSS JOIN keeps chunks (looked up by path) as the outer loop: the planner
            # would otherwise walk every vector of the embedder (seconds at 100,000 notes)
            batches = [sorted(_select_in(self.db, sql.format("CROSS JOIN") + " AND c.path IN", paths,
                                         [embedder_id, lens]), key=lambda r: (r[0], r[1]))]
        out_paths, numbers, out_texts, blocks = [], [], [], []
        for rows in batches:
            if not rows:
                continue
            out_paths += [r[0] for r in rows]
            numbers += [r[1] for r in rows]
            out_texts += [r[2] for r in rows]
            blocks.append(np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), -1))
        if not blocks:
            return [], [], [], np.zeros((0, 0), dtype=np.float32)
        return out_paths, numbers, out_texts, blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def lens_vector_batches(self, embedder_id: str, lens: str, size: int = 2048
                            ) -> Iterator[tuple[list[str], list[int], list[str], np.ndarray]]:
        """(paths, chunk numbers, text hashes, matrix) of every embedded chunk of a lens, in
        (path, chunk) order, in batches of about `size` chunks that end where a note's
        chunks end: a full load makes each note's vector from one batch and never holds
        the lens's chunk matrix (hundreds of MB at 100,000 notes) at once."""
        rows: list[tuple] = []
        for fetched in self._lens_rows(embedder_id, lens, "c.text_hash, v.vector", size):
            rows += fetched
            last = rows[-1][0]
            cut = len(rows)
            while cut and rows[cut - 1][0] == last:  # the last note may go on in the next rows
                cut -= 1
            if cut:
                yield _vector_batch(rows[:cut])
                rows = rows[cut:]
        if rows:
            yield _vector_batch(rows)

    def lens_text_keys(self, embedder_id: str, lens: str) -> Iterator[tuple[str, int, str]]:
        """(path, chunk number, text hash) of every embedded chunk of a lens, in (path,
        chunk) order, as `lens_vector_batches` gives them, without reading the vectors."""
        for fetched in self._lens_rows(embedder_id, lens, "c.text_hash", 8192):
            yield from fetched

    def _lens_rows(self, embedder_id: str, lens: str, columns: str, size: int) -> Iterator[list[tuple]]:
        # CROSS JOIN: chunks are read in the order of their primary key (path, lens,
        # chunk), so SQLite sorts one note's chunks at a time, not the lens's vectors
        cursor = self.db.execute(
            f"SELECT c.path, c.chunk, {columns} FROM chunks c CROSS JOIN vectors v"
            " ON v.embedder=? AND v.text_hash=c.text_hash WHERE c.lens=? ORDER BY c.path, c.chunk",
            [embedder_id, lens])
        return iter(lambda: cursor.fetchmany(size), [])

    def paths_of_texts(self, hashes: Iterable[str]) -> list[str]:
        """Notes with a chunk of one of these text hashes."""
        return sorted({r[0] for r in _select_in(
            self.db, "SELECT DISTINCT path FROM chunks WHERE text_hash IN", hashes)})

    def chunk_counts(self, embedder_id: str, lenses: list[str], complete: bool = False) -> tuple[int, int]:
        """(distinct texts that `lenses` need, those with a vector for this embedder); a
        text waiting for its rewrite counts as needed, not embedded. `complete`: a
        finished sync found none missing (no need to look)."""
        marks = ",".join("?" * len(lenses))
        known = self.db.execute(f"SELECT count(DISTINCT text_hash) FROM chunks WHERE lens IN ({marks})"
                                " AND text_hash != ?", [*lenses, PENDING]).fetchone()[0]
        waiting = self.db.execute(f"SELECT count(*) FROM (SELECT DISTINCT lens, original FROM chunks"
                                  f" WHERE lens IN ({marks}) AND text_hash = ?)",
                                  [*lenses, PENDING]).fetchone()[0]
        return known + waiting, known - (0 if complete else self.count_missing(embedder_id, lenses))

    def prune_vectors(self, hashes: Iterable[str] | None = None, keep_days: float = 0) -> int:
        """Drop vectors no chunk refers to any more: those among `hashes` (the texts of
        notes just changed or deleted), or all of them. Of all: with `keep_days`, those
        of texts a note retired (`retire`) are kept that long from then, at most as many
        as there are texts in use (the oldest go first); without, every retired text goes."""
        with self._write():
            if hashes is None:
                return self._prune_unused(keep_days)
            used = {r[0] for r in _select_in(
                self.db, "SELECT DISTINCT text_hash FROM chunks WHERE text_hash IN", hashes)}
            unused = sorted(set(hashes) - used)
            # by the primary key (embedder, text_hash): a scan per hash would be slow
            embedders = self._embedders()
            self.db.conn.executemany("DELETE FROM vectors WHERE embedder=? AND text_hash=?",
                                     [(e, h) for e in embedders for h in unused])
        return len(unused)

    def _prune_unused(self, keep_days: float) -> int:
        if keep_days <= 0:
            self.db.execute("DELETE FROM retired")
        else:  # texts in use again are not retired; old ones go
            self.db.execute("DELETE FROM retired WHERE at < ? OR text_hash IN"
                            " (SELECT text_hash FROM chunks)", [time.time() - keep_days * 86400])
            in_use = self.db.execute("SELECT count(DISTINCT text_hash) FROM chunks").fetchone()[0]
            kept = self.db.execute("SELECT count(*) FROM retired").fetchone()[0]
            if kept > in_use:
                self.db.execute("DELETE FROM retired WHERE rowid IN (SELECT rowid FROM retired"
                                " ORDER BY at LIMIT ?)", [kept - in_use])
        return self.db.execute(
            "DELETE FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)"
            " AND text_hash NOT IN (SELECT text_hash FROM retired)").rowcount

    def retire(self, path: str, hashes: Iterable[str]) -> None:
        """Note that `path` no longer uses these texts because the config changed: their
        vectors are kept a while (`prune_vectors(keep_days=...)`)."""
        now = time.time()
        with self._write():
            self.db.conn.executemany("INSERT OR IGNORE INTO retired (path, text_hash, at)"
                                     " VALUES (?,?,?)", [(path, h, now) for h in hashes if h != PENDING])

    def take_retired(self, paths: Iterable[str]) -> set[str]:
        """The texts these notes retired, forgotten now (the notes' words changed, they
        were deleted or opt out: their vectors go with their other texts)."""
        paths = list(paths)
        with self._write():
            found = {r[0] for r in _select_in(self.db, "SELECT text_hash FROM retired WHERE path IN", paths)}
            self.db.conn.executemany("DELETE FROM retired WHERE path=?", [(p,) for p in paths])
        return found

    def _embedders(self) -> list[str]:
        """The embedders with stored vectors, each found by the primary key (DISTINCT
        would read the whole index: 55 ms at 100,000 notes)."""
        out, row = [], self.db.execute("SELECT MIN(embedder) FROM vectors").fetchone()
        while row[0] is not None:
            out.append(row[0])
            row = self.db.execute("SELECT MIN(embedder) FROM vectors WHERE embedder > ?", [row[0]]).fetchone()
        return out

    def chunk_hashes(self, paths: Iterable[str]) -> set[str]:
        """Text hashes of the chunks of these notes."""
        return {r[0] for r in _select_in(self.db, "SELECT text_hash FROM chunks WHERE path IN", paths)}

    # -- rewrites -----------------------------------------------------------------
    def pending_rewrites(self, lens: str) -> list[tuple[str, str]]:
        """(lens text, first note path) of every distinct text of `lens` still waiting
        for its rewrite, in note order."""
        rows = self.db.execute(
            "SELECT original, min(path) FROM chunks WHERE lens=? AND text_hash=?"
            " GROUP BY original ORDER BY min(path), min(chunk)", [lens, PENDING])
        return [(r[0], r[1]) for r in rows]

    def pending_rewrite_paths(self, lenses: list[str]) -> dict[str, list[str]]:
        """{path: [lens, ...]} of notes with texts of `lenses` waiting for their rewrite."""
        marks = ",".join("?" * len(lenses))
        out: dict[str, list[str]] = {}
        for path, lens in self.db.execute(
                f"SELECT DISTINCT path, lens FROM chunks WHERE text_hash=? AND lens IN ({marks})"
                " ORDER BY path, lens", [PENDING, *lenses]):
            out.setdefault(path, []).append(lens)
        return out

    def get_rewrite(self, model: str, prompt_hash: str, text_hash: str) -> str | None:
        row = self.db.execute("SELECT rewritten FROM rewrites WHERE model=? AND prompt_hash=?"
                              " AND text_hash=?", [model, prompt_hash, text_hash]).fetchone()
        return row[0] if row else None

    def put_rewrite(self, model: str, prompt_hash: str, text_hash: str, rewritten: str) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO rewrites (model, prompt_hash, text_hash,"
                            " rewritten) VALUES (?,?,?,?)", [model, prompt_hash, text_hash, rewritten])

    def apply_rewrite(self, lens: str, original: str, rewritten: str, rewritten_hash: str) -> None:
        """Every chunk of `lens` waiting with this lens text now embeds `rewritten`."""
        with self._write():
            self.db.execute("UPDATE chunks SET text=?, text_hash=? WHERE lens=? AND text_hash=?"
                            " AND original=?", [rewritten, rewritten_hash, lens, PENDING, original])

    def lens_chunks(self, path: str, lens: str) -> list[tuple[str, str | None]]:
        """(text, original) of a note's chunks under a lens, in order; text is '' while
        a rewrite is pending, original is None for a lens without rewrite."""
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT text, original FROM chunks WHERE path=? AND lens=? ORDER BY chunk", [path, lens])]

    def prune_rewrites(self) -> int:
        """Drop cached rewrites that no chunk embeds any more (deleted or changed notes),
        but those a config change retired (`retire`): they are kept as their vectors are,
        so going back to that config asks the chat model nothing."""
        with self._write():
            unused = self.db.execute(
                "SELECT model, prompt_hash, text_hash, rewritten FROM rewrites WHERE rewritten"
                " NOT IN (SELECT text FROM chunks WHERE original IS NOT NULL)").fetchall()
            hashes = [hashlib.sha256(r[3].encode("utf-8")).hexdigest() for r in unused]
            kept = {r[0] for r in _select_in(self.db, "SELECT text_hash FROM retired WHERE text_hash IN",
                                            hashes)} if hashes else set()
            gone = [r[:3] for r, h in zip(unused, hashes) if h not in kept]
            self.db.conn.executemany("DELETE FROM rewrites WHERE model=? AND prompt_hash=?"
                                     " AND text_hash=?", gone)
        return len(gone)

    # -- labels -------------------------------------------------------------------
    def put_label(self, lens: str, src: str, dst: str, model: str, src_hash: str,
                  dst_hash: str, label: bool, answer: str) -> None:
        """Store one judgement (committed at once: an interrupted run keeps it)."""
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO labels (lens, src, dst, model, src_hash,"
                            " dst_hash, label, answer, at) VALUES (?,?,?,?,?,?,?,?,?)",
                            [lens, src, dst, model, src_hash, dst_hash, int(label), answer,
                             time.time()])

    def labels(self, lens: str, sources: Iterable[str] | None = None
               ) -> list[tuple[str, str, str, str, str, bool]]:
        """(src, dst, model, src_hash, dst_hash, label) of a lens's labels (or of those
        whose source is among `sources`), stale ones included, in (src, dst, model) order."""
        sql = "SELECT src, dst, model, src_hash, dst_hash, label FROM labels WHERE lens=?"
        rows = (self.db.execute(sql, [lens]).fetchall() if sources is None else
                _select_in(self.db, sql + " AND src IN", sources, [lens]))
        return sorted((r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows)

    def vector_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM vectors").fetchone()[0]

    # -- write-back bookkeeping ---------------------------------------------------
    def written_block(self, path: str) -> tuple[str | None, list[str]]:
        """(sha256 of the block lenslink last wrote into a note or None, the texts of the
        blocks it last wrote or was writing there: none when never or not kept)."""
        row = self.db.execute("SELECT block_hash, block, pending FROM written WHERE path=?",
                              [path]).fetchone()
        return (row[0] or None, [t for t in row[1:] if t is not None]) if row else (None, [])

    def intend_write(self, path: str, block: str | None) -> None:
        """Note the block about to be written into a note (before its file is replaced;
        None: it was not written after all)."""
        with self._write():
            self.db.execute("UPDATE written SET pending=? WHERE path=?", [block, path])
            if block is not None and not self.db.execute("SELECT 1 FROM written WHERE path=?",
                                                         [path]).fetchone():
                self.db.execute("INSERT INTO written (path, block_hash, file_hash, at, pending)"
                                " VALUES (?,'','',?,?)", [path, time.time(), block])

    def remember_write(self, path: str, block_hash: str, file_hash: str, block: str | None = None) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO written (path, block_hash, file_hash, at, block,"
                            " pending) VALUES (?,?,?,?,?,NULL)",
                            [path, block_hash, file_hash, time.time(), block])
            crash_point("store.remember_write")

    def put_model(self, lens: str, embedder_id: str, signature: str, params: dict, blob: bytes) -> None:
        with self._write():
            self.db.execute("INSERT OR REPLACE INTO models (lens, embedder, signature, params, blob,"
                            " trained_at) VALUES (?,?,?,?,?,?)",
                            [lens, embedder_id, signature, json.dumps(params), blob, time.time()])

    def models(self, embedder_id: str) -> dict[str, tuple[str, dict, bytes, float]]:
        """{lens: (signature, params, blob, trained_at)} trained with this embedder."""
        rows = self.db.execute("SELECT lens, signature, params, blob, trained_at FROM models"
                               " WHERE embedder=?", [embedder_id])
        return {r[0]: (r[1], json.loads(r[2]), r[3], r[4]) for r in rows}

    def delete_model(self, lens: str) -> None:
        with self._write():
            self.db.execute("DELETE FROM models WHERE lens=?", [lens])

    def delete_models(self) -> None:
        with self._write():
            self.db.execute("DELETE FROM models")

    def reset(self) -> None:
        """Forget every note (for --rebuild); cached vectors stay reusable."""
        with self._write():
            for table in ("notes", "chunks", "links", "failures"):
                self.db.execute(f"DELETE FROM {table}")


_NOTE_COLS = ("path, title, folder, content_hash, mtime_ns, size, signature, opted_out,"
              " is_daily, tags, aliases, frontmatter, problems, raw_links")


class Reader:
    """Read-only connections to a store's file for threads that rank and need a few
    texts (query texts, chunk passages) per request: the ranking keeps none of them in
    memory. Each caller borrows a connection of its own; at most POOL are kept open.
    After `close()` a borrower still gets a connection, closed when it is given back.
    Pickles as its path only (it travels inside the ranking snapshot)."""
    POOL = 4

    def __init__(self, path: Path):
        self.path = Path(path)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    @contextlib.contextmanager
    def store(self):
        """A Store on a read-only connection of this caller's own (no migrations)."""
        try:
            store = self._free.get_nowait()
        except queue.Empty:
            try:  # read-only: a missing file is an error, not a new empty database
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=30, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the index database {self.path}: {exc}") from exc
            store = Store(sqlite_utils.Database(conn), self.path)
        try:
            yield store
        finally:
            if self._closed or self._free.qsize() >= self.POOL:
                store.close()
            else:
                self._free.put(store)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._free.get_nowait().close()
            except queue.Empty:
                return


def _note_row(r) -> NoteRow:
    return NoteRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8]),
                   tuple(json.loads(r[9])), tuple(json.loads(r[10])), json.loads(r[11]),
                   tuple(json.loads(r[12])), tuple(json.loads(r[13])))


def _vector_batch(rows: list[tuple]) -> tuple[list[str], list[int], list[str], np.ndarray]:
    """(paths, chunk numbers, text hashes, matrix) of rows (path, chunk, text_hash, blob)."""
    matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], matrix


def _select_in(db, sql: str, values: Iterable[str], params: Iterable = ()) -> list[tuple]:
    """Rows of `sql` + " (?, ?, ...)" over `values`, in slices below SQLite's limit."""
    values, params, out = list(values), list(params), []
    for start in range(0, len(values), 500):
        part = values[start:start + 500]
        out += db.execute(f"{sql} ({','.join('?' * len(part))})", [*params, *part]).fetchall()
    return out


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
